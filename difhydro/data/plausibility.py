"""Basin-level plausibility: long-term water balance, precipitation magnitude, coordinates.

The value checks of :mod:`.validation` judge one day at a time; a whole series in the
wrong units passes them (1 mm d-1 read as 1 m d-1 is still "in range" after a conversion,
a discharge in ft3 s-1 declared as m3 s-1 stays positive). These checks judge each basin
over its record, on long-term means, where unit mistakes stand out against physical
limits. :func:`~difhydro.data.validation.validate` runs them after the value checks and
applies a policy per check (``error``, ``flag`` or, for the streamflow checks, ``mask``);
the statistic of every checked basin goes to the report.

==========================  =======  ==================================================
check                       default  rule (long-term means over the basin's record)
==========================  =======  ==================================================
``runoff_ratio``            error    Q / P <= :data:`RUNOFF_RATIO_MAX` (2)
``water_limit``             flag     Q / P <= 1 + :data:`WATER_LIMIT_MARGIN` (1.1)
``energy_limit``            flag     (P - Q) / PET <= 1 + :data:`ENERGY_LIMIT_MARGIN` (1.1)
``precipitation_magnitude`` error    :data:`PRECIPITATION_RANGE` (0.05..30 mm d-1)
``coordinates``             error    latitude in [-90, 90], longitude in [-180, 360],
                                     hemisphere of the latitude = phase of the
                                     temperature cycle
``latitude_agreement``      flag     gauge latitude within :data:`LATITUDE_AGREEMENT`
                                     (2 deg) of another latitude of the basin (CAMELS-US
                                     forcing-file header)
``constant_streamflow``     flag     observed streamflow is not one constant value
==========================  =======  ==================================================

Errors by default are the checks that only a unit or data mistake can fail; flags are the
ones a real basin can fail (precipitation undercatch, inter-basin groundwater flow, an
unrealistic PET product). Long-term means need :data:`MIN_DAYS` days of data (paired
precipitation and streamflow for the water balance); shorter records are not checked and
the report says so. Everything here is host NumPy, vectorised over basins.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "CHECKS",
    "Check",
    "Finding",
    "RUNOFF_RATIO_MAX",
    "WATER_LIMIT_MARGIN",
    "ENERGY_LIMIT_MARGIN",
    "PRECIPITATION_RANGE",
    "MIN_DAYS",
    "SEASONAL_AMPLITUDE_MIN",
    "HEMISPHERE_LATITUDE_MIN",
    "LATITUDE_AGREEMENT",
    "plausibility_findings",
]

#: Days of data a long-term mean needs (one full seasonal cycle). Over one year, storage
#: changes (soil, groundwater, snow) can be a tenth of annual precipitation or more; the
#: margins below absorb that, and longer records make the means firmer.
MIN_DAYS = 365

#: Upper limit of the long-term runoff ratio Q / P that only a unit or area mistake
#: exceeds. A runoff ratio above 1 needs water from outside the topographic divide
#: (inter-basin groundwater flow: Fan 2019, "Are catchments leaky?", WIREs Water 6,
#: e1386) or precipitation that the forcing misses (gauge undercatch and orographic
#: underestimation; Newman et al. 2015, doi:10.5194/hess-19-209-2015, and Addor et al.
#: 2017, doi:10.5194/hess-21-5293-2017, list CAMELS basins with runoff ratios above 1).
#: Twice the precipitation is far beyond both: the shared subsets peak at 1.48 (Caravan,
#: ERA5-Land on the Olympic Peninsula, basin 12010000) and 1.11 (CAMELS-US NLDAS, same
#: basin). The mistakes it catches (counted on the 230 shared Caravan basins, 100-1963
#: km2, from their true ratios): discharge in ft3 s-1 declared as m3 s-1 (x 35.3: every
#: basin with a true ratio above 0.057, 221 of 230; 228 at least flagged by the water
#: limit), ft3 s-1 read as mm d-1 (x A / 2.45 km2: all 230), an area in m2 declared as
#: km2 (x 1e6), precipitation in m read as mm (x 1000). Only partly: m3 s-1 read as
#: mm d-1 (x A / 86.4 km2: 96 errors, 54 more water-limit flags, 80 basins unnoticed,
#: the smaller and drier ones). No check of long-term means sees a factor that keeps the
#: ratio plausible.
RUNOFF_RATIO_MAX = 2.0

#: Budyko's water limit (Budyko 1974, Climate and Life): actual evaporation P - Q >= 0,
#: i.e. Q / P <= 1, with this margin for storage change and forcing bias. Real basins do
#: exceed it (see :data:`RUNOFF_RATIO_MAX`), hence a flag, not an error, by default.
WATER_LIMIT_MARGIN = 0.1

#: Budyko's energy limit: actual evaporation P - Q <= PET, with this margin (PET methods
#: differ by tens of percent: Oudin et al. 2005, doi:10.1016/j.jhydrol.2004.08.026). A
#: violation means too little runoff for the climate (a discharge too small, e.g. an area
#: in km2 declared as m2, or m3 s-1 read as mm d-1) or a PET that is too low. Checked
#: against the data set's own ``pet`` series, else a ``pet_mean`` attribute (CAMELS-US:
#: Priestley-Taylor, Addor et al. 2017), else skipped (noted). ERA5-Land PET (Caravan)
#: is too high for many basins (Clerc-Schwarzenbach et al. 2024, HESS 28, 4219,
#: doi:10.5194/hess-28-4219-2024), which makes this side of the check lenient there.
ENERGY_LIMIT_MARGIN = 0.1

#: Plausible long-term basin-mean precipitation, mm d-1 (18..10950 mm a-1). The wettest
#: long-term station records are near 12 000 mm a-1 (Mawsynram, Lloro: about 33 mm d-1)
#: and basin means stay below; gauged basins collect water from land that gets some
#: precipitation. Outside: wrong units (m read as mm: x 0.001; mm h-1 or 0.1 mm read as
#: mm d-1). The shared subsets span 0.47 (CAMELS-US NLDAS, 10259000) to 6.8 mm d-1.
#: A genuine hyper-arid basin below 0.05 mm d-1 passes with ``policies={"precipitation_magnitude": "flag"}``.
PRECIPITATION_RANGE = (0.05, 30.0)

#: The temperature cycle decides the hemisphere only where it is clear: a mean
#: difference of at least this many degC between June-August and December-February.
#: Tropical basins have smaller cycles; extratropical ones larger (the shared US basins:
#: 7.5..33 degC, warmest in June-August).
SEASONAL_AMPLITUDE_MIN = 3.0

#: ... and only for latitudes at least this far from the equator (near it, the dry and
#: wet seasons, not the sun, set the warmest months).
HEMISPHERE_LATITUDE_MIN = 10.0

#: The gauge latitude and the latitude of another source of the same basin (CAMELS-US
#: forcing-file header: the basin centroid) agree within this many degrees (CAMELS basins
#: are < 26 000 km2; the shared subset differs by at most 0.4 deg). A flag by default:
#: which of the two is wrong cannot be told.
LATITUDE_AGREEMENT = 2.0


@dataclass(frozen=True)
class Check:
    """A basin-level check: its default policy, the policies it accepts and its rule."""

    name: str
    default: str
    actions: tuple[str, ...]
    rule: str
    units: str


_STREAMFLOW_ACTIONS = ("error", "flag", "mask")  # mask: the basin's streamflow set to NaN, counted

CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("runoff_ratio", "error", _STREAMFLOW_ACTIONS, f"Q/P <= {RUNOFF_RATIO_MAX:g}", "-"),
    Check("water_limit", "flag", _STREAMFLOW_ACTIONS, f"Q/P <= {1 + WATER_LIMIT_MARGIN:g} (P - Q >= 0)", "-"),
    Check("energy_limit", "flag", _STREAMFLOW_ACTIONS, f"(P - Q)/PET <= {1 + ENERGY_LIMIT_MARGIN:g}", "-"),
    Check("precipitation_magnitude", "error", ("error", "flag"),
          f"mean P in {PRECIPITATION_RANGE[0]:g}..{PRECIPITATION_RANGE[1]:g} mm d-1", "mm d-1"),
    Check("coordinates", "error", ("error", "flag"),
          "lat in [-90, 90], lon in [-180, 360], hemisphere = temperature cycle", "degrees_north"),
    Check("latitude_agreement", "flag", ("error", "flag"),
          f"|gauge lat - forcing lat| <= {LATITUDE_AGREEMENT:g} deg", "degrees_north"),
    Check("constant_streamflow", "flag", _STREAMFLOW_ACTIONS, "observed streamflow varies (NSE needs its variance)", "mm d-1"),
)}


@dataclass
class Finding:
    """One check over all basins: ``checked`` and ``flagged`` ``[basin]`` booleans, the
    statistic ``value`` ``[basin]`` (NaN where not checked), the days behind it, one
    reason per flagged basin, and a note on what was not checked."""

    check: Check
    checked: np.ndarray
    flagged: np.ndarray
    value: np.ndarray
    n_days: np.ndarray
    reasons: dict[int, str]
    note: str = ""


def _mean(a: np.ndarray, use: np.ndarray) -> np.ndarray:
    n = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(use, a, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def _series(ds: xr.Dataset, name: str) -> np.ndarray | None:
    if name not in ds or set(ds[name].dims) != {"basin", "time"}:
        return None
    return np.array(ds[name].transpose("basin", "time").values, dtype=np.float64)


def _attribute(ds: xr.Dataset, name: str) -> np.ndarray | None:
    if name not in ds or ds[name].dims != ("basin",) or ds[name].dtype.kind not in "fiu":
        return None
    return np.array(ds[name].values, dtype=np.float64)


def _skipped(checked: np.ndarray, why: str) -> str:
    n = int((~checked).sum())
    return f"{n} basin(s) not checked ({why})" if n else ""


def water_balance(ds: xr.Dataset) -> list[Finding]:
    """``runoff_ratio``, ``water_limit`` and ``energy_limit`` from long-term means of
    ``precipitation``, ``streamflow`` (mm d-1) and PET over the days both P and Q exist."""
    p, q = _series(ds, "precipitation"), _series(ds, "streamflow")
    if p is None or q is None:
        return []
    both = np.isfinite(p) & np.isfinite(q)
    n = both.sum(axis=1)
    enough = n >= MIN_DAYS
    p_mean, q_mean = _mean(p, both), _mean(q, both)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(enough & (p_mean > 0), q_mean / p_mean, np.nan)
    checked = np.isfinite(ratio)
    why = f"fewer than {MIN_DAYS} days with both precipitation and streamflow, or no precipitation"
    gross = checked & (ratio > RUNOFF_RATIO_MAX)
    over = checked & (ratio > 1 + WATER_LIMIT_MARGIN) & ~gross  # the error speaks for a gross one
    out = [
        Finding(CHECKS["runoff_ratio"], checked, gross, ratio, n, {
            i: f"Q/P = {ratio[i]:.3g} (P {p_mean[i]:.3g}, Q {q_mean[i]:.3g} mm d-1) > {RUNOFF_RATIO_MAX:g}: streamflow "
               "units or area wrong (ft3 s-1 as m3 s-1 is x 35.3) or precipitation units (m as mm is x 0.001)?"
            for i in np.flatnonzero(gross)}, _skipped(checked, why)),
        Finding(CHECKS["water_limit"], checked, over, ratio, n, {
            i: f"Q/P = {ratio[i]:.3g} > {1 + WATER_LIMIT_MARGIN:g}: more runoff than precipitation (undercatch, "
               "orographic precipitation the forcing misses, or inter-basin groundwater flow)"
            for i in np.flatnonzero(over)}, _skipped(checked, why)),
    ]
    pet = _series(ds, "pet")
    if pet is not None:
        use = both & np.isfinite(pet)
        pet_mean, source = _mean(pet, use), "the pet series"
        p_e, q_e = _mean(p, use), _mean(q, use)
        n_e = use.sum(axis=1)
    else:
        pet_mean, source = _attribute(ds, "pet_mean"), "the pet_mean attribute"
        p_e, q_e, n_e = p_mean, q_mean, n
    if pet_mean is None:
        out.append(Finding(CHECKS["energy_limit"], np.zeros_like(checked), np.zeros_like(checked),
                           np.full(ratio.shape, np.nan), n, {},
                           "not checked: the data set has no PET (a pet series or a pet_mean attribute)"))
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        aet_ratio = np.where((n_e >= MIN_DAYS) & (pet_mean > 0) & checked, (p_e - q_e) / pet_mean, np.nan)
    checked_e = np.isfinite(aet_ratio)
    energy = checked_e & (aet_ratio > 1 + ENERGY_LIMIT_MARGIN)
    note = f"PET from {source}" + ("; " + _skipped(checked_e, "too short a record, or no positive PET")
                                   if (~checked_e).any() else "")
    out.append(Finding(CHECKS["energy_limit"], checked_e, energy, aet_ratio, n_e, {
        i: f"(P - Q)/PET = {aet_ratio[i]:.3g} (P {p_e[i]:.3g}, Q {q_e[i]:.3g}, PET {pet_mean[i]:.3g} mm d-1) > "
           f"{1 + ENERGY_LIMIT_MARGIN:g}: less runoff than the energy limit allows (streamflow too small: "
           "units or area?) or PET too low" for i in np.flatnonzero(energy)}, note))
    return out


def precipitation_magnitude(ds: xr.Dataset) -> list[Finding]:
    """``precipitation_magnitude``: the long-term mean of ``precipitation`` (mm d-1)."""
    p = _series(ds, "precipitation")
    if p is None:
        return []
    use = np.isfinite(p)
    n = use.sum(axis=1)
    mean = np.where(n >= MIN_DAYS, _mean(p, use), np.nan)
    checked = np.isfinite(mean)
    lo, hi = PRECIPITATION_RANGE
    bad = checked & ((mean < lo) | (mean > hi))
    return [Finding(CHECKS["precipitation_magnitude"], checked, bad, mean, n, {
        i: f"mean precipitation {mean[i]:.3g} mm d-1 outside {lo:g}..{hi:g}: wrong units "
           + ("(m read as mm is x 0.001)?" if mean[i] < lo else "(mm h-1 or 0.1 mm read as mm d-1)?")
        for i in np.flatnonzero(bad)}, _skipped(checked, f"fewer than {MIN_DAYS} days of precipitation"))]


def _seasonal_amplitude(ds: xr.Dataset) -> np.ndarray | None:
    """Mean temperature of June-August minus that of December-February, degC ``[basin]``
    (NaN with fewer than :data:`MIN_DAYS` days or a season without data)."""
    t = _series(ds, "temperature")
    if t is None:
        return None
    month = pd.DatetimeIndex(ds["time"].values).month.values
    finite = np.isfinite(t)
    jja, djf = finite & np.isin(month, (6, 7, 8)), finite & np.isin(month, (12, 1, 2))
    enough = (finite.sum(axis=1) >= MIN_DAYS) & (jja.sum(axis=1) > 0) & (djf.sum(axis=1) > 0)
    return np.where(enough, _mean(t, jja) - _mean(t, djf), np.nan)


def coordinates(ds: xr.Dataset) -> list[Finding]:
    """``coordinates``: ``gauge_lat`` / ``gauge_lon`` (degrees) in range, the latitude's
    hemisphere against the phase of the temperature cycle (northern basins are warmest
    in June-August), and against ``forcing_latitude`` where the data set has it. The
    statistic is the latitude."""
    lat, lon = _attribute(ds, "gauge_lat"), _attribute(ds, "gauge_lon")
    if lat is None and lon is None:
        return [Finding(CHECKS["coordinates"], np.zeros(ds.sizes["basin"], bool), np.zeros(ds.sizes["basin"], bool),
                        np.full(ds.sizes["basin"], np.nan), np.zeros(ds.sizes["basin"], int), {},
                        "not checked: the data set has no gauge_lat / gauge_lon")]
    n_b = ds.sizes["basin"]
    lat = np.full(n_b, np.nan) if lat is None else lat
    lon = np.full(n_b, np.nan) if lon is None else lon
    reasons: dict[int, list[str]] = {}
    checked = np.isfinite(lat) | np.isfinite(lon)

    def flag(mask, text):
        for i in np.flatnonzero(mask):
            reasons.setdefault(int(i), []).append(text(i))

    swapped = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) > 90) & (np.abs(lon) <= 90)
    flag(np.abs(lat) > 90, lambda i: f"latitude {lat[i]:g} outside [-90, 90]"
         + (f" (longitude {lon[i]:g} would fit: latitude and longitude swapped?)" if swapped[i] else ""))
    flag((lon < -180) | (lon > 360), lambda i: f"longitude {lon[i]:g} outside [-180, 360]")
    amp = _seasonal_amplitude(ds)
    days = np.zeros(n_b, int)
    if amp is not None:
        days = np.isfinite(_series(ds, "temperature")).sum(axis=1)
        clear = np.isfinite(amp) & (np.abs(amp) >= SEASONAL_AMPLITUDE_MIN)
        judged = clear & (np.abs(lat) >= HEMISPHERE_LATITUDE_MIN) & (np.abs(lat) <= 90)
        wrong = judged & (np.sign(amp) != np.sign(lat))
        flag(wrong, lambda i: (
            f"latitude {lat[i]:g} is in the {'southern' if lat[i] < 0 else 'northern'} hemisphere but the temperature "
            f"cycle peaks in {'June-August' if amp[i] > 0 else 'December-February'} (JJA - DJF = {amp[i]:.1f} degC): "
            "latitude and longitude swapped, or the sign lost?"))
    flagged = np.zeros(n_b, bool)
    flagged[list(reasons)] = True
    note = _skipped(checked, "no coordinates")
    if amp is not None:
        unjudged = checked & ~(np.isfinite(amp) & (np.abs(amp) >= SEASONAL_AMPLITUDE_MIN)
                               & (np.abs(lat) >= HEMISPHERE_LATITUDE_MIN))
        if unjudged.any():
            note = "; ".join(x for x in (note, f"hemisphere not judged in {int(unjudged.sum())} basin(s) (latitude within "
                                         f"{HEMISPHERE_LATITUDE_MIN:g} deg of the equator, a temperature cycle under "
                                         f"{SEASONAL_AMPLITUDE_MIN:g} degC, or under {MIN_DAYS} days)") if x)
    else:
        note = "; ".join(x for x in (note, "hemisphere not judged: no temperature series") if x)
    out = [Finding(CHECKS["coordinates"], checked, flagged, lat, days, {i: "; ".join(r) for i, r in reasons.items()}, note)]
    other = _attribute(ds, "forcing_latitude")
    if other is not None:  # a second latitude of the basin (a flag: which one is wrong is unknown)
        both = np.isfinite(lat) & np.isfinite(other)
        gap = np.where(both, lat - other, np.nan)
        far = both & (np.abs(gap) > LATITUDE_AGREEMENT)
        out.append(Finding(CHECKS["latitude_agreement"], both, far, gap, np.zeros(n_b, int), {
            i: f"gauge latitude {lat[i]:g} differs from the forcing-file latitude {other[i]:g} by more than "
               f"{LATITUDE_AGREEMENT:g} deg (a wrong attribute row or forcing file?)" for i in np.flatnonzero(far)}))
    return out


def constant_streamflow(ds: xr.Dataset) -> list[Finding]:
    """``constant_streamflow``: a basin whose observed streamflow (two values or more)
    never changes, e.g. all zero; its NSE and KGE are undefined (NaN). The statistic is
    the standard deviation of the observed values (mm d-1)."""
    q = _series(ds, "streamflow")
    if q is None:
        return []
    finite = np.isfinite(q)
    n = finite.sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi, lo = np.nanmax(np.where(finite, q, np.nan), axis=1), np.nanmin(np.where(finite, q, np.nan), axis=1)
    checked = n >= 2
    flat = checked & (hi == lo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.where(checked, np.nanstd(np.where(finite, q, np.nan), axis=1), np.nan)
    return [Finding(CHECKS["constant_streamflow"], checked, flat, spread, n, {
        i: f"observed streamflow is {lo[i]:g} mm d-1 on all {n[i]} days with a value: NSE and KGE are undefined (NaN)"
        for i in np.flatnonzero(flat)}, _skipped(checked, "fewer than two streamflow values"))]


def plausibility_findings(ds: xr.Dataset) -> list[Finding]:
    """Every check that the variables of ``ds`` allow, in the order of :data:`CHECKS`."""
    return precipitation_magnitude(ds) + water_balance(ds) + coordinates(ds) + constant_streamflow(ds)
