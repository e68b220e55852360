"""Parameter learning in the manner of ParaFormer (Li & Lu 2023, Remote Sens. 15, 3536).

A network maps basin data to the physical parameters θ of a process model; the model's
simulated output is compared with observations and the loss gradient trains the network
(Eq. 3). Here the process model is differentiable, so there are two routes with the same
parameter network and the same :class:`~difhydro.hybrid.ParamHead`:

- ``direct``: θ -> :func:`~difhydro.hybrid.run_physics` (any process model);
- ``surrogate``: θ -> a :class:`~.surrogate.FrozenSurrogate` (the paper's route).

Leakage: the ``*_z`` networks read only the first ``history_days`` of a window's
``inputs`` (forcing and *observed* streamflow). The Trainer's mask excludes the first
``warmup`` days of each window from the loss, and :class:`ParameterLearner` requires
``warmup >= history_days`` (checked against the batch mask in :func:`check_history`), so
an observation that enters the network is never scored.

Outputs are squashed into the box (``squash=True``: the head's ``"sigmoid"`` mapping) or
unsquashed (``squash=False``: ``"linear"``, θ = low + (high − low)(raw + ½), clipped for
the physics) and kept inside the box by :func:`range_boundary_loss` (the paper's Eq. 13).
"""

from __future__ import annotations

import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ...data.batching import BasinData
from ...hybrid import ParamHead, field, run_physics
from ...physics.base import Array, ProcessModel
from ...training import TrainConfig, Trainer, losses
from .networks import HISTORY_NETWORKS, ParameterNetwork
from .surrogate import FrozenSurrogate

__all__ = ["ParameterLearner", "check_leakage", "check_history", "range_boundary_loss", "paraformer_loss",
           "fit_parameter_learner"]


# ----------------------------------------------------------------------------------------
# The parameter-learning model
# ----------------------------------------------------------------------------------------


class ParameterLearner(nn.Module):
    """Network -> physical parameters -> process model (or frozen surrogate) -> outputs.

    Called as ``learner(batch, deterministic=...)`` with a
    :class:`~difhydro.data.batching.Batch` (or a mapping with its fields), so the
    :class:`~difhydro.training.Trainer` trains it.

    Attributes:
        model: process model whose parameters are learned (any ``ProcessModel``).
        network: one of :data:`NETWORKS`.
        sizes: overrides of :data:`PAPER_SIZES`, ``((name, value), ...)``.
        history_days: H, leading days of ``batch.inputs`` the ``*_z`` networks read
            (forcing + observed target); the loss must not score them (warm-up >= H).
        history_mask_feature: index of a 0/1 "observed" feature of ``inputs``; history
            steps where it is <= ``history_mask_threshold`` (its standardised 0.5) are
            masked out of ParaFormer_Z's attention. ``None``: every step is valid.
        history_mask_threshold: see above.
        squash: sigmoid outputs into the boxes (True) or unsquashed outputs for the
            range-boundary loss (False).
        surrogate: ``None`` for the direct route, else a :class:`FrozenSurrogate`.
        dropout_rate: dropout of the network.

    Returns a dict: the model's outputs ``[batch, time]`` (direct route; every output and
    state) or the surrogate's output (surrogate route), ``params`` (name -> ``[batch]``
    physical values used) and ``unsquashed_params`` ``[batch, p]`` (before clipping; equal
    to the used values when ``squash=True``).
    """

    model: ProcessModel
    network: str = "paraformer_a"
    sizes: tuple = ()
    history_days: int = 0
    history_mask_feature: int | None = None
    history_mask_threshold: float = 0.0
    squash: bool = True
    surrogate: FrozenSurrogate | None = None
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, batch, *, deterministic: bool = True) -> dict[str, Any]:
        attributes = jnp.asarray(field(batch, "attributes"))
        forcing = field(batch, "forcing")
        missing = [k for k in self.model.forcing_names if k not in (forcing or {})]
        if missing:
            raise ValueError(f"{type(self.model).__name__} needs forcing {missing} in batch['forcing']")
        history = mask = None
        if self.network in HISTORY_NETWORKS:
            check_history(batch, self.history_days)
            history = jnp.asarray(field(batch, "inputs"))[:, : self.history_days]
            if self.history_mask_feature is not None:
                mask = history[..., self.history_mask_feature] > self.history_mask_threshold
        head = ParamHead.for_model(self.model, mapping="sigmoid" if self.squash else "linear")
        flat = ParameterNetwork(self.network, head.size, self.sizes, self.dropout_rate, name="network")(
            attributes, history, mask, deterministic=deterministic
        )
        raw = head.split(flat)
        params = head.to_physical(raw)
        if self.surrogate is None:
            out = run_physics(self.model, params, forcing)
        else:
            low, high = head.bounds()
            unit = (head.flatten(params) - low) / (high - low)
            out = {self.surrogate.output: self.surrogate(forcing, unit)}
        out["params"] = params
        out["unsquashed_params"] = head.flatten(params if self.squash else head.unconstrained(raw))
        return out


def check_leakage(learner: ParameterLearner, data: BasinData) -> None:
    """ValueError when a history network would read days that ``data`` scores: its
    ``warmup`` (days excluded from every window's mask) must cover ``history_days``."""
    if learner.network in HISTORY_NETWORKS and data.warmup < learner.history_days:
        raise ValueError(
            f"data.warmup={data.warmup} < history_days={learner.history_days}: observations the "
            f"network reads would be scored (leakage); use a warm-up >= history_days"
        )


def check_history(batch, history_days: int) -> None:
    """ValueError unless ``0 < history_days`` and the batch mask excludes those days."""
    if history_days < 1:
        raise ValueError(f"history_days must be >= 1 for a history network, got {history_days}")
    inputs, mask = field(batch, "inputs"), field(batch, "mask")
    if inputs is None or inputs.shape[1] <= history_days:
        raise ValueError(f"batch inputs must be longer than history_days={history_days}")
    if mask is not None and not isinstance(mask, jax.core.Tracer) and bool(np.any(np.asarray(mask)[:, :history_days])):
        raise ValueError(
            f"the batch mask scores days inside the {history_days}-day history: use a warm-up >= history_days"
        )


def paraformer_loss(model: ProcessModel, output: str = "streamflow", rbl_weight: float = 1.0,
                    bounds: tuple | None = None):
    """The paper's Eq. 14, ``RMSE(output) + RBL(θ)``, as a Trainer loss
    ``loss(predictions, batch, context)``; ``bounds`` (default: the model's boxes) are the
    RBL's ``(low [p], high [p])``. With squashed outputs the RBL is identically 0."""
    low, high = ParamHead.for_model(model).bounds() if bounds is None else bounds
    low, high = jnp.asarray(low), jnp.asarray(high)

    def loss(pred, batch, context):
        value = losses.rmse(pred[output], field(batch, "target"), field(batch, "mask"))
        return value + rbl_weight * range_boundary_loss(pred["unsquashed_params"], low, high)

    return loss


def fit_parameter_learner(
    learner: ParameterLearner,
    data: BasinData,
    *,
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    loss=None,
    seed: int = 0,
    progress: bool = True,
    epochs: int = 5,
) -> dict[str, Any]:
    """Train ``learner`` with the :class:`~difhydro.training.Trainer` for ``steps`` steps
    (split into ``epochs``; cosine schedule; loss default :func:`paraformer_loss`).

    Returns the Trainer's result plus ``seconds`` (wall clock, compile included) and
    ``losses`` (mean training loss per epoch).
    """
    check_leakage(learner, data)
    epochs = max(1, min(epochs, steps))
    config = TrainConfig(epochs=epochs, steps_per_epoch=max(steps // epochs, 1), batch_size=batch_size,
                         learning_rate=learning_rate, schedule="cosine", clip_norm=1.0, seed=seed,
                         progress=progress)
    t0 = time.perf_counter()
    trainer = Trainer(learner, data, config, loss=loss or paraformer_loss(learner.model))
    result = trainer.fit()
    result["seconds"] = time.perf_counter() - t0
    result["losses"] = np.asarray([row["train_loss"] for row in result["history"]])
    return result




def range_boundary_loss(
    params: Array, low: Array, high: Array, *, alpha: float | None = None, eps: float = 0.01
) -> Array:
    """Range-boundary loss of Li & Lu (2023, Eq. 13), averaged over sites.

    Per site, ``alpha Σ_j ReLU(θ_j − high_j) / (eps + #{θ_j > high_j})`` plus the same for
    the lower bound: ``alpha`` times the mean violation over the violating parameters, 0
    when every parameter is inside its box (docs/physics.md §5.4).

    Args:
        params: ``[*sites, p]`` unsquashed parameters in physical units.
        low, high: ``[p]`` bounds, same units.
        alpha: α1 = α2 (default ``p``, as in the paper).
        eps: ε of the denominators (0.01 in the paper).
    """
    params = jnp.asarray(params)
    p = params.shape[-1]
    low, high = jnp.broadcast_to(low, (p,)), jnp.broadcast_to(high, (p,))
    alpha = float(p) if alpha is None else alpha
    above, below = params > high, params < low
    upper = jnp.sum(jnp.maximum(params - high, 0.0), -1) / (eps + jnp.sum(above, -1))
    lower = jnp.sum(jnp.maximum(low - params, 0.0), -1) / (eps + jnp.sum(below, -1))
    return jnp.mean(alpha * (upper + lower))
