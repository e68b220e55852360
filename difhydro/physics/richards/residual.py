"""The discrete Richards residual used as a physics loss (Zhang et al. 2025)."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from ..soil_hydraulics import VanGenuchten
from .fluxes import SOIL_NAMES, _interface_conductivity
from .settings import INTERFACES, check_choice

Array = jax.Array


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
    check_choice("interface", interface, INTERFACES)
    if isinstance(soil, Mapping):
        missing = [k for k in SOIL_NAMES if k not in soil]
        if missing:
            raise ValueError(f"soil is missing van Genuchten parameters {missing}")
        soil = VanGenuchten(**{k: jnp.asarray(soil[k]) for k in SOIL_NAMES})
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
