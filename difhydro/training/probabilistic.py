"""Scores of probabilistic forecasts: CRPS, PIT, coverage and width of central intervals.

Every function takes a mixture of :mod:`difhydro.nn.distributions` (fields
``[basin, time, K]``) or draws ``[basin, time, n]`` and observations ``[basin, time]``
(target units). Per-step scores keep the ``[basin, time]`` shape; summaries reduce the
last (time) axis per basin, as every metric of :mod:`difhydro.training.metrics`. Steps
whose observation is NaN are ignored by the summaries (a basin without any observation
gets NaN: there is nothing to score); a NaN in the forecast propagates.

CRPS (Gneiting & Raftery 2007) is ``E|X − y| − ½ E|X − X'|`` with ``X, X'`` independent
draws of the forecast, in target units (lower is better):

- Gaussian mixture: closed form (Grimit et al. 2006, QJRMS 132, 2925),
  ``Σ_k w_k A(y − μ_k, σ_k²) − ½ Σ_kl w_k w_l A(μ_k − μ_l, σ_k² + σ_l²)`` with
  ``A(μ, σ²) = 2σ φ(μ/σ) + μ (2Φ(μ/σ) − 1) = E|N(μ, σ²)|``.
- Asymmetric-Laplace mixture (CMAL): closed form derived here from the equivalent
  ``CRPS = ∫ (F(x) − 1[x >= y])² dx``: between the sorted break points (the locations and
  ``y``) the mixture CDF is a constant plus ``K`` exponentials, so the integrand is a sum
  of exponentials integrated exactly (:func:`_crps_cmal`).
- Draws: :func:`crps_ensemble` is the plain empirical CRPS of the ``n`` draws (the CRPS
  of their empirical CDF, as properscoring's ``crps_ensemble``; not the "fair" estimator).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from ..nn.distributions import CMAL, GaussianMixture, component_abs_deviation, quantiles
from ..nn.distributions import cdf as mixture_cdf

Array = jax.Array

__all__ = [
    "crps",
    "crps_ensemble",
    "pit",
    "pit_histogram",
    "central_interval",
    "coverage",
    "mean_width",
    "per_basin_mean",
    "pit_ks",
    "probabilistic_scores",
    "pit_ensemble",
    "ensemble_scores",
    "QUANTILES",
    "LEVELS",
]

#: the non-exceedance probabilities of the quantiles a run writes (``predictions.nc``)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: the central intervals scored in ``metrics.csv`` (their bounds are among :data:`QUANTILES`)
LEVELS = (0.5, 0.9)


def _abs_normal(mu: Array, var: Array) -> Array:
    """``E|Z|`` for ``Z ~ N(mu, var)``."""
    sd = jnp.sqrt(var)
    z = mu / sd
    return 2.0 * sd * jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) + mu * (2.0 * ndtr(z) - 1.0)


def _exprel(z: Array) -> Array:
    """``(e^z − 1) / z`` for ``z <= 0`` (1 at 0), with finite gradients."""
    small = jnp.abs(z) < 1e-4
    zs = jnp.where(small, -1.0, z)
    return jnp.where(small, 1.0 + 0.5 * z, jnp.expm1(zs) / zs)


def _integral_exp(rate: Array, length: Array, log_start: Array, log_end: Array) -> Array:
    """``∫ e^{log_start + rate (x − u)} dx`` over ``[u, u + length]`` whose integrand is
    ``e^{log_start}`` at ``u`` and ``e^{log_end}`` at the end, both ``<= 1``: expanded
    from the end where the exponent falls, so nothing overflows."""
    falling = rate <= 0.0
    arg = jnp.where(falling, rate, -rate) * length
    return jnp.exp(jnp.where(falling, log_start, log_end)) * length * _exprel(arg)


def _crps_cmal(dist: CMAL, y: Array) -> Array:
    """Exact CRPS of an asymmetric-Laplace mixture: ``∫ (F(x) − 1[x >= y])² dx``.

    Between the sorted break points ``{m_1..m_K, y}`` each component's CDF is
    ``α + β e^{s (x − m)}`` (left of ``m``: ``τ e^{c (x − m)}``; right:
    ``1 − (1 − τ) e^{−a (x − m)}``), so the squared difference is a sum of a constant,
    ``K`` and ``K²`` exponentials, integrated exactly on each interval; the two tails are
    ``Σ_kl w_k w_l τ_k τ_l e^{...} / (c_k + c_l)`` and the same with ``1 − τ`` and ``a``.
    """
    m, w, tau = dist.loc, dist.weights, dist.asymmetry
    a, c = tau / dist.scale, (1.0 - tau) / dist.scale  # rates right and left of m, [..., K]
    # the break points carry no gradient: the integrand is continuous at each m_k, so the
    # moving ends there cancel; the jump at y gives dCRPS/dy = 2 F(y) - 1, added below
    # (exact also when y ties with a location, where the gradient of a sort is split arbitrarily)
    points = jax.lax.stop_gradient(jnp.sort(jnp.concatenate([m, y[..., None]], axis=-1), axis=-1))
    u, v = points[..., :-1], points[..., 1:]  # the K finite intervals [..., J]
    length, mid = v - u, 0.5 * (u + v)
    left = mid[..., :, None] < m[..., None, :]  # [..., J, K]: interval left of m_k
    s = jnp.where(left, c[..., None, :], -a[..., None, :])
    alpha = jnp.where(left, 0.0, 1.0)
    beta = jnp.where(left, tau[..., None, :], tau[..., None, :] - 1.0) * w[..., None, :]
    below_y = mid < y[..., None]  # integrand F² below y, (1 − F)² above
    const = jnp.sum(w[..., None, :] * alpha, axis=-1)
    const = jnp.where(below_y, const, 1.0 - const)  # [..., J]
    coef = jnp.where(below_y[..., None], beta, -beta)  # [..., J, K]
    log_u = s * (u[..., :, None] - m[..., None, :])
    log_v = s * (v[..., :, None] - m[..., None, :])
    single = _integral_exp(s, length[..., None], log_u, log_v)
    pair = _integral_exp(s[..., :, None] + s[..., None, :], length[..., None, None],
                         log_u[..., :, None] + log_u[..., None, :], log_v[..., :, None] + log_v[..., None, :])
    interior = (const**2 * length + 2.0 * const * jnp.sum(coef * single, axis=-1)
                + jnp.einsum("...jk,...jl,...jkl->...j", coef, coef, pair))
    first, last = points[..., :1], points[..., -1:]

    def tail(weight, rate, dist_to_m):
        e = weight * jnp.exp(-rate * dist_to_m)  # [..., K]
        return jnp.sum(e[..., :, None] * e[..., None, :] / (rate[..., :, None] + rate[..., None, :]), axis=(-2, -1))

    value = interior.sum(-1) + tail(w * tau, c, m - first) + tail(w * (1.0 - tau), a, last - m)
    slope = jax.lax.stop_gradient(2.0 * mixture_cdf(dist, y) - 1.0)
    return value + slope * (y - jax.lax.stop_gradient(y))


def crps(dist, observed: Array) -> Array:
    """CRPS of a mixture forecast at each step -> ``[...]`` (target units).

    Args:
        dist: :class:`~difhydro.nn.distributions.CMAL` or
            :class:`~difhydro.nn.distributions.GaussianMixture`, fields ``[..., K]``.
        observed: ``[...]``; a NaN observation gives a NaN score at that step (the
            summaries :func:`per_basin_mean` and :func:`probabilistic_scores` skip it).
    """
    y = jnp.asarray(observed)
    if isinstance(dist, CMAL):
        return _crps_cmal(dist, y)
    if not isinstance(dist, GaussianMixture):
        raise TypeError(f"crps needs a CMAL or GaussianMixture, got {type(dist).__name__}")
    first = jnp.sum(dist.weights * component_abs_deviation(dist, y[..., None]), axis=-1)
    ww = dist.weights[..., :, None] * dist.weights[..., None, :]
    spread = _abs_normal(dist.loc[..., :, None] - dist.loc[..., None, :],
                         dist.scale[..., :, None] ** 2 + dist.scale[..., None, :] ** 2)
    return first - 0.5 * jnp.sum(ww * spread, axis=(-2, -1))


def crps_ensemble(draws: Array, observed: Array, fair: bool = False) -> Array:
    """Empirical CRPS of ``n`` draws ``[..., n]`` at ``observed`` ``[...]`` -> ``[...]``.

    ``mean_i |x_i − y| − 1/(2 n²) Σ_ij |x_i − x_j|``, the latter from the sorted draws as
    ``Σ_i (2i − n − 1) x_(i) · 2 / n²`` (O(n log n)). With ``fair`` the spread term is
    divided by ``2 n (n − 1)`` instead (Ferro 2014): an unbiased estimate of the CRPS of the
    law the draws come from (the plain value exceeds it by ``E|X − X'| / (2 n)`` on average).
    """
    x = jnp.sort(jnp.asarray(draws), axis=-1)
    n = x.shape[-1]
    first = jnp.mean(jnp.abs(x - jnp.asarray(observed)[..., None]), axis=-1)
    rank = jnp.arange(1, n + 1, dtype=x.dtype)
    gini = jnp.sum((2.0 * rank - n - 1.0) * x, axis=-1) / (n * (n - 1) if fair and n > 1 else n * n)
    return first - gini


def pit(dist, observed: Array) -> Array:
    """Probability integral transform ``F(y)`` at each step -> ``[...]`` in [0, 1].

    A calibrated forecast gives uniform PIT values. NaN where the observation is NaN.
    """
    y = jnp.asarray(observed)
    return jnp.where(jnp.isnan(y), jnp.nan, mixture_cdf(dist, jnp.nan_to_num(y)))


def pit_histogram(pit_values: Array, n_bins: int = 10) -> Array:
    """Fraction of the PIT values of each basin in ``n_bins`` equal bins of [0, 1].

    Args:
        pit_values: ``[basin, time]`` (NaN: no observation, skipped).
        n_bins: bins; a value on an inner edge goes to the upper bin, 1 to the last.

    Returns:
        ``[basin, n_bins]``, each row summing to 1 (NaN rows for basins without values).
    """
    v = jnp.asarray(pit_values)
    ok = ~jnp.isnan(v)
    idx = jnp.clip(jnp.floor(jnp.nan_to_num(v) * n_bins).astype(jnp.int32), 0, n_bins - 1)
    counts = jnp.sum(jax.nn.one_hot(idx, n_bins, dtype=v.dtype) * ok[..., None], axis=-2)
    return counts / ok.sum(-1, keepdims=True)


def central_interval(dist, level: float) -> tuple[Array, Array]:
    """Bounds of the central ``level`` interval (quantiles ``(1 ∓ level)/2``), each ``[...]``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    q = quantiles(dist, (0.5 * (1.0 - level), 0.5 * (1.0 + level)))
    return q[..., 0], q[..., 1]


def per_basin_mean(values: Array, observed: Array) -> Array:
    """Mean over the last (time) axis of ``values`` on the steps with an observation."""
    ok = ~jnp.isnan(jnp.asarray(observed))
    return jnp.where(ok, values, 0.0).sum(-1) / ok.sum(-1)


def coverage(lower: Array, upper: Array, observed: Array) -> Array:
    """Fraction of observed steps with ``lower <= y <= upper``, per basin -> ``[basin]``."""
    y = jnp.asarray(observed)
    inside = ((y >= lower) & (y <= upper)).astype(jnp.result_type(lower))
    return per_basin_mean(inside, y)


def mean_width(lower: Array, upper: Array, observed: Array) -> Array:
    """Mean ``upper − lower`` over the observed steps, per basin -> ``[basin]`` (target units)."""
    return per_basin_mean(upper - lower, observed)


def pit_ks(pit_values: Array) -> Array:
    """Kolmogorov-Smirnov distance of each basin's PIT values to the uniform law -> ``[basin]``.

    ``sup_u |G(u) − u|`` with ``G`` the empirical CDF of the basin's PIT values ``[basin,
    time]`` (NaN skipped): 0 for a perfectly calibrated forecast; about ``0.9 / sqrt(n)`` is
    the 5 % critical value for ``n`` independent days (days are not independent, so read it
    as a distance, not a test). NaN for a basin without values.
    """
    v = jnp.sort(jnp.asarray(pit_values), axis=-1)  # NaN sort last
    ok = ~jnp.isnan(v)
    n = ok.sum(-1, keepdims=True)
    rank = jnp.arange(1, v.shape[-1] + 1, dtype=v.dtype)
    above = jnp.where(ok, rank / n - v, -jnp.inf)  # G jumps to i/n at the i-th value
    below = jnp.where(ok, v - (rank - 1.0) / n, -jnp.inf)
    d = jnp.maximum(above.max(-1), below.max(-1))
    return jnp.where(n[..., 0] > 0, d, jnp.nan)


@functools.partial(jax.jit, static_argnames="levels")  # one program, not one per eager op
def probabilistic_scores(dist, observed: Array, levels=LEVELS) -> dict[str, Array]:
    """Per-basin summaries for ``metrics.csv``: ``crps``, ``pit_ks``, ``coverage_50``, ``width_50``, ...

    Args:
        dist: mixture with fields ``[basin, time, K]``.
        observed: ``[basin, time]`` (NaN: missing, skipped).
        levels: central interval levels; the keys use the percentage (``0.9 -> "90"``).

    Returns:
        name -> ``[basin]``.
    """
    y = jnp.asarray(observed)
    scores = {"crps": per_basin_mean(crps(dist, jnp.nan_to_num(y)), y), "pit_ks": pit_ks(pit(dist, y))}
    for level in levels:
        lo, hi = central_interval(dist, level)
        tag = f"{100 * level:g}"
        scores[f"coverage_{tag}"] = coverage(lo, hi, y)
        scores[f"width_{tag}"] = mean_width(lo, hi, y)
    return scores


# ----------------------------------------------------------------------------------------
# Forecasts given as draws (neuralhydrology's samples)
# ----------------------------------------------------------------------------------------


def pit_ensemble(draws: Array, observed: Array) -> Array:
    """PIT of draws ``[..., n]``: the fraction of draws ``<= y`` -> ``[...]`` (NaN where ``y`` is)."""
    y = jnp.asarray(observed)
    below = jnp.mean((jnp.asarray(draws) <= y[..., None]).astype(jnp.result_type(draws)), axis=-1)
    return jnp.where(jnp.isnan(y), jnp.nan, below)


@functools.partial(jax.jit, static_argnames="levels")  # one program, not one per eager op
def ensemble_scores(draws: Array, observed: Array, levels=LEVELS) -> dict[str, Array]:
    """The scores of :func:`probabilistic_scores` for draws ``[basin, time, n]``: the
    unbiased ("fair") CRPS of the draws' law (:func:`crps_ensemble`, comparable with the
    closed form of a mixture), the KS distance of the PIT (:func:`pit_ensemble`)
    and the central intervals between the draws' empirical quantiles (linear interpolation,
    NumPy's default)."""
    x, y = jnp.asarray(draws), jnp.asarray(observed)
    scores = {"crps": per_basin_mean(crps_ensemble(x, jnp.nan_to_num(y), fair=True), y),
              "pit_ks": pit_ks(pit_ensemble(x, y))}
    for level in levels:
        lo, hi = jnp.quantile(x, jnp.asarray([0.5 * (1.0 - level), 0.5 * (1.0 + level)]), axis=-1)
        tag = f"{100 * level:g}"
        scores[f"coverage_{tag}"] = coverage(lo, hi, y)
        scores[f"width_{tag}"] = mean_width(lo, hi, y)
    return scores
