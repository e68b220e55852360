"""The regional targets of a run, met or not: ``python benchmarks/regional_targets.py RUN``.

Reads ``RUN/metrics.csv`` of ``difhydro train benchmarks/configs/regional.yml`` (one seed,
``--seed`` to choose another) and prints, as a Markdown table, each target with its figure:

- gauged LSTM median NSE >= 0.50, and not worse than neuralhydrology's ``cudalstm`` basin by
  basin: a one-sided Wilcoxon signed-rank test of "NH better" on the paired NSE (not worse =
  p >= 0.05), with the median paired difference and the share of basins where difhydro is
  ahead;
- gauged dPL-HBV median within 0.02 of the LSTM's, mean NSE >= 0.35, at most 2 % of the
  basins below NSE -1;
- ungauged (k-fold): at most 2 % below NSE -1 for every physics-aware model, and the best
  physics-aware median >= the LSTM's.

NSE is per basin over the test period (the run's metrics); a basin without a finite NSE is
left out of its model's figures and counted in ``basins``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

PHYSICS_AWARE = ("dpl_hbv", "hybrid", "dpl_exphydro")
PEER = "nh_cudalstm"


def nse_table(metrics: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per-basin NSE ``[basin, (evaluation, model)]`` of one seed (the peer has seed 0)."""
    rows = metrics[(metrics["seed"] == seed) | (metrics["model"] == PEER)]
    rows = rows[~rows["model"].astype(str).str.endswith("_ensemble")]
    return rows.pivot_table(index="basin", columns=["evaluation", "model"], values="nse", aggfunc="first")


def paired(ours: pd.Series, peer: pd.Series) -> dict:
    """Paired comparison on the basins both score: median difference (ours - peer), share of
    basins where ours is ahead, one-sided Wilcoxon p of "peer better"."""
    both = pd.concat([ours, peer], axis=1).dropna()
    diff = both.iloc[:, 0] - both.iloc[:, 1]
    p = float(wilcoxon(diff, alternative="less").pvalue)
    return {"basins": len(both), "median_difference": float(diff.median()), "ahead": float((diff > 0).mean()), "p": p}


def summary(nse: pd.Series) -> dict:
    """Median, mean and share below -1 of finite NSE values."""
    v = nse.dropna().to_numpy(float)
    return {"median": float(np.median(v)), "mean": float(np.mean(v)), "below_minus_1": float(np.mean(v < -1)),
            "basins": len(v)}


def targets(table: pd.DataFrame) -> list[tuple[str, str, bool | None]]:
    """``(target, figure, met)`` rows; ``met`` is None where the run lacks the model."""
    out = []

    def has(ev, model):
        return (ev, model) in table.columns

    gauged = {m: summary(table[("temporal", m)]) for e, m in table.columns if e == "temporal"}
    ungauged = {m: summary(table[("kfold", m)]) for e, m in table.columns if e == "kfold"}
    if "lstm" in gauged:
        s = gauged["lstm"]
        out.append(("gauged LSTM median NSE >= 0.50", f"{s['median']:.3f} ({s['basins']} basins)", s["median"] >= 0.50))
    if has("temporal", "lstm") and has("temporal", PEER):
        c = paired(table[("temporal", "lstm")], table[(("temporal", PEER))])
        out.append(("gauged LSTM not worse than neuralhydrology basin by basin (Wilcoxon, one-sided)",
                    f"median difference {c['median_difference']:+.3f}, ahead in {100 * c['ahead']:.0f} % of "
                    f"{c['basins']} basins, p(NH better) = {c['p']:.2g}; NH median {gauged[PEER]['median']:.3f}",
                    c["p"] >= 0.05))
    if "dpl_hbv" in gauged and "lstm" in gauged:
        d, lstm = gauged["dpl_hbv"], gauged["lstm"]
        out.append(("gauged dPL-HBV median within 0.02 of the LSTM", f"{d['median']:.3f} vs {lstm['median']:.3f}",
                    d["median"] >= lstm["median"] - 0.02))
    if "dpl_hbv" in gauged:
        d = gauged["dpl_hbv"]
        out.append(("gauged dPL-HBV mean NSE >= 0.35", f"{d['mean']:.3f}", d["mean"] >= 0.35))
        out.append(("gauged dPL-HBV <= 2 % of basins below NSE -1", f"{100 * d['below_minus_1']:.1f} %",
                    d["below_minus_1"] <= 0.02))
    for m in PHYSICS_AWARE:
        if m in ungauged:
            u = ungauged[m]
            out.append((f"ungauged {m} <= 2 % of basins below NSE -1", f"{100 * u['below_minus_1']:.1f} %",
                        u["below_minus_1"] <= 0.02))
    physics = {m: ungauged[m]["median"] for m in PHYSICS_AWARE if m in ungauged}
    if physics and "lstm" in ungauged:
        best = max(physics, key=physics.get)
        out.append(("ungauged best physics-aware median >= the LSTM's",
                    f"{best} {physics[best]:.3f} vs LSTM {ungauged['lstm']['median']:.3f}",
                    physics[best] >= ungauged["lstm"]["median"]))
    return out


def markdown(rows: list[tuple[str, str, bool | None]]) -> str:
    """The target table."""
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {f} | {'yes' if met else 'no' if met is not None else '-'} |" for t, f, met in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run folder of regional.yml (its metrics.csv)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    path = Path(args.run) / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no metrics.csv (has the run finished?)")
    metrics = pd.read_csv(path, dtype={"basin": str})
    table = nse_table(metrics, args.seed)
    if table.empty:
        raise SystemExit(f"{path}: no rows of seed {args.seed}")
    print(markdown(targets(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
