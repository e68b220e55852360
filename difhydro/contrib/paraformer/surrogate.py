"""The paper's route: a frozen LSTM surrogate of the process model (Li & Lu 2023).

Li & Lu cannot differentiate VIC, so they pass θ through an LSTM trained on VIC
simulations and then frozen. :func:`train_surrogate` builds one for any
:class:`~difhydro.physics.ProcessModel`; :class:`FrozenSurrogate` carries its fixed weights.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ...data.batching import BasinData, make_sampler
from ...hybrid import ParamHead, run_physics
from ...nn import LSTM
from ...physics.base import Array, ProcessModel
from ...training import metrics

__all__ = ["StreamflowSurrogate", "FrozenSurrogate", "train_surrogate"]


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
    head = ParamHead.for_model(model)
    low, high = (jnp.asarray(b) for b in head.bounds())
    sampler = make_sampler(data, batch_size)
    warm = data.warmup

    def draw(key):
        k1, k2 = jax.random.split(key)
        batch = sampler(k1)
        u = jax.random.uniform(k2, (batch_size, low.shape[0]))
        target = run_physics(model, head.split(low + (high - low) * u), batch.forcing)[output]
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
        nse.append(np.asarray(metrics.nse(emulated[:, warm:], target[:, warm:])))
    seconds = time.perf_counter() - t0
    return frozen, {"seconds": seconds, "history": history, "validation_nse": np.concatenate(nse),
                    "model_runs": (steps + 1) * batch_size}


