"""The experiment layer end to end: the main job, evaluate on unseen basins, predict without
observations, resume after a kill, refusals that change nothing, exit statuses, CF output."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from difhydro import load_run
from difhydro.experiment.cli import main as difhydro
from difhydro.experiment.outputs import open_predictions

ROOT = Path(__file__).resolve().parents[1]
UNSEEN = ["04015330", "05057200"]  # eligible CAMELS-US basins outside the smoke run's six


@pytest.fixture(scope="module")
def smoke_run(camels, tmp_path_factory):
    """The main job with the smoke preset (every model, gauged and ungauged)."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    code = load_example_script_main()(["--config", "smoke", "--data-dir", str(camels), "--out", str(out), "--quiet"])
    assert code == 0
    return out


def load_example_script_main():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import camels_regional

    return camels_regional.main


def _metrics(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"basin": str})


def test_main_job_smoke_on_shared_camels(smoke_run):
    for name in ("metrics.csv", "summary.md", "predictions.nc", "nse_cdf_temporal.png", "nse_cdf_kfold.png",
                 "hydrographs_temporal.png", "config.yml", "config.sha256", "provenance.json", ".difhydro-run.json"):
        assert (smoke_run / name).is_file(), name
    metrics = _metrics(smoke_run / "metrics.csv")
    trained = {"hybrid", "pseudo_hybrid", "lstm", "dpl_hbv", "dpl_exphydro", "exphydro_calibrated", "hbv_calibrated"}
    calibrated = {"exphydro_calibrated", "hbv_calibrated"}
    # every model ran in the gauged evaluation; calibration is reported as not applicable to ungauged basins
    assert set(metrics[metrics.evaluation == "temporal"].model) == trained
    assert set(metrics[metrics.evaluation == "kfold"].model) == trained - calibrated
    assert np.isfinite(metrics.nse).all() and np.isfinite(metrics.kge).all()
    # each basin is a test basin in exactly one fold
    kfold = metrics[metrics.evaluation == "kfold"]
    assert kfold.groupby("model").basin.nunique().eq(kfold.basin.nunique()).all()
    assert len(kfold) == kfold.basin.nunique() * kfold.model.nunique()
    # the regional LSTM beats the mean-flow benchmark (NSE 0) on the gauged test period
    assert metrics[(metrics.evaluation == "temporal") & (metrics.model == "lstm")].nse.median() > 0
    summary = (smoke_run / "summary.md").read_text()
    assert "not applicable" in summary.lower() and "| temporal | hybrid |" in summary
    assert "Hargreaves" in summary  # the PET every process model read is named
    with open_predictions(smoke_run / "predictions.nc") as pred:
        assert set(pred.model.values) == trained
        sim = pred.simulated_streamflow.sel(evaluation="temporal", model="lstm")
        assert np.isfinite(sim).all()
        assert np.isfinite(pred.series_hybrid__snow_storage.sel(evaluation="temporal")).all()
        assert float(pred.param_hybrid__smax.min()) >= 100.0  # learned parameters, inside their box


def test_predictions_are_cf_and_round_trip(smoke_run):
    with xr.open_dataset(smoke_run / "predictions.nc", decode_cf=False) as raw:
        decoded = xr.decode_cf(raw)
        assert raw.attrs["Conventions"] == "CF-1.8" and raw.attrs["config_hash"]
        for name in ("title", "history", "source", "difhydro_version"):
            assert raw.attrs[name]
        var = raw["simulated_streamflow"]
        assert var.attrs["units"] == "mm d-1" and var.attrs["long_name"]
        assert raw["param_hybrid__smax"].attrs["units"] == "mm" and raw["param_hybrid__smax"].attrs["long_name"]
        assert "since" in raw["time"].attrs["units"]
        assert raw["lat"].attrs["standard_name"] == "latitude" and raw["basin_id"].attrs["cf_role"] == "timeseries_id"
        assert np.issubdtype(decoded.time.dtype, np.datetime64)
    with open_predictions(smoke_run / "predictions.nc") as pred:
        metrics = _metrics(smoke_run / "metrics.csv")
        row = metrics[(metrics.evaluation == "temporal") & (metrics.model == "lstm")].iloc[0]
        sim = pred.simulated_streamflow.sel(evaluation="temporal", model="lstm", basin=row.basin).values
        obs = pred.observed_streamflow.sel(basin=row.basin).values.copy()
        with np.load(smoke_run / "models" / "lstm" / "temporal_fold0" / "seed0" / "result.npz") as unit:
            obs[: int(unit["spin_up_in_period"])] = np.nan  # spin-up days inside the period are not scored
        ok = np.isfinite(obs)
        nse = 1 - np.sum((sim[ok] - obs[ok]) ** 2) / np.sum((obs[ok] - obs[ok].mean()) ** 2)
        assert nse == pytest.approx(row.nse, abs=1e-4)  # metrics.csv agrees with an independent NSE


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_a_cf_checker_passes(smoke_run, tmp_path):
    """IOOS compliance-checker (PyPI), CF-1.8, offline with its packaged standard-name table."""
    try:
        from compliance_checker.runner import CheckSuite, ComplianceChecker
    except (ImportError, OSError) as err:  # cf-units needs the UDUNITS-2 library
        pytest.skip(f"compliance-checker not usable here: {err}")
    CheckSuite().load_all_available_checkers()
    report = tmp_path / "cf.json"
    passed, errors = ComplianceChecker.run_checker(str(smoke_run / "predictions.nc"), ["cf:1.8"], 0, "normal",
                                                   output_filename=str(report), output_format="json")
    result = next(iter(json.loads(report.read_text()).values()))
    failed = [(p["name"], p["msgs"]) for p in result["all_priorities"] if p["value"][0] < p["value"][1]]
    assert passed and not errors and not failed, failed


def test_evaluate_unseen_basins_and_predict_without_streamflow(smoke_run, camels, tmp_path):
    basin_file = tmp_path / "unseen.txt"
    basin_file.write_text("\n".join(UNSEEN) + "\n")
    assert difhydro(["evaluate", str(smoke_run), "--basin-file", str(basin_file), "--name", "unseen", "--quiet"]) == 0
    folder = smoke_run / "evaluation" / "unseen"
    table = _metrics(folder / "metrics.csv")
    assert set(table.basin) == set(UNSEEN) and not table.gauged.any()
    assert {"lstm", "hybrid", "dpl_hbv"} <= set(table.model) and not (set(table.model) & {"hbv_calibrated"})
    assert (folder / "summary.md").is_file() and (folder / "nse_cdf_unseen.png").is_file()
    # a copy of the data without the streamflow files: forcing and attributes only
    copy = tmp_path / "forcing_only"
    shutil.copytree(camels / "camels_attributes_v2.0", copy / "camels_attributes_v2.0")
    for path in (camels / "basin_mean_forcing").rglob("*_forcing_leap.txt"):
        if path.name.split("_")[0] in UNSEEN:
            target = copy / path.relative_to(camels)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    (copy / "usgs_streamflow").mkdir()
    with open_predictions(folder / "predictions.nc") as evaluated:
        period = f"{str(evaluated.time.values[0])[:10]}:{str(evaluated.time.values[-1])[:10]}"
        expected = evaluated.simulated_streamflow.sel(evaluation="unseen").load()
    out = tmp_path / "predicted.nc"
    assert difhydro(["predict", str(smoke_run), "--data-dir", str(copy), "--basin-file", str(basin_file),
                     "--period", period, "--out", str(out), "--quiet"]) == 0
    with open_predictions(out) as predicted:
        assert "observed_streamflow" not in predicted
        for model in expected.model.values:
            np.testing.assert_allclose(predicted.simulated_streamflow.sel(evaluation="predict", model=model).values,
                                       expected.sel(model=model).values, rtol=1e-5, atol=1e-6, err_msg=str(model))
    # the same through the Python API, with a hot start from the states at the end of it
    run = load_run(smoke_run)
    later = run.predict(data_dir=copy, basins=UNSEEN, period="1999-10-01:2000-09-30", hot_start=out, progress=False)
    assert set(later.model.values) >= {"hybrid", "dpl_exphydro"} and "lstm" not in set(later.model.values)
    assert np.isfinite(later.simulated_streamflow.sel(model="hybrid")).all()


TINY = {
    "name": "tiny",
    "data": {"basins": ["01013500", "01022500", "01333000"]},
    "evaluations": ["temporal"],
    "models": {"lstm": {"hidden_size": 8}, "dpl_exphydro": {"hidden_size": 8}, "exphydro_calibrated": {}},
    "periods": {"train": "2000-10-01:2004-09-30", "test": "1995-10-01:1999-09-30"},
    "training": {"epochs": 4, "steps_per_epoch": 15, "batch_size": 8, "window": 200, "warmup": 100,
                 "calibration_steps": 30},
}


def _write(path, cfg) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_kill_and_resume_gives_identical_results_and_a_changed_config_is_refused(camels, tmp_path):
    cfg = _write(tmp_path / "tiny.yml", TINY)
    straight = tmp_path / "straight"
    assert difhydro(["train", str(cfg), "--data-dir", str(camels), "--out", str(straight), "--quiet"]) == 0
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "difhydro", "train", str(cfg), "--data-dir", str(camels),
                             "--out", str(killed), "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed / "models" / "lstm" / "temporal_fold0" / "seed0" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-training of the first model: some epochs saved, none of its results
    proc.wait()
    assert not (killed / "metrics.csv").exists()
    # the command re-launched itself on huge pages where glibc and the kernel allow it
    from difhydro.experiment.cli import HUGE_PAGES_TUNABLE, huge_pages_environment

    provenance = json.loads((killed / "provenance.json").read_text())
    tunables = provenance["glibc_tunables"]
    assert (HUGE_PAGES_TUNABLE in tunables) == (huge_pages_environment(env) is not None or "hugetlb=1" in tunables)
    assert difhydro(["train", "--resume", str(killed), "--quiet"]) == 0
    a, b = _metrics(straight / "metrics.csv"), _metrics(killed / "metrics.csv")
    timing = ["train_seconds", "seconds_per_epoch", "basin_days_per_second", "compile_seconds", "step_seconds"]
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    with open_predictions(straight / "predictions.nc") as p1, open_predictions(killed / "predictions.nc") as p2:
        np.testing.assert_array_equal(p1.simulated_streamflow.values, p2.simulated_streamflow.values)
        np.testing.assert_array_equal(p1.param_dpl_exphydro__smax.values, p2.param_dpl_exphydro__smax.values)
    # resuming with another configuration is refused, and nothing in the run changes
    before = _snapshot(killed)
    changed = _write(tmp_path / "changed.yml", {**TINY, "training": {**TINY["training"], "epochs": 5}})
    assert difhydro(["train", "--resume", str(killed), str(changed), "--data-dir", str(camels), "--quiet"]) == 2
    assert _snapshot(killed) == before


def test_foreign_folder_is_refused_and_left_intact(camels, tmp_path, capsys):
    cfg = _write(tmp_path / "tiny.yml", TINY)
    foreign = tmp_path / "my_thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("precious")
    (foreign / "data").mkdir()
    (foreign / "data" / "q.csv").write_text("1,2,3")
    before = _snapshot(foreign)
    assert difhydro(["train", str(cfg), "--data-dir", str(camels), "--out", str(foreign), "--quiet"]) == 2
    assert _snapshot(foreign) == before and (foreign / "chapter1.tex").read_text() == "precious"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-empty" in err[0], err
    # a bad data folder: refused before anything is created
    missing = tmp_path / "new_run"
    assert difhydro(["train", str(cfg), "--data-dir", str(tmp_path / "nowhere"), "--out", str(missing)]) == 2
    assert not missing.exists()


def test_a_failing_model_gives_a_non_zero_exit_status(camels, tmp_path):
    broken = {**TINY, "models": {"lstm": {"hidden_size": 0}, "exphydro_calibrated": {}}}
    cfg = _write(tmp_path / "broken.yml", broken)
    out = tmp_path / "run"
    assert difhydro(["train", str(cfg), "--data-dir", str(camels), "--out", str(out), "--quiet"]) == 1
    summary = (out / "summary.md").read_text()
    assert "Failed or not run" in summary and "hidden_size" in summary
    assert set(_metrics(out / "metrics.csv").model) == {"exphydro_calibrated"}  # the others still ran


@pytest.mark.parametrize("argv, words", [
    (["train", "nope.yml"], "not found"),
    (["train", "{cfg}", "--models", "gru"], "--models"),
    (["evaluate", "{tmp}"], "not a difhydro run directory"),
    (["predict", "{tmp}", "--data-dir", "x", "--period", "2000-01-01", "--out", "x.nc"], "run directory"),
])
def test_command_errors_are_one_line(argv, words, tmp_path, capsys):
    cfg = _write(tmp_path / "tiny.yml", TINY)
    argv = [a.format(cfg=cfg, tmp=tmp_path) for a in argv]
    assert difhydro(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_huge_pages_environment_adds_the_tunable_once(monkeypatch):
    from difhydro.experiment.cli import HUGE_PAGES_TUNABLE, huge_pages_environment

    glibc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else ""
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    supported = (glibc.startswith("glibc") and tuple(map(int, glibc.split()[1].split(".")[:2])) >= (2, 35)
                 and thp.is_file() and "[never]" not in thp.read_text())
    if not supported:
        assert huge_pages_environment({"PATH": "/bin"}) is None
        return
    env = huge_pages_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}
    # other tunables are kept; a set tunable or DIFHYDRO_HUGE_PAGES=0 leaves the process alone
    env = huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGE_PAGES_TUNABLE}"
    assert huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None
    assert huge_pages_environment({"DIFHYDRO_HUGE_PAGES": "0"}) is None
