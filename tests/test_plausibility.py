"""Basin-level plausibility (issue 19): unit mistakes caught on long-term means, real basins
that are merely odd flagged and reported, coordinates checked against the temperature cycle."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from difhydro.data import load_camels_us, load_caravan
from difhydro.data.camels import CFS_TO_M3S
from difhydro.data.plausibility import CHECKS, RUNOFF_RATIO_MAX
from difhydro.data.validation import VARIABLES, DataValidationError, ValidationReport, validate
from difhydro.training import metrics

BASINS = ["north", "south", "arid"]


def basins(n_years=2, seed=0):
    """Three plausible basins over ``n_years``: a humid northern one (45 N), a southern one
    (33 S, warmest in December-February) and an arid one (runoff ratio 0.02, P 0.9 mm/d)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-01", periods=365 * n_years, name="time")
    doy = time.dayofyear.values
    lat = np.array([45.0, -33.0, 38.0])
    lon = np.array([-70.0, 150.0, -110.0])
    p_mean, ratio, pet_mean = np.array([3.0, 2.0, 0.9]), np.array([0.5, 0.3, 0.02]), np.array([2.0, 3.0, 6.0])
    cycle = -np.cos(2 * np.pi * (doy - 15) / 365.0)  # coldest mid-January
    data = {
        "precipitation": rng.gamma(0.5, 2.0 * p_mean[:, None], (3, len(time))),
        "temperature": 8.0 + np.sign(lat)[:, None] * 10.0 * cycle + rng.normal(0, 2, (3, len(time))),
        "pet": pet_mean[:, None] * (1 + 0.8 * np.sign(lat)[:, None] * cycle),
        "streamflow": (ratio * p_mean)[:, None] * rng.lognormal(-0.125, 0.5, (3, len(time))),
    }
    ds = xr.Dataset({k: (("basin", "time"), v.astype(np.float32)) for k, v in data.items()},
                    coords={"basin": BASINS, "time": time})
    for k in data:
        ds[k].attrs["units"] = VARIABLES[k].units
    ds["gauge_lat"] = ("basin", lat)
    ds["gauge_lon"] = ("basin", lon)
    return ds


def checks(report, name):
    return report.table.query("kind == 'plausibility' and variable == @name").set_index("basin")


def test_plausible_basins_pass_with_the_statistics_reported():
    ds = basins()
    clean, report = validate(ds, source="toy")
    assert report.ok
    p = ds["precipitation"].values.astype(np.float64).mean(axis=1)
    q = ds["streamflow"].values.astype(np.float64).mean(axis=1)
    e = ds["pet"].values.astype(np.float64).mean(axis=1)
    rr = checks(report, "runoff_ratio")
    np.testing.assert_allclose(rr.loc[BASINS, "value"], q / p, rtol=1e-12)
    assert (rr["n_days"] == 730).all() and (rr["flagged"] == 0).all() and (rr["policy"] == "error").all()
    np.testing.assert_allclose(checks(report, "energy_limit").loc[BASINS, "value"], (p - q) / e, rtol=1e-12)
    np.testing.assert_allclose(checks(report, "precipitation_magnitude").loc[BASINS, "value"], p, rtol=1e-12)
    # the arid basin is plausible: runoff ratio ~0.02, (P - Q)/PET ~0.15
    assert rr.loc["arid", "value"] < 0.03 and checks(report, "energy_limit").loc["arid", "value"] < 0.2
    assert int(report.table.query("kind == 'plausibility'")["flagged"].sum()) == 0
    # the report keeps the statistics through JSON (data_validation.csv, summary.md)
    again = ValidationReport.from_dataset(clean)
    np.testing.assert_array_equal(checks(again, "runoff_ratio")["value"].to_numpy(), rr["value"].to_numpy())
    md = report.to_markdown()
    assert "Plausibility of each basin" in md and "| runoff_ratio | error | Q/P <= 2 | 3 | 0 |" in md
    assert "| water_limit | flag | Q/P <= 1.1 (P - Q >= 0) | 3 | 0 |" in md


@pytest.mark.parametrize("factor, what", [
    (1 / CFS_TO_M3S, "ft3 s-1 declared as m3 s-1"),
    (500.0 / 2.446576, "ft3 s-1 read as mm d-1, 500 km2"),   # Q_cfs = Q_mm * A_km2 / 2.4466
    (500.0 / 86.4, "m3 s-1 read as mm d-1, 500 km2"),
])
def test_streamflow_unit_mistakes_are_errors(factor, what):
    ds = basins()
    ds["streamflow"].values[0] *= factor  # the northern basin, true runoff ratio ~0.5
    with pytest.raises(DataValidationError) as info:
        validate(ds, source="toy")
    first = str(info.value).splitlines()[0]
    assert first.startswith("data validation failed for toy: runoff_ratio (Q/P <= 2; policy error): 1 basin(s) "
                            "(north); basin north: Q/P = "), (what, first)
    assert "streamflow units or area wrong" in first and "pass policies={'runoff_ratio': 'flag'}" in first
    table = info.value.report.table
    row = table.query("variable == 'runoff_ratio' and basin == 'north'").iloc[0]
    assert row["flagged"] == 1 and row["value"] > RUNOFF_RATIO_MAX
    # the water limit does not repeat what the error says
    assert table.query("variable == 'water_limit' and basin == 'north'").iloc[0]["flagged"] == 0


def test_precipitation_in_metres_read_as_millimetres():
    ds = basins()
    ds["precipitation"].values[1] /= 1000.0  # the southern basin
    with pytest.raises(DataValidationError) as info:
        validate(ds)
    msg = str(info.value)
    assert msg.splitlines()[0].startswith(
        "data validation failed for data set: precipitation_magnitude (mean P in 0.05..30 mm d-1; policy error): "
        "1 basin(s) (south); basin south: mean precipitation 0.00")
    assert "wrong units (m read as mm is x 0.001)?" in msg
    assert "runoff_ratio (Q/P <= 2; policy error): 1 basin(s) (south)" in msg  # Q/P ~300 as well
    ds["precipitation"].values[1] *= 1000.0 * 20  # 40 mm/d long-term: mm h-1 or 0.1 mm read as mm/d
    with pytest.raises(DataValidationError, match=r"mean precipitation \d\d\.\d mm d-1 outside 0.05..30: wrong units \(mm h-1"):
        validate(ds)


def test_water_limit_is_a_flag_by_default_and_policies_choose():
    ds = basins()
    ds["streamflow"].values[0] *= 1.3 / 0.5  # Q/P ~1.3: a real basin can (undercatch, groundwater import)
    clean, report = validate(ds)
    assert report.ok
    wl = checks(report, "water_limit")
    assert wl.loc["north", "flagged"] == 1 and wl[["flagged"]].sum().item() == 1
    assert any(n.startswith("water_limit (Q/P <= 1.1 (P - Q >= 0); policy flag): 1 basin(s) (north); basin north: "
                            "Q/P = 1.") for n in report.notes)
    np.testing.assert_array_equal(clean["streamflow"].values, ds["streamflow"].values)  # a flag changes nothing
    with pytest.raises(DataValidationError, match=r"water_limit .*policy error\): 1 basin\(s\) \(north\)"):
        validate(ds, policies={"water_limit": "error"})
    masked, report = validate(ds, policies={"water_limit": "mask"})
    assert np.isnan(masked["streamflow"].values[0]).all() and np.isfinite(masked["streamflow"].values[1:]).all()
    assert checks(report, "water_limit").loc["north", "masked"] == 730
    assert any("streamflow of 1 basin(s) masked (all 730 values set to NaN)" in n for n in report.notes)
    # the group key sets every check; errors become reported flags
    ds["streamflow"].values[0] *= 10
    _, report = validate(ds, policies={"plausibility": "flag"})
    assert checks(report, "runoff_ratio").loc["north", "flagged"] == 1 and report.policies["runoff_ratio"] == "flag"


def test_energy_limit_uses_pet_series_or_attribute_or_says_it_cannot():
    ds = basins()
    ds["streamflow"].values[0] *= 1e-3  # area in km2 declared as m2 (/1e6) is as silent per day
    _, report = validate(ds)
    el = checks(report, "energy_limit")
    assert el.loc["north", "flagged"] == 1 and el.loc["north", "value"] == pytest.approx(
        float((ds["precipitation"][0].astype(float).mean() - ds["streamflow"][0].astype(float).mean())
              / ds["pet"][0].astype(float).mean()), rel=1e-9)
    assert any(n.startswith("energy_limit ((P - Q)/PET <= 1.1; policy flag): 1 basin(s) (north)") for n in report.notes)
    no_pet = ds.drop_vars("pet")
    _, report = validate(no_pet)
    assert "energy_limit: not checked: the data set has no PET (a pet series or a pet_mean attribute)" in report.notes
    no_pet["pet_mean"] = ("basin", np.array([2.0, 3.0, 6.0], np.float32))  # CAMELS-US has this attribute
    _, report = validate(no_pet)
    assert checks(report, "energy_limit").loc["north", "flagged"] == 1
    assert "energy_limit: PET from the pet_mean attribute" in report.notes


def test_short_records_are_not_judged():
    ds = basins().isel(time=slice(0, 200))
    ds["streamflow"].values[0] *= 35.3
    _, report = validate(ds)  # 200 days: storage changes dominate, no long-term mean
    assert checks(report, "runoff_ratio").empty
    assert "runoff_ratio: 3 basin(s) not checked (fewer than 365 days with both precipitation and streamflow, or no " \
           "precipitation)" in report.notes


@pytest.mark.parametrize("lat, lon, message", [
    (95.0, -70.0, r"latitude 95 outside \[-90, 90\]"),
    (45.0, 400.0, r"longitude 400 outside \[-180, 360\]"),
    (-100.0, 45.0, r"latitude -100 outside \[-90, 90\] \(longitude 45 would fit: latitude and longitude swapped\?\)"),
    (-70.0, 45.0, r"latitude -70 is in the southern hemisphere but the temperature cycle peaks in June-August "
                  r"\(JJA - DJF = 1\d\.\d degC\): latitude and longitude swapped, or the sign lost\?"),
])
def test_coordinates_against_ranges_and_the_temperature_cycle(lat, lon, message):
    ds = basins()
    ds["gauge_lat"].values[0], ds["gauge_lon"].values[0] = lat, lon
    with pytest.raises(DataValidationError, match=r"coordinates \(.*\): 1 basin\(s\) \(north\); basin north: " + message):
        validate(ds)


def test_hemisphere_not_judged_near_the_equator_or_without_a_cycle():
    ds = basins()
    ds["gauge_lat"].values[0] = 5.0
    ds["gauge_lat"].values[1] = 33.0  # south's cycle peaks in DJF: wrong for 33 N
    with pytest.raises(DataValidationError, match=r"basin south: latitude 33 is in the northern hemisphere but the "
                                                  r"temperature cycle peaks in December-February"):
        validate(ds)
    ds["gauge_lat"].values[1] = -33.0
    _, report = validate(ds)
    assert any("hemisphere not judged in 1 basin(s) (latitude within 10 deg of the equator" in n for n in report.notes)
    _, report = validate(ds.drop_vars(["gauge_lat", "gauge_lon"]))
    assert "coordinates: not checked: the data set has no gauge_lat / gauge_lon" in report.notes


def test_constant_streamflow_is_reported_and_its_nse_is_nan():
    ds = basins()
    ds["streamflow"].values[2] = 0.0  # an ephemeral stream that never flowed in the record
    clean, report = validate(ds)
    cs = checks(report, "constant_streamflow")
    assert cs.loc["arid", "flagged"] == 1 and cs.loc["arid", "value"] == 0.0 and cs["flagged"].sum() == 1
    assert any(n.startswith("constant_streamflow (observed streamflow varies (NSE needs its variance); policy flag): "
                            "1 basin(s) (arid); basin arid: observed streamflow is 0 mm d-1 on all 730 days")
               for n in report.notes)
    nse = np.asarray(metrics.nse(clean["precipitation"].values * 0.3, clean["streamflow"].values))
    assert np.isnan(nse[2]) and np.isfinite(nse[:2]).all()


def test_policy_actions_per_check():
    ds = basins()
    with pytest.raises(ValueError, match=r"policy for 'coordinates': the plausibility check takes error, flag, got 'mask'"):
        validate(ds, policies={"coordinates": "mask"})
    with pytest.raises(ValueError, match=r"policy for 'precipitation': 'flag' is for the plausibility checks"):
        validate(ds, policies={"precipitation": "flag"})
    assert set(CHECKS) == {"runoff_ratio", "water_limit", "energy_limit", "precipitation_magnitude", "coordinates",
                           "latitude_agreement", "constant_streamflow"}


# -- every reader with coordinates ------------------------------------------------------------


def test_caravan_and_camels_coordinates_are_checked(caravan, camels):
    ds = load_caravan(caravan, basins=["01022500", "01333000"], validate=False)
    validate(ds)
    ds["gauge_lat"].values[0], ds["gauge_lon"].values[0] = ds["gauge_lon"].values[0], ds["gauge_lat"].values[0]
    with pytest.raises(DataValidationError, match=r"basin 01022500: latitude -67.9\d+ is in the southern hemisphere "
                                                  r"but the temperature cycle peaks in June-August"):
        validate(ds)
    us = load_camels_us(camels, basins=["01022500", "12010000"], forcing="nldas", validate=False)
    _, report = validate(us)
    assert checks(report, "water_limit").loc["12010000", "flagged"] == 1  # NLDAS misses Olympic rain: Q/P 1.11
    us["gauge_lat"].values[1] = 40.0  # 6 deg from the forcing file's 46.4
    _, report = validate(us)
    agreement = checks(report, "latitude_agreement")
    assert agreement.loc["12010000", "flagged"] == 1 and agreement["flagged"].sum() == 1
    assert agreement.loc["12010000", "value"] == pytest.approx(40.0 - float(us["forcing_latitude"][1]))
    assert any(n.startswith("latitude_agreement (|gauge lat - forcing lat| <= 2 deg; policy flag): 1 basin(s) "
                            "(12010000); basin 12010000: gauge latitude 40 differs from the forcing-file latitude 46.3")
               for n in report.notes)
    with pytest.raises(DataValidationError, match="latitude_agreement"):
        validate(us, policies={"latitude_agreement": "error"})
