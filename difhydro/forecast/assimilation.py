"""Variational state updating of a process model from observed streamflow (a 4D-Var).

Before a forecast is issued on day ``t`` ("today", observed flow known up to and including
``t``), the model's states at the start of the assimilation window (days
``t − N + 1 .. t``) are adjusted by a fixed number of iterations (Gauss-Newton by default;
optax's L-BFGS or Adam on request) that lower

``J(x) = Σ_{days with an observation} (T(q_sim) − T(q_obs))² / σ_o²
         + Σ_states Σ ((x − x_b) / σ_b)²``

where ``x_b`` is the background (e.g. open-loop) state at the window start, ``T`` a flow
transform (``sqrt`` by default: it weights low and high flows more evenly) and ``q_sim``
the model's streamflow over the window from ``x``. The model then runs from the analysed
state through the window and forecasts day ``t + 1`` (with that day's forcing, as in a
hindcast with known meteorology). Derivatives of the simulated flow with respect to the
states are exact (forward mode for Gauss-Newton, reverse mode for L-BFGS and Adam, through
:func:`~difhydro.hybrid.run_physics`, the one bridge to the physics); parameters stay fixed.

Optimisation is in control variables ``v`` (one per state value and basin) with
``x = x_b + softplus(z_b + σ_b v) − softplus(z_b)``, ``z_b = softplus⁻¹(max(x_b, 1e-6 mm))``:
``v = 0`` is the background exactly, a step of 1 in ``v`` moves a large storage by about
``σ_b`` (the background covariance preconditions the problem, as the control-variable
transform of operational 4D-Var), and storages cannot go below ``−1e-6`` mm. Every basin is
its own problem (``jax.vmap``); days are independent given their background, so the open-loop
variant solves batches of days at once.

Shapes are basin-first: forcing and observations ``[basin, time]``, static parameters
``[basin, *event]``, states ``[basin, *event]``. Units: flow mm d-1, storages mm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from ..hybrid.layer import run_physics
from ..physics.base import Array, ProcessModel

__all__ = [
    "Assimilation",
    "flow_misfit",
    "cost",
    "update_state",
    "forecast_from",
    "rolling_forecast",
    "open_loop",
]

_TRANSFORMS = ("sqrt", "identity", "log")
_OPTIMIZERS = ("gauss_newton", "lbfgs", "adam")
#: floor (mm) of the background in the softplus map, and offset (mm d-1) of the sqrt/log transforms
_STATE_FLOOR = 1e-6
_FLOW_OFFSET = 0.01
#: fractions of the Gauss-Newton step tried side by side (a parallel backtracking line search)
_STEP_FRACTIONS = jnp.array([1.0, 0.25])


@dataclasses.dataclass(frozen=True)
class Assimilation:
    """Settings of the variational state update (hashable: a static argument of ``jit``).

    Attributes:
        window: assimilation window N (days of observed flow ending today).
        n_steps: optimiser iterations per forecast day (fixed: the cost is known in
            advance). Gauss-Newton and L-BFGS reach the truth of the synthetic twin of the
            tests in 4-5; Adam needs far more (20 steps at rate 0.3 leave 14-49 % of the error).
            Each Gauss-Newton iteration runs the window once with a tangent per control
            and twice forward (the two trial steps).
        learning_rate: step of the optimiser in control units (multiples of ``σ_b``) for
            ``adam``; ``lbfgs`` chooses its steps by a line search.
        background_sigma: σ_b (mm), one value for every state or a tuple of
            ``(state name, σ_b)`` pairs for the updated states.
        obs_sigma: σ_o, error of one transformed observation (sqrt(mm d-1) for ``sqrt``).
        transform: ``"sqrt"`` (``√(q + 0.01)``), ``"identity"`` (``q``) or ``"log"``
            (``log(q + 0.01)``), q in mm d-1; the offset keeps the gradient finite at q = 0.
        states: names of the states updated (``None``: all of the model's); the others
            keep their background values.
        optimizer: ``"gauss_newton"`` (default: ``J`` is a sum of squares of the
            residuals ``r``; each step solves ``(JᵣᵀJᵣ + λI) Δv = −Jᵣᵀr`` with the Jacobian
            ``Jᵣ`` from forward mode, one tangent per control variable, λ = 1e-3, steps
            clipped at 3 σ_b, then the better of the full and a quarter step, tried side
            by side, is kept if it lowers ``J``; cheapest when few states are updated),
            ``"lbfgs"`` (optax, zoom line search) or ``"adam"`` (optax, ``learning_rate``).
    """

    window: int = 10
    n_steps: int = 4
    learning_rate: float = 0.3
    background_sigma: float | tuple[tuple[str, float], ...] = 100.0
    obs_sigma: float = 0.1
    transform: str = "sqrt"
    states: tuple[str, ...] | None = None
    optimizer: str = "gauss_newton"

    def __post_init__(self):
        if int(self.window) < 1:
            raise ValueError(f"assimilation window must be >= 1 day, got {self.window}")
        if int(self.n_steps) < 0:
            raise ValueError(f"assimilation n_steps must be >= 0, got {self.n_steps}")
        if self.transform not in _TRANSFORMS:
            raise ValueError(f"assimilation transform must be one of {_TRANSFORMS}, got {self.transform!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"assimilation optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if not self.obs_sigma > 0:
            raise ValueError(f"assimilation obs_sigma must be > 0, got {self.obs_sigma}")
        sigmas = dict(self.background_sigma) if isinstance(self.background_sigma, tuple) else {}
        if any(not s > 0 for s in sigmas.values()) or (not sigmas and not self.background_sigma > 0):
            raise ValueError(f"assimilation background_sigma must be > 0, got {self.background_sigma}")

    def updated(self, model: ProcessModel) -> tuple[str, ...]:
        """The names of the states this update changes, checked against ``model``."""
        names = tuple(model.state_names) if self.states is None else tuple(self.states)
        unknown = [s for s in names if s not in model.state_names]
        if unknown:
            raise ValueError(f"states {unknown} are not states of {type(model).__name__}: {list(model.state_names)}")
        return names

    def sigma(self, name: str) -> float:
        """σ_b of state ``name`` (mm)."""
        if isinstance(self.background_sigma, tuple):
            sigmas = dict(self.background_sigma)
            if name not in sigmas:
                raise ValueError(f"background_sigma gives no value for state '{name}': {sorted(sigmas)}")
            return float(sigmas[name])
        return float(self.background_sigma)

    def transformed(self, flow: Array) -> Array:
        """``T(q)`` of a flow (mm d-1)."""
        if self.transform == "sqrt":
            return jnp.sqrt(jnp.maximum(flow, 0.0) + _FLOW_OFFSET)
        if self.transform == "log":
            return jnp.log(jnp.maximum(flow, 0.0) + _FLOW_OFFSET)
        return flow


# ----------------------------------------------------------------------------------------
# The cost of one window
# ----------------------------------------------------------------------------------------


def _check_params(model: ProcessModel, params: Mapping[str, Array]) -> dict[str, Array]:
    extra = [k for k in params if k not in model.param_spec]
    if extra:
        raise ValueError(
            f"state updating takes only {type(model).__name__}'s own parameters {list(model.param_spec)}; got {extra} "
            "(the window re-simulation does not carry the water unit-hydrograph routing brings from before the "
            "window; incremental_forecast does)"
        )
    missing = [k for k in model.param_spec if k not in params]
    if missing:
        raise ValueError(f"{type(model).__name__} needs parameters {missing}; got {sorted(params)}")
    out = {k: jnp.asarray(params[k]) for k in model.param_spec}
    varying = [k for k, v in out.items() if v.ndim != 1 + len(model.param_event_shape(k))]
    if varying:
        shapes = {k: out[k].shape for k in varying}
        raise ValueError(f"state updating takes static parameters [basin, *event]; got shapes {shapes} "
                         "(the window re-simulation takes no time-varying parameters; incremental_forecast does, "
                         "time_varying=)")
    return out


def _simulated_flow(model, params, forcing, state0) -> Array:
    return run_physics(model, params, forcing, state0)["streamflow"]


def flow_misfit(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    observed: Array,
    state0: Mapping[str, Array],
    settings: Assimilation = Assimilation(),
) -> Array:
    """``Σ_t (T(q_sim) − T(q_obs))² / σ_o²`` per basin over the observed days -> ``[basin]``.

    Args:
        model: a process model with a ``streamflow`` output.
        params: static physical parameters ``[basin, *event]``.
        forcing: name -> ``[basin, time]`` (the window).
        observed: ``[basin, time]`` flow (mm d-1), NaN where missing (no value, no gradient).
        state0: states at the window start, name -> ``[basin, *event]`` (mm).
        settings: transform and σ_o.
    """
    observed = jnp.asarray(observed)
    ok = ~jnp.isnan(observed)
    sim = _simulated_flow(model, params, forcing, state0)
    diff = settings.transformed(sim) - settings.transformed(jnp.where(ok, observed, 0.0))
    return jnp.sum(jnp.where(ok, diff, 0.0) ** 2, axis=-1) / settings.obs_sigma**2


def _softplus_inverse(x: Array) -> Array:
    return x + jnp.log(-jnp.expm1(-x))


def _to_state(v: Mapping[str, Array], background: Mapping[str, Array], settings: Assimilation) -> dict[str, Array]:
    """Control variables -> states (the background where ``v`` has no entry)."""
    state = dict(background)
    for k, vk in v.items():
        xb = background[k]
        zb = _softplus_inverse(jnp.maximum(xb, _STATE_FLOOR))
        state[k] = xb + jax.nn.softplus(zb + settings.sigma(k) * vk) - jax.nn.softplus(zb)
    return state


def _background_term(state, background, names, settings) -> Array:
    """``Σ ((x − x_b)/σ_b)²`` per basin -> ``[basin]``."""
    total = 0.0
    for k in names:
        d = ((state[k] - background[k]) / settings.sigma(k)) ** 2
        total = total + d.reshape(d.shape[0], -1).sum(-1)
    return total


def cost(model, params, forcing, observed, background, v, settings: Assimilation = Assimilation()) -> Array:
    """``J`` per basin ``[basin]`` at control variables ``v`` (name -> ``[basin, *event]``)."""
    state = _to_state(v, background, settings)
    return flow_misfit(model, params, forcing, observed, state, settings) + _background_term(
        state, background, tuple(v), settings
    )


# ----------------------------------------------------------------------------------------
# One window: the update and the forecast
# ----------------------------------------------------------------------------------------


def _one_basin(x):
    return jax.tree.map(lambda a: a[None], x)


def _minimise_one(model, params, forcing, observed, background, settings: Assimilation):
    """Control variables of one basin after ``n_steps`` iterations (inputs without the basin axis)."""
    names = settings.updated(model)
    p, f, o, b = (_one_basin(x) for x in (params, forcing, observed, background))

    def objective(v):
        return cost(model, p, f, o, b, _one_basin(v), settings)[0]

    v0 = {k: jnp.zeros_like(background[k]) for k in names}
    if settings.optimizer == "gauss_newton":
        return _gauss_newton(model, p, f, o, b, v0, settings)
    if settings.optimizer == "adam":
        opt = optax.adam(settings.learning_rate)
        grad = jax.grad(objective)

        def step(carry, _):
            v, state = carry
            updates, state = opt.update(grad(v), state, v)
            return (optax.apply_updates(v, updates), state), None
    else:
        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(objective)

        def step(carry, _):
            v, state = carry
            value, g = value_and_grad(v, state=state)
            updates, state = opt.update(g, state, v, value=value, grad=g, value_fn=objective)
            return (optax.apply_updates(v, updates), state), None

    (v, _), _ = jax.lax.scan(step, (v0, opt.init(v0)), None, length=int(settings.n_steps))
    return v


def _gauss_newton(model, params, forcing, observed, background, v0, settings: Assimilation):
    """Fixed Gauss-Newton iterations on the residuals of ``J`` (one basin, leading axis 1)."""
    flat0, unravel = ravel_pytree(v0)
    ok = ~jnp.isnan(observed)
    target = settings.transformed(jnp.where(ok, observed, 0.0))
    names = tuple(v0)

    def residuals(flat):
        state = _to_state(_one_basin(unravel(flat)), background, settings)
        sim = _simulated_flow(model, params, forcing, state)
        r_obs = jnp.where(ok, settings.transformed(sim) - target, 0.0) / settings.obs_sigma
        r_bg = [((state[k] - background[k]) / settings.sigma(k)).ravel() for k in names]
        r = jnp.concatenate([r_obs.ravel()] + r_bg)
        return r, r

    eye = jnp.eye(flat0.size, dtype=flat0.dtype)

    def step(flat, _):
        jac, r = jax.jacfwd(residuals, has_aux=True)(flat)
        delta = jnp.clip(jnp.linalg.solve(jac.T @ jac + 1e-3 * eye, jac.T @ r), -3.0, 3.0)
        # the flow is exponential in the storage, so a full step can overshoot: try the
        # fractions of _STEP_FRACTIONS side by side (one vectorised run) and keep the best
        # (four fractions 1 .. 1/8 cost 30 % more time and gave the same analyses in the tests)
        trials = flat - _STEP_FRACTIONS.astype(flat.dtype)[:, None] * delta
        costs = jax.vmap(lambda x: jnp.sum(residuals(x)[0] ** 2))(trials)
        best = jnp.argmin(costs)
        return jnp.where(costs[best] < jnp.sum(r**2), trials[best], flat), None

    flat, _ = jax.lax.scan(step, flat0, None, length=int(settings.n_steps))
    return unravel(flat)


def update_state(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    observed: Array,
    background: Mapping[str, Array],
    settings: Assimilation = Assimilation(),
) -> dict[str, Array]:
    """The analysed state at the window start, basin by basin (``jax.vmap``).

    Args:
        model: a process model with a ``streamflow`` output (EXP-HYDRO, HBV, ...).
        params: static physical parameters ``[basin, *event]`` (no routing ones).
        forcing: name -> ``[basin, window]``, the window's forcing.
        observed: ``[basin, window]`` flow (mm d-1); NaN = missing. Without any
            observation the background is returned unchanged.
        background: states at the window start, name -> ``[basin, *event]`` (mm).
        settings: :class:`Assimilation`.

    Returns:
        name -> ``[basin, *event]`` (mm): every state, the non-updated ones as given.
    """
    params = _check_params(model, params)
    forcing = {k: jnp.asarray(forcing[k]) for k in model.forcing_names}
    background = {k: jnp.asarray(background[k]) for k in model.state_names}
    v = jax.vmap(lambda p, f, o, b: _minimise_one(model, p, f, o, b, settings))(
        params, forcing, jnp.asarray(observed), background
    )
    return _to_state(v, background, settings)


def forecast_from(model, params, forcing, state0) -> Array:
    """Streamflow ``[basin, time]`` (mm d-1) from ``state0`` over ``forcing`` (window + lead days)."""
    return _simulated_flow(model, _check_params(model, params), forcing, state0)


# ----------------------------------------------------------------------------------------
# Every day of a period
# ----------------------------------------------------------------------------------------


def open_loop(model, params, forcing, state0) -> tuple[Array, dict[str, Array]]:
    """Open-loop streamflow ``[basin, time]`` and the states at the *start* of each day
    (name -> ``[basin, time, *event]``; day 0 is ``state0``).

    Outside ``jit`` the forcing is checked for gaps (NaN, -999) and the parameters for
    their boxes, one line naming the variable (:func:`~difhydro.physics.simulate`'s checks).
    """
    out = run_physics(model, _check_params(model, params), forcing, state0, check=True)
    starts = {k: jnp.concatenate([jnp.asarray(state0[k])[:, None], out[k][:, :-1]], axis=1) for k in model.state_names}
    return out["streamflow"], starts


def _window(x: Array, start, length: int) -> Array:
    return jax.lax.dynamic_slice_in_dim(x, start, length, axis=1)


def rolling_forecast(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    observed: Array,
    state0: Mapping[str, Array],
    settings: Assimilation = Assimilation(),
    *,
    cycling: bool = False,
    days_per_batch: int = 64,
) -> dict[str, Array]:
    """One-day-ahead forecasts with a state update before every day of a period.

    For each day ``t = N − 1 .. T − 2`` (N = ``settings.window``) the states at the start
    of day ``t − N + 1`` are updated from the flow observed on days ``t − N + 1 .. t`` and
    the model forecasts day ``t + 1``.

    The background of each window is the open-loop state (``cycling=False``: the run from
    ``state0`` without updates, so every day is its own problem and
    ``days_per_batch`` days are solved at once) or the previous analysis carried one day
    forward (``cycling=True``, a ``lax.scan`` over days: information accumulates, at the
    price of a sequential loop).

    Args:
        model, params: the process model and its static parameters ``[basin, *event]``.
        forcing: name -> ``[basin, T]`` over the whole period.
        observed: ``[basin, T]`` flow (mm d-1), NaN where missing.
        state0: states at the start of day 0 (e.g. after a warm-up), name -> ``[basin, *event]``.
        settings: :class:`Assimilation`.
        cycling: carry the analysis forward instead of the open-loop state.
        days_per_batch: days solved together when ``cycling=False`` (memory vs speed).

    Returns:
        ``forecast``: ``[basin, T − N]``, the forecasts of days ``N .. T − 1``;
        ``open_loop``: ``[basin, T]``, the run from ``state0`` without updates;
        ``analysis``: the analysed states at the window starts, name -> ``[basin, T − N, *event]``.
    """
    n = int(settings.window)
    params = _check_params(model, params)
    forcing = {k: jnp.asarray(forcing[k]) for k in model.forcing_names}
    observed = jnp.asarray(observed)
    n_time = observed.shape[1]
    if n_time <= n:
        raise ValueError(f"the period ({n_time} days) must be longer than the window ({n} days)")
    flow_ol, starts = open_loop(model, params, forcing, state0)
    days = jnp.arange(n_time - n)  # window start s = t - N + 1; forecast day s + N

    def solve(s, background):
        f = {k: _window(v, s, n + 1) for k, v in forcing.items()}
        analysis = update_state(model, params, {k: v[:, :n] for k, v in f.items()}, _window(observed, s, n),
                                background, settings)
        return analysis, forecast_from(model, params, f, analysis)

    if cycling:
        def day(background, s):
            analysis, flow = solve(s, background)
            f1 = {k: _window(v, s, 1) for k, v in forcing.items()}
            _, nxt = run_physics(model, params, f1, analysis, return_state=True)
            return nxt, (analysis, flow[:, -1])

        first = {k: jnp.asarray(state0[k]) for k in model.state_names}
        _, (analysis, fc) = jax.lax.scan(day, first, days)
    else:
        def day(s):
            background = {k: _window(v, s, 1)[:, 0] for k, v in starts.items()}
            analysis, flow = solve(s, background)
            return analysis, flow[:, -1]

        analysis, fc = jax.lax.map(day, days, batch_size=int(days_per_batch))
    return {
        "forecast": fc.T,
        "open_loop": flow_ol,
        "analysis": {k: jnp.moveaxis(v, 0, 1) for k, v in analysis.items()},
    }
