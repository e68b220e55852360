"""Soil hydraulic functions: van Genuchten-Mualem, Haverkamp and Gardner.

Each soil is a small immutable module holding its parameters as array leaves (so it flows
through ``jit``, ``grad`` and ``vmap``) with three methods of the pressure head ``h``
(cm, negative when unsaturated; any shape broadcastable against the parameters):

- ``water_content(h)``: volumetric water content theta (-),
- ``conductivity(h)``: hydraulic conductivity K (cm per time unit of ``k_s``),
- ``capacity(h)``: specific moisture capacity C = d theta / dh (cm-1).

The same formulas are exported as plain functions (``vg_water_content`` etc.).
All functions keep value and gradient finite from saturation (h >= 0) to very dry soil
(h ~ -1e7 cm): fractional powers are taken of clamped bases (:func:`safe_power`: alpha|h|
is floored at 1e-12, where the derivative dK/dSe of the Mualem conductivity, unbounded at
Se = 1 for every n, docs/physics.md §3.1, is still finite), and the saturated
branch (h >= 0: Se = 1, theta = theta_s, K = Ks and C = 0 exactly) is selected with the
"double where" of the JAX FAQ.

The van Genuchten functions take ``air_entry`` h_s (cm, <= 0; default 0, the plain curve):
the modified curve of Vogel, van Genuchten & Cislerova (2001, Adv. Water Resour. 24:133-144),
HYDRUS-1D's "air-entry value of -2 cm" model, saturated for h >= h_s. :class:`Richards1D`
uses h_s = -2 cm by default (docs/physics.md §3.1, §3.8).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .base import safe_power

Array = jax.Array

__all__ = [
    "CARSEL_PARRISH",
    "VanGenuchten",
    "Haverkamp",
    "Gardner",
    "air_entry_scale",
    "vg_effective_saturation",
    "vg_water_content",
    "vg_conductivity",
    "vg_capacity",
    "vg_pressure_head",
    "vg_saturation_head",
    "haverkamp_water_content",
    "haverkamp_conductivity",
    "haverkamp_capacity",
    "gardner_water_content",
    "gardner_conductivity",
    "gardner_capacity",
]

#: Carsel & Parrish (1988) mean van Genuchten parameters of the twelve USDA textures:
#: theta_r, theta_s (m3 m-3), alpha (cm-1), n (-), Ks (cm d-1)
CARSEL_PARRISH = {
    "sand": (0.045, 0.43, 0.145, 2.68, 712.8),
    "loamy_sand": (0.057, 0.41, 0.124, 2.28, 350.2),
    "sandy_loam": (0.065, 0.41, 0.075, 1.89, 106.1),
    "loam": (0.078, 0.43, 0.036, 1.56, 24.96),
    "silt": (0.034, 0.46, 0.016, 1.37, 6.0),
    "silt_loam": (0.067, 0.45, 0.020, 1.41, 10.8),
    "sandy_clay_loam": (0.100, 0.39, 0.059, 1.48, 31.44),
    "clay_loam": (0.095, 0.41, 0.019, 1.31, 6.24),
    "silty_clay_loam": (0.089, 0.43, 0.010, 1.23, 1.68),
    "sandy_clay": (0.100, 0.38, 0.027, 1.23, 2.88),
    "silty_clay": (0.070, 0.36, 0.005, 1.09, 0.48),
    "clay": (0.068, 0.38, 0.008, 1.09, 4.8),
}

# Floor of alpha*|h| inside fractional powers: keeps d/dn (alpha|h|)^n = x^n log x finite
# at saturation, where alpha*|h| = 0.
_SCALED_HEAD_FLOOR = 1e-12
# Se bounds before inverting theta -> h (section 3.1).
_SE_INVERT_BOUNDS = (1e-6, 1.0 - 1e-7)


def _scaled_suction_power(h: Array, alpha: Array, n: Array) -> Array:
    """``x = (alpha * max(-h, 0))^n``, with a clamped base so gradients stay finite."""
    return safe_power(alpha * jnp.maximum(-h, 0.0), n, _SCALED_HEAD_FLOOR)


def _unsaturated(h: Array, air_entry: float = 0.0) -> tuple[Array, Array]:
    """``(h >= air_entry, h_u)``: the saturated mask and a head that is ``air_entry - 1`` cm
    where it is set, for the unsaturated branch of a "double where" (its value and gradient
    there are unused)."""
    saturated = h >= air_entry
    return saturated, jnp.where(saturated, air_entry - 1.0, h)


# ----------------------------------------------------------------------------------------
# van Genuchten (1980) - Mualem (1976)
# ----------------------------------------------------------------------------------------


def air_entry_scale(alpha: Array, n: Array, air_entry) -> tuple[Array, Array]:
    """``(Sc, F1)`` of the air-entry head ``h_s`` (Vogel et al. 2001): ``Sc = [1 +
    (alpha|h_s|)^n]^(-m)``, the plain van Genuchten Se at ``h_s``, and ``F1 = (alpha|h_s|)^(n-1)
    Sc``, Mualem's ``[1 - Sc^(1/m)]^m``. Exactly ``(1, 0)`` for ``h_s = 0`` (plain vG)."""
    if isinstance(air_entry, (int, float)) and air_entry == 0:
        return jnp.ones_like(alpha * n), jnp.zeros_like(alpha * n)
    m = 1.0 - 1.0 / n
    suction = alpha * jnp.maximum(-jnp.asarray(air_entry, jnp.result_type(alpha)), 0.0)
    sc = jnp.power(1.0 + safe_power(suction, n, _SCALED_HEAD_FLOOR), -m)
    return sc, safe_power(suction, n - 1.0, _SCALED_HEAD_FLOOR) * sc


def vg_effective_saturation(h: Array, alpha: Array, n: Array, air_entry: float = 0.0, scale=None) -> Array:
    """Effective saturation ``Se = [1 + (alpha|h|)^n]^(-m) / Sc``, ``m = 1 - 1/n``; 1 for
    ``h >= air_entry``.

    Args:
        h: pressure head, cm.
        alpha: inverse air-entry head, cm-1.
        n: pore-size distribution index (> 1), -.
        air_entry: the air-entry head ``h_s`` (cm, <= 0) of the modified van Genuchten curve
            (Vogel, van Genuchten & Cislerova 2001; HYDRUS-1D's "air-entry value of -2 cm"
            model): the curve is rescaled by ``Sc = [1 + (alpha|h_s|)^n]^(-m)`` so that it
            reaches saturation at ``h_s`` instead of 0. 0 (default) is plain van Genuchten.
        scale: ``(Sc, F(1))`` of ``air_entry`` precomputed by :func:`air_entry_scale` (what
            :class:`VanGenuchten` holds, so the Newton iterations do not recompute it); the
            same keyword in every function below; ``None`` computes it.
    """
    m = 1.0 - 1.0 / n
    saturated, h_u = _unsaturated(h, air_entry)
    sc, _ = air_entry_scale(alpha, n, air_entry) if scale is None else scale
    se = jnp.power(1.0 + _scaled_suction_power(h_u, alpha, n), -m) / sc
    return jnp.where(saturated, jnp.ones_like(se), se)


def vg_water_content(
    h: Array, theta_r: Array, theta_s: Array, alpha: Array, n: Array, air_entry: float = 0.0, scale=None
) -> Array:
    """Water content ``theta = theta_r + (theta_s - theta_r) Se(h)`` (van Genuchten 1980;
    with ``air_entry`` h_s < 0 the modified curve of Vogel et al. 2001, theta_s for h >= h_s)."""
    return theta_r + (theta_s - theta_r) * vg_effective_saturation(h, alpha, n, air_entry, scale)


def vg_conductivity(h: Array, alpha: Array, n: Array, k_s: Array, air_entry: float = 0.0, scale=None) -> Array:
    """Mualem conductivity ``K = Ks Se^0.5 [(1 - F(Se)) / (1 - F(1))]^2``; exactly ``k_s`` for
    ``h >= air_entry``.

    ``F(Se) = [1 - (Se Sc)^(1/m)]^m`` (Vogel et al. 2001; plain vG-Mualem with
    ``air_entry = 0``: Sc = 1, F(1) = 0). Written with the plain vG saturation ``S = Se Sc``
    as ``F = w S``, ``w = (alpha|h|)^(n-1)``: near h = 0 the plain curve is ``K ~ Ks (1 -
    2w)``, whose slope in h is unbounded for n < 2. ``alpha|h|`` is floored at 1e-12, which
    keeps value and gradient finite; the curve is followed exactly down to that floor, so
    the limit h -> 0- is ``k_s`` within 0.1 % for n >= 1.3, while for smaller n the
    vG-Mualem K itself is still far below ``k_s`` there (0.83 ``k_s`` at n = 1.09, 0.56 at
    n = 1.05, at |h| = 1e-12 / alpha cm) and jumps to ``k_s`` at h = 0. With ``air_entry``
    h_s < 0, K reaches ``k_s`` continuously at h_s with a finite slope (the remedy of Vogel
    et al. 2001 for n close to 1). Units of ``k_s``.
    """
    m = 1.0 - 1.0 / n
    saturated, h_u = _unsaturated(h, air_entry)
    suction = alpha * jnp.maximum(-h_u, 0.0)
    s = jnp.power(1.0 + safe_power(suction, n, _SCALED_HEAD_FLOOR), -m)
    w = safe_power(suction, n - 1.0, _SCALED_HEAD_FLOOR)
    sc, f1 = air_entry_scale(alpha, n, air_entry) if scale is None else scale
    k = jnp.sqrt(s / sc) * ((1.0 - w * s) / (1.0 - f1)) ** 2
    return jnp.where(saturated, jnp.ones_like(k), k) * k_s


def vg_capacity(
    h: Array, theta_r: Array, theta_s: Array, alpha: Array, n: Array, air_entry: float = 0.0, scale=None
) -> Array:
    """Specific moisture capacity ``C = (theta_s - theta_r) / Sc alpha n m (alpha|h|)^(n-1)
    [1 + (alpha|h|)^n]^(-m-1)``, cm-1; 0 for ``h >= air_entry`` (Sc = 1 for plain vG)."""
    m = 1.0 - 1.0 / n
    saturated, h_u = _unsaturated(h, air_entry)
    ah = alpha * jnp.maximum(-h_u, 0.0)
    sc, _ = air_entry_scale(alpha, n, air_entry) if scale is None else scale
    c = (
        (theta_s - theta_r)
        / sc
        * alpha
        * n
        * m
        * safe_power(ah, n - 1.0, _SCALED_HEAD_FLOOR)
        * jnp.power(1.0 + safe_power(ah, n, _SCALED_HEAD_FLOOR), -m - 1.0)
    )
    return jnp.where(saturated, 0.0, c)


def vg_pressure_head(
    theta: Array, theta_r: Array, theta_s: Array, alpha: Array, n: Array, air_entry: float = 0.0, scale=None
) -> Array:
    """Inverse retention curve ``h = -(1/alpha) ((Se Sc)^(-1/m) - 1)^(1/n)``, cm.

    Se is clipped to [1e-6, 1 - 1e-7] first (section 3.1), so ``theta`` at or beyond
    ``theta_s`` maps to a head just below ``air_entry`` (0 for plain vG) and ``theta <=
    theta_r`` to a large one.
    """
    return vg_saturation_head((theta - theta_r) / (theta_s - theta_r), alpha, n, air_entry, scale)


def vg_saturation_head(se: Array, alpha: Array, n: Array, air_entry: float = 0.0, scale=None) -> Array:
    """The head of an effective saturation, ``h = -(1/alpha) ((Se Sc)^(-1/m) - 1)^(1/n)`` (cm),
    Se clipped to [1e-6, 1 - 1e-7] first (see :func:`vg_pressure_head`). Taking Se rather
    than theta keeps the relative precision of a nearly dry cell, whose theta differs from
    theta_r in the last float32 digits only."""
    m = 1.0 - 1.0 / n
    se = jnp.clip(se, *_SE_INVERT_BOUNDS)
    sc, _ = air_entry_scale(alpha, n, air_entry) if scale is None else scale
    return -safe_power(jnp.power(se * sc, -1.0 / m) - 1.0, 1.0 / n, 1e-30) / alpha


class VanGenuchten(eqx.Module):
    """van Genuchten-Mualem soil; parameters broadcast against ``h`` (e.g. ``[*batch, layer]``).

    Attributes:
        theta_r, theta_s: residual and saturated water content, -.
        alpha: inverse air-entry head, cm-1.
        n: pore-size distribution index (> 1), -.
        k_s: saturated conductivity, cm per model time unit (cm d-1 in :class:`Richards1D`).
        air_entry: air-entry head h_s of the modified curve (cm, <= 0, static; Vogel et al.
            2001, see :func:`vg_effective_saturation`); 0 (default) is plain van Genuchten.
    """

    theta_r: Array
    theta_s: Array
    alpha: Array
    n: Array
    k_s: Array
    air_entry: float = eqx.field(static=True)
    scale: tuple[Array, Array]  # (Sc, F(1)) of air_entry, computed once (air_entry_scale)

    def __init__(self, theta_r, theta_s, alpha, n, k_s, air_entry: float = 0.0, scale=None):
        if not float(air_entry) <= 0.0:
            raise ValueError(f"air_entry must be <= 0 cm, got {air_entry}")
        self.theta_r, self.theta_s, self.alpha, self.n, self.k_s = theta_r, theta_s, alpha, n, k_s
        self.air_entry = float(air_entry)
        self.scale = air_entry_scale(jnp.asarray(alpha), jnp.asarray(n), self.air_entry) if scale is None else scale

    def water_content(self, h: Array) -> Array:
        return vg_water_content(h, self.theta_r, self.theta_s, self.alpha, self.n, self.air_entry, self.scale)

    def conductivity(self, h: Array) -> Array:
        return vg_conductivity(h, self.alpha, self.n, self.k_s, self.air_entry, self.scale)

    def capacity(self, h: Array) -> Array:
        return vg_capacity(h, self.theta_r, self.theta_s, self.alpha, self.n, self.air_entry, self.scale)

    def pressure_head(self, theta: Array) -> Array:
        return vg_pressure_head(theta, self.theta_r, self.theta_s, self.alpha, self.n, self.air_entry, self.scale)

    def effective_saturation(self, h: Array) -> Array:
        return vg_effective_saturation(h, self.alpha, self.n, self.air_entry, self.scale)

    def saturation_head(self, se: Array) -> Array:
        """The head of an effective saturation (:func:`vg_saturation_head`), cm."""
        return vg_saturation_head(se, self.alpha, self.n, self.air_entry, self.scale)

    def inflection_head(self) -> Array:
        """Head of the largest capacity C (the inflection of theta(h)), ``(alpha|h|)^n = m``:
        ``h* = -m^(1/n) / alpha`` (cm), at most ``air_entry``. Drier than h*, C falls
        steeply with |h|."""
        m = 1.0 - 1.0 / self.n
        return jnp.minimum(-jnp.power(m, 1.0 / self.n) / self.alpha, self.air_entry)


# ----------------------------------------------------------------------------------------
# Haverkamp et al. (1977), Celia et al. (1990) problem 1
# ----------------------------------------------------------------------------------------


def haverkamp_water_content(
    h: Array, theta_r: Array, theta_s: Array, alpha: Array, beta: Array
) -> Array:
    """``theta = alpha (theta_s - theta_r) / (alpha + |h|^beta) + theta_r`` (h in cm)."""
    return alpha * (theta_s - theta_r) / (alpha + safe_power(-h, beta)) + theta_r


def haverkamp_conductivity(h: Array, k_s: Array, a: Array, gamma: Array) -> Array:
    """``K = Ks A / (A + |h|^gamma)`` (h in cm)."""
    return k_s * a / (a + safe_power(-h, gamma))


def haverkamp_capacity(h: Array, theta_r: Array, theta_s: Array, alpha: Array, beta: Array) -> Array:
    """``C = alpha (theta_s - theta_r) beta |h|^(beta-1) / (alpha + |h|^beta)^2``, cm-1."""
    s = jnp.maximum(-h, 0.0)
    num = alpha * (theta_s - theta_r) * beta * safe_power(s, beta - 1.0)
    return num / (alpha + safe_power(s, beta)) ** 2


class Haverkamp(eqx.Module):
    """Haverkamp et al. (1977) soil (Celia et al. 1990, problem 1: cm and s)."""

    theta_r: Array
    theta_s: Array
    alpha: Array
    beta: Array
    k_s: Array
    a: Array
    gamma: Array

    def water_content(self, h: Array) -> Array:
        return haverkamp_water_content(h, self.theta_r, self.theta_s, self.alpha, self.beta)

    def conductivity(self, h: Array) -> Array:
        return haverkamp_conductivity(h, self.k_s, self.a, self.gamma)

    def capacity(self, h: Array) -> Array:
        return haverkamp_capacity(h, self.theta_r, self.theta_s, self.alpha, self.beta)


# ----------------------------------------------------------------------------------------
# Gardner (1958) exponential soil
# ----------------------------------------------------------------------------------------


def gardner_conductivity(h: Array, k_s: Array, alpha: Array) -> Array:
    """``K = Ks exp(alpha min(h, 0))`` (Gardner 1958), alpha in cm-1."""
    return k_s * jnp.exp(alpha * jnp.minimum(h, 0.0))


def gardner_water_content(h: Array, theta_r: Array, theta_s: Array, alpha: Array) -> Array:
    """Exponential retention ``theta = theta_r + (theta_s - theta_r) exp(alpha min(h, 0))``,
    the companion of Gardner's K used for transient runs to the steady state."""
    return theta_r + (theta_s - theta_r) * jnp.exp(alpha * jnp.minimum(h, 0.0))


def gardner_capacity(h: Array, theta_r: Array, theta_s: Array, alpha: Array) -> Array:
    """``C = (theta_s - theta_r) alpha exp(alpha h)`` for h < 0, 0 otherwise (cm-1)."""
    c = (theta_s - theta_r) * alpha * jnp.exp(alpha * jnp.minimum(h, 0.0))
    return jnp.where(h < 0.0, c, 0.0)


class Gardner(eqx.Module):
    """Gardner (1958) exponential soil: ``K = Ks e^(alpha h)``, ``theta`` exponential in h."""

    theta_r: Array
    theta_s: Array
    alpha: Array
    k_s: Array

    def water_content(self, h: Array) -> Array:
        return gardner_water_content(h, self.theta_r, self.theta_s, self.alpha)

    def conductivity(self, h: Array) -> Array:
        return gardner_conductivity(h, self.k_s, self.alpha)

    def capacity(self, h: Array) -> Array:
        return gardner_capacity(h, self.theta_r, self.theta_s, self.alpha)
