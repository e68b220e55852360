"""Training losses: plain functions of predictions, observations and a mask.

Every loss takes ``(predicted, observed, mask, ...)`` arrays of one shape and returns a
scalar; ``mask`` (bool) marks the steps that count (observed and past the warm-up).
Masked steps contribute neither value nor gradient, even where ``observed`` is NaN.
The :class:`~difhydro.training.Trainer` combines them by name and weight
(:class:`~difhydro.training.LossTerm`) or takes any ``loss(predictions, batch, context)``.

References: NSE* (Kratzert et al. 2019, HESS 23, 5089); the low-flow RMSE of δHBV
(Feng et al. 2022, WRR, doi:10.1029/2022WR032404); the Richards residual of the PGDL
CNN-LSTM (Zhang et al. 2025), docs/physics.md §3.6. Paper-specific losses live in
:mod:`difhydro.contrib`.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..physics.richards import richards_residual

Array = jnp.ndarray

__all__ = ["masked_mean", "mse", "rmse", "nse_star", "low_flow_transform", "rmse_low_flow", "mixture_nll",
           "richards_residual_loss"]


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


def low_flow_transform(flow: Array) -> Array:
    """δHBV's low-flow transform ``g(Q) = log10(sqrt(max(Q, 0) + 1e-6) + 0.1)`` (Q in mm d-1).

    The 1e-6 mm d-1 under the root keeps the derivative finite at Q = 0 (dmg's
    ``RmseLossComb``); negative predictions count as 0 inside ``g`` only.
    """
    return jnp.log10(jnp.sqrt(jnp.maximum(flow, 0.0) + 1e-6) + 0.1)


def rmse_low_flow(predicted: Array, observed: Array, mask: Array, weight: float = 0.25) -> Array:
    """The low-flow-aware loss of δHBV (Feng et al. 2022):
    ``(1 - w) RMSE(Q) + w RMSE(g(Q))``, ``g`` = :func:`low_flow_transform`, ``w = 0.25``.

    The RMSE of ``g`` weighs the relative error of small flows, which the plain RMSE of
    the flow does not see. Flows in mm d-1; the result in mm d-1 mixed with log10 units.
    """
    g = low_flow_transform
    return (1 - weight) * rmse(predicted, observed, mask) + weight * rmse(g(predicted), g(observed), mask)


def mixture_nll(distribution, observed: Array, mask: Array) -> Array:
    """Mean negative log-likelihood of the observations under a predicted mixture (the loss
    of the probabilistic heads, neuralhydrology's ``CMALLoss`` / ``GMMLoss``).

    Args:
        distribution: a :class:`~difhydro.nn.distributions.CMAL` or
            :class:`~difhydro.nn.distributions.GaussianMixture` with fields ``[batch, time, K]``
            in the units of ``observed``.
        observed, mask: ``[batch, time]``; masked or NaN steps count for nothing.

    The value is in nats per scored step; in mm d-1 it is the standardised-flow NLL plus
    ``log(flow std)``, a constant: the gradients are those of neuralhydrology's loss.
    """
    from ..nn.distributions import nll

    return nll(distribution, observed, mask)


def richards_residual_loss(
    water_content: Array,
    depths,
    soil,
    mask: Array | None = None,
    *,
    dt: float = 1.0,
    sink: Array | float = 0.0,
    interface: str = "arithmetic",
) -> Array:
    """Mean squared Richards residual of a predicted profile series (docs/physics.md §3.6; Zhang et al. 2025).

    ``L_R = mean(R_i²)`` over interior nodes and the day pairs (t−1, t) selected by
    ``mask[..., t]`` (and ``mask[..., t−1]``), with R from
    :func:`difhydro.physics.richards.richards_residual` (implicit, time-t K and h).

    Args:
        water_content: predicted θ, ``[..., time, depth]`` (m3 m-3).
        depths: node depths ζ, cm, ``[depth]``, increasing.
        soil: van Genuchten ``theta_r``, ``theta_s``, ``alpha`` (cm-1), ``n``, ``k_s``
            (cm per time unit of ``dt``) broadcastable to ``[..., time − 1, depth]`` (fixed
            per-site values, or values mapped from learned raw numbers with ParamSpec).
        mask: ``[..., time]`` bool, days whose prediction counts (default: all).
        dt: days between profiles.
        sink: root-water uptake S, per time unit, broadcastable to ``[..., time − 1, depth]``.
        interface: ``"arithmetic"`` or ``"geometric"`` face conductivity.
    """

    theta = jnp.asarray(water_content)
    if theta.ndim < 2:
        raise ValueError(f"water_content must be [..., time, depth], got shape {theta.shape}")
    residual = richards_residual(theta[..., :-1, :], theta[..., 1:, :], depths, soil, dt, sink, interface)
    if mask is None:
        pair = jnp.ones(residual.shape[:-1], bool)
    else:
        mask = jnp.asarray(mask, bool)
        pair = mask[..., 1:] & mask[..., :-1]
    pair = jnp.broadcast_to(pair[..., None], residual.shape) & jnp.isfinite(residual)
    return masked_mean(jnp.where(pair, residual, 0.0) ** 2, pair)


