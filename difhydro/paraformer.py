"""Parameter learning in the manner of ParaFormer (Li & Lu 2023, Remote Sens. 15, 3536).

A network maps basin data to the physical parameters θ of a process model; the model's
simulated output is compared with observations and the loss gradient trains the network
(Eq. 3). Li & Lu cannot differentiate VIC, so they pass θ through a frozen LSTM surrogate
of VIC. Here the process model is differentiable, so there are two routes with the same
parameter network:

- ``direct``: θ -> :func:`~difhydro.physics.simulate` (any
  :class:`~difhydro.physics.ProcessModel`: VicBucket, EXP-HYDRO, HBV, ...);
- ``surrogate``: θ -> :class:`FrozenSurrogate`, an LSTM trained by
  :func:`train_surrogate` on simulations of the model over random parameters and forcing
  and then frozen (the paper's route).

Parameter networks (:class:`ParameterNetwork`, sizes of the paper's §4.2 in
:data:`PAPER_SIZES`): ``paraformer_a`` (attributes A -> θ),
``paraformer_z`` ((X, Z) history + A -> θ), and the baselines ``ffn_a`` (MLP on A) and
``lstm_z`` (LSTM over X, Z and A; Tsai et al. 2021).

Leakage: the ``*_z`` networks read only the first ``history_days`` of a window's
``inputs`` (forcing and *observed* streamflow). The Trainer's mask excludes the first
``warmup`` days of each window from the loss, and :class:`ParameterLearner` requires
``warmup >= history_days`` (checked against the batch mask length in
:func:`check_history`), so an observation that enters the network is never scored.

Outputs are either squashed into the parameter box (``squash=True``: sigmoid ->
:meth:`ParamSpec.to_physical`) or unsquashed (``squash=False``: θ = low + (high − low)
(raw + ½), clipped into the box for the physics) and kept inside the box by the
range-boundary loss :func:`difhydro.losses.range_boundary_loss` (the paper's Eq. 13).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from . import losses, metrics
from .data.batching import BasinData, Batch, full_period_batch, make_sampler
from .hybrid import field
from .nn import LSTM, MLP, ParaFormerA, ParaFormerZ
from .physics.base import Array, ProcessModel, simulate

__all__ = [
    "PAPER_BOUNDS",
    "PAPER_SIZES",
    "NETWORKS",
    "ParameterNetwork",
    "StreamflowSurrogate",
    "FrozenSurrogate",
    "ParameterLearner",
    "parameter_box",
    "check_leakage",
    "paraformer_loss",
    "train_surrogate",
    "fit_parameter_learner",
    "predict",
    "simulate_batch",
    "score",
    "neighbour_split",
    "parameter_r2",
    "roughness",
]

#: Li & Lu's Table 1 ranges (their RBL bounds; units of their NLDAS-2 set, see
#: process-models.md §2.4), keyed by the toolkit's VicBucket names.
PAPER_BOUNDS = {
    "ds": (0.0, 7.6),
    "dsmax": (0.0, 10.8),
    "expt": (0.0, 4.6),
    "b_infilt": (0.0, 1.0),
    "ws": (0.0, 1.0),
}

#: Network sizes of the paper (§4.2, DAS-S8). Feed-forward widths of the transformers
#: are not stated; 2 x d_model is used.
PAPER_SIZES = {
    "ffn_a": {"hidden_size": 256, "num_layers": 2},
    "lstm_z": {"hidden_size": 256},
    "paraformer_a": {"d_model": 128, "num_heads": 4, "num_layers": 2, "mlp_dim": 256},
    "paraformer_z": {"d_model": 256, "num_heads": 8, "num_layers": 2, "mlp_dim": 512},
}
NETWORKS = tuple(PAPER_SIZES)
HISTORY_NETWORKS = ("lstm_z", "paraformer_z")
PAPER_HISTORY_DAYS = 240


# ----------------------------------------------------------------------------------------
# Parameter networks
# ----------------------------------------------------------------------------------------


class ParameterNetwork(nn.Module):
    """One of :data:`NETWORKS` -> ``[batch, num_params]`` unconstrained values.

    Attributes:
        kind: ``"ffn_a"``, ``"lstm_z"``, ``"paraformer_a"`` or ``"paraformer_z"``.
        num_params: p, number of outputs.
        sizes: overrides of :data:`PAPER_SIZES` as ``((name, value), ...)``.
        dropout_rate: dropout inside the network (training only).
    """

    kind: str
    num_params: int
    sizes: tuple = ()
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(
        self,
        attributes: Array,
        history: Array | None = None,
        history_mask: Array | None = None,
        *,
        deterministic: bool = True,
    ) -> Array:
        """``attributes`` [batch, n_attributes] (standardised), ``history``
        [batch, H, features] (standardised forcing + observations), ``history_mask``
        [batch, H] (True = valid step)."""
        if self.kind not in PAPER_SIZES:
            raise ValueError(f"network kind must be one of {NETWORKS}, got {self.kind!r}")
        cfg = {**PAPER_SIZES[self.kind], **dict(self.sizes)}
        if self.kind in HISTORY_NETWORKS and history is None:
            raise ValueError(f"network {self.kind!r} needs a history [batch, H, features]")
        if self.kind == "ffn_a":
            hidden = (cfg["hidden_size"],) * cfg["num_layers"]
            return MLP(hidden, self.num_params, dropout_rate=self.dropout_rate, name="ffn")(
                attributes, deterministic=deterministic
            )
        if self.kind == "paraformer_a":
            return ParaFormerA(self.num_params, dropout_rate=self.dropout_rate, name="paraformer", **cfg)(
                attributes, deterministic=deterministic
            )
        if self.kind == "paraformer_z":
            return ParaFormerZ(self.num_params, dropout_rate=self.dropout_rate, name="paraformer", **cfg)(
                history, history_mask, attributes, deterministic=deterministic
            )
        # lstm_z: padded steps are zeroed (an LSTM still counts them as steps)
        x = history if history_mask is None else jnp.where(history_mask[..., None], history, 0.0)
        a = jnp.broadcast_to(attributes[:, None, :], x.shape[:2] + attributes.shape[-1:])
        return LSTM(cfg["hidden_size"], output_size=self.num_params, dropout_rate=self.dropout_rate,
                    return_sequences=False, name="lstm")(jnp.concatenate([x, a], -1), deterministic=deterministic)


def parameter_box(model: ProcessModel) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``, each ``[p]``: the boxes of ``model.param_spec`` flattened over
    event shapes, in the order the networks emit them."""
    low, high = [], []
    for name, spec in model.param_spec.items():
        n = math.prod(model.param_event_shape(name))
        low += [spec.low] * n
        high += [spec.high] * n
    return np.asarray(low, np.float32), np.asarray(high, np.float32)


def _split(flat: Array, model: ProcessModel) -> dict[str, Array]:
    """``[batch, p]`` -> name -> ``[batch, *event]``."""
    out, i = {}, 0
    for name in model.param_spec:
        shape = model.param_event_shape(name)
        n = math.prod(shape)
        out[name] = flat[:, i : i + n].reshape(flat.shape[:1] + shape)
        i += n
    return out


# ----------------------------------------------------------------------------------------
# Surrogate
# ----------------------------------------------------------------------------------------


class StreamflowSurrogate(nn.Module):
    """LSTM emulator: ``[batch, time, forcing + parameters]`` -> ``[batch, time]`` >= 0
    (output in units of the training scale; :class:`FrozenSurrogate` multiplies it back)."""

    hidden_size: int = 128

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        y = LSTM(self.hidden_size, output_size=1, name="lstm")(inputs)
        return jax.nn.softplus(y[..., 0])


@dataclasses.dataclass(frozen=True, eq=False)
class FrozenSurrogate:
    """A trained :class:`StreamflowSurrogate` with fixed weights (gradients pass through
    it to the parameters, never into its weights).

    Attributes:
        network: the Flax module.
        variables: its trained variables (held under ``stop_gradient``).
        forcing_names: forcing it reads, in order.
        forcing_mean, forcing_std: standardisation of each forcing (physical units).
        output_scale: streamflow scale (mm d-1) of the network output.
        output: name of the emulated model output.
    """

    network: StreamflowSurrogate
    variables: Any
    forcing_names: tuple[str, ...]
    forcing_mean: tuple[float, ...]
    forcing_std: tuple[float, ...]
    output_scale: float
    output: str = "streamflow"

    def features(self, forcing: Mapping[str, Array], unit_params: Array) -> Array:
        """``[batch, time, n_forcing + p]``: standardised forcing and parameters in [0, 1]."""
        x = [(jnp.asarray(forcing[k]) - m) / s for k, m, s in zip(self.forcing_names, self.forcing_mean, self.forcing_std)]
        x = jnp.stack(x, axis=-1)
        u = jnp.broadcast_to(unit_params[:, None, :], x.shape[:2] + unit_params.shape[-1:])
        return jnp.concatenate([x, u], axis=-1)

    def __call__(self, forcing: Mapping[str, Array], unit_params: Array) -> Array:
        """Forcing name -> ``[batch, time]`` (physical units), ``unit_params`` ``[batch, p]``
        = (θ − low)/(high − low) -> emulated ``output`` ``[batch, time]`` (mm d-1)."""
        variables = jax.lax.stop_gradient(self.variables)
        return self.output_scale * self.network.apply(variables, self.features(forcing, unit_params))


def _forcing_stats(data: BasinData, names: Sequence[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = [], []
    for k in names:
        a = np.asarray(data.forcing[k], np.float64)
        mean.append(float(a.mean()))
        std.append(float(a.std()) or 1.0)
    return tuple(mean), tuple(std)


def _simulate_windows(model: ProcessModel, params: Mapping[str, Array], forcing: Mapping[str, Array]) -> dict:
    """Batch-major wrapper of :func:`simulate`: forcing ``[B, T]`` -> outputs ``[B, T]``."""
    tm = {k: jnp.moveaxis(jnp.asarray(forcing[k]), 1, 0) for k in model.forcing_names}
    out = simulate(model, params, tm, check=False)[1]
    return {k: jnp.moveaxis(v, 0, 1) for k, v in out.items()}


def train_surrogate(
    model: ProcessModel,
    data: BasinData,
    *,
    steps: int = 2000,
    batch_size: int = 64,
    hidden_size: int = 128,
    learning_rate: float = 3e-3,
    output: str = "streamflow",
    validation_samples: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> tuple[FrozenSurrogate, dict[str, Any]]:
    """Train an LSTM surrogate of ``model`` on simulations over random parameters.

    Each step draws ``batch_size`` forcing windows of ``data`` (real forcing of the
    training basins and period) and parameters uniform in the boxes, simulates ``model``
    from its default initial state and fits the surrogate by MSE on the days after
    ``data.warmup`` (the days the parameter-learning loss scores).

    Returns:
        ``(surrogate, info)``; ``info`` has ``seconds`` (wall clock, compile included),
        ``history`` (loss per step), ``validation_nse`` ``[validation_samples]`` (NSE of
        the surrogate vs the model on fresh random parameters and windows) and
        ``model_runs`` (simulated windows).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    t0 = time.perf_counter()
    names = tuple(model.forcing_names)
    low, high = (jnp.asarray(b) for b in parameter_box(model))
    sampler = make_sampler(data, batch_size)
    warm = data.warmup

    def draw(key):
        k1, k2 = jax.random.split(key)
        batch = sampler(k1)
        u = jax.random.uniform(k2, (batch_size, low.shape[0]))
        target = _simulate_windows(model, _split(low + (high - low) * u, model), batch.forcing)[output]
        return batch.forcing, u, target

    key = jax.random.PRNGKey(seed)
    pilot = jax.jit(draw)(jax.random.fold_in(key, -1 % (2**31)))[2][:, warm:]
    scale = float(jnp.std(pilot)) or 1.0
    mean, std = _forcing_stats(data, names)
    network = StreamflowSurrogate(hidden_size)
    frozen = FrozenSurrogate(network, None, names, mean, std, scale, output)
    n_in = len(names) + low.shape[0]
    variables = network.init(key, jnp.zeros((1, 2, n_in)))
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05)))
    opt_state = tx.init(variables)

    @jax.jit
    def step(variables, opt_state, key):
        forcing, u, target = draw(key)
        x = frozen.features(forcing, u)

        def loss(v):
            return jnp.mean((network.apply(v, x)[:, warm:] - target[:, warm:] / scale) ** 2)

        value, grads = jax.value_and_grad(loss)(variables)
        updates, opt_state = tx.update(grads, opt_state, variables)
        return optax.apply_updates(variables, updates), opt_state, value

    history = np.empty(steps)
    bar = tqdm(range(steps), desc="surrogate", disable=not progress, leave=False)
    for i in bar:
        variables, opt_state, value = step(variables, opt_state, jax.random.fold_in(key, i))
        history[i] = float(value)
        if i % 50 == 0:
            bar.set_postfix(loss=f"{history[i]:.4f}")
    frozen = dataclasses.replace(frozen, variables=variables)

    val_draw = jax.jit(draw)
    nse = []
    for j in range(max(validation_samples // batch_size, 1)):
        forcing, u, target = val_draw(jax.random.fold_in(jax.random.PRNGKey(seed + 1), j))
        emulated = frozen(forcing, u)
        nse.append(np.asarray(metrics.nse(emulated[:, warm:], target[:, warm:], axis=1)))
    seconds = time.perf_counter() - t0
    return frozen, {"seconds": seconds, "history": history, "validation_nse": np.concatenate(nse),
                    "model_runs": (steps + 1) * batch_size}


# ----------------------------------------------------------------------------------------
# The parameter-learning model
# ----------------------------------------------------------------------------------------


class ParameterLearner(nn.Module):
    """Network -> physical parameters -> process model (or frozen surrogate) -> outputs.

    Called as ``learner(batch, deterministic=...)`` with a
    :class:`~difhydro.data.batching.Batch` (or a mapping with its fields), so the
    :class:`~difhydro.train.Trainer` trains it.

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
        low, high = (jnp.asarray(b) for b in parameter_box(self.model))
        raw = ParameterNetwork(self.network, low.shape[0], self.sizes, self.dropout_rate, name="network")(
            attributes, history, mask, deterministic=deterministic
        )
        if self.squash:
            theta = low + (high - low) * jax.nn.sigmoid(raw)
            used = theta
        else:
            theta = low + (high - low) * (raw + 0.5)
            used = jnp.clip(theta, low, high)
        params = _split(used, self.model)
        if self.surrogate is None:
            out = _simulate_windows(self.model, params, forcing)
        else:
            unit = (used - low) / (high - low)
            out = {self.surrogate.output: self.surrogate(forcing, unit)}
        out["params"] = params
        out["unsquashed_params"] = theta
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
    low, high = parameter_box(model) if bounds is None else bounds
    low, high = jnp.asarray(low), jnp.asarray(high)

    def loss(pred, batch, context):
        value = losses.rmse(pred[output], field(batch, "target"), field(batch, "mask"))
        return value + rbl_weight * losses.range_boundary_loss(pred["unsquashed_params"], low, high)

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
    """Train ``learner`` with the :class:`~difhydro.train.Trainer` for ``steps`` steps
    (split into ``epochs``; cosine schedule; loss default :func:`paraformer_loss`).

    Returns the Trainer's result plus ``seconds`` (wall clock, compile included) and
    ``losses`` (mean training loss per epoch).
    """
    from .train import TrainConfig, Trainer

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


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------


def predict(learner: ParameterLearner, params, data: BasinData, chunk: int = 32) -> tuple[dict, Batch]:
    """Run ``learner`` over every basin's whole period of ``data`` (chunks of basins).

    Returns ``(outputs, batch)``: outputs name -> ``[basin, time]`` numpy arrays, plus
    ``params`` name -> ``[basin]``; ``batch`` is the full-period batch (target, mask).
    """
    check_leakage(learner, data)
    full = full_period_batch(data)
    apply = jax.jit(lambda p, b: learner.apply({"params": p}, b))
    parts = []
    for lo in range(0, full.target.shape[0], chunk):
        sub = jax.tree.map(lambda x: x[lo : lo + chunk], full)
        parts.append(jax.tree.map(np.asarray, apply(params, sub)))
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k not in ("params",)}
    out["params"] = {k: np.concatenate([p["params"][k] for p in parts]) for k in parts[0]["params"]}
    return out, full


def simulate_batch(model: ProcessModel, params: Mapping[str, Any], batch: Batch) -> dict[str, np.ndarray]:
    """Simulate ``model`` over a full-period batch with per-basin ``params`` (name ->
    ``[basin]``) from the default initial state: outputs ``[basin, time]`` (numpy)."""
    run = jax.jit(lambda p, f: _simulate_windows(model, p, f))
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    return jax.tree.map(np.asarray, run(params, batch.forcing))


def score(simulated: np.ndarray, observed: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-basin RMSE, PCC and NSE (the paper's Table 2 metrics) over the masked days;
    ``simulated``, ``observed``, ``mask`` ``[basin, time]``."""
    obs = np.where(np.asarray(mask), np.asarray(observed, np.float64), np.nan)
    sim = np.asarray(simulated, np.float64)
    return {
        "rmse": np.asarray(metrics.rmse(sim, obs, axis=1)),
        "pcc": np.asarray(metrics.pearson_r(sim, obs, axis=1)),
        "nse": np.asarray(metrics.nse(sim, obs, axis=1)),
    }


def neighbour_split(coords: np.ndarray, n_holdout: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split basins into gauged and neighbouring held-out basins (DAS-S8 / DAS-S8NG).

    Greedy: walk the basins in order; an unassigned basin becomes gauged and its nearest
    unassigned neighbour (Euclidean in ``coords`` ``[basin, d]``) held out, until
    ``n_holdout`` are held out; the rest are gauged.

    Returns ``(gauged, held_out, donor)``: index arrays, ``donor[i]`` = the gauged basin
    nearest to ``held_out[i]`` (for transferring per-basin calibrations).
    """
    coords = np.asarray(coords, np.float64)
    n = coords.shape[0]
    if not 0 < n_holdout < n:
        raise ValueError(f"n_holdout must lie in (0, {n}), got {n_holdout}")
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    role = np.zeros(n, int)  # 0 unassigned, 1 gauged, 2 held out
    for i in range(n):
        if (role == 2).sum() >= n_holdout:
            break
        if role[i]:
            continue
        role[i] = 1
        free = np.flatnonzero(role == 0)
        if free.size:
            role[free[np.argmin(dist[i, free])]] = 2
    role[role == 0] = 1
    gauged, held = np.flatnonzero(role == 1), np.flatnonzero(role == 2)
    donor = gauged[np.argmin(dist[np.ix_(held, gauged)], axis=1)]
    return gauged, held, donor


def parameter_r2(learned: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination ``1 − Σ(l − t)² / Σ(t − t̄)²`` over basins."""
    learned, true = np.asarray(learned, np.float64), np.asarray(true, np.float64)
    return float(1.0 - np.sum((learned - true) ** 2) / np.sum((true - true.mean()) ** 2))


def roughness(values: np.ndarray, coords: np.ndarray, width: float) -> float:
    """Spatial roughness of a parameter field: median over basins of
    ``|θ_i − θ_nn(i)| / width`` with nn(i) the nearest other basin in ``coords``."""
    coords = np.asarray(coords, np.float64)
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argmin(dist, axis=1)
    values = np.asarray(values, np.float64)
    return float(np.median(np.abs(values - values[nearest])) / width)
