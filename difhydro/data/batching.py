"""From a ``(basin, time)`` Dataset to training batches for a jit-compiled step.

1. :func:`fit_normalization` computes means and standard deviations on the training
   period and training basins only (:class:`NormStats`, saved to / loaded from JSON so
   that they travel with a checkpoint).
2. :func:`make_basin_data` cuts one period out of the Dataset, standardises network
   inputs and static attributes with those statistics and moves everything to the device
   once, together with the list of admissible windows.
3. :func:`sample_batch` (jit-able) draws random ``(basin, start)`` windows of ``window``
   days with ``jax.random`` and gathers them with ``lax.dynamic_slice``; the first
   ``warmup`` days of each window spin up the physics and are excluded from the loss mask.

Layout of a :class:`Batch` (``B`` windows, ``L = window`` days), basin-first like every
array at difhydro's public surface: ``forcing`` name -> ``[B, L]`` in physical units,
``inputs`` ``[B, L, F]`` standardised, ``attributes`` ``[B, S]`` standardised, ``targets``
name -> ``[B, L]`` (0 where unobserved), ``masks`` name -> ``[B, L]`` (observed and past
the warm-up), ``static`` name -> ``[B]`` per-basin values in physical units (e.g. a soil's
van Genuchten parameters). :class:`~difhydro.hybrid.PRNN` moves the time axis to the front
for the physics.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from .._files import atomic_write_text
from .periods import CAMELS_PERIODS, resolve_period  # jax-free, re-exported here

__all__ = [
    "CAMELS_PERIODS",
    "resolve_period",
    "NormStats",
    "fit_normalization",
    "BasinData",
    "Batch",
    "make_basin_data",
    "sample_batch",
    "add_input_noise",
    "make_sampler",
    "full_period_batch",
]


def _select(ds: xr.Dataset, period, basins) -> xr.Dataset:
    start, end = resolve_period(period)
    out = ds.sel(time=slice(start, end))
    if basins is not None:
        basins = [str(b) for b in basins]
        unknown = [b for b in basins if b not in set(ds["basin"].values.tolist())]
        if unknown:
            raise ValueError(f"basins {unknown} are not in the data set")
        out = out.sel(basin=basins)
    if out.sizes["time"] == 0:
        raise ValueError(f"the data set has no days in the period {start.date()}..{end.date()}")
    return out


def _check_vars(ds: xr.Dataset, names: Sequence[str], dims: tuple[str, ...], role: str) -> None:
    for n in names:
        if n not in ds:
            raise ValueError(f"{role} variable '{n}' not in the data set; it has {sorted(ds.data_vars)}")
        if ds[n].dims != dims:
            raise ValueError(f"{role} variable '{n}' has dims {ds[n].dims}, expected {dims}")
        if not np.issubdtype(ds[n].dtype, np.number):
            raise ValueError(f"{role} variable '{n}' is not numeric (dtype {ds[n].dtype})")


# -- normalisation ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Means and standard deviations (physical units) used to standardise ``(x - mean) / std``.

    ``period`` and ``basins`` record where they were computed, so a checkpoint states its
    training data. A zero standard deviation is stored as 1 (the variable is then only
    centred).
    """

    mean: Mapping[str, float]
    std: Mapping[str, float]
    dynamic: tuple[str, ...]
    static: tuple[str, ...]
    period: tuple[str, str]
    basins: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "mean": dict(self.mean),
            "std": dict(self.std),
            "dynamic": list(self.dynamic),
            "static": list(self.static),
            "period": list(self.period),
            "basins": list(self.basins),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> NormStats:
        missing = [k for k in ("mean", "std", "dynamic", "static", "period", "basins") if k not in d]
        if missing:
            raise ValueError(f"normalisation statistics lack the key(s) {missing}")
        return cls(
            mean={k: float(v) for k, v in d["mean"].items()},
            std={k: float(v) for k, v in d["std"].items()},
            dynamic=tuple(d["dynamic"]),
            static=tuple(d["static"]),
            period=tuple(d["period"]),
            basins=tuple(d["basins"]),
        )

    def save(self, path) -> Path:
        """Write the statistics as JSON."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> NormStats:
        """Read statistics written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def standardise(self, name: str, values):
        """``(values - mean) / std`` of variable ``name`` (NumPy or JAX arrays)."""
        if name not in self.mean:
            raise ValueError(f"no normalisation statistics for '{name}'; have {sorted(self.mean)}")
        return (values - self.mean[name]) / self.std[name]


def fit_normalization(
    ds: xr.Dataset,
    dynamic: Sequence[str],
    static: Sequence[str] = (),
    period: str | tuple = "train",
    basins: Sequence[str] | None = None,
) -> NormStats:
    """Normalisation statistics from the training ``period`` and training ``basins`` only.

    Args:
        ds: Dataset with ``(basin, time)`` dynamic and ``(basin,)`` static variables.
        dynamic: names of ``(basin, time)`` variables (mean/std over all observed values
            of the training basins in the training period, NaN ignored).
        static: names of numeric ``(basin,)`` attributes (mean/std over training basins).
        period: preset name (``"train"``) or ``(start, end)``.
        basins: training basins (default: all basins of ``ds``).
    """
    sub = _select(ds, period, basins)
    _check_vars(sub, dynamic, ("basin", "time"), "dynamic")
    _check_vars(sub, static, ("basin",), "static")
    mean, std = {}, {}
    for name in list(dynamic) + list(static):
        values = np.asarray(sub[name].values, np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"variable '{name}' has no finite value in the training period and basins")
        mean[name] = float(values.mean())
        s = float(values.std())
        std[name] = s if s > 0 else 1.0
    start, end = resolve_period(period)
    return NormStats(
        mean=mean,
        std=std,
        dynamic=tuple(dynamic),
        static=tuple(static),
        period=(str(start.date()), str(end.date())),
        basins=tuple(str(b) for b in sub["basin"].values),
    )


# -- device data and sampling -------------------------------------------------------------


def _observations(targets: Mapping, masks: Mapping, name: str | None) -> np.ndarray:
    name = next(iter(targets)) if name is None else name
    return np.where(np.asarray(masks[name]), np.asarray(targets[name]), np.nan)


class BasinData(eqx.Module):
    """One period of a data set on the device, ready for :func:`sample_batch`.

    Arrays (``N`` basins, ``T`` days): ``forcing`` name -> ``[N, T]`` physical units (NaN
    replaced by 0; windows touching them are never sampled), ``inputs`` ``[N, T, F]``
    standardised, ``attributes`` ``[N, S]`` standardised (a missing attribute becomes 0, the
    training mean), ``targets`` name -> ``[N, T]`` (0 where unobserved), ``observed`` name ->
    ``[N, T]`` bool, ``static`` name -> ``[N]`` physical per-basin values,
    ``valid_windows`` ``[M]`` int32 flat indices ``basin * n_starts + start`` of the
    admissible windows. The first target is the primary one (:attr:`target`).
    """

    forcing: dict[str, jax.Array]
    inputs: jax.Array
    attributes: jax.Array
    targets: dict[str, jax.Array]
    observed: dict[str, jax.Array]
    static: dict[str, jax.Array]
    valid_windows: jax.Array
    window: int = eqx.field(static=True)
    warmup: int = eqx.field(static=True)
    basins: tuple[str, ...] = eqx.field(static=True)
    first_day: str = eqx.field(static=True)
    input_names: tuple[str, ...] = eqx.field(static=True)
    attribute_names: tuple[str, ...] = eqx.field(static=True)

    @property
    def n_starts(self) -> int:
        return self.target.shape[1] - self.window + 1

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(self.targets)

    @property
    def target(self) -> jax.Array:
        """The primary (first) target ``[N, T]``."""
        return next(iter(self.targets.values()))

    def observations(self, name: str | None = None) -> np.ndarray:
        """Target ``name`` (default: the primary one) as numpy ``[N, T]``, NaN where unobserved."""
        return _observations(self.targets, self.observed, name)


class Batch(NamedTuple):
    """A batch of ``B`` windows of ``L`` days (see the module docstring for the layout)."""

    forcing: dict[str, jax.Array]
    inputs: jax.Array
    attributes: jax.Array
    targets: dict[str, jax.Array]
    masks: dict[str, jax.Array]
    static: dict[str, jax.Array]
    basin: jax.Array
    start: jax.Array

    @property
    def target(self) -> jax.Array:
        """The primary (first) target ``[B, L]``."""
        return next(iter(self.targets.values()))

    @property
    def mask(self) -> jax.Array:
        """The mask of the primary target ``[B, L]``."""
        return next(iter(self.masks.values()))

    def observations(self, name: str | None = None) -> np.ndarray:
        """Target ``name`` (default: the primary one) as numpy, NaN outside its mask."""
        return _observations(self.targets, self.masks, name)


def make_basin_data(
    ds: xr.Dataset,
    stats: NormStats,
    period: str | tuple,
    *,
    window: int,
    warmup: int,
    forcing: Sequence[str] = ("precipitation", "temperature", "day_length"),
    inputs: Sequence[str] | None = None,
    static: Sequence[str] | None = None,
    target: str | Sequence[str] = "streamflow",
    static_fields: Sequence[str] = (),
    basins: Sequence[str] | None = None,
    min_observations: int = 1,
) -> BasinData:
    """Cut ``period`` out of ``ds``, standardise with ``stats`` and put it on the device.

    Windows lie entirely inside ``period`` (they never cross its boundary). A window is
    admissible when every ``forcing`` and ``inputs`` value in it is finite and at least
    ``min_observations`` days after the warm-up have an observation of some target.

    Args:
        ds: Dataset with ``(basin, time)`` and ``(basin,)`` variables.
        stats: statistics from :func:`fit_normalization` (training period and basins).
        period: preset name or ``(start, end)``.
        window: ``L``, days per window (including the warm-up).
        warmup: ``W``, leading days of each window that only spin up the physics.
        forcing: physical-unit forcing passed to the process model.
        inputs: standardised dynamic network inputs (default ``stats.dynamic``).
        static: standardised attributes (default ``stats.static``).
        target: observed variable(s) (NaN = missing); the first is the primary target.
        static_fields: numeric ``(basin,)`` variables kept in physical units (``Batch.static``).
        basins: subset of basins (default: all of ``ds``).
        min_observations: observed target days required after the warm-up.
    """
    if not 0 <= warmup < window:
        raise ValueError(f"need 0 <= warmup < window, got warmup={warmup}, window={window}")
    inputs = tuple(stats.dynamic if inputs is None else inputs)
    static = tuple(stats.static if static is None else static)
    targets = (target,) if isinstance(target, str) else tuple(target)
    if not targets:
        raise ValueError("make_basin_data needs at least one target variable")
    sub = _select(ds, period, basins)
    _check_vars(sub, list(forcing) + list(inputs) + list(targets), ("basin", "time"), "dynamic")
    _check_vars(sub, list(static) + list(static_fields), ("basin",), "static")
    n_basin, n_time = sub.sizes["basin"], sub.sizes["time"]
    if n_time < window:
        raise ValueError(f"the period holds {n_time} days, fewer than one window of {window}")

    def values(name):
        return np.asarray(sub[name].transpose("basin", "time").values, np.float32)

    forcing_np = {n: values(n) for n in forcing}
    inputs_np = np.stack([stats.standardise(n, values(n)) for n in inputs], axis=-1) if inputs else np.zeros((n_basin, n_time, 0), np.float32)
    static_np = np.stack([stats.standardise(n, np.asarray(sub[n].values, np.float32)) for n in static], axis=-1) if static else np.zeros((n_basin, 0), np.float32)
    targets_np = {n: values(n) for n in targets}
    observed = {n: np.isfinite(a) for n, a in targets_np.items()}

    finite = np.ones((n_basin, n_time), bool)
    for a in forcing_np.values():
        finite &= np.isfinite(a)
    if inputs_np.shape[-1]:
        finite &= np.isfinite(inputs_np).all(axis=-1)
    valid = _admissible(finite, np.any(list(observed.values()), axis=0), window, warmup, min_observations)
    if valid.size == 0:
        raise ValueError(
            f"no admissible window of {window} days (warm-up {warmup}) in the period: forcing has gaps "
            f"or fewer than {min_observations} observation(s) follow the warm-up"
        )
    return BasinData(
        forcing={n: jnp.asarray(np.nan_to_num(a, nan=0.0)) for n, a in forcing_np.items()},
        inputs=jnp.asarray(np.nan_to_num(inputs_np, nan=0.0), jnp.float32),
        attributes=jnp.asarray(np.nan_to_num(static_np, nan=0.0), jnp.float32),
        targets={n: jnp.asarray(np.nan_to_num(a, nan=0.0)) for n, a in targets_np.items()},
        observed={n: jnp.asarray(a) for n, a in observed.items()},
        static={n: jnp.asarray(np.asarray(sub[n].values, np.float32)) for n in static_fields},
        valid_windows=jnp.asarray(valid, jnp.int32),
        window=int(window),
        warmup=int(warmup),
        basins=tuple(str(b) for b in sub["basin"].values),
        first_day=str(pd.Timestamp(sub["time"].values[0]).date()),
        input_names=inputs,
        attribute_names=static,
    )


def _admissible(finite: np.ndarray, observed: np.ndarray, window: int, warmup: int, min_obs: int) -> np.ndarray:
    """Flat indices ``basin * n_starts + start`` of windows with finite forcing throughout
    and at least ``min_obs`` observations after the warm-up (prefix sums, no loops)."""
    n_basin, n_time = finite.shape
    n_starts = n_time - window + 1
    zeros = np.zeros((n_basin, 1), np.int64)
    bad = np.concatenate([zeros, np.cumsum(~finite, axis=1)], axis=1)
    obs = np.concatenate([zeros, np.cumsum(observed, axis=1)], axis=1)
    s = np.arange(n_starts)
    clean = bad[:, s + window] - bad[:, s] == 0
    enough = obs[:, s + window] - obs[:, s + warmup] >= min_obs
    b, start = np.nonzero(clean & enough)
    return (b * n_starts + start).astype(np.int64)


def _windows(array: jax.Array, basin: jax.Array, start: jax.Array, length: int) -> jax.Array:
    """``array[basin_i, start_i : start_i + length, ...]`` for every i -> ``[B, length, ...]``."""
    tail = array.shape[2:]

    def one(b, s):
        idx = (b, s) + (0,) * len(tail)
        return jax.lax.dynamic_slice(array, idx, (1, length) + tail)[0]

    return jax.vmap(one)(basin, start)


def sample_batch(key: jax.Array, data: BasinData, batch_size: int, n_valid: jax.Array | None = None) -> Batch:
    """Draw ``batch_size`` admissible windows uniformly with ``jax.random`` (jit-able;
    ``batch_size`` must be static). Returns a :class:`Batch` of ``L = data.window`` days.

    ``n_valid`` (traced) samples from the first ``n_valid`` entries of
    ``data.valid_windows`` only, so a padded list can share one compiled program.
    """
    upper = data.valid_windows.shape[0] if n_valid is None else n_valid
    pick = jax.random.randint(key, (batch_size,), 0, upper)
    flat = data.valid_windows[pick]
    basin, start = flat // data.n_starts, flat % data.n_starts
    return _gather(data, basin, start)


def add_input_noise(key: jax.Array, batch: Batch, std: float) -> Batch:
    """``batch`` with independent Gaussian noise ``N(0, std^2)`` added to every value of its
    standardised dynamic network inputs ``inputs`` ``[B, L, F]`` (``std`` is therefore in
    units of each input's training standard deviation). Forcing (physical units, what the
    process models read), attributes, targets and masks are unchanged. A regulariser of
    training batches only (``TrainConfig.input_noise``)."""
    noise = jax.random.normal(key, batch.inputs.shape, batch.inputs.dtype)
    return batch._replace(inputs=batch.inputs + jnp.asarray(std, batch.inputs.dtype) * noise)


def _gather(data: BasinData, basin: jax.Array, start: jax.Array) -> Batch:
    length = data.window
    after_warmup = jnp.arange(length) >= data.warmup
    return Batch(
        forcing={n: _windows(a, basin, start, length) for n, a in data.forcing.items()},
        inputs=_windows(data.inputs, basin, start, length),
        attributes=jnp.take(data.attributes, basin, axis=0),
        targets={n: _windows(a, basin, start, length) for n, a in data.targets.items()},
        masks={n: _windows(a, basin, start, length) & after_warmup[None, :] for n, a in data.observed.items()},
        static={n: jnp.take(a, basin, axis=0) for n, a in data.static.items()},
        basin=basin,
        start=start,
    )


def make_sampler(data: BasinData, batch_size: int):
    """``sampler(key) -> Batch``: :func:`sample_batch` jit-compiled once for ``data``.

    ``data`` is passed as an argument (not closed over), so its arrays stay device
    buffers instead of being baked into the compiled program as constants.
    """
    compiled = jax.jit(sample_batch, static_argnames="batch_size")
    return lambda key: compiled(key, data, batch_size=batch_size)


def full_period_batch(data: BasinData) -> Batch:
    """All basins over the whole period as one batch (``L = T``; for evaluation).

    The mask excludes the first ``data.warmup`` days. Forcing gaps were replaced by 0 in
    :class:`BasinData`; evaluate only basins whose forcing covers the period.
    """
    n_basin, n_time = data.target.shape
    whole = dataclasses.replace(data, window=n_time)
    basin = jnp.arange(n_basin)
    return _gather(whole, basin, jnp.zeros(n_basin, jnp.int32))
