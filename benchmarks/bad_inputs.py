"""Bad inputs, tried as a new user would, and what difhydro does with each.

``python benchmarks/bad_inputs.py [--data-dir ../shared/data] [--out docs/bad_inputs.md]``
runs every case of :data:`CASES` and writes the table: the input, what happened (the
error's first line, or the reported policy) and the verdict. A case passes when it raises
a clear error (one line naming the variable, file, option or key) or applies an explicit,
reported policy; a silent result fails it. ``tests/test_bad_inputs.py`` runs the same
cases.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
G = "01022500"  # a CAMELS basin in both shared subsets


class Handled(Exception):
    """An explicit, reported policy (not an error)."""


# -- helpers --------------------------------------------------------------------------------


def caravan_copy(data: Path, tmp: Path, edit=None, basins=(G, "01333000", "02046000"), tables=None) -> Path:
    """A Caravan folder with a few basins; ``edit(frame)`` changes the first basin's CSV."""
    src = data / "camels_caravan"
    dst = tmp / "caravan"
    (dst / "timeseries" / "csv" / "camels").mkdir(parents=True)
    (dst / "attributes" / "camels").mkdir(parents=True)
    for b in basins:
        shutil.copy(src / "timeseries" / "csv" / "camels" / f"camels_{b}.csv", dst / "timeseries" / "csv" / "camels")
    for table in (src / "attributes" / "camels").glob("*.csv"):
        if tables is None or any(t in table.name for t in tables):
            shutil.copy(table, dst / "attributes" / "camels")
    if edit is not None:
        path = dst / "timeseries" / "csv" / "camels" / f"camels_{basins[0]}.csv"
        edit(path)
    return dst


def edit_csv(change):
    def edit(path):
        frame = pd.read_csv(path)
        change(frame)
        frame.to_csv(path, index=False, float_format="%.6g")
    return edit


def at(column, row, value):
    """An edit that puts ``value`` in ``column`` on data row ``row`` of a CSV."""
    return edit_csv(lambda f: f.__setitem__(column, f[column].where(f.index != row, value)))


def cut_file(fraction=0.5, mid_line=False):
    def edit(path):
        text = path.read_text()
        cut = int(len(text) * fraction)
        text = text[:cut] if mid_line else text[: text.rfind("\n", 0, cut) + 1]
        path.write_text(text)
    return edit


def load_caravan_dir(folder, **kw):
    from difhydro.data import load_caravan

    ds = load_caravan(folder, cache_dir=None, **kw)
    report = ds.attrs.get("validation_report", "")
    raise Handled(f"loaded; validation report: {str(report)[:160]}")


def cli(*argv):
    """Run the difhydro command; an exit status 2 with one stderr line is a clear error."""
    from difhydro.experiment.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code == 2 and lines:
        raise SystemExit(lines[0])
    raise Handled(f"exit {code}: {lines[0] if lines else 'no message'}")


def config(tmp: Path, **changes) -> Path:
    cfg = {"name": "bad", "data": {"basins": [G, "01333000", "02046000"]}, "evaluations": ["temporal"],
           "models": {"exphydro_calibrated": {}}, "training": {"calibration_steps": 2, "window": 100, "warmup": 50}}
    for k, v in changes.items():
        node = cfg
        *parents, last = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    path = tmp / "cfg.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def simulate_with(forcing_change=None, params_change=None):
    import jax.numpy as jnp

    from difhydro.physics import ExpHydro, simulate

    model = ExpHydro()
    forcing = {"precipitation": np.full((10, 2), 2.0), "temperature": np.full((10, 2), 5.0),
               "day_length": np.full((10, 2), 12.0)}
    params = model.default_params((2,))
    if forcing_change:
        forcing_change(forcing)
    if params_change:
        params_change(params)
    simulate(model, {k: jnp.asarray(v) for k, v in params.items()}, forcing)
    raise Handled("simulated without complaint")


def validate_with(change, policies=None, required=None):
    from difhydro.data import fulda_twin, validate
    from difhydro.physics import ExpHydro

    ds = fulda_twin(ExpHydro(), n_basins=3, seed=0, noise=0.0)
    change(ds)
    _, report = validate(ds, policies=policies, required_attributes=required)
    raise Handled("; ".join(report.summary_lines())[:200])


# -- the cases ------------------------------------------------------------------------------


def cases(data: Path):
    camels = data / "camels_us"

    def v(var, value, where=(0, slice(100, 101))):
        def change(ds):
            ds[var].values[where] = value
        return change

    return [
        # files
        ("-999 in a Caravan precipitation column", lambda t: load_caravan_dir(caravan_copy(data, t, at("total_precipitation_sum", 500, -999.0)))),
        ("-9999 in a Caravan streamflow column", lambda t: load_caravan_dir(caravan_copy(data, t, at("streamflow", 600, -9999.0)))),
        ("a Caravan CSV cut at a line break (a shorter record)", lambda t: load_caravan_dir(caravan_copy(data, t, cut_file(0.5)))),
        ("a Caravan CSV cut in the middle of a line", lambda t: load_caravan_dir(caravan_copy(data, t, cut_file(0.5, True)))),
        ("a Caravan CSV with ';' as delimiter", lambda t: load_caravan_dir(caravan_copy(data, t, lambda p: p.write_text(p.read_text().replace(",", ";"))))),
        ("text in a numeric Caravan column", lambda t: load_caravan_dir(caravan_copy(data, t, at("temperature_2m_mean", 400, "warm")))),
        ("a Caravan CSV without its header line", lambda t: load_caravan_dir(caravan_copy(data, t, lambda p: p.write_text(p.read_text().split("\n", 1)[1])))),
        ("a duplicated date in a Caravan CSV", lambda t: load_caravan_dir(caravan_copy(data, t, lambda p: p.write_text(_duplicate_line(p.read_text(), 300))))),
        ("unordered dates in a Caravan CSV", lambda t: load_caravan_dir(caravan_copy(data, t, lambda p: p.write_text(_swap_lines(p.read_text(), 300))))),
        ("+inf in a Caravan temperature column", lambda t: load_caravan_dir(caravan_copy(data, t, at("temperature_2m_mean", 700, np.inf)))),
        ("negative precipitation in a Caravan file", lambda t: load_caravan_dir(caravan_copy(data, t, at("total_precipitation_sum", 700, -3.0)))),
        ("temperatures in Kelvin in a Caravan file", lambda t: load_caravan_dir(caravan_copy(data, t, edit_csv(lambda f: f.__setitem__("temperature_2m_mean", f["temperature_2m_mean"] + 273.15))))),
        ("negative streamflow in a Caravan file", lambda t: load_caravan_dir(caravan_copy(data, t, at("streamflow", 800, -1.0)))),
        ("two of the three Caravan attribute tables missing", lambda t: cli("train", config(t), "--data-dir", caravan_copy(data, t, tables=["other"]))),
        ("a NaN attribute (required by the networks)", lambda t: validate_with(lambda ds: ds["attribute_0"].values.__setitem__(0, np.nan), required=["attribute_0"])),
        ("a NaN attribute with an explicit impute policy", lambda t: validate_with(lambda ds: ds["attribute_0"].values.__setitem__(0, np.nan), policies={"attribute_0": "impute"}, required=["attribute_0"])),
        ("a 2-day forcing gap with an interpolate policy", lambda t: validate_with(v("precipitation", np.nan, (0, slice(100, 102))), policies={"precipitation": "interpolate:3"})),
        ("a 20-day forcing gap with an interpolate policy (max gap 3)", lambda t: validate_with(v("precipitation", np.nan, (0, slice(100, 120))), policies={"precipitation": "interpolate:3"})),
        ("a forcing gap (default policy)", lambda t: validate_with(v("temperature", np.nan))),
        ("-999 in forcing reaching the validation pass", lambda t: validate_with(v("precipitation", -999.0))),
        ("a 20-day forcing gap at prediction time (no interpolation)", lambda t: _predict_with_gap(t, data)),
        # the physics API
        ("NaN in forcing passed to simulate", lambda t: simulate_with(lambda f: f["precipitation"].__setitem__((3, 0), np.nan))),
        ("+inf in forcing passed to simulate", lambda t: simulate_with(lambda f: f["temperature"].__setitem__((3, 0), np.inf))),
        ("-999 in forcing passed to simulate", lambda t: simulate_with(lambda f: f["precipitation"].__setitem__((3, 0), -999.0))),
        ("a parameter outside its box", lambda t: simulate_with(params_change=lambda p: p.__setitem__("smax", np.full(2, 5000.0)))),
        ("a forcing variable missing", lambda t: simulate_with(lambda f: f.pop("day_length"))),
        ("forcing arrays of different shapes", lambda t: simulate_with(lambda f: f.__setitem__("temperature", np.full((9, 2), 5.0)))),
        ("a time-varying parameter not declared as such", lambda t: _undeclared_time_varying()),
        ("an unknown model name", lambda t: _build("transformer_xl")),
        ("an unknown model option", lambda t: _build("lstm", hidden=4)),
        ("an unknown loss name", lambda t: _loss("kge_loss")),
        ("warm-up as long as the window", lambda t: _window(100, 100)),
        ("a period that ends before it starts (API)", lambda t: _period(("2000-01-01", "1999-01-01"))),
        # configs and the command line
        ("periods.train without an end (1999-10-01)", lambda t: cli("train", config(t, **{"periods.train": "1999-10-01"}))),
        ("periods.train with month 13", lambda t: cli("train", config(t, **{"periods.train": "1999-13-01:2008-09-30"}))),
        ("a reversed period", lambda t: cli("train", config(t, **{"periods.train": "2008-09-30:1999-10-01"}))),
        ("an unknown config key", lambda t: cli("train", config(t, modls={}))),
        ("a wrong type (epochs: 'ten')", lambda t: cli("train", config(t, **{"training.epochs": "ten"}))),
        ("an unknown model in the config", lambda t: cli("train", config(t, models={"gru": {}}))),
        ("an unknown model option in the config", lambda t: cli("train", config(t, models={"lstm": {"hidden": 3}}))),
        ("an unknown attribute", lambda t: cli("train", config(t, **{"data.attributes": ["no_such"]}), "--data-dir", camels)),
        ("an unknown policy", lambda t: cli("train", config(t, **{"data.policies": {"precipitation": "fill"}}))),
        ("a YAML syntax error", lambda t: cli("train", _write(t / "broken.yml", "name: [bad\n"))),
        ("a config file that does not exist", lambda t: cli("train", t / "missing.yml")),
        ("--data-dir that does not exist", lambda t: cli("train", config(t), "--data-dir", t / "nowhere", "--out", t / "run")),
        ("--data-dir with an unknown layout", lambda t: cli("train", config(t), "--data-dir", t, "--out", t / "run")),
        ("--basin-file that does not exist", lambda t: cli("train", config(t), "--basin-file", t / "none.txt")),
        ("an unknown basin in --basin-file", lambda t: cli("train", config(t), "--data-dir", camels, "--basin-file", _write(t / "b.txt", "99999999\n"))),
        ("--models with an unknown name", lambda t: cli("train", config(t), "--models", "gru")),
        ("--out a non-empty folder difhydro did not create", lambda t: cli("train", config(t), "--data-dir", camels, "--out", _foreign(t))),
        ("--out an existing run directory without --resume", lambda t: cli("train", config(t), "--data-dir", camels, "--out", _run_dir(t))),
        ("--out . (the current folder, not empty)", lambda t: cli("train", config(t), "--data-dir", camels, "--out", ROOT)),
        ("--resume with a changed configuration", lambda t: cli("train", "--resume", _run_dir(t), config(t, **{"training.calibration_steps": 3}), "--data-dir", camels)),
        ("--resume of a folder that is not a run", lambda t: cli("train", "--resume", t)),
        ("overlapping train and test periods", lambda t: _overlap(t, camels)),
        ("evaluate on a folder that is not a run", lambda t: cli("evaluate", t)),
        ("predict without --period", lambda t: cli("predict", t, "--data-dir", camels, "--out", t / "x.nc")),
        ("predict with --period missing its end", lambda t: cli("predict", _run_dir(t), "--data-dir", camels, "--period", "2000-01-01", "--out", t / "x.nc")),
        ("predict --out a file that exists", lambda t: cli("predict", _run_dir(t), "--data-dir", camels, "--period", "1990-01-01:1990-12-31", "--out", _write(t / "x.nc", "mine"))),
        ("a model that fails during training", lambda t: cli("train", config(t, models={"lstm": {"hidden_size": 0}}), "--data-dir", camels, "--out", t / "run", "--quiet")),
        ("a generic folder with unknown units", lambda t: _folder_units(t)),
        # -- config and command line (issue 19)
        ("training.learning_rate: 0", lambda t: cli("train", config(t, **{"training.learning_rate": 0.0}))),
        ("training.learning_rate: .nan", lambda t: cli("train", config(t, **{"training.learning_rate": np.nan}))),
        ("training.learning_rate: 1e-3 (text to YAML)", lambda t: cli("train", config(t, **{"training.learning_rate": "1e-3"}))),
        ("training.clip_norm: 0", lambda t: cli("train", config(t, **{"training.clip_norm": 0.0}))),
        ("training.epochs: 3.0 (a float for an integer)", lambda t: cli("train", config(t, **{"training.epochs": 3.0}))),
        ("training.epochs: true", lambda t: cli("train", config(t, **{"training.epochs": True}))),
        ("training.batch_size: null", lambda t: cli("train", config(t, **{"training.batch_size": None}))),
        ("training.warmup as long as training.window", lambda t: cli("train", config(t, **{"training.warmup": 100}))),
        ("training.min_observations: 0", lambda t: cli("train", config(t, **{"training.min_observations": 0}))),
        ("peers.threads: 0", lambda t: cli("train", config(t, **{"peers.threads": 0}))),
        ("folds: 1 with the kfold evaluation", lambda t: cli("train", config(t, evaluations=["temporal", "kfold"], folds=1))),
        ("a seed listed twice", lambda t: cli("train", config(t, seeds=[0, 0]))),
        ("a negative seed", lambda t: cli("train", config(t, seeds=[-1]))),
        ("an evaluation listed twice", lambda t: cli("train", config(t, evaluations=["temporal", "temporal"]))),
        ("an attribute listed twice", lambda t: cli("train", config(t, **{"data.attributes": ["area", "area"]}))),
        ("an input listed twice", lambda t: cli("train", config(t, **{"data.inputs": ["precipitation", "precipitation"]}))),
        ("a model listed twice in kfold_models", lambda t: cli("train", config(t, kfold_models=["exphydro_calibrated"] * 2))),
        ("basin ids written as numbers (YAML drops the leading 0)", lambda t: cli("train", config(t, **{"data.basins": [1013500]}))),
        ("a basin file in data.basins that does not exist", lambda t: cli("train", config(t, **{"data.basins": str(t / "ids.txt")}))),
        ("a model named lstm_ensemble (reserved)", lambda t: cli("train", config(t, models={"lstm_ensemble": {}}))),
        ("a model named nh_cudalstm (reserved)", lambda t: cli("train", config(t, models={"nh_cudalstm": {}}))),
        ("name: ../../escape", lambda t: cli("train", config(t, name="../../escape"))),
        ("name: .hidden", lambda t: cli("train", config(t, name=".hidden"))),
        ("an unknown key in data.folder", lambda t: cli("train", config(t, **{"data.folder": {"variabels": {"precipitation": "P"}}}))),
        ("units for a variable not in data.folder.variables", lambda t: cli("train", config(t, **{"data.folder": {
            "variables": {"precipitation": "P"}, "units": {"precipitation": "mm/d", "temperatur": "degC"}}}))),
        ("an unknown key in models.<m>.training", lambda t: cli("train", config(t, models={"exphydro_calibrated": {"training": {"step": 3}}}))),
        ("a model option of the wrong type (hidden_size: 'abc')", lambda t: cli("train", config(t, models={"lstm": {"hidden_size": "abc"}}))),
        ("a negative model option (hidden_size: -3)", lambda t: cli("train", config(t, models={"lstm": {"hidden_size": -3}}))),
        ("lstm dropout: 1.5", lambda t: cli("train", config(t, models={"lstm": {"dropout": 1.5}}))),
        ("a policy interpolate:x", lambda t: cli("train", config(t, **{"data.policies": {"precipitation": "interpolate:x"}}))),
        ("a policy mapping with an unknown field", lambda t: cli("train", config(t, **{"data.policies": {"pet": {"clamp": [0, None]}}}))),
        ("a key given twice in one YAML mapping", lambda t: cli("train", _write(t / "dup.yml", "name: a\ntraining: {epochs: 2}\nname: b\n"))),
        ("a YAML list instead of a mapping", lambda t: cli("train", _write(t / "list.yml", "- name: a\n"), "--data-dir", t)),
        ("--models not among the configured models", lambda t: cli("train", config(t), "--data-dir", t, "--models", "lstm")),
        ("--models with a name twice", lambda t: cli("train", config(t), "--data-dir", t, "--models", "exphydro_calibrated,exphydro_calibrated")),
        ("--num-processes 0", lambda t: cli("train", config(t), "--coordinator", "localhost:1", "--num-processes", "0", "--process-id", "0")),
        ("evaluate --models of a model the run did not train", lambda t: cli("evaluate", _run_dir(t), "--models", "lstm")),
        ("evaluate --name ../../elsewhere", lambda t: cli("evaluate", _run_dir(t), "--name", "../../elsewhere")),
        ("evaluate --period missing its end", lambda t: cli("evaluate", _run_dir(t), "--period", "2000-01-01")),
        ("evaluate --basin-file that does not exist", lambda t: cli("evaluate", _run_dir(t), "--basin-file", t / "none.txt")),
        ("predict --out in a folder that does not exist", lambda t: cli("predict", _run_dir(t), "--data-dir", camels, "--period", "1990-01-01:1990-12-31", "--out", t / "no" / "p.nc")),
        ("predict --hot-start that does not exist", lambda t: cli("predict", _run_dir(t), "--data-dir", camels, "--period", "1990-01-01:1990-12-31", "--out", t / "p.nc", "--hot-start", t / "old.nc")),
        ("predict --models of a model the run did not train", lambda t: cli("predict", _run_dir(t), "--data-dir", camels, "--period", "1990-01-01:1990-12-31", "--out", t / "p.nc", "--models", "dpl_hbv")),
        # -- run directories, evaluate, predict (issue 19)
        ("--out below an existing regular file", lambda t: cli("train", config(t), "--data-dir", camels, "--out", _write(t / "notes.txt", "mine") / "run")),
        ("evaluate --name of an evaluation that exists", lambda t: _evaluate_twice(t)),
        ("--resume over a truncated result file", lambda t: _resume_truncated(t)),
        ("--resume after a data file changed", lambda t: _resume_changed_data(t, camels)),
        ("periods.validation overlapping periods.train", lambda t: cli("train", config(t, **{"periods.train": "1999-10-01:2004-09-30", "periods.validation": "2004-01-01:2005-09-30"}))),
        ("training.patience without a validation period", lambda t: cli("train", config(t, **{"training.patience": 3}))),
        ("training.monitor that is not a metric", lambda t: cli("train", config(t, **{"training.monitor": "nash"}))),
        ("predict a period reaching beyond the data", lambda t: _predict_beyond(t, camels)),
        ("predict --hot-start from states that do not precede the period", lambda t: _hot_start_same_period(t, camels)),
        # -- physically implausible data (issue 19)
        ("streamflow in ft3 s-1 declared as m3 s-1 (generic folder)", lambda t: _folder_from_caravan(t, data, q_units="m3 s-1", q_factor="cfs")),
        ("streamflow in ft3 s-1 read as mm d-1 (generic folder)", lambda t: _folder_from_caravan(t, data, q_units="mm d-1", q_factor="cfs")),
        ("precipitation in m read as mm (a Caravan file)", lambda t: load_caravan_dir(caravan_copy(data, t, edit_csv(lambda f: f.__setitem__("total_precipitation_sum", f["total_precipitation_sum"] / 1000.0))))),
        ("more streamflow than precipitation (Q/P 1.3, a real possibility)", lambda t: _plausibility_notes(caravan_copy(data, t, edit_csv(lambda f: f.__setitem__("streamflow", f["streamflow"] * 1.3 / 0.67))))),
        ("latitude and longitude swapped in a Caravan attribute table", lambda t: load_caravan_dir(_swap_coordinates(caravan_copy(data, t)))),
        ("latitude and longitude swapped in a generic folder", lambda t: _folder_from_caravan(t, data, swap=True)),
        ("a netCDF units attribute contradicting the configured units", lambda t: _folder_from_caravan(t, data, netcdf_p_units="m")),
        ("a constant observed streamflow series (NSE undefined)", lambda t: _plausibility_notes(None, lambda ds: ds["streamflow"].values.__setitem__(0, 0.0))),
        ("NSE of a constant observed series", lambda t: _nse_of_constant()),
        ("negative precipitation passed to simulate", lambda t: simulate_with(lambda f: f["precipitation"].__setitem__((3, 0), -1.0))),
        ("negative PET passed to simulate (ERA5-Land, unclipped)", lambda t: _hbv_with_pet(-0.3)),
        ("data.pet: data on Caravan (ERA5-Land's negative PET on condensation days)", lambda t: cli("train", config(t, **{"data.format": "caravan", "data.pet": "data"}), "--data-dir", caravan_copy(data, t))),
        ("temperatures in Kelvin passed to simulate", lambda t: simulate_with(lambda f: f["temperature"].__iadd__(273.15))),
    ]


def _run_copy(t: Path) -> Path:
    copy = t / "run"
    shutil.copytree(_run_dir(t), copy)
    return copy


def _evaluate_twice(t):
    from difhydro.experiment.cli import main

    run = _run_copy(t)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["evaluate", str(run), "--name", "later", "--quiet"]) == 0
    return cli("evaluate", run, "--name", "later", "--quiet")


def _resume_truncated(t):
    run = _run_copy(t)
    result = next((run / "models").rglob("result.npz"))
    result.write_bytes(result.read_bytes()[:500])
    return cli("train", "--resume", run, "--quiet")


def _resume_changed_data(t, camels):
    """A run on a copy of three basins' files; one forcing file changes before the resume."""
    from difhydro.experiment.cli import main

    data = t / "camels"
    shutil.copytree(camels / "camels_attributes_v2.0", data / "camels_attributes_v2.0")
    for sub in ("basin_mean_forcing", "usgs_streamflow"):
        for path in (camels / sub).rglob("*.txt"):
            if path.name.split("_")[0] in (G, "01333000", "02046000"):
                (data / path.relative_to(camels)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, data / path.relative_to(camels))
    run = t / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", str(config(t)), "--data-dir", str(data), "--out", str(run), "--quiet"]) == 0
    forcing = next(data.rglob(f"{G}_lump_*forcing_leap.txt"))
    forcing.write_text(forcing.read_text().replace("\t0.00\t", "\t0.01\t", 1))
    return cli("train", "--resume", run, "--quiet")


def _predict_beyond(t, camels):
    from difhydro import load_run

    said = []
    load_run(_run_dir(t)).predict(data_dir=camels, basins=[G], period="2014-01-01:2016-12-31", progress=False,
                                  log=said.append)
    raise Handled(said[0] if said else "predicted without a word")


def _hot_start_same_period(t, camels):
    from difhydro.experiment.cli import main

    first = t / "first.nc"
    argv = ["predict", str(_run_dir(t)), "--data-dir", str(camels), "--period", "1990-01-01:1990-12-31", "--quiet",
            "--basin-file", str(_write(t / "b.txt", G + "\n"))]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv + ["--out", str(first)]) == 0
    return cli(*argv, "--out", t / "second.nc", "--hot-start", first)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _duplicate_line(text, k):
    lines = text.split("\n")
    return "\n".join(lines[: k + 1] + [lines[k]] + lines[k + 1:])


def _swap_lines(text, k):
    lines = text.split("\n")
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    return "\n".join(lines)


def _foreign(t: Path) -> Path:
    folder = t / "thesis"
    folder.mkdir()
    (folder / "chapter.tex").write_text("mine")
    return folder


_RUN = {}


def _run_dir(t: Path) -> Path:
    """A small finished run (made once per session)."""
    if "dir" not in _RUN:
        base = Path(tempfile.mkdtemp(prefix="difhydro_bad_inputs_"))
        atexit.register(shutil.rmtree, base, ignore_errors=True)  # the folder this script made
        run = base / "run"
        from difhydro.experiment.cli import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["train", str(config(base)), "--data-dir", str(_RUN["camels"]), "--out", str(run), "--quiet"])
        assert code == 0, code
        _RUN["dir"] = run
    return _RUN["dir"]


def _overlap(t, camels):
    from difhydro.experiment.config import load_config
    from difhydro.experiment.data import prepare_data

    cfg = load_config(config(t, **{"periods.train": "1995-10-01:2000-09-30", "periods.test": "1999-10-01:2002-09-30",
                                   "data.dir": str(camels)}))
    notes = [n for n in prepare_data(cfg).notes if "overlaps" in n]
    raise Handled(notes[0] if notes else "no warning")


def _predict_with_gap(t, data):
    folder = caravan_copy(data, t, edit_csv(lambda f: f.__setitem__(
        "total_precipitation_sum", f["total_precipitation_sum"].where(~f.date.between("2010-03-01", "2010-03-20")))))
    run = _run_dir(t)
    return cli("predict", run, "--data-dir", folder, "--period", "2010-01-01:2010-12-31", "--out", t / "p.nc",
               "--basin-file", _write(t / "b.txt", G + "\n"))


def _undeclared_time_varying():
    import jax.numpy as jnp

    from difhydro.hybrid import run_physics
    from difhydro.physics import HBV

    model = HBV()
    params = {k: jnp.full((2,), s.typical) for k, s in model.param_spec.items()}
    params["beta"] = jnp.full((2, 10), 2.0)
    forcing = {k: jnp.ones((2, 10)) for k in model.forcing_names}
    run_physics(model, params, forcing)
    raise Handled("ran")


def _build(name, **options):
    from difhydro.hybrid import build_model

    build_model(name, **options)
    raise Handled("built")


def _loss(name):
    from difhydro.training import LossTerm

    LossTerm(name)
    raise Handled("accepted")


def _window(window, warmup):
    from difhydro.data import fit_normalization, fulda_twin, make_basin_data
    from difhydro.physics import ExpHydro

    ds = fulda_twin(ExpHydro(), n_basins=2)
    stats = fit_normalization(ds, ["precipitation"], [], ("1980-01-01", "1981-12-31"))
    make_basin_data(ds, stats, ("1980-01-01", "1981-12-31"), window=window, warmup=warmup)
    raise Handled("made")


def _period(period):
    from difhydro.data import resolve_period

    resolve_period(period)
    raise Handled("accepted")


def _folder_units(t):
    from difhydro.data import load_folder

    folder = t / "mine"
    (folder / "timeseries").mkdir(parents=True)
    pd.DataFrame({"date": pd.date_range("2000-01-01", periods=30), "P": 1.0, "T": 5.0, "Q": 0.5}).to_csv(
        folder / "timeseries" / "a.csv", index=False)
    pd.DataFrame({"basin": ["a"], "lat": [45.0]}).to_csv(folder / "attributes.csv", index=False)
    load_folder(folder, variables={"precipitation": "P", "temperature": "T", "streamflow": "Q"},
                units={"precipitation": "furlongs", "temperature": "degC", "streamflow": "mm d-1"}, latitude="lat")
    raise Handled("loaded")


def _folder_from_caravan(t: Path, data: Path, q_units="mm d-1", q_factor=None, swap=False, netcdf_p_units=None):
    """A generic folder with basin G's Caravan record (mm d-1, degC): streamflow scaled to
    another unit (``q_factor="cfs"``) but declared in ``q_units``, coordinates swapped, or
    written as netCDF whose precipitation carries ``netcdf_p_units`` as its units attribute."""
    import xarray as xr

    from difhydro.data import load_folder

    frame = pd.read_csv(data / "camels_caravan" / "timeseries" / "csv" / "camels" / f"camels_{G}.csv")
    other = pd.read_csv(data / "camels_caravan" / "attributes" / "camels" / "attributes_other_camels.csv")
    row = other.set_index("gauge_id").loc[f"camels_{G}"]
    folder = t / "mine"
    (folder / "timeseries").mkdir(parents=True)
    frame = frame.rename(columns={"total_precipitation_sum": "P", "temperature_2m_mean": "T", "streamflow": "Q"})
    if q_factor == "cfs":  # mm d-1 -> ft3 s-1 for the basin's area
        frame["Q"] = frame["Q"] * float(row["area"]) / (0.0283168466 * 86.4)
    frame = frame[["date", "P", "T", "Q"]]
    lat, lon = float(row["gauge_lat"]), float(row["gauge_lon"])
    pd.DataFrame({"basin": [G], "lat": [lon if swap else lat], "lon": [lat if swap else lon],
                  "area": [float(row["area"])]}).to_csv(folder / "attributes.csv", index=False)
    units = {"precipitation": "mm/d", "temperature": "degC", "streamflow": q_units}
    if netcdf_p_units is None:
        frame.to_csv(folder / "timeseries" / f"{G}.csv", index=False)
    else:
        nc = xr.Dataset.from_dataframe(frame.assign(date=pd.to_datetime(frame["date"])).set_index("date"))
        nc["P"].attrs["units"] = netcdf_p_units
        nc.to_netcdf(folder / "timeseries" / f"{G}.nc")
    ds = load_folder(folder, variables={"precipitation": "P", "temperature": "T", "streamflow": "Q"}, units=units,
                     latitude="lat", longitude="lon", area="area", policies={"streamflow": "mask"})
    raise Handled(f"loaded; {ds.attrs.get('validation', '')[:160]}")


def _plausibility_notes(caravan_folder=None, change=None):
    """Load a Caravan folder (or change a twin) and report the plausibility flags it raised."""
    from difhydro.data import ValidationReport, fulda_twin, load_caravan, validate
    from difhydro.data.plausibility import CHECKS
    from difhydro.physics import ExpHydro

    if caravan_folder is not None:
        report = ValidationReport.from_dataset(load_caravan(caravan_folder))
    else:
        ds = fulda_twin(ExpHydro(), n_basins=3, seed=0, noise=0.0)
        change(ds)
        report = validate(ds)[1]
    flags = [n for n in report.notes if n.split(" ")[0] in CHECKS and "policy" in n]
    raise Handled("loaded, flagged: " + ("; ".join(flags) if flags else "nothing"))


def _swap_coordinates(folder: Path) -> Path:
    path = folder / "attributes" / "camels" / "attributes_other_camels.csv"
    table = pd.read_csv(path, dtype={"gauge_id": str})
    hit = table["gauge_id"] == f"camels_{G}"
    table.loc[hit, ["gauge_lat", "gauge_lon"]] = table.loc[hit, ["gauge_lon", "gauge_lat"]].to_numpy()
    table.to_csv(path, index=False)
    return folder


def _nse_of_constant():
    from difhydro.training.metrics import nse

    value = float(nse(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])))
    raise Handled(f"nse = {value} (undefined, not -inf; the validation flags the series as constant_streamflow)")


def _hbv_with_pet(value):
    from difhydro.physics import HBV, simulate

    model = HBV()
    forcing = {"precipitation": np.full((10, 2), 2.0), "temperature": np.full((10, 2), 5.0), "pet": np.full((10, 2), 1.0)}
    forcing["pet"][4, 1] = value
    simulate(model, model.default_params((2,)), forcing)
    raise Handled("simulated without complaint")


def run_cases(data: Path) -> list[tuple[str, str, str]]:
    """``(input, outcome, verdict)`` for every case."""
    _RUN["camels"] = data / "camels_us"
    rows = []
    for name, case in cases(data):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                case(Path(tmp))
                outcome, verdict = "returned without a word", "SILENT"
            except Handled as h:
                outcome, verdict = str(h), "handled (reported)"
            except SystemExit as e:
                outcome, verdict = str(e), "error (one line, exit 2)"
            except Exception as e:  # noqa: BLE001 - every exception is classified
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                outcome, verdict = f"{type(e).__name__}: {first}", "error"
        rows.append((name, outcome.replace("|", "/")[:300], verdict))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "docs" / "bad_inputs.md"))
    args = p.parse_args(argv)
    rows = run_cases(Path(args.data_dir))
    lines = ["# Bad inputs and what difhydro does with them", "",
             f"Generated by `python benchmarks/bad_inputs.py` ({len(rows)} cases; `tests/test_bad_inputs.py` runs "
             "them too). An error is one line naming the variable, file, option or key; a handled case applies an "
             "explicit policy that the validation report, `summary.md` or the exit status shows.", "",
             "| input | what happens | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    silent = [r for r in rows if r[2] == "SILENT"]
    print("\n".join(lines))
    return 1 if silent else 0


if __name__ == "__main__":
    sys.exit(main())
