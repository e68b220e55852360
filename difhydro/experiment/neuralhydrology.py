"""neuralhydrology's ``cudalstm`` and ``arlstm`` as the peers of difhydro's regional LSTM.

:func:`run_cudalstm` trains neuralhydrology's (NH) ``CudaLSTM`` through NH's own Caravan
dataset class, trainer and tester on the basins, periods, inputs and attributes that
difhydro's LSTM gets in the same experiment, and returns NH's per-basin test-period
predictions as ``[basin, time]`` arrays so that they can be put next to ours.
:func:`run_arlstm` does the same with NH's autoregressive ``ARLSTM`` (yesterday's observed
flow as an input, :func:`autoregressive_config`), the peer of difhydro's forecasting LSTM
(``lstm`` with ``autoregressive: true``).

torch and neuralhydrology are imported lazily (``pip install -e '.[peers]'``): difhydro
imports without them. Checked against neuralhydrology 1.13.0 with torch 2.13.0 (CPU).

What this module relies on in NH (paths below ``neuralhydrology/``; nothing is copied):

- ``datasetzoo/caravan.py``: ``Caravan._load_basin_data`` calls
  ``load_caravan_timeseries(data_dir, basin)`` without ``filetype``, i.e. it reads only
  ``timeseries/netcdf/<source>/<basin>.nc``; ``load_caravan_timeseries(..., filetype="csv")``
  reads ``timeseries/csv/<source>/<basin>.csv`` (``date`` column as index, empty cells ->
  NaN). ``load_caravan_attributes`` / ``_load_attribute_files_of_subdataset`` read *every*
  ``attributes/<source>/*.csv`` (indexed by ``gauge_id``) and join them column-wise.
  When every basin has a netCDF file the stock ``dataset: caravan`` is used; otherwise
  (the CSV-only layout of ``shared/data/camels_caravan``) a subclass of ``Caravan`` whose
  only change is ``filetype="csv"`` is registered under :data:`CSV_DATASET` with
  ``datasetzoo.register_dataset`` and named in the config.
- ``datasetzoo/basedataset.py``: ``BaseDataset._load_or_create_xarray_dataset`` loads each
  period from ``start - (seq_length - predict_last_n)`` days (a warm-up read from the data
  *before* the period), sets targets before ``start`` to NaN and reindexes to a gap-free
  daily axis; ``_create_lookup_table`` / ``_validate_samples`` keep a training window only
  if its inputs have no NaN and at least one of its last ``predict_last_n`` targets is
  observed, and keep every window with a full history at evaluation;
  ``_calculate_per_basin_std`` gives the per-basin streamflow std (train period) of the NSE
  loss; ``_load_combined_attributes`` standardises the static attributes over the training
  basins (and refuses an attribute whose std is 0 or NaN).
- ``training/basetrainer.py``: ``BaseTrainer`` (``_create_folder_structure`` makes
  ``run_dir/<experiment_name>_<ddmm>_<HHMMSS>``; ``_set_random_seeds`` seeds ``random``,
  ``numpy`` and ``torch`` globally; ``_train_epoch`` stops an epoch after
  ``max_updates_per_epoch`` batches, skips the step of a NaN loss and clips the gradient
  norm at ``clip_gradient_norm``; ``train_and_validate`` runs ``epochs`` epochs and saves
  weights when ``epoch % save_weights_every == 0``). ``training/__init__.py``:
  ``get_optimizer`` (Adam at ``learning_rate[0]``), ``get_loss_obj`` (``"NSE"`` ->
  ``training/loss.py::MaskedNSELoss``, squared error weighted by
  ``1 / (basin_std + 0.1)**2``).
- ``evaluation/tester.py``: ``get_tester`` -> ``RegressionTester``; ``BaseTester.evaluate``
  builds one dataset per basin, runs every ``seq_length`` window ending on a test day and
  returns ``results[basin][freq]["xr"]`` with ``streamflow_obs`` / ``streamflow_sim`` over
  ``(date, time_step)`` (window end date x the last ``predict_last_n`` steps, de-normalised);
  its own metrics read ``time_step = 0`` (the last step of each window) only.
- ``modelzoo/arlstm.py``: ``ARLSTM`` (one shift only; the last dynamic input is the lagged
  target, NaN replaced by the model's own prediction, plus a flag input);
  ``datasetzoo/basedataset.py::_add_lagged_features`` and ``random_holdout_from_dynamic_features``
  (``utils/samplingutils.py::bernoulli_subseries_sampler``), see :func:`autoregressive_config`.
- ``modelzoo/cudalstm.py``: ``CudaLSTM`` (``torch.nn.LSTM``, forget-gate block of
  ``bias_hh_l0`` set to ``initial_forget_bias``, ``output_dropout`` before the linear head).
- ``utils/config.py``: ``Config`` (unknown keys are refused, ``*_date`` keys are parsed as
  ``DD/MM/YYYY``, ``learning_rate`` is a float or ``{epoch: rate}``). ``utils/logging_utils.py``:
  ``setup_logging`` calls ``logging.basicConfig`` on the root logger and replaces
  ``sys.excepthook``; both are undone after each run here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["run_cudalstm", "run_arlstm", "autoregressive_config", "lag_note", "nh_learning_rate", "CSV_DATASET",
           "TARGET", "LAGGED_TARGET", "TEST_OVERRIDES"]

#: NH dataset key of the CSV-reading subclass of NH's ``Caravan`` registered by this module.
CSV_DATASET = "caravan_csv"
#: The Caravan streamflow column (mm/d), NH's only target here.
TARGET = "streamflow"
#: difhydro's defaults (``difhydro.nn.lstm.LSTM.initial_forget_bias``,
#: ``difhydro.train.TrainConfig.clip_norm``), applied to NH so both LSTMs start and clip alike.
INITIAL_FORGET_BIAS = 3.0
CLIP_GRADIENT_NORM = 1.0

#: NH's loss of each head (``training/__init__.py::get_loss_obj``)
_LOSSES = {"regression": "NSE", "cmal": "CMALLoss", "gmm": "GMMLoss"}

_INSTALL = "pip install -e '.[peers]'"
#: the lagged target that NH's ``arlstm`` reads as its last dynamic input (NH's name for the
#: ``lagged_features`` column ``streamflow`` shifted by one day)
LAGGED_TARGET = f"{TARGET}_shift1"


def _peers():
    """``(torch, neuralhydrology version)`` or a one-line ImportError."""
    try:
        import torch
        from neuralhydrology.__about__ import __version__ as nh_version
    except ImportError as error:
        raise ImportError(f"run_cudalstm needs torch and neuralhydrology ({error.name} is missing): {_INSTALL}") from None
    return torch, nh_version


@functools.cache
def _register_csv_caravan() -> type:
    """Register (once) NH's ``Caravan`` reading ``timeseries/csv`` as :data:`CSV_DATASET`.

    Needed because ``neuralhydrology/datasetzoo/caravan.py::Caravan._load_basin_data``
    always asks ``load_caravan_timeseries`` for netCDF; the subclass changes nothing else.
    """
    from neuralhydrology.datasetzoo import register_dataset
    from neuralhydrology.datasetzoo.caravan import Caravan, load_caravan_timeseries

    class CaravanCsv(Caravan):
        """NH's Caravan dataset reading ``timeseries/csv/<source>/<basin>.csv``."""

        def _load_basin_data(self, basin: str) -> pd.DataFrame:
            return load_caravan_timeseries(data_dir=self.cfg.data_dir, basin=basin, filetype="csv")

    register_dataset(CSV_DATASET, CaravanCsv)
    return CaravanCsv


def _period(period: Sequence[str], name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    from ..data.batching import resolve_period

    return resolve_period(tuple(period), f"{name}_period")


def _source(basin: str) -> str:
    if not isinstance(basin, str) or "_" not in basin:
        raise ValueError(f"unknown basin {basin!r}: Caravan gauge ids look like 'camels_01022500'")
    return basin.split("_")[0]


def _check_inputs(
    data_dir: Path,
    basins: list[str],
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    dynamic_inputs: list[str],
    static_attributes: list[str],
) -> str:
    """One-line errors for what NH would report late or obscurely; returns the dataset key."""
    if not (data_dir / "timeseries").is_dir() or not (data_dir / "attributes").is_dir():
        raise FileNotFoundError(f"{data_dir} is not a Caravan folder (needs timeseries/ and attributes/)")
    if not basins:
        raise ValueError("basins is empty")
    if len(set(basins)) != len(basins):
        raise ValueError(f"basins has duplicates: {sorted({b for b in basins if basins.count(b) > 1})}")

    csv_files, netcdf = {}, True
    for basin in basins:
        source = _source(basin)
        csv = data_dir / "timeseries" / "csv" / source / f"{basin}.csv"
        nc = data_dir / "timeseries" / "netcdf" / source / f"{basin}.nc"
        if not csv.is_file() and not nc.is_file():
            raise ValueError(f"unknown basin {basin!r}: neither {csv} nor {nc} exists")
        netcdf &= nc.is_file()
        if csv.is_file():
            csv_files[basin] = csv
    key = "caravan" if netcdf else CSV_DATASET
    if not netcdf and len(csv_files) < len(basins):
        missing = [b for b in basins if b not in csv_files]
        raise ValueError(f"NH reads one format per run: {missing} have netCDF only, the others CSV only")

    # attributes: NH joins every attributes/<source>/*.csv on gauge_id
    for source in sorted({_source(b) for b in basins}):
        files = sorted((data_dir / "attributes" / source).glob("*.csv"))
        if not files:
            raise FileNotFoundError(f"no attribute files in {data_dir / 'attributes' / source}")
        found = pd.DataFrame(index=pd.Index([b for b in basins if _source(b) == source], name="gauge_id"))
        for file in files:
            header = pd.read_csv(file, nrows=0).columns
            if "gauge_id" not in header:
                raise ValueError(f"{file} has no gauge_id column (NH indexes every attribute file by it)")
            wanted = [a for a in static_attributes if a in header and a not in found.columns]
            table = pd.read_csv(file, usecols=["gauge_id", *wanted], index_col="gauge_id")
            found = found.join(table[wanted])
        absent = [a for a in static_attributes if a not in found.columns]
        if absent:
            raise ValueError(f"static attributes {absent} are in no attribute file of {data_dir / 'attributes' / source}")
        holes = found[static_attributes].isna()
        if holes.to_numpy().any():
            basin = holes.any(axis=1).idxmax()
            missing = holes.columns[holes.loc[basin]].tolist()
            raise ValueError(f"unknown basin {basin!r} in the attribute files (no {missing})")

    # dynamic inputs and period coverage (CSV layout; NH checks the netCDF one itself)
    if csv_files and key == CSV_DATASET:
        header = pd.read_csv(next(iter(csv_files.values())), nrows=0).columns
        absent = [c for c in [*dynamic_inputs, TARGET] if c not in header]
        if absent:
            raise ValueError(f"columns {absent} are not in the Caravan CSV files (have {list(header)[1:]})")
        first, last, observed = pd.Timestamp.max, pd.Timestamp.min, 0
        train_start, train_end = periods["train"]
        for csv in csv_files.values():
            q = pd.read_csv(csv, usecols=["date", TARGET], parse_dates=["date"], index_col="date")[TARGET]
            first, last = min(first, q.index[0]), max(last, q.index[-1])
            observed += int(q.loc[train_start:train_end].notna().sum())
        for name, (start, end) in periods.items():
            if end < first or start > last:
                raise ValueError(
                    f"empty {name} period: {start.date()}..{end.date()} is outside the data ({first.date()}..{last.date()})"
                )
        if observed == 0:
            raise ValueError(f"empty train period: no observed {TARGET} in {train_start.date()}..{train_end.date()}")
    return key


def _new_folder(work_dir: Path, model: str) -> Path:
    """A fresh ``work_dir/nh_<model>_<stamp>[_k]`` (never an existing one)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        folder = work_dir / (f"nh_{model}_{stamp}" + (f"_{k}" if k else ""))
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RuntimeError(f"could not create a new run folder in {work_dir}")


@contextlib.contextmanager
def _contained_logging(log_file: Path):
    """Send NH's log to ``log_file`` only; undo NH's root-logger and excepthook changes."""
    root, nh = logging.getLogger(), logging.getLogger("neuralhydrology")
    root_handlers, root_level = list(root.handlers), root.level
    nh_level, nh_propagate, excepthook = nh.level, nh.propagate, sys.excepthook
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s: %(message)s"))
    nh.addHandler(handler)
    nh.setLevel(logging.INFO)
    nh.propagate = False
    try:
        yield
    finally:
        nh.removeHandler(handler)
        handler.close()
        nh.setLevel(nh_level)
        nh.propagate = nh_propagate
        for extra in [h for h in root.handlers if h not in root_handlers]:
            root.removeHandler(extra)
            extra.close()
        root.setLevel(root_level)
        sys.excepthook = excepthook


@contextlib.contextmanager
def _torch_threads(torch, threads: int | None):
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _nh_date(day: pd.Timestamp) -> str:
    return day.strftime("%d/%m/%Y")


def _to_grid(xr, time: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NH's ``(date, time_step[, samples])`` result -> ``(simulated, observed[, samples])`` on ``time``.

    ``simulated``: the last step (``time_step == 0``) of the window ending on each day, as
    NH's own metrics use it; with a ``samples`` axis (an uncertainty head) the median of
    that step's draws, and the draws themselves ``[time, n]`` as a third value.
    ``observed``: the same days, plus the days before the first window end, read from the
    first window's earlier steps (a target does not depend on the window it is read from).
    """
    steps = np.asarray(xr["time_step"].values)
    ends = pd.DatetimeIndex(xr["date"].values)
    last = int(np.flatnonzero(steps == 0)[0])
    sim = np.asarray(xr[f"{TARGET}_sim"].values, dtype=np.float64)
    obs = np.asarray(xr[f"{TARGET}_obs"].values, dtype=np.float64)
    draws = None
    if sim.ndim == 3:  # (date, time_step, samples)
        draws = pd.DataFrame(sim[:, last, :], index=ends).reindex(time).to_numpy()
        simulated = np.median(draws, axis=-1)
    else:
        simulated = pd.Series(sim[:, last], index=ends).reindex(time).to_numpy()
    head = pd.Series(obs[0], index=ends[0] + pd.to_timedelta(steps, unit="D"))
    observed = pd.concat([head, pd.Series(obs[:, last], index=ends)])
    observed = observed[~observed.index.duplicated(keep="last")].reindex(time).to_numpy()
    return (simulated, observed) if draws is None else (simulated, observed, draws)


#: What evaluation changes in the trained run's config: one window ending on every test day,
#: scored on its last day (``predict_last_n: 1``), and no random holdout, which NH's
#: ``BaseDataset._load_or_create_xarray_dataset`` would otherwise apply to the test data too
#: (it draws it whenever a dataset is loaded, training or not).
TEST_OVERRIDES = {"predict_last_n": 1, "random_holdout_from_dynamic_features": {}}


def autoregressive_config(holdout: float) -> dict[str, Any]:
    """The NH config keys that make ``arlstm`` read the observed flow of day ``t - 1``.

    ``lagged_features: {streamflow: [1]}`` adds the column ``streamflow_shift1``
    (``BaseDataset._add_lagged_features``: ``df[streamflow].shift(1)`` on the whole basin
    series, before the period is cut, so the first day of a period reads the day before it);
    ``autoregressive_inputs: [streamflow_shift1]`` appends it as the LAST dynamic input, after
    the sample check (``_create_lookup_table``), so that a missing lagged value never drops a
    window. ``modelzoo/arlstm.py::ARLSTM.forward`` replaces a NaN lagged value by the model's
    own prediction of that day (``last_prediction``, 0 in normalised units before the window's
    first prediction) and adds a flag input that is 1 where it did so, 0 where the value is
    observed.

    Holdout: NH's ``random_holdout_from_dynamic_features: {streamflow_shift1:
    {missing_fraction: p, mean_missing_length: L}}`` (``utils/samplingutils.py::
    bernoulli_subseries_sampler``) hides the lagged flow by a two-state Markov chain: a shown
    day is followed by a hidden one with probability ``(1/L) p / (1 - p)``, a hidden day by a
    shown one with probability ``1/L``. With ``L = 1 / (1 - p)`` both transitions give "hidden
    with probability p", independently of the day before, i.e. each day is hidden
    independently with probability ``p`` as in difhydro (:func:`~difhydro.forecast.holdout_mask`).
    Unlike difhydro, NH draws the hidden days once, when a dataset is loaded (numpy's global
    generator, seeded by NH's ``seed``), so every update sees the same hidden days, and it
    would draw them for the test data too (see :data:`TEST_OVERRIDES`). ``p = 0`` writes no
    holdout key.

    Args:
        holdout: probability ``p`` in ``[0, 1)`` of hiding each training day's lagged flow.

    Returns:
        ``{"lagged_features", "autoregressive_inputs"[, "random_holdout_from_dynamic_features"]}``.
    """
    if not 0.0 <= float(holdout) < 1.0:
        raise ValueError(f"holdout must be in [0, 1) (the share of training days whose lagged flow NH hides), "
                         f"got {holdout}")
    config: dict[str, Any] = {"lagged_features": {TARGET: [1]}, "autoregressive_inputs": [LAGGED_TARGET]}
    if holdout > 0:
        config["random_holdout_from_dynamic_features"] = {
            LAGGED_TARGET: {"missing_fraction": float(holdout), "mean_missing_length": 1.0 / (1.0 - float(holdout))}}
    return config


def lag_note(lags: int) -> str:
    """Why the arlstm peer reads fewer lagged days than difhydro's lstm with ``lags`` (empty
    when they match): NH's ``ARLSTM._get_ar_shift`` allows one shift only."""
    if int(lags) == 1:
        return ""
    return (f"the lstm reads the observed flow of days t-1..t-{int(lags)} (lags: {int(lags)}); NH's arlstm allows one "
            "shift, so the peer reads day t-1 only (lags not matched)")


def nh_learning_rate(learning_rate: float | Mapping[int, float], updates: int) -> float | dict[int, float]:
    """NH's ``learning_rate`` for a rate per update: NH sets the rate of epoch ``e`` (1-based)
    from ``learning_rate[e]`` when that key exists and creates Adam at ``learning_rate[0]``;
    with one update per epoch, update ``i`` (0-based) is epoch ``i + 1``. Only the epochs where
    the rate changes are written. A constant stays a float."""
    if not isinstance(learning_rate, Mapping):
        return float(learning_rate)
    missing = [i for i in range(int(updates)) if i not in learning_rate]
    if missing:
        raise ValueError(f"learning_rate: no rate for update(s) {missing[:5]} of {updates}")
    out, last = {0: float(learning_rate[0])}, None
    for i in range(int(updates)):
        rate = float(learning_rate[i])
        if rate != last:
            out[i + 1], last = rate, rate
    return out


def run_cudalstm(
    data_dir: str | Path,
    basins: Sequence[str],
    train_period: Sequence[str],
    test_period: Sequence[str],
    **options: Any,
) -> dict[str, Any]:
    """Train NH's ``cudalstm`` on Caravan basins and return its test-period predictions.

    Training: NH's ``BaseTrainer`` on ``basins`` over ``train_period`` (inclusive ISO
    dates) with the NSE loss (NH ``MaskedNSELoss``), Adam at ``learning_rate`` (a constant, or
    ``{update index (0-based): rate}``, e.g. difhydro's cosine schedule,
    :meth:`~difhydro.training.TrainConfig.learning_rates`: NH's ``learning_rate`` per epoch,
    one update each, see :func:`nh_learning_rate`),
    gradient-norm clipping at :data:`CLIP_GRADIENT_NORM`, forget-gate bias
    :data:`INITIAL_FORGET_BIAS`, ``dropout`` as NH's ``output_dropout``, inputs
    ``dynamic_inputs`` (Caravan column names) plus the standardised ``static_attributes``
    at every step, target ``streamflow``. NH standardises inputs and target with the
    training basins' train-period statistics.

    Matched budget: exactly ``updates`` optimiser steps of ``batch_size`` windows of
    ``seq_length`` days, each scored on its last ``predict_last_n`` days. The config sets
    ``epochs = updates`` and ``max_updates_per_epoch = 1``: each NH "epoch" re-shuffles the
    training windows and takes one full batch (``BaseTrainer._train_epoch`` breaks after
    ``max_updates_per_epoch`` batches), so every update draws a fresh uniform batch, as
    difhydro's sampler does, whatever the number of windows, and ``save_weights_every =
    updates`` writes one checkpoint at the end. The steps are counted with a
    ``register_step_post_hook`` on NH's optimiser and returned as ``updates`` (NH skips a
    step whose loss is NaN; with ``allow_subsequent_nan_losses = 0`` it then stops with an
    error). A training set with fewer windows than ``batch_size`` is refused, since its
    batches could not be full.

    Heads: ``head="regression"`` (the above), or NH's uncertainty heads ``"cmal"`` /
    ``"gmm"`` (``modelzoo/head.py``: ``CMAL``, ``GMM`` with ``n_distributions`` components,
    trained with NH's ``CMALLoss`` / ``GMMLoss``, the negative log-likelihood, instead of the
    NSE loss); NH's ``UncertaintyTester`` then draws ``n_samples`` values per day
    (``utils/samplingutils.py``: ``sample_cmal`` / ``sample_gmm``, with
    ``negative_sample_handling: none``, so that the draws come from the same law as
    difhydro's mixture on the whole real line), returned as ``samples``, and ``simulated``
    is their median.

    Evaluation: NH's ``RegressionTester`` on the same basins over ``test_period``, with
    the trained model in memory and ``predict_last_n`` set to 1 (Kratzert et al.'s
    evaluation): one ``seq_length`` window ending on every test day, whose last step is
    that day's prediction. NH reads the ``seq_length - 1`` days *before* the test period
    as the first windows' history (``BaseDataset._load_or_create_xarray_dataset``), so every
    test day is predicted; ``simulated`` is NaN only where a window's forcing has a gap.
    Simulations are not clipped at 0.

    Files: everything goes to a new folder ``work_dir/nh_cudalstm_<stamp>/`` (basin file
    ``basins.txt``, NH config ``config.yml``, NH log ``neuralhydrology.log`` and NH's run
    directory with its scaler, config, checkpoint and ``test/.../test_results.p`` and
    ``test_metrics.csv``); nothing else is written and ``data_dir`` is only read.

    Side effects: NH seeds ``random``, ``numpy`` and ``torch`` globally with ``seed``;
    ``threads`` sets ``torch.set_num_threads`` for the run (restored afterwards); NH's
    logging set-up is contained (see the module docstring).

    Args:
        data_dir: Caravan root (``timeseries/{csv,netcdf}/<source>/``, ``attributes/<source>/``).
        basins: Caravan gauge ids, e.g. ``"camels_01022500"``; results keep this order.
        train_period, test_period: ``("YYYY-MM-DD", "YYYY-MM-DD")``, both ends included.
        options: keyword arguments, the following (all required unless a default is named).
        dynamic_inputs: Caravan time-series columns fed at every step.
        static_attributes: columns of the ``attributes/<source>/*.csv`` tables.
        hidden_size, seq_length, predict_last_n, batch_size, updates, learning_rate,
            dropout, seed: as described above.
        work_dir: parent of the new run folder (created if needed).
        threads: torch intra-op threads for this run (``None``: leave as is). On a 2-core
            machine shared with another busy process, 2 threads made NH's training and
            evaluation 5-10x slower than 1 (torch's OpenMP workers wait on each other);
            results differ slightly between thread counts (float summation order).
        progress: print stage and update progress lines (NH's own log goes to the file;
            default True).
        head, n_distributions, n_samples: the uncertainty head (default ``"regression"``,
            3, 100), as described above.

    Returns:
        ``{"basins": list, "time": DatetimeIndex (test days), "simulated": [basin, time]
        float64 mm/d, "observed": [basin, time] mm/d (NaN where missing; NH's copy of the
        Caravan streamflow, float32 round trip), "train_seconds": NH trainer set-up
        (data loading, normalisation; the first call in a process also compiles NH's
        numba sample check, about 3 s) + training loop, "train_setup_seconds": the set-up
        part, "evaluate_seconds": tester set-up + evaluation + saving, "updates": optimiser
        steps taken, "config": the NH config dict as written, "run_dir": NH's run
        directory, "versions": {"neuralhydrology", "torch"}, "samples": [basin, time,
        n_samples] float32 mm/d (uncertainty heads) or None}``.

    Raises:
        ImportError: torch or neuralhydrology missing (``pip install -e '.[peers]'``).
        ValueError: unknown basin or attribute or column, empty period, bad sizes.
    """
    return _run_peer("cudalstm", data_dir, basins, train_period, test_period, **options)


def run_arlstm(
    data_dir: str | Path,
    basins: Sequence[str],
    train_period: Sequence[str],
    test_period: Sequence[str],
    *,
    holdout: float,
    **options: Any,
) -> dict[str, Any]:
    """Train NH's autoregressive ``arlstm`` (the observed flow of day ``t - 1`` as an input)
    and return its one-day-ahead test-period forecasts: the peer of difhydro's ``lstm`` with
    ``autoregressive: true``.

    Everything is as in :func:`run_cudalstm` (data, inputs, attributes, periods, windows,
    budget, learning rates, seed, threads, files in a new ``work_dir/nh_arlstm_<stamp>/``,
    result keys), with NH's ``model: arlstm`` (``modelzoo/arlstm.py``: the same single-layer
    LSTM, stepped one day at a time in Python, with a regression head only) and the keys of
    :func:`autoregressive_config`: the lagged flow ``streamflow_shift1`` as the last dynamic
    input plus NH's flag input, and, in training only, each day's lagged flow hidden
    independently with probability ``holdout`` (a hidden or missing value is replaced by the
    model's own prediction of that day and flagged).

    Evaluation reads the OBSERVED lagged flow, as difhydro's lstm is scored: the tester's
    config is updated with :data:`TEST_OVERRIDES` (no holdout: NH's
    ``BaseDataset._load_or_create_xarray_dataset`` applies ``random_holdout_from_dynamic_features``
    to any dataset it loads, test included), NH's ``RegressionTester`` loads
    ``streamflow_shift1`` from the Caravan file (``_add_lagged_features``, the observed series
    shifted by one day; the test period's first day reads the day before it) and runs one
    window ending on every test day, whose last step reads the observed flow of the day before
    (NH's tester has no autoregressive roll-out of its own: ``evaluation/tester.py`` calls the
    model on the dataset's windows). Only where that observation is missing does the
    model use its own prediction of that day, as ``ARLSTM.forward`` does in training.
    ``test_config`` in the result holds the tester's values of these keys.

    NH allows one shift only (``ARLSTM._get_ar_shift``), hence one lag; difhydro's ``lags: n``
    cannot be matched beyond ``n = 1``.

    Raises:
        ImportError: torch or neuralhydrology missing (``pip install -e '.[peers]'``).
        ValueError: as :func:`run_cudalstm`; ``holdout`` outside ``[0, 1)``.
    """
    return _run_peer("arlstm", data_dir, basins, train_period, test_period, holdout=holdout, **options)


def _run_peer(
    model: str,
    data_dir: str | Path,
    basins: Sequence[str],
    train_period: Sequence[str],
    test_period: Sequence[str],
    *,
    dynamic_inputs: Sequence[str],
    static_attributes: Sequence[str],
    hidden_size: int,
    seq_length: int,
    predict_last_n: int,
    batch_size: int,
    updates: int,
    learning_rate: float | Mapping[int, float],
    dropout: float,
    seed: int,
    work_dir: str | Path,
    threads: int | None = None,
    progress: bool = True,
    head: str = "regression",
    n_distributions: int = 3,
    n_samples: int = 100,
    holdout: float = 0.0,
) -> dict[str, Any]:
    """NH's ``model`` (``"cudalstm"`` or ``"arlstm"``) trained and evaluated as :func:`run_cudalstm` and
    :func:`run_arlstm` describe; ``holdout`` is the arlstm's only."""
    torch, nh_version = _peers()

    data_dir = Path(data_dir).expanduser().resolve()
    basins = [str(b) for b in basins]
    dynamic_inputs, static_attributes = [str(c) for c in dynamic_inputs], [str(a) for a in static_attributes]
    train, test = _period(train_period, "train"), _period(test_period, "test")
    for name, value in (("hidden_size", hidden_size), ("seq_length", seq_length), ("predict_last_n", predict_last_n),
                        ("batch_size", batch_size), ("updates", updates)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if predict_last_n > seq_length:
        raise ValueError(f"predict_last_n ({predict_last_n}) must not exceed seq_length ({seq_length})")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if not dynamic_inputs:
        raise ValueError("dynamic_inputs is empty")
    if head not in _LOSSES:
        raise ValueError(f"head must be one of {sorted(_LOSSES)}, got {head!r}")
    for name, value in (("n_distributions", n_distributions), ("n_samples", n_samples)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if model not in ("cudalstm", "arlstm"):
        raise ValueError(f"model must be 'cudalstm' or 'arlstm', got {model!r}")
    if model == "arlstm" and head != "regression":
        raise ValueError(f"NH's arlstm takes head 'regression' only (its output feeds back as the lagged flow), "
                         f"got {head!r}")
    if model == "arlstm":
        extra = autoregressive_config(holdout)  # checks holdout
    elif holdout:
        raise ValueError(f"holdout is the arlstm's option (the lagged flow it hides); cudalstm got {holdout}")
    dataset = _check_inputs(data_dir, basins, {"train": train, "test": test}, dynamic_inputs, static_attributes)
    if dataset == CSV_DATASET:
        _register_csv_caravan()

    from neuralhydrology.evaluation import get_tester
    from neuralhydrology.training.basetrainer import BaseTrainer
    from neuralhydrology.utils.config import Config
    from neuralhydrology.utils.errors import NoEvaluationDataError, NoTrainDataError

    def say(message: str) -> None:
        if progress:
            print(f"[neuralhydrology {model}] {message}", flush=True)

    folder = _new_folder(Path(work_dir).expanduser().resolve(), model)
    basin_file = folder / "basins.txt"
    basin_file.write_text("\n".join(basins) + "\n")
    config = {
        "experiment_name": model,
        "run_dir": str(folder),
        "data_dir": str(data_dir),
        "dataset": dataset,
        "train_basin_file": str(basin_file),
        "test_basin_file": str(basin_file),
        "train_start_date": _nh_date(train[0]),
        "train_end_date": _nh_date(train[1]),
        "test_start_date": _nh_date(test[0]),
        "test_end_date": _nh_date(test[1]),
        "dynamic_inputs": dynamic_inputs,
        "static_attributes": static_attributes,
        "target_variables": [TARGET],
        "model": model,
        "head": head,
        "output_activation": "linear",
        "hidden_size": int(hidden_size),
        "initial_forget_bias": INITIAL_FORGET_BIAS,
        "output_dropout": float(dropout),
        "optimizer": "Adam",
        "loss": _LOSSES[head],
        "learning_rate": nh_learning_rate(learning_rate, updates),
        "clip_gradient_norm": CLIP_GRADIENT_NORM,
        "batch_size": int(batch_size),
        "seq_length": int(seq_length),
        "predict_last_n": int(predict_last_n),
        "epochs": int(updates),
        "max_updates_per_epoch": 1,
        "save_weights_every": int(updates),
        "validate_every": None,
        "allow_subsequent_nan_losses": 0,
        "metrics": ["NSE"],
        "device": "cpu",
        "num_workers": 0,
        "seed": int(seed),
        "log_tensorboard": False,
        "log_n_figures": 0,
        "save_train_data": False,
        "verbose": 0,
    }
    if model == "arlstm":
        config.update(extra)
    if head != "regression":
        config.update({"n_distributions": int(n_distributions), "n_samples": int(n_samples),
                       "negative_sample_handling": "none", "mc_dropout": False})
    from ruamel.yaml import YAML  # a dependency of neuralhydrology

    config_file = folder / "config.yml"
    with config_file.open("w") as fp:
        YAML().dump(config, fp)

    steps = 0
    every = max(1, int(updates) // 10)

    def count_step(optimizer, args, kwargs) -> None:
        nonlocal steps
        steps += 1
        if steps % every == 0 or steps == updates:
            say(f"update {steps}/{updates} ({time.perf_counter() - t_loop:.1f} s)")

    log_file = folder / "neuralhydrology.log"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_contained_logging(log_file))
        stack.enter_context(_torch_threads(torch, threads))
        if not progress:  # NH's few direct prints (tqdm.write) go to its log file too
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(log_file.open("a"))))
        cfg = Config(config_file)
        say(f"training on {len(basins)} basins, {updates} updates of {batch_size} x {seq_length} days "
            f"(threads {torch.get_num_threads()}); folder {folder}")
        t0 = time.perf_counter()
        try:
            trainer = BaseTrainer(cfg=cfg)
            trainer.initialize_training()
        except NoTrainDataError:
            raise ValueError(
                f"empty train period: no window of {seq_length} days with complete inputs and an observed "
                f"{TARGET} in {train[0].date()}..{train[1].date()}"
            ) from None
        n_windows = len(trainer.loader.dataset)
        if n_windows < batch_size:
            raise ValueError(f"only {n_windows} training windows for batch_size {batch_size}: batches would not be full")
        trainer.optimizer.register_step_post_hook(count_step)
        t_loop = time.perf_counter()
        train_setup_seconds = t_loop - t0
        say(f"{n_windows} training windows, data ready in {train_setup_seconds:.1f} s")
        trainer.train_and_validate()
        train_seconds = time.perf_counter() - t0
        run_dir = Path(trainer.cfg.run_dir)

        say(f"trained in {train_seconds:.1f} s; evaluating {test[0].date()}..{test[1].date()}")
        t1 = time.perf_counter()
        # evaluation scores the last day of a window ending on every test day, so that the
        # whole test period is predicted (NH then reads seq_length - 1 days before it)
        trainer.cfg.update_config(TEST_OVERRIDES)
        tester = get_tester(cfg=trainer.cfg, run_dir=run_dir, period="test", init_model=False)
        try:
            results = tester.evaluate(save_results=True, metrics=trainer.cfg.metrics, model=trainer.model)
        except NoEvaluationDataError:
            raise ValueError(f"empty test period: no window in {test[0].date()}..{test[1].date()}") from None
        evaluate_seconds = time.perf_counter() - t1
        say(f"evaluated in {evaluate_seconds:.1f} s")

    time_axis = pd.date_range(test[0], test[1], freq="D")
    simulated = np.full((len(basins), len(time_axis)), np.nan)
    observed = np.full((len(basins), len(time_axis)), np.nan)
    samples = None if head == "regression" else np.full((len(basins), len(time_axis), int(n_samples)), np.nan,
                                                        np.float32)
    for i, basin in enumerate(basins):
        if basin not in results:  # NH skips a basin without a single test window
            continue
        (by_freq,) = results[basin].values()  # one frequency (daily)
        grid = _to_grid(by_freq["xr"], time_axis)
        simulated[i], observed[i] = grid[:2]
        if samples is not None:
            samples[i] = grid[2]

    return {
        "basins": basins,
        "time": time_axis,
        "simulated": simulated,
        "observed": observed,
        "train_seconds": float(train_seconds),
        "train_setup_seconds": float(train_setup_seconds),
        "evaluate_seconds": float(evaluate_seconds),
        "updates": int(steps),
        "config": config,
        "test_config": {k: trainer.cfg.as_dict().get(k) for k in (*TEST_OVERRIDES, "lagged_features",
                                                                "autoregressive_inputs")},
        "run_dir": run_dir,
        "versions": {"neuralhydrology": nh_version, "torch": torch.__version__},
        "samples": samples,
    }
