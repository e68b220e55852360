"""benchmarks/regional_study.py without training: the point configs it writes, the
deduplication of base points, and the table arithmetic (mean, spread, effect)."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from difhydro.experiment.config import load_config

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "regional_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("regional_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(study):
    return study.parse_args(["--out", "unused", "--basins", "10", "--epochs", "1", "--steps-per-epoch", "5",
                             "--batch-size", "16", "--no-early-stopping"])


def test_point_configs_validate_and_keep_the_test_period_out(study):
    args = _args(study)
    for factor, (model, levels) in study.FACTORS.items():
        for level, overrides in levels.items():
            cfg = study.point_config(args, model, overrides, seed=1)
            assert cfg["periods"] == {"train": study.TRAIN, "test": study.VALIDATION}, factor
            assert list(cfg["models"]) == [model] and cfg["seeds"] == [1]
            load_config(cfg)  # every point is a valid difhydro config
    base = study.point_config(args, "lstm", {}, 0)
    assert base["models"]["lstm"] == {"hidden_size": 64} and base["training"]["window"] == 270
    wide = study.point_config(args, "lstm", study.FACTORS["lstm_protocol"][1]["366-day windows, 1 scored day (Kratzert)"], 0)
    assert wide["models"]["lstm"]["training"] == {"window": 366, "warmup": 365}


def test_base_levels_of_different_factors_are_one_point(study):
    args = _args(study)
    ids = {study.point_id(study.point_config(args, "lstm", study.FACTORS[f][1][next(iter(study.FACTORS[f][1]))], 0))
           for f in ("lstm_dropout", "lstm_hidden_size", "lstm_inputs", "lstm_protocol")}
    assert len(ids) == 1
    assert study.point_id(study.point_config(args, "lstm", {}, 1)) not in ids  # another seed, another run


def test_early_stopping_adds_the_validation_keys(study):
    args = _args(study)
    args.early_stopping = True
    cfg = study.point_config(args, "dpl_hbv", {}, 0)
    assert cfg["periods"]["validation"] == study.EARLY_STOPPING  # chooses the epoch; VALIDATION scores it
    assert (cfg["training"]["monitor"], cfg["training"]["patience"]) == ("nse", 3)
    periods = load_config(cfg).periods  # the config refuses overlapping periods: these do not overlap
    assert periods["validation"][1] < periods["test"][0] < periods["test"][1] < "1989-10-01"


def test_summary_mean_spread_and_effect(study):
    scores = pd.DataFrame([
        {"factor": "lstm_dropout", "level": "0.1", "model": "lstm", "seed": 0, "median_nse": 0.40, "basins": 9, "below_minus_1": 1},
        {"factor": "lstm_dropout", "level": "0.1", "model": "lstm", "seed": 1, "median_nse": 0.44, "basins": 9, "below_minus_1": 0},
        {"factor": "lstm_dropout", "level": "0.4", "model": "lstm", "seed": 0, "median_nse": 0.50, "basins": 9, "below_minus_1": 0},
        {"factor": "lstm_dropout", "level": "0.4", "model": "lstm", "seed": 1, "median_nse": 0.46, "basins": 9, "below_minus_1": 0},
    ])
    out = study.summarise(scores).set_index("level")
    assert out.loc["0.1", "mean"] == pytest.approx(0.42) and out.loc["0.1", "spread"] == pytest.approx(0.04)
    assert out.loc["0.4", "mean"] == pytest.approx(0.48) and out.loc["0.4", "effect"] == pytest.approx(0.06)
    assert out.loc["0.1", "effect"] == 0.0 and out.loc["0.1", "below_minus_1"] == 0.5
