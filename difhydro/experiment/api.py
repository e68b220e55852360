"""Reuse a trained run: :func:`load_run` -> :class:`Run` with ``predict`` and ``evaluate``.

The command ``difhydro evaluate`` / ``difhydro predict`` is a thin layer over these. Both
use the models of the gauged (``temporal``) evaluation, trained on every training basin;
a basin never seen in training is an ungauged prediction (its attributes drive the
networks). Calibrated models predict only the basins they were calibrated on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from .. import __version__
from ..hybrid import MODELS
from . import outputs, plots
from .config import Config, config_hash, load_config, parse_period
from .data import ExperimentData, prepare_data, read_basin_file
from .models import SavedModel, predict_unit
from .rundir import RunDirError, read_marker, write_json

__all__ = ["Run", "load_run"]


def load_run(run_dir: str | Path) -> Run:
    """Open a run directory written by ``difhydro train``."""
    return Run(Path(run_dir))


@dataclasses.dataclass
class Run:
    """A trained run: its config, provenance and saved models."""

    folder: Path

    def __post_init__(self):
        self.marker = read_marker(self.folder)
        self.config: Config = load_config(self.folder / "config.yml")
        self.provenance = json.loads((self.folder / "provenance.json").read_text())

    def models(self, evaluation: str = "temporal") -> dict[str, list[SavedModel]]:
        """name -> saved models (one per seed) of ``evaluation`` (fold 0)."""
        found: dict[str, list[SavedModel]] = {}
        for folder in sorted((self.folder / "models").glob(f"*/{evaluation}_fold0/seed*")):
            if (folder / "result.npz").is_file():
                saved = SavedModel.load(folder)
                found.setdefault(saved.name, []).append(saved)
        if not found:
            raise RunDirError(f"{self.folder} has no finished {evaluation} models (train it, or --resume it)")
        return found

    # -- data -----------------------------------------------------------------------------

    def _data(self, data_dir, basin_file, basins, period, need_observations) -> tuple[ExperimentData, tuple[str, str]]:
        cfg = self.config
        data_cfg = cfg.data
        if basin_file:
            basins = read_basin_file(basin_file)
        if basins is not None:
            data_cfg = dataclasses.replace(data_cfg, basins=list(basins))
        elif data_dir is None:
            data_cfg = dataclasses.replace(data_cfg, basins=list(self.provenance["basins"]))
        if data_dir is not None:
            data_cfg = dataclasses.replace(data_cfg, dir=str(Path(data_dir).expanduser().resolve()))
        test = tuple(self.provenance["periods"]["test"]) if period is None else parse_period(period, "--period")
        cfg = dataclasses.replace(cfg, data=data_cfg)
        data = prepare_data(cfg, periods={"test": test}, need_observations=need_observations)
        return data, test

    def _hot_start(self, path, basins) -> dict[str, dict[str, np.ndarray]]:
        """Final states of a previous prediction (``final_<model>__<state>``), per model."""
        with outputs.open_predictions(path) as prev:
            missing = [b for b in basins if b not in set(prev.basin.values.astype(str))]
            if missing:
                raise ValueError(f"--hot-start {path}: basins {missing[:5]} have no saved states")
            states: dict[str, dict[str, np.ndarray]] = {}
            for name in prev.data_vars:
                if name.startswith("final_") and "__" in name:
                    model, state = name[len("final_"):].split("__", 1)
                    values = prev[name].isel(evaluation=-1).sel(basin=list(basins)).values
                    states.setdefault(model, {})[state] = values
        return states

    # -- predict and evaluate -------------------------------------------------------------

    def _run_models(self, data, period, hot_start=None, models=None, progress=True):
        saved = self.models()
        if models:
            saved = {k: v for k, v in saved.items() if k in models}
        basins = data.basins
        states = self._hot_start(hot_start, basins) if hot_start else {}
        simulated, params, series, final, skipped = {}, {}, {}, {}, {}
        for name, members in tqdm(saved.items(), desc="models", disable=not progress):
            if MODELS[name].calibrated:
                unknown = [b for b in basins if b not in members[0].info["basins"]]
                if unknown:
                    skipped[name] = f"calibrated on its own basins only; {len(unknown)} basin(s) were not calibrated"
                    continue
            if hot_start and name not in states:
                skipped[name] = "no process-model states in the hot-start file (a pure network, or not predicted)"
                continue
            runs = [predict_unit(m, data.ds, basins, period, state0=states.get(name)) for m in members]
            key = ("predict", name)
            simulated[key] = np.mean([r["simulated"] for r in runs], axis=0)
            params[key], series[key], final[key] = runs[0]["params"], runs[0]["series"], runs[0]["final_state"]
            if len(runs) > 1:
                simulated[("predict", f"{name}_ensemble")] = simulated[key]
                simulated[key] = runs[0]["simulated"]
        return simulated, params, series, final, skipped

    def _dataset(self, data, period, simulated, params, series, final, observed, title):
        time = pd.date_range(*period)
        ds = data.ds
        coords = {}
        if "gauge_lat" in ds and "gauge_lon" in ds:
            coords = {"lat": ds["gauge_lat"].sel(basin=data.basins).values,
                      "lon": ds["gauge_lon"].sel(basin=data.basins).values}
        units = {}
        for members in self.models().values():
            model = members[0].build()
            pm = model if hasattr(model, "param_spec") else getattr(model, "model", None)
            if pm is not None:
                units.update({k: s.units for k, s in pm.param_spec.items()} | {k: "mm" for k in pm.state_names})
        attrs = {"title": title, "source": f"difhydro {__version__}; run {self.folder}; data: {data.notes[0]}",
                 "difhydro_version": __version__, "config_hash": self.marker["config_hash"]}
        return outputs.predictions_dataset(time, data.basins, simulated, observed, params=params, series=series,
                                           final_state=final, units=units, coords=coords, attrs=attrs)

    def predict(self, *, data_dir=None, basin_file=None, basins: Sequence[str] | None = None,
                period: str | Sequence[str], hot_start=None, models=None, progress: bool = True) -> xr.Dataset:
        """Predict streamflow (and states, parameters) over ``period`` for any basins.

        No observations are needed. Each model spins up on the ``training.warmup`` days
        before the period (read from the data); with ``hot_start`` (a previous
        ``predict`` output) the process models start from its final states instead, and
        dPL networks read only the period. Returns a CF-1.8 data set (see the README).
        """
        data, period = self._data(data_dir, basin_file, basins, period, need_observations=False)
        simulated, params, series, final, skipped = self._run_models(data, period, hot_start, models, progress)
        if not simulated:
            raise ValueError(f"no model could predict these basins: {skipped}")
        ds = self._dataset(data, period, simulated, params, series, final, None,
                           f"difhydro predictions {period[0]}..{period[1]}")
        ds.attrs["skipped_models"] = json.dumps(skipped)
        ds.attrs["hot_start"] = str(hot_start) if hot_start else "no (spin-up before the period)"
        return ds

    def evaluate(self, *, data_dir=None, basin_file=None, basins: Sequence[str] | None = None, period=None,
                 name: str = "default", models=None, progress: bool = True) -> pd.DataFrame:
        """Score the trained models on any basins and period with observations; writes
        ``evaluation/<name>/`` (metrics.csv, predictions.nc, summary.md, figures)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"--name {name!r}: give a plain folder name")
        data, period = self._data(data_dir, basin_file, basins, period, need_observations=True)
        simulated, params, series, final, skipped = self._run_models(data, period, None, models, progress)
        rekey = lambda d: {(name, k[1]): v for k, v in d.items()}  # noqa: E731
        simulated, params, series, final = rekey(simulated), rekey(params), rekey(series), rekey(final)
        time = pd.date_range(*period)
        observed = data.ds["streamflow"].sel(basin=data.basins, time=time).transpose("basin", "time").values
        trained_on = set(self.provenance["basins"])
        rows = []
        for (_, model), sim in simulated.items():
            sc = outputs.score(sim, observed)
            for i, b in enumerate(data.basins):
                rows.append({"evaluation": name, "fold": 0, "model": model, "seed": -1 if model.endswith("_ensemble") else 0,
                             "basin": b, "gauged": b in trained_on, **{m: float(sc[m][i]) for m in outputs.METRIC_NAMES},
                             "days": int(sc["days"][i]), "train_seconds": np.nan, "seconds_per_epoch": np.nan,
                             "basin_days_per_second": np.nan})
        out = self.folder / "evaluation" / name
        out.mkdir(parents=True, exist_ok=True)
        table = outputs.write_metrics(out / "metrics.csv", rows)
        nc = self._dataset(data, period, simulated, params, series, final, observed,
                           f"difhydro evaluation {name}: {period[0]}..{period[1]}")
        outputs.write_netcdf(nc, out / "predictions.nc")
        figures = plots.run_figures(out, table, simulated, observed, time, data.basins, params, series, data)
        unseen = sum(b not in trained_on for b in data.basins)
        lines = [f"# difhydro evaluation `{name}` of run `{self.config.name}`", ""] + [f"- {n}" for n in data.notes]
        lines += [f"- {unseen} of {len(data.basins)} basins were not in training (ungauged predictions)", ""]
        lines += outputs.summary_table(table) + [""]
        if skipped:
            lines += ["Not evaluated: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), ""]
        if data.report is not None:
            lines += ["## Data validation", "", data.report.to_markdown(), ""]
        if figures:
            lines += ["## Figures", ""] + [f"- {k}: `{v}`" for k, v in figures.items()]
        outputs.write_summary_md(out / "summary.md", lines)
        write_json(out / "provenance.json", {"difhydro": __version__, "run_config_hash": config_hash(self.config),
                                             **data.provenance()})
        return table
