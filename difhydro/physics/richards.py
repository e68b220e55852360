"""One-dimensional Richards equation: layered soil, modified Picard, daily P-RNN layer.

Mixed form in depth zeta (cm, positive down) with downward flux ``q = K (1 - dh/dzeta)``:
``d theta / dt = -dq/dzeta - S`` (docs/physics.md §3.1). Cells i = 1..N have
thicknesses ``Delta_i`` (static, cm); fluxes live on faces, ``q_{i+1/2} = K_{i+1/2} (1 -
(h_{i+1} - h_i) / d_{i+1/2})`` with ``d_{i+1/2}`` the distance between cell centres.

Each sub-step is backward Euler solved by mass-conservative iterations on the mixed form
(Celia et al. 1990; section 3.2/3.3): the right side is the full nonlinear cell balance,
the tridiagonal matrix is modified Picard's (frozen capacity C and conductivity K) or
Newton's (dK/dh added), and every linear solve is ``jax.lax.linalg.tridiagonal_solve``.
:func:`richards_substep` either runs a fixed number of iterations (``tol=None``, the scheme
of the Celia tables) or iterates until every cell's mass residual is below a tolerance,
with a cap, and reports per profile how many iterations it used and whether it converged.
Gradients of the converged step come from the implicit function theorem (one transposed
tridiagonal solve with the exact Jacobian, dK/dh included) or from unrolling the capped
iteration. Finishing with the explicit flux update ``theta = theta^n + dt (q_in - q_out -
uptake) / Delta`` closes the water balance to round-off; with convergence theta stays
within the tolerance of theta(h). :class:`Richards1D` does all of this by default.

The flux top never delivers more than the supplied rain nor takes water out: infiltration
is ``min(rain, max(q_cap, 0))`` with ``q_cap`` the flux of a surface held at the ponding
head; the rest is runoff (no ponded storage).

:func:`richards_residual` is the discrete residual of section 3.6 used as a physics loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import ParamSpec, ProcessModel, safe_power
from .integrate import substeps
from .soil_hydraulics import VanGenuchten

Array = jax.Array

__all__ = ["Richards1D", "richards_substep", "richards_residual", "feddes_reduction", "SubstepFluxes"]

_GRADIENTS = ("implicit", "unrolled")
_UPDATES = ("head", "mixed")

_INTERFACES = ("arithmetic", "geometric")
_CAPACITIES = ("tangent", "chord")
_JACOBIANS = ("picard", "newton")
# Lowest head an iterate may take (cm, pF 7): (alpha|h|)^n stays far from float32 overflow.
_HEAD_FLOOR = -1e7
# Added to C in the Jacobian only (cm-1): keeps the matrix regular when every cell is
# saturated (C = 0) or bone dry (C underflows); the residual, hence the solution, is unchanged.
_CAPACITY_FLOOR = 1e-11
# Head change (cm) below which the chord capacity falls back to the tangent.
_CHORD_MIN_DH = 1e-3
# Floor of K_i K_{i+1} in the geometric mean: sqrt has an infinite derivative at 0.
_GEOMETRIC_FLOOR = 1e-30
# Tolerance against which a fixed-count step (tol=None) reports convergence.
_REPORT_TOL = 1e-6
# Smallest fraction of a step the line search tries; a step this short is taken anyway.
_MIN_STEP_SCALE = 1.0 / 32.0
# Relative diagonal dominance the implicit-gradient solve enforces (float32, float64).
_BWD_SHIFT = (1e-4, 1e-8)


def _interface_conductivity(k_a: Array, k_b: Array, interface: str) -> Array:
    """Face conductivity K_{i+1/2}: arithmetic (Celia et al. 1990) or geometric mean."""
    if interface == "arithmetic":
        return 0.5 * (k_a + k_b)
    return jnp.sqrt(jnp.maximum(k_a * k_b, _GEOMETRIC_FLOOR))


def _check_choice(name: str, value: str, choices: tuple[str, ...]):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class SubstepFluxes(NamedTuple):
    """Face fluxes of one sub-step (cm per time unit, positive downward), ``[*batch]``.

    ``top`` is the flux through the soil surface (infiltration), ``bottom`` through the
    lower boundary (drainage), ``uptake`` the sink summed over the profile, ``runoff`` the
    part of a prescribed top flux that could not infiltrate (0 for a Dirichlet top).
    ``iterations`` is the number of Picard updates the profile used and ``converged`` is 1
    where every cell's mass residual of the final iterate is within the tolerance, else 0
    (both in the dtype of h; see :func:`richards_substep`).
    """

    top: Array
    bottom: Array
    uptake: Array
    runoff: Array
    iterations: Array | None = None
    converged: Array | None = None


def _combine_substeps(total: SubstepFluxes, step: SubstepFluxes) -> SubstepFluxes:
    """Fluxes add up over sub-steps; the iteration count is the largest, convergence the
    weakest (a day converged when every sub-step did)."""
    return SubstepFluxes(
        top=total.top + step.top,
        bottom=total.bottom + step.bottom,
        uptake=total.uptake + step.uptake,
        runoff=total.runoff + step.runoff,
        iterations=jnp.maximum(total.iterations, step.iterations),
        converged=jnp.minimum(total.converged, step.converged),
    )


#: what :func:`_combine_substeps` leaves unchanged: no water moved, 0 iterations, converged
_SUBSTEP_IDENTITY = SubstepFluxes(top=0, bottom=0, uptake=0, runoff=0, iterations=0, converged=1)


def _interface_weights(k_a, k_b, k_face, interface):
    """Partial derivatives of K_{i+1/2} with respect to K_a (above) and K_b (below)."""
    if interface == "arithmetic":
        return 0.5, 0.5
    return (
        0.5 * k_face / jnp.maximum(k_a, _GEOMETRIC_FLOOR),
        0.5 * k_face / jnp.maximum(k_b, _GEOMETRIC_FLOOR),
    )


def _dirichlet_face(h_cell, k_cell, dk_cell, head, k_head, distance, interface, cell_above):
    """Flux between a boundary head and a cell a ``distance`` away; its derivative in h_cell.

    ``cell_above`` tells whether the cell lies above the boundary (bottom face) or below it
    (top face); fluxes are positive downward.
    """
    if cell_above:
        k_face = _interface_conductivity(k_cell, k_head, interface)
        w_cell, _ = _interface_weights(k_cell, k_head, k_face, interface)
        gradient = 1.0 - (head - h_cell) / distance
        return k_face * gradient, w_cell * dk_cell * gradient + k_face / distance
    k_face = _interface_conductivity(k_head, k_cell, interface)
    _, w_cell = _interface_weights(k_head, k_cell, k_face, interface)
    gradient = 1.0 - (h_cell - head) / distance
    return k_face * gradient, w_cell * dk_cell * gradient - k_face / distance


def _face_fluxes(h, k, dk, soil, thickness, top_flux, top_head, bottom_head, ponding_head, interface):
    """Downward fluxes through the N + 1 faces and their derivatives in the adjacent heads.

    ``dk`` is dK/dh per cell (zeros for modified Picard, where K is frozen). Returns
    ``q`` (``[*batch, N+1]``, face 0 is the surface), ``dq_up`` and ``dq_down`` (derivative
    of each face flux in the head of the cell above / below it; 0 where there is none) and
    the surface runoff ``[*batch]``.
    """
    centre_dist = 0.5 * (thickness[:-1] + thickness[1:])
    k_a, k_b = k[..., :-1], k[..., 1:]
    k_int = _interface_conductivity(k_a, k_b, interface)
    w_a, w_b = _interface_weights(k_a, k_b, k_int, interface)
    gradient = 1.0 - (h[..., 1:] - h[..., :-1]) / centre_dist
    q_int = k_int * gradient
    up_int = w_a * dk[..., :-1] * gradient + k_int / centre_dist
    down_int = w_b * dk[..., 1:] * gradient - k_int / centre_dist

    h1, k1, dk1 = h[..., 0], k[..., 0], dk[..., 0]
    half_top = 0.5 * thickness[0]
    if top_head is not None:
        k_head = soil.conductivity(jnp.full_like(h, top_head))[..., 0]
        q_top, down_top = _dirichlet_face(h1, k1, dk1, top_head, k_head, half_top, interface, False)
        runoff = jnp.zeros_like(q_top)
    else:
        # Flux top with a ponding limit: Dirichlet h = ponding_head once the supplied flux
        # exceeds the capacity of the surface face at the current iterate (section 3.3).
        # The capacity is floored at 0: a surface cell above the ponding head never pushes
        # water out through the top, so 0 <= infiltration <= supply and runoff >= 0.
        k_sat = soil.conductivity(jnp.full_like(h, ponding_head))[..., 0]
        q_cap, down_cap = _dirichlet_face(h1, k1, dk1, ponding_head, k_sat, half_top, interface, False)
        capacity = jnp.maximum(q_cap, 0.0)
        ponded = top_flux > capacity
        q_top = jnp.where(ponded, capacity, top_flux)
        down_top = jnp.where(ponded & (q_cap > 0.0), down_cap, 0.0)
        runoff = top_flux - q_top

    hn, kn, dkn = h[..., -1], k[..., -1], dk[..., -1]
    if bottom_head is None:
        # Free drainage: unit gradient.
        q_bottom, up_bottom = kn, dkn
    else:
        k_head = soil.conductivity(jnp.full_like(h, bottom_head))[..., -1]
        q_bottom, up_bottom = _dirichlet_face(
            hn, kn, dkn, bottom_head, k_head, 0.5 * thickness[-1], interface, True
        )

    zero = jnp.zeros_like(q_top)[..., None]
    q = jnp.concatenate([q_top[..., None], q_int, q_bottom[..., None]], axis=-1)
    dq_up = jnp.concatenate([zero, up_int, up_bottom[..., None]], axis=-1)
    dq_down = jnp.concatenate([down_top[..., None], down_int, zero], axis=-1)
    return q, dq_up, dq_down, runoff


def _capacity(soil, h, theta, h_start, theta_start, capacity):
    """Jacobian storage coefficient: tangent C(h^m) (Celia et al. 1990) or the chord
    (theta(h^m) - theta(h^n)) / (h^m - h^n) (Rathfelder & Abriola 1994), which stays
    non-zero when an iterate jumps to saturation (tangent C = 0 there) and so damps the
    wet/dry oscillation of a few fixed Picard iterations. Either way the residual is the
    full cell balance, so the converged solution is the same."""
    tangent = soil.capacity(h)
    if capacity == "tangent":
        return tangent
    dh = h - h_start
    far = jnp.abs(dh) > _CHORD_MIN_DH
    chord = (theta - theta_start) / jnp.where(far, dh, 1.0)
    return jnp.where(far, chord, tangent)


class _System(NamedTuple):
    """Cell balance at one iterate: residual, iteration matrix, fluxes and the scaled error."""

    residual: Array  # F_i = q_in - q_out - S_i - Delta_i (theta_i - theta_i^n) / dt
    lower: Array  # rows of the iteration matrix M ~ -dF/dh (Picard: K and C frozen)
    diag: Array
    upper: Array
    storage_floor: Array  # Delta C_floor / dt, part of diag
    storage: Array  # Delta C / dt, part of diag
    theta: Array  # theta(h)
    capacity: Array  # the storage coefficient of the matrix (without the floor)
    aux: tuple | None  # inputs of the update="mixed" step (see _mixed_aux)
    error: Array  # [*batch]: max_i |F_i| dt / (Delta_i + dt (|q_in| + |q_out| + |S_i|))
    merit: Array  # [*batch]: sum_i of the same ratio squared
    q: Array
    sink: Array
    runoff: Array


def _direction(system: _System) -> Array:
    """The linearised step ``dh = M^{-1} F`` (M the Picard or Newton matrix, ~ -dF/dh)."""
    return jax.lax.linalg.tridiagonal_solve(
        system.lower, system.diag, system.upper, system.residual[..., None]
    )[..., 0]


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
    vg = VanGenuchten(*(jnp.broadcast_to(jnp.asarray(getattr(soil, k), dtype), shape) for k in _SOIL_NAMES))
    return vg, vg.inflection_head()


def _mixed_transform(newton):
    """The update of ``update="mixed"`` (van Genuchten soils).

    - A cell drier than the inflection head h* of theta(h) that the step wets takes the
      step in water content, ``theta + C dh``, mapped back by ``pressure_head``. Below h*,
      theta(h) is convex, so a head step that wets the cell adds more water than the
      linearisation predicts; with C small and falling steeply the head form overshoots by
      orders of magnitude and the iteration cycles between dry and saturated. A drying
      step keeps the head form, which undershoots monotonically on the convex curve.
    - With the Newton matrix and n < 2, an unsaturated cell wetter than h* takes the step
      in ``w = -(alpha|h|)^(n-1)``: near saturation the Mualem K is ``Ks (1 + 2w + ...)``,
      linear in w but with an unbounded slope in h, so Newton in h cycles across
      saturation while Newton in w does not. It stops at saturation (w = 0).
    - A saturated cell whose step would unsaturate it stops at h = 0: above saturation K
      and theta are flat, so the linearisation there says nothing about the other side.
    """

    def transform(h, system, step, h_new, limit):
        vg, h_star = system.aux
        wetting = (h < h_star) & (step > 0.0)
        out = jnp.where(wetting, vg.pressure_head(system.theta + system.capacity * step), h_new)
        if newton:
            steep = vg.n < 2.0
            p = jnp.where(steep, vg.n - 1.0, 0.5)  # unused where not steep; finite powers
            near = steep & (h >= h_star) & (h < 0.0)
            suction = vg.alpha * jnp.maximum(-h, 0.0)
            w = -safe_power(suction, p, 1e-12)
            w_new = w + step * p * vg.alpha * safe_power(suction, p - 1.0, 1e-12)
            h_w = -safe_power(jnp.maximum(-w_new, 0.0), 1.0 / p, 1e-30) / vg.alpha
            if limit is not None:
                h_w = jnp.clip(h_w, h - limit, h + limit)
            out = jnp.where(near, h_w, out)
        return jnp.where((h > 0.0) & (out < 0.0), 0.0, out)

    return transform


def _select(mask, a, b):
    """Per-profile choice between two pytrees of ``[*batch, ...]`` arrays."""
    return jax.tree_util.tree_map(
        lambda x, y: jnp.where(jnp.reshape(mask, mask.shape + (1,) * (x.ndim - mask.ndim)), x, y), a, b
    )


def _iterate(system_fn, h, *, n_iter, tol, apply, loop, line_search):
    """Linearised updates from ``h`` until every profile's error is <= ``tol`` or ``n_iter``
    trial updates were made; a converged profile is frozen, so its result does not depend
    on the rest of the batch. ``loop="while"`` stops as soon as all profiles have converged
    (not reverse-differentiable); ``"scan"`` always makes ``n_iter`` passes (differentiable).

    ``line_search`` backtracks: a trial that does not lower the merit (sum of squared
    scaled residuals) is rejected and retried with half the step (same direction, no new
    solve), down to ``_MIN_STEP_SCALE`` of it, which is taken anyway. Returns ``(h, system
    at h, trials per profile, converged per profile)``."""
    system = system_fn(h)
    done = system.error <= tol
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


def _tridiagonal_jacobian(fn, h):
    """Exact tridiagonal Jacobian of ``fn`` (``[*batch, N] -> [*batch, N]``, row i depends
    on h_{i-1}, h_i, h_{i+1} only) from three coloured forward-mode products: ``(lower,
    diag, upper)`` with ``lower[i] = dF_i/dh_{i-1}`` and ``upper[i] = dF_i/dh_{i+1}``."""
    colour = np.arange(h.shape[-1]) % 3
    _, jvp = jax.linearize(fn, h)
    cols = [jvp(jnp.broadcast_to(jnp.asarray(colour == c, h.dtype), h.shape)) for c in range(3)]

    def band(shift):  # entry (i, i + shift) sits in the product of the colour of i + shift
        source = (colour + shift) % 3
        return sum(jnp.where(source == c, cols[c], 0.0) for c in range(3))

    return band(-1).at[..., 0].set(0.0), band(0), band(1).at[..., -1].set(0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _implicit_solve(system_fn, solve, h0, theta_prev, *consts):
    """``h`` with ``residual(h) = 0`` found by ``solve`` from ``h0``; differentiated by the
    implicit function theorem at the returned iterate (``h0`` gets a zero cotangent)."""
    h, _, count, done = solve(lambda h_: system_fn(h_, theta_prev, *consts), h0)
    return h, count, done.astype(h.dtype)


def _implicit_solve_fwd(system_fn, solve, h0, theta_prev, *consts):
    out = _implicit_solve(system_fn, solve, h0, theta_prev, *consts)
    return out, (out[0], theta_prev, consts)


def _implicit_solve_bwd(system_fn, solve, residuals, cotangents):
    h, theta_prev, consts = residuals
    g = cotangents[0]

    def residual(h_, theta_prev_, *consts_):
        system = system_fn(h_, theta_prev_, *consts_)
        return system.residual, system.storage_floor + system.storage

    lower, diag, upper = _tridiagonal_jacobian(lambda h_: residual(h_, theta_prev, *consts)[0], h)
    (_, storage), vjp = jax.vjp(lambda *args: residual(h, *args), theta_prev, *consts)
    # J = dF/dh. Where the storage term Delta C / dt is negligible against the face terms
    # (a saturated or incompressible profile under a flux top: a Neumann Laplacian, singular
    # up to a uniform shift of h) the backward solve gets the storage that makes the row
    # diagonally dominant by a relative margin: finite gradients, those of a marginally
    # compressible profile; rows with real storage are unchanged.
    eps = _BWD_SHIFT[jnp.dtype(h.dtype).itemsize >= 8]
    deficit = eps * (jnp.abs(lower) + jnp.abs(upper)) - jax.lax.stop_gradient(storage)
    diag = diag - jnp.maximum(deficit, 0.0)
    # J^T lam = g with (J^T)_{i,i-1} = J_{i-1,i} and (J^T)_{i,i+1} = J_{i+1,i}
    zero = jnp.zeros_like(h[..., :1])
    t_lower = jnp.concatenate([zero, upper[..., :-1]], axis=-1)
    t_upper = jnp.concatenate([lower[..., 1:], zero], axis=-1)
    lam = jax.lax.linalg.tridiagonal_solve(t_lower, diag, t_upper, g[..., None])[..., 0]
    # dh/dp = -J^{-1} dF/dp, so p_bar = -(dF/dp)^T lam
    bars = vjp((-lam, jnp.zeros_like(storage)))
    return (jnp.zeros_like(h), *bars)


_implicit_solve.defvjp(_implicit_solve_fwd, _implicit_solve_bwd)


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
            takes it in water content for a dry cell being wetted and, with the Newton
            matrix and n < 2, in ``(alpha|h|)^(n-1)`` for a near-saturated cell, and stops
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
    _check_choice("interface", interface, _INTERFACES)
    _check_choice("capacity", capacity, _CAPACITIES)
    _check_choice("jacobian", jacobian, _JACOBIANS)
    _check_choice("gradient", gradient, _GRADIENTS)
    _check_choice("update", update, _UPDATES)
    if update == "mixed" and not isinstance(soil, VanGenuchten):
        raise ValueError(f"update='mixed' needs a VanGenuchten soil, got {type(soil).__name__}")
    if int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be positive or None, got {tol}")
    thickness = np.asarray(thickness, dtype=np.float64)
    delta = jnp.asarray(thickness, h.dtype)
    if top_flux is not None:
        top_flux = jnp.asarray(top_flux, h.dtype)

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
        q, dq_up, dq_down, runoff = fluxes(h_)
        theta = soil.water_content(h_)
        if uptake is None:
            s = ds = jnp.zeros_like(h_)
        else:
            # the sink is per cell (S_i depends on h_i): its derivative is diagonal. Without
            # it a dry cell whose uptake outweighs its capacity oscillates with growing steps.
            s, ds = jax.jvp(uptake, (h_,), (jnp.ones_like(h_),))
        residual = q[..., :-1] - q[..., 1:] - s - delta * (theta - theta_prev_) / dt
        floor = delta * _CAPACITY_FLOOR / dt
        c = _capacity(soil, h_, theta, h_start, theta_start, capacity)
        # Row i of -dF/dh: F_i = q_{i-1/2} - q_{i+1/2} - sink_i - Delta_i (theta_i - theta_i^n) / dt.
        lower = -dq_up[..., :-1]
        upper = dq_down[..., 1:]
        diag = delta * c / dt + floor - dq_down[..., :-1] + dq_up[..., 1:] + ds
        diag = diag + diagonal_shift * (jnp.abs(lower) + jnp.abs(upper))
        moved = delta + dt * (jnp.abs(q[..., :-1]) + jnp.abs(q[..., 1:]) + jnp.abs(s))
        scaled = residual * dt / moved
        error, merit = jnp.max(jnp.abs(scaled), axis=-1), jnp.sum(scaled**2, axis=-1)
        floor = jnp.broadcast_to(floor, residual.shape)
        aux = _mixed_aux(soil, h_.shape, h_.dtype) if update == "mixed" else None
        storage = delta * c / dt
        return _System(residual, lower, diag, upper, floor, storage, theta, c, aux, error, merit, q, s, runoff)

    transform = _mixed_transform(jacobian == "newton") if update == "mixed" else None

    def apply(h_, system_, step, scale):
        return _apply_step(h_, system_, step, scale, head_ceiling, max_head_change, transform)

    one = jnp.ones(h.shape[:-1], h.dtype)

    if tol is None:
        for _ in range(int(n_iter)):
            system_ = system(h, theta_prev)
            h = apply(h, system_, _direction(system_), one)
        final = system(h, theta_prev)
        count = jnp.full(final.error.shape, float(n_iter), h.dtype)
        done = (final.error <= _REPORT_TOL).astype(h.dtype)
    elif gradient == "unrolled":
        h, final, count, done = _iterate(
            lambda h_: system(h_, theta_prev), h, n_iter=n_iter, tol=tol, apply=apply, loop="scan",
            line_search=line_search,
        )
        done = done.astype(h.dtype)
    else:
        solve = functools.partial(
            _iterate, n_iter=n_iter, tol=tol, apply=apply, loop="while", line_search=line_search
        )
        converted, consts = jax.closure_convert(system, h, theta_prev)
        h, count, done = _implicit_solve(converted, solve, h, theta_prev, *consts)
        final = system(h, theta_prev)  # fluxes of the solution, differentiable in h and params
    count, done = jax.lax.stop_gradient(count), jax.lax.stop_gradient(done)

    q, s = final.q, final.sink
    if flux_update:
        theta = theta_prev + dt * (q[..., :-1] - q[..., 1:] - s) / delta
    else:
        theta = soil.water_content(h)
    return h, theta, SubstepFluxes(q[..., 0], q[..., -1], s.sum(-1), final.runoff, count, done)


def feddes_reduction(h: Array, heads=(-10.0, -25.0, -400.0, -8000.0)) -> Array:
    """Feddes et al. (1978) water-stress factor alpha_F(h) in [0, 1], piecewise linear.

    ``heads = (h1, h2, h3, h4)`` (cm, h1 > h2 > h3 > h4): no uptake wetter than h1
    (anaerobiosis) or drier than h4 (wilting point), full uptake between h2 and h3.
    """
    h1, h2, h3, h4 = heads
    wet = jnp.clip((h1 - h) / (h1 - h2), 0.0, 1.0)
    dry = jnp.clip((h - h4) / (h3 - h4), 0.0, 1.0)
    return jnp.minimum(wet, dry)


_SOIL_NAMES = ("theta_r", "theta_s", "alpha", "n", "k_s")


class Richards1D(ProcessModel):
    """Layered 1-D Richards equation (van Genuchten-Mualem) as a daily P-RNN layer.

    Units: cm for lengths and heads; the time unit is set by ``k_s`` and ``dt`` (days for
    the daily model: ``dt = 1``, ``k_s`` in cm d-1). Fluxes are in cm per time unit.
    The Celia benchmarks in seconds run either with ``k_s`` in cm s-1 and ``dt`` in s
    (``simulate(..., check=False)``, since the boxes below are in cm d-1), or converted to
    days.

    Forcing (``[time, *batch]``): ``precipitation`` (water reaching the soil surface, cm
    d-1, >= 0; CAMELS mm d-1 / 10) — absent when ``top_head`` is set — and
    ``potential_transpiration`` T_p (cm d-1). Each forcing step of length ``dt`` is split
    into ``n_substeps`` equal backward-Euler sub-steps (inner ``lax.scan``) with forcing held
    constant; each sub-step iterates until every cell's mass residual is within ``tol``
    (at most ``n_iter`` iterations; see :func:`richards_substep`). :func:`simulate` does not
    checkpoint the days by default (``default_checkpoint``): with the implicit gradient
    only one profile per sub-step is stored, and recomputing the Newton iterations costs
    more than it saves (pass ``checkpoint=True`` for very long sequences).

    The default iteration is Newton's (exact tridiagonal Jacobian, dK/dh and the sink
    derivative included) with a backtracking line search on the scaled residual, taken in
    water content for a dry cell being wetted and in ``(alpha|h|)^(n-1)`` for a
    near-saturated one (``update="mixed"``, see :func:`_mixed_transform`), and damped by
    ``max_head_change``. Gradients come from the implicit function theorem at the
    converged sub-step (``gradient="implicit"``: one transposed tridiagonal solve per
    sub-step, no reverse pass through the iterations). ``jacobian="picard",
    update="head", line_search=False, tol=None, n_iter=5, flux_update=False`` is the
    fixed-count modified Picard scheme of section 3.3 that this model ran before.

    Parameters are per layer, event shape ``(n_layers,)``, so they come as ``[*batch,
    n_layers]``; a per-profile scalar ``[*batch, 1]`` or ``()`` broadcasts over the layers.
    Boxes (Carsel & Parrish 1988 textures fall inside): ``theta_r`` [0, 0.2], ``theta_s``
    [0.3, 0.6], ``alpha`` [0.002, 0.2] cm-1, ``n`` [1.05, 3], ``k_s`` [0.1, 1000] cm d-1.

    States ``[*batch, n_layers]``: ``pressure_head`` h (cm) and ``water_content`` theta.
    With ``flux_update=True`` (default) theta is advanced by the fluxes of the final
    iterate, so the water balance closes to round-off, and h keeps the final iterate; at a
    converged sub-step theta and theta(h) differ by at most ``tol`` (of a cell's content
    plus its throughput), and the next step's residual ``theta(h) - theta^n`` pulls the two
    back together.

    Outputs (``[*batch]``, per forcing step):

    - ``infiltration``: flux through the surface, mean over the step (cm per time unit,
      positive downward); with the flux top ``0 <= infiltration <= precipitation``.
    - ``runoff``: ``precipitation - infiltration >= 0`` (infiltration excess above the
      ponding limit; no ponded storage).
    - ``drainage``: bottom flux (negative is capillary rise).
    - ``root_water_uptake``: Feddes sink ``S_i = T_p r_i alpha_F(h_i) / Delta_i`` summed
      over layers.
    - ``soil_water``: profile storage sum theta_i Delta_i at the end of the step (cm).
    - ``water_balance_error``: ``(soil_water_t - soil_water_{t-1}) / dt - (infiltration -
      drainage - root_water_uptake)`` (cm per time unit; cm d-1 for the daily model): float32
      round-off with ``flux_update``, the accumulated cell residuals otherwise.
    - ``iterations``: the largest number of iterations (trial updates, line-search
      retries included) any sub-step of the step used.
    - ``converged``: 1 if every sub-step of the step met ``tol``, else 0. A 0 says the
      heads of some sub-step are not the backward-Euler solution (with the flux update the
      water balance still closes, but theta may depart from theta(h) and the implicit
      gradient of that sub-step is approximate).

    Attributes:
        thickness: layer thicknesses Delta_i, cm, top first (non-uniform allowed).
        dt: length of one forcing step (1 d).
        n_substeps: sub-steps per forcing step.
        n_iter: cap on the iterations per sub-step (with ``tol=None``: their fixed number).
        bottom_head: Dirichlet head below the profile (cm); ``None`` is free drainage.
        top_head: Dirichlet surface head (cm) replacing the flux top (benchmarks).
        interface: ``"arithmetic"`` or ``"geometric"`` face conductivity.
        flux_update: explicit flux update of theta after the iterations (exact closure).
        initial_head: uniform initial pressure head, cm.
        root_depth: roots spread uniformly (per cm) over ``[0, root_depth]`` cm, used when
            ``root_fraction`` is ``None``.
        root_fraction: uptake fraction r_i per layer (sums to 1), overriding ``root_depth``.
        feddes_heads: Feddes (h1, h2, h3, h4), cm.
        jacobian: ``"newton"`` (default, adds dK/dh) or ``"picard"`` (Celia's frozen K).
        capacity: ``"tangent"`` (default) or ``"chord"`` storage coefficient (see
            :func:`richards_substep`).
        diagonal_shift: relative diagonal shift of the iteration matrix (finite float32
            solves for near-saturated or bone-dry profiles; see :func:`richards_substep`).
        max_head_change: ``(a, b)``: each update of a cell's head is limited to ``a + b
            |h|`` cm (damping; the default (50 cm, 0.5) cuts the non-converged days of a
            box sweep fivefold); ``None`` is undamped.
        tol: convergence tolerance of a sub-step (``richards_substep``'s ``tol``:
            residual of each cell within ``tol`` of its content plus throughput);
            ``None`` runs exactly ``n_iter`` iterations (convergence is still reported,
            against 1e-6).
        gradient: ``"implicit"`` (default) or ``"unrolled"`` (see :func:`richards_substep`).
        update: ``"mixed"`` (default) or ``"head"`` (plain head update).
        line_search: backtracking on the scaled residual (default on).

    Limits: convergence is reported, not enforced. In float32 with the defaults, over a
    year of random rain (with 8 cm d-1 days) on the twelve Carsel & Parrish textures
    (5-25 cm layers) 1.3 % of the profile-days did not converge, nearly all on fine
    textures (n <= 1.3) at or near saturation, where the Mualem K has an unbounded slope
    (n < 2) and a kink at h = 0; in the box corners (n = 1.05, or n = 3 with alpha =
    0.2) it is more. The while loop stops when the slowest profile of the batch has
    converged, so one hard profile makes the whole batch iterate up to ``n_iter``.
    """

    #: measured: forward + backward 1.6x faster without checkpointing (the implicit gradient
    #: stores one profile per sub-step, not the iterations; docs/speed.md)
    default_checkpoint: ClassVar[bool] = False

    thickness: tuple[float, ...] = eqx.field(static=True, default=(10.0,) * 10)
    dt: float = eqx.field(static=True, default=1.0)
    n_substeps: int = eqx.field(static=True, default=24)
    n_iter: int = eqx.field(static=True, default=20)
    bottom_head: float | None = eqx.field(static=True, default=None)
    top_head: float | None = eqx.field(static=True, default=None)
    interface: str = eqx.field(static=True, default="arithmetic")
    flux_update: bool = eqx.field(static=True, default=True)
    initial_head: float = eqx.field(static=True, default=-100.0)
    root_depth: float = eqx.field(static=True, default=50.0)
    root_fraction: tuple[float, ...] | None = eqx.field(static=True, default=None)
    feddes_heads: tuple[float, float, float, float] = eqx.field(
        static=True, default=(-10.0, -25.0, -400.0, -8000.0)
    )
    jacobian: str = eqx.field(static=True, default="newton")
    capacity: str = eqx.field(static=True, default="tangent")
    diagonal_shift: float = eqx.field(static=True, default=1e-5)
    max_head_change: tuple[float, float] | None = eqx.field(static=True, default=(50.0, 0.5))
    tol: float | None = eqx.field(static=True, default=1e-6)
    gradient: str = eqx.field(static=True, default="implicit")
    update: str = eqx.field(static=True, default="mixed")
    line_search: bool = eqx.field(static=True, default=True)

    param_spec = {
        "theta_r": ParamSpec(0.0, 0.2, "-", 0.078, "residual water content (theta_r)"),
        "theta_s": ParamSpec(0.3, 0.6, "-", 0.43, "saturated water content (theta_s)"),
        "alpha": ParamSpec(0.002, 0.2, "cm-1", 0.036, "van Genuchten inverse air-entry head (alpha)"),
        "n": ParamSpec(1.05, 3.0, "-", 1.56, "van Genuchten pore-size index (n)"),
        "k_s": ParamSpec(0.1, 1000.0, "cm d-1", 24.96, "saturated hydraulic conductivity (Ks)"),
    }
    state_names = ("water_content", "pressure_head")
    output_names = (
        "infiltration",
        "runoff",
        "drainage",
        "root_water_uptake",
        "soil_water",
        "water_balance_error",
        "iterations",
        "converged",
    )

    def __check_init__(self):
        thickness = np.asarray(self.thickness, dtype=float)
        if thickness.ndim != 1 or thickness.size < 2 or not np.all(thickness > 0):
            raise ValueError(f"thickness must list >= 2 positive layer thicknesses (cm), got {self.thickness}")
        if not self.dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        if int(self.n_substeps) < 1:
            raise ValueError(f"n_substeps must be >= 1, got {self.n_substeps}")
        if int(self.n_iter) < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}")
        if self.tol is not None and not self.tol > 0:
            raise ValueError(f"tol must be positive or None, got {self.tol}")
        _check_choice("interface", self.interface, _INTERFACES)
        _check_choice("gradient", self.gradient, _GRADIENTS)
        _check_choice("update", self.update, _UPDATES)
        _check_choice("jacobian", self.jacobian, _JACOBIANS)
        _check_choice("capacity", self.capacity, _CAPACITIES)
        h1, h2, h3, h4 = self.feddes_heads
        if not h1 > h2 > h3 > h4:
            raise ValueError(f"feddes_heads must satisfy h1 > h2 > h3 > h4, got {self.feddes_heads}")
        if self.root_fraction is not None:
            r = np.asarray(self.root_fraction, dtype=float)
            if r.shape != thickness.shape or np.any(r < 0) or abs(r.sum() - 1.0) > 1e-6:
                raise ValueError(
                    f"root_fraction must hold {thickness.size} non-negative values summing to 1, "
                    f"got {self.root_fraction}"
                )
        elif not self.root_depth > 0:
            raise ValueError(f"root_depth must be positive (cm), got {self.root_depth}")

    @property
    def n_layers(self) -> int:
        return len(self.thickness)

    @property
    def forcing_names(self) -> dict[str, str]:
        if self.top_head is None:
            return {"precipitation": "cm d-1", "potential_transpiration": "cm d-1"}
        return {"potential_transpiration": "cm d-1"}

    def param_event_shape(self, name: str) -> tuple[int, ...]:
        return (self.n_layers,)

    def root_fractions(self) -> np.ndarray:
        """Uptake fraction r_i per layer (numpy, sums to 1)."""
        if self.root_fraction is not None:
            return np.asarray(self.root_fraction, dtype=float)
        bottoms = np.cumsum(self.thickness)
        tops = bottoms - np.asarray(self.thickness)
        overlap = np.clip(np.minimum(bottoms, self.root_depth) - tops, 0.0, None)
        return overlap / overlap.sum()

    def soil(self, params: Mapping[str, Array]) -> VanGenuchten:
        """The van Genuchten-Mualem soil of ``params``, broadcast to ``[*batch, n_layers]``."""
        return VanGenuchten(**{k: jnp.asarray(params[k]) for k in _SOIL_NAMES})

    def initial_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        soil = self.soil(params)
        shape = jnp.broadcast_shapes(*(jnp.shape(params[k]) for k in _SOIL_NAMES), (self.n_layers,))
        dtype = jnp.result_type(*(params[k] for k in _SOIL_NAMES), jnp.float32)
        h = jnp.full(shape, self.initial_head, dtype)
        return {"water_content": soil.water_content(h), "pressure_head": h}

    def _advance(self, h, theta, forcing, params):
        soil = self.soil(params)
        delta = np.asarray(self.thickness, dtype=float)
        roots = jnp.asarray(self.root_fractions(), h.dtype)
        dt_sub = self.dt / int(self.n_substeps)
        tp = jnp.asarray(forcing["potential_transpiration"], h.dtype)
        top_flux = None if self.top_head is not None else jnp.asarray(forcing["precipitation"], h.dtype)

        def uptake(h_):
            return tp[..., None] * roots * feddes_reduction(h_, self.feddes_heads)

        def substep(carry):
            h_, theta_ = carry
            h_, theta_, f = richards_substep(
                h_,
                theta_,
                soil,
                delta,
                dt_sub,
                top_flux=top_flux,
                top_head=self.top_head,
                bottom_head=self.bottom_head,
                uptake=uptake,
                n_iter=self.n_iter,
                interface=self.interface,
                flux_update=self.flux_update,
                capacity=self.capacity,
                jacobian=self.jacobian,
                diagonal_shift=self.diagonal_shift,
                max_head_change=self.max_head_change,
                tol=self.tol,
                gradient=self.gradient,
                update=self.update,
                line_search=self.line_search,
            )
            return (h_, theta_), f

        theta_start = theta
        (h, theta), f = substeps(substep, (h, theta), self.n_substeps, _combine_substeps, _SUBSTEP_IDENTITY)
        mean = f._replace(**{k: getattr(f, k) / int(self.n_substeps) for k in ("top", "bottom", "uptake", "runoff")})
        thick = jnp.asarray(delta, theta.dtype)
        change = ((theta - theta_start) * thick).sum(-1)  # cell by cell: no cancellation
        outputs = {
            "infiltration": mean.top,
            "runoff": mean.runoff,
            "drainage": mean.bottom,
            "root_water_uptake": mean.uptake,
            "soil_water": (theta * thick).sum(-1),
            "water_balance_error": change / self.dt - (mean.top - mean.bottom - mean.uptake),
            "iterations": f.iterations,
            "converged": f.converged,
        }
        return h, theta, outputs

    def step(self, state, forcing, params):
        """Advance one forcing step (``dt``, 1 d) in ``n_substeps`` Picard sub-steps."""
        h, theta, outputs = self._advance(state["pressure_head"], state["water_content"], forcing, params)
        return {"water_content": theta, "pressure_head": h}, outputs


def richards_residual(
    theta_prev: Array,
    theta_now: Array,
    depths,
    soil,
    dt,
    sink: Array | float = 0.0,
    interface: str = "arithmetic",
) -> Array:
    """Discrete Richards residual at interior nodes (Zhang et al. 2025; section 3.6).

    ``R_i = (theta_i^t - theta_i^{t-1}) / dt + (q_{i+1/2} - q_{i-1/2}) / Delta_i + S_i`` with
    ``h_i = h(theta_i^t)``, ``K_i = K(h_i)`` (implicit, time-t evaluation),
    ``q_{i+1/2} = K_{i+1/2} (1 - (h_{i+1} - h_i) / d_{i+1/2})`` (downward),
    ``d_{i+1/2} = zeta_{i+1} - zeta_i`` and ``Delta_i = (zeta_{i+1} - zeta_{i-1}) / 2``.
    A physics loss is ``mean(R**2)``.

    Args:
        theta_prev, theta_now: water content at days t-1 and t, ``[*batch, n_depths]``.
        depths: node depths zeta_i, cm, increasing, ``[n_depths]`` (or broadcastable to
            the batch), n_depths >= 3.
        soil: van Genuchten parameters, a mapping with ``theta_r``, ``theta_s``, ``alpha``
            (cm-1), ``n``, ``k_s`` (cm per time unit of ``dt``) broadcastable to
            ``[*batch, n_depths]``, or a :class:`VanGenuchten`.
        dt: time between the two profiles (1 d).
        sink: sink S_i (per time unit), broadcastable to ``[*batch, n_depths]``; only the
            interior entries are used.
        interface: ``"arithmetic"`` or ``"geometric"`` face conductivity.

    Returns:
        R at the interior nodes, ``[*batch, n_depths - 2]`` (per time unit).
    """
    _check_choice("interface", interface, _INTERFACES)
    if isinstance(soil, Mapping):
        missing = [k for k in _SOIL_NAMES if k not in soil]
        if missing:
            raise ValueError(f"soil is missing van Genuchten parameters {missing}")
        soil = VanGenuchten(**{k: jnp.asarray(soil[k]) for k in _SOIL_NAMES})
    theta_prev = jnp.asarray(theta_prev)
    theta_now = jnp.asarray(theta_now)
    depths = jnp.asarray(depths, theta_now.dtype)
    if theta_now.shape[-1] < 3 or depths.shape[-1] != theta_now.shape[-1]:
        raise ValueError(
            f"depths ({depths.shape}) and theta_now ({theta_now.shape}) need the same last "
            f"axis of >= 3 nodes"
        )
    h = soil.pressure_head(theta_now)
    k = soil.conductivity(h)
    spacing = depths[..., 1:] - depths[..., :-1]
    k_face = _interface_conductivity(k[..., :-1], k[..., 1:], interface)
    q = k_face * (1.0 - (h[..., 1:] - h[..., :-1]) / spacing)
    control = 0.5 * (depths[..., 2:] - depths[..., :-2])
    storage = (theta_now - theta_prev)[..., 1:-1] / dt
    sink = jnp.broadcast_to(jnp.asarray(sink, theta_now.dtype), theta_now.shape)[..., 1:-1]
    return storage + (q[..., 1:] - q[..., :-1]) / control + sink
