"""Training losses: plain functions of predictions, observations and a mask.

Every loss takes ``(predicted, observed, mask, ...)`` arrays of one shape and returns a
scalar; ``mask`` (bool) marks the steps that count (observed and past the warm-up).
Masked steps contribute neither value nor gradient, even where ``observed`` is NaN.
Combine losses with :func:`weighted_sum`; the :class:`~difhydro.train.Trainer` accepts
any function ``loss(predictions, batch, context) -> scalar``.

References: NSE* (Kratzert et al. 2019, HESS 23, 5089), the δHBV combined loss (Feng et
al. 2022), physics-guided terms in process-models.md §3.6, §5.3, §5.4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp

Array = jnp.ndarray

__all__ = [
    "masked_mean",
    "mse",
    "rmse",
    "nse_star",
    "dhbv_loss",
    "weighted_sum",
]


def _clean(predicted, observed, mask):
    mask = jnp.asarray(mask, bool) & ~jnp.isnan(observed)
    return jnp.where(mask, predicted, 0.0), jnp.where(mask, observed, 0.0), mask


def masked_mean(values: Array, mask: Array) -> Array:
    """Mean of ``values`` over ``mask`` (0 if nothing is masked in)."""
    mask = jnp.asarray(mask, bool)
    return jnp.where(mask, values, 0.0).sum() / jnp.maximum(mask.sum(), 1)


def mse(predicted: Array, observed: Array, mask: Array) -> Array:
    """Mean squared error over the masked steps (units²)."""
    p, o, m = _clean(predicted, observed, mask)
    return masked_mean((p - o) ** 2, m)


def rmse(predicted: Array, observed: Array, mask: Array) -> Array:
    """Root mean squared error over the masked steps (units of the series)."""
    return jnp.sqrt(mse(predicted, observed, mask) + 1e-12)


def nse_star(predicted: Array, observed: Array, mask: Array, basin_std: Array, eps: float = 0.1) -> Array:
    """Kratzert et al.'s basin-normalised NSE loss: ``mean((ŷ − y)² / (σ_b + ε)²)``.

    Args:
        predicted, observed, mask: ``[batch, time]``.
        basin_std: ``[batch]`` standard deviation of each sample's basin's observed flow
            in the training period (same units as the flow).
        eps: stabiliser for basins with almost constant flow (same units).
    """
    p, o, m = _clean(predicted, observed, mask)
    w = 1.0 / (basin_std[:, None] + eps) ** 2
    return masked_mean(w * (p - o) ** 2, m)


def dhbv_loss(predicted: Array, observed: Array, mask: Array, weight: float = 0.25) -> Array:
    """δHBV's ``(1 − w)·RMSE(Q) + w·RMSE(g(Q))`` with ``g(Q) = log10(√(Q + 1e-6) + 0.1)``.

    Flows in mm d-1; negative predictions are clamped at 0 inside ``g`` only.
    """
    g = lambda q: jnp.log10(jnp.sqrt(jnp.maximum(q, 0.0) + 1e-6) + 0.1)  # noqa: E731
    p, o, m = _clean(predicted, observed, mask)
    return (1 - weight) * rmse(p, o, m) + weight * rmse(g(p), g(o), m)


def weighted_sum(terms: Mapping[Callable, float] | list[tuple[Callable, float]]) -> Callable:
    """``loss(*args) = Σ w_i · term_i(*args)``: combine losses with the same signature."""
    items = list(terms.items()) if isinstance(terms, Mapping) else list(terms)
    if not items:
        raise ValueError("weighted_sum needs at least one (loss, weight) pair")

    def loss(*args, **kwargs):
        return sum(w * fn(*args, **kwargs) for fn, w in items)

    return loss
