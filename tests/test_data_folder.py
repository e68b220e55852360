"""Users' own data: a folder of per-basin CSV / netCDF files plus an attribute table."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from difhydro.data import DataFileError, with_day_length
from difhydro.data.folder import convert_units, load_folder
from difhydro.data.validation import DataValidationError, ValidationReport

COLUMNS = {"precipitation": "P", "temperature": "Tmean", "pet": "PET", "streamflow": "Q"}
CANONICAL = {"precipitation": "mm/day", "temperature": "degC", "pet": "mm d-1", "streamflow": "mm d-1"}


def original(seed=0):
    """Three basins on 2001-03-01..04-09; C's record starts 10 days late (NaN before)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-03-01", periods=40, name="time")
    shape = (3, 40)
    ds = xr.Dataset(
        {
            "precipitation": (("basin", "time"), np.round(rng.gamma(0.8, 5.0, shape), 2).astype(np.float32)),
            "temperature": (("basin", "time"), (5 + 4 * rng.standard_normal(shape)).astype(np.float32)),
            "pet": (("basin", "time"), (1 + rng.random(shape)).astype(np.float32)),
            "streamflow": (("basin", "time"), (0.2 + rng.random(shape)).astype(np.float32)),
        },
        coords={"basin": ["A1", "B2", "C3"], "time": time},
    )
    for v in ds.data_vars:
        ds[v].values[2, :10] = np.nan
    ds["streamflow"].values[0, 17] = np.nan  # a missing observation inside the record
    ds["lat"] = ("basin", np.array([47.2, 46.8, 60.1], np.float32))
    ds["area_km2"] = ("basin", np.array([120.5, 88.0, 300.0], np.float32))
    ds["forest"] = ("basin", np.array([0.61, 0.35, 0.9], np.float32))
    return ds


def write_folder(root, ds, fmt="csv", transform=None, basin_column="basin"):
    (root / "timeseries").mkdir(parents=True)
    for b in ds["basin"].values:
        one = ds.sel(basin=b)[list(COLUMNS)].to_dataframe().drop(columns="basin", errors="ignore")
        one = one.dropna(how="all", subset=["precipitation"])  # a file holds the basin's own record
        one = one.rename(columns=COLUMNS)
        if transform:
            one = transform(one)
        if fmt == "csv":
            one.index = one.index.strftime("%Y-%m-%d")
            one.to_csv(root / "timeseries" / f"{b}.csv", index_label="date")
        else:
            xr.Dataset.from_dataframe(one.rename_axis("date")).to_netcdf(root / "timeseries" / f"{b}.nc")
    attrs = pd.DataFrame({basin_column: ds["basin"].values, "lat": ds["lat"].values,
                          "area_km2": ds["area_km2"].values, "forest": ds["forest"].values})
    attrs.to_csv(root / "attributes.csv", index=False)
    return root


@pytest.mark.parametrize("fmt", ["csv", "netcdf"])
def test_round_trip_equals_the_original(tmp_path, fmt):
    ds = original()
    root = write_folder(tmp_path, ds, fmt)
    got = load_folder(root, COLUMNS, CANONICAL, latitude="lat", required_attributes=["forest"])
    assert got["basin"].values.tolist() == ["A1", "B2", "C3"] and got.sizes["time"] == 40
    for v in COLUMNS:
        np.testing.assert_array_equal(got[v].values, ds[v].values)
        assert got[v].dtype == np.float32 and got[v].dims == ("basin", "time")
        assert got[v].attrs["units"] == ds[v].attrs.get("units", {"temperature": "degC"}.get(v, "mm d-1"))
    for a in ("lat", "area_km2", "forest"):
        np.testing.assert_array_equal(got[a].values, ds[a].values)
    # day length the way the other readers add it
    np.testing.assert_array_equal(got["day_length"].values, with_day_length(ds, "lat")["day_length"].values)
    report = ValidationReport.from_dataset(got)
    assert report.ok
    c3 = report.table.query("basin == 'C3' and variable == 'precipitation'").iloc[0]
    assert (c3["outside_record"], c3["missing"]) == (10, 0)  # padding before C3's file starts
    a1 = report.table.query("basin == 'A1' and variable == 'streamflow'").iloc[0]
    assert a1["missing"] == 1 and a1["policy"] == "mask"


def test_units_are_converted(tmp_path):
    ds = original()

    def to_file_units(df):
        area_m2 = {"A1": 120.5e6, "B2": 88.0e6, "C3": 300.0e6}
        out = df.copy()
        out["P"] = df["P"] / 1000.0  # m/d
        out["Tmean"] = df["Tmean"] + 273.15  # K
        out["PET"] = df["PET"] / 25.4  # inches
        return out, area_m2

    root = tmp_path
    (root / "timeseries").mkdir()
    for i, b in enumerate(ds["basin"].values):
        one = ds.sel(basin=b)[list(COLUMNS)].to_dataframe().drop(columns="basin").rename(columns=COLUMNS)
        one, area = to_file_units(one)
        one["Q"] = one["Q"] * area[b] / 86400.0 / 1000.0  # m3/s
        one.index = one.index.strftime("%Y-%m-%d")
        one.fillna(-9999.0).iloc[10:].to_csv(root / "timeseries" / f"{b}.csv", index_label="date")
    pd.DataFrame({"gauge_id": ["A1", "B2", "C3"], "gauge_lat": [47.2, 46.8, 60.1], "area": [120.5, 88.0, 300.0]}).to_csv(
        root / "attributes.csv", index=False)
    units = {"precipitation": "m d-1", "temperature": "K", "pet": "inches", "streamflow": "m3 s-1"}
    got = load_folder(root, COLUMNS, units, area="area", policies={"streamflow": "mask"})
    ref = ds.isel(time=slice(10, None))
    for v in COLUMNS:
        np.testing.assert_allclose(got[v].values, ref[v].values, rtol=2e-6, atol=1e-4, equal_nan=True)  # K in float32
    assert got["temperature"].attrs["units"] == "degC" and got["temperature"].attrs["source_units"] == "K"
    report = ValidationReport.from_dataset(got)
    # the missing observation of A1 was written as -9999: a sentinel, counted, not a value
    a1 = report.table.query("basin == 'A1' and variable == 'streamflow'").iloc[0]
    assert (a1["sentinel"], a1["missing"]) == (1, 1)
    assert any("temperature K -> degC" in n for n in report.notes)
    # discharge without an area is refused, naming the variable
    with pytest.raises(ValueError, match="variable 'streamflow': 'm3 s-1' is a discharge; .*needs the catchment area"):
        load_folder(root, COLUMNS, units)


def test_unit_and_config_errors(tmp_path):
    root = write_folder(tmp_path, original())
    with pytest.raises(ValueError, match=r"units missing for variable\(s\) \['pet'\]"):
        load_folder(root, COLUMNS, {k: v for k, v in CANONICAL.items() if k != "pet"}, latitude="lat")
    with pytest.raises(ValueError, match="variable 'temperature': unknown units 'furlongs'"):
        load_folder(root, COLUMNS, {**CANONICAL, "temperature": "furlongs"}, latitude="lat")
    with pytest.raises(ValueError, match="day_length needs a latitude attribute"):
        load_folder(root, COLUMNS, CANONICAL, attributes_file=None)
    assert "day_length" not in load_folder(root, COLUMNS, CANONICAL, attributes_file=None, day_length=False)
    with pytest.raises(DataFileError, match=r"column\(s\) \['Tmax'\] missing"):
        load_folder(root, {**COLUMNS, "tmax": "Tmax"}, {**CANONICAL, "tmax": "degC"}, latitude="lat")
    assert convert_units([32.0, 212.0], "degF", "temperature").tolist() == pytest.approx([0.0, 100.0])
    assert convert_units([1.0], "cfs", "streamflow", area_m2=[1e6]).tolist() == pytest.approx([0.0283168466 * 86.4e6 / 1e6])
    assert convert_units([2.0], "mm/h", "precipitation").tolist() == [48.0]


def test_bad_files_name_file_and_line(tmp_path):
    ds = original()
    root = write_folder(tmp_path, ds)
    path = root / "timeseries/B2.csv"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(",", ";")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match="B2.csv: line 6 has 1 field, expected 5; the line is separated by "
                                            "';', not ','") as info:
        load_folder(root, COLUMNS, CANONICAL, latitude="lat")
    assert info.value.basin == "B2" and info.value.line == 6
    path.unlink()
    (root / "attributes.csv").write_text("basin,lat\nA1,47.2\nC3\n")
    with pytest.raises(DataFileError, match="attributes.csv: line 3 has 1 field, expected 2"):
        load_folder(root, COLUMNS, CANONICAL, latitude="lat")
    (root / "attributes.csv").write_text("basin,lat\nA1,47.2\n")
    with pytest.raises(DataFileError, match="basin C3, file .*attributes.csv: has no row for basin"):
        load_folder(root, COLUMNS, CANONICAL, latitude="lat")
    # a forcing sentinel: counted, and an error under the default forcing policy
    root2 = write_folder(tmp_path / "two", ds, transform=lambda df: df.assign(P=df["P"].where(df.index.day != 7, -999.0)))
    with pytest.raises(DataValidationError, match=r"precipitation .*5 missing value\(s\) inside the record in 3 basin\(s\).*"
                                                  r"5 of them sentinel codes"):  # the 7th of March and April; C3 starts on the 11th
        load_folder(root2, COLUMNS, CANONICAL, latitude="lat")


def _with_units_attribute(root, basin, column, units):
    """Rewrite ``timeseries/<basin>.nc`` with a ``units`` attribute on ``column``."""
    path = root / "timeseries" / f"{basin}.nc"
    with xr.open_dataset(path) as nc:
        one = nc.load()
    one[column].attrs["units"] = units
    path.unlink()
    one.to_netcdf(path)


def test_netcdf_units_attribute_is_read_and_checked(tmp_path):
    ds = original()
    root = write_folder(tmp_path, ds, "netcdf", transform=lambda df: df.assign(P=df["P"] / 1000.0))  # P in m/d
    for b in ("A1", "B2", "C3"):
        _with_units_attribute(root, b, "P", "m/day")
    # no configured units for precipitation: the attribute is used, converted to mm d-1
    got = load_folder(root, COLUMNS, {k: v for k, v in CANONICAL.items() if k != "precipitation"}, latitude="lat")
    np.testing.assert_allclose(got["precipitation"].values, ds["precipitation"].values, rtol=1e-6, equal_nan=True)
    assert got["precipitation"].attrs["source_units"] == "m/day" and got["precipitation"].attrs["units"] == "mm d-1"
    # configured in another spelling of the same units: accepted
    again = load_folder(root, COLUMNS, {**CANONICAL, "precipitation": "m d-1"}, latitude="lat")
    np.testing.assert_array_equal(again["precipitation"].values, got["precipitation"].values)
    # contradicting: one line naming variable, file and both units
    with pytest.raises(DataFileError) as info:
        load_folder(root, COLUMNS, CANONICAL, latitude="lat")
    msg = str(info.value)
    assert "\n" not in msg and info.value.basin == "A1" and msg.startswith(f"basin A1, file {root / 'timeseries' / 'A1.nc'}:")
    assert "variable 'precipitation' (column 'P'): the file's units attribute 'm/day' contradicts the configured " \
           "units 'mm/day'" in msg
    # neither configured nor in the file: named
    _with_units_attribute(root, "B2", "Tmean", "")
    with pytest.raises(DataFileError, match=r"basin A1, .*variable 'temperature' \(column 'Tmean'\): no units configured"):
        load_folder(root, COLUMNS, {"pet": "mm/d", "streamflow": "mm/d"}, latitude="lat")


def test_netcdf_files_with_different_units_attributes_convert_per_basin(tmp_path):
    ds = original()
    root = write_folder(tmp_path, ds, "netcdf")
    path = root / "timeseries" / "B2.nc"
    with xr.open_dataset(path) as nc:
        one = nc.load()
    one["Tmean"] = one["Tmean"] + 273.15
    path.unlink()
    one.to_netcdf(path)
    for b, u in (("A1", "degC"), ("B2", "K"), ("C3", "celsius")):
        _with_units_attribute(root, b, "Tmean", u)
    got = load_folder(root, COLUMNS, {k: v for k, v in CANONICAL.items() if k != "temperature"}, latitude="lat")
    np.testing.assert_allclose(got["temperature"].values, ds["temperature"].values, atol=3.1e-5, equal_nan=True)  # K in float32: ulp 3e-5
    assert got["temperature"].attrs["source_units"] == "degC, K, celsius"


def test_coordinates_stored_as_gauge_lat_and_gauge_lon(tmp_path):
    ds = original()
    root = write_folder(tmp_path, ds)
    table = pd.read_csv(root / "attributes.csv")
    table["lon"] = [8.1, 9.3, 10.2]
    table.to_csv(root / "attributes.csv", index=False)
    got = load_folder(root, COLUMNS, CANONICAL, latitude="lat", longitude="lon")
    np.testing.assert_array_equal(got["gauge_lat"].values, ds["lat"].values.astype(np.float64))
    np.testing.assert_array_equal(got["gauge_lon"].values, np.float32([8.1, 9.3, 10.2]))  # attributes load as float32
    assert got["gauge_lat"].dims == ("basin",) and got["gauge_lon"].attrs["units"] == "degrees_east"
    assert "gauge_lon" in load_folder(root, COLUMNS, CANONICAL)  # found by name without the keys
    with pytest.raises(ValueError, match="longitude column 'long' not in the attribute table"):
        load_folder(root, COLUMNS, CANONICAL, latitude="lat", longitude="long")


def test_implausible_coordinates_name_the_basin(tmp_path):
    ds = original()
    ds["lat"].values[1] = -100.0  # B2: a longitude in the latitude column
    root = write_folder(tmp_path, ds)
    with pytest.raises(ValueError, match=r"latitude of basin B2 is -100, not finite degrees in \[-90, 90\] \(1 basin\(s\); "
                                         r"latitude and longitude swapped\?\)"):
        load_folder(root, COLUMNS, CANONICAL, latitude="lat")
    with pytest.raises(DataValidationError, match=r"coordinates \(.*policy error\): 1 basin\(s\) \(B2\); basin B2: latitude "
                                                  r"-100 outside \[-90, 90\]"):
        load_folder(root, COLUMNS, CANONICAL, latitude="lat", day_length=False)


def test_a_space_separated_line_with_an_empty_last_field_gets_the_delimiter_hint(tmp_path):
    """Found by the fuzz test: '2000-01-02 0.00 0.00 1.60 ' (streamflow empty) in a CSV."""
    root = write_folder(tmp_path, original())
    path = root / "timeseries" / "A1.csv"
    lines = path.read_text().splitlines()
    lines[3] = " ".join(lines[3].split(",")[:-1]) + " "
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"A1.csv: line 4 has 1 field, expected 5; the line is separated by spaces, "
                                            r"not ',' \(wrong delimiter\?\)"):
        load_folder(root, COLUMNS, CANONICAL, latitude="lat")
