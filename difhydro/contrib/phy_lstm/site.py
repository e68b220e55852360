"""The real soil-moisture profile site of the PHY-LSTM experiments (spotpy's cmf example,
Schwingbach site 24, Hesse): daily 10/25/40 cm soil moisture, FAO-56 reference ET and the
water-balance series W of Geng et al. (2024)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from . import losses

__all__ = ["SITE_LATITUDE", "SITE_ELEVATION_M", "SITE_DEPTHS_CM", "fao56_reference_et", "site_dataset"]

SITE_LATITUDE = 50.5
# Vollnkirchener Bach valley floor; the groundwater head in the driver file is ~238 m a.s.l.
SITE_ELEVATION_M = 250.0
SITE_DEPTHS_CM = (10, 25, 40)


def fao56_reference_et(ds: xr.Dataset, elevation: float = SITE_ELEVATION_M, latitude: float = SITE_LATITUDE) -> np.ndarray:
    """FAO-56 Penman-Monteith reference evapotranspiration (mm d-1) with ``pyet``.

    Uses the daily ``temperature``, ``tmax``, ``tmin`` (deg C), ``wind_speed`` (m s-1,
    taken as 2-m wind), ``srad`` (daily mean W m-2 -> MJ m-2 d-1), ``relative_humidity``
    (%) and ``air_pressure`` (hPa -> kPa) of a one-basin daily Dataset. Returns ``[time]``.
    """
    try:
        import pyet
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError("fao56_reference_et needs pyet (pip install pyet)") from err
    index = pd.DatetimeIndex(ds["time"].values)

    def series(name, scale=1.0):
        if name not in ds:
            raise ValueError(f"variable '{name}' missing; FAO-56 needs it")
        return pd.Series(np.asarray(ds[name].values, np.float64).reshape(-1) * scale, index=index)

    et0 = pyet.pm_fao56(
        series("temperature"),
        wind=series("wind_speed"),
        rs=series("srad", 0.0864),
        tmax=series("tmax"),
        tmin=series("tmin"),
        rh=series("relative_humidity"),
        pressure=series("air_pressure", 0.1),
        elevation=elevation,
        lat=np.deg2rad(latitude),
    )
    return et0.to_numpy(np.float32)


def _lag1(x: np.ndarray) -> np.ndarray:
    """``out[..., t] = x[..., t − 1]`` along the last axis, NaN on the first step."""
    out = np.full_like(x, np.nan)
    out[..., 1:] = x[..., :-1]
    return out


def site_dataset(ds: xr.Dataset | None = None, deep_thickness_mm: float = 300.0) -> xr.Dataset:
    """The spotpy profile site as a one-basin daily Dataset for the PHY-LSTM experiments.

    Adds ``et0`` (FAO-56 PM, mm d-1), ``sm_10``, ``sm_25``, ``sm_40`` (observed, m3 m-3),
    ``sm_prev`` (``sm_10`` of the day before, a network input), ``observed_flag`` (1 where
    ``sm_10`` is observed) and the water-balance series of the ablation (mm d-1; the site
    has no runoff or snow observations): ``w_A1 = P``, ``w_A2 = P − ET0`` and
    ``w_B1``/``w_B2`` = the same minus the change of the deep (25-40 cm mean) moisture
    times ``deep_thickness_mm`` (17.5-47.5 cm, 300 mm).
    """
    if ds is None:
        from ...data import load_example

        ds = load_example("soil_moisture_profile", daily=True)
    ds = ds.copy()
    sm = np.asarray(ds["soil_moisture"].transpose("basin", "time", "depth").values, np.float32)
    dims = ("basin", "time")
    for i, depth in enumerate(SITE_DEPTHS_CM):
        ds[f"sm_{depth}"] = (dims, sm[..., i])
        ds[f"sm_{depth}"].attrs.update(units="m3 m-3", long_name=f"observed soil moisture at {depth} cm")
    ds["et0"] = (dims, fao56_reference_et(ds.isel(basin=0))[None])
    ds["et0"].attrs.update(units="mm d-1", long_name="FAO-56 Penman-Monteith reference ET (pyet)")
    ds["sm_prev"] = (dims, _lag1(sm[..., 0]))
    ds["observed_flag"] = (dims, np.isfinite(sm[..., 0]).astype(np.float32))
    p = np.asarray(ds["precipitation"].values, np.float32)
    et = np.asarray(ds["et0"].values, np.float32)
    deep = sm[..., 1:].mean(-1)
    d_deep = deep - _lag1(deep)
    ds["w_A1"] = (dims, p)
    ds["w_A2"] = (dims, np.asarray(losses.water_balance(p, et)))
    ds["w_B1"] = (dims, np.asarray(losses.water_balance(p, 0.0, 0.0, 0.0, d_deep, deep_scale=deep_thickness_mm)))
    ds["w_B2"] = (dims, np.asarray(losses.water_balance(p, et, 0.0, 0.0, d_deep, deep_scale=deep_thickness_mm)))
    for k in ("w_A1", "w_A2", "w_B1", "w_B2"):
        ds[k].attrs["units"] = "mm d-1"
    return ds


