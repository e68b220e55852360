"""Day length and potential evapotranspiration (FAO-56 astronomy, Hamon, Hargreaves, Oudin).

References: Allen et al. (1998) FAO-56; Hamon (1961) in the EXP-HYDRO form
(Patil & Stieglitz 2014); Hargreaves & Samani (1985); Oudin et al. (2005). Equations:
docs/physics.md §1.1, §5.1, §5.2, §5.6. All functions are elementwise, broadcast over any
shape and are jit-able.
"""

from __future__ import annotations

import jax.numpy as jnp

Array = jnp.ndarray

__all__ = [
    "solar_declination",
    "sunset_hour_angle",
    "day_length",
    "extraterrestrial_radiation",
    "saturation_vapour_pressure",
    "hamon_pet",
    "hargreaves_pet",
    "oudin_pet",
    "latent_heat",
]

_SOLAR_CONSTANT = 0.0820  # MJ m-2 min-1 (FAO-56 Gsc)
_MJ_TO_MM = 0.408  # mm of evaporation per MJ m-2 (1 / latent heat 2.45 MJ kg-1)


def solar_declination(day_of_year: Array) -> Array:
    """Solar declination δ (rad) for day of year J (1..366), FAO-56 Eq. 24."""
    return 0.409 * jnp.sin(2.0 * jnp.pi * day_of_year / 365.0 - 1.39)


def sunset_hour_angle(latitude_deg: Array, day_of_year: Array) -> Array:
    """Sunset hour angle ω_s (rad), FAO-56 Eq. 25, clipped for polar day and night."""
    phi = jnp.deg2rad(latitude_deg)
    x = -jnp.tan(phi) * jnp.tan(solar_declination(day_of_year))
    return jnp.arccos(jnp.clip(x, -1.0, 1.0))


def day_length(latitude_deg: Array, day_of_year: Array) -> Array:
    """Astronomical day length (h) = 24 ω_s / π, FAO-56 Eq. 34.

    Args:
        latitude_deg: latitude φ in degrees north (negative south), any shape.
        day_of_year: J in 1..366, broadcastable with ``latitude_deg``.
    """
    return 24.0 / jnp.pi * sunset_hour_angle(latitude_deg, day_of_year)


def extraterrestrial_radiation(latitude_deg: Array, day_of_year: Array) -> Array:
    """Extraterrestrial radiation Ra (MJ m-2 d-1), FAO-56 Eq. 21."""
    phi = jnp.deg2rad(latitude_deg)
    delta = solar_declination(day_of_year)
    omega = sunset_hour_angle(latitude_deg, day_of_year)
    dr = 1.0 + 0.033 * jnp.cos(2.0 * jnp.pi * day_of_year / 365.0)
    return (24.0 * 60.0 / jnp.pi) * _SOLAR_CONSTANT * dr * (
        omega * jnp.sin(phi) * jnp.sin(delta) + jnp.cos(phi) * jnp.cos(delta) * jnp.sin(omega)
    )


def saturation_vapour_pressure(temperature: Array) -> Array:
    """Saturation vapour pressure e_s (kPa) at air temperature T (deg C), Tetens form."""
    return 0.611 * jnp.exp(17.3 * temperature / (temperature + 237.3))


def hamon_pet(temperature: Array, day_length_h: Array) -> Array:
    """Hamon PET (mm d-1) as in EXP-HYDRO: ``29.8 Lday e_s(T) / (T + 273.2)``.

    Args:
        temperature: daily mean air temperature T (deg C).
        day_length_h: day length Lday (h).
    """
    return 29.8 * day_length_h * saturation_vapour_pressure(temperature) / (temperature + 273.2)


def hargreaves_pet(
    tmax: Array, tmin: Array, latitude_deg: Array, day_of_year: Array, tmean: Array | None = None
) -> Array:
    """Hargreaves-Samani PET (mm d-1), as used by δHBV.

    ``PET = max(0, 0.0023 · 0.408 · Ra · (Tmean + 17.8) · sqrt(max(Tmax − Tmin, 0)))``.

    Args:
        tmax, tmin: daily maximum and minimum air temperature (deg C).
        latitude_deg: latitude (degrees north).
        day_of_year: J (1..366).
        tmean: daily mean temperature (deg C); ``(tmax + tmin) / 2`` if not given.
    """
    if tmean is None:
        tmean = 0.5 * (tmax + tmin)
    ra = extraterrestrial_radiation(latitude_deg, day_of_year)
    # the double where keeps the sqrt gradient finite when tmax == tmin (NLDAS forcing)
    spread = tmax - tmin
    safe = jnp.where(spread > 0, spread, 1.0)
    root = jnp.where(spread > 0, jnp.sqrt(safe), 0.0)
    return jnp.maximum(0.0, 0.0023 * _MJ_TO_MM * ra * (tmean + 17.8) * root)


def latent_heat(temperature: Array) -> Array:
    """Latent heat of vaporisation λ (MJ kg-1) at T (deg C): ``2.501 − 0.002361·T`` (FAO-56 Eq. 3-1)."""
    return 2.501 - 0.002361 * temperature


def oudin_pet(temperature: Array, latitude_deg: Array, day_of_year: Array) -> Array:
    """Oudin et al. (2005) PET (mm d-1) from mean temperature and extraterrestrial radiation.

    ``PET = Ra / (λ ρ) · (T + 5) / 100`` if ``T + 5 > 0`` else 0, with Ra (MJ m-2 d-1) of
    FAO-56 Eq. 21, λ(T) of :func:`latent_heat` and ρ = 1000 kg m-3 (so Ra/λ is in mm d-1),
    as in ``pyet.oudin``. Oudin et al. chose it among 27 formulas as the best PET input of
    lumped rainfall-runoff models; difhydro uses it for Caravan data, whose ERA5-Land PET
    is far too high on many basins (Clerc-Schwarzenbach et al. 2024).

    Args:
        temperature: daily mean air temperature T (deg C).
        latitude_deg: latitude (degrees north), broadcastable with ``temperature``.
        day_of_year: J (1..366), broadcastable with ``temperature``.
    """
    ra = extraterrestrial_radiation(latitude_deg, day_of_year)
    warm = temperature + 5.0
    return jnp.where(warm > 0.0, ra * warm / (100.0 * latent_heat(temperature)), 0.0)
