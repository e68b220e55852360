"""PHY-LSTM / PHYs-LSTM (difhydro.contrib.phy_lstm): the real profile site, the sliding-window
LSTM, a short training run that must learn, and (slow) the example."""

import jax
import numpy as np
import pytest


from difhydro.contrib.phy_lstm import SequenceLSTM, monotonic_loss, phy_lstm_loss, score, site_dataset
from difhydro.data import fit_normalization, make_basin_data
from difhydro.training import TrainConfig, Trainer

from helpers import load_example_script, soil_batch

@pytest.fixture(scope="module")
def site():
    pytest.importorskip("pyet")
    return site_dataset()


def test_site_dataset(site):
    et0 = site["et0"].values[0]
    assert np.all(np.isfinite(et0)) and et0.min() >= 0
    months = site["time"].dt.month.values
    # FAO-56 ET0 in humid Hesse: 0.1-0.5 mm/d in winter, 3-4 mm/d in summer
    assert 0.05 < et0[np.isin(months, [12, 1])].mean() < 0.8
    assert 2.5 < et0[np.isin(months, [6, 7])].mean() < 5.0
    p = site["precipitation"].values[0]
    np.testing.assert_allclose(site["w_A2"].values[0], p - et0, rtol=1e-6)
    sm = site["soil_moisture"].values[0]
    np.testing.assert_allclose(site["sm_prev"].values[0, 1:], sm[:-1, 0])
    deep = sm[:, 1:].mean(-1)
    np.testing.assert_allclose(site["w_B1"].values[0, 1:], p[1:] - 300.0 * np.diff(deep), rtol=1e-5, atol=1e-5)


def test_sequence_lstm_sees_only_seven_days():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 20, 3))
    model = SequenceLSTM(hidden_size=8)
    params = model.init(jax.random.PRNGKey(1), soil_batch(x))
    y = model.apply(params, soil_batch(x))["soil_moisture"]
    assert y.shape == (2, 20)
    x2 = x.at[:, 5].add(3.0)  # day 5 may change days 5..11 only
    y2 = model.apply(params, soil_batch(x2))["soil_moisture"]
    changed = np.abs(np.asarray(y2 - y)).max(0) > 1e-6
    np.testing.assert_array_equal(changed, (np.arange(20) >= 5) & (np.arange(20) <= 11))
    # an 8-day training window gives the same last-day forecast as the whole series
    y_window = model.apply(params, soil_batch(x[:, 4:12]))["soil_moisture"][:, -1]
    np.testing.assert_allclose(y_window, y[:, 11], rtol=1e-5, atol=1e-6)


def test_phy_lstm_learns_on_the_site(site):
    """A short PHYs-LSTM run: validation loss falls, and the last-day forecast beats
    climatology by far and gets within reach of persistence (the strong 1-day baseline)."""
    inputs = ("precipitation", "et0", "temperature", "sm_prev")
    train, val = ("2014-01-01", "2015-06-30"), ("2015-07-01", "2015-12-31")
    stats = fit_normalization(site, list(inputs) + ["sm_10"], period=train)
    kw = dict(window=8, warmup=7, forcing=("w_B2", "observed_flag"), inputs=inputs, target="sm_10")
    data_tr = make_basin_data(site, stats, train, **kw)
    data_va = make_basin_data(site, stats, val, **kw)
    model = SequenceLSTM(hidden_size=32, target_mean=stats.mean["sm_10"], target_std=stats.std["sm_10"])
    cfg = TrainConfig(epochs=4, steps_per_epoch=40, batch_size=32, learning_rate=3e-3, monitor="nse",
                      eval_metrics=("nse", "rmse"), progress=False)
    trainer = Trainer(model, data_tr, cfg, loss=phy_lstm_loss("w_B2", 0.5, 0.5), scored={"soil_moisture": "sm_10"},
                      validation=data_va)
    fit = trainer.fit()
    val_loss = [h["val_loss"] for h in fit["history"]]
    assert min(val_loss[1:]) < 0.7 * val_loss[0]
    pred, full = trainer.predict(fit["best_params"], data_va)
    obs = full.observations()
    s = score(pred["soil_moisture"], obs)
    clim = np.nanstd(obs)
    assert s["RMSE"] < 0.6 * clim
    assert s["R"] > 0.8
    # the physics term is tiny next to RMSE at these scales (the honest finding)
    m = np.asarray(full.mask)
    phy = float(monotonic_loss(pred["soil_moisture"], np.asarray(full.target), np.asarray(full.forcing["w_B2"]), m))
    assert phy < 0.05 * s["RMSE"]


@pytest.mark.slow
def test_phy_lstm_example_quick(tmp_path):
    results = load_example_script("phy_lstm").main(["--quick", "--out", str(tmp_path), "--data", "twin", "--no-progress"])
    twin = results["twin"]
    assert (tmp_path / "phy_lstm_tables.md").exists() and (tmp_path / "phy_lstm_twin.png").exists()
    for label in ("LSTM", "A4", "B4"):
        run = twin[label][0]
        assert run["val_loss_best"] < run["val_loss_first"]
        # noisy surface observations: persistence carries the noise twice
        assert run["RMSE"] < twin["persistence"][0]["RMSE"]


