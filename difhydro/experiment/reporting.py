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
           "undefined_lines", "write_report", "forecast_of", "probabilistic_summary"]

#: timing columns of metrics.csv (NaN where there was no training, e.g. evaluate)
TIMING = ("train_seconds", "seconds_per_epoch", "basin_days_per_second", "compile_seconds", "step_seconds")


def scored_observations(observed: np.ndarray, spin_up_in_period: int) -> np.ndarray:
    """``observed`` ``[basin, time]`` with the first ``spin_up_in_period`` days set to NaN:
    where the data start too late for a spin-up before the period, the model spins up on
    the period's first days, which are then simulated but not scored."""
    scored = np.array(observed, np.float32, copy=True)
    scored[:, : int(spin_up_in_period)] = np.nan
    return scored


def forecast_of(result: Mapping):
    """The predictive distribution of a unit's result: a mixture of
    :mod:`difhydro.nn.distributions` (``distribution`` fields ``[basin, time, K]`` and
    ``distribution_kind``), draws ``[basin, time, n]`` (``samples``, neuralhydrology's), or
    ``None`` for a point forecast."""
    if result.get("distribution"):
        from ..nn.distributions import from_fields

        return from_fields(str(result["distribution_kind"]), {k: np.asarray(v, np.float32)
                                                              for k, v in result["distribution"].items()})
    if result.get("samples") is not None:
        return np.asarray(result["samples"], np.float32)
    return None


def probabilistic_summary(forecast, observed: np.ndarray, spin_up_in_period: int = 0, chunk: int = 32) -> dict:
    """Scores, quantiles and PIT of a probabilistic forecast against ``observed`` ``[basin,
    time]`` (mm d-1; spin-up days masked as in :func:`metric_rows`).

    Returns ``{"scores": name -> [basin]`` (:data:`outputs.PROBABILISTIC_NAMES`), ``"quantiles":
    [basin, time, Q]`` at :data:`~difhydro.training.probabilistic.QUANTILES` (mixture: exact
    inverse CDF; draws: empirical, linear interpolation), ``"pit": [basin, time]`` (NaN where
    not scored)}. Computed ``chunk`` basins at a time (the CMAL CRPS holds ``K³`` terms a day).
    """
    import jax.numpy as jnp

    from ..nn.distributions import quantiles as mixture_quantiles
    from ..training import probabilistic as prob

    y = scored_observations(observed, spin_up_in_period)
    draws = isinstance(forecast, np.ndarray)
    parts = []
    for lo in range(0, y.shape[0], chunk):
        yb = jnp.asarray(y[lo: lo + chunk])
        if draws:
            x = jnp.asarray(forecast[lo: lo + chunk])
            scores = prob.ensemble_scores(x, yb, prob.LEVELS)
            q = jnp.moveaxis(jnp.quantile(x, jnp.asarray(prob.QUANTILES), axis=-1), 0, -1)
            pit = prob.pit_ensemble(x, yb)
        else:
            d = type(forecast)(*(jnp.asarray(f[lo: lo + chunk]) for f in forecast))
            scores = prob.probabilistic_scores(d, yb, prob.LEVELS)
            q, pit = mixture_quantiles(d, prob.QUANTILES), prob.pit(d, yb)
        parts.append(({k: np.asarray(v) for k, v in scores.items()}, np.asarray(q, np.float32), np.asarray(pit)))
    return {"scores": {k: np.concatenate([p[0][k] for p in parts]) for k in outputs.PROBABILISTIC_NAMES},
            "quantiles": np.concatenate([p[1] for p in parts]), "pit": np.concatenate([p[2] for p in parts])}


def metric_rows(*, evaluation: str, fold: int, model: str, seed: int, basins: Sequence[str], simulated: np.ndarray,
                observed: np.ndarray, spin_up_in_period: int = 0, timing: Mapping[str, float] | None = None,
                gauged: set[str] | None = None, probabilistic: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """One ``metrics.csv`` row per basin of ``simulated`` ``[basin, time]`` against
    ``observed`` ``[basin, time]`` (mm d-1, NaN = missing), spin-up days masked
    (:func:`scored_observations`). A metric that is not finite (NSE of a constant observed
    series, no scored day) is undefined: NaN in the row, counted in ``summary.md``.
    ``probabilistic`` (the ``scores`` of :func:`probabilistic_summary`) adds the columns of a
    probabilistic model."""
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
        for m, values in dict(probabilistic or {}).items():
            value = float(values[i])
            row[m] = value if np.isfinite(value) else np.nan
        row["days"] = int(sc["days"][i])
        row.update({k: float(timing.get(k, np.nan)) for k in TIMING})
        rows.append(row)
    return rows


def ensemble(runs: Sequence[Mapping]) -> dict:
    """The ensemble of several seeds' results: the mean of their ``simulated`` series;
    training seconds summed, the other timings averaged; for probabilistic members the
    equal-weight mixture of their mixtures (``S`` members of ``K`` components: ``S K``)."""
    out = {"simulated": np.mean([r["simulated"] for r in runs], axis=0),
           "spin_up_in_period": int(max(int(r.get("spin_up_in_period", 0)) for r in runs))}
    kinds = {str(r.get("distribution_kind", "")) for r in runs if r.get("distribution")}
    if len(kinds) == 1 and all(r.get("distribution") for r in runs):  # the equal-weight mixture of the members'
        fields = {k: np.concatenate([r["distribution"][k] for r in runs], axis=-1) for k in runs[0]["distribution"]}
        fields["weights"] = fields["weights"] / len(runs)
        out["distribution"], out["distribution_kind"] = fields, kinds.pop()
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


def probabilistic_table(table: pd.DataFrame) -> list[str]:
    """Markdown rows of the probabilistic models: basin medians of CRPS, PIT KS distance,
    coverage and width of the 50 and 90 % intervals (none when no row has a CRPS)."""
    if "crps" not in table or not table["crps"].notna().any():
        return []
    lines = ["| evaluation | model | basins | median CRPS | median PIT KS | coverage 50 % | width 50 % | "
             "coverage 90 % | width 90 % |", "|---|---|---|---|---|---|---|---|---|"]
    for (evaluation, model), g in table.groupby(["evaluation", "model"], sort=False):
        g = g[g.seed == g.seed.min()]
        if not g["crps"].notna().any():
            continue
        cells = " | ".join(f"{np.nanmedian(g[c]):.3f}" for c in outputs.PROBABILISTIC_NAMES)
        lines.append(f"| {evaluation} | {model} | {g.basin.nunique()} | {cells} |")
    return lines + ["", "CRPS and widths in mm d-1 (basin medians); coverage: fraction of scored days inside the "
                    "central interval (nominal 0.5 and 0.9).", ""]


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
                 head: Sequence[str], tail: Sequence[str], quantiles: Mapping | None = None,
                 mixtures: Mapping | None = None, pit: Mapping | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Write ``metrics.csv`` (``rows``), ``predictions.nc`` (``simulated`` ``(evaluation,
    model) -> [basin, time]`` with parameters, series and final states; ``quantiles`` and
    ``mixtures`` of the probabilistic models, see :func:`outputs.predictions_dataset`), the
    figures (with ``pit`` ``(evaluation, model) -> [basin, time]``, the reliability figure) and
    ``summary.md`` (``head`` lines, the metrics table, undefined metrics, ``tail`` lines,
    figures) into ``folder``. Returns the metrics table and the figures (title -> file)."""
    from ..training.probabilistic import QUANTILES

    folder = Path(folder)
    table = outputs.write_metrics(folder / "metrics.csv", rows)
    if simulated:
        nc = outputs.predictions_dataset(time, basins, simulated, observed, params=params, series=series,
                                         final_state=final, units=units, coords=coords, attrs=attrs,
                                         quantiles=quantiles or {}, probabilities=QUANTILES, mixtures=mixtures or {})
        outputs.write_netcdf(nc, folder / "predictions.nc")
    figures = plots.run_figures(folder, table, simulated, observed, time, list(basins), params, series, data) \
        if len(table) else {}
    if pit:
        figures["reliability of the probabilistic models (PIT histogram, coverage vs nominal)"] = plots.reliability(
            {f"{m} ({e})": v for (e, m), v in pit.items()}, folder / "reliability.png").name
    lines = list(head)
    if len(table):
        lines += outputs.summary_table(table) + [""] + probabilistic_table(table) + undefined_lines(table)
    lines += list(tail)
    if figures:
        lines += ["## Figures", ""] + [f"- {k}: `{v}`" for k, v in figures.items()] + [""]
    outputs.write_summary_md(folder / "summary.md", lines)
    return table, figures
