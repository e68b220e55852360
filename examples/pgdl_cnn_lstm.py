"""PGDL CNN-LSTM (Zhang et al. 2025) reproduced on a Richards twin.

Task: estimate water content at 10, 20, 30, 40 and 50 cm from surface (0-5 cm) soil
moisture plus weather, per pixel and day. Data are SYNTHETIC: the Richards1D twin of
:func:`difhydro.data.richards_twin` (van Genuchten soils x Caravan weather; the
surface series carries 0.02 m3 m-3 noise as a remote-sensing stand-in, the 10-50 cm
training targets 0.005 m3 m-3 probe noise); scores are against the noise-free truth, on
the last year (temporal hold-out, all pixels).

Models: PGDL CNN-LSTM (convolution over the input-feature axis, LSTM, bounded output
``theta_r + (theta_s − theta_r)·sigmoid``, loss RMSE + λ·mean R² of the section-3.6
Richards residual with each pixel's van Genuchten parameters and the twin's Feddes
uptake), the same CNN-LSTM without physics (linear output, RMSE only), Random Forest
(scikit-learn) and XGBoost on 7-day lagged features. Tables: RMSE per layer, physical
inconsistency (share of pixel-days-nodes with |R| above a tolerance) and the same with
50 % of the training pixels.

Run: ``python examples/pgdl_cnn_lstm.py [--quick] [--out results/pgdl] [--physics-weight 10]``
"""

from __future__ import annotations

import argparse
import os
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from difhydro.contrib.pgdl import (  # noqa: E402
    ProfileCNNLSTM,
    fit_random_forest,
    fit_xgboost,
    inconsistency_share,
    lagged_features,
    pgdl_loss,
    profile_residual,
)
from difhydro.data import TWIN_DEPTHS_CM, fit_normalization, make_basin_data, richards_twin  # noqa: E402
from difhydro.training import TrainConfig, Trainer  # noqa: E402

DATA = Path(os.environ.get("DIFHYDRO_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
CARAVAN = DATA / "camels_caravan"
SOIL = ("theta_r", "theta_s", "alpha", "n", "k_s")
DYNAMIC = ("sm_surface", "precipitation", "pet", "temperature")
TARGETS = tuple(f"sm_{d}" for d in TWIN_DEPTHS_CM)
TRUTH = tuple(f"true_sm_{d}" for d in TWIN_DEPTHS_CM)
# roots uniform over 0-50 cm in the twin: fraction of the 10-cm layers centred at 10..50 cm
ROOTS = (0.2, 0.2, 0.2, 0.2, 0.1)


def documented_basins() -> list[str]:
    """The 19 gauges of the documented runs: the Caravan basins that also have the original
    CAMELS-US files (../camels_us), not all 230 of camels_caravan."""
    from difhydro.data.camels import find_camels_files

    gauges = find_camels_files(DATA / "camels_us")[1]
    return sorted(g for g in gauges if (CARAVAN / "timeseries" / "csv" / "camels" / f"camels_{g}.csv").exists())


def twin(quick: bool):
    if quick:
        ds = richards_twin(CARAVAN, n_soils=3, start="2000-01-01", end="2001-12-31", n_substeps=8,
                           basins=["01022500", "01031500", "01547700", "02046000"])
        periods = {"train": ("2001-01-01", "2001-06-30"), "validation": ("2001-07-01", "2001-09-30"),
                   "test": ("2001-10-01", "2001-12-31")}
    else:
        ds = richards_twin(CARAVAN, n_soils=16, start="2000-01-01", end="2003-12-31", basins=documented_basins())
        periods = {"train": ("2001-01-01", "2002-06-30"), "validation": ("2002-07-01", "2002-12-31"),
                   "test": ("2003-01-01", "2003-12-31")}
    return ds, periods


def make_data(ds, periods, train_pixels, window):
    """Targets: the probe depths (trained on) and the noise-free truth (scored); the soil's
    van Genuchten parameters are standardised attributes for the network and physical
    static fields for the residual loss."""
    stats = fit_normalization(ds, DYNAMIC + TARGETS, SOIL, period=periods["train"], basins=train_pixels)
    data = {name: make_basin_data(ds, stats, period, window=window, warmup=15, forcing=("pet",), inputs=DYNAMIC,
                                  target=TARGETS + TRUTH, static_fields=SOIL,
                                  basins=train_pixels if name != "test" else None)
            for name, period in periods.items()}
    return data, stats


def train_network(data, stats, physics_weight, bounded, config):
    mean = float(np.mean([stats.mean[t] for t in TARGETS]))
    std = float(np.mean([stats.std[t] for t in TARGETS]))
    model = ProfileCNNLSTM(bounded=bounded, target_mean=mean, target_std=std, depth_names=TARGETS)
    loss = pgdl_loss(TARGETS, physics_weight, ROOTS)
    trainer = Trainer(model, data["train"], config, loss=loss, validation=data["validation"])
    fit = trainer.fit()
    pred, full = trainer.predict(fit["best_params"], data["test"])
    return pred["profile"], full, fit["history"]


def tabular(ds, periods, train_pixels, fitter, n_rows, seed):
    cols = {k: ds[k].values for k in DYNAMIC}
    x = lagged_features(cols, lags=7)
    static = np.stack([ds[k].values for k in SOIL], -1)[:, None, :].repeat(x.shape[1], 1)
    x = np.concatenate([x, static], -1)
    y = np.stack([ds[t].values for t in TARGETS], -1)
    times = ds["time"].to_index()
    tr = (times >= periods["train"][0]) & (times <= periods["train"][1])
    te = (times >= periods["test"][0]) & (times <= periods["test"][1])
    pix = np.isin(ds["basin"].values, train_pixels)
    xtr, ytr = x[pix][:, tr].reshape(-1, x.shape[-1]), y[pix][:, tr].reshape(-1, y.shape[-1])
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(xtr), min(n_rows, len(xtr)), replace=False)
    model = fitter(xtr[pick], ytr[pick], seed=seed)
    xte = x[:, te]
    return model.predict(xte.reshape(-1, x.shape[-1])).reshape(xte.shape[:2] + (len(TARGETS),))


def scores(theta, truth, static, pet, mask, tolerance):
    """RMSE per layer vs truth (median over pixels), the inconsistency share, the median and
    mean squared residual, and the share of predictions outside each pixel's [θr, θs]
    (where the van Genuchten head is undefined and R² explodes: the mean is kept for
    completeness, the median is the robust figure)."""
    m = mask[..., None]
    err = np.where(m, theta - truth, np.nan)
    rmse = np.sqrt(np.nanmean(err**2, axis=1))  # [pixel, depth]
    r = np.asarray(profile_residual(jnp.asarray(theta, jnp.float32), static, pet, TWIN_DEPTHS_CM, ROOTS))
    pair = np.broadcast_to((mask[:, 1:] & mask[:, :-1])[..., None], r.shape)
    theta_r, theta_s = (np.asarray(static[k])[:, None, None] for k in ("theta_r", "theta_s"))
    outside = ((theta < theta_r - 1e-6) | (theta > theta_s + 1e-6))[np.broadcast_to(m, theta.shape)]
    r2 = r[pair] ** 2
    return {"rmse": np.nanmedian(rmse, axis=0), "inconsistency": inconsistency_share(r, tolerance, pair),
            "median_r2": float(np.nanmedian(r2)), "mean_r2": float(np.nanmean(r2)),
            "outside_bounds": float(outside.mean())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="results/pgdl")
    parser.add_argument("--physics-weight", type=float, default=10.0)
    parser.add_argument("--tolerance", type=float, default=0.02, help="|R| above this (d-1) is inconsistent")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--fractions", default="100,50", help="training-pixel shares in %% (the 50 %% data experiment)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    ds, periods = twin(args.quick)
    print(f"twin: {ds.sizes['basin']} pixels x {ds.sizes['time']} days in {time.perf_counter() - t0:.0f} s")
    pixels = [str(b) for b in ds["basin"].values]
    rng = np.random.default_rng(0)
    half = sorted(rng.choice(pixels, len(pixels) // 2, replace=False).tolist())
    cfg = TrainConfig(epochs=args.epochs or (4 if args.quick else 40), steps_per_epoch=10 if args.quick else 40,
                      batch_size=32 if args.quick else 64, learning_rate=1e-3, patience=None if args.quick else 8,
                      monitor="loss", eval_metrics=("nse", "rmse"), progress=args.progress)
    window = 45 if args.quick else 90

    results, histories, test_theta = {}, {}, {}
    fractions = {"100%": pixels, "50%": half}
    fractions = {k: v for k, v in fractions.items() if k.rstrip("%") in args.fractions.split(",")}
    if "100%" not in fractions:
        raise SystemExit("--fractions must include 100 (the reference test frame)")
    jobs = [(f, m) for f in fractions for m in ("PGDL CNN-LSTM", "CNN-LSTM", "Random Forest", "XGBoost")]
    bar = tqdm(jobs, desc="models", disable=not args.progress)
    reference = None
    for frac, name in bar:
        bar.set_postfix(model=name, data=frac)
        data, stats = make_data(ds, periods, fractions[frac], window)
        full_test = None
        if name in ("PGDL CNN-LSTM", "CNN-LSTM"):
            pgdl = name.startswith("PGDL")
            theta, full_test, hist = train_network(data, stats, args.physics_weight if pgdl else 0.0, pgdl, cfg)
            histories[f"{name} {frac}"] = [h.get("val_loss") for h in hist]
            reference = full_test
        else:
            fitter = fit_random_forest if name == "Random Forest" else fit_xgboost
            theta = tabular(ds, periods, fractions[frac], fitter, 20_000 if args.quick else 60_000, 0)
        test_theta[(frac, name)] = theta
    # common test frame (every pixel, whole test year, first 15 days masked)
    static = {k: jnp.asarray(v) for k, v in reference.static.items()}
    pet = jnp.asarray(reference.forcing["pet"])
    truth = np.stack([np.asarray(reference.targets[t]) for t in TRUTH], -1)
    mask = np.asarray(reference.mask)
    for key, theta in test_theta.items():
        results[key] = scores(np.asarray(theta, np.float32), truth, static, pet, mask, args.tolerance)
    results[("-", "truth")] = scores(truth, truth, static, pet, mask, args.tolerance)
    sm_surface = ds["sm_surface"].sel(time=slice(*periods["test"])).values
    copy = np.repeat(sm_surface[..., None], len(TARGETS), -1)
    results[("-", "surface copy")] = scores(copy.astype(np.float32), truth, static, pet, mask, args.tolerance)

    lines = ["### PGDL CNN-LSTM on the SYNTHETIC Richards twin", "",
             f"{ds.sizes['basin']} pixels, test {periods['test']}, physics weight λ = {args.physics_weight}, "
             f"tolerance |R| > {args.tolerance} d-1. RMSE (m3 m-3) against the noise-free truth, median over pixels.", "",
             "| training pixels | model | " + " | ".join(f"{d} cm" for d in TWIN_DEPTHS_CM)
             + " | mean | inconsistent share | median R² | outside [θr, θs] |",
             "|---|---|" + "---|" * (len(TWIN_DEPTHS_CM) + 4)]
    for (frac, name), r in results.items():
        lines.append(f"| {frac} | {name} | " + " | ".join(f"{v:.4f}" for v in r["rmse"])
                     + f" | {np.mean(r['rmse']):.4f} | {r['inconsistency']:.3f} | {r['median_r2']:.2e}"
                     + f" | {r['outside_bounds']:.4f} |")
    for frac in fractions:
        a, b = results[(frac, "PGDL CNN-LSTM")], results[(frac, "CNN-LSTM")]
        red = 100 * (1 - a["inconsistency"] / b["inconsistency"]) if b["inconsistency"] > 0 else float("nan")
        gain = 100 * (1 - a["rmse"][0] / b["rmse"][0])
        lines.append("")
        lines.append(f"{frac} of the training pixels: PGDL vs CNN-LSTM: 10-cm RMSE {gain:+.1f} % "
                     f"(positive = lower), inconsistency reduced by {red:.1f} %.")
    lines += ["", "Validation loss per epoch: " + "; ".join(
        f"{k}: {v[0]:.4g} -> {min(v):.4g}" for k, v in histories.items()), ""]
    text = "\n".join(lines)
    print(text)
    (out / "pgdl_tables.md").write_text(text + "\n")
    (out / "pgdl_results.json").write_text(json.dumps(
        {f"{f} | {n}": {k: np.asarray(v).tolist() for k, v in r.items()} for (f, n), r in results.items()}, indent=1))

    fig, axes = plt.subplots(len(TARGETS), 1, figsize=(9, 9), sharex=True)
    for i, ax in enumerate(axes):
        ax.plot(np.where(mask[0], truth[0, :, i], np.nan), "k", lw=1.5, label="truth")
        for name in ("PGDL CNN-LSTM", "CNN-LSTM", "XGBoost"):
            ax.plot(np.where(mask[0], test_theta[("100%", name)][0, :, i], np.nan), lw=1, label=name)
        ax.set_ylabel(f"{TWIN_DEPTHS_CM[i]} cm")
    axes[0].legend(ncol=4, fontsize=8)
    axes[-1].set_xlabel("day of test period (pixel 0)")
    fig.tight_layout()
    fig.savefig(out / "pgdl_profile.png", dpi=110)
    plt.close(fig)
    return {"results": results, "histories": histories}


if __name__ == "__main__":
    main()
