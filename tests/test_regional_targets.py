"""benchmarks/regional_targets.py on a hand-made metrics table."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import regional_targets  # noqa: E402


def _metrics() -> pd.DataFrame:
    basins = [f"{i:08d}" for i in range(50)]
    rng = np.random.default_rng(0)
    peer = rng.uniform(0.2, 0.8, 50)
    rows = []
    for b, q in zip(basins, peer):
        rows += [("temporal", "nh_cudalstm", 0, b, q), ("temporal", "lstm", 0, b, q - 0.05),
                 ("temporal", "dpl_hbv", 0, b, q - 0.06), ("kfold", "lstm", 0, b, q - 0.3),
                 ("kfold", "dpl_hbv", 0, b, q - 0.2), ("temporal", "lstm", 1, b, 0.9)]
    rows[4 * 6 + 4] = ("kfold", "dpl_hbv", 0, basins[4], -3.0)  # one basin of 50 below -1: 2 %
    return pd.DataFrame(rows, columns=["evaluation", "model", "seed", "basin", "nse"])


def test_targets_of_a_table_with_known_answers():
    metrics = _metrics()
    rows = {t: (f, met) for t, f, met in regional_targets.targets(regional_targets.nse_table(metrics, 0))}
    lstm = np.median(metrics.query("evaluation == 'temporal' and model == 'lstm' and seed == 0")["nse"])
    assert rows["gauged LSTM median NSE >= 0.50"] == (f"{lstm:.3f} (50 basins)", lstm >= 0.5)
    figure, met = rows["gauged LSTM not worse than neuralhydrology basin by basin (Wilcoxon, one-sided)"]
    assert "median difference -0.050, ahead in 0 % of 50 basins" in figure and met is False  # NH better everywhere
    assert rows["gauged dPL-HBV median within 0.02 of the LSTM"][1] is True  # 0.01 behind
    assert rows["ungauged dpl_hbv <= 2 % of basins below NSE -1"] == ("2.0 %", True)
    assert rows["ungauged best physics-aware median >= the LSTM's"][1] is True
    # seed 1 has an LSTM of 0.9 everywhere and no dPL-HBV
    seed1 = {t: met for t, _, met in regional_targets.targets(regional_targets.nse_table(metrics, 1))}
    assert seed1["gauged LSTM median NSE >= 0.50"] is True and not any("dPL-HBV" in t for t in seed1)
