"""neuralhydrology's cudalstm and arlstm peers (difhydro.experiment.neuralhydrology) on the real Caravan data."""

import builtins
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("neuralhydrology")

from difhydro.experiment.neuralhydrology import run_arlstm, run_cudalstm  # noqa: E402

BASINS = ["camels_01031500", "camels_01022500"]  # not sorted: NH sorts, results must not
TRAIN = ("2000-10-01", "2001-09-30")
TEST = ("1995-10-01", "1996-01-31")
SEQ, LAST, UPDATES = 30, 10, 3
INPUTS = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
ATTRIBUTES = ["p_mean", "area"]


def run(caravan, work_dir, **overrides):
    kwargs = dict(
        dynamic_inputs=INPUTS, static_attributes=ATTRIBUTES, hidden_size=8, seq_length=SEQ,
        predict_last_n=LAST, batch_size=16, updates=UPDATES, learning_rate=1e-3, dropout=0.1,
        seed=3, work_dir=work_dir, threads=1, progress=False,
    )
    kwargs.update(overrides)
    basins = kwargs.pop("basins", BASINS)
    return run_cudalstm(caravan, basins, kwargs.pop("train_period", TRAIN), kwargs.pop("test_period", TEST), **kwargs)


@pytest.fixture(scope="module")
def result(caravan, tmp_path_factory):
    work = tmp_path_factory.mktemp("nh")
    (work / "keep.txt").write_text("not NH's")
    out = run(caravan, work)
    out["work_dir"] = work
    return out


def test_shapes_order_and_time_axis(result):
    days = pd.date_range(*TEST, freq="D")
    assert result["basins"] == BASINS
    assert result["time"].equals(days)
    assert result["simulated"].shape == result["observed"].shape == (2, len(days))
    assert result["train_seconds"] > 0 and result["evaluate_seconds"] > 0


def test_every_test_day_is_predicted(result):
    # evaluation with predict_last_n = 1: NH reads seq_length - 1 days before the test
    # period, so a window ends on every test day (the forcing of these basins is complete)
    assert np.isfinite(result["simulated"]).all()
    assert result["config"]["predict_last_n"] == LAST  # training scored the last LAST days


def test_exact_number_of_updates(result):
    assert result["updates"] == UPDATES
    cfg = result["config"]
    assert (cfg["epochs"], cfg["max_updates_per_epoch"], cfg["batch_size"]) == (UPDATES, 1, 16)
    assert [p.name for p in result["run_dir"].glob("model_epoch*.pt")] == [f"model_epoch{UPDATES:03d}.pt"]


def test_observed_is_the_caravan_csv(result, caravan):
    days = pd.date_range(*TEST, freq="D")
    for basin, obs in zip(result["basins"], result["observed"]):
        csv = pd.read_csv(caravan / "timeseries" / "csv" / "camels" / f"{basin}.csv", parse_dates=["date"], index_col="date")
        expected = csv["streamflow"].reindex(days).to_numpy()
        np.testing.assert_array_equal(np.isnan(obs), np.isnan(expected))
        np.testing.assert_allclose(obs, expected, rtol=1e-5, atol=1e-5)  # NH's float32 normalisation round trip


def test_nse_matches_nh_own_metric(result):
    """Our arrays give the NSE that NH's tester wrote: sim and obs are aligned as NH aligned them."""
    metrics = pd.read_csv(next(result["run_dir"].glob("test/*/test_metrics.csv")), index_col=0, dtype={0: str})
    for basin, sim, obs in zip(result["basins"], result["simulated"], result["observed"]):
        ok = np.isfinite(sim) & np.isfinite(obs)
        s, o = sim[ok], obs[ok]
        nse = 1 - np.sum((s - o) ** 2) / np.sum((o - o.mean()) ** 2)
        assert nse == pytest.approx(metrics.loc[basin, "NSE"], rel=1e-4, abs=1e-4)


def test_writes_only_a_new_folder_in_work_dir(result, caravan):
    work = result["work_dir"]
    assert (work / "keep.txt").read_text() == "not NH's"
    (folder,) = [p for p in work.iterdir() if p.is_dir()]
    assert sorted(p.name for p in work.iterdir()) == sorted(["keep.txt", folder.name])
    assert result["run_dir"].parent == folder
    assert (folder / "basins.txt").read_text().split() == BASINS
    assert (folder / "config.yml").is_file() and result["config"]["data_dir"] == str(caravan.resolve())
    assert result["config"]["dataset"] == "caravan_csv"  # the data has CSV only; NH's Caravan reads netCDF


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"basins": ["camels_00000000"]}, "unknown basin 'camels_00000000'"),
        ({"basins": ["01022500"]}, "unknown basin '01022500'"),
        ({"test_period": ("1996-01-31", "1995-10-01")}, "test_period: the period ends (1995-10-01) before its start"),
        ({"train_period": ("2030-01-01", "2030-12-31")}, "empty train period"),
        ({"static_attributes": ["no_such_attribute"]}, "static attributes ['no_such_attribute']"),
    ],
)
def test_clear_errors_before_any_training(caravan, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=None) as error:
        run(caravan, tmp_path / "w", **overrides)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_missing_package_says_how_to_install(caravan, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_nh(name, *args, **kwargs):
        if name.split(".")[0] == "neuralhydrology":
            raise ImportError(f"No module named {name!r}", name="neuralhydrology")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nh)
    monkeypatch.delitem(sys.modules, "neuralhydrology.__about__", raising=False)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[peers\]'"):
        run(caravan, tmp_path)


# --- the autoregressive peer (arlstm): yesterday's observed flow as the last input --------------

AR_UPDATES, AR_RATE, AR_HOLDOUT = 40, 1e-2, 0.1  # enough updates for the tiny net to use the lagged flow


@pytest.fixture(scope="module")
def ar_result(caravan, tmp_path_factory):
    kwargs = dict(dynamic_inputs=INPUTS, static_attributes=ATTRIBUTES, hidden_size=8, seq_length=SEQ,
                  predict_last_n=LAST, batch_size=16, updates=AR_UPDATES, learning_rate=AR_RATE, dropout=0.1,
                  seed=3, work_dir=tmp_path_factory.mktemp("nh_ar"), threads=1, progress=False, holdout=AR_HOLDOUT)
    return run_arlstm(caravan, BASINS, TRAIN, TEST, **kwargs)


def test_arlstm_config_is_the_cudalstm_one_plus_the_lagged_flow(ar_result, result):
    """The written NH config: arlstm, streamflow shifted by one day as the (last) autoregressive
    input, NH's holdout at p with mean_missing_length 1/(1-p) (each day hidden independently);
    every other key as the cudalstm peer's except the run's own budget and folders."""
    from ruamel.yaml import YAML

    written = YAML(typ="safe").load((ar_result["run_dir"].parent / "config.yml").read_text())
    assert written == ar_result["config"]
    assert written["model"] == "arlstm" and written["experiment_name"] == "arlstm"
    assert written["lagged_features"] == {"streamflow": [1]}
    assert written["autoregressive_inputs"] == ["streamflow_shift1"]
    assert written["random_holdout_from_dynamic_features"] == {
        "streamflow_shift1": {"missing_fraction": AR_HOLDOUT, "mean_missing_length": pytest.approx(1 / 0.9)}}
    assert written["dynamic_inputs"] == INPUTS and written["target_variables"] == ["streamflow"]
    assert (written["head"], written["loss"]) == ("regression", "NSE")
    plain = result["config"]
    own = {"experiment_name", "model", "run_dir", "train_basin_file", "test_basin_file", "epochs", "save_weights_every",
           "learning_rate", "lagged_features", "autoregressive_inputs", "random_holdout_from_dynamic_features"}
    assert set(written) == set(plain) | own
    assert {k: v for k, v in written.items() if k not in own} == {k: v for k, v in plain.items() if k not in own}
    assert ar_result["run_dir"].parent.name.startswith("nh_arlstm_") and ar_result["updates"] == AR_UPDATES
    # the tester ran without the holdout (NH would otherwise hide test days too), one window per day
    assert ar_result["test_config"] == {"predict_last_n": 1, "random_holdout_from_dynamic_features": {},
                                        "lagged_features": {"streamflow": [1]},
                                        "autoregressive_inputs": ["streamflow_shift1"]}


def _forecast(run_dir, caravan, basin, ends, lagged):
    """NH's trained arlstm on windows ending on ``ends``, inputs built here from the Caravan CSV
    (NH's scaler; attributes in NH's alphabetical order) with ``lagged`` as the day t-1 flow
    series [mm/d] -> the de-normalised last-step forecasts."""
    import torch
    from neuralhydrology.datautils.utils import load_scaler
    from neuralhydrology.modelzoo import get_model
    from neuralhydrology.utils.config import Config

    cfg = Config(run_dir / "config.yml")
    model = get_model(cfg)
    model.load_state_dict(torch.load(next(run_dir.glob("model_epoch*.pt")), map_location="cpu"))
    model.eval()
    scaler = load_scaler(run_dir)
    center, scale = scaler["xarray_feature_center"], scaler["xarray_feature_scale"]
    csv = pd.read_csv(caravan / "timeseries" / "csv" / "camels" / f"{basin}.csv", parse_dates=["date"],
                      index_col="date")
    series = {c: csv[c] for c in INPUTS} | {"streamflow_shift1": lagged}
    x_d = {}
    for name, values in series.items():
        norm = (values - float(center[name])) / float(scale[name])
        x_d[name] = torch.tensor(np.stack([norm.loc[end - pd.Timedelta(days=SEQ - 1):end].to_numpy() for end in ends]),
                                 dtype=torch.float32)[..., None]
    files = sorted((caravan / "attributes" / "camels").glob("*.csv"))
    attributes = pd.concat([pd.read_csv(f, index_col="gauge_id") for f in files], axis=1)
    x_s = [(attributes.loc[basin, a] - scaler["attribute_means"][a]) / scaler["attribute_stds"][a]
           for a in sorted(ATTRIBUTES)]
    data = {"x_d": x_d, "x_s": torch.tensor([x_s] * len(ends), dtype=torch.float32)}
    with torch.no_grad():
        y = model(data)["y_hat"][:, -1, 0].numpy()
    return y * float(scale["streamflow"]) + float(center["streamflow"])


def test_arlstm_forecasts_read_the_observed_flow_of_the_day_before(ar_result, caravan):
    """The peer's test predictions are reproduced from the CSV with the OBSERVED flow of day
    t-1 as the lagged input (a one-day-ahead forecast, none hidden), and not with it hidden;
    and the trained net uses it: NSE with the observed lagged flow beats NSE with none."""
    days = pd.date_range(*TEST, freq="D")
    assert ar_result["simulated"].shape == (2, len(days)) and ar_result["time"].equals(days)
    assert np.isfinite(ar_result["simulated"]).all()
    for basin, sim, obs in zip(ar_result["basins"], ar_result["simulated"], ar_result["observed"]):
        csv = pd.read_csv(caravan / "timeseries" / "csv" / "camels" / f"{basin}.csv", parse_dates=["date"],
                          index_col="date")
        yesterday = csv["streamflow"].shift(1)
        with_obs = _forecast(ar_result["run_dir"], caravan, basin, days, yesterday)
        without = _forecast(ar_result["run_dir"], caravan, basin, days, yesterday * np.nan)
        np.testing.assert_allclose(sim, with_obs, rtol=1e-4, atol=1e-4)
        assert np.abs(sim - without).max() > 1e-2  # the check can fail: the lagged flow matters
        ok = np.isfinite(obs)

        def score(s):
            return 1 - np.sum((s[ok] - obs[ok]) ** 2) / np.sum((obs[ok] - obs[ok].mean()) ** 2)

        assert score(sim) > score(without) + 0.05, (basin, score(sim), score(without))
