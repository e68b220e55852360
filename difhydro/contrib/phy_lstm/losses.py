"""The monotonic water-balance loss of PHY-LSTM / PHYs-LSTM (Geng et al. 2024; docs/physics.md §5.3).

Soil moisture should move in the direction of the water gained by the surface layer:
``Loss_PHY`` penalises forecasts that do not. Arrays are ``[..., time]`` (time last).
"""

from __future__ import annotations

import jax.numpy as jnp

from ...training.losses import masked_mean, rmse

Array = jnp.ndarray

__all__ = ["water_balance", "snow_water_change", "monotonic_direction", "monotonic_loss", "water_balance_loss"]


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
            flips it (the paper does not fix the sign, docs/physics.md §6).
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
    the choice of docs/physics.md §5.3); ``"accumulation"``: ``SD_t − SD_{t−1}``.
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
    disagreement mask still count in N (docs/physics.md §6).

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


