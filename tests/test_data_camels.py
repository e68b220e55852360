"""CAMELS-US reader: tiny files in the real formats (unit) and the shared subset (integration)."""

import time

import numpy as np
import pandas as pd
import pytest

from difhydro.data import (
    DataFileError,
    cfs_to_mm_per_day,
    load_camels_us,
    read_streamflow_file,
)

HEADER = "Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)"
ATTR_TABLES = {
    "camels_name.txt": "gauge_id;huc_02;gauge_name\n{g1};01;River One, Maine\n{g2};03;River Two, Georgia\n",
    "camels_topo.txt": "gauge_id;gauge_lat;gauge_lon;elev_mean;area_gages2\n{g1};45.0;-68.0;300.5;500.0\n{g2};33.0;-84.0;200.0;NA\n",
    "camels_clim.txt": "gauge_id;p_mean;high_prec_timing\n{g1};3.1;son\n{g2};4.2;jja\n",
}
G1, G2 = "01000001", "03000002"


def write_forcing(path, dates, area=5.0e8, lat=45.0, tmax_eq_tmin=False, header=HEADER, rows=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"  {lat:.2f}", " 300.00", f" {area:.0f}", header]
    for i, d in enumerate(dates):
        tmin = 10.0 + i if tmax_eq_tmin else i - 2.0
        lines.append(f"{d.year} {d.month:02d} {d.day:02d} 12\t{40000 + i:.2f}\t{i * 0.5:.2f}\t{100 + i:.2f}\t0.00\t{10.0 + i:.2f}\t{tmin:.2f}\t{500 + i:.2f}")
    if rows is not None:
        lines = lines[:4] + rows
    path.write_text("\n".join(lines) + "\n")


def write_flow(path, gauge, dates, q, flags):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{gauge} {d.year} {d.month:02d} {d.day:02d} {v:8.2f} {f}\n" for d, v, f in zip(dates, q, flags)))


def make_tree(root, huc_folders=True):
    """Two basins: G1 daymet 2000-01-01..10 with flow 01-03..12 (incl. -999), G2 01-05..08."""
    d1 = pd.date_range("2000-01-01", periods=10)
    d2 = pd.date_range("2000-01-05", periods=4)
    sub1, sub2 = ("01", "03") if huc_folders else ("", "")
    write_forcing(root / "basin_mean_forcing/daymet" / sub1 / f"{G1}_lump_cida_forcing_leap.txt", d1)
    write_forcing(root / "basin_mean_forcing/daymet" / sub2 / f"{G2}_lump_cida_forcing_leap.txt", d2, area=2.0e8)
    q1 = [100.0, 120.0, -999.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0]
    write_flow(root / "usgs_streamflow" / sub1 / f"{G1}_streamflow_qc.txt", G1, pd.date_range("2000-01-03", periods=10), q1, ["A", "A:e", "M"] + ["A"] * 7)
    write_flow(root / "usgs_streamflow" / sub2 / f"{G2}_streamflow_qc.txt", G2, d2, [10.0, 11.0, 12.0, 13.0], ["A"] * 4)
    attr = root / "camels_attributes_v2.0"
    attr.mkdir(parents=True, exist_ok=True)
    for name, text in ATTR_TABLES.items():
        (attr / name).write_text(text.format(g1=G1, g2=G2))
    return root


# -- unit tests on tiny files -------------------------------------------------------------


@pytest.mark.parametrize("huc_folders", [True, False])
def test_reads_layout_with_or_without_huc_folders(tmp_path, huc_folders):
    ds = load_camels_us(make_tree(tmp_path, huc_folders))
    assert list(ds["basin"].values) == [G1, G2]
    assert ds["basin"].dtype.kind == "U"
    # axis spans the union of all records: 2000-01-01 .. 2000-01-12 (flow of G1 runs longer)
    assert ds.sizes["time"] == 12 and str(ds["time"].values[0])[:10] == "2000-01-01"
    q = ds["streamflow"].sel(basin=G1).values
    factor = 0.0283168466 * 86400 * 1000 / 5.0e8
    assert np.isnan(q[:2]).all()  # before the flow record
    np.testing.assert_allclose(q[2:4], np.array([100.0, 120.0]) * factor, rtol=1e-6)
    assert np.isnan(q[4])  # -999
    np.testing.assert_allclose(q[11], 30.0 * factor, rtol=1e-6)  # last flow day, 2000-01-12
    qc = ds["streamflow_qc"].sel(basin=G1).values
    assert qc[:6].tolist() == [0, 0, 1, 2, 3, 1]
    assert ds["streamflow_qc"].attrs["flag_meanings"] == "none A A:e M"
    # G2: forcing only on 01-05..08, NaN elsewhere
    p2 = ds["precipitation"].sel(basin=G2).values
    assert np.isnan(p2[:4]).all() and np.isnan(p2[8:]).all()
    np.testing.assert_allclose(p2[4:8], [0.0, 0.5, 1.0, 1.5])
    # temperature is the mean of tmax and tmin, day length in hours
    t = ds.sel(basin=G1)
    np.testing.assert_allclose(t["temperature"].values[:10], 0.5 * (t["tmax"].values[:10] + t["tmin"].values[:10]))
    np.testing.assert_allclose(t["day_length"].values[0], 40000 / 3600, rtol=1e-6)
    # attributes, strings kept, NA as NaN
    assert ds["huc_02"].values.tolist() == ["01", "03"]
    assert ds["high_prec_timing"].values.tolist() == ["son", "jja"]
    assert np.isnan(ds["area_gages2"].sel(basin=G2)) and float(ds["elev_mean"].sel(basin=G1)) == pytest.approx(300.5)
    assert ds["streamflow"].attrs["units"] == "mm d-1" and ds["day_length"].attrs["units"] == "h"
    assert float(ds["forcing_area"].sel(basin=G2)) == 2.0e8


def test_basins_subset_start_end_and_integer_ids(tmp_path):
    root = make_tree(tmp_path)
    ds = load_camels_us(root, basins=[1000001], start="2000-01-02", end="2000-01-04")
    assert ds["basin"].values.tolist() == [G1]
    assert ds.sizes["time"] == 3
    np.testing.assert_allclose(ds["precipitation"].values[0], [0.5, 1.0, 1.5])


def test_nldas_tmax_equal_tmin_is_reported(tmp_path):
    root = make_tree(tmp_path)
    write_forcing(root / "basin_mean_forcing/nldas/01" / f"{G1}_lump_nldas_forcing_leap.txt", pd.date_range("2000-01-01", periods=10), tmax_eq_tmin=True)
    ds = load_camels_us(root, forcing="nldas")
    assert ds.attrs["tmax_equals_tmin"] == G1
    np.testing.assert_array_equal(ds["temperature"].values[0, :10], ds["tmax"].values[0, :10])


def test_missing_streamflow_policy(tmp_path):
    root = make_tree(tmp_path)
    (root / "usgs_streamflow/03" / f"{G2}_streamflow_qc.txt").unlink()
    with pytest.raises(FileNotFoundError, match=f"basin {G2}.*streamflow_qc"):
        load_camels_us(root)
    ds = load_camels_us(root, missing_streamflow="nan")
    assert np.isnan(ds["streamflow"].sel(basin=G2)).all()
    assert ds.attrs["basins_without_streamflow"] == G2
    assert np.isfinite(ds["precipitation"].sel(basin=G2)).sum() == 4


def _bad(root, rows):
    write_forcing(root / "basin_mean_forcing/daymet/01" / f"{G1}_lump_cida_forcing_leap.txt", [], rows=rows)


@pytest.mark.parametrize(
    "mutate, error, pattern",
    [
        (lambda r: _bad(r, ["2000 01 01 12 40000 0 1 0 10 2 500", "2000 01 02 12 40000 0 1 0 10 2"]), DataFileError, "line 6 has 10 fields"),
        (lambda r: _bad(r, ["2000 01 01 12 40000 0 1 0 10 2 500", "2000 01 02 12 40000 x 1 0 10 2 500"]), DataFileError, "line 6 has a non-numeric"),
        (lambda r: _bad(r, ["2000 01 01 12 40000 0 1 0 10 2 500", "2000 01 03 12 40000 0 1 0 10 2 500"]), DataFileError, "date gap"),
        (
            lambda r: write_forcing(r / "basin_mean_forcing/daymet/01" / f"{G1}_lump_cida_forcing_leap.txt", pd.date_range("2000-01-01", periods=3), header=HEADER.replace("tmin(C)", "tmean(C)")),
            DataFileError,
            r"column\(s\) \['tmin\(c\)'\] missing",
        ),
        (lambda r: (r / "basin_mean_forcing/daymet/01" / f"{G1}_lump_cida_forcing_leap.txt").unlink(), FileNotFoundError, f"basin {G1}: no daymet forcing file"),
        (lambda r: (r / "camels_attributes_v2.0/camels_clim.txt").write_text(f"gauge_id;p_mean\n{G1};3.0\n"), DataFileError, "camels_clim.txt: has no row"),
    ],
    ids=["short-line", "non-numeric", "date-gap", "missing-column", "missing-file", "attribute-row"],
)
def test_bad_input_names_file_and_basin(tmp_path, mutate, error, pattern):
    root = make_tree(tmp_path)
    mutate(root)
    with pytest.raises(error, match=pattern) as info:
        load_camels_us(root, basins=[G1, G2])
    msg = str(info.value)
    assert "basin" in msg and (G1 in msg or G2 in msg)
    if error is DataFileError:
        assert "file" in msg and str(root) in msg


def test_unknown_basin_and_bad_flow_lines(tmp_path):
    root = make_tree(tmp_path)
    with pytest.raises(DataFileError, match="unknown CAMELS basin id.*camels_name.txt|camels_name.txt.*unknown"):
        load_camels_us(root, basins=["09999999"])
    path = root / "usgs_streamflow/01" / f"{G1}_streamflow_qc.txt"
    path.write_text(f"{G1} 2000 01 01 5.0 A\n{G1} 2000 01 02 5.0 Z\n")
    with pytest.raises(DataFileError, match=r"unknown QC flag\(s\) \['Z'\]"):
        read_streamflow_file(path, G1)
    path.write_text(f"{G1} 2000 01 01 5.0 A\n{G1} 2000 01 02 5.0\n")
    with pytest.raises(DataFileError, match="line 2 has 5 fields"):
        read_streamflow_file(path, G1)
    path.write_text(f"{G2} 2000 01 01 5.0 A\n")
    with pytest.raises(DataFileError, match=f"expected only {G1}"):
        read_streamflow_file(path, G1)


def test_cache_is_reused_and_invalidated(tmp_path):
    root = make_tree(tmp_path / "src")
    cache = tmp_path / "cache"
    first = load_camels_us(root, cache_dir=cache)
    files = list(cache.glob("*.nc"))
    assert len(files) == 1
    again = load_camels_us(root, cache_dir=cache)
    assert again["basin"].values.tolist() == [G1, G2] and again["huc_02"].values.tolist() == ["01", "03"]
    np.testing.assert_array_equal(again["streamflow"].values, first["streamflow"].values)
    # editing a source file changes the fingerprint: fresh values, one cache entry left
    write_flow(root / "usgs_streamflow/03" / f"{G2}_streamflow_qc.txt", G2, pd.date_range("2000-01-05", periods=4), [20.0] * 4, ["A"] * 4)
    fresh = load_camels_us(root, cache_dir=cache)
    np.testing.assert_allclose(fresh["streamflow"].sel(basin=G2).values[4:8], cfs_to_mm_per_day([20.0] * 4, 2.0e8), rtol=1e-6)
    assert len(list(cache.glob("*.nc"))) == 1 and list(cache.glob("*.nc")) != files


# -- integration tests on the shared CAMELS-US subset -------------------------------------


def test_streamflow_conversion_matches_raw_files(camels):
    ds = load_camels_us(camels, forcing="nldas")
    assert ds.sizes["basin"] == 22
    for basin in ds["basin"].values:
        path = next((camels / "usgs_streamflow").rglob(f"{basin}_streamflow_qc.txt"))
        raw = pd.read_csv(path, sep=r"\s+", header=None)
        dates = pd.to_datetime(dict(year=raw[1], month=raw[2], day=raw[3]))
        forcing = next((camels / "basin_mean_forcing/nldas").rglob(f"{basin}_*.txt"))
        area = float(forcing.read_text().splitlines()[2])
        cfs = raw[4].to_numpy(float)
        expected = np.where(cfs == -999, np.nan, cfs * 0.0283168466 * 86400 * 1000 / area)
        got = ds["streamflow"].sel(basin=basin, time=dates.values).values
        np.testing.assert_allclose(got, expected.astype(np.float32), rtol=2e-7, equal_nan=True)
        # outside the record: NaN, not dropped or zero-filled
        outside = ~ds["time"].isin(dates.values).values
        assert np.isnan(ds["streamflow"].sel(basin=basin).values[outside]).all()


@pytest.mark.parametrize("basin, forcing, area_var", [("01022500", "nldas", "area_gages2"), ("01031500", "daymet", "area_gages2")])
def test_long_term_mean_flow_matches_camels_q_mean(camels, basin, forcing, area_var):
    """q_mean of camels_hydro.txt is the 1989-10-01..2009-09-30 mean (Addor et al. 2017)."""
    ds = load_camels_us(camels, basins=[basin], forcing=forcing).sel(basin=basin)
    q = ds["streamflow"].sel(time=slice("1989-10-01", "2009-09-30"))
    assert int(np.isfinite(q).sum()) > 7000
    ours = float(q.mean())
    q_mean = float(ds["q_mean"])
    assert ours == pytest.approx(q_mean, rel=0.03)  # measured: -2.4 % (01022500), -0.3 % (01031500)
    # the residual is the area: q_mean uses the GAGES-II area; rescaled, the means agree
    # to float32 precision (measured 2.1731 vs 2.1731 and 2.0302 vs 2.0302 mm/d)
    rescaled = ours * float(ds["forcing_area"]) / (1e6 * float(ds[area_var]))
    assert rescaled == pytest.approx(q_mean, rel=1e-4)


def test_all_shared_basins_load_in_seconds(camels):
    t0 = time.perf_counter()
    nldas = load_camels_us(camels, forcing="nldas")
    daymet = load_camels_us(camels, forcing="daymet")
    seconds = time.perf_counter() - t0
    assert seconds < 10.0, seconds
    assert nldas.sizes["basin"] == 22 and daymet.sizes["basin"] == 6
    assert nldas.attrs["tmax_equals_tmin"].split() == nldas["basin"].values.tolist()
    # partial records: 01547700 has 2000-2002 only
    p = nldas["precipitation"].sel(basin="01547700")
    assert np.isfinite(p).sum() == 1096 and np.isnan(p.sel(time="1999-12-31"))
    n_static = sum(1 for v in nldas.data_vars.values() if v.dims == ("basin",))
    assert n_static >= 60  # every CAMELS attribute plus the forcing header


# -- line-exact errors, sentinels and the validation report ------------------------------------


def _forcing_path(root):
    return root / "basin_mean_forcing/daymet/01" / f"{G1}_lump_cida_forcing_leap.txt"


@pytest.mark.parametrize(
    "edit, line, pattern",
    [
        (lambda ls: ls[1:], 1, "header latitude must lie in"),  # latitude line missing: 300 m is no latitude
        (lambda ls: ls[:3] + ls[4:], 4, "column header line is missing"),
        (lambda ls: ls[:6] + [ls[6].replace("\t", ",")] + ls[7:], 7, "separated by ',', not whitespace"),
        (lambda ls: ls[:8] + [ls[7]] + ls[8:], 9, "date 2000-01-04 repeats 2000-01-04 on line 8"),
        (lambda ls: ls[:-1] + [ls[-1][:20]], 14, "the file looks truncated"),
    ],
    ids=["no-latitude", "no-column-header", "comma-line", "duplicate", "cut"],
)
def test_forcing_errors_name_the_line(tmp_path, edit, line, pattern):
    root = make_tree(tmp_path)
    path = _forcing_path(root)
    path.write_text("\n".join(edit(path.read_text().splitlines())))
    with pytest.raises(DataFileError, match=pattern) as info:
        load_camels_us(root)
    assert info.value.line == line and f"line {line}" in str(info.value) and path.name in str(info.value)
    assert info.value.basin == G1


def test_sentinel_forcing_and_the_report(tmp_path):
    from difhydro.data.validation import DataValidationError, ValidationReport

    root = make_tree(tmp_path)
    path = _forcing_path(root)
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace("\t1.00\t", "\t-999.00\t")  # 2000-01-03 precipitation
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=f"precipitation .*1 missing value.*\\({G1}\\), 1 of them sentinel "
                                                  f"codes.*basin {G1} on 2000-01-03"):
        load_camels_us(root)
    raw = load_camels_us(root, validate=False)
    assert np.isnan(raw["precipitation"].sel(basin=G1).values[2]) and raw["precipitation"].attrs["sentinel_counts"] == f"{G1}=1"
    ds = load_camels_us(root, policies={"forcing": "interpolate"})
    np.testing.assert_allclose(ds["precipitation"].sel(basin=G1).values[:5], [0.0, 0.5, 1.0, 1.5, 2.0])
    report = ValidationReport.from_dataset(ds)
    r = report.table.query("basin == @G1 and variable == 'precipitation'").iloc[0]
    assert (r["sentinel"], r["missing"], r["interpolated"]) == (1, 1, 1)
    q = report.table.query("basin == @G1 and variable == 'streamflow'").iloc[0]
    assert (q["sentinel"], q["missing"], q["outside_record"]) == (1, 1, 2)  # the -999 of 2000-01-05
    assert "| streamflow | target | mask |" in report.to_markdown()
    # the cache keeps the data as read; the validation runs on every load
    cache = tmp_path / "cache"
    load_camels_us(root, validate=False, cache_dir=cache)
    with pytest.raises(DataValidationError):
        load_camels_us(root, cache_dir=cache)


def test_cut_attribute_table_names_the_line(tmp_path):
    root = make_tree(tmp_path)
    (root / "camels_attributes_v2.0/camels_clim.txt").write_text(f"gauge_id;p_mean;high_prec_timing\n{G1};3.1;son\n{G2};4.2\n")
    with pytest.raises(DataFileError, match="camels_clim.txt: line 3 has 2 fields, expected 3") as info:
        load_camels_us(root)
    assert info.value.line == 3
