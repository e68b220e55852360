"""The Newton / modified Picard iteration of one backward-Euler sub-step, with line search.

:func:`_iterate` repeats linearised updates ``h <- h + M^{-1} F`` (M the Picard or Newton
matrix, F the full nonlinear cell balance: Celia et al. 1990, mass-conservative) until
every profile's scaled residual is below the tolerance or the cap is reached; every linear
solve is ``jax.lax.linalg.tridiagonal_solve``. The cell balance itself is assembled in
:mod:`.substep`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..base import safe_power
from ..soil_hydraulics import VanGenuchten
from .fluxes import SOIL_NAMES

Array = jax.Array

# Lowest head an iterate may take (cm, pF 7): (alpha|h|)^n stays far from float32 overflow.
_HEAD_FLOOR = -1e7
# Smallest fraction of a step the line search tries; a step this short is taken anyway.
_MIN_STEP_SCALE = 1.0 / 32.0
# Most solves that look for the cells a step drains below their air-entry head (_direction).
_ENTRY_PASSES = 8


class _System(NamedTuple):
    """Cell balance at one iterate: residual, iteration matrix, fluxes and the scaled error."""

    residual: Array  # F_i = q_in - q_out - S_i - Delta_i (theta_i - theta_i^n) / dt
    rhs: Array  # right side of the linearised step: F, the ponded surface face unfloored
    lower: Array  # rows of the iteration matrix M ~ -dF/dh (Picard: K and C frozen)
    diag: Array
    upper: Array
    storage_floor: Array  # Delta C_floor / dt, part of diag
    storage: Array  # Delta C / dt, part of diag
    theta: Array  # theta(h)
    capacity: Array  # the storage coefficient of the matrix (without the floor)
    aux: tuple | None  # inputs of the update="mixed" step (see _mixed_aux)
    entry: tuple | None  # (Delta C(h_s-) / dt, h - h_s) per cell, update="mixed" (see _direction)
    error: Array  # [*batch]: max_i |F_i| dt / (Delta_i + dt (|q_in| + |q_out| + |S_i|))
    merit: Array  # [*batch]: sum_i of the same ratio squared
    q: Array
    sink: Array
    runoff: Array


def _direction(system: _System) -> Array:
    """The linearised step ``dh = M^{-1} F`` (M the Picard or Newton matrix, ~ -dF/dh).

    With ``system.entry`` (``update="mixed"``) a saturated cell that this step would take
    below its air-entry head h_s is linearised on the other side of the kink of theta(h)
    there, and the step solved again: it releases no water down to h_s and ``C(h_s-)`` per
    cm below, ``theta ~ theta_s + C(h_s-) (h + dh - h_s)``, which adds ``Delta C(h_s-) / dt``
    to its diagonal and ``-Delta C(h_s-) (h - h_s) / dt`` to its right side. The matrix of a
    saturated cell holds no storage (C = 0), so without this a saturated zone held only by
    weak faces (a perched zone over a tight layer that dries from the top, a saturated
    column under a no-flux top) gets a step that shifts it as a block by tens of cm, which
    the damping then breaks apart; with it the cells that drain and the block they release
    move together to the new balance (a semismooth Newton step with the saturated set
    predicted by the first solve)."""
    def solve(diag, rhs):
        return jax.lax.linalg.tridiagonal_solve(system.lower, diag, system.upper, rhs[..., None])[..., 0]

    step = solve(system.diag, system.rhs)
    if system.entry is None:
        return step
    storage, excess = system.entry

    def drained(step_):
        return (excess >= 0.0) & (step_ < -excess)

    def body(carry):
        _, _, drains, passes = carry
        step_ = solve(system.diag + jnp.where(drains, storage, 0.0),
                      system.rhs - jnp.where(drains, storage * excess, 0.0))
        return drains, step_, drained(step_), passes + 1

    def cond(carry):
        used, _, drains, passes = carry
        return jnp.any(used != drains) & (passes < _ENTRY_PASSES)

    # the set of drained cells predicted by each solve, until it no longer changes
    carry = (jnp.zeros(step.shape, bool), step, drained(step), 0)
    return jax.lax.while_loop(cond, body, carry)[1]


def _apply_step(h, system, step, scale, head_ceiling, max_head_change, transform=None):
    """``h + scale * step``, damped and clamped; ``transform`` (see :func:`_mixed_transform`)
    takes the step in another variable where that makes the cell balance closer to linear."""
    step = step * scale[..., None]
    if max_head_change is not None:
        # damped update: |dh| <= a + b |h| keeps an unconverged iterate from overshooting
        limit = max_head_change[0] + max_head_change[1] * jnp.abs(h)
        clipped = jnp.clip(step, -limit, limit)
    else:
        limit, clipped = None, step
    h_new = h + clipped
    if transform is not None:
        h_new = transform(h, system, step, h_new, limit)
    return jnp.clip(h_new, _HEAD_FLOOR, head_ceiling)


def _mixed_aux(soil, shape, dtype):
    """What the ``update="mixed"`` step needs of a van Genuchten soil, broadcast to the
    cells (carried in :class:`_System`, so an implicit-gradient solve sees it as an input)."""
    vg = VanGenuchten(*(jnp.broadcast_to(jnp.asarray(getattr(soil, k), dtype), shape) for k in SOIL_NAMES),
                      air_entry=soil.air_entry, scale=tuple(jnp.broadcast_to(x, shape) for x in soil.scale))
    return vg, vg.inflection_head()


def _mixed_transform(newton):
    """The update of ``update="mixed"`` (van Genuchten soils).

    - A cell drier than the inflection head h* of theta(h) that the step wets takes the
      step in effective saturation, ``Se + C dh / (theta_s - theta_r)``, mapped back by
      ``saturation_head`` (Se computed from h: in float32 theta - theta_r of a nearly dry
      cell keeps too few digits for the last steps). Below h*, theta(h) is convex, so a
      head step that wets the cell adds more water than the linearisation predicts; with C
      small and falling steeply the head form overshoots by orders of magnitude and the
      iteration cycles between dry and saturated. A drying step keeps the head form, which
      undershoots monotonically on the convex curve. A step that fills the cell (Se >= 1)
      ends where the head step does, at least at h_s.
    - On the plain curve (``air_entry = 0``), with the Newton matrix and n < 2, an
      unsaturated cell wetter than h* takes the step in ``w = -(alpha|h|)^(n-1)``: near
      saturation the Mualem K is ``Ks (1 + 2w + ...)``, linear in w but with an unbounded
      slope in h, so Newton in h cycles across saturation while Newton in w does not. It
      stops at saturation (w = 0). With h_s < 0 the slope of K at h_s is finite and the head
      form is kept: a per-cell change of variable breaks the steps of cells that strong
      faces hold together (a coarse layer over a tight one, docs/physics.md 3.8).
    - A saturated cell whose step would unsaturate it: with h_s < 0 the step was
      linearised for it on the unsaturated side (:func:`_direction`) and is kept; on the
      plain curve it stops at h = 0, where K and theta are flat above and the
      linearisation says nothing about the other side.
    """

    def transform(h, system, step, h_new, limit):
        vg, h_star = system.aux
        wetting = (h < h_star) & (step > 0.0)
        # in Se, computed from h: theta of a nearly dry cell carries too few digits above
        # theta_r for the step (float32)
        se_new = vg.effective_saturation(h) + system.capacity * step / (vg.theta_s - vg.theta_r)
        # a step that fills the cell ends where the head step does, at least h_s: the inverse
        # maps Se = 1 to just below h_s, which would never let the cell saturate
        h_theta = jnp.where(se_new >= 1.0, jnp.maximum(h_new, vg.air_entry), vg.saturation_head(se_new))
        out = jnp.where(wetting, h_theta, h_new)
        if newton and vg.air_entry == 0.0:
            steep = vg.n < 2.0
            p = jnp.where(steep, vg.n - 1.0, 0.5)  # unused where not steep; finite powers
            near = steep & (h >= h_star) & (h < vg.air_entry)
            suction = vg.alpha * jnp.maximum(-h, 0.0)
            w = -safe_power(suction, p, 1e-12)
            w_new = w + step * p * vg.alpha * safe_power(suction, p - 1.0, 1e-12)
            h_w = -safe_power(jnp.maximum(-w_new, 0.0), 1.0 / p, 1e-30) / vg.alpha
            if limit is not None:
                h_w = jnp.clip(h_w, h - limit, h + limit)
            out = jnp.where(near, h_w, out)
        if system.entry is not None:
            return out  # a step that drains a saturated cell was linearised for it (_direction)
        saturated = h > vg.air_entry
        return jnp.where(saturated & (out < vg.air_entry), vg.air_entry, out)

    return transform


def _select(mask, a, b):
    """Per-profile choice between two pytrees of ``[*batch, ...]`` arrays."""
    return jax.tree_util.tree_map(
        lambda x, y: jnp.where(jnp.reshape(mask, mask.shape + (1,) * (x.ndim - mask.ndim)), x, y), a, b
    )


def _iterate(system_fn, h, *, n_iter, tol, apply, loop, line_search, active=None):
    """Linearised updates from ``h`` until every profile's error is <= ``tol`` or ``n_iter``
    trial updates were made; a converged profile is frozen, so its result does not depend
    on the rest of the batch. ``loop="while"`` stops as soon as all profiles have converged
    (not reverse-differentiable); ``"scan"`` always makes ``n_iter`` passes (differentiable).

    ``line_search`` backtracks: a trial that does not lower the merit (sum of squared
    scaled residuals) is rejected and retried with half the step (same direction, no new
    solve), down to ``_MIN_STEP_SCALE`` of it, which is taken anyway. Returns ``(h, system
    at h, trials per profile, converged per profile)``. Profiles where ``active`` (``[*batch]``
    bool) is false start frozen (the adaptive day's profiles that have finished the day)."""
    system = system_fn(h)
    done = system.error <= tol
    if active is not None:
        done = done | ~active
    count = jnp.zeros(done.shape, h.dtype)
    step = _direction(system)
    scale = jnp.ones(done.shape, h.dtype)

    def body(carry):
        h_, system_, done_, count_, step_, scale_ = carry
        h_try = apply(h_, system_, step_, scale_)
        system_try = system_fn(h_try)
        if line_search:
            finite = jnp.isfinite(system_try.merit)
            better = system_try.merit < system_.merit
            accept = ~done_ & finite & (better | (scale_ <= _MIN_STEP_SCALE))
        else:
            accept = ~done_
        h_ = jnp.where(accept[..., None], h_try, h_)
        system_ = _select(accept, system_try, system_)
        count_ = count_ + jnp.where(done_, 0.0, 1.0).astype(count_.dtype)
        scale_ = jnp.where(accept, 1.0, 0.5 * scale_).astype(scale_.dtype)
        step_ = jnp.where(accept[..., None], _direction(system_), step_)
        return h_, system_, done_ | (system_.error <= tol), count_, step_, scale_

    carry = (h, system, done, count, step, scale)
    if loop == "while":
        carry = jax.lax.while_loop(
            lambda c: jnp.any(~c[2]) & (jnp.max(c[3]) < n_iter), body, carry
        )
    else:
        carry = jax.lax.scan(lambda c, _: (body(c), None), carry, None, length=int(n_iter))[0]
    h, system, done, count = carry[:4]
    return h, system, count, done

