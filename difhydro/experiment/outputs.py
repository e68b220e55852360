"""What a run writes for hydrologists: metrics.csv, CF-1.8 predictions.nc, summary.md, figures.

``metrics.csv`` (one row per evaluation, fold, model and basin), columns:

- ``evaluation``: ``temporal`` (gauged: the test period on training basins) or ``kfold``
  (ungauged: basins held out of training, k-fold) or the name of a later evaluation;
- ``fold``, ``model`` (registry name; ``<model>_ensemble`` = mean of the seeds'
  predictions; ``nh_cudalstm`` = neuralhydrology's LSTM, ``nh_arlstm`` its autoregressive LSTM), ``seed`` (-1 for an ensemble),
  ``basin``;
- ``nse``, ``kge`` (2009), ``mnse``, ``fhv`` (%), ``r``: :mod:`difhydro.training.metrics`
  over the scored days (NaN observations skipped); ``days``: scored days;
- ``train_seconds`` (whole training of that fold and seed), ``seconds_per_epoch``,
  ``basin_days_per_second`` (training throughput: target days seen per second of
  optimisation steps), ``compile_seconds`` (the first step's extra time: compilation),
  ``step_seconds`` (median time of a training step);
- probabilistic models only (a ``cmal`` / ``gmm`` head, neuralhydrology's peer with one; NaN
  for the others), in mm d-1 unless said: ``crps`` (mean CRPS over the scored days),
  ``pit_ks`` (Kolmogorov-Smirnov distance of the PIT values to the uniform law, 0 =
  calibrated), ``coverage_50`` / ``coverage_90`` (fraction of scored days inside the
  central 50 / 90 % interval) and ``width_50`` / ``width_90`` (its mean width).

``predictions.nc`` of a probabilistic model adds ``streamflow_quantile`` (dims ``evaluation,
model, basin, time, quantile``; ``quantile`` = probability of non-exceedance) and, for the
difhydro heads, the mixture itself: ``mixture_<model>__<field>`` over ``(evaluation, basin,
time, <model>__component)`` (attribute ``distribution``: ``cmal`` or ``gmm``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .._files import atomic_path, atomic_write_text
from ..training import metrics as metric_fns

__all__ = ["METRIC_NAMES", "PROBABILISTIC_NAMES", "LABELS", "score", "write_metrics", "predictions_dataset", "write_netcdf",
           "open_predictions", "summary_table", "write_summary_md"]

METRIC_NAMES = ("nse", "kge", "mnse", "fhv", "r")
#: the columns of a probabilistic model (difhydro.training.probabilistic.probabilistic_scores)
PROBABILISTIC_NAMES = ("crps", "pit_ks", "coverage_50", "width_50", "coverage_90", "width_90")
# CF has no standard name for a runoff depth rate in mm d-1 (runoff_flux is kg m-2 s-1), so
# streamflow carries a long_name and units only
_CF_STREAMFLOW: dict = {}
#: label (string) variables of the dimensions: CF coordinate variables must be numeric
LABELS = {"basin": "basin_id", "model": "model_name", "evaluation": "evaluation_name"}


def score(simulated: np.ndarray, observed: np.ndarray) -> dict[str, np.ndarray]:
    """Per-basin metrics of ``[basin, time]`` series (NaN observations skipped)."""
    out = {m: np.asarray(metric_fns.METRICS[m](simulated, observed)) for m in METRIC_NAMES}
    out["days"] = np.isfinite(observed).sum(-1)
    return out


def write_metrics(path: Path, rows: Sequence[Mapping]) -> pd.DataFrame:
    table = pd.DataFrame(list(rows))
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def predictions_dataset(
    time: pd.DatetimeIndex,
    basins: Sequence[str],
    simulated: Mapping[tuple[str, str], np.ndarray],
    observed: np.ndarray | None,
    *,
    params: Mapping[tuple[str, str], Mapping[str, np.ndarray]] = (),
    series: Mapping[tuple[str, str], Mapping[str, np.ndarray]] = (),
    final_state: Mapping[tuple[str, str], Mapping[str, np.ndarray]] = (),
    units: Mapping[str, str] = (),
    coords: Mapping[str, np.ndarray] = (),
    attrs: Mapping[str, str] = (),
    quantiles: Mapping[tuple[str, str], np.ndarray] = (),
    probabilities: Sequence[float] = (),
    mixtures: Mapping[tuple[str, str], Mapping] = (),
) -> xr.Dataset:
    """A CF-1.8 data set of a run's predictions.

    Args:
        time: days; basins: basin ids (the ``basin`` dimension, a string coordinate with
            ``cf_role = timeseries_id``).
        simulated: ``(evaluation, model) -> [basin, time]`` streamflow (mm d-1; NaN where
            the basin was not predicted by that evaluation).
        observed: ``[basin, time]`` observed streamflow or ``None`` (prediction only).
        params: ``(evaluation, model) -> {name: [basin, ...]}`` learned physical parameters
            (component axes averaged); series: the same for daily values (time-varying
            parameters, states) ``[basin, time]``; final_state: states at the last day.
        units: units of parameters and states by name.
        coords: extra per-basin coordinates (``lat``, ``lon``).
        attrs: global attributes (title, source, config hash, ...).
        quantiles: ``(evaluation, model) -> [basin, time, Q]`` quantiles (mm d-1) of a
            probabilistic model at ``probabilities`` ``[Q]``.
        mixtures: ``(evaluation, model) -> {"kind": "cmal" | "gmm", field: [basin, time, K]}``.
    """
    evaluations = sorted({k[0] for k in simulated})
    models = list(dict.fromkeys(k[1] for k in simulated))
    n_b, n_t = len(basins), len(time)
    sim = np.full((len(evaluations), len(models), n_b, n_t), np.nan, np.float32)
    for (e, m), v in simulated.items():
        sim[evaluations.index(e), models.index(m)] = v
    data = {"simulated_streamflow": (("evaluation", "model", "basin", "time"), sim, {
        **_CF_STREAMFLOW, "long_name": "simulated streamflow per unit catchment area", "units": "mm d-1"})}
    if observed is not None:
        data["observed_streamflow"] = (("basin", "time"), np.asarray(observed, np.float32), {
            **_CF_STREAMFLOW, "long_name": "observed streamflow per unit catchment area", "units": "mm d-1",
            "comment": "NaN where not observed or not scored"})

    def add(prefix, table, dims, shape, kind, keep_events=False):
        for (e, m), values in dict(table).items():
            for name, v in values.items():
                v = np.asarray(v, np.float32)
                extra = ()
                if keep_events:  # states of multi-component models, kept whole for a hot start
                    extra = tuple(f"{m}__{name}_dim{i}" for i in range(v.ndim - len(shape)))
                while v.ndim > len(shape) + len(extra):  # components / layers: their mean
                    v = v.mean(-1)
                key = f"{prefix}{m}__{name}"
                if key not in data:
                    data[key] = (("evaluation",) + dims + extra,
                                 np.full((len(evaluations),) + shape + v.shape[len(shape):], np.nan, np.float32),
                                 {"long_name": f"{kind} {name} of model {m}", "units": dict(units).get(name, "1")})
                data[key][1][evaluations.index(e)] = v

    if dict(quantiles):
        q = np.full((len(evaluations), len(models), n_b, n_t, len(probabilities)), np.nan, np.float32)
        for (e, m), v in dict(quantiles).items():
            q[evaluations.index(e), models.index(m)] = v
        data["streamflow_quantile"] = (("evaluation", "model", "basin", "time", "quantile"), q, {
            "long_name": "quantile of the predictive distribution of streamflow per unit catchment area",
            "units": "mm d-1", "comment": "probabilistic models only (NaN for the others)"})
    for (e, m), fields in dict(mixtures).items():
        kind = fields["kind"]
        for name, v in fields.items():
            if name == "kind":
                continue
            key = f"mixture_{m}__{name}"
            if key not in data:
                unit = "mm d-1" if name in ("loc", "scale") else "1"
                data[key] = (("evaluation", "basin", "time", f"{m}__component"),
                             np.full((len(evaluations), n_b, n_t, np.shape(v)[-1]), np.nan, np.float32),
                             {"long_name": f"{name} of the {kind} mixture components of model {m}", "units": unit,
                              "distribution": kind})
            data[key][1][evaluations.index(e)] = v
    add("param_", params, ("basin",), (n_b,), "learned physical parameter")
    add("series_", series, ("basin", "time"), (n_b, n_t), "daily value of")
    add("final_", final_state, ("basin",), (n_b,), "state at the last day:", keep_events=True)
    ds = xr.Dataset(
        data,
        coords={"evaluation": evaluations, "model": models, "basin": np.asarray(basins, dtype=object),
                "time": np.asarray(time, "datetime64[ns]")},
    )
    ds["basin"].attrs.update(cf_role="timeseries_id", long_name="basin (gauge) identifier")
    ds["model"].attrs.update(long_name="model (registry name)")
    ds["evaluation"].attrs.update(long_name="evaluation (temporal = gauged, kfold = ungauged, or its name)")
    ds["time"].attrs.update(standard_name="time", long_name="time", axis="T")
    if "quantile" in ds.dims:
        ds.coords["quantile"] = ("quantile", np.asarray(probabilities, np.float64),
                                 {"long_name": "probability of non-exceedance", "units": "1"})
    for name, values in dict(coords).items():
        cf = {"lat": ("latitude", "degrees_north"), "lon": ("longitude", "degrees_east")}[name]
        ds.coords[name] = ("basin", np.asarray(values, np.float64), {"standard_name": cf[0], "units": cf[1],
                                                                     "long_name": f"gauge {cf[0]}"})
    ds.attrs.update({"Conventions": "CF-1.8", "featureType": "timeSeries",
                     "history": f"{_dt.datetime.now().isoformat(timespec='seconds')} created by difhydro",
                     **dict(attrs)})
    return ds


def write_netcdf(ds: xr.Dataset, path: Path) -> Path:
    """Write ``ds`` as CF-1.8 netCDF, atomically: time as days since the first day, float32
    data, and the string labels of ``basin``, ``model``, ``evaluation`` as the label
    variables ``basin_id``, ``model_name``, ``evaluation_name`` (CF coordinate variables are
    numeric). :func:`open_predictions` reads it back with the labels as indexes."""
    from .rundir import check_parent

    check_parent(path)  # one line, not a traceback, when a parent of path is a file
    out = ds.copy()
    for dim, label in LABELS.items():
        if dim in out.dims:
            attrs = out[dim].attrs
            out = out.assign_coords({label: (dim, np.asarray(out[dim].values).astype(str), attrs)}).drop_vars(dim)
    coords = " ".join(k for k in ("lat", "lon", "basin_id") if k in out.coords)
    for v in out.data_vars:
        out[v].encoding.pop("coordinates", None)
        if "basin" in out[v].dims:
            out[v].attrs["coordinates"] = coords
    encoding = {"time": {"units": f"days since {str(ds.time.values[0])[:10]}", "calendar": "proleptic_gregorian",
                         "dtype": "float64", "_FillValue": None}}
    for c in ("lat", "lon", "quantile"):
        if c in out.coords:
            encoding[c] = {"_FillValue": None}
    for v in out.data_vars:
        encoding[v] = {"_FillValue": np.float32(np.nan), "zlib": True, "complevel": 1}
    with atomic_path(path, suffix=".nc") as tmp:
        out.to_netcdf(tmp, encoding=encoding)
    return Path(path)


def open_predictions(path) -> xr.Dataset:
    """A predictions file of difhydro with ``basin``, ``model``, ``evaluation`` as indexes
    again (``.sel(basin="01013500", model="lstm")`` works)."""
    ds = xr.open_dataset(path)
    for dim, label in LABELS.items():
        if label in ds.coords:
            ds = ds.assign_coords({dim: (dim, ds[label].values.astype(str), ds[label].attrs)}).drop_vars(label)
    return ds


def summary_table(table: pd.DataFrame) -> list[str]:
    """Markdown rows: per evaluation and model, median/mean NSE and KGE, NSE < 0, worst NSE,
    basins below NSE -1, seconds per epoch, total training seconds and throughput. A model
    trained with several seeds shows its lowest seed (``<model>_ensemble`` rows show the mean
    of the seeds' predictions); ``train s`` sums the folds (and seeds) of that row."""
    lines = ["| evaluation | model | basins | median NSE | mean NSE | median KGE | mean KGE | NSE < 0 | NSE < -1 | "
             "worst NSE | compile s | s / step | train s | basin-days / s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (evaluation, model), g in table.groupby(["evaluation", "model"], sort=False):
        runs = g.drop_duplicates(["fold", "seed"])
        g = g[g.seed == g.seed.min()]
        rate = runs.basin_days_per_second.dropna()
        lines.append(
            f"| {evaluation} | {model} | {g.basin.nunique()} | {_stat(np.median, g.nse, 3)} | {_stat(np.mean, g.nse, 3)} | "
            f"{_stat(np.median, g.kge, 3)} | {_stat(np.mean, g.kge, 3)} | {int((g.nse < 0).sum())} | {int((g.nse < -1).sum())} | "
            f"{_stat(np.min, g.nse, 2)} | {_fmt(runs.get('compile_seconds'), 1)} | {_fmt(runs.get('step_seconds'), 3)} | "
            f"{runs.train_seconds.sum():.0f} | {f'{rate.mean():.0f}' if len(rate) else '–'} |"
        )
    return lines


def _stat(fn, column, digits: int) -> str:
    """``fn`` over the defined (finite) values of ``column``; ``undefined`` when there are none."""
    values = np.asarray(column, float)
    values = values[np.isfinite(values)]
    return f"{fn(values):.{digits}f}" if values.size else "undefined"


def _fmt(column, digits: int) -> str:
    values = np.asarray(column if column is not None else [], float)
    values = values[np.isfinite(values)]
    return f"{values.max():.{digits}f}" if values.size else "–"


def write_summary_md(path: Path, lines: Sequence[str]) -> Path:
    return atomic_write_text(path, "\n".join(lines) + "\n")
