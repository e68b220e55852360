"""The process-model contract, parameter boxes and the one runner, :func:`simulate`.

Every process model in :mod:`difhydro.physics` is an immutable :class:`ProcessModel`
(an ``equinox.Module``) that holds only static configuration. It declares

- ``param_spec``: ordered mapping ``name -> ParamSpec`` (the learnable parameters),
- ``forcing_names``: mapping ``name -> units`` of the forcing it reads each step,
- ``state_names`` and ``output_names``,
- ``initial_state(params) -> dict`` shaped like the batch of the parameters,
- ``step(state, forcing_t, params) -> (new_state, outputs_t)``, pure and jit-able.

:func:`simulate` runs any such model over time with ``jax.lax.scan``. A new model is a new
file; it never adds a branch here (the shape ``diffrax`` gives its solvers).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .integrate import checkpointed

Array = jax.Array
PyTree = Any

__all__ = [
    "ParamSpec",
    "ProcessModel",
    "simulate",
    "smooth_step",
    "heaviside",
    "safe_power",
    "to_physical",
    "from_physical",
    "warm_up",
    "time_slice_params",
]


# ----------------------------------------------------------------------------------------
# Smooth thresholds
# ----------------------------------------------------------------------------------------


def smooth_step(x: Array, k: float = 5.0) -> Array:
    """Smooth Heaviside ``H_k(x) = (1 + tanh(k x)) / 2``.

    ``k`` is in units of ``1/x`` (P-RNN uses k = 5 per deg C or per mm). ``H_k(0) = 0.5``.
    """
    return 0.5 * (1.0 + jnp.tanh(k * x))


def heaviside(x: Array, smooth: bool = True, k: float = 5.0) -> Array:
    """``H_k(x)`` when ``smooth`` else the hard step ``1[x > 0]`` (in the dtype of ``x``)."""
    if smooth:
        return smooth_step(x, k)
    return (x > 0).astype(jnp.result_type(x, jnp.float32))


def safe_power(base: Array, exponent: Array, floor: float = 1e-12) -> Array:
    """``max(base, floor) ** exponent``: finite value and gradient for fractional exponents.

    ``x ** a`` with ``x = 0`` and ``a < 1`` has an infinite derivative; clamping inside the
    power (the "double where" of the JAX FAQ) keeps gradients finite everywhere.
    """
    return jnp.power(jnp.maximum(base, floor), exponent)


# ----------------------------------------------------------------------------------------
# Parameter boxes
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """A physical parameter box ``[low, high]`` and the map from unconstrained values.

    Networks emit raw (unconstrained) values; ``to_physical(raw) = low + (high - low) *
    sigmoid(raw)`` maps them into the box and ``from_physical`` is its inverse.

    Attributes:
        low, high: box in physical units (``low < high``).
        units: physical units, e.g. ``"mm"`` or ``"mm d-1 degC-1"``.
        default: a typical value inside the box (the box centre if not given).
        doc: one line saying what the parameter is, with its paper symbol.
    """

    low: float
    high: float
    units: str = "-"
    default: float | None = None
    doc: str = ""

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not self.low < self.high:
            raise ValueError(f"ParamSpec needs finite low < high, got [{self.low}, {self.high}]")
        if self.default is not None and not self.low <= self.default <= self.high:
            raise ValueError(
                f"ParamSpec default {self.default} lies outside [{self.low}, {self.high}]"
            )

    @property
    def centre(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def typical(self) -> float:
        """``default`` if given, else the box centre."""
        return self.centre if self.default is None else self.default

    def to_physical(self, raw: Array) -> Array:
        """Unconstrained ``raw`` -> physical value in ``(low, high)``; any shape."""
        return self.low + (self.high - self.low) * jax.nn.sigmoid(raw)

    def from_physical(self, value: Array, eps: float = 1e-6) -> Array:
        """Physical value -> unconstrained raw value (logit), clipped ``eps`` inside the box."""
        u = (jnp.asarray(value) - self.low) / (self.high - self.low)
        u = jnp.clip(u, eps, 1.0 - eps)
        return jnp.log(u) - jnp.log1p(-u)


def to_physical(spec: Mapping[str, ParamSpec], raw: Mapping[str, Array]) -> dict[str, Array]:
    """Apply :meth:`ParamSpec.to_physical` to every entry of ``raw`` (keys of ``spec``)."""
    missing = [k for k in spec if k not in raw]
    if missing:
        raise ValueError(f"raw parameters missing keys {missing}; expected {list(spec)}")
    return {k: s.to_physical(raw[k]) for k, s in spec.items()}


def from_physical(spec: Mapping[str, ParamSpec], params: Mapping[str, Array]) -> dict[str, Array]:
    """Apply :meth:`ParamSpec.from_physical` to every entry of ``params``."""
    return {k: s.from_physical(params[k]) for k, s in spec.items()}


# ----------------------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------------------


class ProcessModel(eqx.Module):
    """Base class of process models: static configuration only, no parameters or state.

    Subclasses set the class-level ``param_spec``, ``forcing_names``, ``state_names`` and
    ``output_names`` (or override them as properties when they depend on configuration)
    and implement :meth:`initial_state` and :meth:`step`.
    """

    param_spec: ClassVar[Mapping[str, ParamSpec]] = {}
    forcing_names: ClassVar[Mapping[str, str]] = {}
    state_names: ClassVar[tuple[str, ...]] = ()
    output_names: ClassVar[tuple[str, ...]] = ()
    #: whether :func:`simulate` wraps each step in ``jax.checkpoint`` unless told otherwise.
    #: The rule: checkpoint unless it is measurably slower (> 10 %) for forward + backward
    #: over 1-10 years (a tie goes to checkpointing, for its memory); measured per model by
    #: ``benchmarks/speed_physics_defaults.py`` (``docs/speed.md``, ``docs/physics.md`` §0).
    default_checkpoint: ClassVar[bool] = False

    def param_event_shape(self, name: str) -> tuple[int, ...]:
        """Trailing shape of one parameter for one basin (``()`` for scalars).

        Models with layered or multi-component parameters (Richards per layer, HBV
        components) override this; :func:`simulate` uses it to tell batch from event axes.
        """
        return ()

    @abc.abstractmethod
    def initial_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        """The state at the start of a run, shaped like the batch of ``params``."""

    @abc.abstractmethod
    def step(
        self, state: Mapping[str, Array], forcing: Mapping[str, Array], params: Mapping[str, Array]
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Advance one forcing interval: ``(new_state, outputs)``; pure and jit-able."""

    def default_params(self, batch_shape: tuple[int, ...] = ()) -> dict[str, Array]:
        """Typical parameter values (``ParamSpec.typical``) broadcast to ``batch_shape``."""
        return {
            k: jnp.full(batch_shape + self.param_event_shape(k), s.typical, dtype=jnp.float32)
            for k, s in self.param_spec.items()
        }


# ----------------------------------------------------------------------------------------
# Validation (outside jit only: traced values cannot be inspected)
# ----------------------------------------------------------------------------------------


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_float(x, name: str) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


#: missing-value codes of hydrological data files, never valid forcing
_SENTINELS = (-999.0, -9999.0)


def _describe(entry) -> str:
    """Units of a forcing, or the box of a parameter."""
    return entry if isinstance(entry, str) else f"[{entry.low:g}, {entry.high:g}] {entry.units}"


def _require(model: ProcessModel, given, expected: Mapping, what: str, shape: str) -> None:
    """TypeError unless ``given`` is a mapping; ValueError naming the keys of ``expected``
    (with their units or boxes) that it lacks."""
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a mapping name -> {shape} array, got {type(given)}")
    missing = [k for k in expected if k not in given]
    if missing:
        raise ValueError(
            f"{type(model).__name__} needs {what} {missing} ({ {k: _describe(expected[k]) for k in missing} }); "
            f"got keys {sorted(given)}"
        )


#: forcing that is a non-negative flux by definition (a negative value is a data error:
#: a sign convention, a sentinel, or ERA5-Land's condensation days left unclipped)
_NON_NEGATIVE = ("precipitation", "pet", "potential_transpiration")
#: a temperature series whose median exceeds this is in Kelvin, not degC (the warmest
#: basin-mean daily temperatures on Earth stay below 50 degC; 200 K is -73 degC)
KELVIN_MEDIAN = 200.0


def _check_forcing_values(model: ProcessModel, arrays: Mapping[str, Array]) -> None:
    """ValueError (one line naming the forcing) for NaN, +-inf, sentinel codes, negative
    precipitation / PET and temperatures in Kelvin. Concrete (non-traced) arrays only."""
    for k, a in arrays.items():
        if not _is_concrete(a):
            continue
        a_np = np.asarray(a)
        if np.isnan(a_np).any():
            n = int(np.isnan(a_np).sum())
            raise ValueError(f"forcing '{k}' contains {n} NaN value(s); fill or drop the gaps first")
        if np.isinf(a_np).any():
            raise ValueError(f"forcing '{k}' contains {int(np.isinf(a_np).sum())} infinite value(s)")
        if np.isin(a_np, _SENTINELS).any():
            raise ValueError(f"forcing '{k}' contains {_SENTINELS} (missing-value codes); fill or drop the gaps")
        units = model.forcing_names.get(k, "")
        if k in _NON_NEGATIVE and a_np.size and a_np.min() < 0:
            neg = a_np < 0
            raise ValueError(
                f"forcing '{k}' ({units}) has {int(neg.sum())} negative value(s) (min {a_np.min():g}); a {k} flux "
                "cannot be negative: fix the sign or units, or clip it (validation Policy(clip=(0, None)))"
            )
        if units == "degC" and a_np.size:
            median = np.median(a_np, axis=0)  # per basin: one series in Kelvin among many is caught
            kelvin = median > KELVIN_MEDIAN
            if np.any(kelvin):
                raise ValueError(
                    f"forcing '{k}' looks like Kelvin, not degC, in {int(np.sum(kelvin))} of {kelvin.size} series "
                    f"(median over time up to {float(np.max(median)):.1f} > {KELVIN_MEDIAN:g}); convert with T - 273.15"
                )


def _check_forcing(model: ProcessModel, forcing: Mapping[str, Array], check: bool = True):
    """Keys and shapes (always: the scan needs them); values when ``check`` (outside jit)."""
    _require(model, forcing, model.forcing_names, "forcing", "[time, *batch]")
    arrays = {k: _as_float(forcing[k], k) for k in model.forcing_names}
    shapes = {k: a.shape for k, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) == 0:
        raise ValueError(f"forcing must be shaped [time, *batch]; got scalar shapes {shapes}")
    if any(s != first for s in shapes.values()):
        raise ValueError(f"forcing arrays must share one [time, *batch] shape, got {shapes}")
    if check:
        _check_forcing_values(model, arrays)
    return arrays, first[0], first[1:]


def _time_axis_names(model: ProcessModel, params: Mapping[str, Array], batch_ndim: int) -> tuple[str, ...]:
    """Parameters whose arrays carry a leading time axis (one more dimension than
    ``[*batch, *event]``): the shape-based reading used when no names are given."""
    return tuple(
        k for k in model.param_spec
        if k in params and jnp.ndim(params[k]) == batch_ndim + len(model.param_event_shape(k)) + 1
    )


def _split_params(
    model: ProcessModel,
    params: Mapping[str, Array],
    n_time: int,
    batch: tuple[int, ...],
    check: bool,
    time_varying: Collection[str] | None,
):
    _require(model, params, model.param_spec, "parameters", "[*batch, *event]")
    unknown = [k for k in params if k not in model.param_spec]
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for {type(model).__name__}; "
            f"expected {list(model.param_spec)}"
        )
    if time_varying is not None:
        not_params = [k for k in time_varying if k not in model.param_spec]
        if not_params:
            raise ValueError(
                f"time_varying names {not_params} are not parameters of {type(model).__name__}: "
                f"{list(model.param_spec)}"
            )
    shaped = _time_axis_names(model, params, len(batch))
    static, dynamic = {}, {}
    for k, spec in model.param_spec.items():
        p = _as_float(params[k], k)
        full = batch + model.param_event_shape(k)
        has_time = k in shaped
        if time_varying is not None and (k in time_varying) != has_time:
            listed = "is listed" if k in time_varying else "is not listed"
            raise ValueError(
                f"parameter '{k}' {listed} in time_varying but has shape {p.shape}; a static "
                f"parameter is {full}, a time-varying one {(n_time,) + full}"
            )
        if has_time and p.shape[0] != n_time:
            raise ValueError(
                f"time-varying parameter '{k}' has {p.shape[0]} time steps, forcing has {n_time}"
            )
        target = (n_time,) + full if has_time else full
        try:
            bshape = jnp.broadcast_shapes(p.shape, target)
        except ValueError:
            bshape = None
        if bshape != target:
            raise ValueError(
                f"parameter '{k}' has shape {p.shape}; expected a shape broadcastable to "
                f"{full} (static) or {(n_time,) + full} (time-varying) for forcing batch {batch}"
            )
        if check and _is_concrete(p):
            p_np = np.asarray(p)
            if np.isnan(p_np).any():
                raise ValueError(f"parameter '{k}' contains NaN")
            tol = 1e-6 * (spec.high - spec.low)
            lo, hi = float(p_np.min()), float(p_np.max())
            if lo < spec.low - tol or hi > spec.high + tol:
                raise ValueError(
                    f"parameter '{k}' = [{lo:g}, {hi:g}] {spec.units} lies outside its box "
                    f"[{spec.low:g}, {spec.high:g}] ({spec.doc}); use ParamSpec.to_physical "
                    f"or pass check=False"
                )
        (dynamic if has_time else static)[k] = jnp.broadcast_to(p, target)
    return static, dynamic


# ----------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------


def simulate(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    state0: Mapping[str, Array] | None = None,
    *,
    time_varying: Collection[str] | None = None,
    check: bool = True,
    checkpoint: bool | None = None,
    unroll: int = 1,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Run ``model`` over time with ``jax.lax.scan``.

    Args:
        model: any :class:`ProcessModel`.
        params: name -> array in physical units, shaped ``[*batch, *event]`` (static) or
            ``[time, *batch, *event]`` (time-varying); scalars broadcast over the batch.
        forcing: name -> array shaped ``[time, *batch]`` in the units of
            ``model.forcing_names``.
        state0: initial state (name -> ``[*batch, ...]``); ``model.initial_state(params)``
            if ``None``.
        time_varying: names of the time-varying parameters. Given (as every layer of
            :mod:`difhydro.hybrid` does), a parameter's shape must agree with the list;
            ``None`` takes the leading time axis from the shape (direct, interactive use).
        check: check the values: NaN, +-inf and -999 / -9999 in forcing, negative
            precipitation / PET, temperatures in Kelvin (median above 200) and parameter
            boxes. They run only on concrete arrays (outside ``jit``: traced values are
            skipped at no cost); ``check=False`` skips them all (no host transfer). Keys and
            shapes are always checked (the scan needs them).
        checkpoint: wrap each step in ``jax.checkpoint`` (bounded memory for long series at
            the price of recomputation in the backward pass); ``None`` takes the model's
            :attr:`~ProcessModel.default_checkpoint`.
        unroll: ``lax.scan`` unroll factor.

    Returns:
        ``(final_state, outputs)``; ``outputs`` holds every output and every (updated) state
        as a ``[time, *batch, ...]`` series.

    Raises:
        ValueError: missing forcing or parameter keys, mismatched shapes; with ``check``
            and outside ``jit``: NaN, +-inf or -999 in forcing, negative precipitation or
            PET, Kelvin temperatures, parameters outside their box (one line naming the
            forcing or parameter).
    """
    forcing, n_time, batch = _check_forcing(model, forcing, check)
    static, dynamic = _split_params(model, params, n_time, batch, check, time_varying)
    # one floating dtype for forcing, parameters and states (the scan carry must not change)
    dtype = jnp.result_type(*forcing.values(), *static.values(), *dynamic.values())
    cast = lambda tree: {k: v.astype(dtype) for k, v in tree.items()}  # noqa: E731
    forcing, static, dynamic = cast(forcing), cast(static), cast(dynamic)
    first = {**static, **{k: v[0] for k, v in dynamic.items()}}
    template = model.initial_state(first)
    if state0 is None:
        state0 = template
    else:
        missing = [k for k in model.state_names if k not in state0]
        if missing:
            raise ValueError(f"state0 is missing states {missing} of {type(model).__name__}")
        state0 = {k: _as_float(state0[k], k) for k in model.state_names}
        try:  # scalars and per-basin values broadcast to the state's full shape
            state0 = {k: jnp.broadcast_to(v, template[k].shape).astype(template[k].dtype) for k, v in state0.items()}
        except ValueError:
            shapes = {k: (jnp.shape(state0[k]), template[k].shape) for k in state0}
            raise ValueError(f"state0 shapes (given, expected) do not broadcast: {shapes}") from None

    def body(state, xs):
        forcing_t, dynamic_t = xs
        new_state, outputs = model.step(state, forcing_t, {**static, **dynamic_t})
        return new_state, {**outputs, **new_state}

    body = checkpointed(body, model.default_checkpoint if checkpoint is None else checkpoint)
    final_state, outputs = jax.lax.scan(body, state0, (forcing, dynamic), unroll=unroll)
    return final_state, outputs


def time_slice_params(params: Mapping[str, Array], time_varying: Collection[str], start: int, stop: int):
    """Days ``start:stop`` of the parameters named in ``time_varying`` (time-first arrays);
    the others pass through unchanged."""
    return {k: (v[start:stop] if k in time_varying else v) for k, v in params.items()}


def warm_up(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    days: int = 365,
    state0: Mapping[str, Array] | None = None,
    *,
    time_varying: Collection[str] | None = None,
    return_outputs: bool = False,
    check: bool = True,
):
    """Spin the states up on the first ``days`` of ``forcing`` without gradients (δHBV).

    Runs :func:`simulate` on ``forcing[:days]`` (and the first ``days`` of the parameters
    named in ``time_varying``) with every input under ``jax.lax.stop_gradient``.

    Args:
        model: any process model.
        params: as for :func:`simulate`.
        forcing: name -> ``[time, *batch]`` with ``time >= days``.
        days: warm-up length (d).
        state0: start of the warm-up; the model's initial state if ``None``.
        time_varying: names of the time-varying parameters (time-first arrays); ``None``
            takes them from the shapes, as :func:`simulate` does.
        return_outputs: also return the warm-up's outputs (``[days, *batch, ...]``).
        check: check the warm-up days' forcing values as :func:`simulate` does (outside
            ``jit`` only); parameters are not checked here (the run that follows does).

    Returns:
        the state after ``days`` steps (each ``[*batch, ...]``, carrying no gradient), to
        pass as ``state0`` to a run over ``forcing[days:]``; with ``return_outputs`` the
        pair ``(state, outputs)``.
    """
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive int, got {days!r}")
    forcing = {k: v for k, v in forcing.items() if k in model.forcing_names}
    n_time = jnp.shape(next(iter(forcing.values())))[0] if forcing else None
    if n_time is not None and days > n_time:
        raise ValueError(f"days = {days} exceeds the forcing length ({n_time} steps)")
    forcing_w = {k: v[:days] for k, v in forcing.items()}
    if check:
        _check_forcing_values(model, {k: _as_float(v, k) for k, v in forcing_w.items()})
    if time_varying is None:
        batch_ndim = jnp.ndim(next(iter(forcing_w.values()))) - 1
        time_varying = _time_axis_names(model, params, batch_ndim)
    sg = jax.lax.stop_gradient
    params_w = jax.tree.map(sg, time_slice_params(params, time_varying, 0, days))
    state0 = None if state0 is None else jax.tree.map(sg, dict(state0))
    final, outputs = simulate(model, params_w, jax.tree.map(sg, forcing_w), state0,
                              time_varying=time_varying, check=False)
    final = jax.tree.map(sg, final)
    return (final, jax.tree.map(sg, outputs)) if return_outputs else final
