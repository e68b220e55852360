"""``difhydro train``: every configured model, gauged and ungauged, into one run directory.

The work is a list of units, one per (model, evaluation, fold, seed): ``temporal`` trains on
all eligible basins and predicts their test period (gauged); ``kfold`` trains on the other
folds and predicts the held-out basins (ungauged). A unit writes ``result.npz`` last, so a
killed run resumes exactly where it stopped (:func:`train_run` with ``resume``): finished
units are read back, an unfinished one continues from its last checkpoint (the Trainer's
resume is bit-identical) or, for a calibration, starts again (deterministic).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from .._files import atomic_path, atomic_write_text, is_primary
from ..data import fit_normalization, make_basin_data
from ..hybrid import MODELS, build_model, model_options
from ..training import TrainConfig, Trainer, gradient_calibration
from ..training.metrics import nse
from . import reporting
from .config import (Config, TrainingConfig, config_hash, config_to_dict, load_config, model_training,
                     registry_options, select_models)
from .data import PHYSICS_FORCING, ExperimentData, data_files, pet_method, prepare_data, with_pet
from .models import SavedModel, predict_unit, save_params, window_period
from .rundir import (RunDirError, changed_data_file, create_run_dir, data_checksums, default_run_dir, is_run_dir,
                     read_marker, write_json)

__all__ = ["Unit", "plan_units", "train_run", "resolve_config"]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One training (or calibration) of one model for one evaluation, fold and seed."""

    model: str
    evaluation: str
    fold: int
    seed: int
    train_basins: tuple[str, ...]
    test_basins: tuple[str, ...]

    def folder(self, run_dir: Path) -> Path:
        return Path(run_dir) / "models" / self.model / f"{self.evaluation}_fold{self.fold}" / f"seed{self.seed}"


def model_names(cfg: Config) -> list[str]:
    return list(cfg.models) if cfg.models else list(MODELS)


def plan_units(cfg: Config, basins: Sequence[str]) -> list[Unit]:
    """Every unit of the experiment, in the order they run (folds by a seeded permutation)."""
    experiments = []
    if "temporal" in cfg.evaluations:
        experiments.append(("temporal", 0, tuple(basins), tuple(basins)))
    if "kfold" in cfg.evaluations:
        order = np.random.default_rng(cfg.seeds[0]).permutation(len(basins))
        for f, chunk in enumerate(np.array_split(order, cfg.folds)):
            test = tuple(basins[i] for i in sorted(chunk))
            experiments.append(("kfold", f, tuple(b for b in basins if b not in test), test))
    ensemble = set(cfg.ensemble_models or model_names(cfg))
    ungauged = set(cfg.kfold_models or model_names(cfg))
    units = []
    for evaluation, fold, train, test in experiments:
        for name in model_names(cfg):
            if evaluation != "temporal" and (MODELS[name].calibrated or name not in ungauged):
                continue
            seeds = cfg.seeds if name in ensemble and not MODELS[name].calibrated else cfg.seeds[:1]
            units += [Unit(name, evaluation, fold, s, train, test) for s in seeds]
    return units


def _options(cfg: Config, name: str) -> dict:
    """The model's options as given, completed with the registry's defaults, so that a saved
    model is rebuilt the same way after a default changes."""
    options = registry_options(cfg.models.get(name, {}))
    if "warmup_days" in model_options(name):
        options.setdefault("warmup_days", model_training(cfg, name).warmup)
    return {**model_options(name), **options}


def _run_trained(unit: Unit, cfg: Config, data: ExperimentData, folder: Path, resume: bool, progress: bool) -> dict:
    t = model_training(cfg, unit.model)
    pet = pet_method(cfg, data.kind, unit.model)
    ds, periods = with_pet(data.ds, pet), data.periods
    forcing = tuple(v for v in PHYSICS_FORCING if v in ds)
    stats = fit_normalization(ds, data.inputs, data.attributes, periods["train"], basins=list(unit.train_basins))
    train = make_basin_data(ds, stats, periods["train"], window=t.window, warmup=t.warmup, forcing=forcing,
                            basins=list(unit.train_basins), min_observations=t.required_observations())
    q = train.observations()
    flow_mean, flow_std = float(np.nanmean(q)), float(np.nanstd(q))
    options = _options(cfg, unit.model)
    model = build_model(unit.model, flow_mean=flow_mean, flow_std=flow_std, **options)
    saved = SavedModel(folder, {
        "name": unit.model, "options": options, "flow_mean": flow_mean, "flow_std": flow_std,
        "inputs": data.inputs, "attributes": data.attributes, "forcing": list(forcing), "pet": pet, "window": t.window,
        "warmup": t.warmup, "seed": unit.seed, "basins": list(unit.train_basins), "train_period": periods["train"],
        "evaluation": unit.evaluation, "fold": unit.fold, "difhydro": __version__,
    })
    folder.mkdir(parents=True, exist_ok=True)
    saved.write()
    validation = None
    if "validation" in periods:  # the training basins over the validation period, spun up as the test period is
        needed = [v for v in dict.fromkeys(list(forcing) + data.inputs) if v in ds]
        window, spin, _ = window_period(ds, periods["validation"], t.warmup, unit.train_basins, needed)
        validation = make_basin_data(ds, stats, window, window=spin + 1, warmup=spin, forcing=forcing,
                                     basins=list(unit.train_basins), min_observations=0)
    trainer = Trainer(model, train, train_config(t, unit.seed, progress), loss=t.loss, run_dir=folder,
                      norm_stats=stats, validation=validation)
    t0 = time.perf_counter()
    fit = trainer.fit(resume=resume)
    seconds = time.perf_counter() - t0
    history = fit["history"]
    # by the monitor on the validation period; the last epoch's without one (or without a finite score)
    scored = fit["best_epoch"] is not None
    kept = fit["best_params"] if scored else fit["params"]
    save_params(folder / "params", kept)
    pred = predict_unit(saved, ds, unit.test_basins, periods["test"], params=kept)
    if validation is not None and history:
        last = int(history[-1]["epoch"])
        pred.update({"best_epoch": int(fit["best_epoch"]) if scored else last,
                     "best_score": float(fit["best_score"]) if scored else np.nan, "epochs_run": last})
    epochs = [h["seconds"] for h in history]
    target_days = t.epochs * t.steps_per_epoch * t.batch_size * (t.window - t.warmup)
    first = history[0] if history else {}
    step = float(np.median([h["median_step_seconds"] for h in history])) if history else np.nan
    return {**pred, "train_seconds": seconds, "seconds_per_epoch": float(np.mean(epochs)) if epochs else np.nan,
            "basin_days_per_second": target_days / (step * t.epochs * t.steps_per_epoch) if history else np.nan,
            "compile_seconds": float(first.get("first_step_seconds", np.nan) - first.get("median_step_seconds", np.nan)),
            "step_seconds": step}


def train_config(t: TrainingConfig, seed: int, progress: bool) -> TrainConfig:
    """The Trainer's settings from a model's ``training:`` section."""
    return TrainConfig(epochs=t.epochs, steps_per_epoch=t.steps_per_epoch, batch_size=t.batch_size,
                       learning_rate=t.learning_rate, schedule=t.schedule, clip_norm=t.clip_norm, seed=seed,
                       monitor=t.monitor, patience=t.patience, validate_every=t.validate_every, progress=progress,
                       weight_decay=t.weight_decay, input_noise=t.input_noise)


def _run_calibrated(unit: Unit, cfg: Config, data: ExperimentData, folder: Path, progress: bool) -> dict:
    t = model_training(cfg, unit.model)
    pet = pet_method(cfg, data.kind, unit.model)
    ds, periods = with_pet(data.ds, pet), data.periods
    model = build_model(unit.model, **_options(cfg, unit.model))
    window, spin, _ = window_period(ds, periods["train"], t.warmup, unit.test_basins, model.forcing_names)
    sub = ds.sel(basin=list(unit.test_basins), time=slice(*window))
    forcing = {k: sub[k].transpose("basin", "time").values.astype(np.float32) for k in model.forcing_names}
    observed = sub["streamflow"].transpose("basin", "time").values.astype(np.float32)
    t0 = time.perf_counter()
    result = gradient_calibration(model, forcing, observed, warmup_days=max(spin, 1), steps=t.calibration_steps,
                                  learning_rate=t.calibration_learning_rate, progress=progress)
    seconds = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "calibrated.npz") as tmp:
        np.savez(tmp, **{k: np.asarray(v) for k, v in result.params.items()})
    saved = SavedModel(folder, {"name": unit.model, "options": _options(cfg, unit.model), "flow_mean": 0.0,
                                "flow_std": 1.0, "inputs": [], "attributes": [], "forcing": list(model.forcing_names),
                                "pet": pet, "window": 0, "warmup": t.warmup, "seed": unit.seed, "basins": list(unit.test_basins),
                                "train_period": periods["train"], "evaluation": unit.evaluation, "fold": unit.fold,
                                "difhydro": __version__})
    saved.write()
    pred = predict_unit(saved, ds, unit.test_basins, periods["test"])
    days = observed.shape[1] - spin
    return {**pred, "train_seconds": seconds, "seconds_per_epoch": np.nan,
            "basin_days_per_second": t.calibration_steps * days * len(unit.test_basins) / seconds}


def _save_result(folder: Path, result: dict) -> None:
    flat = {"simulated": result["simulated"], "time": np.asarray(result["time"], "datetime64[D]").astype(str),
            "spin_up_in_period": result.get("spin_up_in_period", 0),
            "compile_seconds": result.get("compile_seconds", np.nan), "step_seconds": result.get("step_seconds", np.nan),
            "train_seconds": result["train_seconds"], "seconds_per_epoch": result["seconds_per_epoch"],
            "basin_days_per_second": result["basin_days_per_second"],
            "best_epoch": result.get("best_epoch", 0), "best_score": result.get("best_score", np.nan),
            "epochs_run": result.get("epochs_run", 0)}
    for group in ("params", "series", "final_state", "distribution"):
        for k, v in result.get(group, {}).items():
            flat[f"{group}/{k}"] = np.asarray(v)
    if result.get("distribution"):
        flat["distribution_kind"] = result["distribution_kind"]
    if result.get("samples") is not None:  # draws of a peer's predictive distribution [basin, time, n]
        flat["samples"] = np.asarray(result["samples"], np.float32)
    with atomic_path(folder / "result.npz") as tmp:
        np.savez(tmp, **flat)


def _load_result(folder: Path) -> dict:
    with np.load(folder / "result.npz") as z:
        out = {"params": {}, "series": {}, "final_state": {}, "distribution": {}}
        for k in z.files:
            if "/" in k:
                group, name = k.split("/", 1)
                out[group][name] = z[k]
            else:
                out[k] = z[k]
    out["time"] = pd.DatetimeIndex(out["time"])
    for k in ("train_seconds", "seconds_per_epoch", "basin_days_per_second", "compile_seconds", "step_seconds"):
        out[k] = float(out.get(k, np.nan))
    for k in ("spin_up_in_period", "best_epoch", "epochs_run"):
        out[k] = int(out.get(k, 0))
    out["best_score"] = float(out.get("best_score", np.nan))
    if "distribution_kind" in out:
        out["distribution_kind"] = str(out["distribution_kind"])
    return out


def resolve_config(config, *, data_dir=None, basin_file=None, models=None) -> Config:
    """A config with the command-line overrides folded in (they are part of its hash)."""
    overrides = {}
    if data_dir:
        overrides["data.dir"] = str(Path(data_dir).expanduser().resolve())
    if basin_file:
        from .data import read_basin_file

        overrides["data.basins"] = read_basin_file(basin_file)
    return select_models(load_config(config, overrides), models)


def train_run(config, out=None, *, data_dir=None, basin_file=None, models=None, resume=None,
              progress: bool = True, log=print) -> tuple[Path, pd.DataFrame, list]:
    """Train and evaluate every configured model; write the run directory.

    Args:
        config: a YAML path or mapping (ignored with ``resume`` unless given: then it
            must resolve to the stored config).
        out: the run directory (default ``runs/<name>_<timestamp>``); refused when it is a
            non-empty folder difhydro did not create.
        data_dir, basin_file, models: command-line overrides.
        resume: an existing run directory to continue (refused when the configuration
            differs from the stored one).

    Returns:
        ``(run_dir, metrics table, failures)``; ``failures`` lists ``(model, unit, reason)``.
    """
    if resume is not None:
        run_dir = Path(resume)
        marker = read_marker(run_dir)
        stored = load_config(run_dir / "config.yml")
        cfg = stored if config is None and not (data_dir or basin_file or models) else \
            resolve_config(config or run_dir / "config.yml", data_dir=data_dir, basin_file=basin_file, models=models)
        if config_hash(cfg) != marker["config_hash"]:
            raise RunDirError(f"--resume {run_dir}: the configuration differs from the one the run was started with "
                              f"(hash {config_hash(cfg)[:12]} vs {marker['config_hash'][:12]}); nothing was changed")
    else:
        cfg = resolve_config(config, data_dir=data_dir, basin_file=basin_file, models=models)
        run_dir = Path(out) if out else default_run_dir(cfg.name)
        from .rundir import check_new_run_dir

        if is_primary():
            check_new_run_dir(run_dir)
    provenance = _check_resumable(run_dir, log) if resume is not None else None
    data = prepare_data(cfg)  # every data problem surfaces here, before the run directory exists
    log("\n".join(data.notes))
    units = plan_units(cfg, data.basins)
    finished = _read_finished(run_dir, units, data) if resume is not None else {}
    command = {"command": " ".join(sys.argv), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
               "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if resume is None and is_primary():
        create_run_dir(run_dir, config_hash(cfg), __version__)
        import yaml

        atomic_write_text(run_dir / "config.yml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        atomic_write_text(run_dir / "config.sha256", config_hash(cfg) + "\n")
        files = {}
        if data.root is not None:  # the data a resume must find unchanged
            files = data_checksums(data.root, data_files(data.root, data.ds["basin"].values.astype(str)))
        provenance = {"difhydro": __version__, **data.provenance(), **command, "data_files": files}
    else:  # resumed: the provenance of the start stays, each resume is added
        provenance = {**provenance, "resumed": provenance.get("resumed", []) + [
            {"difhydro": __version__, "time": pd.Timestamp.now().isoformat(timespec="seconds"), **command}]}
    write_json(run_dir / "provenance.json", provenance)
    if data.report is not None:
        data.report.to_csv(run_dir / "data_validation.csv")
    failures, results = [], dict(finished)
    t_start = time.perf_counter()
    for unit in tqdm(units, desc="models", disable=not progress):
        folder = unit.folder(run_dir)
        try:
            if unit in finished:
                continue
            if MODELS[unit.model].calibrated:
                result = _run_calibrated(unit, cfg, data, folder, progress)
            else:
                result = _run_trained(unit, cfg, data, folder, resume is not None, progress)
            _save_result(folder, result)
            results[unit] = result
            observed = data.ds["streamflow"].sel(basin=list(unit.test_basins), time=result["time"])
            log(_unit_line(unit, result, observed.transpose("basin", "time").values))
        except Exception as err:  # a failure is reported, never silently dropped
            failures.append((unit.model, f"{unit.evaluation} fold {unit.fold} seed {unit.seed}",
                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
            _log_failure(run_dir, unit.model, err)
    peer_rows = _peers(cfg, data, run_dir, failures, progress, log)
    table = aggregate(run_dir, cfg, data, results, peer_rows, failures, time.perf_counter() - t_start)
    return run_dir, table, failures


def _check_resumable(run_dir: Path, log) -> dict:
    """The stored provenance of a run to resume, after checking that every data file it
    recorded is unchanged (a :class:`RunDirError` naming the first changed file)."""
    path = run_dir / "provenance.json"
    try:
        provenance = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunDirError(f"--resume {run_dir}: {path} cannot be read ({type(err).__name__}: {err}); nothing was "
                          "changed") from None
    recorded, root = provenance.get("data_files"), provenance.get("root")
    if recorded is None:
        log(f"difhydro train: {path} records no data checksums (an older run): the data are not verified")
    elif recorded and root:
        changed = changed_data_file(root, recorded)
        if changed:
            raise RunDirError(f"--resume {run_dir}: the data changed since the run started: {changed}; nothing was "
                              "changed (restore the data, or start a new run)")
    return provenance


def _read_finished(run_dir: Path, units: Sequence[Unit], data: ExperimentData) -> dict:
    """The results of the units a resumed run finished, every file read and checked; a
    :class:`RunDirError` names the first one that cannot be read, before anything is written
    (a damaged result is never silently dropped from the new ``metrics.csv``)."""
    days = len(pd.date_range(*data.periods["test"]))
    finished = {}
    for unit in units:
        folder = unit.folder(run_dir)
        if not (folder / "result.npz").is_file():
            continue
        for name, read in (("model.json", lambda: SavedModel.load(folder)), ("result.npz", lambda: _load_result(folder))):
            try:
                value = read()
            except Exception as err:  # noqa: BLE001 - any unreadable file is named
                raise RunDirError(f"--resume {run_dir}: {folder / name} cannot be read ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}); nothing was changed (move it "
                                  "aside to train that unit again)") from None
        expected = (len(unit.test_basins), days)
        if np.shape(value["simulated"]) != expected:
            raise RunDirError(f"--resume {run_dir}: {folder / 'result.npz'} holds simulated streamflow of shape "
                              f"{np.shape(value['simulated'])}, expected {expected} (basins, test days); nothing was "
                              "changed (move it aside to train that unit again)")
        finished[unit] = value
    return finished


def _unit_line(unit, result: dict, observed: np.ndarray) -> str:
    """One line per trained unit: training time, throughput, compilation, median test NSE
    (``observed`` ``[basin, time]`` mm d-1, NaN where missing)."""
    parts = [f"{result['train_seconds']:.0f} s training"]
    if np.isfinite(result.get("basin_days_per_second", np.nan)):
        parts.append(f"{result['basin_days_per_second']:.0f} basin-days/s")
    if np.isfinite(result.get("compile_seconds", np.nan)):
        parts.append(f"first step +{result['compile_seconds']:.1f} s (compilation)")
    scores = np.asarray(nse(result["simulated"], observed))
    if np.isfinite(scores).any():
        parts.append(f"median test NSE {np.nanmedian(scores):.3f}")
    return f"{unit.model} {unit.evaluation} fold {unit.fold} seed {unit.seed}: " + ", ".join(parts)


def _log_failure(run_dir: Path, name: str, err: Exception) -> None:
    """One line on stderr; the traceback in ``errors.log`` of the run directory."""
    sys.stderr.write(f"difhydro train: {name} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
                     f"(traceback in {run_dir / 'errors.log'})\n")
    if not is_primary():
        return
    with open(run_dir / "errors.log", "a") as log:
        log.write(f"--- {name} ---\n{''.join(traceback.format_exception(err))}\n")


def peer_network(cfg: Config) -> dict:
    """``hidden_size``, ``dropout``, ``head`` and ``n_distributions`` of neuralhydrology's
    cudalstm: those of the ``lstm`` model this config builds (its options, else the registry
    defaults; a ``cmal`` / ``gmm`` head gives NH's own head of that name with as many
    components), read off the built module so that an explicit ``dropout: 0.0`` stays 0.0.

    An autoregressive ``lstm`` (``autoregressive: true``, a point forecast) gives NH's arlstm
    instead: ``{"model": "arlstm", "hidden_size", "dropout", "holdout", "lags"}``, ``lags``
    being the lstm's number of lagged days (NH's arlstm reads one, see :func:`_peers`)."""
    from ..forecast.autoregression import AutoregressiveLSTM

    lstm = build_model("lstm", **(_options(cfg, "lstm") if "lstm" in model_names(cfg) else {}))
    if isinstance(lstm, AutoregressiveLSTM):
        return {"model": "arlstm", "hidden_size": int(lstm.hidden_size), "dropout": float(lstm.dropout_rate),
                "holdout": float(lstm.holdout), "lags": len(lstm.lags)}
    return {"hidden_size": int(lstm.hidden_size), "dropout": float(lstm.dropout_rate), "head": lstm.head,
            "n_distributions": int(lstm.components)}


#: difhydro's names of the Caravan series the peer reads from the files themselves
CARAVAN_COLUMNS = {"precipitation": "total_precipitation_sum", "temperature": "temperature_2m_mean",
                   "pet_era5": "potential_evaporation_sum"}


def peer_inputs(inputs: Sequence[str], pet: str) -> list[str]:
    """The Caravan columns neuralhydrology reads for difhydro's network ``inputs``: the three
    shared series by their file names (``pet`` is ERA5-Land's when ``data.pet`` is 'data'),
    any further column by its own name.

    Raises:
        ValueError: an input difhydro derives (Oudin's ``pet``, ``day_length``), which the
            peer cannot read from the files, so that it is never dropped silently.
    """
    columns = dict(CARAVAN_COLUMNS, **({"pet": "potential_evaporation_sum"} if pet == "data" else {}))
    derived = [v for v in inputs if v not in columns and v in ("pet", "day_length")]
    if derived:
        raise ValueError(f"neuralhydrology reads the Caravan files, which lack the derived input(s) {derived}")
    return [columns.get(v, v) for v in inputs]


def _peers(cfg: Config, data: ExperimentData, run_dir: Path, failures: list, progress: bool, log) -> dict:
    """neuralhydrology's peer of the ``lstm`` on the gauged evaluation (Caravan data), matched
    budget: cudalstm, or arlstm (one-day-ahead, the observed flow of day t-1) when the lstm is
    autoregressive; an lstm with ``lags`` > 1 is then matched at lag 1 only, said in the log
    and the summary."""
    if not cfg.peers.neuralhydrology:
        return {}
    network = peer_network(cfg)
    model = network.pop("model", "cudalstm")
    name = f"nh_{model}"  # nh_cudalstm / nh_arlstm in metrics.csv
    if data.kind != "caravan":
        failures.append((name, "temporal",
                         f"not run: the neuralhydrology peer reads Caravan data, this run has {data.kind}"))
        return {}
    from .neuralhydrology import lag_note, run_arlstm, run_cudalstm

    t = model_training(cfg, "lstm")
    try:
        columns = peer_inputs(data.inputs, pet_method(cfg, data.kind, "lstm"))
    except ValueError as err:
        failures.append((name, "temporal", f"not run: {err}"))
        return {}
    runner = run_cudalstm
    if model == "arlstm":
        runner, note = run_arlstm, lag_note(network.pop("lags"))
        if note:
            log(f"{name}: {note}")
    folder = run_dir / "peers" / name
    done = folder / "result.npz"
    if done.is_file():
        try:
            return {name: _load_result(folder)}
        except Exception as err:  # noqa: BLE001 - a damaged result is named, never dropped
            raise RunDirError(f"{done} cannot be read ({type(err).__name__}); move it aside to run the peer "
                              "again") from None
    try:
        res = runner(
            data.root, [f"camels_{b}" for b in data.basins], data.periods["train"], data.periods["test"],
            dynamic_inputs=columns, static_attributes=data.attributes,
            seq_length=t.window, predict_last_n=t.window - t.warmup, batch_size=t.batch_size,
            updates=t.epochs * t.steps_per_epoch, learning_rate=train_config(t, cfg.seeds[0], False).learning_rates(),
            seed=cfg.seeds[0],
            work_dir=folder, threads=cfg.peers.threads, progress=progress, **network)
    except Exception as err:
        failures.append((name, "temporal", f"{type(err).__name__}: {err}"))
        _log_failure(run_dir, name, err)
        return {}
    target_days = res["updates"] * t.batch_size * (t.window - t.warmup)
    result = {"simulated": res["simulated"], "time": pd.DatetimeIndex(res["time"]), "params": {}, "series": {},
              "final_state": {}, "train_seconds": res["train_seconds"], "seconds_per_epoch": np.nan,
              "basin_days_per_second": target_days / res["train_seconds"],
              "evaluate_seconds": res["evaluate_seconds"], "samples": res.get("samples")}
    _save_result(folder, result)
    log(f"{name}: {res['train_seconds']:.0f} s training, {res['evaluate_seconds']:.0f} s evaluation")
    return {name: result}


def aggregate(run_dir: Path, cfg: Config, data: ExperimentData, results: dict, peers: dict, failures: list,
              seconds: float) -> pd.DataFrame:
    """metrics.csv, predictions.nc, summary.md and figures of a training run (through
    :mod:`~difhydro.experiment.reporting`, as ``evaluate`` does)."""
    ds, periods = data.ds, data.periods
    time_axis = pd.date_range(*periods["test"])
    basins = data.basins
    obs = ds["streamflow"].sel(basin=basins, time=time_axis).transpose("basin", "time").values.astype(np.float32)
    rows, simulated, params, series, final = [], {}, {}, {}, {}
    quantiles, mixtures, pit = {}, {}, {}  # of the probabilistic models

    def place(store, key, name, values, test_basins):
        """Put ``values`` ``[test basin, ...]`` into ``store[key][name]`` ``[basin, ...]``."""
        target = store.setdefault(key, {}) if name is not None else store
        slot = name if name is not None else key
        shape = (len(basins),) + np.shape(values)[1:]
        target.setdefault(slot, np.full(shape, np.nan, np.float32))
        target[slot][[basins.index(b) for b in test_basins]] = values

    def add(name, evaluation, fold, seed, test_basins, res, shown=True):
        idx = [basins.index(b) for b in test_basins]
        spin = int(res.get("spin_up_in_period", 0))
        forecast, scores = reporting.forecast_of(res), None
        if forecast is not None:
            summary = reporting.probabilistic_summary(forecast, obs[idx], spin)
            scores = summary["scores"]
            if shown:  # in predictions.nc and the reliability figure
                place(quantiles, (evaluation, name), None, summary["quantiles"], test_basins)
                place(pit, (evaluation, name), None, summary["pit"], test_basins)
                for k, v in res.get("distribution", {}).items():
                    place(mixtures, (evaluation, name), k, v, test_basins)
                if res.get("distribution"):
                    mixtures[(evaluation, name)]["kind"] = str(res["distribution_kind"])
        rows.extend(reporting.metric_rows(evaluation=evaluation, fold=fold, model=name, seed=seed, basins=test_basins,
                                          simulated=res["simulated"], observed=obs[idx],
                                          spin_up_in_period=spin, timing=res, probabilistic=scores))

    members: dict = {}
    for unit, res in results.items():
        add(unit.model, unit.evaluation, unit.fold, unit.seed, unit.test_basins, res, unit.seed == cfg.seeds[0])
        members.setdefault((unit.model, unit.evaluation, unit.fold, unit.test_basins), []).append(res)
        key = (unit.evaluation, unit.model)
        if unit.seed == cfg.seeds[0]:
            place(simulated, key, None, res["simulated"], unit.test_basins)
            for group, store in (("params", params), ("series", series), ("final_state", final)):
                for k, v in res[group].items():
                    place(store, key, k, v, unit.test_basins)
    for (name, evaluation, fold, test_basins), runs in members.items():
        if len(runs) > 1:  # the ensemble: mean of the members' predictions
            mean = reporting.ensemble(runs)
            add(f"{name}_ensemble", evaluation, fold, -1, test_basins, mean)
            place(simulated, (evaluation, f"{name}_ensemble"), None, mean["simulated"], test_basins)
    for name, res in peers.items():
        add(name, "temporal", 0, cfg.seeds[0], basins, res)
        simulated[("temporal", name)] = res["simulated"]
    attrs = {"title": f"difhydro run {cfg.name}: predictions of the test period {periods['test'][0]}..{periods['test'][1]}",
             "source": f"difhydro {__version__}; data: {data.notes[0]}", "difhydro_version": __version__,
             "config_hash": config_hash(cfg), "references": "docs/physics.md; README (outputs)"}
    head, tail = summary_lines(cfg, data, results, failures, seconds, peers)
    table, _ = reporting.write_report(run_dir, rows=rows, time=time_axis, basins=basins, simulated=simulated,
                                      observed=obs, params=params, series=series, final=final, units=_units(cfg),
                                      coords=reporting.basin_coords(ds, basins), attrs=attrs, data=data,
                                      head=head, tail=tail, quantiles=quantiles, mixtures=mixtures, pit=pit)
    return table


def _units(cfg: Config) -> dict[str, str]:
    """Units of every parameter and state of the configured models (for the netCDF)."""
    models = []
    for name in model_names(cfg):
        try:
            models.append(build_model(name, **_options(cfg, name)))
        except Exception:  # a model that cannot be built failed its units already (reported there)
            continue
    return reporting.model_units(models)


def summary_lines(cfg: Config, data: ExperimentData, results: dict, failures: list, seconds: float,
                  peers: dict) -> tuple[list[str], list[str]]:
    """The lines of a training run's ``summary.md`` before and after the metrics table."""
    lines = [f"# difhydro run `{cfg.name}`", ""]
    if data.kind == "twin":
        lines += ["**Synthetic twin** (no data configured): real Fulda forcing, EXP-HYDRO truth. "
                  "Point `--data-dir` at CAMELS-US or Caravan for real basins.", ""]
    lines += [f"- {n}" for n in data.notes]
    lines += [f"- difhydro {__version__}, config hash `{config_hash(cfg)[:12]}`, total time {seconds:.0f} s", ""]
    lines += ["PET read by the process models: " + data.pet + ". The networks read " + ", ".join(data.inputs) + ".", ""]
    lines += [f"Every model spins up on its warm-up days (training.warmup: {cfg.training.warmup}) before a test period (where the data start "
              "later, on the first days of the period, which are then simulated but not scored).", ""]
    lines += ["The mean-flow benchmark has NSE = 0; models below it are worse than the test-period mean. "
              "`temporal` = gauged (training basins, test period); `kfold` = ungauged (held-out basins).", ""]
    tail = []
    kept = [(u, r) for u, r in results.items() if int(r.get("epochs_run", 0))]
    if "validation" in data.periods and kept:
        v = data.periods["validation"]
        tail += [f"## Kept epoch (validation {v[0]}..{v[1]})", "",
                 "The parameters saved and scored are those of the epoch with the best basin-median validation "
                 "score (`training.monitor`); `log.csv` of each model holds every epoch's validation scores.", "",
                 "| model | evaluation | fold | seed | kept epoch | epochs run | monitor | best validation |",
                 "|---|---|---|---|---|---|---|---|"]
        for u, r in kept:
            t = model_training(cfg, u.model)
            tail.append(f"| {u.model} | {u.evaluation} | {u.fold} | {u.seed} | {int(r['best_epoch'])} | "
                        f"{int(r['epochs_run'])} | {t.monitor} | {float(r['best_score']):.3f} |")
        tail.append("")
    if "nh_cudalstm" in peers:
        res, nh = peers["nh_cudalstm"], peer_network(cfg)
        head = "" if nh["head"] == "regression" else (
            f", head {nh['head']} ({nh['n_distributions']} components; scored from its draws, the point forecast "
            "their median)")
        tail += [f"neuralhydrology `cudalstm`{head}: {res['train_seconds']:.0f} s training, "
                 f"{res.get('evaluate_seconds', float('nan')):.0f} s evaluation (one window ending on every test "
                 "day, the whole test period scored).", ""]
    if "nh_arlstm" in peers:
        from .neuralhydrology import lag_note

        res, nh = peers["nh_arlstm"], peer_network(cfg)
        note = lag_note(nh["lags"])
        tail += [f"neuralhydrology `arlstm` (one-day-ahead: the observed flow of day t-1 as its last input, a missing "
                 f"one replaced by its own prediction and flagged; in training each day's lagged flow hidden with "
                 f"probability {nh['holdout']:g}, drawn once): {res['train_seconds']:.0f} s training, "
                 f"{res.get('evaluate_seconds', float('nan')):.0f} s evaluation (one window ending on every test day, "
                 "reading the observed flow of the day before)." + (f" **Not matched**: {note}." if note else ""), ""]
    if data.report is not None:
        tail += ["## Data validation", "", data.report.to_markdown(), ""]
    if failures:
        tail += ["## Failed or not run", "", "| model | unit | reason |", "|---|---|---|"]
        tail += [f"| {m} | {u} | {r} |" for m, u, r in failures] + [""]
    not_applicable = [m for m in model_names(cfg) if MODELS[m].calibrated and "kfold" in cfg.evaluations]
    if cfg.kfold_models and "kfold" in cfg.evaluations:
        skipped = [m for m in model_names(cfg) if m not in cfg.kfold_models and not MODELS[m].calibrated]
        if skipped:
            tail += [f"Ungauged (kfold) evaluation configured for {', '.join(cfg.kfold_models)} only "
                     f"(not run for {', '.join(skipped)}).", ""]
    if not_applicable:
        tail += [f"Not applicable in the ungauged (kfold) evaluation: {', '.join(not_applicable)} (per-basin "
                 "calibration needs the basin's own streamflow).", ""]
    if data.excluded:
        tail += ["## Excluded basins", ""] + [f"- {b}: {r}" for b, r in data.excluded.items()] + [""]
    tail += ["Columns of `metrics.csv` and variables of `predictions.nc`: see the README (section *Outputs*)."]
    return lines, tail


def load_result(folder: Path) -> dict:
    """The saved test-period result of a unit folder (for inspection)."""
    return _load_result(folder)


def run_exists(path) -> bool:
    return is_run_dir(path)


def _dump(obj) -> str:
    return json.dumps(obj, default=str)
