"""Face fluxes of the layered Richards equation, the storage coefficient and the root sink.

Depth zeta (cm) is positive down and fluxes are downward: ``q_{i+1/2} = K_{i+1/2} (1 -
(h_{i+1} - h_i) / d_{i+1/2})`` with ``d_{i+1/2}`` the distance between cell centres
(docs/physics.md section 3). Every function here is pure and shaped ``[*batch, N]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

#: the van Genuchten parameters of a soil, in the order of :class:`VanGenuchten`
SOIL_NAMES = ("theta_r", "theta_s", "alpha", "n", "k_s")
# Head change (cm) below which the chord capacity falls back to the tangent.
_CHORD_MIN_DH = 1e-3
# Floor of K_i K_{i+1} in the geometric mean: sqrt has an infinite derivative at 0.
_GEOMETRIC_FLOOR = 1e-30


def _interface_conductivity(k_a: Array, k_b: Array, interface: str) -> Array:
    """Face conductivity K_{i+1/2}: arithmetic (Celia et al. 1990) or geometric mean."""
    if interface == "arithmetic":
        return 0.5 * (k_a + k_b)
    return jnp.sqrt(jnp.maximum(k_a * k_b, _GEOMETRIC_FLOOR))



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
    the surface runoff ``[*batch]``, and ``floor_gap`` (``[*batch]``, <= 0): the flux of the
    ponded surface face below the floor at 0 (``q_cap`` where ``q_cap < 0``, else 0), which the
    iteration adds to the right side of its linearised step (not to the residual).
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
        runoff = floor_gap = jnp.zeros_like(q_top)
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
        # Where the floor acts (q_cap < 0) the flux is flat in h_1; the iteration matrix and
        # floor_gap keep the Dirichlet face there, so Newton steps back to q_cap >= 0 at once
        down_top = jnp.where(ponded, down_cap, 0.0)
        floor_gap = jnp.where(ponded, jnp.minimum(q_cap, 0.0), 0.0)
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
    return q, dq_up, dq_down, runoff, floor_gap


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



def feddes_reduction(h: Array, heads=(-10.0, -25.0, -400.0, -8000.0)) -> Array:
    """Feddes et al. (1978) water-stress factor alpha_F(h) in [0, 1], piecewise linear.

    ``heads = (h1, h2, h3, h4)`` (cm, h1 > h2 > h3 > h4): no uptake wetter than h1
    (anaerobiosis) or drier than h4 (wilting point), full uptake between h2 and h3.
    """
    h1, h2, h3, h4 = heads
    wet = jnp.clip((h1 - h) / (h1 - h2), 0.0, 1.0)
    dry = jnp.clip((h - h4) / (h3 - h4), 0.0, 1.0)
    return jnp.minimum(wet, dry)

