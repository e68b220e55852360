"""evaluate / predict on a generic folder (issue 19): predictions without a streamflow column,
gauge coordinates, evaluations that never overwrite, the seed of each row and their order,
spin-up days not scored, train and evaluate scoring alike, undefined metrics, period cuts,
hot-start checks, the kept epoch of a validation period, and a resume that verifies files."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from difhydro import load_run
from difhydro.experiment.cli import main as difhydro
from difhydro.experiment.outputs import open_predictions, write_netcdf
from difhydro.experiment.rundir import RunDirError

BASINS = ["01022500", "01333000", "02046000"]
COLUMNS = {"total_precipitation_sum": "P", "temperature_2m_mean": "T", "streamflow": "Q"}
CONFIG = {
    "name": "folder_tiny",
    "data": {"format": "folder", "pet": "oudin", "attributes": ["aridity", "frac_snow"],
             "folder": {"variables": {"precipitation": "P", "temperature": "T", "streamflow": "Q"},
                        "units": {"precipitation": "mm d-1", "temperature": "degC", "streamflow": "mm d-1"}}},
    "periods": {"train": "1995-01-01:1999-12-31", "validation": "2000-01-01:2001-12-31",
                "test": "2002-01-01:2004-12-31"},
    "evaluations": ["temporal"],
    "seeds": [5, 10],
    "models": {"lstm": {"hidden_size": 4}, "exphydro_calibrated": {}},
    "training": {"epochs": 3, "steps_per_epoch": 5, "batch_size": 4, "window": 120, "warmup": 60,
                 "calibration_steps": 10, "patience": 1},
}


def write_generic_folder(caravan: Path, root: Path, start="1990-01-01", end="2004-12-31", drop=()) -> Path:
    """Three Caravan basins as a generic folder: timeseries/<id>.csv (date, P, T, Q) and
    attributes.csv (basin, gauge_lat, gauge_lon, aridity, frac_snow)."""
    (root / "timeseries").mkdir(parents=True)
    for b in BASINS:
        frame = pd.read_csv(caravan / "timeseries" / "csv" / "camels" / f"camels_{b}.csv")
        frame = frame[(frame.date >= start) & (frame.date <= end)][["date", *COLUMNS]].rename(columns=COLUMNS)
        frame.drop(columns=list(drop)).to_csv(root / "timeseries" / f"{b}.csv", index=False)
    tables = caravan / "attributes" / "camels"
    other = pd.read_csv(tables / "attributes_other_camels.csv")
    clim = pd.read_csv(tables / "attributes_caravan_camels.csv")
    attrs = other.merge(clim, on="gauge_id")
    attrs["basin"] = attrs.gauge_id.str.replace("camels_", "")
    attrs = attrs[attrs.basin.isin(BASINS)][["basin", "gauge_lat", "gauge_lon", "aridity", "frac_snow"]]
    attrs.to_csv(root / "attributes.csv", index=False)
    return root


@pytest.fixture(scope="module")
def folder_run(caravan, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("folder_run")
    data = write_generic_folder(caravan, tmp / "mydata")
    cfg = tmp / "tiny.yml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    out = tmp / "run"
    assert difhydro(["train", str(cfg), "--data-dir", str(data), "--out", str(out), "--quiet"]) == 0
    return out, data


def _metrics(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"basin": str})


def test_predict_reads_a_folder_without_streamflow_and_writes_gauge_coordinates(folder_run, caravan, tmp_path):
    run_dir, _ = folder_run
    forcing_only = write_generic_folder(caravan, tmp_path / "forcing_only", drop=("Q",))
    assert "Q" not in pd.read_csv(forcing_only / "timeseries" / f"{BASINS[0]}.csv", nrows=1).columns
    out = tmp_path / "pred.nc"
    assert difhydro(["predict", str(run_dir), "--data-dir", str(forcing_only), "--period", "2003-01-01:2003-12-31",
                     "--out", str(out), "--quiet"]) == 0
    other = pd.read_csv(caravan / "attributes" / "camels" / "attributes_other_camels.csv").set_index("gauge_id")
    with open_predictions(out) as pred:
        assert "observed_streamflow" not in pred
        assert np.isfinite(pred.simulated_streamflow.sel(model="lstm")).all()
        assert pred.lat.attrs["standard_name"] == "latitude" and pred.lon.attrs["units"] == "degrees_east"
        np.testing.assert_allclose(pred.lat.values, other.loc[[f"camels_{b}" for b in pred.basin.values], "gauge_lat"])
        np.testing.assert_allclose(pred.lon.values, other.loc[[f"camels_{b}" for b in pred.basin.values], "gauge_lon"])
    with open_predictions(run_dir / "predictions.nc") as trained:
        assert "lat" in trained.coords and "lon" in trained.coords


def test_evaluate_never_overwrites(folder_run, capsys):
    run_dir, _ = folder_run
    run = load_run(run_dir)
    first = run.evaluate(models=["exphydro_calibrated"], progress=False)
    second = run.evaluate(models=["exphydro_calibrated"], progress=False)
    assert Path(first.attrs["folder"]).name == "default" and Path(second.attrs["folder"]).name == "default-2"
    before = (run_dir / "evaluation" / "default" / "metrics.csv").stat().st_mtime_ns
    with pytest.raises(RunDirError, match="exists"):
        run.evaluate(name="default", models=["exphydro_calibrated"], progress=False)
    assert difhydro(["evaluate", str(run_dir), "--name", "default", "--models", "exphydro_calibrated", "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert (run_dir / "evaluation" / "default" / "metrics.csv").stat().st_mtime_ns == before


def test_evaluate_scores_like_train_with_each_seed_in_config_order(folder_run):
    run_dir, _ = folder_run
    run = load_run(run_dir)
    assert [m.seed for m in run.models()["lstm"]] == [5, 10]  # not text order (seed10 < seed5)
    table = run.evaluate(name="same_as_train", progress=False)
    trained = _metrics(run_dir / "metrics.csv")
    assert set(zip(table.model, table.seed)) == set(zip(trained.model, trained.seed)) == {
        ("lstm", 5), ("lstm", 10), ("lstm_ensemble", -1), ("exphydro_calibrated", 5)}
    both = trained.merge(table, on=["model", "seed", "basin"], suffixes=("_train", "_eval"))
    assert len(both) == len(trained) == len(table)
    for m in ("nse", "kge", "days"):
        np.testing.assert_allclose(both[f"{m}_eval"], both[f"{m}_train"], rtol=0, atol=1e-6)
    # predictions.nc shows the config's first seed (5) beside the ensemble
    with np.load(run_dir / "models" / "lstm" / "temporal_fold0" / "seed5" / "result.npz") as unit:
        seed5 = unit["simulated"]
    with open_predictions(Path(table.attrs["folder"]) / "predictions.nc") as pred:
        np.testing.assert_allclose(pred.simulated_streamflow.sel(model="lstm").squeeze("evaluation").values, seed5,
                                   rtol=1e-5, atol=1e-6)


def test_evaluate_masks_spin_up_days_inside_the_period(folder_run):
    run_dir, data = folder_run
    run = load_run(run_dir)
    warmup = run.config.training.warmup
    table = run.evaluate(period="1990-01-01:1990-12-31", name="at_data_start", models=["lstm"], progress=False)
    with open_predictions(Path(table.attrs["folder"]) / "predictions.nc") as pred:
        obs = pred.observed_streamflow.values
        sim = pred.simulated_streamflow.sel(model="lstm").squeeze("evaluation").values
        basins = list(pred.basin.values)
    row = table[(table.model == "lstm") & (table.seed == 5)].set_index("basin")
    for i, b in enumerate(basins):
        o, s = obs[i, warmup:], sim[i, warmup:]  # the first `warmup` days spun the model up
        ok = np.isfinite(o)
        assert row.loc[b, "days"] == ok.sum() <= 365 - warmup
        nse = 1 - np.sum((s[ok] - o[ok]) ** 2) / np.sum((o[ok] - o[ok].mean()) ** 2)
        assert row.loc[b, "nse"] == pytest.approx(nse, abs=1e-4)


def test_an_undefined_metric_is_reported_not_minus_inf(folder_run, caravan, tmp_path):
    run_dir, _ = folder_run
    flat = write_generic_folder(caravan, tmp_path / "flat")
    path = flat / "timeseries" / f"{BASINS[0]}.csv"
    frame = pd.read_csv(path)
    frame["Q"] = 1.5  # a constant observed series: NSE has no denominator
    frame.to_csv(path, index=False)
    table = load_run(run_dir).evaluate(data_dir=flat, name="flat", models=["exphydro_calibrated"], progress=False)
    row = table.set_index("basin").loc[BASINS[0]]
    assert np.isnan(row.nse) and np.isfinite(table.set_index("basin").loc[BASINS[1], "nse"])
    summary = (Path(table.attrs["folder"]) / "summary.md").read_text()
    assert "undefined for NSE 1" in summary and re.search(r"\binf\b", summary) is None
    assert np.isnan(_metrics(Path(table.attrs["folder"]) / "metrics.csv").set_index("basin").loc[BASINS[0], "nse"])


def test_a_period_beyond_the_data_is_cut_and_said_or_refused(folder_run, capsys, tmp_path):
    run_dir, _ = folder_run
    table = load_run(run_dir).evaluate(period="2003-01-01:2010-12-31", name="beyond", models=["exphydro_calibrated"],
                                       progress=False)
    summary = (Path(table.attrs["folder"]) / "summary.md").read_text()
    assert "CUT: periods.test 2003-01-01:2010-12-31 was cut to 2003-01-01:2004-12-31" in summary
    assert difhydro(["evaluate", str(run_dir), "--period", "2020-01-01:2021-12-31", "--name", "outside", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2020-01-01:2021-12-31" in err[0] and "1990-01-01:2004-12-31" in err[0], err
    assert not (run_dir / "evaluation" / "outside").exists()
    # predict --out below a regular file: one line, nothing written
    (tmp_path / "a_file").write_text("x")
    assert difhydro(["predict", str(run_dir), "--data-dir", str(folder_run[1]), "--period", "2003-01-01:2003-03-31",
                     "--out", str(tmp_path / "a_file" / "p.nc"), "--quiet", "--models", "exphydro_calibrated"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0], err


def test_hot_start_names_skipped_models_and_refuses_later_states(folder_run, tmp_path):
    run_dir, data = folder_run
    run = load_run(run_dir)
    first = tmp_path / "first.nc"
    write_netcdf(run.predict(data_dir=data, period="2003-01-01:2003-06-30", progress=False, log=lambda s: None), first)
    said = []
    later = run.predict(data_dir=data, period="2003-07-01:2003-12-31", hot_start=first, progress=False, log=said.append)
    assert list(later.model.values) == ["exphydro_calibrated"]
    assert any("skipped model lstm" in s for s in said) and "skipped model lstm" in later.attrs["summary"]
    assert "2003-06-30 (the day before the period)" in later.attrs["hot_start"]
    with pytest.raises(ValueError, match="does not precede the period start 2003-06-01"):
        run.predict(data_dir=data, period="2003-06-01:2003-12-31", hot_start=first, progress=False)


def test_the_best_validation_epoch_is_kept_and_reported(folder_run):
    run_dir, _ = folder_run
    summary = (run_dir / "summary.md").read_text()
    assert "## Kept epoch (validation 2000-01-01..2001-12-31)" in summary
    for seed in (5, 10):
        log = pd.read_csv(run_dir / "models" / "lstm" / "temporal_fold0" / f"seed{seed}" / "log.csv")
        assert log.val_median_nse.notna().all()
        best = int(log.epoch[log.val_median_nse.idxmax()])
        assert f"| lstm | temporal | 0 | {seed} | {best} | {len(log)} | nse |" in summary
        # patience 1: training stops one epoch after the last improvement (or at the last epoch)
        assert len(log) == min(best + 1, CONFIG["training"]["epochs"])


def test_resume_refuses_a_truncated_result_and_changed_data(folder_run, tmp_path, capsys):
    run_dir, data = folder_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    metrics = (copy / "metrics.csv").read_bytes()
    result = copy / "models" / "lstm" / "temporal_fold0" / "seed10" / "result.npz"
    result.write_bytes(result.read_bytes()[:1000])
    assert difhydro(["train", "--resume", str(copy), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(result) in err[0], err
    assert (copy / "metrics.csv").read_bytes() == metrics  # the good file is kept
    # the data a run read are recorded with SHA-256; a changed file is named on resume
    recorded = json.loads((copy / "provenance.json").read_text())["data_files"]
    assert set(recorded) == {"attributes.csv"} | {f"timeseries/{b}.csv" for b in BASINS}
    shutil.copy(run_dir / "models" / "lstm" / "temporal_fold0" / "seed10" / "result.npz", result)
    path = data / "timeseries" / f"{BASINS[1]}.csv"
    original = path.read_bytes()
    try:
        changed = original.replace(b"\n2003-05-05,", b"\n2003-05-05,0")  # one more digit, same value
        assert changed != original
        path.write_bytes(changed)
        assert difhydro(["train", "--resume", str(copy), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and "changed" in err[0], err
    finally:
        path.write_bytes(original)
    assert (copy / "metrics.csv").read_bytes() == metrics
