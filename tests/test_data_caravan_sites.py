"""Caravan reader (CSV and netCDF) and the spotpy example sites."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from difhydro.data import DataFileError, load_camels_us, load_caravan, load_example
from difhydro.physics import day_length

COLUMNS = "date,total_precipitation_sum,temperature_2m_mean,potential_evaporation_sum,streamflow"


def make_caravan(root, n_days=6):
    ts = root / "timeseries/csv/camels"
    ts.mkdir(parents=True)
    dates = pd.date_range("2001-06-01", periods=n_days)
    for k, gauge in enumerate(["01000001", "02000002"]):
        rows = [COLUMNS] + [
            f"{d.date()},{i + k:.1f},{10 + i:.2f},{1.5 + 0.1 * i:.2f},{'' if i == 2 else f'{0.5 * i + k:.2f}'}"
            for i, d in enumerate(dates)
        ]
        (ts / f"camels_{gauge}.csv").write_text("\n".join(rows) + "\n")
    attr = root / "attributes/camels"
    attr.mkdir(parents=True)
    (attr / "attributes_other_camels.csv").write_text(
        'gauge_id,gauge_name,gauge_lat,gauge_lon,area\ncamels_01000001,"River A, Maine",45.0,-68.0,100.0\n'
        "camels_02000002,River B,30.0,-80.0,200.0\ncamels_03000003,River C,40.0,-90.0,50.0\n"
    )
    (attr / "attributes_caravan_camels.csv").write_text(
        "gauge_id,p_mean,aridity\ncamels_01000001,3.0,0.6\ncamels_02000002,4.0,0.8\ncamels_03000003,1.0,2.0\n"
    )
    return root


def test_caravan_csv_names_units_and_day_length(tmp_path):
    ds = load_caravan(make_caravan(tmp_path))
    assert ds["basin"].values.tolist() == ["01000001", "02000002"]
    for name in ("precipitation", "temperature", "pet", "streamflow", "day_length"):
        assert ds[name].dims == ("basin", "time")
    np.testing.assert_allclose(ds["precipitation"].sel(basin="02000002").values, np.arange(6) + 1.0)
    q = ds["streamflow"].sel(basin="01000001").values
    assert np.isnan(q[2]) and q[3] == pytest.approx(1.5)  # empty cell -> NaN, not dropped
    assert ds["pet"].attrs["units"] == "mm d-1" and ds["temperature"].attrs["units"] == "degC"
    assert ds["gauge_name"].sel(basin="01000001").item() == "River A, Maine"
    assert float(ds["aridity"].sel(basin="02000002")) == pytest.approx(0.8)
    doy = pd.DatetimeIndex(ds["time"].values).dayofyear.values
    np.testing.assert_allclose(ds["day_length"].values[1], np.asarray(day_length(30.0, doy)), rtol=1e-6)
    np.testing.assert_allclose(ds["day_length"].values[0], fao56_day_length(45.0, doy), rtol=1e-5)


def fao56_day_length(lat_deg, doy):
    """Independent NumPy FAO-56 (Allen et al. 1998, Eqs. 24, 25, 34)."""
    phi = np.deg2rad(lat_deg)
    delta = 0.409 * np.sin(2 * np.pi * np.asarray(doy) / 365 - 1.39)
    return 24 / np.pi * np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1, 1))


def test_caravan_netcdf_variant_matches_csv(tmp_path):
    root = make_caravan(tmp_path)
    csv = load_caravan(root)
    nc_dir = root / "timeseries/netcdf/camels"
    nc_dir.mkdir(parents=True)
    for gauge in ("01000001", "02000002"):
        table = pd.read_csv(root / f"timeseries/csv/camels/camels_{gauge}.csv", parse_dates=["date"]).set_index("date")
        xr.Dataset.from_dataframe(table).to_netcdf(nc_dir / f"{gauge}.nc")
    nc = load_caravan(root, format="netcdf")
    for name in ("precipitation", "temperature", "pet", "streamflow"):
        np.testing.assert_array_equal(nc[name].values, csv[name].values)
    assert load_caravan(root, basins=["camels_02000002"], format="netcdf")["basin"].values.tolist() == ["02000002"]


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda p: p.write_text(p.read_text().replace("streamflow", "flow")), r"column\(s\) \['streamflow'\] missing"),
        (lambda p: p.write_text(p.read_text().replace("2001-06-03", "2001-06-13")), "date gap|duplicate or unordered"),
        (lambda p: p.write_text(p.read_text().replace(",1.7", ",abc")), "non-numeric value 'abc"),
    ],
    ids=["missing-column", "date-gap", "non-numeric"],
)
def test_caravan_bad_input(tmp_path, edit, pattern):
    root = make_caravan(tmp_path)
    path = root / "timeseries/csv/camels/camels_02000002.csv"
    edit(path)
    with pytest.raises(DataFileError, match=pattern) as info:
        load_caravan(root)
    assert "02000002" in str(info.value) and str(path) in str(info.value)


def test_caravan_missing_basin_and_attribute_row(tmp_path):
    root = make_caravan(tmp_path)
    with pytest.raises(FileNotFoundError, match="basin 03000003: no time-series file"):
        load_caravan(root, basins=["03000003"])
    table = root / "attributes/camels/attributes_caravan_camels.csv"
    table.write_text("gauge_id,p_mean\ncamels_01000001,3.0\n")
    with pytest.raises(DataFileError, match=r"basin 02000002.*attributes_caravan_camels.csv: has no row"):
        load_caravan(root)


def test_shared_caravan_streamflow_equals_camels(data_dir):
    root = data_dir / "camels_caravan"
    if not root.is_dir():
        pytest.skip(f"Caravan subset not found at {root}")
    # the Caravan subset holds 230 basins; 19 of them also have original CAMELS-US files
    caravan_ids = {p.stem.split("_", 1)[1] for p in (root / "timeseries/csv/camels").glob("camels_*.csv")}
    assert len(caravan_ids) == 230
    in_us = {p.name[:8] for p in (data_dir / "camels_us/basin_mean_forcing").rglob("*_forcing_leap.txt")}
    cv = load_caravan(root, basins=sorted(caravan_ids & in_us))
    assert cv.sizes["basin"] == 19 and cv.sizes["time"] == 12418
    nldas = {p.name[:8] for p in (data_dir / "camels_us/basin_mean_forcing/nldas").rglob("*.txt")}
    cv = cv.sel(basin=[b for b in cv["basin"].values if b in nldas])
    assert cv.sizes["basin"] == 18  # 01031500 has Daymet forcing only
    us = load_camels_us(data_dir / "camels_us", basins=cv["basin"].values.tolist(), forcing="nldas",
                        start="1981-01-01", end="2014-12-31")
    a, b = cv["streamflow"].values, us["streamflow"].values
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 100_000
    # Caravan rounds to 0.01 mm/d; same CAMELS record normalised by the header area
    assert np.abs(a[both] - b[both]).max() < 0.0051


# -- spotpy example sites -----------------------------------------------------------------


def _spotpy_examples() -> Path:
    return Path(importlib.util.find_spec("spotpy").origin).parent / "examples"


def test_fulda_units_and_conversion():
    ds = load_example("fulda")
    raw = pd.read_csv(_spotpy_examples() / "cmf_data/fulda_climate.csv", skiprows=[1])
    assert ds.sizes == {"basin": 1, "time": 3653}
    q = ds["streamflow"].values[0]
    np.testing.assert_allclose(q, raw["Q"].to_numpy() * 86400 * 1000 / 2976.41e6, rtol=1e-6)
    np.testing.assert_allclose(ds["temperature"].values[0], raw["tmean"], rtol=1e-6)
    assert str(ds["time"].values[0])[:10] == "1979-01-01" and str(ds["time"].values[-1])[:10] == "1988-12-31"
    assert ds["streamflow"].attrs["units"] == "mm d-1" and ds["discharge"].attrs["units"] == "m3 s-1"
    # runoff ratio of a humid German upland catchment: 0.3-0.5 (here 332 / 838 mm/yr)
    assert 0.3 < float(ds["streamflow"].mean() / ds["precipitation"].mean()) < 0.5
    # day length from the stated latitude (50.8 N): 7.72 h in late December, 16.28 h in June
    doy = pd.DatetimeIndex(ds["time"].values).dayofyear.values
    np.testing.assert_allclose(ds["day_length"].values[0], fao56_day_length(50.8, doy), rtol=1e-5)
    assert ds["latitude"].values.tolist() == [50.8] and ds["area"].values.tolist() == [2976.41e6]


def test_hymod_units_and_conversion():
    ds = load_example("hymod")
    raw = pd.read_csv(_spotpy_examples() / "hymod_python/hymod_input.csv", sep=";")
    q = ds["streamflow"].values[0]
    np.testing.assert_allclose(q, raw["Discharge[ls-1]"].to_numpy() * 86400 / 1.783e6, rtol=1e-6, equal_nan=True)
    assert np.isnan(q).sum() == 366 and ds.sizes["time"] == 1827
    np.testing.assert_allclose(ds["pet"].values[0], raw["TURC [mm d-1]"], rtol=1e-6)
    assert ds["discharge"].attrs["units"] == "l s-1"


def test_soil_moisture_profile_hourly_and_daily():
    hourly = load_example("soil_moisture_profile")
    assert hourly["soil_moisture"].dims == ("time", "depth") and hourly.sizes["time"] == 26304
    np.testing.assert_allclose(hourly["depth"].values, [0.10, 0.25, 0.40])
    # the driver file stamps 2 Jan 2014 00:00 as "2014-02-01 00:00"; its 25th data row is that hour
    drv = pd.read_csv(_spotpy_examples() / "cmf_data/driver_data_site24.csv", comment="#")
    assert drv["time"].iloc[24] == "2014-02-01 00:00:00"
    assert float(hourly["temperature"].sel(time="2014-01-02T00:00")) == pytest.approx(drv["airtemp_degC"].iloc[24], rel=1e-6)
    daily = load_example("soil_moisture_profile", daily=True)
    assert daily.sizes["time"] == 1096 and daily["precipitation"].dims == ("basin", "time")
    day = hourly.sel(time="2015-07-14")
    np.testing.assert_allclose(daily["soil_moisture"].sel(time="2015-07-14").values[0], day["soil_moisture"].mean("time").values, rtol=1e-5)
    assert daily["tmax"].sel(time="2015-07-14").item() == pytest.approx(float(day["temperature"].max()))
    assert daily["precipitation"].sel(time="2015-07-14").item() == pytest.approx(float(day["precipitation"].mean()), rel=1e-5)
    # a day with a missing groundwater hour is NaN, not the mean of the remaining hours
    gaps = hourly["groundwater_head"].isnull().resample(time="1D").any().values
    assert gaps.any() and np.isnan(daily["groundwater_head"].values[0][gaps]).all()
    with pytest.raises(ValueError, match="unknown example"):
        load_example("rhine")


def test_caravan_files_without_streamflow_load_for_prediction(tmp_path):
    """Forcing-only files (no streamflow column anywhere) load with streamflow missing, said in the notes."""
    root = make_caravan(tmp_path)
    for path in (root / "timeseries/csv/camels").glob("*.csv"):
        pd.read_csv(path).drop(columns="streamflow").to_csv(path, index=False)
    ds = load_caravan(root, validate=False)
    assert np.isnan(ds["streamflow"].values).all()
    assert "no streamflow column" in ds.attrs["data_notes"]
