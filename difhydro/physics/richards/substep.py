"""One backward-Euler sub-step of the layered Richards equation (public and core).

Mixed form in depth zeta (cm, positive down): ``d theta / dt = -dq/dzeta - S``
(docs/physics.md section 3). The right side of each iteration is the full nonlinear cell
balance (mass-conservative, Celia et al. 1990); the matrix is modified Picard's or
Newton's; finishing with the explicit flux update ``theta = theta^n + dt (q_in - q_out -
uptake) / Delta`` closes the water balance to round-off. The flux top never delivers more
than the supplied rain nor takes water out: infiltration is ``min(rain, max(q_cap, 0))``
with ``q_cap`` the flux of a surface held at the ponding head; the rest is runoff.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..soil_hydraulics import VanGenuchten
from .fluxes import SubstepFluxes, _capacity, _face_fluxes
from .implicit import _implicit_solve, at_solution
from .newton import _apply_step, _direction, _iterate, _mixed_aux, _mixed_transform, _System
from .settings import RichardsSolver

Array = jax.Array

# Added to C in the Jacobian only (cm-1): keeps the matrix regular when every cell is
# saturated (C = 0) or bone dry (C underflows); the residual, hence the solution, is unchanged.
_CAPACITY_FLOOR = 1e-11
# Head below the air-entry head (cm) where a saturated cell reads the capacity it would
# have once drained (the unsaturated side of the kink of theta(h) at h_s).
_ENTRY_OFFSET = 1e-3
# Tolerance against which a fixed-count step (tol=None) reports convergence.
_REPORT_TOL = 1e-6

#: how :func:`solve_substep` finds the heads: ``"solve"`` (the settings' own way, with
#: gradients), ``"forward"`` (a while loop, no gradient: the adaptive day's forward pass),
#: ``"at_solution"`` (the heads given are the solution: the adaptive day's replay)
_MODES = ("solve", "forward", "at_solution")


def richards_substep(
    h: Array,
    theta_prev: Array,
    soil,
    thickness,
    dt,
    *,
    top_flux: Array | None = None,
    top_head: float | None = None,
    bottom_head: float | None = None,
    uptake: Callable[[Array], Array] | None = None,
    n_iter: int = 5,
    interface: str = "arithmetic",
    ponding_head: float = 0.0,
    flux_update: bool = False,
    capacity: str = "tangent",
    jacobian: str = "picard",
    diagonal_shift: float = 0.0,
    max_head_change: tuple[float, float] | None = None,
    tol: float | None = None,
    gradient: str = "implicit",
    update: str = "head",
    line_search: bool = False,
) -> tuple[Array, Array, SubstepFluxes]:
    """One backward-Euler step of the layered Richards equation by (modified) Picard or
    Newton iteration.

    Args:
        h: pressure head at the start of the step (the first iterate), cm, ``[*batch, N]``.
        theta_prev: water content at the start of the step, ``[*batch, N]``.
        soil: object with ``water_content``, ``conductivity``, ``capacity`` of ``h`` (e.g.
            :class:`~difhydro.physics.soil_hydraulics.VanGenuchten`), parameters
            broadcastable to ``[*batch, N]``.
        thickness: cell thicknesses Delta_i, cm, static sequence of length N (top first).
        dt: step length in the time unit of ``soil.conductivity`` (d or s).
        top_flux: supplied downward surface flux (rain, cm per time unit), ``[*batch]``;
            infiltration is ``min(top_flux, max(q_cap, 0))`` with ``q_cap`` the flux of a
            surface held at ``ponding_head``, the rest is runoff; exclusive with ``top_head``.
        top_head: Dirichlet surface head, cm (static).
        bottom_head: Dirichlet head below the last cell, cm (static); ``None`` is free drainage.
        uptake: function ``h -> Delta_i S_i`` (cm per time unit, ``[*batch, N]``), the
            sink per cell, evaluated at the current iterate; ``None`` for no sink.
        n_iter: with ``tol=None`` the number of iterations (no convergence test);
            otherwise the cap on them (line-search retries count).
        interface: ``"arithmetic"`` (Celia) or ``"geometric"`` face conductivity.
        ponding_head: surface head once ponded (cm); excess flux is runoff.
        flux_update: finish with the explicit flux update of theta (exact mass balance);
            otherwise ``theta = theta(h)`` of the last iterate.
        capacity: ``"tangent"`` C(h^m) (Celia et al. 1990) or ``"chord"`` (see
            :func:`_capacity`); it only shapes the matrix.
        jacobian: ``"picard"`` (K frozen, Celia's modified Picard) or ``"newton"`` (adds the
            dK/dh terms, so the gravity flux is implicit too).
        max_head_change: ``(a, b)`` limits each iteration's head update to ``a + b |h|`` cm
            (damping, see :class:`Richards1D`); ``None`` (default here) is undamped.
        diagonal_shift: adds ``diagonal_shift * (|lower| + |upper|)`` to the matrix diagonal
            (Jacobian only). With C ~ 0 (saturated or very dry cells) and flux boundaries the
            matrix is a near-singular Laplacian whose solve and gradient overflow in float32;
            a small shift keeps them finite at the price of slower convergence.
        tol: ``None`` runs exactly ``n_iter`` iterations. Otherwise a profile stops once
            every cell's mass residual is small, ``|F_i| dt <= tol (Delta_i + dt (|q_in| +
            |q_out| + |S_i|))`` (``F_i`` the cell balance in cm per time unit: an error of
            ``tol`` in water content plus ``tol`` of the water moving through the cell),
            or after ``n_iter`` updates. Converged profiles are frozen.
        gradient: with ``tol`` set: ``"implicit"`` iterates in a ``while_loop`` (stops when
            the whole batch has converged) and differentiates the converged step by the
            implicit function theorem (the exact tridiagonal Jacobian incl. dK/dh, one
            transposed solve; exact at a converged step, approximate where the cap was hit);
            ``"unrolled"`` always makes ``n_iter`` passes in a ``lax.scan`` and
            differentiates through them (exact for the computed iterate, always pays the cap).
            Either way a converged profile is frozen, so its result does not depend on the
            rest of the batch.
        update: ``"head"`` adds the (damped) step to h; ``"mixed"`` (van Genuchten soils)
            takes it in effective saturation for a dry cell being wetted; with h_s < 0 it
            linearises a saturated cell that the step drains on the unsaturated side of
            h_s (see :func:`_direction`); on the plain curve, with the Newton matrix and
            n < 2, it takes it in ``(alpha|h|)^(n-1)`` for a near-saturated cell and stops
            a step that crosses h = 0 at saturation (see :func:`_mixed_transform`). Only
            the path of the iteration changes, not its solution.
        line_search: with ``tol`` set, reject a trial that does not lower the sum of
            squared scaled residuals and retry with half the step, down to 1/32 of it.

    Returns:
        ``(h_new, theta_new, fluxes)`` with fluxes of the last iterate; ``fluxes.iterations``
        and ``fluxes.converged`` (against ``tol``, or 1e-6 with ``tol=None``) per profile.
    """
    if (top_flux is None) == (top_head is None):
        raise ValueError("richards_substep needs exactly one of top_flux or top_head")
    solver = RichardsSolver(
        n_iter=n_iter, tol=tol, jacobian=jacobian, capacity=capacity, interface=interface,
        diagonal_shift=diagonal_shift, max_head_change=max_head_change, gradient=gradient,
        update=update, line_search=line_search, flux_update=flux_update, ponding_head=ponding_head,
        max_halvings=0,
    )
    return solve_substep(h, theta_prev, soil, thickness, dt, solver, top_flux=top_flux, top_head=top_head,
                         bottom_head=bottom_head, uptake=uptake)


def solve_substep(
    h: Array,
    theta_prev: Array,
    soil,
    thickness,
    dt,
    solver: RichardsSolver,
    *,
    top_flux: Array | None = None,
    top_head: float | None = None,
    bottom_head: float | None = None,
    uptake: Callable[[Array], Array] | None = None,
    mode: str = "solve",
    active: Array | None = None,
) -> tuple[Array, Array, SubstepFluxes]:
    """:func:`richards_substep` with its settings in ``solver``; ``dt`` may be a scalar or
    one step length per profile (``[*batch]``, the adaptive day). ``mode`` see ``_MODES``;
    ``active`` (``[*batch]`` bool, mode ``"forward"``) freezes the other profiles."""
    if (top_flux is None) == (top_head is None):
        raise ValueError("richards_substep needs exactly one of top_flux or top_head")
    if solver.update == "mixed" and not isinstance(soil, VanGenuchten):
        raise ValueError(f"update='mixed' needs a VanGenuchten soil, got {type(soil).__name__}")
    n_iter, tol = int(solver.n_iter), solver.tol
    jacobian, interface, capacity = solver.jacobian, solver.interface, solver.capacity
    ponding_head, diagonal_shift = solver.ponding_head, solver.diagonal_shift
    thickness = np.asarray(thickness, dtype=np.float64)
    delta = jnp.asarray(thickness, h.dtype)
    if top_flux is not None:
        top_flux = jnp.asarray(top_flux, h.dtype)
    # a step length per profile broadcasts over the cells
    dtc = jnp.asarray(dt, h.dtype)[..., None] if jnp.ndim(dt) else dt

    def sink(h_):
        return jnp.zeros_like(h_) if uptake is None else uptake(h_)

    def fluxes(h_):
        if jacobian == "newton":
            k, dk = jax.jvp(soil.conductivity, (h_,), (jnp.ones_like(h_),))
        else:
            k = soil.conductivity(h_)
            dk = jnp.zeros_like(k)
        return _face_fluxes(
            h_, k, dk, soil, delta, top_flux, top_head, bottom_head, ponding_head, interface
        )

    # Iterates stay within [very dry, hydrostatic over the whole profile]: keeps a few
    # unconverged iterations finite when parameters are extreme.
    head_ceiling = float(thickness.sum()) + max(
        0.0, *(b for b in (top_head, bottom_head, ponding_head) if b is not None)
    )
    h_start = h
    theta_start = soil.water_content(h_start)

    def system(h_, theta_prev_):
        q, dq_up, dq_down, runoff, floor_gap = fluxes(h_)
        theta = soil.water_content(h_)
        if uptake is None:
            s = ds = jnp.zeros_like(h_)
        else:
            # the sink is per cell (S_i depends on h_i): its derivative is diagonal. Without
            # it a dry cell whose uptake outweighs its capacity oscillates with growing steps.
            s, ds = jax.jvp(uptake, (h_,), (jnp.ones_like(h_),))
        residual = q[..., :-1] - q[..., 1:] - s - delta * (theta - theta_prev_) / dtc
        floor = delta * _CAPACITY_FLOOR / dtc
        c = _capacity(soil, h_, theta, h_start, theta_start, capacity)
        # Row i of -dF/dh: F_i = q_{i-1/2} - q_{i+1/2} - sink_i - Delta_i (theta_i - theta_i^n) / dtc.
        lower = -dq_up[..., :-1]
        upper = dq_down[..., 1:]
        diag = delta * c / dtc + floor - dq_down[..., :-1] + dq_up[..., 1:] + ds
        diag = diag + diagonal_shift * (jnp.abs(lower) + jnp.abs(upper))
        moved = delta + dtc * (jnp.abs(q[..., :-1]) + jnp.abs(q[..., 1:]) + jnp.abs(s))
        scaled = residual * dtc / moved
        error, merit = jnp.max(jnp.abs(scaled), axis=-1), jnp.sum(scaled**2, axis=-1)
        floor = jnp.broadcast_to(floor, residual.shape)
        aux = _mixed_aux(soil, h_.shape, h_.dtype) if solver.update == "mixed" else None
        storage = delta * c / dtc
        # the linearised step sees the ponded surface face without its floor at 0
        rhs = residual.at[..., 0].add(floor_gap)
        if solver.update == "mixed" and soil.air_entry < 0.0:
            # a saturated cell's storage once it drains below h_s, and its head above h_s
            h_e = soil.air_entry
            entry = (delta * soil.capacity(jnp.full_like(h_, h_e - _ENTRY_OFFSET)) / dtc, h_ - h_e)
        else:
            entry = None
        return _System(residual, rhs, lower, diag, upper, floor, storage, theta, c, aux, entry, error, merit, q, s,
                       runoff)

    transform = _mixed_transform(jacobian == "newton") if solver.update == "mixed" else None

    def apply(h_, system_, step, scale):
        return _apply_step(h_, system_, step, scale, head_ceiling, solver.max_head_change, transform)

    one = jnp.ones(h.shape[:-1], h.dtype)

    if tol is None:
        for _ in range(int(n_iter)):
            system_ = system(h, theta_prev)
            h = apply(h, system_, _direction(system_), one)
        final = system(h, theta_prev)
        count = jnp.full(final.error.shape, float(n_iter), h.dtype)
        done = (final.error <= _REPORT_TOL).astype(h.dtype)
    elif mode == "forward":
        h, final, count, done = _iterate(
            lambda h_: system(h_, theta_prev), h, n_iter=n_iter, tol=tol, apply=apply, loop="while",
            line_search=solver.line_search, active=active,
        )
        done = done.astype(h.dtype)
    elif solver.gradient == "unrolled" and mode == "solve":
        h, final, count, done = _iterate(
            lambda h_: system(h_, theta_prev), h, n_iter=n_iter, tol=tol, apply=apply, loop="scan",
            line_search=solver.line_search,
        )
        done = done.astype(h.dtype)
    else:
        if mode == "at_solution":
            solve = at_solution
        else:
            solve = functools.partial(
                _iterate, n_iter=n_iter, tol=tol, apply=apply, loop="while", line_search=solver.line_search
            )
        converted, consts = jax.closure_convert(system, h, theta_prev)
        h, count, done = _implicit_solve(converted, solve, h, theta_prev, *consts)
        final = system(h, theta_prev)  # fluxes of the solution, differentiable in h and params
    count, done = jax.lax.stop_gradient(count), jax.lax.stop_gradient(done)

    q, s = final.q, final.sink
    if solver.flux_update:
        theta = theta_prev + dtc * (q[..., :-1] - q[..., 1:] - s) / delta
    else:
        theta = soil.water_content(h)
    return h, theta, SubstepFluxes(q[..., 0], q[..., -1], s.sum(-1), final.runoff, count, done)
