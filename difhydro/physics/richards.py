"""One-dimensional Richards equation: layered soil, modified Picard, daily P-RNN layer.

Mixed form in depth zeta (cm, positive down) with downward flux ``q = K (1 - dh/dzeta)``:
``d theta / dt = -dq/dzeta - S`` (process-models.md section 3.1). Cells i = 1..N have
thicknesses ``Delta_i`` (static, cm); fluxes live on faces, ``q_{i+1/2} = K_{i+1/2} (1 -
(h_{i+1} - h_i) / d_{i+1/2})`` with ``d_{i+1/2}`` the distance between cell centres.

Each sub-step is backward Euler solved with a FIXED number of mass-conservative modified
Picard iterations (Celia et al. 1990; section 3.2/3.3): the right side is the full nonlinear
cell balance, the tridiagonal Jacobian uses the frozen capacity C and conductivity K, and
every linear solve is ``jax.lax.linalg.tridiagonal_solve``. Without a convergence test the
step is a fixed-length, differentiable computation; an unconverged step does not conserve
mass exactly, so :func:`richards_substep` optionally finishes with an explicit flux update
``theta = theta^n + dt (q_in - q_out - uptake) / Delta`` using the fluxes of the last
iterate, which closes the water balance to round-off.

:func:`richards_residual` is the discrete residual of section 3.6 used as a physics loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import ParamSpec, ProcessModel
from .soil_hydraulics import VanGenuchten

Array = jax.Array

__all__ = ["Richards1D", "richards_substep", "richards_residual", "feddes_reduction", "SubstepFluxes"]

_INTERFACES = ("arithmetic", "geometric")
_CAPACITIES = ("tangent", "chord")
_JACOBIANS = ("picard", "newton")
# Lowest head an iterate may take (cm, pF 7): (alpha|h|)^n stays far from float32 overflow.
_HEAD_FLOOR = -1e7
# Added to C in the Jacobian only (cm-1): keeps the matrix regular when every cell is
# saturated (C = 0) or bone dry (C underflows); the residual, hence the solution, is unchanged.
_CAPACITY_FLOOR = 1e-7
# Head change (cm) below which the chord capacity falls back to the tangent.
_CHORD_MIN_DH = 1e-3
# Floor of K_i K_{i+1} in the geometric mean: sqrt has an infinite derivative at 0.
_GEOMETRIC_FLOOR = 1e-30


def _interface_conductivity(k_a: Array, k_b: Array, interface: str) -> Array:
    """Face conductivity K_{i+1/2}: arithmetic (Celia et al. 1990) or geometric mean."""
    if interface == "arithmetic":
        return 0.5 * (k_a + k_b)
    return jnp.sqrt(jnp.maximum(k_a * k_b, _GEOMETRIC_FLOOR))


def _check_choice(name: str, value: str, choices: tuple[str, ...]):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_interface(interface: str):
    if interface not in _INTERFACES:
        raise ValueError(f"interface must be one of {_INTERFACES}, got {interface!r}")


class SubstepFluxes(NamedTuple):
    """Face fluxes of one sub-step (cm per time unit, positive downward), ``[*batch]``.

    ``top`` is the flux through the soil surface (infiltration), ``bottom`` through the
    lower boundary (drainage), ``uptake`` the sink summed over the profile, ``runoff`` the
    part of a prescribed top flux that could not infiltrate (0 for a Dirichlet top).
    """

    top: Array
    bottom: Array
    uptake: Array
    runoff: Array


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
        # Flux top with a ponding limit: Dirichlet h = ponding_head once q_in exceeds the
        # capacity of the surface face at the current iterate (section 3.3).
        k_sat = soil.conductivity(jnp.full_like(h, ponding_head))[..., 0]
        q_cap, down_cap = _dirichlet_face(h1, k1, dk1, ponding_head, k_sat, half_top, interface, False)
        ponded = top_flux > q_cap
        q_top = jnp.where(ponded, q_cap, top_flux)
        down_top = jnp.where(ponded, down_cap, 0.0)
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
) -> tuple[Array, Array, SubstepFluxes]:
    """One backward-Euler step of the layered Richards equation, K fixed Picard iterations.

    Args:
        h: pressure head at the start of the step (the first iterate), cm, ``[*batch, N]``.
        theta_prev: water content at the start of the step, ``[*batch, N]``.
        soil: object with ``water_content``, ``conductivity``, ``capacity`` of ``h`` (e.g.
            :class:`~difhydro.physics.soil_hydraulics.VanGenuchten`), parameters
            broadcastable to ``[*batch, N]``.
        thickness: cell thicknesses Delta_i, cm, static sequence of length N (top first).
        dt: step length in the time unit of ``soil.conductivity`` (d or s).
        top_flux: prescribed downward surface flux (cm per time unit), ``[*batch]``, limited
            by ponding at ``ponding_head``; exclusive with ``top_head``.
        top_head: Dirichlet surface head, cm (static).
        bottom_head: Dirichlet head below the last cell, cm (static); ``None`` is free drainage.
        uptake: function ``h -> Delta_i S_i`` (cm per time unit, ``[*batch, N]``), the
            sink per cell, evaluated at the current iterate; ``None`` for no sink.
        n_iter: number of modified Picard iterations (no convergence test).
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

    Returns:
        ``(h_new, theta_new, fluxes)`` with fluxes of the last iterate.
    """
    if (top_flux is None) == (top_head is None):
        raise ValueError("richards_substep needs exactly one of top_flux or top_head")
    _check_interface(interface)
    _check_choice("capacity", capacity, _CAPACITIES)
    _check_choice("jacobian", jacobian, _JACOBIANS)
    if int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
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
    for _ in range(int(n_iter)):
        q, dq_up, dq_down, _ = fluxes(h)
        theta = soil.water_content(h)
        residual = q[..., :-1] - q[..., 1:] - sink(h) - delta * (theta - theta_prev) / dt
        c = _capacity(soil, h, theta, h_start, theta_start, capacity) + _CAPACITY_FLOOR
        # Row i of -dF/dh: F_i = q_{i-1/2} - q_{i+1/2} - sink_i - Delta_i (theta_i - theta_i^n) / dt.
        lower = -dq_up[..., :-1]
        upper = dq_down[..., 1:]
        diag = delta * c / dt - dq_down[..., :-1] + dq_up[..., 1:]
        diag = diag + diagonal_shift * (jnp.abs(lower) + jnp.abs(upper))
        step = jax.lax.linalg.tridiagonal_solve(lower, diag, upper, residual[..., None])[..., 0]
        if max_head_change is not None:
            # damped update: |dh| <= a + b |h| keeps an unconverged iterate from overshooting
            limit = max_head_change[0] + max_head_change[1] * jnp.abs(h)
            step = jnp.clip(step, -limit, limit)
        h = jnp.clip(h + step, _HEAD_FLOOR, head_ceiling)

    q, _, _, runoff = fluxes(h)
    s = sink(h)
    if flux_update:
        theta = theta_prev + dt * (q[..., :-1] - q[..., 1:] - s) / delta
    else:
        theta = soil.water_content(h)
    return h, theta, SubstepFluxes(q[..., 0], q[..., -1], s.sum(-1), runoff)


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
    constant; each sub-step uses ``n_iter`` modified Picard iterations (section 3.3); each
    step is wrapped in ``jax.checkpoint`` when ``checkpoint`` is set (bounded memory).

    Parameters are per layer, event shape ``(n_layers,)``, so they come as ``[*batch,
    n_layers]``; a per-profile scalar ``[*batch, 1]`` or ``()`` broadcasts over the layers.
    Boxes (Carsel & Parrish 1988 textures fall inside): ``theta_r`` [0, 0.2], ``theta_s``
    [0.3, 0.6], ``alpha`` [0.002, 0.2] cm-1, ``n`` [1.05, 3], ``k_s`` [0.1, 1000] cm d-1.

    States ``[*batch, n_layers]``: ``pressure_head`` h (cm) and ``water_content`` theta.
    With ``flux_update=True`` theta is advanced by the fluxes of the last Picard iterate
    (the water balance closes to round-off) and h keeps the last iterate; the next step's
    residual ``theta(h) - theta^n`` pulls the two back together.

    Outputs (``[*batch]``, means over the step, cm per time unit, positive downward):
    ``infiltration`` (surface flux), ``runoff`` (infiltration excess above ponding, no
    ponded storage), ``drainage`` (bottom flux; negative is capillary rise),
    ``root_water_uptake`` (Feddes sink ``S_i = T_p r_i alpha_F(h_i) / Delta_i`` summed
    over layers), ``soil_water`` (profile storage sum theta_i Delta_i at the end of the
    step, cm). The balance is
    ``soil_water_t - soil_water_{t-1} = dt (infiltration - drainage - root_water_uptake)``:
    exact to round-off with ``flux_update``, up to the Picard error otherwise.

    Attributes:
        thickness: layer thicknesses Delta_i, cm, top first (non-uniform allowed).
        dt: length of one forcing step (1 d).
        n_substeps: sub-steps per forcing step.
        n_iter: modified Picard iterations per sub-step (4-5 for daily use).
        bottom_head: Dirichlet head below the profile (cm); ``None`` is free drainage.
        top_head: Dirichlet surface head (cm) replacing the flux top (benchmarks).
        interface: ``"arithmetic"`` or ``"geometric"`` face conductivity.
        flux_update: explicit flux update of theta after the iterations (exact closure).
        initial_head: uniform initial pressure head, cm.
        root_depth: roots spread uniformly (per cm) over ``[0, root_depth]`` cm, used when
            ``root_fraction`` is ``None``.
        root_fraction: uptake fraction r_i per layer (sums to 1), overriding ``root_depth``.
        feddes_heads: Feddes (h1, h2, h3, h4), cm.
        jacobian: ``"picard"`` (default, Celia's frozen K) or ``"newton"`` (adds dK/dh).
        capacity: ``"tangent"`` (default) or ``"chord"`` storage coefficient (see
            :func:`richards_substep`).
        diagonal_shift: relative diagonal shift of the Picard matrix (finite float32
            gradients for near-saturated or bone-dry profiles; see :func:`richards_substep`).
        max_head_change: ``(a, b)``: each Picard update of a cell's head is limited to
            ``a + b |h|`` cm (damping). With the default (50 cm, 0.5) water contents stay
            in [theta_r, theta_s] for 20 of 27 soils spanning the boxes over a year of random
            rain, against 9 of 27 undamped; ``None`` is the undamped scheme of §3.3.
        checkpoint: wrap each forcing step in ``jax.checkpoint``.

    Limits: the iteration count is fixed, so a sub-step that does not converge is not
    rejected (iterates are clamped to [-1e7 cm, profile depth]). The default (1-h
    sub-steps, Picard, tangent C) closes the balance for loam over 30 years of random rain
    on 5-25 cm layers; with 4-h sub-steps it does not converge on heavy-rain days, and very
    permeable soils (``k_s`` >~ 25 cm d-1 with ``n`` far from 1.5) under heavy rain on thin
    top layers need more sub-steps. The Newton and chord options helped low-``k_s`` soils
    in a parameter sweep but were less robust than the default on loam.
    """

    thickness: tuple[float, ...] = eqx.field(static=True, default=(10.0,) * 10)
    dt: float = eqx.field(static=True, default=1.0)
    n_substeps: int = eqx.field(static=True, default=24)
    n_iter: int = eqx.field(static=True, default=5)
    bottom_head: float | None = eqx.field(static=True, default=None)
    top_head: float | None = eqx.field(static=True, default=None)
    interface: str = eqx.field(static=True, default="arithmetic")
    flux_update: bool = eqx.field(static=True, default=False)
    initial_head: float = eqx.field(static=True, default=-100.0)
    root_depth: float = eqx.field(static=True, default=50.0)
    root_fraction: tuple[float, ...] | None = eqx.field(static=True, default=None)
    feddes_heads: tuple[float, float, float, float] = eqx.field(
        static=True, default=(-10.0, -25.0, -400.0, -8000.0)
    )
    jacobian: str = eqx.field(static=True, default="picard")
    capacity: str = eqx.field(static=True, default="tangent")
    diagonal_shift: float = eqx.field(static=True, default=1e-5)
    max_head_change: tuple[float, float] | None = eqx.field(static=True, default=(50.0, 0.5))
    checkpoint: bool = eqx.field(static=True, default=True)

    param_spec = {
        "theta_r": ParamSpec(0.0, 0.2, "-", 0.078, "residual water content (theta_r)"),
        "theta_s": ParamSpec(0.3, 0.6, "-", 0.43, "saturated water content (theta_s)"),
        "alpha": ParamSpec(0.002, 0.2, "cm-1", 0.036, "van Genuchten inverse air-entry head (alpha)"),
        "n": ParamSpec(1.05, 3.0, "-", 1.56, "van Genuchten pore-size index (n)"),
        "k_s": ParamSpec(0.1, 1000.0, "cm d-1", 24.96, "saturated hydraulic conductivity (Ks)"),
    }
    state_names = ("water_content", "pressure_head")
    output_names = ("infiltration", "runoff", "drainage", "root_water_uptake", "soil_water")

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
        _check_interface(self.interface)
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

        def substep(carry, _):
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
            )
            return (h_, theta_), f

        (h, theta), f = jax.lax.scan(substep, (h, theta), None, length=int(self.n_substeps))
        mean = jax.tree_util.tree_map(lambda x: x.mean(0), f)
        outputs = {
            "infiltration": mean.top,
            "runoff": mean.runoff,
            "drainage": mean.bottom,
            "root_water_uptake": mean.uptake,
            "soil_water": (theta * jnp.asarray(delta, theta.dtype)).sum(-1),
        }
        return h, theta, outputs

    def step(self, state, forcing, params):
        """Advance one forcing step (``dt``, 1 d) in ``n_substeps`` Picard sub-steps."""
        advance = jax.checkpoint(self._advance) if self.checkpoint else self._advance
        h, theta, outputs = advance(state["pressure_head"], state["water_content"], forcing, params)
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
    _check_interface(interface)
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
