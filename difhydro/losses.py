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
    "water_balance",
    "snow_water_change",
    "monotonic_direction",
    "monotonic_loss",
    "water_balance_loss",
    "richards_residual_loss",
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


# ----------------------------------------------------------------------------------------
# Physics-guided soil-moisture losses (process-models.md §5.3 and §3.6)
# ----------------------------------------------------------------------------------------


def water_balance(
    precipitation: Array,
    evaporation: Array | float = 0.0,
    surface_runoff: Array | float = 0.0,
    snow_water_change: Array | float = 0.0,
    deep_moisture_change: Array | float | None = None,
    *,
    evaporation_sign: float = 1.0,
    snow_sign: float = 1.0,
    deep_scale: float = 1.0,
) -> Array:
    """Water gained by the surface soil layer, Geng et al. (2024) Eqs. 10-11 (mm d-1).

    ``W1 = P − s_E·E − SRO + s_SD·ΔSD`` (PHY-LSTM) and, with ``deep_moisture_change``,
    ``W2 = W1 − c·ΔSM2`` (PHYs-LSTM). All inputs broadcast against each other (any shape).

    Args:
        precipitation: P, mm d-1.
        evaporation: E, mm d-1; a loss when ``evaporation_sign = 1`` (E >= 0). ERA5-Land
            stores evaporation as negative numbers: pass ``evaporation_sign=-1`` for those.
        surface_runoff: SRO >= 0, mm d-1.
        snow_water_change: ΔSD, mm d-1, see :func:`snow_water_change`; ``snow_sign``
            flips it (the paper does not fix the sign, process-models.md §6).
        deep_moisture_change: ΔSM2, change of the deeper-layer soil moisture; ``None``
            gives W1.
        deep_scale: factor applied to ΔSM2 (e.g. the layer thickness in mm to turn
            m3 m-3 into mm; 1 keeps the paper's raw difference).
    """
    w = (
        jnp.asarray(precipitation)
        - evaporation_sign * jnp.asarray(evaporation)
        - jnp.asarray(surface_runoff)
        + snow_sign * jnp.asarray(snow_water_change)
    )
    if deep_moisture_change is not None:
        w = w - deep_scale * jnp.asarray(deep_moisture_change)
    return w


def _lag(x: Array, axis: int, fill=jnp.nan) -> Array:
    """``x`` shifted one step forward along ``axis`` (``out[t] = x[t−1]``, ``out[0] = fill``)."""
    x = jnp.moveaxis(jnp.asarray(x), axis, -1)
    first = jnp.full(x.shape[:-1] + (1,), fill, x.dtype)
    return jnp.moveaxis(jnp.concatenate([first, x[..., :-1]], axis=-1), -1, axis)


def snow_water_change(snow_water: Array, convention: str = "release", axis: int = -1) -> Array:
    """ΔSD from a snow-water-equivalent series (mm), NaN on the first step.

    ``convention="release"``: ``ΔSD_t = SD_{t−1} − SD_t`` (melt is a gain for the soil,
    the choice of process-models.md §5.3); ``"accumulation"``: ``SD_t − SD_{t−1}``.
    """
    if convention not in ("release", "accumulation"):
        raise ValueError(f"convention must be 'release' or 'accumulation', got {convention!r}")
    change = _lag(snow_water, axis) - jnp.asarray(snow_water)
    return change if convention == "release" else -change


def monotonic_direction(water_balance: Array, observed: Array | None = None, axis: int = -1) -> Array:
    """ΔW_t of Geng et al. (2024) Eqs. 12-13, in {−1, 0, +1}, shaped like ``water_balance``.

    ``ΔW_t = sign(W_t − W_{t−1})``; 0 on the first step and wherever W is not finite.
    With ``observed`` soil moisture, ΔW_t is set to 0 where the observed change disagrees
    (``ΔW_t·(SM_{t−1} − SM_t) > 0``, Eq. 13).
    """
    w = jnp.asarray(water_balance)
    d = w - _lag(w, axis)
    dw = jnp.where(jnp.isfinite(d), jnp.sign(jnp.where(jnp.isfinite(d), d, 0.0)), 0.0)
    if observed is not None:
        sm = jnp.asarray(observed)
        change = _lag(sm, axis) - sm
        disagree = jnp.isfinite(change) & (dw * jnp.where(jnp.isfinite(change), change, 0.0) > 0)
        dw = jnp.where(disagree, 0.0, dw)
    return dw


def monotonic_loss(
    predicted: Array,
    observed: Array,
    water_balance: Array,
    mask: Array,
    *,
    mask_disagreement: bool = True,
) -> Array:
    """Monotonic water-balance loss, Geng et al. (2024) Eq. 14 (units of SM squared).

    ``Loss_PHY = (1/N) Σ_t ReLU(ΔW_t·(SM_{t−1} − SM^_t))²`` with ``SM_{t−1}`` observed and
    ``SM^_t`` predicted. A step counts in N when ``mask[t]`` is set, ``SM_{t−1}`` is
    observed (finite) and ``W_t``, ``W_{t−1}`` are finite; steps whose ΔW was zeroed by the
    disagreement mask still count in N (process-models.md §6).

    Args:
        predicted, observed, water_balance, mask: ``[..., time]`` (time last, the batch-major
            layout of :class:`~difhydro.data.Batch`); observed NaN = missing.
        mask_disagreement: apply Eq. 13 (drop steps whose observed change contradicts ΔW).
    """
    predicted = jnp.asarray(predicted)
    observed = jnp.asarray(observed)
    w = jnp.asarray(water_balance)
    previous = _lag(observed, -1)
    dw = monotonic_direction(w, observed if mask_disagreement else None)
    valid = jnp.asarray(mask, bool) & jnp.isfinite(previous) & jnp.isfinite(w) & jnp.isfinite(_lag(w, -1))
    gap = jnp.where(valid, dw * (jnp.where(valid, previous, 0.0) - predicted), 0.0)
    return masked_mean(jnp.maximum(gap, 0.0) ** 2, valid)


def water_balance_loss(
    predicted: Array,
    observed: Array,
    water_balance: Array,
    mask: Array,
    rmse_weight: float = 0.5,
    physics_weight: float = 0.5,
    *,
    mask_disagreement: bool = True,
) -> Array:
    """``λ1·RMSE + λ2·Loss_PHY`` (Geng et al. 2024, Eq. 8); RMSE over ``mask``.

    ``[..., time]`` inputs as in :func:`monotonic_loss`; ``water_balance`` is W1 for
    PHY-LSTM and W2 for PHYs-LSTM (see :func:`water_balance`).
    """
    fit = rmse(predicted, observed, mask)
    phy = monotonic_loss(predicted, observed, water_balance, mask, mask_disagreement=mask_disagreement)
    return rmse_weight * fit + physics_weight * phy


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
    """Mean squared Richards residual of a predicted profile series (§3.6, Zhang et al. 2025).

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
    from .physics.richards import richards_residual  # physics imports losses' siblings only

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


def range_boundary_loss(
    params: Array, low: Array, high: Array, *, alpha: float | None = None, eps: float = 0.01
) -> Array:
    """Range-boundary loss of Li & Lu (2023, Eq. 13), averaged over sites.

    Per site, ``alpha Σ_j ReLU(θ_j − high_j) / (eps + #{θ_j > high_j})`` plus the same for
    the lower bound: ``alpha`` times the mean violation over the violating parameters, 0
    when every parameter is inside its box (process-models.md §5.4).

    Args:
        params: ``[*sites, p]`` unsquashed parameters in physical units.
        low, high: ``[p]`` bounds, same units.
        alpha: α1 = α2 (default ``p``, as in the paper).
        eps: ε of the denominators (0.01 in the paper).
    """
    params = jnp.asarray(params)
    p = params.shape[-1]
    low, high = jnp.broadcast_to(low, (p,)), jnp.broadcast_to(high, (p,))
    alpha = float(p) if alpha is None else alpha
    above, below = params > high, params < low
    upper = jnp.sum(jnp.maximum(params - high, 0.0), -1) / (eps + jnp.sum(above, -1))
    lower = jnp.sum(jnp.maximum(low - params, 0.0), -1) / (eps + jnp.sum(below, -1))
    return jnp.mean(alpha * (upper + lower))
