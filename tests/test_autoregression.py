"""Lagged observed-flow inputs: exact values, flags for gaps and holdout, never a silent fill."""

import jax
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
