"""From predictions to a report, one way for ``train`` and ``evaluate``.

``difhydro train`` (:func:`difhydro.experiment.run.aggregate`) and ``difhydro evaluate``
(:meth:`difhydro.experiment.api.Run.evaluate`) both build their ``metrics.csv`` rows, the
scored mask, ``predictions.nc``, the figures and ``summary.md`` through these functions,
so a rule (spin-up days inside a period are simulated but not scored; an undefined metric
is NaN and counted, never ``-inf``; the seed of each row) holds in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import outputs, plots

__all__ = ["TIMING", "scored_observations", "metric_rows", "ensemble", "basin_coords", "model_units",
           "undefined_lines", "write_report"]

#: timing columns of metrics.csv (NaN where there was no training, e.g. evaluate)
TIMING = ("train_seconds", "seconds_per_epoch", "basin_days_per_second", "compile_seconds", "step_seconds")


def scored_observations(observed: np.ndarray, spin_up_in_period: int) -> np.ndarray:
    """``observed`` ``[basin, time]`` with the first ``spin_up_in_period`` days set to NaN:
    where the data start too late for a spin-up before the period, the model spins up on
    the period's first days, which are then simulated but not scored."""
    scored = np.array(observed, np.float32, copy=True)
    scored[:, : int(spin_up_in_period)] = np.nan
    return scored


def metric_rows(*, evaluation: str, fold: int, model: str, seed: int, basins: Sequence[str], simulated: np.ndarray,
                observed: np.ndarray, spin_up_in_period: int = 0, timing: Mapping[str, float] | None = None,
                gauged: set[str] | None = None) -> list[dict]:
    """One ``metrics.csv`` row per basin of ``simulated`` ``[basin, time]`` against
    ``observed`` ``[basin, time]`` (mm d-1, NaN = missing), spin-up days masked
    (:func:`scored_observations`). A metric that is not finite (NSE of a constant observed
    series, no scored day) is undefined: NaN in the row, counted in ``summary.md``."""
    sc = outputs.score(np.asarray(simulated, np.float32), scored_observations(observed, spin_up_in_period))
    timing = dict(timing or {})
    rows = []
    for i, b in enumerate(basins):
        row = {"evaluation": evaluation, "fold": int(fold), "model": model, "seed": int(seed), "basin": str(b)}
        if gauged is not None:
            row["gauged"] = str(b) in gauged
        for m in outputs.METRIC_NAMES:
            value = float(sc[m][i])
            row[m] = value if np.isfinite(value) else np.nan
        row["days"] = int(sc["days"][i])
        row.update({k: float(timing.get(k, np.nan)) for k in TIMING})
        rows.append(row)
    return rows


def ensemble(runs: Sequence[Mapping]) -> dict:
    """The ensemble of several seeds' results: the mean of their ``simulated`` series;
    training seconds summed, the other timings averaged."""
    out = {"simulated": np.mean([r["simulated"] for r in runs], axis=0),
           "spin_up_in_period": int(max(int(r.get("spin_up_in_period", 0)) for r in runs))}
    for k in TIMING:
        values = [float(r.get(k, np.nan)) for r in runs]
        out[k] = float(np.sum(values)) if k == "train_seconds" else (
            float(np.nanmean(values)) if np.isfinite(values).any() else np.nan)
    return out


def basin_coords(ds: xr.Dataset, basins: Sequence[str]) -> dict[str, np.ndarray]:
    """Gauge latitude and longitude (degrees) of ``basins`` for the netCDF, when the data
    have them (``gauge_lat`` / ``gauge_lon`` on the basin dimension: Caravan, CAMELS-US, a
    generic folder with ``latitude`` / ``longitude`` columns)."""
    if "gauge_lat" in ds and "gauge_lon" in ds and ds["gauge_lat"].dims == ("basin",):
        return {"lat": ds["gauge_lat"].sel(basin=list(basins)).values.astype(np.float64),
                "lon": ds["gauge_lon"].sel(basin=list(basins)).values.astype(np.float64)}
    return {}


def model_units(models) -> dict[str, str]:
    """Units of the parameters and states of built registry models (for the netCDF)."""
    units = {}
    for model in models:
        pm = model if hasattr(model, "param_spec") else getattr(model, "model", None)
        if pm is None:
            continue
        units.update({k: s.units for k, s in pm.param_spec.items()})
        units.update({k: "mm" for k in pm.state_names})
    return units


def undefined_lines(table: pd.DataFrame) -> list[str]:
    """Lines of ``summary.md`` counting the undefined (NaN) metrics per evaluation and model."""
    lines = []
    for (evaluation, model), g in table.groupby(["evaluation", "model"], sort=False):
        parts = [f"{m.upper()} {int(g[m].isna().sum())}" for m in outputs.METRIC_NAMES if g[m].isna().any()]
        if parts:
            lines.append(f"- {evaluation} / {model}: undefined for {', '.join(parts)} of {len(g)} basin row(s)")
    if lines:
        lines = ["Undefined metrics (a constant observed series, or no scored day; NaN in `metrics.csv`, left "
                 "out of the medians and means above):", ""] + lines + [""]
    return lines


def write_report(folder: Path, *, rows: Sequence[Mapping], time: pd.DatetimeIndex, basins: Sequence[str],
                 simulated: Mapping, observed: np.ndarray, params: Mapping, series: Mapping, final: Mapping,
                 units: Mapping[str, str], coords: Mapping[str, np.ndarray], attrs: Mapping[str, str], data,
                 head: Sequence[str], tail: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Write ``metrics.csv`` (``rows``), ``predictions.nc`` (``simulated`` ``(evaluation,
    model) -> [basin, time]`` with parameters, series and final states), the figures and
    ``summary.md`` (``head`` lines, the metrics table, undefined metrics, ``tail`` lines,
    figures) into ``folder``. Returns the metrics table and the figures (title -> file)."""
    folder = Path(folder)
    table = outputs.write_metrics(folder / "metrics.csv", rows)
    if simulated:
        nc = outputs.predictions_dataset(time, basins, simulated, observed, params=params, series=series,
                                         final_state=final, units=units, coords=coords, attrs=attrs)
        outputs.write_netcdf(nc, folder / "predictions.nc")
    figures = plots.run_figures(folder, table, simulated, observed, time, list(basins), params, series, data) \
        if len(table) else {}
    lines = list(head)
    if len(table):
        lines += outputs.summary_table(table) + [""] + undefined_lines(table)
    lines += list(tail)
    if figures:
        lines += ["## Figures", ""] + [f"- {k}: `{v}`" for k, v in figures.items()] + [""]
    outputs.write_summary_md(folder / "summary.md", lines)
    return table, figures
