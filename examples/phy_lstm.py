"""PHY-LSTM / PHYs-LSTM (Geng et al. 2024) reproduced at small scale.

One-day-ahead surface soil-moisture forecast with an LSTM (128 units, sequence length 7,
dropout 0.15, Adam 1e-3, early stopping on validation NSE), trained with RMSE (LSTM) or
``λ1·RMSE + λ2·Loss_PHY`` (PHY-LSTM: W1 = P − E − SRO + ΔSD; PHYs-LSTM: W2 = W1 − ΔSM_deep).

Data (say which is which):
- ``site`` — OBSERVED: the spotpy profile site (Schwingbach, Hesse; 10 cm target,
  25/40 cm as "deep"), 2014-2016, FAO-56 PM ET0 from its weather (pyet). Train
  2014-01-01..2015-06-30, validation 2015-07-01..2015-12-31, test 2016. Only P and ET0
  exist, so the ablation has A1, A2, B1, B2 (no runoff or snow observations).
- ``twin`` — SYNTHETIC: the Richards1D twin (:func:`difhydro.data.richards_twin`,
  Caravan weather), surface (0-5 cm) observation with noise as target, the 10-50 cm layers
  as deep moisture, twin runoff and degree-day snow: the full A1-A4 / B1-B4 ablation.

Tables: LSTM vs PHY-LSTM vs PHYs-LSTM (R, RMSE, R², KGE, physical consistency PC) with a
persistence forecast; the W ablation (the paper's Table 1) and the RMSE:PHY weight sweep
1:9 ... 9:1 (Table 2). Values are min~max over seeds, as in the paper's tables (the
weight sweep C/D runs one seed).

Run: ``python examples/phy_lstm.py [--quick] [--out results/phy_lstm] [--data site twin]``
"""

from __future__ import annotations

import argparse
import os
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from difhydro.contrib.phy_lstm import (  # noqa: E402
    SequenceLSTM,
    phy_lstm_loss,
    score,
    site_dataset,
    snow_water_change,
    water_balance,
)
from difhydro.data import fit_normalization, make_basin_data, richards_twin  # noqa: E402
from difhydro.training import TrainConfig, Trainer  # noqa: E402

#: $DIFHYDRO_DATA_DIR's Caravan subset, else the shared data beside the checkout
DATA = Path(os.environ.get("DIFHYDRO_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
CARAVAN = DATA / "camels_caravan"
WEIGHTS = ((0.1, 0.9), (0.3, 0.7), (0.5, 0.5), (0.7, 0.3), (0.9, 0.1))
W_LABEL = {"A1": "W=P", "A2": "W=P-ET", "A3": "W=P-ET-SRO", "A4": "W=P-ET-SRO+SD",
           "B1": "W=P", "B2": "W=P-ET", "B3": "W=P-ET-SRO", "B4": "W=P-ET-SRO+SD"}


def documented_basins() -> list[str]:
    """The 19 gauges of the documented runs: the Caravan basins that also have the original
    CAMELS-US files (../camels_us), not all 230 of camels_caravan."""
    from difhydro.data.camels import find_camels_files

    gauges = find_camels_files(DATA / "camels_us")[1]
    return sorted(g for g in gauges if (CARAVAN / "timeseries" / "csv" / "camels" / f"camels_{g}.csv").exists())


def twin_dataset(quick: bool, deep_thickness_mm: float = 500.0):
    """The Richards twin with the PHY-LSTM variables (``sm_prev``, ``w_A1`` ... ``w_B4``)."""
    if quick:
        ds = richards_twin(CARAVAN, n_soils=3, start="2000-01-01", end="2001-12-31", n_substeps=8,
                           basins=["01022500", "01031500", "01547700", "02046000"])
    else:
        ds = richards_twin(CARAVAN, n_soils=8, start="2000-01-01", end="2003-12-31", basins=documented_basins())
    sm = ds["sm_surface"].values
    prev = np.full_like(sm, np.nan)
    prev[:, 1:] = sm[:, :-1]
    ds["sm_prev"] = (("basin", "time"), prev)
    ds["observed_flag"] = (("basin", "time"), np.ones_like(sm))
    deep = np.mean([ds[f"sm_{d}"].values for d in (10, 20, 30, 40, 50)], axis=0)
    d_deep = np.full_like(deep, np.nan)
    d_deep[:, 1:] = np.diff(deep, axis=1)
    p, e, sro = ds["precipitation"].values, ds["evaporation"].values, np.clip(ds["runoff"].values, 0, None)
    d_sd = np.asarray(snow_water_change(ds["snow_water"].values))
    terms = {"A1": (p, 0.0, 0.0, 0.0), "A2": (p, e, 0.0, 0.0), "A3": (p, e, sro, 0.0), "A4": (p, e, sro, d_sd)}
    for key, (pp, ee, rr, ss) in terms.items():
        ds[f"w_{key}"] = (("basin", "time"), np.asarray(water_balance(pp, ee, rr, ss), np.float32))
        ds[f"w_B{key[1]}"] = (("basin", "time"), np.asarray(
            water_balance(pp, ee, rr, ss, d_deep, deep_scale=deep_thickness_mm), np.float32))
    return ds


SETUPS = {
    "site": {
        "inputs": ("precipitation", "et0", "temperature", "srad", "relative_humidity", "wind_speed", "sm_prev"),
        "target": "sm_10",
        "variants": ("A1", "A2", "B1", "B2"),
        "main": ("A2", "B2"),
        "periods": {"train": ("2014-01-01", "2015-06-30"), "validation": ("2015-07-01", "2015-12-31"),
                    "test": ("2016-01-01", "2016-12-31")},
    },
    "twin": {
        "inputs": ("precipitation", "pet", "temperature", "sm_prev"),
        "target": "sm_surface",
        "variants": ("A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4"),
        "main": ("A4", "B4"),
        "periods": {"train": ("2001-01-01", "2002-06-30"), "validation": ("2002-07-01", "2002-12-31"),
                    "test": ("2003-01-01", "2003-12-31")},
        "quick_periods": {"train": ("2001-01-01", "2001-06-30"), "validation": ("2001-07-01", "2001-09-30"),
                          "test": ("2001-10-01", "2001-12-31")},
    },
}


def make_splits(ds, setup, quick):
    periods = setup.get("quick_periods", setup["periods"]) if quick else setup["periods"]
    stats = fit_normalization(ds, list(setup["inputs"]) + [setup["target"]], period=periods["train"])
    forcing = tuple(f"w_{v}" for v in setup["variants"]) + ("observed_flag",)
    data = {name: make_basin_data(ds, stats, period, window=8, warmup=7, forcing=forcing, inputs=setup["inputs"],
                                  target=setup["target"]) for name, period in periods.items()}
    return data, stats


def train_one(data, stats, target, w_name, weights, config):
    """Train one model; returns (test predictions [basin, time], full test batch, history)."""
    model = SequenceLSTM(target_mean=stats.mean[target], target_std=stats.std[target])
    loss = phy_lstm_loss(None if w_name is None else f"w_{w_name}", *weights)
    trainer = Trainer(model, data["train"], config, loss=loss, scored={"soil_moisture": target},
                      validation=data["validation"])
    fit = trainer.fit()
    pred, full = trainer.predict(fit["best_params"], data["test"])
    return pred["soil_moisture"], full, fit["history"]


def evaluate(sim, full, w):
    return score(sim, full.observations(), w)


def _range(values):
    values = np.asarray(values)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.min():.4f}~{values.max():.4f}"


def table(rows, columns=("R", "RMSE", "R2", "KGE", "PC"), first=("run", "loss term")):
    head = "| " + " | ".join(first + columns) + " |"
    lines = [head, "|" + "---|" * (len(first) + len(columns))]
    for label, term, runs in rows:
        cells = [_range([r[c] for r in runs]) for c in columns]
        lines.append("| " + " | ".join([label, term] + cells) + " |")
    return "\n".join(lines)


def run_setup(name, ds, args, out):
    setup = SETUPS[name]
    data, stats = make_splits(ds, setup, args.quick)
    steps = 10 if args.quick else 25
    epochs = args.epochs or (4 if args.quick else 60)
    seeds = list(range(1 if args.quick else args.seeds))
    base_cfg = dict(epochs=epochs, steps_per_epoch=steps, batch_size=64 if name == "site" else 256,
                    learning_rate=1e-3, patience=None if args.quick else 10, monitor="nse",
                    eval_metrics=("nse", "kge", "r", "rmse"), progress=args.progress)
    test_full = None
    # W of the main physical variant for the consistency metric (the paper uses its W).
    w_eval = {}

    runs = {}

    def run(label, w_name, weights, seed):
        nonlocal test_full
        cfg = TrainConfig(seed=seed, **base_cfg)
        sim, full, history = train_one(data, stats, setup["target"], w_name, weights, cfg)
        test_full = full
        w = np.asarray(full.forcing[f"w_{w_name or setup['main'][0]}"])
        w = np.where(np.asarray(full.forcing["observed_flag"]) > 0.5, w, np.nan)
        w[:, :1] = np.nan
        w_eval[label] = w
        res = evaluate(sim, full, w)
        res["val_loss_first"] = history[0].get("val_loss", np.nan)
        res["val_loss_best"] = min(h.get("val_loss", np.inf) for h in history)
        res["epochs"] = len(history)
        runs.setdefault(label, []).append(res)
        return sim

    jobs = [("LSTM", None, (1.0, 0.0))]
    variants = setup["main"] if args.quick else setup["variants"]
    jobs += [(f"{v}", v, (0.5, 0.5)) for v in variants]
    if not args.quick:
        for group, v in zip("CD", setup["main"]):
            jobs += [(f"{group}{i + 1}", v, w) for i, w in enumerate(WEIGHTS) if w != (0.5, 0.5)]
    sims = {}
    bar = tqdm(total=len(jobs) * len(seeds), desc=f"{name} runs", disable=not args.progress)
    for label, w_name, weights in jobs:
        # the weight sweep runs one seed (cost); main runs and ablation use all seeds
        for seed in (seeds if label[0] not in "CD" else seeds[:1]):
            t0 = time.perf_counter()
            sims[label] = run(label, w_name, weights, seed)
            bar.update(1)
            bar.set_postfix(run=label, s=f"{time.perf_counter() - t0:.0f}")
    bar.close()

    # persistence: SM_t = SM_{t-1}, scored on the same days
    obs = test_full.observations()
    target_all = np.asarray(test_full.target)
    persist = np.concatenate([target_all[:, :1], target_all[:, :-1]], axis=1)
    main_w = w_eval[setup["main"][0]]
    with np.errstate(invalid="ignore"):  # persistence never changes SM: PC undefined (NaN)
        runs["persistence"] = [score(persist, obs, main_w)]
    # PC of every run measured against the same W (the main PHY variant's W1)
    pc_common = {label: score(sims[label], obs, main_w)["PC"] for label in sims}

    a_main, b_main = setup["main"]
    lines = [f"### {name}: {'OBSERVED site' if name == 'site' else 'SYNTHETIC Richards twin'}", ""]
    lines.append(f"Test period {SETUPS[name].get('quick_periods' if args.quick and name == 'twin' else 'periods', SETUPS[name]['periods'])['test']}, "
                 f"{len(test_full.target)} series, seeds {list(seeds)}; PC uses each run's own W "
                 f"(LSTM and persistence: {a_main}'s W). PC of the last-seed run against {a_main}'s W: "
                 + ", ".join(f"{k} {v:.3f}" for k, v in pc_common.items()) + ".")
    lines += ["", "Main comparison", "",
              table([("persistence", "-", runs["persistence"]), ("LSTM", "None", runs["LSTM"]),
                     (f"PHY-LSTM ({a_main})", W_LABEL[a_main], runs[a_main]),
                     (f"PHYs-LSTM ({b_main})", W_LABEL[b_main] + " - dSM_deep", runs[b_main])])]
    rows = [("LSTM", "None", runs["LSTM"])] + [(v, W_LABEL[v] + (" - dSM_deep" if v[0] == "B" else ""), runs[v])
                                                for v in variants]
    lines += ["", "W ablation (Table 1; A = W1, B = W2 with deep soil water), RMSE:PHY = 5:5", "", table(rows)]
    if not args.quick:
        rows = []
        for group, v in zip("CD", setup["main"]):
            for i, w in enumerate(WEIGHTS):
                label = v if w == (0.5, 0.5) else f"{group}{i + 1}"
                rows.append((f"{group}{i + 1}" + (f" ({v})" if w == (0.5, 0.5) else ""),
                             f"{int(w[0] * 10)}:{int(w[1] * 10)}", runs[label]))
        lines += ["", f"Weight sweep (Table 2; C = {a_main}, D = {b_main})", "",
                  table(rows, first=("run", "RMSE:PHY"))]
    learn = {k: (float(np.mean([r["val_loss_first"] for r in v])), float(np.mean([r["val_loss_best"] for r in v])))
             for k, v in runs.items() if k != "persistence"}
    lines += ["", "Validation loss, first epoch -> best (mean over seeds): "
              + ", ".join(f"{k} {a:.4g}->{b:.4g}" for k, (a, b) in learn.items()), ""]

    fig, ax = plt.subplots(figsize=(10, 4))
    i = 0
    days = np.arange(obs.shape[1])
    ax.plot(days, obs[i], "k.", ms=3, label="observed")
    for label in ("LSTM", a_main, b_main):
        ax.plot(days, sims[label][i], lw=1, label=label)
    ax.set(xlabel="day of test period", ylabel="soil moisture (m3 m-3)", title=f"{name}: one-day-ahead forecast")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"phy_lstm_{name}.png", dpi=120)
    plt.close(fig)
    return "\n".join(lines), runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few epochs, small twin (CI)")
    parser.add_argument("--out", default="results/phy_lstm")
    parser.add_argument("--data", nargs="+", default=["site", "twin"], choices=["site", "twin"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per run (full setting)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections, results = [], {}
    for name in args.data:
        ds = site_dataset() if name == "site" else twin_dataset(args.quick)
        text, runs = run_setup(name, ds, args, out)
        sections.append(text)
        results[name] = runs
        print(text)
    (out / "phy_lstm_tables.md").write_text("\n\n".join(sections) + "\n")
    (out / "phy_lstm_results.json").write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
