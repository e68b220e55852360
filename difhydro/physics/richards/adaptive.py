"""Adaptive sub-stepping of one forcing step (a day), inside jit, with an exact gradient.

HYDRUS-1D's time-step control on a binary grid. The day is ``n_substeps x 2**L`` ticks
(``L = max_halvings``); a profile's step is ``2**(L - level)`` ticks, ``level = 0`` being
the nominal sub-step. Each pass of a ``lax.while_loop`` tries one step per profile from
its current state (every profile its own time, level and step):

- converged within ``n_iter`` iterations: accepted; after ``grow_after`` easy steps (within 3/10 of ``n_iter``)
  in a row the level drops by one (the step doubles) once the time is aligned with the
  longer step, so a step never crosses a nominal boundary nor the end of the day;
- not converged: rejected, the state is kept and the step halved (``level + 1``);
- not converged at ``level = L`` (the smallest step), or the last step or attempt the
  budget allows (which then takes the rest of the day): kept, and the day is reported
  unconverged. Integer ticks keep the time exact.

Gradient. ``lax.while_loop`` has no reverse mode, so the whole day is one
``jax.custom_vjp``. Its forward pass records the accepted steps (heads, water content,
length; the first ``RichardsSolver.stored_steps`` of them, a day that needed more is
recomputed with all of them kept in the backward pass); its backward pass walks the
accepted steps in reverse and applies to each the vector-Jacobian product of that step
*replayed at its accepted heads* (:func:`~.implicit.at_solution`: no iteration, the
implicit function theorem at the accepted iterate, and the flux update differentiated as
written). The rejected attempts and the step-size choices carry no gradient: dt is a
piecewise-constant function of the inputs, as in any adaptive ODE solver.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..soil_hydraulics import VanGenuchten
from .fluxes import feddes_reduction
from .substep import solve_substep

Array = jax.Array


class DayTotals(NamedTuple):
    """Water moved over the day (cm) per profile ``[B]``, and the day's step diagnostics."""

    top: Array
    bottom: Array
    uptake: Array
    runoff: Array
    iterations: Array  # most iterations of an accepted step
    converged: Array  # 1 if every accepted step converged
    substeps: Array  # number of accepted steps
    smallest: Array  # shortest accepted step (time units)


def _step(model, h, theta, dt, top, tp, soil, mode, active=None):
    """One sub-step of length ``dt`` (``[B]``) for the flattened profiles ``[B, N]``."""
    roots = jnp.asarray(model.root_fractions(), h.dtype)

    def uptake(h_):
        return tp[..., None] * roots * feddes_reduction(h_, model.feddes_heads)

    return solve_substep(
        h, theta, VanGenuchten(*soil, air_entry=model.air_entry), model.thickness, dt, model.solver,
        top_flux=None if model.top_head is not None else top, top_head=model.top_head,
        bottom_head=model.bottom_head, uptake=uptake, mode=mode, active=active,
    )


def _grid(model):
    """(ticks per nominal step, ticks per day, budget of accepted steps, of attempts)."""
    levels = int(model.solver.max_halvings)
    budget = model.solver.step_budget(model.n_substeps)
    return 2**levels, int(model.n_substeps) * 2**levels, budget, 2 * budget + levels


def _run(model, record, h, theta, top, tp, soil):
    """The adaptive day for profiles ``[B, N]``: ``(h, theta, DayTotals, buffers)``; with
    ``record = M > 0`` the first M accepted steps ``(heads [M, B, N], theta [M, B, N],
    ticks [M, B])``."""
    nominal, day, budget, attempts_max = _grid(model)
    levels = int(model.solver.max_halvings)
    b = h.shape[0]
    dtype = h.dtype
    tick = model.dt / day
    zero = jnp.zeros((b,), dtype)
    izero = jnp.zeros((b,), jnp.int32)
    totals = DayTotals(zero, zero, zero, zero, zero, jnp.ones((b,), dtype), izero, jnp.full((b,), day, jnp.int32))
    if record:
        buffers = (
            jnp.broadcast_to(h, (record, *h.shape)),
            jnp.broadcast_to(theta, (record, *theta.shape)),
            jnp.zeros((record, b), jnp.int32),
        )
    else:
        buffers = ()
    rows = jnp.arange(b)

    def body(carry):
        t, level, streak, attempts, h_, theta_, tot, buf = carry
        active = t < day
        size = jnp.left_shift(1, levels - level)
        remaining = day - t
        forced = (tot.substeps >= budget - 1) | (attempts >= attempts_max - 1)
        ticks = jnp.where(forced, remaining, jnp.minimum(size, remaining))
        ticks = jnp.where(active, ticks, nominal)  # finished profiles: a harmless dummy step
        h_new, theta_new, f = _step(model, h_, theta_, ticks.astype(dtype) * tick, top, tp, soil, "forward", active)
        converged = f.converged > 0
        accept = active & (converged | (level >= levels) | forced)
        dt_k = ticks.astype(dtype) * tick
        acc = accept.astype(dtype)
        if record:
            slot = jnp.where(accept, tot.substeps, record)  # out of range: dropped
            buf = (
                buf[0].at[slot, rows].set(h_new, mode="drop"),
                buf[1].at[slot, rows].set(theta_new, mode="drop"),
                buf[2].at[slot, rows].set(ticks, mode="drop"),
            )
        tot = DayTotals(
            top=tot.top + acc * dt_k * f.top,
            bottom=tot.bottom + acc * dt_k * f.bottom,
            uptake=tot.uptake + acc * dt_k * f.uptake,
            runoff=tot.runoff + acc * dt_k * f.runoff,
            iterations=jnp.where(accept, jnp.maximum(tot.iterations, f.iterations), tot.iterations),
            converged=jnp.where(accept & ~converged, 0.0, tot.converged).astype(dtype),
            substeps=tot.substeps + accept.astype(jnp.int32),
            smallest=jnp.where(accept, jnp.minimum(tot.smallest, ticks), tot.smallest),
        )
        t_new = t + jnp.where(accept, ticks, 0)
        # HYDRUS-1D grows dt only after easy steps (<= 3 of its 10 iterations): a step that
        # needed most of n_iter would likely fail when doubled
        easy = converged & (f.iterations <= model.solver.easy_iterations)
        streak = jnp.where(accept & easy, streak + 1, 0)
        # double after a run of easy steps, once the time sits on the longer step's grid
        grow = accept & (streak >= model.solver.grow_after) & (level > 0) & (t_new % (2 * size) == 0)
        level = jnp.where(active & ~accept, jnp.minimum(level + 1, levels), jnp.where(grow, level - 1, level))
        streak = jnp.where(grow, 0, streak)
        h_ = jnp.where(accept[:, None], h_new, h_)
        theta_ = jnp.where(accept[:, None], theta_new, theta_)
        return t_new, level, streak, attempts + active.astype(jnp.int32), h_, theta_, tot, buf

    def cond(carry):
        t, attempts = carry[0], carry[3]
        return jnp.any(t < day) & (jnp.max(attempts) < attempts_max)

    carry = (izero, izero, izero, izero, h, theta, totals, buffers)
    _, _, _, _, h, theta, totals, buffers = jax.lax.while_loop(cond, body, carry)
    totals = totals._replace(
        iterations=jax.lax.stop_gradient(totals.iterations),
        smallest=totals.smallest.astype(dtype) * tick,
        substeps=totals.substeps.astype(dtype),
    )
    return h, theta, totals, buffers


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def adaptive_day(model, h, theta, top, tp, soil):
    """Advance profiles ``[B, N]`` by one forcing step with the time-step control.

    Args:
        model: the :class:`~difhydro.physics.richards.Richards1D` (static).
        h, theta: heads (cm) and water content at the start, ``[B, N]``.
        top: supplied surface flux (cm per time unit), ``[B]`` (unused with ``top_head``).
        tp: potential transpiration, ``[B]``.
        soil: the five van Genuchten parameters, each ``[B, N]``.

    Returns:
        ``(h, theta, DayTotals)``; h carries no gradient to the start heads (they are only
        the first iterate), everything flows through theta and the parameters.
    """
    h, theta, totals, _ = _run(model, 0, h, theta, top, tp, soil)
    return h, theta, totals


def _adaptive_fwd(model, h, theta, top, tp, soil):
    stored = model.solver.stored_steps(model.n_substeps)
    h1, theta1, totals, buffers = _run(model, stored, h, theta, top, tp, soil)
    return (h1, theta1, totals), (h, theta, top, tp, soil, buffers, totals.substeps)


def _adaptive_bwd(model, residuals, cotangents):
    h0, theta0, top, tp, soil, buffers, count = residuals
    _, _, budget, _ = _grid(model)
    count = count.astype(jnp.int32)

    def recomputed(_):  # a day longer than the stored steps: its forward pass again, all kept
        return _walk_back(model, _run(model, budget, h0, theta0, top, tp, soil)[3], residuals, cotangents)

    def stored(_):
        return _walk_back(model, buffers, residuals, cotangents)

    if buffers[2].shape[0] >= budget:
        return stored(None)
    return jax.lax.cond(jnp.max(count) > buffers[2].shape[0], recomputed, stored, None)


def _walk_back(model, buffers, residuals, cotangents):
    """The backward pass over the accepted steps in ``buffers``, last first."""
    h0, theta0, top, tp, soil, _, count = residuals
    heads, thetas, ticks = buffers
    h_bar, theta_bar, tot_bar = cotangents
    _, day, _, _ = _grid(model)
    tick = model.dt / day
    count = count.astype(jnp.int32)
    dtype = theta0.dtype
    flux_bar = tuple(jnp.asarray(getattr(tot_bar, k), dtype) for k in ("top", "bottom", "uptake", "runoff"))

    def replay(h_k, dt_k, theta_prev, top_, tp_, soil_):
        h, theta, f = _step(model, h_k, theta_prev, dt_k, top_, tp_, soil_, "at_solution")
        return h, theta, (dt_k * f.top, dt_k * f.bottom, dt_k * f.uptake, dt_k * f.runoff)

    def body(k, carry):
        theta_bar_, top_bar, tp_bar, soil_bar = carry
        k = jnp.max(count) - 1 - k  # reverse order
        valid = k < count
        prev = jnp.maximum(k - 1, 0)
        theta_prev = jnp.where((k == 0), theta0, thetas[prev])
        h_k = heads[k]
        # unused slots replay a nominal step from finite data, with zero cotangents
        dt_k = jnp.where(valid, ticks[k], day // int(model.n_substeps)).astype(dtype) * tick
        vmask = valid.astype(dtype)
        last = (valid & (k == count - 1)).astype(dtype)
        _, vjp = jax.vjp(functools.partial(replay, h_k, dt_k), theta_prev, top, tp, soil)
        g_theta, g_top, g_tp, g_soil = vjp((last[:, None] * h_bar, vmask[:, None] * theta_bar_,
                                            tuple(vmask * c for c in flux_bar)))
        theta_bar_ = jnp.where(valid[:, None], g_theta, theta_bar_)
        soil_bar = tuple(a + jnp.where(valid[:, None], g, 0.0) for a, g in zip(soil_bar, g_soil))
        return (theta_bar_, top_bar + jnp.where(valid, g_top, 0.0), tp_bar + jnp.where(valid, g_tp, 0.0), soil_bar)

    init = (jnp.asarray(theta_bar, dtype), jnp.zeros_like(top), jnp.zeros_like(tp),
            tuple(jnp.zeros_like(s) for s in soil))
    theta_bar0, top_bar, tp_bar, soil_bar = jax.lax.fori_loop(0, jnp.max(count), body, init)
    return jnp.zeros_like(h0), theta_bar0, top_bar, tp_bar, soil_bar


adaptive_day.defvjp(_adaptive_fwd, _adaptive_bwd)

