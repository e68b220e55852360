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
            assert cfg["periods"]["test"] == study.VALIDATION, factor
            start, end = cfg["periods"]["train"].split(":")  # never the real test period 1989-10..1999-09
            assert start >= "1999-10-01" and end <= "2014-12-31", factor
            assert cfg["periods"]["train"] == study.TRAIN or factor == "lstm_training_years", factor
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


def test_a_level_on_fewer_basins_is_compared_on_its_basins(study):
    # "all" scores basins a, b, c; "2" (trained on the first two) scores a and b: both are
    # summarised over a and b only, and a NaN score drops its basin from the comparison
    rows = [("all", "a", 0.2), ("all", "b", 0.4), ("all", "c", -3.0), ("2", "a", 0.3), ("2", "b", -1.5),
            ("2", "d", float("nan"))]
    scores = pd.DataFrame([{"factor": "lstm_training_basins", "level": lv, "model": "lstm", "seed": 0, "basin": b,
                            "nse": v} for lv, b, v in rows])
    out = study.level_medians(scores).set_index("level")
    assert out.loc["all", "median_nse"] == pytest.approx(0.3) and out.loc["2", "median_nse"] == pytest.approx(-0.6)
    assert list(out["basins"]) == [2, 2] and list(out["below_minus_1"]) == [0, 1]
    effect = study.summarise(study.level_medians(scores)).set_index("level")["effect"]
    assert effect["2"] == pytest.approx(-0.9)


def test_the_base_points_keep_their_names_when_factors_are_added(study):
    # the names of the study's finished base points (docs/regional_study.md): a new factor or a
    # new training key with a default must not rename them (each would be trained again)
    args = study.parse_args(["--out", "unused"])
    assert study.point_id(study.point_config(args, "lstm", {}, 0)) == "lstm_99d485b26e_seed0"
    assert study.point_id(study.point_config(args, "dpl_hbv", {}, 1)) == "dpl_hbv_a9b215cbed_seed1"
    for factor, (model, levels) in study.FACTORS.items():
        assert next(iter(levels.values())) == {}, factor  # every factor's first level is the base point


def test_weight_decay_input_noise_and_day_length_points(study):
    args = _args(study)
    for factor, key in (("lstm_weight_decay", "weight_decay"), ("lstm_input_noise", "input_noise")):
        levels = study.FACTORS[factor][1]
        assert study.FACTORS[factor][0] == "lstm" and len(levels) >= 3
        for level, overrides in list(levels.items())[1:]:
            cfg = load_config(study.point_config(args, "lstm", overrides, 0))
            assert getattr(cfg.training, key) == float(level) > 0  # the level's name is the value trained
        assert getattr(load_config(study.point_config(args, "lstm", {}, 0)).training, key) == 0.0
    day = study.FACTORS["lstm_inputs"][1]["P, T, ERA5 PET, day length"]
    assert load_config(study.point_config(args, "lstm", day, 0)).data.inputs == study.CARAVAN_INPUTS + ["day_length"]
    assert not hasattr(study, "NOT_AVAILABLE")


def test_report_tables_finished_points_and_lists_the_pending(study, tmp_path):
    args = study.parse_args(["--out", str(tmp_path), "--factors", "lstm_dropout", "--seeds", "0", "--report",
                             "--table", str(tmp_path / "t.md"), "--figure", str(tmp_path / "f.png")])
    levels = study.FACTORS["lstm_dropout"][1]
    finished = study.point_id(study.point_config(args, "lstm", levels["0.0"], 0))
    (tmp_path / "runs" / finished).mkdir(parents=True)
    pd.DataFrame({"evaluation": "temporal", "model": "lstm", "basin": ["a", "b", "c"],
                  "nse": [0.2, 0.5, -3.0]}).to_csv(tmp_path / "runs" / finished / "metrics.csv", index=False)
    assert study.main(["--out", str(tmp_path), "--factors", "lstm_dropout", "--seeds", "0", "--report",
                       "--table", str(tmp_path / "t.md"), "--figure", str(tmp_path / "f.png")]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "| lstm_dropout | 0.0 | lstm | 1 | 0.200 |" in table and "| 3 | 1 |" in table  # median, basins, < -1
    assert "Not finished yet (2 points" in table and "lstm_dropout = 0.1 (seed 0)" in table
    assert not (tmp_path / "configs").exists()  # --report trains and writes no config


def test_training_one_factor_keeps_the_other_factors_in_the_table(study, tmp_path):
    # a finished point of another factor stays in the table written for --factors lstm_dropout
    paths = ["--table", str(tmp_path / "t.md"), "--figure", str(tmp_path / "f.png")]
    args = study.parse_args(["--out", str(tmp_path), "--factors", "lstm_dropout", "--seeds", "0", *paths])
    for factor, level, nse in (("lstm_dropout", "0.0", [0.2, 0.5, -3.0]), ("lstm_weight_decay", "0.01", [0.4, 0.6, 0.1])):
        point = study.point_id(study.point_config(args, "lstm", study.FACTORS[factor][1][level], 0))
        (tmp_path / "runs" / point).mkdir(parents=True)
        pd.DataFrame({"evaluation": "temporal", "model": "lstm", "basin": ["a", "b", "c"],
                      "nse": nse}).to_csv(tmp_path / "runs" / point / "metrics.csv", index=False)
    assert study.main(["--out", str(tmp_path), "--factors", "lstm_dropout", "--seeds", "0", "--report", *paths]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "| lstm_dropout | 0.0 | lstm | 1 | 0.200 |" in table
    assert "| lstm_weight_decay | 0.01 | lstm | 1 | 0.400 |" in table
    # only the chosen factor's unfinished points are listed as pending
    assert "lstm_dropout = 0.1 (seed 0)" in table and "lstm_weight_decay = 0 (seed 0)" not in table


def test_a_point_whose_unit_failed_is_pending_not_finished(study, tmp_path):
    """A run whose only unit failed writes a metrics.csv without rows: the point resumes."""
    args = study.parse_args(["--out", str(tmp_path), "--factors", "lstm_dropout", "--seeds", "0", "--report"])
    cfg = study.point_config(args, "lstm", study.FACTORS["lstm_dropout"][1]["0.0"], 0)
    run = tmp_path / "runs" / study.point_id(cfg)
    run.mkdir(parents=True)
    for empty in ("", "\n"):
        (run / "metrics.csv").write_text(empty)
        assert not study.finished(run) and study.run_point(args, cfg) is None
    (run / "metrics.csv").write_text("evaluation,model,basin,nse\n")
    assert not study.finished(run)
    (run / "metrics.csv").write_text("evaluation,model,basin,nse\ntemporal,lstm,a,0.3\n")
    assert study.finished(run) and study.run_point(args, cfg) == run
