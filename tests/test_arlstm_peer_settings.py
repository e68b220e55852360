"""The autoregressive LSTM's neuralhydrology peer is NH's arlstm (issue 22): its settings,
the lag it cannot match said aloud, and NH's holdout as each day hidden independently."""

from types import SimpleNamespace

import numpy as np
import pytest

from difhydro.experiment.config import load_config
from difhydro.experiment.neuralhydrology import autoregressive_config, lag_note
from difhydro.experiment.run import peer_network, summary_lines

FORECAST = {"hidden_size": 64, "autoregressive": True, "holdout": 0.1}


def _cfg(**options):
    return load_config({"models": {"lstm": {**FORECAST, **options}}, "peers": {"neuralhydrology": True}})


@pytest.mark.parametrize("lags", [1, 3])
def test_autoregressive_lstm_gets_the_arlstm_peer(lags):
    assert peer_network(_cfg(lags=lags)) == {"model": "arlstm", "hidden_size": 64, "dropout": 0.1, "holdout": 0.1,
                                             "lags": lags}


def test_lstm_without_autoregression_keeps_the_cudalstm_peer():
    cfg = load_config({"models": {"lstm": {"hidden_size": 64}}, "peers": {"neuralhydrology": True}})
    assert "model" not in peer_network(cfg)


def _summary(cfg):
    data = SimpleNamespace(kind="caravan", notes=["Caravan"], pet="data", inputs=["precipitation"],
                           periods={"test": ("1989-10-01", "1999-09-30")}, report=None, excluded={})
    peers = {"nh_arlstm": {"train_seconds": 600.0, "evaluate_seconds": 300.0}}
    _, tail = summary_lines(cfg, data, {}, [], 1.0, peers)
    (line,) = [t for t in tail if "`arlstm`" in t]
    return line


def test_summary_says_when_the_lags_are_not_matched():
    line = _summary(_cfg(lags=3))
    assert "**Not matched**" in line and "days t-1..t-3 (lags: 3)" in line and "day t-1 only" in line
    assert "probability 0.1" in line and "600 s training" in line
    assert "Not matched" not in _summary(_cfg(lags=1))
    assert lag_note(1) == "" and "lags: 7" in lag_note(7)


def test_autoregressive_config_values():
    assert autoregressive_config(0.0) == {"lagged_features": {"streamflow": [1]},
                                          "autoregressive_inputs": ["streamflow_shift1"]}
    holdout = autoregressive_config(0.25)["random_holdout_from_dynamic_features"]
    assert holdout == {"streamflow_shift1": {"missing_fraction": 0.25, "mean_missing_length": pytest.approx(4 / 3)}}
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"holdout must be in \[0, 1\)"):
            autoregressive_config(bad)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_nh_holdout_hides_each_day_independently_with_probability_p(p):
    """NH's own sampler with the written parameters: the share of hidden days is p and a day
    after a hidden one (observed or missing in the data) is hidden with probability p too, as
    difhydro's independent Bernoulli holdout; NH's default-looking mean_missing_length = 1
    would give 0 after a hidden day, a long one (5) would give runs of hidden days."""
    pytest.importorskip("neuralhydrology")
    from neuralhydrology.utils.samplingutils import bernoulli_subseries_sampler

    params = autoregressive_config(p)["random_holdout_from_dynamic_features"]["streamflow_shift1"]
    data = np.arange(1.0, 200_001.0)
    data[::50] = np.nan  # gaps in the record
    np.random.seed(0)
    absent = np.isnan(bernoulli_subseries_sampler(data=data, **params))  # hidden or missing in the data
    observed = ~np.isnan(data)
    assert absent[observed].mean() == pytest.approx(p, abs=0.01)
    today, before = absent[1:][observed[1:]], absent[:-1][observed[1:]]  # days observed in the data
    assert today[before].mean() == pytest.approx(p, abs=0.015)
    assert today[~before].mean() == pytest.approx(p, abs=0.015)


def test_run_trains_the_arlstm_peer_at_lag_1_and_logs_the_unmatched_lags(tmp_path, monkeypatch):
    """``_peers`` calls NH's arlstm (not cudalstm) with the lstm's holdout, size and dropout, names
    it nh_arlstm, and says in the log that lags 3 are run at lag 1 (NH itself is replaced here by a
    recorder: the real run is in test_neuralhydrology_peer.py)."""
    import pandas as pd

    from difhydro.experiment import neuralhydrology, run

    calls, lines = [], []

    def fake(root, basins, train, test, **kwargs):
        calls.append(kwargs)
        time = pd.date_range(*test, freq="D")
        return {"simulated": np.ones((len(basins), len(time))), "time": time, "train_seconds": 2.0,
                "evaluate_seconds": 1.0, "updates": 3}

    def refuse(*args, **kwargs):
        raise AssertionError("the autoregressive lstm's peer must not be cudalstm")

    monkeypatch.setattr(neuralhydrology, "run_arlstm", fake)
    monkeypatch.setattr(neuralhydrology, "run_cudalstm", refuse)
    data = SimpleNamespace(kind="caravan", inputs=["precipitation", "temperature", "pet"], root=tmp_path,
                           basins=["01022500"], attributes=["p_mean"],
                           periods={"train": ("2000-10-01", "2001-09-30"), "test": ("1995-10-01", "1995-10-31")})
    cfg = load_config({"models": {"lstm": {**FORECAST, "lags": 3}}, "peers": {"neuralhydrology": True},
                       "data": {"pet": "data"}})
    failures = []
    peers = run._peers(cfg, data, tmp_path, failures, False, lines.append)
    assert failures == [] and list(peers) == ["nh_arlstm"]
    (kwargs,) = calls
    assert (kwargs["holdout"], kwargs["hidden_size"], kwargs["dropout"]) == (0.1, 64, 0.1)
    assert "lags" not in kwargs and "head" not in kwargs and "model" not in kwargs
    assert kwargs["dynamic_inputs"] == ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
    assert (tmp_path / "peers" / "nh_arlstm" / "result.npz").is_file()
    assert any(line.startswith("nh_arlstm: ") and "lags not matched" in line and "t-1..t-3" in line for line in lines)
