"""benchmarks/regional_tails.py on a synthetic metrics.csv and a six-basin Caravan folder whose
runoff ratios, aridity and snow fractions are known: the tercile table, the worst basins, the
tail's shares and the runoff ratio are checked against numbers worked out by hand."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "regional_tails.py"
BASINS = ["01000001", "01000002", "01000003", "01000004", "01000005", "01000006"]
ARIDITY = [0.5, 0.8, 1.0, 1.5, 3.0, 6.0]
SNOW = [0.0, 0.0, 0.0, 0.0, 0.3, 0.5]
RATIO = [0.6, 0.5, 0.4, 0.3, 0.2, 0.05]
NSE_A = [0.9, 0.8, 0.7, 0.1, -0.5, -3.0]  # worse as the basins get drier


@pytest.fixture(scope="module")
def tails():
    spec = importlib.util.spec_from_file_location("regional_tails", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _caravan(root: Path) -> Path:
    ts, attrs = root / "timeseries/csv/camels", root / "attributes/camels"
    ts.mkdir(parents=True)
    attrs.mkdir(parents=True)
    dates = pd.date_range("2000-01-01", periods=30)
    for basin, ratio in zip(BASINS, RATIO):
        p = np.where(np.arange(30) % 3 == 0, 6.0, 0.0)  # 2 mm/d on average
        q = np.full(30, 2.0 * ratio)
        q[5] = np.nan  # a missing day is left out of both means
        rows = ["date,total_precipitation_sum,temperature_2m_mean,potential_evaporation_sum,streamflow"]
        rows += [f"{d.date()},{pi},5.0,1.0,{'' if np.isnan(qi) else qi}" for d, pi, qi in zip(dates, p, q)]
        (ts / f"camels_{basin}.csv").write_text("\n".join(rows) + "\n")
    pd.DataFrame({"gauge_id": [f"camels_{b}" for b in BASINS], "aridity": ARIDITY, "frac_snow": SNOW,
                  "p_mean": 2.0}).to_csv(attrs / "attributes_caravan_camels.csv", index=False)
    pd.DataFrame({"gauge_id": [f"camels_{b}" for b in BASINS], "gauge_lat": 40.0, "gauge_lon": -100.0,
                  "area": 100.0}).to_csv(attrs / "attributes_other_camels.csv", index=False)
    return root


def _metrics(path: Path) -> Path:
    rows = []
    for seed, shift in ((0, -0.05), (1, 0.05)):  # two seeds: their mean is NSE_A
        rows += [{"evaluation": "temporal", "fold": 0, "model": "a", "seed": seed, "basin": b, "nse": v + shift}
                 for b, v in zip(BASINS, NSE_A)]
    rows += [{"evaluation": "temporal", "fold": 0, "model": "b", "seed": 0, "basin": b, "nse": 0.5} for b in BASINS]
    rows += [{"evaluation": "kfold", "fold": 1, "model": "a", "seed": 0, "basin": b, "nse": -9.0} for b in BASINS]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_runoff_ratio_uses_the_days_with_both_series(tails):
    q, p = np.array([1.0, 2.0, np.nan, 3.0]), np.array([2.0, 4.0, 5.0, np.nan])
    assert tails.runoff_ratio(q, p) == pytest.approx(1.5 / 3.0)
    assert np.isnan(tails.runoff_ratio(q, np.zeros(4))) and np.isnan(tails.runoff_ratio(q, np.full(4, np.nan)))


def test_terciles_by_rank_with_ties_in_one_bin(tails):
    nine = tails.terciles(pd.Series(np.arange(9.0)))
    assert nine.tolist() == ["low"] * 3 + ["mid"] * 3 + ["high"] * 3
    snow = tails.terciles(pd.Series(SNOW))  # four basins without snow: all low, not split
    assert snow.tolist() == ["low"] * 4 + ["high"] * 2


def test_seeds_are_averaged_and_other_evaluations_left_out(tails, tmp_path):
    nse = tails.read_metrics([_metrics(tmp_path / "metrics.csv")], "temporal")
    a = nse[nse["model"] == "a"].set_index("basin")
    np.testing.assert_allclose(a.loc[BASINS, "nse"], NSE_A, atol=1e-12)
    assert (a["seeds"] == 2).all() and len(nse) == 12


def test_the_report_on_a_small_caravan_folder(tails, tmp_path):
    root = _caravan(tmp_path / "caravan")
    chars = tails.basin_characteristics(root, BASINS)
    # day 6 lacks streamflow and had no rain: P over the other 29 days is 60/29 mm/d, not 2
    np.testing.assert_allclose(chars["runoff_ratio"], np.array(RATIO) * 2.0 / (60 / 29), rtol=1e-6)
    table, figure = tmp_path / "tails.md", tmp_path / "tails.png"
    tails.main([str(_metrics(tmp_path / "metrics.csv")), "--data-dir", str(root), "--worst", "2",
                "--table", str(table), "--figure", str(figure)])
    assert figure.stat().st_size > 10_000
    text = table.read_text()
    # aridity terciles of model a: {0.9, 0.8}, {0.7, 0.1}, {-0.5, -3.0}
    assert "| a | aridity | low | 0.50..0.80 | 2 | 0.850 | 0.850 | 0 | 0 |" in text
    assert "| a | aridity | mid | 1.00..1.50 | 2 | 0.400 | 0.400 | 0 | 0 |" in text
    assert "| a | aridity | high | 3.00..6.00 | 2 | -1.750 | -1.750 | 2 | 1 |" in text
    assert "| a | frac_snow | low | 0.00..0.00 | 4 | 0.750 | 0.625 | 0 | 0 |" in text
    assert "| b | runoff_ratio | low | 0.05..0.19 | 2 | 0.500 |" in text
    # the tail (NSE < 0): both basins in the driest tercile, lowest runoff ratio, snowiest
    assert "| a | aridity | 2 | 4.50 | 1.25 | 0% (33%) | 0% (33%) | 100% (33%) |" in text
    assert "| a | runoff_ratio | 2 | 0.12 | 0.34 | 100% (33%) | 0% (33%) | 0% (33%) |" in text
    assert "| b | aridity | 0 | NaN |" in text
    worst = [line for line in text.splitlines() if line.startswith("| a | 0100000")]
    assert [w.split(" | ")[1] for w in worst] == ["01000006", "01000005"] and "-3.00" in worst[0]


def test_volume_ratios_from_the_predictions_beside_the_metrics(tails, tmp_path):
    from difhydro.experiment.outputs import predictions_dataset, write_netcdf

    run = tmp_path / "run"
    run.mkdir()
    _metrics(run / "metrics.csv")
    time = pd.date_range("1985-10-01", periods=4)
    obs = np.tile([1.0, 2.0, np.nan, 1.0], (len(BASINS), 1))
    factor = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 3.0])[:, None]  # the two dry basins over-predict
    sim_a = obs * factor
    sim_a[:, 2] = 50.0  # an unobserved day is not scored
    write_netcdf(predictions_dataset(time, BASINS, {("temporal", "a"): sim_a, ("temporal", "b"): 0.5 * np.nan_to_num(obs)},
                                     obs), run / "predictions.nc")
    volumes = tails.volume_ratios([run], "temporal").set_index(["model", "basin"])["volume_ratio"]
    np.testing.assert_allclose(volumes.loc["a"].loc[BASINS], [1, 1, 1, 1, 2, 3], rtol=1e-6)
    np.testing.assert_allclose(volumes.loc["b"], 0.5, rtol=1e-6)
    nse = tails.read_metrics([run])
    table = tails.volume_table(nse, volumes.reset_index(), 0.0).set_index("model")
    assert table.loc["a", "tail_basins"] == 2 and table.loc["a", "tail_median"] == pytest.approx(2.5)
    assert table.loc["a", "rest_median"] == pytest.approx(1.0) and table.loc["a", "over"] == 2
    assert table.loc["b", "tail_basins"] == 0
    assert tails.volume_ratios([tmp_path / "metrics.csv"], "temporal").empty  # no predictions.nc there


def test_a_held_out_basin_is_outside_when_an_attribute_leaves_its_training_range(tails):
    # two folds of two basins, each judged against the other fold's range
    attributes = pd.DataFrame({"area": [10.0, 40.0, 30.0, 15.0], "slope": [1.0, 2.0, 1.5, 0.5]},
                              index=["a", "b", "c", "d"])
    nse = pd.DataFrame({"model": "m", "basin": ["a", "b", "c", "d"], "fold": [0, 0, 1, 1],
                        "nse": [0.5, 0.4, -2.0, 0.3]})
    out = tails.outside_training_range(nse, attributes).set_index("basin")
    # fold 0 against c, d (area 15..30, slope 0.5..1.5): a area 10 -> 1; b area 40 and slope 2 -> 2
    # fold 1 against a, b (area 10..40, slope 1..2): c inside both -> 0; d slope 0.5 -> 1
    assert out["outside"].to_dict() == {"a": 1, "b": 2, "c": 0, "d": 1}
    assert out.loc["c", "nse"] == -2.0


def test_the_range_check_needs_training_basins(tails):
    nse = pd.DataFrame({"model": "m", "basin": ["a", "b"], "fold": [0, 0], "nse": [0.1, 0.2]})
    with pytest.raises(SystemExit, match="fold 0 has no training basins"):
        tails.outside_training_range(nse, pd.DataFrame({"area": [1.0, 2.0]}, index=["a", "b"]))


def test_the_range_check_reads_the_attributes_of_the_run(tails, tmp_path):
    from difhydro.experiment.data import CARAVAN_ATTRIBUTES

    chosen, auto = tmp_path / "chosen", tmp_path / "auto"
    for folder, attributes in ((chosen, "[area, p_mean]"), (auto, "auto")):
        folder.mkdir()
        (folder / "config.yml").write_text(f"data: {{format: caravan, attributes: {attributes}}}\n")
    assert tails.run_attributes([chosen]) == ["area", "p_mean"]
    assert tails.run_attributes([auto / "metrics.csv"]) == list(CARAVAN_ATTRIBUTES)
    with pytest.raises(SystemExit, match="different attributes"):
        tails.run_attributes([chosen, auto])
    with pytest.raises(SystemExit, match="config.yml: missing"):
        tails.run_attributes([tmp_path])
