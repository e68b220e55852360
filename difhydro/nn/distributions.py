"""Probabilistic output heads: mixtures of asymmetric Laplace (CMAL) or Gaussian (GMM) laws.

A head maps features ``[..., H]`` (e.g. the LSTM's ``[basin, time, H]``) to the parameters
of a mixture of ``K`` components for one target, each ``[..., K]``, in the units of the
target the head is trained on (for example normalised streamflow). The pure functions of
this module (:func:`log_prob`, :func:`nll`, :func:`cdf`, :func:`mean`, :func:`quantiles`,
:func:`sample`) take either mixture and work on any leading shape; all are jit-able.

Parameterisation as neuralhydrology's ``CMAL`` and ``GMM`` heads (Klotz et al. 2022,
HESS 26, 1673; ``neuralhydrology/modelzoo/head.py``, ``training/loss.py``): one hidden
ReLU layer, then per component a location (linear), a scale (CMAL: ``softplus`` with
β = 2, plus ε; GMM: ``exp`` plus ε), for CMAL an asymmetry τ (sigmoid, kept ε inside
(0, 1)) and the weights (softmax). Two deliberate differences: the weights are the plain
softmax (neuralhydrology adds ε to each, so they do not sum to one and the mixture's CDF
would not reach 1), and τ is kept ε away from 1 as well as from 0.

The asymmetric Laplace law with location ``m``, scale ``b`` and asymmetry ``τ`` is the
quantile-regression ("check function") form: density
``τ (1 − τ) / b · exp(−ρ_τ(y − m) / b)`` with ``ρ_τ(u) = u (τ − 1[u < 0])``, so that
``m`` is its ``τ``-quantile. It is ``m + E₁ − E₂`` with independent exponentials of rates
``τ / b`` and ``(1 − τ) / b``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

Array = jax.Array

__all__ = [
    "CMAL",
    "GaussianMixture",
    "CMALHead",
    "GMMHead",
    "log_prob",
    "nll",
    "cdf",
    "mean",
    "quantiles",
    "sample",
    "component_abs_deviation",
    "HEADS",
    "KINDS",
    "kind_of",
    "from_fields",
    "affine",
    "median",
]

_LOG_2PI = math.log(2.0 * math.pi)
#: bisection halvings of :func:`quantiles`: the bracket shrinks by 2^-60 (below float64's ulp)
_BISECTIONS = 60


def _safe_log(x: Array) -> Array:
    return jnp.log(jnp.maximum(x, jnp.finfo(jnp.result_type(x)).tiny))


class CMAL(NamedTuple):
    """A countable mixture of asymmetric Laplace laws; every field ``[..., K]``.

    Attributes:
        loc: location ``m`` (the ``τ``-quantile of each component), target units.
        scale: scale ``b > 0``, target units.
        asymmetry: ``τ`` in (0, 1); ``0.5`` is the symmetric Laplace law of scale ``2 b``.
        weights: mixture weights, non-negative, summing to 1 over the last axis.
    """

    loc: Array
    scale: Array
    asymmetry: Array
    weights: Array

    def _rates(self):
        """Rates (per target unit) of the right and left exponential halves."""
        tau, b = self.asymmetry, self.scale
        return tau / b, (1.0 - tau) / b

    def component_log_prob(self, y: Array) -> Array:
        """``log f_k(y)`` for ``y`` broadcastable to ``[..., K]``."""
        tau, u = self.asymmetry, y - self.loc
        check = jnp.maximum(tau * u, (tau - 1.0) * u)
        return jnp.log(tau) + jnp.log1p(-tau) - jnp.log(self.scale) - check / self.scale

    def component_cdf(self, y: Array) -> Array:
        """``F_k(y)``; the exponents are clamped at 0 so neither branch overflows."""
        tau, u = self.asymmetry, y - self.loc
        right, left = self._rates()
        below = tau * jnp.exp(left * jnp.minimum(u, 0.0))
        above = 1.0 - (1.0 - tau) * jnp.exp(-right * jnp.maximum(u, 0.0))
        return jnp.where(u < 0.0, below, above)

    def component_quantile(self, p: Array) -> Array:
        """``F_k⁻¹(p)`` for ``p`` in (0, 1) broadcastable to ``[..., K]``."""
        tau, b = self.asymmetry, self.scale
        lower = self.loc + b / (1.0 - tau) * _safe_log(jnp.minimum(p, tau) / tau)
        upper = self.loc - b / tau * _safe_log((1.0 - jnp.maximum(p, tau)) / (1.0 - tau))
        return jnp.where(p < tau, lower, upper)

    def component_mean(self) -> Array:
        """``E[X_k] = m + b (1 − 2τ) / (τ (1 − τ))``."""
        tau = self.asymmetry
        return self.loc + self.scale * (1.0 - 2.0 * tau) / (tau * (1.0 - tau))


class GaussianMixture(NamedTuple):
    """A mixture of normal laws; every field ``[..., K]``.

    Attributes:
        loc: means, target units.
        scale: standard deviations ``> 0``, target units.
        weights: mixture weights, non-negative, summing to 1 over the last axis.
    """

    loc: Array
    scale: Array
    weights: Array

    def component_log_prob(self, y: Array) -> Array:
        z = (y - self.loc) / self.scale
        return -0.5 * _LOG_2PI - jnp.log(self.scale) - 0.5 * z * z

    def component_cdf(self, y: Array) -> Array:
        return ndtr((y - self.loc) / self.scale)

    def component_quantile(self, p: Array) -> Array:
        return self.loc + self.scale * ndtri(p)

    def component_mean(self) -> Array:
        return self.loc


Mixture = Union[CMAL, GaussianMixture]


def _expand(dist: Mixture) -> Mixture:
    """Add an axis before the component axis: ``[..., K] -> [..., 1, K]``."""
    return type(dist)(*(x[..., None, :] for x in dist))


# ----------------------------------------------------------------------------------------
# Pure functions of a mixture
# ----------------------------------------------------------------------------------------


def log_prob(dist: Mixture, y: Array) -> Array:
    """Log density of the mixture at ``y`` (``[...]``, target units) -> ``[...]``."""
    y = jnp.asarray(y)[..., None]
    return jax.nn.logsumexp(_safe_log(dist.weights) + dist.component_log_prob(y), axis=-1)


def nll(dist: Mixture, observed: Array, mask: Array | None = None) -> Array:
    """Mean negative log-likelihood over the observed steps (a scalar).

    Args:
        dist: mixture with fields ``[..., K]`` (e.g. ``[basin, time, K]``).
        observed: ``[...]`` targets; NaN marks a missing observation.
        mask: optional bool ``[...]``: steps that count (e.g. past the warm-up).

    Steps that are masked out or NaN contribute neither value nor gradient (the NaN is
    replaced before the density is evaluated); with no step left the loss is 0.
    """
    observed = jnp.asarray(observed)
    keep = ~jnp.isnan(observed)
    if mask is not None:
        keep = keep & jnp.asarray(mask, bool)
    y = jnp.where(keep, observed, 0.0)
    values = jnp.where(keep, -log_prob(dist, y), 0.0)
    return values.sum() / jnp.maximum(keep.sum(), 1)


def cdf(dist: Mixture, y: Array) -> Array:
    """Mixture CDF ``F(y) = Σ_k w_k F_k(y)`` at ``y`` (``[...]``) -> ``[...]``."""
    y = jnp.asarray(y)[..., None]
    return jnp.sum(dist.weights * dist.component_cdf(y), axis=-1)


def mean(dist: Mixture) -> Array:
    """Mixture mean ``Σ_k w_k E[X_k]`` -> ``[...]`` (target units)."""
    return jnp.sum(dist.weights * dist.component_mean(), axis=-1)


def quantiles(dist: Mixture, probs) -> Array:
    """Quantiles of the mixture at the probabilities ``probs`` -> ``[..., len(probs)]``.

    The mixture CDF is inverted by bisection inside the exact bracket
    ``[min_k F_k⁻¹(p), max_k F_k⁻¹(p)]`` (at its ends every component's CDF is ``≤ p``,
    respectively ``≥ p``), ``60`` halvings, vectorised over ``probs`` and the leading axes.
    The result carries the implicit-function gradient ``dq/dθ = −(∂F/∂θ)(q) / f(q)``.

    Args:
        dist: mixture with fields ``[..., K]``.
        probs: probabilities in (0, 1), a tuple or a 1-d array ``[P]``.
    """
    p = jnp.asarray(probs, dtype=jnp.result_type(dist.loc))
    if p.ndim != 1:
        raise ValueError(f"probs must be a sequence of probabilities, got shape {p.shape}")
    return _quantiles(dist, p)


@jax.jit  # one program: called eagerly (scoring, reports) it would compile op by op
def _quantiles(dist: Mixture, p: Array) -> Array:
    """:func:`quantiles` for a validated ``p`` ``[P]``."""
    wide = _expand(dist)  # [..., 1, K] against p [P, 1]
    comp = jax.lax.stop_gradient(wide.component_quantile(p[:, None]))
    lo, hi = comp.min(-1), comp.max(-1)
    fixed = jax.lax.stop_gradient(wide)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = jnp.sum(fixed.weights * fixed.component_cdf(mid[..., None]), axis=-1) < p
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, halve, (lo, hi))
    q = jax.lax.stop_gradient(0.5 * (lo + hi))
    # implicit gradient (and one Newton correction of the value, of the order of the bracket)
    density = jax.lax.stop_gradient(jnp.exp(log_prob(fixed, q)))
    residual = jnp.sum(wide.weights * wide.component_cdf(q[..., None]), axis=-1) - p
    return q - residual / jnp.maximum(density, jnp.finfo(q.dtype).tiny)


def sample(dist: Mixture, key: Array, n: int) -> Array:
    """``n`` independent draws per entry -> ``[..., n]`` (target units).

    A component is drawn from the weights, then its inverse CDF is applied to a uniform
    number (exact for both laws).
    """
    k_comp, k_unif = jax.random.split(key)
    shape = dist.weights.shape[:-1] + (n,)
    logits = jnp.broadcast_to(_safe_log(dist.weights)[..., None, :], shape + dist.weights.shape[-1:])
    which = jax.random.categorical(k_comp, logits, axis=-1)
    tiny = jnp.finfo(jnp.result_type(dist.loc)).eps
    u = jax.random.uniform(k_unif, shape, minval=tiny, maxval=1.0 - tiny)
    draws = _expand(dist).component_quantile(u[..., None])  # [..., n, K]
    return jnp.take_along_axis(draws, which[..., None], axis=-1)[..., 0]


def component_abs_deviation(dist: Mixture, y: Array) -> Array:
    """``E|X_k − y|`` of every component at ``y`` (``y`` broadcastable to ``[..., K]``).

    Closed forms: normal ``σ (2 φ(z) + z (2 Φ(z) − 1))``; asymmetric Laplace
    ``(y − E X) + 2 E(X − y)⁺`` with ``E(X − y)⁺ = (1 − τ) e^{−a (y − m)} / a`` above ``m``
    and ``E X − y + τ e^{−c (m − y)} / c`` below it (rates ``a = τ / b``, ``c = (1 − τ) / b``).
    Used by the CRPS of :mod:`difhydro.training.probabilistic`.
    """
    if isinstance(dist, GaussianMixture):
        z = (y - dist.loc) / dist.scale
        phi = jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return dist.scale * (2.0 * phi + z * (2.0 * ndtr(z) - 1.0))
    tau, u = dist.asymmetry, y - dist.loc
    right, left = dist._rates()
    mu = dist.component_mean()
    excess_above = (1.0 - tau) * jnp.exp(-right * jnp.maximum(u, 0.0)) / right
    excess_below = mu - y + tau * jnp.exp(left * jnp.minimum(u, 0.0)) / left
    return (y - mu) + 2.0 * jnp.where(u >= 0.0, excess_above, excess_below)


def median(dist: Mixture) -> Array:
    """Mixture median ``F⁻¹(0.5)`` -> ``[...]`` (target units): the point forecast of a
    probabilistic head (robust to the heavy tails of a component whose ``τ`` is near 0 or 1,
    which move the mean far; neuralhydrology scores the median of its samples)."""
    return quantiles(dist, (0.5,))[..., 0]


def affine(dist: Mixture, offset, scale) -> Mixture:
    """The law of ``offset + scale · X`` (``scale > 0``): locations and scales move with the
    variable, asymmetries and weights stay. Used to go from standardised flow to mm d-1."""
    fields = dist._asdict()
    fields["loc"] = offset + scale * dist.loc
    fields["scale"] = scale * dist.scale
    return type(dist)(**fields)


#: the mixture laws by the name a config uses (``head: cmal`` / ``head: gmm``)
KINDS = {"cmal": CMAL, "gmm": GaussianMixture}


def kind_of(dist: Mixture) -> str:
    """``"cmal"`` or ``"gmm"``: the name of a mixture's law."""
    for name, cls in KINDS.items():
        if isinstance(dist, cls):
            return name
    raise TypeError(f"not a mixture of difhydro.nn.distributions: {type(dist).__name__}")


def from_fields(kind: str, fields) -> Mixture:
    """A mixture of law ``kind`` from a mapping of its fields (e.g. read back from a file)."""
    if kind not in KINDS:
        raise ValueError(f"unknown mixture kind {kind!r}; choose from {', '.join(KINDS)}")
    cls = KINDS[kind]
    missing = [f for f in cls._fields if f not in fields]
    if missing:
        raise ValueError(f"a {kind} mixture needs the fields {list(cls._fields)}; missing {missing}")
    return cls(**{f: fields[f] for f in cls._fields})


# ----------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------


def _latent(features: Array, hidden_size: int, n_out: int) -> Array:
    h = features
    if hidden_size:
        h = nn.relu(nn.Dense(hidden_size, name="hidden")(h))
    return nn.Dense(n_out, name="output")(h)


class CMALHead(nn.Module):
    """Features ``[..., H]`` -> :class:`CMAL` with fields ``[..., n_components]``.

    Attributes:
        n_components: mixture components ``K`` (neuralhydrology's ``n_distributions``).
        hidden_size: width of the hidden ReLU layer (neuralhydrology: 100); 0 for none.
        eps: floor of the scale and distance of τ from 0 and 1.
    """

    n_components: int = 3
    hidden_size: int = 100
    eps: float = 1e-5

    @nn.compact
    def __call__(self, features: Array) -> CMAL:
        raw = _latent(features, self.hidden_size, 4 * self.n_components)
        loc, b_raw, tau_raw, w_raw = jnp.split(raw, 4, axis=-1)
        scale = 0.5 * jax.nn.softplus(2.0 * b_raw) + self.eps  # softplus with beta = 2
        asymmetry = self.eps + (1.0 - 2.0 * self.eps) * jax.nn.sigmoid(tau_raw)
        return CMAL(loc, scale, asymmetry, jax.nn.softmax(w_raw, axis=-1))


class GMMHead(nn.Module):
    """Features ``[..., H]`` -> :class:`GaussianMixture` with fields ``[..., n_components]``.

    Attributes:
        n_components: mixture components ``K``.
        hidden_size: width of the hidden ReLU layer (neuralhydrology: 100); 0 for none.
        eps: floor of the standard deviation (``exp(raw) + eps``, as neuralhydrology).
    """

    n_components: int = 3
    hidden_size: int = 100
    eps: float = 1e-5

    @nn.compact
    def __call__(self, features: Array) -> GaussianMixture:
        raw = _latent(features, self.hidden_size, 3 * self.n_components)
        loc, s_raw, w_raw = jnp.split(raw, 3, axis=-1)
        return GaussianMixture(loc, jnp.exp(s_raw) + self.eps, jax.nn.softmax(w_raw, axis=-1))


#: the head of each mixture kind
HEADS = {"cmal": CMALHead, "gmm": GMMHead}
