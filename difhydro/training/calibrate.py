"""Classical calibration baselines: per-basin gradient descent (optax) and SCE-UA (spotpy).

Both calibrate any :class:`~difhydro.physics.ProcessModel` against observed streamflow
(or any other output) one basin at a time in the statistical sense: every basin has its
own parameters. The gradient route treats all basins of a batch at once in one
jit-compiled step, because basins do not interact and Adam's update is elementwise.
Arrays are basin-first like the rest of the public surface: forcing and observations
``[basin, time]``, parameters ``[basin]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ..hybrid.layer import run_physics
from ..physics.base import Array, ProcessModel
from . import metrics

__all__ = ["CalibrationResult", "nse_loss", "gradient_calibration", "sceua_calibration"]


@dataclasses.dataclass
class CalibrationResult:
    """Calibrated physical parameters (name -> ``[*batch]``) and the loss history."""

    params: dict[str, np.ndarray]
    history: np.ndarray
    model_runs: int


def nse_loss(simulated: Array, observed: Array) -> Array:
    """Sum over basins of ``1 − NSE`` (``[basin, time]``, NaN observations ignored)."""
    return jnp.sum(1.0 - metrics.nse(simulated, observed))


def _check_observed(observed, shape, output):
    observed = np.asarray(observed, dtype=np.float32)
    if observed.shape != tuple(shape):
        raise ValueError(f"observed {output!r} has shape {observed.shape}, forcing gives {tuple(shape)} [basin, time]")
    return observed


def gradient_calibration(
    model: ProcessModel,
    forcing: Mapping[str, Array],
    observed: Array,
    *,
    output: str = "streamflow",
    warmup_days: int = 365,
    steps: int = 600,
    learning_rate: float = 0.05,
    loss: Callable[[Array, Array], Array] = nse_loss,
    init: Mapping[str, Array] | None = None,
    fixed: Mapping[str, Array] | None = None,
    state0: Mapping[str, Array] | None = None,
    progress: bool = True,
) -> CalibrationResult:
    """Calibrate ``model`` per basin by Adam on unconstrained parameters.

    Parameters are optimised as raw values mapped into their boxes with
    ``ParamSpec.to_physical``, so every iterate is physical.

    Args:
        model: process model.
        forcing: name -> ``[basin, time]`` (units of ``model.forcing_names``).
        observed: ``[basin, time]`` observations of ``output``; NaN = missing.
        output: which model output to fit.
        warmup_days: leading days excluded from the loss (spin-up of the stores).
        steps: optimiser steps (one model run forward + backward each).
        learning_rate: Adam step size on the raw (logit) scale.
        loss: ``loss(simulated, observed) -> scalar`` summed over basins.
        init: physical starting values (default: each ``ParamSpec.typical``).
        fixed: parameters held at the given physical values (not calibrated).
        state0: initial state (default: the model's).
        progress: show a tqdm progress bar.

    Returns:
        the best iterate's physical parameters (name -> ``[basin, *event]``) and the loss
        history.
    """
    missing = [k for k in model.forcing_names if k not in forcing]
    if missing:
        raise ValueError(f"{type(model).__name__} needs forcing {missing}; got {sorted(forcing)}")
    forcing = {k: jnp.asarray(forcing[k], jnp.float32) for k in model.forcing_names}
    first = next(iter(forcing.values()))
    if first.ndim != 2:
        raise ValueError(f"forcing must be [basin, time], got shape {first.shape}")
    n_basins, n_time = first.shape
    observed = jnp.asarray(_check_observed(observed, first.shape, output))
    if warmup_days >= n_time:
        raise ValueError(f"warmup_days={warmup_days} leaves no days of {n_time} to calibrate on")
    fixed = dict(fixed or {})
    free = [k for k in model.param_spec if k not in fixed]
    start = model.default_params((n_basins,))
    if init:
        start.update({k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), start[k].shape) for k, v in init.items()})
    raw = {k: model.param_spec[k].from_physical(start[k]) for k in free}
    run_physics(model, {**start, **fixed}, forcing, state0, check=True)  # validates inputs, outside jit

    def objective(raw):
        params = {k: model.param_spec[k].to_physical(v) for k, v in raw.items()}
        out = run_physics(model, {**params, **fixed}, forcing, state0)
        return loss(out[output][:, warmup_days:], observed[:, warmup_days:])

    optimiser = optax.adam(learning_rate)
    opt_state = optimiser.init(raw)

    @jax.jit
    def update(raw, opt_state):
        value, grads = jax.value_and_grad(objective)(raw)
        updates, opt_state = optimiser.update(grads, opt_state, raw)
        return optax.apply_updates(raw, updates), opt_state, value

    history = np.empty(steps, dtype=np.float64)
    best, best_raw = np.inf, raw
    bar = tqdm(range(steps), desc=f"calibrating {type(model).__name__}", disable=not progress)
    for i in bar:
        new_raw, opt_state, value = update(raw, opt_state)
        history[i] = float(value)
        if history[i] < best:  # value belongs to `raw`, the iterate before the update
            best, best_raw = history[i], raw
        raw = new_raw
        if i % 20 == 0:
            bar.set_postfix(loss=f"{history[i]:.4f}")
    params = {k: np.asarray(model.param_spec[k].to_physical(v)) for k, v in best_raw.items()}
    params.update({k: np.asarray(v) for k, v in fixed.items()})
    return CalibrationResult(params=params, history=history, model_runs=steps)


class _SpotpySetup:
    """spotpy's setup protocol around one basin of a difhydro process model."""

    def __init__(self, model, forcing, observed, output, warmup_days, state0):
        import spotpy

        self.model, self.output, self.warmup = model, output, warmup_days
        self.names = list(model.param_spec)
        self.params = [spotpy.parameter.Uniform(k, s.low, s.high, optguess=s.typical) for k, s in model.param_spec.items()]
        self.observed = np.asarray(observed, np.float64)[warmup_days:]
        self.valid = ~np.isnan(self.observed)
        forcing = {k: jnp.asarray(v, jnp.float32)[None] for k, v in forcing.items()}  # one basin
        state0 = None if state0 is None else {k: jnp.asarray(v)[None] for k, v in state0.items()}
        self._run = jax.jit(lambda p: run_physics(model, p, forcing, state0)[output][0, warmup_days:])

    def parameters(self):
        import spotpy

        return spotpy.parameter.generate(self.params)

    def simulation(self, vector):
        p = {k: jnp.full((1,), v, jnp.float32) for k, v in zip(self.names, vector)}
        return np.asarray(self._run(p), np.float64)

    def evaluation(self):
        return self.observed

    def objectivefunction(self, simulation, evaluation, params=None):
        s, o = np.asarray(simulation)[self.valid], evaluation[self.valid]
        return float(np.sum((s - o) ** 2) / np.sum((o - o.mean()) ** 2))  # 1 − NSE, minimised


def sceua_calibration(
    model: ProcessModel,
    forcing: Mapping[str, Array],
    observed: Array,
    *,
    output: str = "streamflow",
    warmup_days: int = 365,
    max_runs: int = 5000,
    n_complexes: int | None = None,
    seed: int = 0,
    state0: Mapping[str, Array] | None = None,
    progress: bool = True,
) -> CalibrationResult:
    """Calibrate each basin with SCE-UA (Duan et al. 1992) through ``spotpy``.

    The objective is ``1 − NSE`` on ``output`` after ``warmup_days``; the budget is
    ``max_runs`` model runs per basin (spotpy's ``repetitions``).

    Args: as :func:`gradient_calibration`; forcing and ``observed`` are ``[basin, time]``
    (or ``[time]`` for one basin).
    """
    import spotpy

    observed = np.asarray(observed, np.float64)
    single = observed.ndim == 1
    forcing = {k: np.asarray(forcing[k], np.float32) for k in model.forcing_names}
    if single:
        observed = observed[None]
        forcing = {k: v[None] for k, v in forcing.items()}
    n_basins = observed.shape[0]
    results = {k: np.empty(n_basins) for k in model.param_spec}
    history = np.empty(n_basins)
    for b in tqdm(range(n_basins), desc="SCE-UA", disable=not progress or n_basins == 1):
        s0 = None if state0 is None else {k: np.asarray(v)[b] for k, v in state0.items()}
        setup = _SpotpySetup(model, {k: v[b] for k, v in forcing.items()}, observed[b], output, warmup_days, s0)
        np.random.seed(seed + b)  # spotpy draws from numpy's global generator
        sampler = spotpy.algorithms.sceua(setup, dbformat="ram", save_sim=False, random_state=seed + b)
        ngs = n_complexes or max(2, len(setup.names))
        sampler.sample(max_runs, ngs=ngs)
        data = sampler.getdata()
        best = np.argmin(data["like1"])
        for k in model.param_spec:
            results[k][b] = data[f"par{k}"][best]
        history[b] = data["like1"][best]
    if single:
        results = {k: v[0] for k, v in results.items()}
    return CalibrationResult(params=results, history=history, model_runs=max_runs)
