"""Run directories and the small rules around them (issue 19), without training: output
paths below a file, evaluation folders that never overwrite, file modes by the umask, data
checksums, figures without global matplotlib state, the config keys of early stopping,
undefined metrics, and where the data come from."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from difhydro.experiment.cli import main as difhydro
from difhydro.experiment.config import ConfigError, load_config
from difhydro.experiment.rundir import (
    RunDirError,
    changed_data_file,
    check_new_run_dir,
    claim_folder,
    data_checksums,
)

ROOT = Path(__file__).resolve().parents[1]


def test_out_below_a_regular_file_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        check_new_run_dir(tmp_path / "notes.txt" / "run")
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"name": "x"}))
    assert difhydro(["train", str(cfg), "--out", str(tmp_path / "notes.txt" / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt is a file" in err[0], err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_claim_folder_never_returns_an_existing_folder(tmp_path):
    assert claim_folder(tmp_path / "evaluation", None).name == "default"
    assert claim_folder(tmp_path / "evaluation", None).name == "default-2"
    assert claim_folder(tmp_path / "evaluation", None).name == "default-3"
    assert claim_folder(tmp_path / "evaluation", "later").name == "later"
    (tmp_path / "evaluation" / "later" / "metrics.csv").write_text("kept")
    with pytest.raises(RunDirError, match="exists"):
        claim_folder(tmp_path / "evaluation", "later")
    assert (tmp_path / "evaluation" / "later" / "metrics.csv").read_text() == "kept"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_get_the_mode_of_the_umask(tmp_path, mask):
    from difhydro._files import atomic_write_text
    from difhydro.experiment.outputs import write_metrics

    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_metrics(tmp_path / "metrics.csv", [{"basin": "1", "nse": 0.5}])
        with open(tmp_path / "plain.txt", "w") as f:  # what open() gives under this umask
            f.write("x")
    finally:
        os.umask(old)
    want = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert want == 0o666 & ~mask
    for name in ("a.txt", "metrics.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == want, name


def test_data_checksums_name_a_changed_file(tmp_path):
    from difhydro.experiment.data import data_files

    (tmp_path / "timeseries").mkdir()
    for b in ("A1", "B2", "C3"):
        (tmp_path / "timeseries" / f"{b}.csv").write_text(f"date,P\n2000-01-01,{len(b)}\n")
    (tmp_path / "attributes.csv").write_text("basin,lat\nA1,45\nB2,46\nC3,47\n")
    files = data_files(tmp_path, ["A1", "C3"])  # B2 is not read by this run
    assert sorted(str(p.relative_to(tmp_path)) for p in files) == ["attributes.csv", "timeseries/A1.csv",
                                                                    "timeseries/C3.csv"]
    recorded = data_checksums(tmp_path, files)
    import hashlib

    assert recorded["attributes.csv"]["sha256"] == hashlib.sha256(b"basin,lat\nA1,45\nB2,46\nC3,47\n").hexdigest()
    assert changed_data_file(tmp_path, recorded) is None
    (tmp_path / "timeseries" / "B2.csv").write_text("not read by the run")
    assert changed_data_file(tmp_path, recorded) is None
    (tmp_path / "timeseries" / "C3.csv").write_text("date,P\n2000-01-01,9\n")  # same size, other bytes
    assert "C3.csv changed" in changed_data_file(tmp_path, recorded) and "SHA-256" in changed_data_file(tmp_path, recorded)
    (tmp_path / "timeseries" / "C3.csv").unlink()
    assert "C3.csv is gone" in changed_data_file(tmp_path, recorded)


def test_importing_difhydro_and_drawing_leave_the_matplotlib_backend_alone(tmp_path):
    code = (
        "import matplotlib, sys; matplotlib.use('svg'); import difhydro, difhydro.experiment.plots as p\n"
        "b1 = matplotlib.get_backend()\n"
        "p.metric_cdf({'m': [0.1, 0.5, 0.9]}, sys.argv[1])\n"
        "print(b1, matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cdf.png")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout.split()
    assert out == ["svg", "svg", "False"]
    assert (tmp_path / "cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("values, words", [
    ({"periods": {"train": "2000-01-01:2004-12-31", "validation": "2004-06-01:2005-12-31"}},
     "periods.validation: 2004-06-01:2005-12-31 overlaps periods.train"),
    ({"periods": {"test": "1990-01-01:1999-12-31", "validation": "1999-01-01:1999-12-31"}},
     "overlaps periods.test"),
    ({"training": {"patience": 0}, "periods": {"validation": "2010-01-01:2011-12-31"}}, "training.patience: must be"),
    ({"training": {"patience": 3}}, "training.patience: early stopping needs a validation period"),
    ({"training": {"monitor": "nash"}}, "training.monitor: 'nash' is not accepted"),
    ({"training": {"validate_every": 0}}, "training.validate_every: must be >= 1"),
    ({"models": {"lstm": {"training": {"patience": 2}}}}, "models.lstm.training.patience: early stopping needs"),
])
def test_early_stopping_keys_are_checked_in_one_line(values, words):
    with pytest.raises(ConfigError) as err:
        load_config(values)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_early_stopping_keys_reach_the_trainer():
    from difhydro.experiment.run import train_config
    from difhydro.training.trainer import improves

    cfg = load_config({"periods": {"validation": "2010-01-01:2011-12-31"},
                       "training": {"patience": 2, "monitor": "kge", "validate_every": 3}})
    assert cfg.periods["validation"] == ("2010-01-01", "2011-12-31")
    t = train_config(cfg.training, seed=7, progress=False)
    assert (t.monitor, t.patience, t.seed) == ("kge", 2, 7)
    assert t.validate_every == 3
    assert load_config({}).training.monitor == "nse" and load_config({}).training.patience is None
    # the kept epoch is the Trainer's (tests/test_trainer_loop.py); the first of a tie stays kept
    assert not improves(0.5, 0.5, "max") and improves(0.6, 0.5, "max") and improves(0.5, 0.6, "min")
    assert train_config(load_config({"training": {"monitor": "loss"}}).training, 0, False).direction == "min"


def test_undefined_metrics_are_nan_counted_and_never_inf():
    from difhydro.experiment import reporting
    from difhydro.experiment.outputs import summary_table

    obs = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], [1.0, np.nan, 5.0, 2.0]], np.float32)
    sim = np.array([[1.0, 2.0, 3.0, 5.0], [1.0, 2.0, 3.0, 2.0], [1.0, 1.0, 4.0, 2.0]], np.float32)
    rows = reporting.metric_rows(evaluation="e", fold=0, model="m", seed=0, basins=["a", "b", "c"], simulated=sim,
                                 observed=obs, spin_up_in_period=1)
    table = pd.DataFrame(rows)
    # basin a, days 2-4 scored: NSE = 1 - 1 / 2 (independent: SSE 1, variance sum 2)
    assert table.nse[0] == pytest.approx(0.5) and table.days.tolist() == [3, 3, 2]
    assert np.isnan(table.nse[1])  # a constant observed series: NSE undefined
    lines = "\n".join(summary_table(table) + reporting.undefined_lines(table))
    assert "undefined for NSE 1, KGE 1," in lines and "inf" not in lines
    only_undefined = table.iloc[[1]]
    assert "| undefined |" in "\n".join(summary_table(only_undefined))


def test_the_package_does_not_look_for_shared_data_but_the_main_job_script_does(monkeypatch):
    from difhydro.experiment.data import resolve_source

    monkeypatch.delenv("DIFHYDRO_DATA_DIR", raising=False)
    kind, folder, note = resolve_source(load_config({}))
    assert (kind, folder) == ("twin", None) and "SYNTHETIC TWIN" in note
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import camels_regional
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert camels_regional.default_data_dir({"DIFHYDRO_DATA_DIR": "/data"}) is None
    expected = str(camels_regional.SHARED_DATA) if camels_regional.SHARED_DATA.is_dir() else None
    assert camels_regional.default_data_dir({}) == expected
