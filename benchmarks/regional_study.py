"""A controlled study of what limits regional accuracy on the Caravan basins (issue 20, item 1).

One factor at a time around a base point, for the regional LSTM (training protocol,
dropout, weight decay, input noise, hidden size, inputs, attributes, number of training basins) and dPL-HBV (the δHBV
switches: capillary rise, groundwater exchange, forcing corrections, dynamic parameters,
spin-up length, low-flow loss), each level with >= 2 seeds. Every point is one config and
one ordinary ``difhydro train`` run directory, so an interrupted study continues where it
stopped (finished points are read, started ones resumed with ``--resume``), and identical
points (every factor's base level) run once.

Settings are judged on the years before the test period only. Training
1999-10-01..2008-09-30; the pre-test era 1981-10-01..1989-09-30 is split in two: with early
stopping (the default) the kept epoch is chosen on 1981-10-01..1985-09-30
(``periods.validation``, ``training.monitor``, ``training.patience``), and every point is
scored on 1985-10-01..1989-09-30 (the run's "test" period), days that did not choose the
epoch. The real test period (1989-10-01..1999-09-30) is never simulated.
``--no-early-stopping`` keeps the last epoch.

Writes ``docs/regional_study.md`` (median validation NSE over the basins per factor level
and seed, the mean and spread over seeds, the effect against the base level) and
``docs/img/regional_study.png``.

    python benchmarks/regional_study.py --out runs/regional_study                  # everything
    python benchmarks/regional_study.py --out runs/smoke --basins 10 --factors lstm_dropout \\
        --epochs 1 --steps-per-epoch 5 --table /tmp/study.md --figure /tmp/study.png  # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
TRAIN = "1999-10-01:2008-09-30"
EARLY_STOPPING = "1981-10-01:1985-09-30"  # chooses the kept epoch
VALIDATION = "1985-10-01:1989-09-30"  # scores every point (the runs' "test" period)
CARAVAN_INPUTS = ["precipitation", "temperature", "pet_era5"]

def merge(base: dict, extra: dict) -> dict:
    """``base`` updated recursively with ``extra`` (new dicts, inputs untouched)."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# The base point of each model: the settings of benchmarks/configs/regional.yml.
BASE = {
    "lstm": {"hidden_size": 64},
    "dpl_hbv": {"hidden_size": 64, "components": 4, "training": {"steps_per_epoch": 120}},
    "hybrid": {"hidden_size": 64, "training": {"steps_per_epoch": 100}},
    "dpl_exphydro": {"hidden_size": 64, "training": {"steps_per_epoch": 100}},
    "exphydro_calibrated": {},
    "hbv_calibrated": {},
}
# ERA5-Land PET in the physics instead of Oudin's; the networks keep the same three inputs
# (P, T and ERA5-Land PET, named pet here); its negative values (condensation days) clipped to 0
ERA5_PET = {"data": {"pet": "data", "inputs": CARAVAN_INPUTS[:2] + ["pet"], "policies": {"pet": {"clip": [0, None]}}}}

# factor -> (model, {level: overrides of the point config}); the first level is the base.
# Overrides are nested mappings merged into the config ("models" keys go to the factor's model).
FACTORS: dict[str, tuple[str, dict[str, dict]]] = {
    "lstm_protocol": ("lstm", {
        "270-day windows, 180 scored days": {},
        "395-day windows, 30 scored days": {"models": {"training": {"window": 395, "warmup": 365}}},
        "366-day windows, 1 scored day (Kratzert)": {"models": {"training": {"window": 366, "warmup": 365}}},
    }),
    "lstm_dropout": ("lstm", {"0.1": {}, "0.0": {"models": {"dropout": 0.0}}, "0.4": {"models": {"dropout": 0.4}}}),
    # decoupled weight decay (AdamW): each step shrinks the weights by learning_rate x weight_decay, so at
    # 0.003 and ~2000 steps 0.01 takes off ~3 % and 0.1 ~25 % (1e-4 would be invisible)
    "lstm_weight_decay": ("lstm", {"0": {}, "0.01": {"training": {"weight_decay": 0.01}},
                                   "0.1": {"training": {"weight_decay": 0.1}}}),
    # Gaussian noise on the standardised inputs of training batches (std in training standard deviations)
    "lstm_input_noise": ("lstm", {"0": {}, "0.1": {"training": {"input_noise": 0.1}},
                                  "0.3": {"training": {"input_noise": 0.3}}}),
    # neuralhydrology's head is linear; difhydro's clips at 0 flow, also inside the loss
    "lstm_output": ("lstm", {"clipped at 0 in training": {},
                             "linear in training (clipped in prediction)": {"models": {"clip_in_training": False}}}),
    # neuralhydrology trains at a constant rate; difhydro's default decays it (cosine to 5 %)
    "lstm_schedule": ("lstm", {"cosine": {}, "constant": {"training": {"schedule": "constant"}}}),
    "lstm_hidden_size": ("lstm", {"64": {}, "32": {"models": {"hidden_size": 32}},
                                  "128": {"models": {"hidden_size": 128, "dropout": 0.1}},
                                  "256": {"models": {"hidden_size": 256, "dropout": 0.1}}}),
    "lstm_inputs": ("lstm", {
        "P, T, ERA5 PET": {},
        "P, T": {"data": {"inputs": ["precipitation", "temperature"]}},
        "P, T, ERA5 PET, Oudin PET": {"data": {"inputs": CARAVAN_INPUTS + ["pet"]}},
        # derived: hours of daylight from gauge_lat and day of year (FAO-56 eq. 34; the Caravan reader adds it)
        "P, T, ERA5 PET, day length": {"data": {"inputs": CARAVAN_INPUTS + ["day_length"]}},
    }),
    "lstm_attributes": ("lstm", {"20 Caravan attributes": {}, "none": {"data": {"attributes": []}}}),
    # neuralhydrology's LSTM starts from torch's draws (every weight and both biases U(-1/sqrt(H), 1/sqrt(H)),
    # forget bias 3 + U), difhydro's from Flax's (difhydro/nn/initialisation.py)
    "lstm_init": ("lstm", {"flax (LeCun normal, orthogonal)": {},
                           "torch uniform (as neuralhydrology)": {"models": {"init": "torch"}}}),
    "lstm_training_basins": ("lstm", {"all": {}, "115": {"data": {"basins": 115}}, "58": {"data": {"basins": 58}}}),
    # the years after the Kratzert et al. training period that Caravan also covers (1999-2014)
    "lstm_training_years": ("lstm", {"1999-10..2008-09 (9 years)": {},
                                     "1999-10..2014-09 (15 years)": {"periods": {"train": "1999-10-01:2014-09-30"}}}),
    # the parameter LSTM's starting draws (the dPL-HBV/δHBV reference code is torch's too)
    "hbv_init": ("dpl_hbv", {"flax (LeCun normal, orthogonal)": {},
                             "torch uniform": {"models": {"init": "torch"}}}),
    "hbv_capillary_rise": ("dpl_hbv", {"off": {}, "on": {"models": {"capillary_rise": True}}}),
    "hbv_groundwater_exchange": ("dpl_hbv", {"off": {}, "on": {"models": {"groundwater_exchange": True}}}),
    "hbv_forcing_correction": ("dpl_hbv", {
        "none": {}, "P": {"models": {"forcing_correction": ["precipitation"]}},
        "P and PET": {"models": {"forcing_correction": ["precipitation", "pet"]}},
    }),
    "hbv_dynamic_params": ("dpl_hbv", {
        "BETA, BETAET": {}, "BETA, BETAET, K0": {"models": {"dynamic_params": ["beta", "betaet", "k0"]}},
        "none (static)": {"models": {"dynamic_params": []}},
    }),
    # the PET the physics reads: ERA5-Land's (too high on many basins) instead of Oudin's; the networks keep
    # the same three inputs (P, T and ERA5-Land PET, named pet here). With it the EXP-HYDRO models' tails
    # shrank (regional_tails.py: most failing basins over-predict the volume, Oudin's ET is too small there)
    "hbv_pet": ("dpl_hbv", {"Oudin": {}, "ERA5-Land": ERA5_PET}),
    # the two best single changes together (is their gain additive?)
    "hbv_pet_and_correction": ("dpl_hbv", {
        "Oudin, no correction": {},
        "ERA5-Land PET, P and PET corrected": merge(ERA5_PET, {"models": {"forcing_correction": ["precipitation", "pet"]}}),
    }),
    # the two LSTM changes that gained most, together
    "lstm_output_and_weight_decay": ("lstm", {
        "clipped at 0 in training, no weight decay": {},
        "linear in training, weight decay 0.1": {"models": {"clip_in_training": False}, "training": {"weight_decay": 0.1}},
    }),
    # the same PET question for the other physics-aware models (regional_tails.py: their failing basins
    # over-predict the volume too)
    **{f"{model}_pet": (model, {"Oudin": {}, "ERA5-Land": ERA5_PET})
       for model in ("hybrid", "dpl_exphydro", "exphydro_calibrated", "hbv_calibrated")},
    # δHBV's 16 parallel buckets (Feng et al. 2022) against regional.yml's 4; held out (5-fold, validation
    # years, 90-day spin-up) 16 gained +0.014 median per basin (p = 0.003), basins below -1 12 against 13
    "hbv_components": ("dpl_hbv", {"4": {}, "16": {"models": {"components": 16}}}),
    "hbv_spin_up": ("dpl_hbv", {"90 days": {}, "365 days": {"models": {"training": {"window": 545, "warmup": 365}}}}),
    # needs training.loss to accept the registered name (config.py's choices list)
    "hbv_loss": ("dpl_hbv", {"NSE*": {}, "low-flow RMSE": {"models": {"training": {"loss": "rmse_low_flow"}}}}),
}


def point_config(args, model: str, overrides: dict, seed: int) -> dict:
    """The full ``difhydro train`` config of one point."""
    training = {"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
                "window": 270, "warmup": 90, "learning_rate": 0.003}
    periods = {"train": TRAIN, "test": VALIDATION}
    if args.early_stopping:
        periods["validation"] = EARLY_STOPPING
        training.update(monitor="nse", patience=args.patience)
    own = merge(BASE[model], overrides.get("models", {}))
    if args.steps_per_epoch_fixed:  # a smoke run: one budget for every model
        own.setdefault("training", {}).pop("steps_per_epoch", None)
    cfg = {
        "name": f"study_{model}",
        "data": merge({"format": "caravan", "basins": args.basins, "pet": "oudin"}, overrides.get("data", {})),
        "periods": merge(periods, overrides.get("periods", {})),
        "evaluations": ["temporal"],
        "seeds": [seed],
        "models": {model: own},
        "training": merge(training, overrides.get("training", {})),
        "peers": {"neuralhydrology": bool(args.neuralhydrology and model == "lstm")},
    }
    if not own.get("training"):
        own.pop("training", None)
    return cfg


def point_id(cfg: dict) -> str:
    """A stable name for a point: model, a hash of its config, seed."""
    model = next(iter(cfg["models"]))
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    return f"{model}_{digest}_seed{cfg['seeds'][0]}"


def finished(run_dir: Path) -> bool:
    """Whether a point's run scored its model: a run whose only unit failed also writes a
    ``metrics.csv``, without rows (the point then resumes)."""
    try:
        return len(pd.read_csv(run_dir / "metrics.csv")) > 0
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return False


def finished_point(args, cfg: dict) -> Path | None:
    """The run folder of a finished point, None otherwise (nothing is trained)."""
    run_dir = Path(args.out) / "runs" / point_id(cfg)
    return run_dir if finished(run_dir) else None


def run_point(args, cfg: dict) -> Path | None:
    """Train one point into ``<out>/runs/<id>`` (resume a started one; skip a finished one).
    With ``--report`` nothing is trained and an unfinished point gives None."""
    done = finished_point(args, cfg)
    if done is not None:
        return done
    out, name = Path(args.out), point_id(cfg)
    run_dir, config_file = out / "runs" / name, out / "configs" / f"{name}.yml"
    if args.report:  # a table of what has finished; this point has not
        return None
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    command = [sys.executable, "-m", "difhydro", "train", str(config_file), "--data-dir", args.data_dir, "--quiet"]
    command += ["--resume", str(run_dir)] if run_dir.exists() else ["--out", str(run_dir)]
    print(" ".join(command), flush=True)
    if args.dry_run:
        return run_dir
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0 or not finished(run_dir):
        raise SystemExit(f"point {name} failed (exit {done.returncode}); its config: {config_file}. Fix and rerun: "
                         f"finished points are kept, this one resumes")
    return run_dir


def point_scores(run_dir: Path, seed: int) -> pd.DataFrame:
    """Validation NSE per basin and model of one run (the study's model and any peer), from
    the run's metrics.csv ("test" = the validation period here): columns model, seed,
    basin, nse."""
    table = pd.read_csv(run_dir / "metrics.csv", dtype={"basin": str})
    table = table[(table["evaluation"] == "temporal") & ~table["model"].astype(str).str.endswith("_ensemble")]
    return table.assign(seed=seed)[["model", "seed", "basin", "nse"]]


def level_medians(scores: pd.DataFrame) -> pd.DataFrame:
    """Per factor, level, model and seed: the median NSE over the basins that every level and
    seed of that factor scores (a level trained on fewer basins is compared with the others
    on its basins, not on all), their number and how many of them are below NSE -1.

    Args:
        scores: rows of :func:`point_scores` with ``factor`` and ``level`` columns.
    """
    scores = scores[np.isfinite(scores["nse"].to_numpy(float))]
    rows = []
    for (factor, model), sub in scores.groupby(["factor", "model"], sort=False):
        runs = sub.groupby(["level", "seed"], sort=False)["basin"].agg(set)
        common = set.intersection(*runs)
        for (level, seed), run in sub[sub["basin"].isin(common)].groupby(["level", "seed"], sort=False):
            nse = run["nse"].to_numpy(float)
            rows.append({"factor": factor, "level": level, "model": model, "seed": seed,
                         "median_nse": float(np.median(nse)), "basins": len(nse),
                         "below_minus_1": int((nse < -1).sum())})
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Per factor, level and model: median NSE per seed, mean and spread (max - min) over
    seeds, and the effect (mean minus the base level's mean)."""
    keys = ["factor", "level", "model"]
    out = scores.groupby(keys, sort=False).agg(
        seeds=("seed", "nunique"), mean=("median_nse", "mean"), spread=("median_nse", lambda s: s.max() - s.min()),
        per_seed=("median_nse", lambda s: ", ".join(f"{v:.3f}" for v in s)), basins=("basins", "max"),
        below_minus_1=("below_minus_1", "mean")).reset_index()
    base = out[out["level"] == out["factor"].map(lambda f: next(iter(FACTORS[f][1])))]
    base_mean = {(r.factor, r.model): r.mean for r in base.itertuples()}
    out["effect"] = [r.mean - base_mean.get((r.factor, r.model), np.nan) for r in out.itertuples()]
    return out


def own_steps(args) -> str:
    """The models whose base point sets its own steps_per_epoch (regional.yml), as text."""
    own = {m: b["training"]["steps_per_epoch"] for m, b in BASE.items()
           if "steps_per_epoch" in b.get("training", {})}
    if args.steps_per_epoch_fixed or not own:
        return ""
    return " (" + ", ".join(f"{m}: {n}" for m, n in own.items()) + " steps per epoch)"


def write_table(summary: pd.DataFrame, path: Path, args, pending: list[str] = ()) -> None:
    lines = ["# What limits regional accuracy: the validation study", "",
             f"`python benchmarks/regional_study.py {' '.join(sys.argv[1:])}` (benchmarks/regional_study.py). "
             f"Training {TRAIN}; kept epoch chosen on {EARLY_STOPPING.replace(':', '..')}, every point scored on "
             f"{VALIDATION.replace(':', '..')}; the test period untouched. {args.basins} basins, "
             f"{args.epochs} epochs x {args.steps_per_epoch} steps{own_steps(args)}, batch {args.batch_size}, early stopping "
             f"{'on the validation NSE' if args.early_stopping else 'off'}.", "",
             "Median NSE per seed over the basins that every level of the factor scores (`basins`: a level "
             "trained on fewer basins is compared on its own); mean and spread (max - min) over the seeds; effect = "
             "mean minus the factor's base level (first row of each factor).", "",
             "| factor | level | model | seeds | median NSE per seed | mean | spread | effect | basins | NSE < -1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.factor} | {r.level} | {r.model} | {r.seeds} | {r.per_seed} | {r.mean:.3f} | "
                     f"{r.spread:.3f} | {r.effect:+.3f} | {r.basins} | {r.below_minus_1:g} |")
    if pending:
        lines += ["", f"Not finished yet ({len(pending)} points; `--resume` is automatic, rerun without `--report`): "
                  + "; ".join(pending) + "."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_figure(scores: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factors = list(dict.fromkeys(scores["factor"]))
    fig, axes = plt.subplots(len(factors), 1, figsize=(7, 2.2 * len(factors)), squeeze=False)
    for ax, factor in zip(axes[:, 0], factors):
        sub = scores[scores["factor"] == factor]
        levels = list(dict.fromkeys(sub["level"]))
        for j, (model, by_model) in enumerate(sub.groupby("model", sort=False)):
            x = np.array([levels.index(v) for v in by_model["level"]]) + 0.12 * j
            ax.plot(x, by_model["median_nse"], "o", alpha=0.6, label=model)
            means = by_model.groupby("level", sort=False)["median_nse"].mean()
            ax.plot([levels.index(v) + 0.12 * j for v in means.index], means.values, "_", ms=18, color="k")
        ax.set_xticks(range(len(levels)), levels, fontsize=7)
        ax.set_xlim(-0.5, len(levels) - 0.5)
        ax.set_ylabel("median NSE", fontsize=8)
        ax.set_title(factor, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (``--basins`` becomes an int unless 'all')."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="study folder: configs/, runs/<point>/ (resumable)")
    p.add_argument("--data-dir", default=str(Path(os.environ.get("DIFHYDRO_DATA_DIR", REPO.parent / "shared" / "data"))
                                          / "camels_caravan"))
    p.add_argument("--factors", default="all", help=f"comma-separated subset of {', '.join(FACTORS)} to train (the table reports "
                   "every finished point of --out)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (>= 2 for a spread)")
    p.add_argument("--basins", default="all", help="'all' or the first N eligible basins")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=200)
    p.add_argument("--steps-per-epoch-fixed", action="store_true", help="ignore the models' own steps_per_epoch")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--no-early-stopping", dest="early_stopping", action="store_false")
    p.add_argument("--neuralhydrology", action="store_true", help="train neuralhydrology's cudalstm beside each LSTM point")
    p.add_argument("--table", default=str(REPO / "docs" / "regional_study.md"))
    p.add_argument("--figure", default=str(REPO / "docs" / "img" / "regional_study.png"))
    p.add_argument("--dry-run", action="store_true", help="write the configs and print the commands only")
    p.add_argument("--report", action="store_true",
                   help="train nothing: the table and figure of the finished points, the others listed as pending")
    args = p.parse_args(argv)
    args.basins = args.basins if args.basins == "all" else int(args.basins)
    args.chosen = list(FACTORS) if args.factors == "all" else args.factors.split(",")
    unknown = [f for f in args.chosen if f not in FACTORS]
    if unknown:
        p.error(f"--factors {unknown}: choose from {', '.join(FACTORS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, pending = [], []
    # the chosen factors are trained; the table holds every finished point of the study folder, so
    # that training one factor never drops the others from the report
    for factor, (model, levels) in FACTORS.items():
        chosen = factor in args.chosen
        for level, overrides in levels.items():
            for seed in seeds:
                cfg = point_config(args, model, overrides, seed)
                run_dir = run_point(args, cfg) if chosen else finished_point(args, cfg)
                if run_dir is None:
                    if chosen:
                        pending.append(f"{factor} = {level} (seed {seed})")
                elif not args.dry_run:
                    rows.append(point_scores(run_dir, seed).assign(factor=factor, level=level))
    if args.dry_run:
        return 0
    if not rows:
        raise SystemExit(f"no point of {args.chosen} has finished in {args.out}; run without --report first")
    scores = pd.concat(rows, ignore_index=True)
    scores.to_csv(Path(args.out) / ("scores_report.csv" if args.report else "scores.csv"), index=False)
    scores = level_medians(scores)
    summary = summarise(scores)
    write_table(summary, Path(args.table), args, pending)
    write_figure(scores, Path(args.figure))
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
