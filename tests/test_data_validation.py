"""The validation pass: policies with known counts on a small data set, and the shared data."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from difhydro.data import load_camels_us, load_caravan
from difhydro.data.validation import (
    VARIABLES,
    DataValidationError,
    Policy,
    ValidationReport,
    validate,
)

BASINS = ["A", "B"]


def small(n_days=20, seed=0):
    """Two basins, 20 days, plausible values in the package's units, two attributes."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2000-01-01", periods=n_days, name="time")
    shape = (len(BASINS), n_days)
    data = {
        "precipitation": rng.gamma(0.8, 5.0, shape),
        "temperature": 5.0 + 3.0 * rng.standard_normal(shape),
        "pet": 1.0 + rng.random(shape),
        "streamflow": 0.5 + rng.random(shape),
    }
    ds = xr.Dataset({k: (("basin", "time"), v.astype(np.float32)) for k, v in data.items()},
                    coords={"basin": BASINS, "time": time})
    for k in data:
        ds[k].attrs["units"] = VARIABLES[k].units
    ds["area"] = ("basin", np.array([100.0, 250.0], np.float32))
    ds["aridity"] = ("basin", np.array([0.8, 1.4], np.float32))
    ds["name"] = ("basin", np.array(["river a", "river b"]))
    return ds


def row(report, basin, variable):
    return report.table.query("basin == @basin and variable == @variable").iloc[0]


def test_clean_data_passes_and_reports_zero(tmp_path):
    ds = small()
    clean, report = validate(ds, required_attributes=["area", "aridity"], source="toy")
    assert report.ok and not report.problems
    values = report.table.query("kind != 'plausibility'")
    assert set(values["variable"]) == {"precipitation", "temperature", "pet", "streamflow"}
    counts = report.table[["missing", "sentinel", "nonfinite", "out_of_range", "masked", "interpolated", "imputed",
                           "flagged"]]
    assert (counts.to_numpy() == 0).all() and (report.table["n_days"] == 20).all()
    # 20 days are too short for long-term means: only the constant-streamflow check runs
    checks = report.table.query("kind == 'plausibility'")
    assert checks["variable"].tolist() == ["constant_streamflow"] * 2
    assert any(n.startswith("runoff_ratio: 2 basin(s) not checked (fewer than 365 days") for n in report.notes)
    for name in ("precipitation", "temperature", "pet", "streamflow"):
        np.testing.assert_array_equal(clean[name].values, ds[name].values)
    # the report travels with the data and renders for summary.md
    again = ValidationReport.from_dataset(clean)
    pd.testing.assert_frame_equal(again.table, report.table)
    md = report.to_markdown()
    assert "### Data validation: passed" in md and "| precipitation | forcing | error |" in md
    assert report.summary_lines()[0].startswith("data validation (toy): passed; 2 basin(s)")
    path = report.to_csv(tmp_path / "report.csv")
    assert len(pd.read_csv(path)) == 8 + 2 and list(pd.read_csv(path).columns)[:3] == ["basin", "variable", "kind"]


def corrupt(ds):
    """precipitation of B: 2 NaN, 1 sentinel, 1 +inf, 2 negative (days 3, 4 | 6 | 9 | 12, 13)."""
    p = ds["precipitation"].values
    p[1, [3, 4]] = np.nan
    p[1, 6] = -999.0
    p[1, 9] = np.inf
    p[1, [12, 13]] = [-1.5, -0.25]
    return ds


def test_error_policy_lists_triples_and_counts():
    ds = corrupt(small())
    with pytest.raises(DataValidationError) as info:
        validate(ds, source="toy")
    msg = str(info.value)
    # the first line names the first problem and how many more follow (one-line CLI errors)
    assert msg.startswith("data validation failed for toy: precipitation (forcing, policy error")
    assert "(and 2 more problem(s), listed below)" in msg.splitlines()[0]
    assert "precipitation (forcing, policy error, valid 0..1000 mm d-1): 3 missing value(s) inside the record in 1 " \
           "basin(s) (B), 1 of them sentinel codes" in msg
    assert "first: basin B on 2000-01-04; basin B on 2000-01-05; basin B on 2000-01-07" in msg
    assert "1 infinite value(s) in 1 basin(s) (B); first: basin B on 2000-01-10 (inf)" in msg
    assert "2 value(s) out of range (2 below 0) in 1 basin(s) (B); first: basin B on 2000-01-13 (-1.5)" in msg
    assert isinstance(info.value, ValueError)
    r = row(info.value.report, "B", "precipitation")
    assert (r["missing"], r["sentinel"], r["nonfinite"], r["out_of_range"]) == (3, 1, 1, 2)
    assert row(info.value.report, "A", "precipitation")["missing"] == 0


def test_mask_policy_counts_and_masks():
    ds = corrupt(small())
    clean, report = validate(ds, policies={"precipitation": "mask"})
    p = clean["precipitation"].values
    assert np.isnan(p[1, [3, 4, 6, 9, 12, 13]]).all() and np.isfinite(np.delete(p[1], [3, 4, 6, 9, 12, 13])).all()
    np.testing.assert_array_equal(p[0], ds["precipitation"].values[0])
    r = row(report, "B", "precipitation")
    assert (r["missing"], r["sentinel"], r["nonfinite"], r["out_of_range"], r["masked"]) == (3, 1, 1, 2, 3)
    assert r["policy"] == "mask" and report.totals().set_index("variable").loc["precipitation", "basins_affected"] == 1
    worst = report.worst_basins()
    assert worst["basin"].tolist() == ["B"] and int(worst["total"].iloc[0]) == 3 + 1 + 2 + 3


def test_interpolate_equals_np_interp_and_refuses_long_gaps():
    ds = small()
    t = ds["temperature"].values
    original = t.copy()
    t[0, [2]] = np.nan  # gaps of 1, 2 and 3 days in A
    t[0, [5, 6]] = np.nan
    t[0, [10, 11, 12]] = np.nan
    t[1, 8] = 400.0  # out of range in B: masked, then filled
    clean, report = validate(ds, policies={"temperature": Policy("interpolate", max_gap=3)})
    x = np.arange(20)
    for b in (0, 1):
        src = np.where(np.isfinite(t[b]) & (t[b] < 60), t[b], np.nan).astype(np.float64)
        ok = np.isfinite(src)
        expected = np.interp(x, x[ok], src[ok]).astype(np.float32)
        np.testing.assert_array_equal(clean["temperature"].values[b], expected)
    np.testing.assert_array_equal(clean["temperature"].values[0, [0, 1, 3, 4]], original[0, [0, 1, 3, 4]])
    assert (row(report, "A", "temperature")["interpolated"], row(report, "A", "temperature")["missing"]) == (6, 6)
    rb = row(report, "B", "temperature")
    assert (rb["interpolated"], rb["out_of_range"], rb["masked"]) == (1, 1, 0)
    with pytest.raises(DataValidationError, match=r"temperature .*1 gap\(s\) cannot be interpolated \(1 longer than 2 "
                       r"day\(s\), 0 at a record edge\) in 1 basin\(s\); first: basin A 2000-01-11..2000-01-13 \(3 day"):
        validate(ds, policies={"temperature": "interpolate:2"})
    ds["temperature"].values[1, 0] = np.inf  # masked at the record's first day: nothing to interpolate from
    with pytest.raises(DataValidationError, match="1 at a record edge"):
        validate(ds, policies={"temperature": "interpolate:3"})


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda ds: ds["temperature"].values.__iadd__(273.15), r"temperature: looks like Kelvin, not degC, in 2 basin\(s\) \(A, B"),
        (lambda ds: ds["precipitation"].values.__setitem__((1, 5), -3.0),
         r"precipitation .*1 value\(s\) out of range \(1 below 0\) in 1 basin\(s\) \(B\); first: basin B on 2000-01-06 \(-3\)"),
        (lambda ds: ds["pet"].values.__setitem__((0, 2), np.inf), r"pet .*1 infinite value\(s\) in 1 basin\(s\) \(A\); first: basin A on 2000-01-03"),
        (lambda ds: ds["temperature"].attrs.__setitem__("units", "K"), r"temperature: units 'K' differ from the expected 'degC'"),
        (lambda ds: ds["streamflow"].values.__setitem__((1, 0), -np.inf), None),  # target: masked, no error
    ],
    ids=["kelvin", "negative-precipitation", "inf-pet", "units-attribute", "inf-streamflow-masked"],
)
def test_implausible_values_name_variable_and_basin(edit, pattern):
    ds = small()
    edit(ds)
    if pattern is None:
        clean, report = validate(ds)
        assert np.isnan(clean["streamflow"].values[1, 0]) and row(report, "B", "streamflow")["masked"] == 1
        return
    with pytest.raises(DataValidationError, match=pattern):
        validate(ds, policies={"temperature": "mask", "precipitation": "error"})


def test_kelvin_is_an_error_under_every_policy():
    ds = small()
    ds["tmax"] = ds["temperature"] + 273.15
    for policy in ("mask", "interpolate"):
        with pytest.raises(DataValidationError, match="tmax: looks like Kelvin"):
            validate(ds, policies={"tmax": policy})


def test_attributes_error_by_default_and_reported_imputation():
    ds = small()
    ds["aridity"].values[1] = np.nan
    ds["area"].values[0] = -999.0
    _, report = validate(ds)  # nothing required: reported, not enforced
    assert report.ok and set(report.table.query("kind == 'static'")["variable"]) == {"aridity", "area"}
    with pytest.raises(DataValidationError) as info:
        validate(ds, required_attributes=["aridity", "area", "p_mean"])
    msg = str(info.value)
    assert "required attribute(s) ['p_mean'] are not in the data set" in msg
    assert "aridity (policy error) is missing in 1 basin(s) (B)" in msg and "area (policy error) is missing in 1 basin(s) (A)" in msg
    clean, report = validate(ds, required_attributes=["aridity", "area"], policies={"attributes": "mean", "area": "median"})
    assert float(clean["aridity"].sel(basin="B")) == pytest.approx(0.8) and float(clean["area"].sel(basin="A")) == 250.0
    imputed = report.table.query("imputed == 1")[["basin", "variable", "sentinel"]].values.tolist()
    assert sorted(imputed) == [["A", "area", 1], ["B", "aridity", 0]]
    assert any("aridity imputed with the mean 0.8 in 1 basin(s) (B)" in n for n in report.notes)
    ds["aridity"].values[:] = np.nan
    with pytest.raises(DataValidationError, match="aridity is missing in every basin"):
        validate(ds, required_attributes=["aridity"], policies={"attributes": "mean"})


def test_time_axis_and_declared_period():
    ds = small()
    dup = ds.isel(time=[0, 1, 1, 2, 3])
    with pytest.raises(DataValidationError, match="2000-01-02 follows 2000-01-02 \\(duplicate or unordered"):
        validate(dup)
    gap = ds.isel(time=[0, 1, 5, 6])
    with pytest.raises(DataValidationError, match="gap between 2000-01-02 and 2000-01-06"):
        validate(gap)
    with pytest.raises(DataValidationError, match="2000-01-01..2000-01-20 does not cover the declared record "
                                                  "2000-01-01..2000-01-31 \\(truncated record\\)"):
        validate(ds, period=("2000-01-01", "2000-01-31"))
    # padding outside a basin's record is not missing, unless a period declares it
    ds["precipitation"].values[1, 15:] = np.nan
    _, report = validate(ds)
    r = row(report, "B", "precipitation")
    assert (r["n_days"], r["outside_record"], r["missing"]) == (15, 5, 0)
    with pytest.raises(DataValidationError, match="5 missing value"):
        validate(ds, period=("2000-01-01", "2000-01-20"))


def test_clip_policy_and_policy_parsing():
    ds = small()
    ds["pet"].values[0, [1, 2]] = [-0.4, -2.0]
    clean, report = validate(ds, policies={"pet": {"action": "error", "clip": [0, None]}})
    assert (clean["pet"].values[0, [1, 2]] == 0).all() and row(report, "A", "pet")["clipped"] == 2
    assert row(report, "A", "pet")["atypical"] == 2 and report.policies["pet"] == "error, clip 0..inf"
    assert Policy.parse("interpolate:5") == Policy("interpolate", max_gap=5)
    assert Policy.parse("median") == Policy("impute", impute="median")
    with pytest.raises(ValueError, match="policy action must be one of"):
        Policy.parse("drop")
    with pytest.raises(ValueError, match="attributes take 'error' or 'impute'"):
        validate(ds, policies={"attributes": "mask"})


# -- the shared data ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caravan_raw(caravan):
    return load_caravan(caravan, validate=False)


def test_validate_over_the_230_shared_caravan_basins(caravan_raw):
    caravan = caravan_raw
    clean, report = validate(caravan, source="shared Caravan")
    assert report.ok and caravan.sizes["basin"] == 230
    tot = report.totals().set_index("variable")
    # measured on the shared subset: forcing complete and in range; ERA5-Land PET outside the
    # typical 0..30 mm/d on 209625 days in 210 basins (loaded, counted, noted); streamflow
    # missing on 55206 days (1.9 %) in 152 basins, masked as the target policy says
    for v in ("precipitation", "temperature", "day_length"):
        assert tot.loc[v, ["missing", "nonfinite", "out_of_range", "atypical"]].sum() == 0
    assert tot.loc["pet", "atypical"] == 209625 and tot.loc["pet", "basins_affected"] == 210
    assert tot.loc["pet", "out_of_range"] == 0 and tot.loc["pet", "missing"] == 0
    assert tot.loc["streamflow", "missing"] == 55206 and tot.loc["streamflow", "basins_affected"] == 152
    assert tot.loc["streamflow", "sentinel"] == 0 and tot.loc["streamflow", "out_of_range"] == 0
    assert any(n.startswith("pet: 209625 value(s) in 210 basin(s) outside the typical 0..30 mm d-1 (min -4.34, max 77.75)")
               for n in report.notes)
    np.testing.assert_array_equal(clean["pet"].values, caravan["pet"].values)  # the default keeps PET as it is
    # clipping negative PET to zero is a choice, and it is counted
    negative = int((caravan["pet"].values < 0).sum())
    clipped, report = validate(caravan, policies={"pet": Policy(clip=(0.0, None))})
    assert negative == 5487 and report.totals().set_index("variable").loc["pet", "clipped"] == negative
    assert float(clipped["pet"].min()) == 0.0
    # plausibility on long-term means (1981-2014): no unit mistake in the 230 basins; Q > 1.1 P
    # in 8 basins of the Pacific north-west and one on the California coast (ERA5-Land
    # misses orographic rain): flagged and noted, not errors; the driest runoff ratio
    # (07142300, Kansas) is 0.0166 and passes
    checks = report.table.query("kind == 'plausibility'")
    flagged = checks.groupby("variable")["flagged"].sum()
    assert flagged.to_dict() == {"constant_streamflow": 0, "coordinates": 0, "energy_limit": 0,
                                 "precipitation_magnitude": 0, "runoff_ratio": 0, "water_limit": 8}
    assert (checks.groupby("variable").size() == 230).all()
    wl = checks.query("variable == 'water_limit' and flagged == 1")
    assert sorted(wl["basin"]) == ["11143000", "12010000", "12035000", "12056500", "12141300", "12143600", "12144000",
                                   "12175500"]
    rr = checks.query("variable == 'runoff_ratio'").set_index("basin")["value"]
    assert rr.max() == pytest.approx(1.4789, abs=1e-4) and rr.idxmin() == "07142300" and rr.min() == pytest.approx(0.01656, abs=1e-5)
    # a run whose model needs attributes the data set lacks fails at load, naming them
    with pytest.raises(DataValidationError, match=r"required attribute\(s\) \['baseflow_index'\] are not in the data set"):
        validate(caravan, required_attributes=["p_mean", "aridity", "baseflow_index"])


def test_validate_over_the_shared_camels_us_subset(data_dir):
    root = data_dir / "camels_us"
    if not root.is_dir():
        pytest.skip(f"CAMELS-US subset not found at {root}")
    ds = load_camels_us(root, forcing="nldas")
    report = ValidationReport.from_dataset(ds)
    tot = report.totals().set_index("variable")
    # measured: forcing complete inside every record; the -999 discharges of 01022500 (92) and
    # 06221400 (66) counted as sentinels and missing; three attributes have NaN in the tables
    forcing = [v for v in tot.index if tot.loc[v, "kind"] == "forcing"]
    assert len(forcing) == 8 and tot.loc[forcing, ["missing", "sentinel", "nonfinite", "out_of_range"]].to_numpy().sum() == 0
    assert tot.loc["streamflow", "sentinel"] == tot.loc["streamflow", "missing"] == 158
    assert row(report, "01022500", "streamflow")["sentinel"] == 92
    static = report.table.query("kind == 'static'")
    assert sorted(zip(static["variable"], static["basin"])) == [
        ("geol_porostiy", "06221400"), ("root_depth_50", "01013500"), ("root_depth_50", "04015330"),
        ("root_depth_99", "01013500"), ("root_depth_99", "04015330")]
    # plausibility: the 22 NLDAS basins pass; 12010000 (Olympic Peninsula) has Q/P 1.11, flagged
    checks = report.table.query("kind == 'plausibility'")
    assert checks.groupby("variable")["flagged"].sum().to_dict() == {
        "constant_streamflow": 0, "coordinates": 0, "energy_limit": 0, "latitude_agreement": 0,
        "precipitation_magnitude": 0, "runoff_ratio": 0, "water_limit": 1}
    assert checks.query("flagged == 1")["basin"].tolist() == ["12010000"]
    assert "energy_limit: PET from the pet_mean attribute" in report.notes
    with pytest.raises(DataValidationError, match=r"root_depth_50 \(policy error\) is missing in 2 basin\(s\) \(01013500, 04015330\)"):
        load_camels_us(root, forcing="nldas", required_attributes=["root_depth_50", "p_mean"])
