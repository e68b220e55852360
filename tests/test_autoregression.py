"""Lagged observed-flow inputs: exact values, flags for gaps and holdout, never a silent fill."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.forecast.autoregression import holdout_mask, lagged_flow

NAN = np.nan
OBS = np.array([[1.0, 2.0, NAN, 4.0, 5.0],
                [10.0, 20.0, 30.0, 40.0, NAN]], np.float32)


def test_lags_values_and_flags_are_exact():
    x = np.asarray(lagged_flow(OBS, lags=(1, 2), fill=-9.0))
    assert x.shape == (2, 5, 4)
    np.testing.assert_array_equal(x[0, :, 0], [-9, 1, 2, -9, 4])   # yesterday
    np.testing.assert_array_equal(x[0, :, 1], [-9, -9, 1, 2, -9])  # two days ago
    np.testing.assert_array_equal(x[0, :, 2], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(x[0, :, 3], [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(x[1, :, 0], [-9, 10, 20, 30, 40])
    np.testing.assert_array_equal(x[1, :, 2], [0, 1, 1, 1, 1])
    assert not np.isnan(x).any()


def test_every_filled_value_carries_a_zero_flag():
    x = np.asarray(lagged_flow(OBS, lags=(1, 3, 7)))
    values, flags = x[..., :3], x[..., 3:]
    assert ((flags == 0) | (flags == 1)).all()
    np.testing.assert_array_equal(values[flags == 0], 0.0)
    assert (flags[..., 2] == 0).all()  # a 7-day lag on 5 days sees nothing


def test_holdout_hides_the_same_days_in_every_lag():
    key = jax.random.PRNGKey(4)
    obs = np.arange(1.0, 1.0 + 3 * 40, dtype=np.float32).reshape(3, 40)
    hidden = np.asarray(holdout_mask(key, obs.shape, 0.3))
    x = np.asarray(lagged_flow(obs, lags=(1, 2), holdout=0.3, key=key))
    for lag, (v, f) in zip((1, 2), ((0, 2), (1, 3))):
        expected_flag = np.zeros_like(obs)
        expected_flag[:, lag:] = ~hidden[:, :-lag]
        np.testing.assert_array_equal(x[..., f], expected_flag)
        expected_value = np.zeros_like(obs)
        expected_value[:, lag:] = np.where(hidden[:, :-lag], 0.0, obs[:, :-lag])
        np.testing.assert_array_equal(x[..., v], expected_value)
    # each training sample draws its own mask; the share hidden is the probability asked
    big = np.asarray(holdout_mask(jax.random.PRNGKey(0), (50, 400), 0.25))
    assert big.mean() == pytest.approx(0.25, abs=0.01)
    other = np.asarray(holdout_mask(jax.random.PRNGKey(1), (50, 400), 0.25))
    assert (big != other).any()


def test_holdout_of_one_hides_everything_and_bad_arguments_are_refused():
    x = np.asarray(lagged_flow(OBS, lags=(1,), holdout=1.0, key=jax.random.PRNGKey(0), fill=0.5))
    np.testing.assert_array_equal(x[..., 1], 0.0)
    np.testing.assert_array_equal(x[..., 0], 0.5)
    with pytest.raises(ValueError, match="PRNG key"):
        lagged_flow(OBS, holdout=0.2)
    with pytest.raises(ValueError, match="positive"):
        lagged_flow(OBS, lags=(0, 1))
    with pytest.raises(ValueError, match=r"\[basin, time\]"):
        lagged_flow(OBS[0])
    with pytest.raises(ValueError, match="probability"):
        holdout_mask(jax.random.PRNGKey(0), (2, 2), 1.5)


# -- the autoregressive LSTM (registry: lstm with autoregressive: true) --------------------

from difhydro.hybrid import build_model  # noqa: E402


def _ar_batch(flow, seed=0):
    rng = np.random.default_rng(seed)
    b, t = flow.shape
    return {"inputs": jnp.asarray(rng.normal(size=(b, t, 3)), jnp.float32),
            "attributes": jnp.asarray(rng.normal(size=(b, 2)), jnp.float32),
            "targets": {"streamflow": jnp.asarray(np.nan_to_num(flow), jnp.float32)},
            "masks": {"streamflow": jnp.asarray(np.isfinite(flow))}}


@pytest.fixture(scope="module")
def ar_model():
    model = build_model("lstm", flow_mean=1.0, flow_std=2.0, hidden_size=8, dropout=0.0, autoregressive=True,
                        holdout=0.5)
    flow = np.abs(np.random.default_rng(1).normal(1.0, 1.0, size=(2, 30))).astype(np.float32)
    params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, _ar_batch(flow))["params"]
    return model, params, flow


def test_the_autoregressive_lstm_reads_only_the_flow_observed_before_each_day(ar_model):
    model, params, flow = ar_model
    base = np.asarray(model.apply({"params": params}, _ar_batch(flow))["streamflow"])
    changed = flow.copy()
    changed[:, 10] += 5.0  # a flood observed on day 10
    out = np.asarray(model.apply({"params": params}, _ar_batch(changed))["streamflow"])
    np.testing.assert_array_equal(out[:, :11], base[:, :11])  # days <= 10 cannot see it
    assert (np.abs(out[:, 11] - base[:, 11]) > 1e-4).all()  # day 11's forecast reads it
    # a gap is a flag, not a value: a masked day gives the same forecast whatever its target holds
    gap_a, gap_b = _ar_batch(flow), _ar_batch(flow)
    for batch, value in ((gap_a, 0.0), (gap_b, 99.0)):
        batch["targets"]["streamflow"] = batch["targets"]["streamflow"].at[:, 10].set(value)
        batch["masks"]["streamflow"] = batch["masks"]["streamflow"].at[:, 10].set(False)
    a = np.asarray(model.apply({"params": params}, gap_a)["streamflow"])
    np.testing.assert_array_equal(a, np.asarray(model.apply({"params": params}, gap_b)["streamflow"]))
    assert (np.abs(a[:, 11] - base[:, 11]) > 1e-4).all()


def test_holdout_in_training_hides_observed_days(ar_model):
    model, params, flow = ar_model
    batch = _ar_batch(flow)
    rngs = {"dropout": jax.random.key(3)}
    unseen = np.asarray(model.apply({"params": params}, _ar_batch(np.full_like(flow, np.nan)))["streamflow"])
    seen = np.asarray(model.apply({"params": params}, batch)["streamflow"])
    hide_all = model.clone(holdout=1.0)
    np.testing.assert_array_equal(np.asarray(hide_all.apply({"params": params}, batch, deterministic=False,
                                                            rngs=rngs)["streamflow"]), unseen)
    keep_all = model.clone(holdout=0.0)
    np.testing.assert_array_equal(np.asarray(keep_all.apply({"params": params}, batch, deterministic=False,
                                                            rngs=rngs)["streamflow"]), seen)
    half = np.asarray(model.apply({"params": params}, batch, deterministic=False, rngs=rngs)["streamflow"])
    # with holdout 0.5 some days see yesterday's flow and some do not (day 0 never does)
    same_as_seen = np.isclose(half[:, 1:], seen[:, 1:], rtol=0, atol=1e-6)
    assert same_as_seen.any() and (~same_as_seen).any()
