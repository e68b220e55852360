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
from . import outputs, reporting
from .assimilate import SUFFIX, assimilated_unit, gap_note, unsupported
from .config import Config, check_name, config_hash, load_config, parse_period
from .data import ExperimentData, prepare_data, read_basin_file
from .models import SavedModel, predict_unit
from .rundir import RunDirError, claim_folder, read_marker, write_json

__all__ = ["Run", "load_run"]



def _describe(settings) -> str:
    """One line of the state update's settings."""
    states = "the slow stores (lower_zone, soil_storage)" if settings.states is None else ", ".join(settings.states)
    return (f"window {settings.window} days, {states}, sigma_b {settings.background_sigma} mm, sigma_o "
            f"{settings.obs_sigma} ({settings.transform} flow), one incremental Gauss-Newton step per day")


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
        try:
            self.provenance = json.loads((self.folder / "provenance.json").read_text())
        except (OSError, ValueError) as err:
            raise RunDirError(f"{self.folder / 'provenance.json'} cannot be read ({type(err).__name__}: {err})") from None

    def models(self, evaluation: str = "temporal") -> dict[str, list[SavedModel]]:
        """name -> saved models of ``evaluation`` (fold 0), one per seed, in the order of the
        config's ``seeds`` (the first is the one ``predictions.nc`` shows beside the ensemble)."""
        found: dict[str, list[SavedModel]] = {}
        for folder in (self.folder / "models").glob(f"*/{evaluation}_fold0/seed*"):
            if (folder / "result.npz").is_file():
                saved = SavedModel.load(folder)
                found.setdefault(saved.name, []).append(saved)
        if not found:
            raise RunDirError(f"{self.folder} has no finished {evaluation} models (train it, or --resume it)")
        seeds = list(self.config.seeds)
        order = lambda m: (seeds.index(m.seed) if m.seed in seeds else len(seeds), m.seed)  # noqa: E731
        return {name: sorted(members, key=order) for name, members in sorted(found.items())}

    # -- data -----------------------------------------------------------------------------

    def _data(self, data_dir, basin_file, basins, period, need_observations) -> tuple[ExperimentData, tuple[str, str]]:
        """The data and the period (cut to the data, the cut in ``data.notes``)."""
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
        return data, tuple(data.periods["test"])

    def _hot_start(self, path, basins, period) -> tuple[dict[str, dict[str, np.ndarray]], str]:
        """Final states of a previous prediction (``final_<model>__<state>``), per model, and
        their day; refused unless that day precedes ``period``."""
        with outputs.open_predictions(path) as prev:
            missing = [b for b in basins if b not in set(prev.basin.values.astype(str))]
            if missing:
                raise ValueError(f"--hot-start {path}: basins {missing[:5]} have no saved states")
            last = pd.Timestamp(prev.time.values[-1])
            if last >= pd.Timestamp(period[0]):
                raise ValueError(f"--hot-start {path}: its end states are of {last.date()}, which does not precede the "
                                 f"period start {period[0]}; predict a period that starts after {last.date()}")
            states: dict[str, dict[str, np.ndarray]] = {}
            for name in prev.data_vars:
                if name.startswith("final_") and "__" in name:
                    model, state = name[len("final_"):].split("__", 1)
                    values = prev[name].isel(evaluation=-1).sel(basin=list(basins)).values
                    states.setdefault(model, {})[state] = values
        gap = (pd.Timestamp(period[0]) - last).days - 1
        note = f"hot start from {path}: end states of {last.date()}" + (
            f" ({gap} day(s) before the period start {period[0]}: a gap, the states are carried over it)" if gap else
            " (the day before the period)")
        return states, note

    # -- predict and evaluate -------------------------------------------------------------

    def _run_models(self, data, period, hot_start=None, models=None, progress=True):
        """``(name -> [(seed, result of predict_unit)], skipped name -> reason, hot-start note)``."""
        saved = self.models()
        if models:
            saved = {k: v for k, v in saved.items() if k in models}
        basins = data.basins
        states, note = self._hot_start(hot_start, basins, period) if hot_start else ({}, "")
        runs, skipped = {}, {}
        for name, members in tqdm(saved.items(), desc="models", disable=not progress):
            if MODELS[name].calibrated:
                unknown = [b for b in basins if b not in members[0].info["basins"]]
                if unknown:
                    skipped[name] = f"calibrated on its own basins only; {len(unknown)} basin(s) were not calibrated"
                    continue
            if hot_start and name not in states:
                skipped[name] = "no process-model states in the hot-start file (a pure network, or not predicted)"
                continue
            runs[name] = [(m.seed, predict_unit(m, data.ds, basins, period, state0=states.get(name))) for m in members]
        return runs, skipped, note

    def _assimilated(self, runs, data, period, settings, progress=True):
        """``(name_assimilated -> [(seed, result)], not-updated name -> reason, gap notes)``:
        the one-day-ahead forecasts with daily state updates of the models that allow them
        (:mod:`~difhydro.experiment.assimilate`)."""
        saved = self.models()
        out, skipped, notes = {}, {}, []
        for name, members in tqdm(runs.items(), desc="state updating", disable=not progress):
            by_seed = {m.seed: m for m in saved[name]}
            why = unsupported(by_seed[members[0][0]], members[0][1])
            if why:
                skipped[name] = why
                continue
            out[name + SUFFIX] = [(seed, assimilated_unit(by_seed[seed], data.ds, data.basins, period, res, settings))
                                  for seed, res in members]
            notes.append(gap_note(name, out[name + SUFFIX][0][1]["gaps"], settings.window))
        return out, skipped, notes

    @staticmethod
    def _settings(assimilate):
        """The :class:`~difhydro.forecast.Assimilation` of ``assimilate``: the settings
        themselves, or a window in days with the log-flow misfit."""
        from ..forecast.assimilation import Assimilation

        if isinstance(assimilate, Assimilation):
            return assimilate
        # the log of the flow: baseflow is exponential in the storage, so its log is linear
        # (on 30 Caravan basins it beat sqrt for EXP-HYDRO and dPL-EXP-HYDRO, docs/forecasting.md)
        if isinstance(assimilate, bool) or not isinstance(assimilate, (int, np.integer)) or assimilate < 1:
            raise ValueError(f"--assimilate: give the window in days, an integer >= 1; got {assimilate!r}")
        return Assimilation(window=int(assimilate), transform="log")

    def _members_table(self, runs, evaluation):
        """``simulated``, ``params``, ``series``, ``final`` keyed ``(evaluation, model)``: the
        first seed's prediction and, with several seeds, ``<model>_ensemble`` (their mean)."""
        simulated, params, series, final = {}, {}, {}, {}
        for name, members in runs.items():
            key = (evaluation, name)
            first = members[0][1]
            simulated[key] = first["simulated"]
            params[key], series[key], final[key] = first["params"], first["series"], first["final_state"]
            if len(members) > 1:
                simulated[(evaluation, f"{name}_ensemble")] = reporting.ensemble([r for _, r in members])["simulated"]
        return simulated, params, series, final

    def _units(self) -> dict[str, str]:
        return reporting.model_units(members[0].build() for members in self.models().values())

    def _attrs(self, data, title) -> dict[str, str]:
        return {"title": title, "source": f"difhydro {__version__}; run {self.folder}; data: {data.notes[0]}",
                "difhydro_version": __version__, "config_hash": self.marker["config_hash"]}

    def predict(self, *, data_dir=None, basin_file=None, basins: Sequence[str] | None = None,
                period: str | Sequence[str], hot_start=None, models=None, progress: bool = True,
                log=print, assimilate=None) -> xr.Dataset:
        """Predict streamflow (and states, parameters) over ``period`` for any basins.

        No observations are needed (a generic folder's files need no streamflow column).
        Each model spins up on the ``training.warmup`` days before the period (read from
        the data); with ``hot_start`` (a previous ``predict`` output whose last day
        precedes the period) the process models start from its final states instead, and
        dPL networks read only the period; the models it skips are named by ``log`` and in
        the global attributes ``summary`` and ``skipped_models``. A period reaching beyond
        the data is cut to it, and said so the same way. Returns a CF-1.8 data set (see
        the README).

        ``assimilate`` (a window ``N`` in days, or a
        :class:`~difhydro.forecast.Assimilation`) adds, for every process model whose
        states can be updated, the one-day-ahead forecasts ``<model>_assimilated``: before
        each day the states are updated over the last ``N`` days of observed flow (the data
        must hold ``streamflow``; gaps are masked and counted in ``summary``), then the
        model steps one day. The models that cannot be updated are named in
        ``not_assimilated``.
        """
        settings = None if assimilate is None else self._settings(assimilate)
        if settings is not None and hot_start:
            raise ValueError("--assimilate and --hot-start exclude each other (the state update starts from the "
                             "spin-up before the period)")
        data, period = self._data(data_dir, basin_file, basins, period, need_observations=settings is not None)
        runs, skipped, note = self._run_models(data, period, hot_start, models, progress)
        if not runs:
            raise ValueError(f"no model could predict these basins: {skipped}")
        gap_notes, not_updated = [], {}
        if settings is not None:
            updated, not_updated, gap_notes = self._assimilated(runs, data, period, settings, progress)
            if not updated:
                raise ValueError(f"--assimilate: no model of the run has states that can be updated: {not_updated}")
            runs = {**runs, **updated}
        simulated, params, series, final = self._members_table(runs, "predict")
        ds = outputs.predictions_dataset(pd.date_range(*period), data.basins, simulated, None, params=params,
                                         series=series, final_state=final, units=self._units(),
                                         coords=reporting.basin_coords(data.ds, data.basins),
                                         attrs=self._attrs(data, f"difhydro predictions {period[0]}..{period[1]}"))
        said = [n for n in data.notes if n.startswith("CUT:")] + ([note] if note else [])
        said += [f"skipped model {k}: {v}" for k, v in skipped.items()]
        said += [f"not assimilated {k}: {v}" for k, v in not_updated.items()] + gap_notes
        for line in said:
            log(f"difhydro predict: {line}")
        ds.attrs["summary"] = "; ".join([f"predictions of {', '.join(runs)} for {len(data.basins)} basin(s), "
                                         f"{period[0]}..{period[1]}"] + said)
        ds.attrs["skipped_models"] = json.dumps(skipped)
        ds.attrs["hot_start"] = note or "no (spin-up before the period)"
        if settings is not None:
            ds.attrs["assimilation"] = _describe(settings)
            ds.attrs["not_assimilated"] = json.dumps(not_updated)
        return ds

    def evaluate(self, *, data_dir=None, basin_file=None, basins: Sequence[str] | None = None, period=None,
                 name: str | None = None, models=None, progress: bool = True, assimilate=None) -> pd.DataFrame:
        """Score the trained models on any basins and period with observations; writes
        ``evaluation/<name>/`` (metrics.csv, predictions.nc, summary.md, figures).

        Never overwrites an evaluation: an explicit ``name`` that exists is refused; without
        a name the folder is ``default``, else ``default-2``, ``default-3``, ... The table's
        ``attrs["folder"]`` is the folder written. Every seed's rows carry their seed, the
        ensemble's seed -1, and spin-up days inside the period are not scored (as in
        ``train``). ``assimilate`` scores the one-day-ahead forecasts with state updating
        (``<model>_assimilated``, see :meth:`predict`) beside the open-loop runs, on the
        same days.
        """
        settings = None if assimilate is None else self._settings(assimilate)
        if name is not None:
            check_name(name, "--name")
        if name is not None and (self.folder / "evaluation" / name).exists():
            raise RunDirError(f"--name {name}: {self.folder / 'evaluation' / name} exists; difhydro does not overwrite "
                              "an evaluation (choose another --name, or none for a new one)")
        data, period = self._data(data_dir, basin_file, basins, period, need_observations=True)
        runs, skipped, _ = self._run_models(data, period, None, models, progress)
        gap_notes = []
        if settings is not None:
            updated, not_updated, gap_notes = self._assimilated(runs, data, period, settings, progress)
            if not updated:
                raise ValueError(f"--assimilate: no model of the run has states that can be updated: {not_updated}")
            skipped.update({f"{k}{SUFFIX}": f"not assimilated: {v}" for k, v in not_updated.items()})
            runs = {**runs, **updated}
        out = claim_folder(self.folder / "evaluation", name)
        name = out.name
        time = pd.date_range(*period)
        observed = data.ds["streamflow"].sel(basin=data.basins, time=time).transpose("basin", "time").values
        trained_on = set(self.provenance["basins"])
        rows = []
        quantiles, mixtures, pit = {}, {}, {}  # of the probabilistic models (first seed, as run.aggregate)

        def add(model, seed, res, shown):
            forecast, scores = reporting.forecast_of(res), None
            if forecast is not None:
                summary = reporting.probabilistic_summary(forecast, observed, int(res["spin_up_in_period"]))
                scores = summary["scores"]
                if shown:
                    quantiles[(name, model)], pit[(name, model)] = summary["quantiles"], summary["pit"]
                    if res.get("distribution"):
                        mixtures[(name, model)] = {**res["distribution"], "kind": str(res["distribution_kind"])}
            return reporting.metric_rows(evaluation=name, fold=0, model=model, seed=seed, basins=data.basins,
                                         simulated=res["simulated"], observed=observed,
                                         spin_up_in_period=res["spin_up_in_period"], gauged=trained_on,
                                         probabilistic=scores)

        for model, members in runs.items():
            for i, (seed, res) in enumerate(members):
                rows += add(model, seed, res, i == 0)
            if len(members) > 1:
                rows += add(f"{model}_ensemble", -1, reporting.ensemble([r for _, r in members]), False)
        simulated, params, series, final = self._members_table(runs, name)
        unseen = sum(b not in trained_on for b in data.basins)
        head = [f"# difhydro evaluation `{name}` of run `{self.config.name}`", ""] + [f"- {n}" for n in data.notes]
        head += [f"- {unseen} of {len(data.basins)} basins were not in training (ungauged predictions)", "",
                 f"Spin-up: {self.config.training.warmup} days before the period; where the data start later, the "
                 "first days of the period spin up and are not scored (as in training).", ""]
        if settings is not None:
            head += [f"State updating ({_describe(settings)}): `<model>{SUFFIX}` are one-day-ahead forecasts, each "
                     "day's states updated over the observed flow of the window that ends the day before.", ""]
            head += [f"- {line}" for line in gap_notes] + [""]
        tail = []
        if skipped:
            tail += ["Not evaluated: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), ""]
        if data.report is not None:
            tail += ["## Data validation", "", data.report.to_markdown(), ""]
        table, _ = reporting.write_report(
            out, rows=rows, time=time, basins=data.basins, simulated=simulated, observed=observed, params=params,
            series=series, final=final, units=self._units(), coords=reporting.basin_coords(data.ds, data.basins),
            attrs=self._attrs(data, f"difhydro evaluation {name}: {period[0]}..{period[1]}"), data=data,
            head=head, tail=tail, quantiles=quantiles, mixtures=mixtures, pit=pit)
        write_json(out / "provenance.json", {"difhydro": __version__, "run_config_hash": config_hash(self.config),
                                             **data.provenance()})
        table.attrs["folder"] = str(out)
        return table
