"""Cycling incremental state updating: one ``lax.scan`` over days, no window re-simulation.

The variational update of :mod:`.assimilation` re-runs the whole window (with a tangent per
control) for every forecast day and Gauss-Newton iteration, which costs tens of open-loop
runs. Here the window is never run again. One scan over the days carries today's state and
a buffer of the last ``N`` days of the *current* trajectory: its flows, its states, and, for
each of the ``N`` windows in flight (starting on days ``t − N + 1 .. t``), the tangents of
the trajectory with respect to that window's controls (``∂x_τ/∂v_s`` and ``∂q_τ/∂v_s``),
carried forward by forward mode when a day is stepped. Each day ``t``:

1. step today's state and the tangents of the windows in flight (forward mode on the
   ``N k`` tangents, or on the state's unit vectors and ``N`` small matrix products where
   those are fewer): the flow of day ``t`` issued from the state analysed with the
   observations up to ``t − 1`` is the **one-day-ahead forecast** of day ``t``;
2. append day ``t`` to the buffer; the window is days ``s = t − N + 1 .. t``;
3. one Gauss-Newton step on ``J`` (misfit of the transformed flow over the window's
   observed days plus the background term, :class:`~.assimilation.Assimilation`) in the
   control variables of the window-start state ``x_s = x_s^cur + σ_b v`` (one per updated
   state, shared by its values: the parallel buckets of a multi-component HBV move
   together), with the window's sensitivities ``∂q_τ/∂v_s`` and a closed-form ``k × k``
   solve (``k``: number of updated states); steps are clipped at one σ_b per day;
4. move the buffered trajectory and tomorrow's state by the increment, through the same
   tangents (states clipped at 0 mm: storages are never negative); the window of ``s``
   is done and one starts on ``t + 1``.

The background of every window is the **open-loop** state (run beside, one more step per
day), as in :func:`~.assimilation.rolling_forecast`'s default: the analysed trajectory is
re-linearised every day (each observation enters ``N`` successive updates, so large errors
are removed over a few days) but cannot drift away from the model's own climate where the
flow does not constrain it (with the previous analysis as background, a structural bias
pushed the snowpack of real basins to metres). It is the incremental (tangent-linear) form
of 4D-Var with one outer iteration per day; the exact window re-simulation stays in
:func:`~.assimilation.rolling_forecast`. Days without any observation in the window make
no update from the misfit.

**Unit-hydrograph routing** (δHBV's gamma UH, MAXBAS): the streamflow of day ``τ`` is
``Σ_k w_k r_{τ−k}``, the generated runoff ``r`` of days ``τ − L + 1 .. τ`` convolved with
the ``L`` ordinates ``w``. The buffer then holds the runoff of the last ``L − 1 + N`` days
of the current trajectory (the ``L − 1`` before the window come from ``runoff_history``
and the earlier analyses); the controls move only the window's runoff (the water
generated before the window is routed into it but is no control variable), so the
window's flow sensitivities are the runoff's convolved with ``w``.
**Time-varying parameters** (δHBV's BETA, BETAET from the LSTM) are scanned with the
forcing: every day is stepped, linearised and forecast with its own parameters.

Shapes: forcing and observations ``[basin, time]``, static parameters ``[basin, *event]``,
time-varying ones ``[basin, time, *event]``, states ``[basin, *event]``. Units: flow mm d-1, storages mm.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..hybrid.params import ROUTING_PARAMETERS
from ..physics.base import Array, ProcessModel
from ..physics.routing import route_streamflow
from .assimilation import Assimilation

__all__ = ["incremental_forecast"]

#: Levenberg damping of the k x k normal equations, and the clip of a step (multiples of σ_b)
_DAMPING = 1e-3
_MAX_STEP = 1.0
_MAX_FLOW_CHANGE = 3.0
#: days of the impulse whose routed response gives the unit hydrograph: the longest default
#: length of :func:`~difhydro.physics.routing.route_streamflow` (gamma 15, MAXBAS 7)
_UH_DAYS = 15


def _mm(a: Array, b: Array) -> Array:
    """``a @ b`` of small matrices as a broadcast product and sum (XLA fuses it into the
    loop body; a ``dot`` per basin-day is a separate call on CPU)."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _spd_solve(a: Array, b: Array) -> Array:
    """``a⁻¹ b`` for a small symmetric positive definite ``a`` [k, k] by an unrolled Cholesky
    (element-wise operations: inside ``vmap`` and ``scan`` they beat a LAPACK call per basin-day)."""
    k = a.shape[0]
    low = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            total = a[i, j] - sum((low[i][m] * low[j][m] for m in range(j)), 0.0)
            low[i][j] = jnp.sqrt(total) if i == j else total / low[j][j]
    y = []
    for i in range(k):  # L y = b
        y.append((b[i] - sum((low[i][m] * y[m] for m in range(i)), 0.0)) / low[i][i])
    x = [None] * k
    for i in reversed(range(k)):  # Lᵀ x = y
        x[i] = (y[i] - sum((low[m][i] * x[m] for m in range(i + 1, k)), 0.0)) / low[i][i]
    return jnp.stack(x)


def _flat_step(model: ProcessModel, template: Mapping[str, Array]):
    """``(x_flat, forcing_t, params) -> (x_next_flat, q_t)`` for one basin (no batch axis)."""
    _, unravel = ravel_pytree({k: template[k] for k in model.state_names})

    def step(x, forcing_t, params):
        new, out = model.step(unravel(x), forcing_t, params)
        return ravel_pytree({k: new[k] for k in model.state_names})[0], out["streamflow"]

    return step, unravel


def _split_params(model: ProcessModel, params: Mapping[str, Array], time_varying: Collection[str],
                  n_time: int) -> tuple[dict[str, Array], dict[str, Array], dict[str, Array]]:
    """``params`` -> (static ``[basin, *event]``, time-varying ``[basin, T, *event]``,
    routing ``[basin]``), each checked by name and rank (one line naming the key)."""
    unknown = [k for k in params if k not in model.param_spec and k not in ROUTING_PARAMETERS]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {type(model).__name__}: expected "
                         f"{list(model.param_spec)} and optionally routing parameters {sorted(ROUTING_PARAMETERS)}")
    missing = [k for k in model.param_spec if k not in params]
    if missing:
        raise ValueError(f"{type(model).__name__} needs parameters {missing}; got {sorted(params)}")
    not_params = [k for k in time_varying if k not in model.param_spec]
    if not_params:
        raise ValueError(f"time_varying {not_params} are not parameters of {type(model).__name__}")
    static, varying = {}, {}
    for k in model.param_spec:
        v = jnp.asarray(params[k])
        event = len(model.param_event_shape(k))
        if k in time_varying:
            if v.ndim != 2 + event or v.shape[1] != n_time:
                raise ValueError(f"time-varying parameter '{k}' must be [basin, time={n_time}, *event], got {v.shape}")
            varying[k] = v
        elif v.ndim != 1 + event:
            raise ValueError(f"parameter '{k}' must be static [basin, *event] (shape {v.shape}); name it in "
                             "time_varying if it is a daily series")
        else:
            static[k] = v
    routing = {k: jnp.asarray(params[k]) for k in params if k in ROUTING_PARAMETERS}
    return static, varying, routing


def _unit_hydrograph(routing: Mapping[str, Array], n_basins: int, dtype) -> Array:
    """Ordinates ``w`` ``[basin, L]`` (``w_0`` for today) of the routing
    :func:`~difhydro.hybrid.run_physics` applies: the routed response to a unit impulse
    (so the choice of hydrograph and its length stay in
    :func:`~difhydro.physics.routing.route_streamflow`); ``[basin, 1]`` of ones without routing."""
    if not routing:
        return jnp.ones((n_basins, 1), dtype)
    impulse = jnp.zeros((_UH_DAYS, n_basins), dtype).at[0].set(1.0)
    return route_streamflow(impulse, routing).T.astype(dtype)


def _last_days(history: Array | None, n_basins: int, days: int, dtype) -> Array:
    """The last ``days`` of ``history`` ``[basin, H]`` (zeros in front where ``H < days``, as
    :func:`~difhydro.physics.routing.route` sees no water before a series) -> ``[basin, days]``."""
    if history is None:
        return jnp.zeros((n_basins, days), dtype)
    history = jnp.asarray(history, dtype)
    if history.ndim != 2 or history.shape[0] != n_basins:
        raise ValueError(f"runoff_history must be [basin={n_basins}, days], got {history.shape}")
    pad = jnp.zeros((n_basins, max(days - history.shape[1], 0)), dtype)
    return jnp.concatenate([pad, history], axis=1)[:, history.shape[1] + pad.shape[1] - days:]


def incremental_forecast(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    observed: Array,
    state0: Mapping[str, Array],
    settings: Assimilation = Assimilation(),
    *,
    time_varying: Collection[str] = (),
    runoff_history: Array | None = None,
    basins_per_chunk: int = 128,
) -> dict[str, Array]:
    """One-day-ahead forecasts of every day with a cycling incremental state update.

    Args:
        model: a process model with a ``streamflow`` output.
        params: physical parameters: the model's, static ``[basin, *event]`` or, for the
            names in ``time_varying``, daily ``[basin, T, *event]``; optionally the
            unit-hydrograph ones of :func:`~difhydro.hybrid.run_physics` (``uh_shape``,
            ``uh_scale`` or ``maxbas``, ``[basin]``), which route the model's streamflow.
        forcing: name -> ``[basin, T]`` (mm d-1, deg C, ...).
        observed: ``[basin, T]`` flow (mm d-1), NaN where missing (masked in the misfit).
        state0: states at the start of day 0, name -> ``[basin, *event]`` (mm).
        settings: window ``N``, σ_b, σ_o, transform and updated states of
            :class:`~.assimilation.Assimilation` (``n_steps`` and ``optimizer`` are not
            used: one Gauss-Newton step per day).
        time_varying: names of the parameters given as daily series.
        runoff_history: with routing, the generated (unrouted) runoff of the days before
            day 0, ``[basin, H]`` mm d-1, oldest first (e.g. ``run_physics``'s ``runoff`` of the
            spin-up): its last ``L − 1`` days are routed into the first days; ``None`` (or
            ``H < L − 1``) is no water before, as a routed run from the series start.
        basins_per_chunk: basins vectorised together (larger sets run chunk after chunk).

    Returns:
        ``forecast`` ``[basin, T]``: day ``t``'s flow (routed, with routing) from the state
        analysed with the observations of days ``< t`` (day 0 is the run from ``state0``);
        ``open_loop`` ``[basin, T]``: the run from ``state0`` (and the history) without updates;
        ``analysis`` name -> ``[basin, T, *event]``: the states at the start of each day
        after the updates up to the day before;
        ``observed_in_window`` ``[basin, T]``: observed days in the window that ended the
        day before (0: no update).
    """
    forcing = {k: jnp.asarray(forcing[k]) for k in model.forcing_names}
    observed = jnp.asarray(observed)
    static, varying, routing = _split_params(model, params, tuple(time_varying), observed.shape[1])
    state0 = {k: jnp.asarray(state0[k]) for k in model.state_names}
    names = settings.updated(model)
    if not names:
        raise ValueError(f"state updating needs at least one state to update; {type(model).__name__} has "
                         f"{list(model.state_names)}")
    n = int(settings.window)
    one = {k: v[0] for k, v in state0.items()}
    step, unravel = _flat_step(model, one)
    x_flat0 = jax.vmap(lambda s: ravel_pytree({k: s[k] for k in model.state_names})[0])(state0)
    k_all = x_flat0.shape[1]
    dtype = x_flat0.dtype
    n_basins = x_flat0.shape[0]
    # one control per updated state, shared by its values (static: NumPy): the parallel buckets
    # of a multi-component HBV get the same increment. The flow observes their sum, not how it
    # splits; with a control each, a long window fitted a recession's shape by raising the fast
    # bucket and lowering the slow ones below 0 (clipped), and the fast one drifted up (measured:
    # dPL-HBV, 30 Caravan basins, window 10, median NSE 0.47 -> -1.3; shared: 0.50)
    sizes = {k: int(np.prod(np.shape(one[k]))) for k in model.state_names}  # ravel_pytree's order: sorted keys
    order = sorted(model.state_names)
    owner = np.concatenate([np.full(sizes[k], k) for k in order])
    controls = [k for k in order if k in names]
    select_np = np.stack([(owner == k).astype(np.float64) for k in controls], axis=1)  # [k_all, k_ctl]
    select = jnp.asarray(select_np, dtype)
    mean_of = jnp.asarray(select_np / select_np.sum(axis=0), dtype)  # the mean of each state's values
    sigma = jnp.asarray([settings.sigma(k) for k in controls], dtype)
    k_ctl = len(controls)
    uh = _unit_hydrograph(routing, n_basins, dtype)  # [basin, L]
    n_uh = uh.shape[1]
    # runoff buffer: the L - 1 days before the window, then the window's N days
    history = _last_days(runoff_history, n_basins, n_uh - 1 + n, dtype)

    def tangent_step(x, forcing_t, p, tangents):
        """Step one basin with forward mode: ``x_next``, the runoff ``r``, and for each
        tangent ``T`` ``[N, k_all, k_ctl]`` its image ``A T`` and the runoff's ``h T`` ``[N, k_ctl]``.

        Forward mode on the ``N k_ctl`` tangents themselves where they are fewer than the
        ``k_all`` state values (a multi-component HBV: 3 against 20), else on the unit
        vectors, giving ``A`` and ``h``, then ``N`` small products (EXP-HYDRO's 2 values)."""
        def jvp(tangent_rows):
            return jax.vmap(lambda e: jax.jvp(lambda y: step(y, forcing_t, p), (x,), (e,)), out_axes=(None, 0))(
                tangent_rows)

        # a storage at exactly 0 can have an infinite tangent (a power law's derivative):
        # no sensitivity is taken from it (that day's flow does not move the state)
        finite = lambda v: jnp.where(jnp.isfinite(v), v, 0.0)  # noqa: E731
        if n * k_ctl < k_all:
            (x_next, r), (tx, dr) = jvp(jnp.moveaxis(tangents, -1, 1).reshape(n * k_ctl, k_all))
            return x_next, r, finite(jnp.moveaxis(tx.reshape(n, k_ctl, k_all), 1, -1)), finite(dr).reshape(n, k_ctl)
        (x_next, r), (a_cols, h) = jvp(jnp.eye(k_all, dtype=x.dtype))
        a, h = finite(a_cols.T), finite(h)
        return x_next, r, _mm(a, tangents), jnp.sum(h[:, None] * tangents, axis=-2)

    def update(buf, x_next, p_end, conv):
        """One Gauss-Newton increment over the buffered window (one basin); ``p_end``
        ``[k_all, k_ctl]`` carries it to tomorrow's state, ``conv`` ``[N, L − 1 + N]`` routes
        the buffered runoff into the window's flows."""
        r, xs, xo, y, ok = (buf[k] for k in ("r", "x", "xo", "y", "ok"))
        p, g_runoff = buf["tangent"][0], buf["runoff_tangent"][0]  # the window start's: ∂x_{s+j}, ∂r_{s+j} / ∂v
        # the flows of the window: the runoff routed (the days before the window are fixed)
        q = jnp.sum(conv * r[None, :], axis=1)
        g = _mm(conv[:, n_uh - 1:], g_runoff)  # ∂q_{s+j}/∂x_s(controls)
        # controls v: x_s = current + σ_b v (each state's values alike); the background is the
        # open loop: mean over a state's values of (x_s − x_ol,s)/σ_b = d0 + v
        d0 = jnp.sum(mean_of * (xs[0] - xo[0])[:, None], axis=0) / sigma
        qp = jnp.maximum(q, 0.0)
        dt = jax.vmap(jax.grad(settings.transformed))(qp)
        w = ok.astype(q.dtype) / settings.obs_sigma
        res = w * (settings.transformed(qp) - y)
        jr = (w * dt)[:, None] * g * sigma[None, :]
        hess = _mm(jr.T, jr) + jnp.diag(jnp.full(k_ctl, 1.0 + _DAMPING, q.dtype))
        dv = jnp.clip(_spd_solve(hess, -(jnp.sum(jr * res[:, None], axis=0) + d0)), -_MAX_STEP, _MAX_STEP)
        # trust region in flow space: the linear model may change no transformed flow of the
        # window by more than _MAX_FLOW_CHANGE σ_o (the flow is exponential in the storages:
        # where the tangent is flat, a full step overshoots by orders of magnitude)
        change = jnp.max(jnp.abs(jnp.sum(dt[:, None] * g * sigma[None, :] * dv[None, :], axis=1)))
        dv = dv * jnp.minimum(1.0, _MAX_FLOW_CHANGE * settings.obs_sigma / jnp.maximum(change, 1e-12))
        # an overflowing tangent (a power law near an empty store) makes no update that day
        dv = jnp.where(jnp.isfinite(dv).all() & jnp.isfinite(g).all(), dv, 0.0)
        dx = sigma * dv
        new = dict(buf)
        new["r"] = r.at[n_uh - 1:].add(jnp.sum(g_runoff * dx, axis=-1))
        new["x"] = jnp.maximum(xs + jnp.sum(p * dx, axis=-1), 0.0)  # storages are never negative
        return new, jnp.maximum(x_next + jnp.sum(p_end * dx, axis=-1), 0.0)

    # tangents by window start i (day t − N + 1 + i) and buffered day d (day t − N + 1 + d),
    # d >= i: "tangent" ∂x_d/∂v_i [N, N, k_all, k_ctl], "runoff_tangent" ∂r_d/∂v_i [N, N, k_ctl]
    # (today's column d = N − 1 is contiguous; the shift drops the first start and day). On
    # day 0 the days before it are x0 itself: the windows that start there move it as day 0's.
    first_tangents = jnp.asarray(np.greater_equal.outer(np.arange(n), np.arange(n)).T, dtype)[:, :, None, None] * select
    new_start = jnp.zeros((1, n, k_all, k_ctl), dtype).at[0, n - 1].set(select)  # the window starting tomorrow

    def one_basin(x0, f_series, p_static, p_series, obs, w_uh, r_hist):
        # conv[j, L-1+j-k] = w_k: the flow of window day j from the buffered runoff
        conv = sum(w_uh[k] * jnp.eye(n, n_uh - 1 + n, n_uh - 1 - k, dtype=dtype) for k in range(n_uh))
        buf0 = {"tangent": first_tangents,
                "runoff_tangent": jnp.zeros((n, n, k_ctl), dtype), "r": r_hist,
                "x": jnp.broadcast_to(x0, (n, k_all)), "xo": jnp.broadcast_to(x0, (n, k_all)),
                "y": jnp.zeros(n, dtype), "ok": jnp.zeros(n, bool)}
        w_rev = w_uh[::-1]  # oldest day first, as the buffers

        def day(carry, inputs):
            x, x_ol, r_ol, buf = carry
            f_t, p_t, obs_t = inputs
            p = {**p_static, **p_t}
            x_next, r, tx, dr = tangent_step(x, f_t, p, buf["tangent"][:, n - 1])
            x_ol_next, r_ol_t = step(x_ol, f_t, p)
            r_ol = jnp.concatenate([r_ol[1:], r_ol_t[None]])
            ok = ~jnp.isnan(obs_t)
            y = settings.transformed(jnp.where(ok, obs_t, 0.0))
            today = {"r": r, "x": x, "xo": x_ol, "y": y, "ok": ok}
            shifted = {k: jnp.concatenate([buf[k][1:], v[None]]) for k, v in today.items()}
            shifted["tangent"] = buf["tangent"]
            shifted["runoff_tangent"] = jnp.concatenate([buf["runoff_tangent"][:, :n - 1], dr[:, None]], axis=1)
            q = jnp.sum(w_rev * shifted["r"][n - 1:])  # today's routed flow, before today's update
            buf, x_next = update(shifted, x_next, tx[0], conv)
            # the first window is done, tomorrow's tangents of the others are tx, one starts tomorrow
            tangent = jnp.concatenate([buf["tangent"][1:, 1:], tx[1:, None]], axis=1)
            buf["tangent"] = jnp.concatenate([tangent, new_start])
            runoff_tangent = jnp.pad(buf["runoff_tangent"][1:, 1:], ((0, 1), (0, 1), (0, 0)))
            buf["runoff_tangent"] = runoff_tangent
            return (x_next, x_ol_next, r_ol, buf), (q, jnp.sum(w_rev * r_ol), x, shifted["ok"].sum())

        carry0 = (x0, x0, r_hist[n - 1:], buf0)
        _, (q, q_ol, xs, count) = jax.lax.scan(day, carry0, (f_series, p_series, obs))
        return q, q_ol, xs, count

    # per basin: forcing [T] each, params [*event] and [T, *event], observed [T], the unit
    # hydrograph [L] and runoff history [L - 1 + N]; basins in chunks run one after the other
    # (measured on 2 CPU cores: 2.5-3 M basin-days/s up to ~200 basins in one vmap, 0.5 M at
    # 230-256, where XLA's code for the wider loop body is far slower)
    args = (x_flat0, forcing, static, varying, observed, uh, history)
    chunk = int(basins_per_chunk)
    run = jax.vmap(one_basin)  # per basin, lax.scan reads the daily series on their leading axis
    if n_basins <= chunk:
        q, q_ol, xs, count = run(*args)
    else:
        n_chunks = -(-n_basins // chunk)
        pad = n_chunks * chunk - n_basins  # padded with copies of the last basin, dropped after

        def split(x):
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
            return x.reshape((n_chunks, chunk) + x.shape[1:])

        out = jax.lax.map(lambda a: run(*a), jax.tree.map(split, args))
        q, q_ol, xs, count = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:])[:n_basins], out)
    analysis = jax.vmap(jax.vmap(unravel))(xs)
    # the count of day t is the window ending on t (it informs day t + 1's forecast)
    before = jnp.concatenate([jnp.zeros_like(count[:, :1]), count[:, :-1]], axis=1)
    return {"forecast": q, "open_loop": q_ol, "analysis": analysis, "observed_in_window": before}
