"""The main job: physics-aware regional models against a pure LSTM on CAMELS, gauged and ungauged.

Following Jiang et al. (2020, P-RNN) and Kratzert et al. (2019), it trains and evaluates

- ``hybrid``          EXP-HYDRO PRNN + causal Conv1D head; attributes -> physical parameters
                      and head weights (the regional hybrid DL model of Jiang et al.);
- ``pseudo_hybrid``   the same with the parameterization pipeline off (one parameter set);
- ``lstm``            the regional LSTM of Kratzert et al. (attributes concatenated to forcing);
- ``dpl_hbv``         LSTM on forcing + attributes -> HBV (δHBV style: multi-component HBV,
                      time-varying BETA/BETAET, gamma routing, warm-up without gradients);
- ``dpl_exphydro``    MLP on attributes -> EXP-HYDRO, physics only;
- ``exphydro_calibrated``, ``hbv_calibrated``: the process models alone, calibrated per basin
                      by gradient descent (the floor; gauged evaluation only),

in two evaluations: ``temporal`` (gauged: train and test periods on the same basins) and
``kfold`` (ungauged: k-fold cross-validation over basins, test basins never seen in
training). Results go to ``--out``: ``metrics.csv``, ``summary.md``, ``predictions.nc`` and
plots (NSE CDFs, hydrographs, snow storage vs SWE, learned parameters).

Data: ``--data-dir`` (or ``$DIFHYDRO_DATA_DIR``) pointing at a CAMELS-US or Caravan copy
(format detected). With no data configured it runs on a synthetic twin built on the real
Fulda forcing that ships with spotpy, where the true parameters are known.

Run ``python benchmarks/camels_regional.py --help`` for every option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

import jax

from difhydro.experiment import plots
from difhydro.training import metrics
from difhydro.training.calibrate import gradient_calibration
from difhydro.data import (
    download_camels_us,
    fit_normalization,
    fulda_twin,
    load_camels_us,
    load_caravan,
    make_basin_data,
)
from difhydro.hybrid import build_model, run_physics
from difhydro.physics import HBV, ExpHydro, hamon_pet, hargreaves_pet
from difhydro.training import TrainConfig, Trainer

MODELS = ("hybrid", "pseudo_hybrid", "lstm", "dpl_hbv", "dpl_exphydro", "exphydro_calibrated", "hbv_calibrated")
CALIBRATED = {"exphydro_calibrated": ExpHydro(), "hbv_calibrated": HBV()}
METRIC_NAMES = ("nse", "kge", "mnse", "fhv", "r")

# Kratzert et al. (2019): the 27 CAMELS attributes of the regional LSTM
CAMELS_ATTRIBUTES = (
    "p_mean", "pet_mean", "aridity", "p_seasonality", "frac_snow", "high_prec_freq", "high_prec_dur",
    "low_prec_freq", "low_prec_dur", "elev_mean", "slope_mean", "area_gages2", "frac_forest", "lai_max",
    "lai_diff", "gvf_max", "gvf_diff", "soil_depth_pelletier", "soil_depth_statsgo", "soil_porosity",
    "soil_conductivity", "max_water_content", "sand_frac", "silt_frac", "clay_frac",
    "carbonate_rocks_frac", "geol_permeability",
)
# the closest Caravan (climate indices + HydroATLAS) equivalents
CARAVAN_ATTRIBUTES = (
    "p_mean", "pet_mean", "aridity", "frac_snow", "moisture_index", "seasonality", "high_prec_freq",
    "high_prec_dur", "low_prec_freq", "low_prec_dur", "ele_mt_sav", "slp_dg_sav", "area", "for_pc_sse",
    "cly_pc_sav", "snd_pc_sav", "slt_pc_sav", "soc_th_sav", "kar_pc_sse", "gwt_cm_sav",
)
NETWORK_INPUTS = ("precipitation", "tmax", "tmin", "temperature", "srad", "vp", "pet", "day_length")
PHYSICS_FORCING = ("precipitation", "temperature", "day_length", "pet")


@dataclasses.dataclass(frozen=True)
class Preset:
    basins: int | None
    epochs: int
    steps_per_epoch: int
    batch_size: int
    window: int
    warmup: int
    folds: int
    hidden: int
    hbv_components: int
    calibration_steps: int
    learning_rate: float
    train: tuple[str, str] | None  # None: the data kind's default periods
    test: tuple[str, str] | None


PRESETS = {
    # about a minute on 2 CPU cores (CI)
    "smoke": Preset(6, 2, 30, 16, 400, 200, 2, 32, 2, 80, 3e-3, None, None),
    # under 30 minutes on 2 CPU cores for ~20 basins
    "small": Preset(20, 12, 40, 32, 730, 365, 5, 64, 4, 300, 2e-3, None, None),
    # the paper setting (Jiang et al. 2020: water years 1980-2010, 30 epochs), for a GPU
    "full": Preset(None, 30, 250, 256, 730, 365, 5, 256, 16, 1000, 1e-3,
                   ("1980-10-01", "2000-09-30"), ("2000-10-01", "2010-09-30")),
}
DEFAULT_PERIODS = {
    # CAMELS standard split (Kratzert et al. 2019): train 1999-2008, test 1989-1999
    "camels_us": (("1999-10-01", "2008-09-30"), ("1989-10-01", "1999-09-30")),
    "caravan": (("1999-10-01", "2008-09-30"), ("1989-10-01", "1999-09-30")),
    # the Fulda forcing covers 1979-1988
    "twin": (("1979-01-01", "1984-12-31"), ("1985-01-01", "1988-12-31")),
}


# -- data -----------------------------------------------------------------------------------


def detect_format(root: Path) -> tuple[str, Path]:
    """``("camels_us" | "caravan", root)`` from the folder layout (also one level down)."""
    if (root / "basin_mean_forcing").is_dir():
        return "camels_us", root
    if (root / "timeseries").is_dir() and (root / "attributes").is_dir():
        return "caravan", root
    for sub, kind in (("camels_us", "camels_us"), ("basin_dataset_public_v1p2", "camels_us"), ("camels_caravan", "caravan"), ("Caravan", "caravan")):
        if (root / sub).is_dir():
            return detect_format(root / sub)
    raise SystemExit(
        f"{root} is neither a CAMELS-US folder (basin_mean_forcing/, usgs_streamflow/, "
        "camels_attributes_v2.0/) nor a Caravan folder (timeseries/, attributes/)"
    )


def with_pet(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    """Add ``pet`` (mm d-1) when the data has none: Hargreaves (as δHBV) from tmax/tmin,
    or Hamon from mean temperature and day length where tmax == tmin (CAMELS NLDAS)."""
    if "pet" in ds:
        return ds, "pet from the data set"
    doy = xr.DataArray(ds["time"].dt.dayofyear.values, dims="time")
    lat = ds["gauge_lat"] if "gauge_lat" in ds else ds.get("forcing_latitude")
    hamon = hamon_pet(ds["temperature"].values, ds["day_length"].values)
    if lat is not None and "tmax" in ds and "tmin" in ds:
        harg = np.asarray(hargreaves_pet(ds["tmax"].values, ds["tmin"].values, lat.values[:, None], doy.values[None, :]))
        flat = (np.abs(ds["tmax"] - ds["tmin"]) < 1e-6).mean("time").values > 0.5
        pet = np.where(flat[:, None], np.asarray(hamon), harg)
        note = "pet: Hargreaves from tmax/tmin" + (f" (Hamon for {int(flat.sum())} basins with tmax == tmin)" if flat.any() else "")
    else:
        pet, note = np.asarray(hamon), "pet: Hamon from mean temperature and day length"
    ds = ds.assign(pet=(("basin", "time"), np.asarray(pet, np.float32)))
    ds["pet"].attrs["units"] = "mm d-1"
    return ds, note


def load_data(args) -> tuple[xr.Dataset, str, list[str], list[str]]:
    """The data set, its kind, and notes for the summary."""
    notes = []
    root = args.data_dir or os.environ.get("DIFHYDRO_DATA_DIR") or os.environ.get("DIFHYDRO_CAMELS_DIR")
    if args.download:
        root = str(download_camels_us(args.download))
    if not root:
        n = args.basins or PRESETS[args.preset].basins or 24
        n = max(n, 2 * args.folds)
        print(
            "No CAMELS data configured (--data-dir or $DIFHYDRO_DATA_DIR): running the SYNTHETIC TWIN "
            f"experiment instead — {n} basins whose forcing is the real Fulda record (spotpy) shifted and "
            "perturbed, streamflow simulated by EXP-HYDRO from known parameters plus 10 % noise.\n"
            "For real data: --data-dir /path/to/CAMELS-US (or a Caravan folder), or --download DEST to fetch "
            "CAMELS-US from NCAR (about 3.5 GB)."
        )
        ds = fulda_twin(ExpHydro(), n_basins=n, seed=args.seed, noise=0.1)
        notes.append(f"data: synthetic twin of EXP-HYDRO on the Fulda forcing (spotpy), {n} basins, 10 % noise")
        ds, pet_note = with_pet(ds)
        return ds, "twin", notes + [pet_note], [v for v in ds.data_vars if v.startswith("attribute_")]
    kind, folder = detect_format(Path(root).expanduser())
    basins = None
    if args.basin_file:
        basins = [line.strip() for line in Path(args.basin_file).read_text().splitlines() if line.strip()]
    if kind == "camels_us":
        forcing = args.forcing
        if forcing == "auto":
            counts = {p: len(list((folder / "basin_mean_forcing" / p).rglob("*_forcing_leap.txt")))
                      for p in ("daymet", "nldas", "maurer", "maurer_extended") if (folder / "basin_mean_forcing" / p).is_dir()}
            forcing = max(counts, key=counts.get)
            notes.append(f"forcing: {forcing} (the product with the most basins: {counts})")
        ds = load_camels_us(folder, basins=basins, forcing=forcing, missing_streamflow="nan")
        attributes = CAMELS_ATTRIBUTES
        notes.insert(0, f"data: CAMELS-US at {folder} ({forcing} forcing)")
    else:
        ds = load_caravan(folder, basins=basins)
        attributes = CARAVAN_ATTRIBUTES
        notes.insert(0, f"data: Caravan at {folder} (ERA5-Land forcing)")
    ds, pet_note = with_pet(ds)
    notes.append(pet_note)
    attributes = [a for a in attributes if a in ds and np.issubdtype(ds[a].dtype, np.number)]
    return ds, kind, notes, attributes


def clip_period(ds: xr.Dataset, period: tuple[str, str]) -> tuple[str, str]:
    """Shrink ``period`` to the days on which at least half of the basins have forcing."""
    have = np.isfinite(ds["precipitation"].sel(time=slice(*period))).mean("basin")
    days = have["time"].values[have.values >= 0.5]
    if days.size == 0:
        raise SystemExit(f"no forcing in the period {period} for half of the basins; set the periods with --train/--test")
    return str(pd.Timestamp(days[0]).date()), str(pd.Timestamp(days[-1]).date())


def eligible_basins(ds, periods, limit) -> tuple[list[str], dict[str, str]]:
    """Basins with complete physics forcing in both periods and streamflow in each."""
    keep, excluded = [], {}
    for b in ds["basin"].values:
        reason = None
        for name, period in periods.items():
            sub = ds.sel(basin=b, time=slice(*period))
            cover = min(float(np.isfinite(sub[v]).mean()) for v in PHYSICS_FORCING)
            if cover < 0.99:
                reason = f"forcing covers {100 * cover:.0f} % of the {name} period {period}"
                break
            if int(np.isfinite(sub["streamflow"]).sum()) < 365:
                reason = f"fewer than 365 days of streamflow in the {name} period {period}"
                break
        if reason:
            excluded[str(b)] = reason
        else:
            keep.append(str(b))
    if limit:
        for b in keep[limit:]:
            excluded[b] = f"beyond --basins {limit}"
        keep = keep[:limit]
    return keep, excluded


# -- models ---------------------------------------------------------------------------------


def make_model(name: str, preset: Preset, q_mean: float, q_std: float):
    options = {"hybrid": dict(hidden_size=preset.hidden), "lstm": dict(hidden_size=preset.hidden),
               "dpl_exphydro": dict(hidden_size=preset.hidden),
               "dpl_hbv": dict(hidden_size=preset.hidden, components=preset.hbv_components, warmup_days=preset.warmup)}
    return build_model(name, flow_mean=q_mean, flow_std=q_std, **options.get(name, {}))


# -- one run --------------------------------------------------------------------------------


def run_trained(name, preset, ds, stats, train_basins, test_basins, periods, run_dir, args):
    """Train ``name`` on the training basins/period; predict the test basins/period."""
    train = make_basin_data(ds, stats, periods["train"], window=preset.window, warmup=preset.warmup,
                            forcing=PHYSICS_FORCING, basins=train_basins, min_observations=30)
    test = make_basin_data(ds, stats, periods["test"], window=preset.warmup + 1, warmup=preset.warmup,
                           forcing=PHYSICS_FORCING, basins=test_basins)
    q = train.observations()
    model = make_model(name, preset, float(np.nanmean(q)), float(np.nanstd(q)))
    cfg = TrainConfig(epochs=preset.epochs, steps_per_epoch=preset.steps_per_epoch, batch_size=preset.batch_size,
                      learning_rate=preset.learning_rate, schedule="cosine", clip_norm=1.0, seed=args.seed,
                      progress=not args.quiet)
    trainer = Trainer(model, train, cfg, loss="nse_star", run_dir=run_dir, norm_stats=stats)
    t0 = time.perf_counter()
    result = trainer.fit(resume=args.resume)
    seconds = time.perf_counter() - t0
    epochs = [h["seconds"] for h in result["history"]]
    out, full = trainer.predict(result["params"], test)
    extra = {}
    if "snow_storage" in out:
        extra["snow_storage"] = np.asarray(out["snow_storage"])
    params = {k: np.asarray(v) for k, v in out.get("params", {}).items() if np.ndim(v) == 1}
    return {
        "simulated": np.asarray(out["streamflow"]),
        "observed": full.observations(),
        "seconds": seconds,
        "seconds_per_epoch": float(np.mean(epochs)) if epochs else float("nan"),
        "params": params,
        **extra,
    }


def run_calibrated(name, preset, ds, basins, periods, args):
    """Per-basin gradient calibration on the training period, evaluated on the test period."""
    model = CALIBRATED[name]
    names = list(model.forcing_names)
    train = ds.sel(basin=basins, time=slice(*periods["train"]))
    test = ds.sel(basin=basins, time=slice(*periods["test"]))
    as_forcing = lambda sub: {k: np.nan_to_num(sub[k].transpose("basin", "time").values.astype(np.float32)) for k in names}  # noqa: E731
    observed = train["streamflow"].transpose("basin", "time").values.astype(np.float32)
    t0 = time.perf_counter()
    result = gradient_calibration(model, as_forcing(train), observed, warmup_days=preset.warmup,
                                  steps=preset.calibration_steps, learning_rate=0.05, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    sim = np.asarray(run_physics(model, result.params, as_forcing(test))["streamflow"])
    obs = test["streamflow"].values.astype(np.float32)
    obs[:, : preset.warmup] = np.nan  # the same warm-up as the trained models
    return {"simulated": sim, "observed": obs, "seconds": seconds, "seconds_per_epoch": float("nan"),
            "params": {k: np.asarray(v) for k, v in result.params.items()}}


def scores(sim, obs) -> dict[str, np.ndarray]:
    return {m: np.asarray(metrics.METRICS[m](sim, obs)) for m in METRIC_NAMES}


# -- the experiment -------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="CAMELS-US or Caravan folder (default: $DIFHYDRO_DATA_DIR, else the synthetic twin)")
    p.add_argument("--download", metavar="DEST", help="download CAMELS-US into DEST first (needs network)")
    p.add_argument("--forcing", default="auto", help="CAMELS-US forcing product: daymet, nldas, maurer, maurer_extended, auto")
    p.add_argument("--basins", type=int, help="use the first N eligible basins")
    p.add_argument("--basin-file", help="file with one basin id per line")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small", help="smoke (CI, ~1 min), small (<30 min, ~20 basins), full (GPU)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--folds", type=int, help="k of the k-fold (ungauged) evaluation")
    p.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument("--evaluations", default="temporal,kfold", help="temporal, kfold or both")
    p.add_argument("--train", help="training period START:END (e.g. 1999-10-01:2008-09-30)")
    p.add_argument("--test", help="test period START:END")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/camels_regional")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    overrides = {k: getattr(args, a) for k, a in (("epochs", "epochs"), ("steps_per_epoch", "steps_per_epoch"),
                                                  ("batch_size", "batch_size"), ("folds", "folds")) if getattr(args, a)}
    if args.basins:
        overrides["basins"] = args.basins
    args.preset_values = dataclasses.replace(preset, **overrides)
    args.folds = args.preset_values.folds
    args.models = tuple(args.models.split(",")) if args.models else MODELS
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {MODELS}")
    args.evaluations = tuple(e for e in args.evaluations.split(",") if e)
    if any(e not in ("temporal", "kfold") for e in args.evaluations):
        p.error("--evaluations takes temporal, kfold or both")
    return args


def main(argv=None):
    args = parse_args(argv)
    preset = args.preset_values
    out = Path(args.out)
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ds, kind, notes, attributes = load_data(args)
    train_p, test_p = DEFAULT_PERIODS[kind]
    if preset.train:
        train_p, test_p = preset.train, preset.test
    if args.train:
        train_p = tuple(args.train.split(":"))
    if args.test:
        test_p = tuple(args.test.split(":"))
    periods = {"train": clip_period(ds, train_p), "test": clip_period(ds, test_p)}
    for k, v in periods.items():
        notes.append(f"{k} period: {v[0]} .. {v[1]}")
    basins, excluded = eligible_basins(ds, periods, preset.basins)
    if len(basins) < max(2, args.folds if "kfold" in args.evaluations else 2):
        raise SystemExit(f"only {len(basins)} eligible basins ({excluded}); need at least {max(2, args.folds)}")
    inputs = [v for v in NETWORK_INPUTS if v in ds and np.isfinite(ds[v].sel(basin=basins, time=slice(*periods["train"]))).all()]
    notes += [f"basins: {len(basins)} used, {len(excluded)} excluded", f"network inputs: {inputs}",
              f"attributes: {len(attributes)}", f"preset: {args.preset} {dataclasses.asdict(preset)}",
              f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}"]
    print("\n".join(notes))

    rng = np.random.default_rng(args.seed)
    experiments = []
    if "temporal" in args.evaluations:
        experiments.append(("temporal", 0, basins, basins))
    if "kfold" in args.evaluations:
        order = rng.permutation(len(basins))
        for f, chunk in enumerate(np.array_split(order, args.folds)):
            test_b = [basins[i] for i in sorted(chunk)]
            experiments.append(("kfold", f, [b for b in basins if b not in test_b], test_b))

    rows, failures, predictions, learned = [], [], {}, {}
    runs = [(e, f, tr, te, m) for e, f, tr, te in experiments for m in args.models]
    for evaluation, fold, train_b, test_b, name in tqdm(runs, desc="runs", disable=args.quiet):
        tag = f"{evaluation}_fold{fold}_{name}"
        run_dir = out / "runs" / tag
        if name in CALIBRATED and evaluation == "kfold":
            if fold == 0:
                failures.append((name, evaluation, "not applicable: per-basin calibration needs the basin's own streamflow (ungauged basins have none)"))
            continue
        try:
            cached = run_dir / "result.npz"
            if args.resume and cached.exists():
                res = dict(np.load(cached, allow_pickle=True))
                res = {k: (v.item() if v.dtype == object else v) for k, v in res.items()}
            else:
                stats = fit_normalization(ds, inputs, attributes, periods["train"], basins=train_b)
                if name in CALIBRATED:
                    res = run_calibrated(name, preset, ds, test_b, periods, args)
                else:
                    res = run_trained(name, preset, ds, stats, train_b, test_b, periods, run_dir, args)
                run_dir.mkdir(parents=True, exist_ok=True)
                np.savez(cached, **{k: (np.asarray(v, dtype=object) if isinstance(v, dict) else v) for k, v in res.items()})
        except Exception as err:  # a failure is reported, never silently dropped
            failures.append((name, f"{evaluation} fold {fold}", f"{type(err).__name__}: {err}"))
            traceback.print_exc()
            continue
        sc = scores(res["simulated"], res["observed"])
        for i, b in enumerate(test_b):
            rows.append({"basin": b, "model": name, "evaluation": evaluation, "fold": fold,
                         **{m: float(sc[m][i]) for m in METRIC_NAMES},
                         "train_seconds": res["seconds"], "seconds_per_epoch": res["seconds_per_epoch"]})
        for i, b in enumerate(test_b):
            predictions[(evaluation, name, b)] = (res["simulated"][i], res["observed"][i], res.get("snow_storage", None) if "snow_storage" not in res else res["snow_storage"][i])
        learned.setdefault((evaluation, name), {}).update({b: {k: float(v[i]) for k, v in res["params"].items()} for i, b in enumerate(test_b)})

    table = pd.DataFrame(rows)
    table.to_csv(out / "metrics.csv", index=False)
    test_days = ds["time"].sel(time=slice(*periods["test"])).values
    write_predictions(out / "predictions.nc", predictions, test_days, basins, ds, args.models)
    figures = make_plots(out, table, predictions, learned, ds, kind, test_days, attributes)
    write_summary(out / "summary.md", table, failures, notes, excluded, kind, learned, ds, figures,
                  time.perf_counter() - t_start, args)
    print((out / "summary.md").read_text())
    return table


# -- outputs --------------------------------------------------------------------------------


def write_predictions(path, predictions, days, basins, ds, models):
    evaluations = sorted({k[0] for k in predictions})
    names = [m for m in models if any(k[1] == m for k in predictions)]
    sim = np.full((len(evaluations), len(names), len(basins), len(days)), np.nan, np.float32)
    obs = np.full((len(basins), len(days)), np.nan, np.float32)
    snow = np.full((len(evaluations), len(basins), len(days)), np.nan, np.float32)
    for (e, m, b), (s, o, sn) in predictions.items():
        i, j, k = evaluations.index(e), names.index(m), basins.index(b)
        sim[i, j, k], obs[k] = s, o
        if m == "hybrid" and sn is not None:
            snow[i, k] = sn
    out = xr.Dataset(
        {
            "simulated_streamflow": (("evaluation", "model", "basin", "time"), sim, {"units": "mm d-1"}),
            "observed_streamflow": (("basin", "time"), obs, {"units": "mm d-1", "comment": "NaN in the warm-up"}),
            "hybrid_snow_storage": (("evaluation", "basin", "time"), snow, {"units": "mm", "comment": "EXP-HYDRO snow bucket of the regional hybrid"}),
        },
        coords={"evaluation": evaluations, "model": names, "basin": basins, "time": days},
    )
    if "swe" in ds:
        out["swe"] = (("basin", "time"), ds["swe"].sel(basin=basins, time=days).values.astype(np.float32), {"units": "mm", "source": "forcing file"})
    out.to_netcdf(path)


def make_plots(out, table, predictions, learned, ds, kind, days, attributes) -> dict[str, str]:
    figures = {}
    if table.empty:
        return figures
    dates = pd.to_datetime(days)
    for evaluation, sub in table.groupby("evaluation"):
        cdf = {m: g["nse"].values for m, g in sub.groupby("model", sort=False)}
        figures[f"NSE CDF ({evaluation})"] = plots.metric_cdf(cdf, out / f"nse_cdf_{evaluation}.png").name
        ref = "hybrid" if "hybrid" in cdf else next(iter(cdf))
        ranked = sub[sub.model == ref].sort_values("nse", ascending=False)
        ranked = ranked[np.isfinite(ranked["nse"])]
        if len(ranked) >= 1:
            picks = [ranked.iloc[0], ranked.iloc[len(ranked) // 2], ranked.iloc[-1]]
            basins = [p["basin"] for p in picks]
            shown = [m for m in ("hybrid", "lstm", "dpl_hbv", "exphydro_calibrated") if (evaluation, m, basins[0]) in predictions]
            obs = np.stack([predictions[(evaluation, ref, b)][1] for b in basins])
            sims = {m: np.stack([predictions[(evaluation, m, b)][0] for b in basins]) for m in shown if all((evaluation, m, b) in predictions for b in basins)}
            titles = [f"{label} {ref} basin {p['basin']} (NSE {p['nse']:.2f})" for label, p in zip(("best", "median", "worst"), picks)]
            figures[f"hydrographs ({evaluation})"] = plots.hydrographs(dates, obs, sims, titles, out / f"hydrographs_{evaluation}.png").name
    # inferred snow storage against the forcing file's SWE (Jiang et al. 2020, Fig. 3)
    if "swe" in ds and ("temporal", "hybrid") in learned:
        basins = list(learned[("temporal", "hybrid")])
        swe = ds["swe"].sel(basin=basins, time=days)
        snowy = [b for b in swe.max("time").to_series().sort_values(ascending=False).index[:3] if float(swe.sel(basin=b).max()) > 1]
        if snowy:
            inferred = np.stack([predictions[("temporal", "hybrid", b)][2] for b in snowy])
            figures["snow storage vs SWE"] = plots.state_vs_observed(dates, inferred, swe.sel(basin=snowy).values, [f"basin {b}" for b in snowy], out / "snow_vs_swe.png").name
    for model in ("hybrid", "dpl_exphydro"):
        for evaluation in ("kfold", "temporal"):
            got = learned.get((evaluation, model))
            if not got:
                continue
            basins = list(got)
            params = {k: np.array([got[b][k] for b in basins]) for k in ExpHydro.param_spec if k in got[basins[0]]}
            if kind == "twin":
                true = {k: ds[f"param_{k}"].sel(basin=basins).values for k in params}
                figures[f"{model} learned vs true parameters ({evaluation})"] = plots.learned_vs_true(true, params, out / f"parameters_{model}_{evaluation}.png").name
            else:
                shown = [a for a in ("aridity", "frac_snow", "p_mean", "elev_mean", "slope_mean") if a in attributes][:4]
                attrs = {a: ds[a].sel(basin=basins).values for a in shown}
                figures[f"{model} parameters vs attributes ({evaluation})"] = plots.parameters_vs_attributes(params, attrs, out / f"parameters_{model}_{evaluation}.png").name
            break
    return figures


def write_summary(path, table, failures, notes, excluded, kind, learned, ds, figures, total, args):
    lines = ["# CAMELS regional benchmark", ""]
    if kind == "twin":
        lines += ["**Synthetic twin** (no CAMELS data configured): real Fulda forcing, EXP-HYDRO truth. "
                  "Point `--data-dir` at CAMELS-US or Caravan for real basins.", ""]
    lines += [f"- {n}" for n in notes] + [f"- total time: {total:.0f} s", ""]
    lines += ["The mean-flow benchmark has NSE = 0 by definition; models below it are worse than predicting the test-period mean.", ""]
    if not table.empty:
        lines += ["| evaluation | model | basins | median NSE | mean NSE | median KGE | mean KGE | NSE < 0 | s / epoch | total s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for (evaluation, model), g in table.groupby(["evaluation", "model"], sort=False):
            runs = g.drop_duplicates("fold")
            per_epoch = runs.seconds_per_epoch.dropna()  # calibrated models have no epochs
            lines.append(
                f"| {evaluation} | {model} | {len(g)} | {np.nanmedian(g.nse):.3f} | {np.nanmean(g.nse):.3f} | "
                f"{np.nanmedian(g.kge):.3f} | {np.nanmean(g.kge):.3f} | {int((g.nse < 0).sum())} | "
                f"{f'{per_epoch.mean():.1f}' if len(per_epoch) else '–'} | {runs.train_seconds.sum():.0f} |"
            )
        lines.append("")
    if kind == "twin":
        rows = []
        for (evaluation, model), got in learned.items():
            if model not in ("hybrid", "dpl_exphydro", "exphydro_calibrated") or not got:
                continue
            basins = list(got)
            r2 = {}
            for k in ExpHydro.param_spec:
                if k in got[basins[0]]:
                    t = ds[f"param_{k}"].sel(basin=basins).values
                    e = np.array([got[b][k] for b in basins])
                    r2[k] = 1 - np.sum((e - t) ** 2) / np.sum((t - t.mean()) ** 2)
            rows.append(f"| {evaluation} | {model} | " + " | ".join(f"{r2.get(k, np.nan):.2f}" for k in ExpHydro.param_spec) + " |")
        if rows:
            lines += ["Parameter recovery on the twin (R² of learned vs true parameters of the test basins):", "",
                      "| evaluation | model | " + " | ".join(ExpHydro.param_spec) + " |",
                      "|---|---|" + "---|" * len(ExpHydro.param_spec)] + rows + [""]
    if "swe" in ds and ("temporal", "hybrid") in learned:
        pred = xr.open_dataset(Path(path).parent / "predictions.nc")
        snow = pred["hybrid_snow_storage"].sel(evaluation="temporal")
        swe = pred["swe"]
        rs = []
        for b in pred.basin.values:
            s, w = snow.sel(basin=b).values, swe.sel(basin=b).values
            ok = np.isfinite(s) & np.isfinite(w)
            if ok.sum() > 30 and w[ok].std() > 0.5 and s[ok].std() > 0:
                rs.append(np.corrcoef(s[ok], w[ok])[0, 1])
        pred.close()
        if rs:
            lines += [f"Hybrid snow storage vs SWE of the forcing files: median r = {np.median(rs):.2f} over {len(rs)} basins with snow.", ""]
    if failures:
        lines += ["## Not run or failed", "", "| model | evaluation | reason |", "|---|---|---|"]
        lines += [f"| {m} | {e} | {r} |" for m, e, r in failures] + [""]
    if excluded:
        lines += ["## Excluded basins", ""] + [f"- {b}: {r}" for b, r in excluded.items()] + [""]
    if figures:
        lines += ["## Figures", ""] + [f"- {k}: `{v}`" for k, v in figures.items()] + [""]
    lines += ["Command: `python benchmarks/camels_regional.py " + " ".join(sys.argv[1:] if args is not None else []) + "`"]
    Path(path).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
