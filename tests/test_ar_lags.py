"""The autoregressive LSTM's ``lags`` option (issue 22): the observed flow of days t-1..t-lags
as inputs, causal, with ``lags: 1`` (the default) as before, and its config errors."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from difhydro.experiment.config import ConfigError, load_config
from difhydro.forecast.autoregression import AutoregressiveLSTM
from difhydro.hybrid import build_model, model_options
from difhydro.nn import LSTM
from test_autoregression import _ar_batch as _batch  # 3 inputs, 2 attributes around flow [basin, time]

MEAN, STD = 1.0, 2.0




def _flow(shape=(2, 30), seed=1):
    return np.abs(np.random.default_rng(seed).normal(1.0, 1.0, size=shape)).astype(np.float32)


def _init(model, batch):
    return model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, batch)["params"]


def _lstm_input(model, params, batch):
    """The ``[basin, time, features]`` array the model hands its LSTM (intercepted)."""
    seen = []

    def grab(next_fun, args, kwargs, context):
        if isinstance(context.module, LSTM) and context.method_name == "__call__":
            seen.append(np.asarray(args[0]))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
        model.apply({"params": params}, batch)
    assert len(seen) == 1
    return seen[0]


def test_default_is_the_single_lag_model_of_before():
    assert model_options("lstm")["lags"] == 1
    built = build_model("lstm", flow_mean=MEAN, flow_std=STD, hidden_size=8, autoregressive=True, holdout=0.1)
    # the construction of the registry before lags existed
    before = AutoregressiveLSTM(hidden_size=8, dropout_rate=0.1, holdout=0.1, output_scale=STD, output_offset=MEAN)
    assert built.lags == (1,) and built.clip_in_training
    batch = _batch(_flow())
    params = _init(before, batch)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: a.shape == b.shape and bool((a == b).all()), params, _init(built, batch)))
    for deterministic in (True, False):
        rngs = {"dropout": jax.random.key(5)}
        a = before.apply({"params": params}, batch, deterministic=deterministic, rngs=rngs)["streamflow"]
        b = built.apply({"params": params}, batch, deterministic=deterministic, rngs=rngs)["streamflow"]
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lags_three_reads_the_standardised_flow_of_the_three_previous_days():
    flow = _flow((2, 12))
    flow[0, 4] = np.nan  # a gap: flag 0 and value 0 on days 5, 6, 7
    model = build_model("lstm", flow_mean=MEAN, flow_std=STD, hidden_size=4, autoregressive=True, lags=3)
    batch = _batch(flow)
    x = _lstm_input(model, _init(model, batch), batch)
    assert x.shape == (2, 12, 3 + 2 + 6)
    lagged = x[..., 5:]
    for b in range(2):
        for t in range(12):
            for i, lag in enumerate((1, 2, 3)):
                s = t - lag
                there = s >= 0 and np.isfinite(flow[b, s])
                assert lagged[b, t, 3 + i] == float(there), (b, t, lag)
                expected = (flow[b, s] - MEAN) / STD if there else 0.0
                np.testing.assert_allclose(lagged[b, t, i], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("lags", [1, 3, 7])
def test_the_forecast_of_a_day_never_reads_flow_observed_that_day_or_later(lags):
    model = build_model("lstm", flow_mean=MEAN, flow_std=STD, hidden_size=8, dropout=0.0, autoregressive=True,
                        lags=lags)
    flow = _flow((2, 40))
    params = _init(model, _batch(flow))
    base = np.asarray(model.apply({"params": params}, _batch(flow))["streamflow"])
    rng = np.random.default_rng(7)
    for cut in (0, 9, 20, 39):  # every observation from day `cut` on is changed, some to gaps
        changed = flow.copy()
        changed[:, cut:] = rng.gamma(2.0, 3.0, size=changed[:, cut:].shape)
        changed[:, cut:][rng.random(changed[:, cut:].shape) < 0.3] = np.nan
        out = np.asarray(model.apply({"params": params}, _batch(changed))["streamflow"])
        np.testing.assert_array_equal(out[:, :cut + 1], base[:, :cut + 1])
        if cut + 1 < flow.shape[1]:
            assert (np.abs(out[:, cut + 1] - base[:, cut + 1]) > 1e-5).any()  # the next day reads it


def test_clip_in_training_false_gives_the_autoregressive_loss_the_linear_output():
    # an offset far below zero makes most outputs negative
    model = build_model("lstm", flow_mean=-3.0, flow_std=STD, hidden_size=8, dropout=0.0, autoregressive=True,
                        holdout=0.0, lags=2, clip_in_training=False)
    batch = _batch(_flow())
    params = _init(model, batch)
    train = np.asarray(model.apply({"params": params}, batch, deterministic=False,
                                   rngs={"dropout": jax.random.key(2)})["streamflow"])
    predicted = np.asarray(model.apply({"params": params}, batch)["streamflow"])
    assert (train < 0).any() and (predicted >= 0).all()
    np.testing.assert_allclose(predicted, np.maximum(train, 0.0), rtol=1e-6, atol=1e-6)
    clipped = model.clone(clip_in_training=True)
    np.testing.assert_array_equal(np.asarray(clipped.apply({"params": params}, batch, deterministic=False,
                                                           rngs={"dropout": jax.random.key(2)})["streamflow"]),
                                  predicted)


@pytest.mark.parametrize("lags, message", [
    (0, r"models\.lstm\.lags: must be >= 1, got 0"),
    (-2, r"models\.lstm\.lags: must be >= [01], got -2"),
    (400, r"models\.lstm\.lags: must be <= 365"),
    (2.5, r"models\.lstm\.lags: expected an integer \(default 1\), got 2\.5"),
    (True, r"models\.lstm\.lags: expected an integer \(default 1\), got True"),
    ("3", r"models\.lstm\.lags: expected an integer"),
])
def test_bad_lags_are_refused_naming_the_key(lags, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"name": "t", "models": {"lstm": {"autoregressive": True, "lags": lags}}})


def test_lags_without_autoregressive_is_refused_and_the_good_forms_load():
    with pytest.raises(ConfigError, match=r"models\.lstm\.lags: 3 needs autoregressive: true"):
        load_config({"name": "t", "models": {"lstm": {"lags": 3}}})
    config = load_config({"name": "t", "models": {"lstm": {"autoregressive": True, "lags": 7,
                                                           "clip_in_training": False}}})
    assert config.models["lstm"]["lags"] == 7
    load_config({"name": "t", "models": {"lstm": {"lags": 1}}})  # the default, said aloud


def test_the_registry_refuses_bad_lags_outside_the_config():
    for bad, message in ((0, r"must be >= 1, got 0"), (True, r"expected an integer"), (2.0, r"expected an integer")):
        with pytest.raises(ValueError, match=r"model 'lstm' option lags: " + message):
            build_model("lstm", flow_mean=MEAN, flow_std=STD, autoregressive=True, lags=bad)
    with pytest.raises(ValueError, match=r"lstm: lags: 2 needs autoregressive: true"):
        build_model("lstm", flow_mean=MEAN, flow_std=STD, lags=2)
