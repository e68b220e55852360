"""The ``difhydro`` command: help, version, config listing and every argument check come out
before JAX, Flax or xarray are imported; each refusal is one line naming the option."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from difhydro.experiment.cli import main as difhydro
from difhydro.experiment.config import config_to_dict, load_config
from difhydro.experiment.rundir import MARKER

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"name": "tiny", "evaluations": ["temporal"], "models": {"lstm": {"hidden_size": 8}, "exphydro_calibrated": {}},
          "training": {"window": 200, "warmup": 100}}
HEAVY = ("jax", "flax", "optax", "xarray", "pandas", "equinox")


def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _fake_run(folder: Path) -> Path:
    """A run directory's marker and config.yml, as ``difhydro train`` writes them (no models)."""
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"difhydro": "0.2.0", "config_hash": "x"}))
    _write(folder / "config.yml", config_to_dict(load_config(CONFIG)))
    return folder


def _refused(argv, capsys, *words) -> str:
    code = difhydro([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, (code, err)
    for w in words:
        assert w in err[0], err
    return err[0]


def test_help_version_listing_and_argument_errors_import_no_jax(tmp_path):
    """Each call runs in one fresh interpreter; after each, none of JAX, Flax, optax,
    xarray, pandas or equinox has been imported."""
    cfg = _write(tmp_path / "c.yml", CONFIG)
    run = _fake_run(tmp_path / "run")
    calls = [
        ["--help"], ["--version"], ["train", "--help"], ["evaluate", "--help"], ["config"],
        ["train", _write(tmp_path / "bad.yml", {**CONFIG, "training": {"epochs": 0}})],  # out of range
        ["train", _write(tmp_path / "yaml.yml", "name: [x\n")],  # not YAML
        ["train", _write(tmp_path / "key.yml", {**CONFIG, "modls": {}})],  # unknown key
        ["train", _write(tmp_path / "model.yml", {**CONFIG, "models": {"gru": {}}})],  # unknown model
        ["train", cfg, "--models", "gru"],
        ["evaluate", run, "--models", "hybrid"],
        ["predict", run, "--data-dir", tmp_path, "--period", "2000-01-01", "--out", tmp_path / "p.nc"],
        ["predict", run, "--data-dir", tmp_path, "--period", "2000-01-01:2000-12-31", "--out", tmp_path / "p.nc",
         "--assimilate", "0"],
        ["finetune", run, "--out", run, "--period", "2000-01-01:2000-12-31"],
    ]
    script = (
        "import json, sys\n"
        "from difhydro.experiment.cli import main\n"
        "try:\n"
        "    code = main(json.loads(sys.argv[1]))\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for argv in calls:
        out = subprocess.run([sys.executable, "-c", script, json.dumps([str(a) for a in argv])], env=env,
                             capture_output=True, text=True, timeout=120)
        code, heavy = json.loads(out.stderr.strip().splitlines()[-1])
        assert heavy == [], (argv, heavy)
        assert code in (0, 2, None), (argv, code, out.stderr)
        if argv[0] in ("train", "evaluate", "predict") and "--help" not in argv:
            assert code == 2 and len(out.stderr.strip().splitlines()) == 2, (argv, out.stderr)  # one line + the probe


def test_importing_difhydro_and_its_registry_imports_no_jax():
    probe = ("import sys, difhydro\nfrom difhydro.hybrid import MODELS, model_options\n"
             "from difhydro.data import resolve_period, CAMELS_PERIODS\n"
             "import difhydro.experiment.config\n"
             "assert model_options('dpl_hbv')['components'] == 16 and 'lstm' in MODELS\n"
             f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
    # and every public name is still there, on first use
    import difhydro
    from difhydro.hybrid import HybridPRNN, register_model  # noqa: F401

    assert difhydro.load_run.__module__ == "difhydro.experiment.api" and difhydro.physics.ExpHydro


def test_version_flag_prints_the_package_version(capsys):
    import difhydro

    with pytest.raises(SystemExit) as exit_:
        difhydro.experiment.cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"difhydro {difhydro.__version__}"


def test_config_listing(capsys):
    assert difhydro(["config"]) == 0
    text = capsys.readouterr().out
    assert "data.folder.date_format = '%Y-%m-%d'" in text and "models.lstm.dropout = None" in text


# -- train ----------------------------------------------------------------------------------------

def test_train_models_must_be_configured_models(tmp_path, capsys):
    cfg = _write(tmp_path / "c.yml", CONFIG)
    empty = tmp_path / "data"
    empty.mkdir()
    # hybrid is in the registry but not in this config
    _refused(["train", cfg, "--data-dir", empty, "--models", "hybrid"], capsys, "--models", "'hybrid'", "lstm")
    _refused(["train", cfg, "--data-dir", empty, "--models", "lstm,lstm"], capsys, "--models", "twice")
    _refused(["train", cfg, "--data-dir", empty, "--models", "lstm,,exphydro_calibrated"], capsys, "--models", "empty")
    _refused(["train", cfg, "--data-dir", empty, "--models", "lstm_ensemble"], capsys, "--models")


def test_train_checks_files_and_job_options_first(tmp_path, capsys):
    cfg = _write(tmp_path / "c.yml", CONFIG)
    _refused(["train", cfg, "--data-dir", tmp_path / "nowhere"], capsys, "--data-dir")
    _refused(["train", cfg, "--basin-file", tmp_path / "none.txt", "--data-dir", tmp_path], capsys, "--basin-file")
    missing = _write(tmp_path / "m.yml", {**CONFIG, "data": {"basins": str(tmp_path / "ids.txt")}})
    _refused(["train", missing, "--data-dir", tmp_path], capsys, "data.basins", "not found")
    _refused(["train", cfg, "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], capsys, "--process-id")
    _refused(["train", cfg, "--coordinator", "h:1", "--num-processes", "0", "--process-id", "0"], capsys,
             "--num-processes")
    _refused(["train", _write(tmp_path / "n.yml", {**CONFIG, "name": "../escape"})], capsys, "name", "safe folder name")


# -- evaluate and predict: against the run's own config --------------------------------------------

def test_evaluate_checks_models_period_and_name_against_the_run(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    _refused(["evaluate", run, "--models", "hybrid"], capsys, "--models", "'hybrid'", "the run")
    _refused(["evaluate", run, "--period", "2000-01-01"], capsys, "--period", "both ends")
    _refused(["evaluate", run, "--period", "2000-02-30:2001-01-01"], capsys, "--period", "not a date")
    for name in ("../../elsewhere", "a/b", ".hidden", ""):
        _refused(["evaluate", run, "--name", name], capsys, "--name", "safe folder name")
    _refused(["evaluate", run, "--basin-file", tmp_path / "none.txt"], capsys, "--basin-file")
    _refused(["evaluate", tmp_path, "--models", "lstm"], capsys, "not a difhydro run directory")


def test_predict_checks_out_hot_start_and_models(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    common = ["predict", run, "--data-dir", tmp_path, "--period", "2000-01-01:2000-12-31"]
    _refused(common + ["--out", tmp_path / "sub" / "p.nc"], capsys, "--out", "does not exist")
    _refused(common + ["--out", tmp_path / "p.csv"], capsys, "--out", ".nc")
    _refused(common + ["--out", _write(tmp_path / "mine.nc", "x")], capsys, "--out", "exists")
    _refused(common + ["--out", tmp_path / "p.nc", "--hot-start", tmp_path / "old.nc"], capsys, "--hot-start")
    _refused(common + ["--out", tmp_path / "p.nc", "--models", "dpl_hbv"], capsys, "--models", "the run")
    assert not (tmp_path / "p.nc").exists()


def test_assimilate_and_finetune_check_their_options_first(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    common = ["predict", run, "--data-dir", tmp_path, "--period", "2000-01-01:2000-12-31", "--out", tmp_path / "p.nc"]
    _refused(common + ["--assimilate", "0"], capsys, "--assimilate", ">= 1")
    _refused(["evaluate", run, "--assimilate", "-3"], capsys, "--assimilate", ">= 1")
    old = _write(tmp_path / "old.nc", "x")
    _refused(common + ["--assimilate", "5", "--hot-start", old], capsys, "--assimilate", "--hot-start")
    ft = ["finetune", run]
    _refused(ft + ["--out", run, "--period", "2000-01-01:2000-12-31"], capsys, "--out", "never the source")
    _refused(ft + ["--out", tmp_path / "new"], capsys, "needs new data")
    _refused(ft + ["--out", tmp_path / "new", "--period", "2000-01-01"], capsys, "--period", "both ends")
    _refused(ft + ["--out", tmp_path / "new", "--config", tmp_path / "none.yml"], capsys, "--config")
    _refused(ft + ["--out", tmp_path / "new", "--period", "2000-01-01:2000-12-31", "--epochs", "0"], capsys,
             "--epochs")
    _refused(ft + ["--out", _write(tmp_path / "file", "x"), "--period", "2000-01-01:2000-12-31"], capsys, "--out")
    assert not (tmp_path / "new").exists()
