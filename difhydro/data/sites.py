"""Small real data sets shipped with spotpy (Houska et al. 2015, doi:10.1371/journal.pone.0145180).

``load_example(name)`` reads them from the installed ``spotpy`` package
(``spotpy/examples/cmf_data`` and ``spotpy/examples/hymod_python``):

- ``"fulda"``: Fulda at gauge Grebenau (Hesse, Germany), daily 1979-1988: P, Tmin,
  Tmax, Tmean, Q. Q (m3 s-1) is converted to mm d-1 with the catchment area
  2976.41e6 m2 used by spotpy's ``examples/spot_setup_cmf_lumped.py`` (``area =
  2976.41e6  # sq m``).
- ``"hymod"``: the HYMOD example basin, daily 2012-2016: P, TURC PET, Q. Q (l s-1) is
  converted to mm d-1 with the 1.783 km2 of spotpy's
  ``examples/spot_setup_hymod_python.py`` (``Factor = 1.783 * 1000 * 1000 / (60 * 60 *
  24)`` turns mm d-1 into l s-1).
- ``"soil_moisture_profile"``: hourly soil moisture at 10, 25 and 40 cm (Vollnkirchener
  Bach, Hesse) with hourly weather drivers of the nearby Schwingbach station (site 24),
  2014-2016, data of the Chair of Landscape, Water and Biogeochemical Cycles, JLU Giessen;
  ``daily=True`` resamples it to daily values.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._common import DataFileError, check_daily, set_units, with_day_length

__all__ = ["EXAMPLES", "FULDA_AREA_M2", "FULDA_LATITUDE", "HYMOD_AREA_M2", "SOIL_SITE_LATITUDE", "load_example"]

FULDA_AREA_M2 = 2976.41e6  # spotpy examples/spot_setup_cmf_lumped.py, SingleStorage.area
HYMOD_AREA_M2 = 1.783e6  # spotpy examples/spot_setup_hymod_python.py, spot_setup.Factor
# Approximate catchment centre: the Fulda rises at ~50.5 N (Wasserkuppe) and the Grebenau
# gauge (Guxhagen, upstream of Kassel) lies at ~51.2 N; day length differs < 10 min across.
FULDA_LATITUDE = 50.8
# Schwingbach near Rechtenbach / Vollnkirchen, Hesse (~50.5 N, 8.6 E).
SOIL_SITE_LATITUDE = 50.5
EXAMPLES = ("fulda", "hymod", "soil_moisture_profile")

_SOIL_DEPTHS_M = (0.10, 0.25, 0.40)


def _spotpy_examples() -> Path:
    spec = importlib.util.find_spec("spotpy")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("spotpy is not installed; its example data sets come with it (pip install spotpy)")
    return Path(spec.origin).parent / "examples"


def _read_csv(path: Path, basin: str, **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"basin {basin}: example file not found: {path}")
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataFileError(f"cannot be parsed: {err}", path, basin) from None


def _numeric(table: pd.DataFrame, columns, path, basin) -> dict[str, np.ndarray]:
    out = {}
    for col in columns:
        if col not in table.columns:
            raise DataFileError(f"column '{col}' missing; file has {list(table.columns)}", path, basin)
        values = pd.to_numeric(table[col], errors="coerce")
        text = table[col].astype(str).str.strip().str.lower()
        bad = values.isna() & table[col].notna() & ~text.isin(["nan", ""])
        if bad.any():
            raise DataFileError(f"non-numeric value in column '{col}', data row {int(np.flatnonzero(bad)[0]) + 1}", path, basin)
        out[col] = values.to_numpy(np.float64)
    return out


def _basin_dataset(name: str, dates: pd.DatetimeIndex, variables: dict[str, np.ndarray], static: dict[str, float]) -> xr.Dataset:
    dims = ("basin", "time")
    ds = xr.Dataset(
        {k: (dims, np.asarray(v, np.float32)[None, :]) for k, v in variables.items()},
        coords={"basin": np.array([name]), "time": pd.DatetimeIndex(dates, name="time")},
    )
    for k, v in static.items():
        ds[k] = ("basin", np.array([v], np.float64))
    return ds


def _load_fulda() -> xr.Dataset:
    path = _spotpy_examples() / "cmf_data" / "fulda_climate.csv"
    table = _read_csv(path, "fulda", skiprows=[1])  # row 2 holds the units
    cols = _numeric(table, ["tmax", "tmin", "tmean", "Prec", "Q"], path, "fulda")
    dates = pd.DatetimeIndex(pd.to_datetime(table["date"], format="%d.%m.%Y"))
    check_daily(dates, path, "fulda")
    ds = _basin_dataset(
        "fulda",
        dates,
        {
            "precipitation": cols["Prec"],
            "tmax": cols["tmax"],
            "tmin": cols["tmin"],
            "temperature": cols["tmean"],
            "streamflow": cols["Q"] * 86400.0 * 1000.0 / FULDA_AREA_M2,
            "discharge": cols["Q"],
        },
        {"area": FULDA_AREA_M2, "latitude": FULDA_LATITUDE},
    )
    ds = with_day_length(ds, "latitude")
    ds["area"].attrs.update(units="m2", source="spotpy examples/spot_setup_cmf_lumped.py (area = 2976.41e6)")
    ds["latitude"].attrs.update(units="degrees_north", comment="approximate catchment centre (gauge Grebenau ~51.2 N)")
    ds["streamflow"].attrs["comment"] = "discharge (m3 s-1) x 86400 x 1000 / area"
    ds.attrs.update(title="Fulda at Grebenau (spotpy cmf example)", source=str(path))
    return set_units(ds)


def _load_hymod() -> xr.Dataset:
    path = _spotpy_examples() / "hymod_python" / "hymod_input.csv"
    table = _read_csv(path, "hymod", sep=";")
    cols = _numeric(table, ["rainfall[mm]", "TURC [mm d-1]", "Discharge[ls-1]"], path, "hymod")
    dates = pd.DatetimeIndex(pd.to_datetime(table["Date"], format="%d.%m.%Y"))
    check_daily(dates, path, "hymod")
    q_ls = cols["Discharge[ls-1]"]
    ds = _basin_dataset(
        "hymod",
        dates,
        {
            "precipitation": cols["rainfall[mm]"],
            "pet": cols["TURC [mm d-1]"],
            "streamflow": q_ls * 86400.0 / HYMOD_AREA_M2,  # 1 l m-2 = 1 mm
            "discharge": q_ls,
        },
        {"area": HYMOD_AREA_M2},
    )
    ds["area"].attrs.update(units="m2", source="spotpy examples/spot_setup_hymod_python.py (1.783 km2)")
    ds["pet"].attrs.update(units="mm d-1", long_name="potential evapotranspiration (Turc)")
    ds["streamflow"].attrs["comment"] = "discharge (l s-1) x 86400 / area (m2); NaN where the file has nan"
    ds.attrs.update(title="HYMOD example basin (spotpy)", source=str(path))
    ds = set_units(ds)
    ds["discharge"].attrs["units"] = "l s-1"
    return ds


def _load_soil_profile(daily: bool) -> xr.Dataset:
    folder = _spotpy_examples() / "cmf_data"
    drv_path, sm_path = folder / "driver_data_site24.csv", folder / "soilmoisture_site24.csv"
    site = "soil_moisture_profile"
    sm = _read_csv(sm_path, site, comment="#", header=None, names=["time", "sm10", "sm25", "sm40"])
    drv = _read_csv(drv_path, site, comment="#")
    sm_cols = _numeric(sm, ["sm10", "sm25", "sm40"], sm_path, site)
    names = {
        "rain_mmday": "precipitation",
        "airpressure_hPa": "air_pressure",
        "solarrad_Wm2": "srad",
        "relhum_perc": "relative_humidity",
        "airtemp_degC": "temperature",
        "windspeed_ms": "wind_speed",
        "gwhead_m": "groundwater_head",
    }
    drv_cols = _numeric(drv, list(names), drv_path, site)
    times = pd.DatetimeIndex(pd.to_datetime(sm["time"], format="%Y-%m-%d %H:%M:%S"), name="time")
    hourly = pd.date_range(times[0], periods=len(times), freq="h", name="time")
    if not times.equals(hourly):
        raise DataFileError("time stamps are not consecutive hours", sm_path, site)
    # The driver file writes days 1-12 as YYYY-DD-MM (e.g. 2014-02-01 for 2 January); its
    # rows are in hourly order. Accept a stamp if it matches the hour as written or swapped.
    if len(drv) != len(hourly):
        raise DataFileError(f"{len(drv)} rows, the soil-moisture file has {len(hourly)}", drv_path, site)
    as_written = pd.to_datetime(drv["time"], format="%Y-%m-%d %H:%M:%S", errors="coerce").to_numpy()
    swapped = pd.to_datetime(drv["time"], format="%Y-%d-%m %H:%M:%S", errors="coerce").to_numpy()
    ok = (as_written == hourly.to_numpy()) | (swapped == hourly.to_numpy())
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise DataFileError(f"time stamp {drv['time'].iloc[row]!r} (data row {row + 1}) is not hour {hourly[row]}", drv_path, site)
    data = {new: (("time",), drv_cols[old].astype(np.float32)) for old, new in names.items()}
    data["soil_moisture"] = (("time", "depth"), np.stack([sm_cols[c] for c in ("sm10", "sm25", "sm40")], axis=1).astype(np.float32))
    ds = xr.Dataset(data, coords={"time": hourly, "depth": ("depth", np.array(_SOIL_DEPTHS_M), {"units": "m", "positive": "down"})})
    ds["precipitation"].attrs["comment"] = "hourly value of the rate in mm d-1 (the file's rain_mmday)"
    ds.attrs.update(
        title="Soil-moisture profile, Vollnkirchener Bach / Schwingbach site 24 (spotpy cmf example)",
        source=f"{sm_path}; {drv_path}",
        latitude=SOIL_SITE_LATITUDE,
        frequency="1h",
        comment="driver time stamps of days 1-12 are day/month swapped in the file; rows are taken in hourly order",
    )
    if daily:
        ds = _to_daily(ds)
    return set_units(ds)


def _to_daily(ds: xr.Dataset) -> xr.Dataset:
    """Daily means (``tmax``/``tmin`` from the hourly temperature); a day with any missing
    hour is NaN rather than the mean of the hours left. The hourly axis starts at 00:00 and
    is complete, so days are plain reshapes ``[day, 24, ...]``."""
    n_days = ds.sizes["time"] // 24
    if ds.sizes["time"] != 24 * n_days or pd.Timestamp(ds["time"].values[0]).hour != 0:
        raise ValueError("daily resampling needs whole days of hourly values starting at 00:00")
    days = pd.DatetimeIndex(ds["time"].values[::24], name="time")

    def per_day(name):
        v = ds[name].values
        return v.reshape((n_days, 24) + v.shape[1:])

    dims = ("basin", "time")
    data = {name: (dims, per_day(name).mean(axis=1)[None]) for name in ds.data_vars if ds[name].dims == ("time",)}
    data["soil_moisture"] = (("basin", "time", "depth"), per_day("soil_moisture").mean(axis=1)[None])
    data["tmax"] = (dims, per_day("temperature").max(axis=1)[None])
    data["tmin"] = (dims, per_day("temperature").min(axis=1)[None])
    daily = xr.Dataset(
        {k: (d, v.astype(np.float32)) for k, (d, v) in data.items()},
        coords={"basin": np.array(["soil_moisture_profile"], dtype=str), "time": days, "depth": ds["depth"]},
    )
    daily["precipitation"].attrs["comment"] = "daily mean of the hourly rates = daily total (mm d-1)"
    daily = with_day_length(daily, SOIL_SITE_LATITUDE)
    daily.attrs.update(ds.attrs, frequency="1D")
    return daily


def load_example(name: str, *, daily: bool = False) -> xr.Dataset:
    """Load one of spotpy's real example data sets (see the module docstring).

    Args:
        name: ``"fulda"``, ``"hymod"`` or ``"soil_moisture_profile"``.
        daily: only for ``"soil_moisture_profile"``: daily means instead of hourly values.

    Returns:
        ``"fulda"`` / ``"hymod"``: Dataset on ``(basin, time)`` with one basin named like
        the data set: ``precipitation``, ``streamflow`` (mm d-1), ``discharge`` (raw
        units), Fulda also ``tmax``, ``tmin``, ``temperature`` (deg C), ``day_length`` (h,
        FAO-56 at ``latitude``), hymod ``pet`` (mm d-1); ``(basin,)`` ``area`` (m2).
        ``"soil_moisture_profile"``: hourly Dataset on ``time`` with ``soil_moisture`` on
        ``(time, depth)`` (m3 m-3, depths 0.10, 0.25, 0.40 m) and the weather drivers; with
        ``daily=True`` on ``(basin, time)`` (one basin) plus ``tmax``, ``tmin``,
        ``day_length``. Units are in each variable's ``attrs``.
    """
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {EXAMPLES}")
    if daily and name != "soil_moisture_profile":
        raise ValueError(f"daily=True applies to 'soil_moisture_profile' only; {name!r} is already daily")
    if name == "fulda":
        return _load_fulda()
    if name == "hymod":
        return _load_hymod()
    return _load_soil_profile(daily)
