"""Normalisation, periods, windows, masks and random sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from difhydro.data import (
    CAMELS_PERIODS,
    NormStats,
    fit_normalization,
    full_period_batch,
    load_camels_us,
    make_basin_data,
    make_sampler,
    resolve_period,
    sample_batch,
)

BASINS = ["a", "b", "c", "d"]
DAY0 = pd.Timestamp("1980-01-01")


@pytest.fixture(scope="module")
def toy():
    """4 basins, 1980-2010. ``day_index`` codes the date; validation/test periods and basin
    'd' carry values far from the training data, so any leak shifts the statistics."""
    time = pd.date_range("1980-01-01", "2010-12-31", name="time")
    rng = np.random.default_rng(0)
    n_b, n_t = len(BASINS), len(time)
    in_train = (time >= "1999-10-01") & (time <= "2008-09-30")
    precip = rng.gamma(0.8, 3.0, size=(n_b, n_t))
    precip[:, ~in_train] += 50.0
    precip[3] += 1000.0
    temp = rng.normal(8.0, 6.0, size=(n_b, n_t))
    flow = rng.gamma(2.0, 0.7, size=(n_b, n_t))
    flow[rng.uniform(size=flow.shape) < 0.1] = np.nan  # 10 % missing observations
    day_index = np.broadcast_to((time - DAY0).days.values.astype(float), (n_b, n_t)).copy()
    precip[1, 8000:8010] = np.nan  # a forcing gap inside the training period of basin b
    dims = ("basin", "time")
    return xr.Dataset(
        {
            "precipitation": (dims, precip.astype(np.float32)),
            "temperature": (dims, temp.astype(np.float32)),
            "day_index": (dims, day_index.astype(np.float32)),
            "day_length": (dims, np.full((n_b, n_t), 12.0, np.float32)),
            "streamflow": (dims, flow.astype(np.float32)),
            "elev_mean": ("basin", np.array([100.0, 300.0, 500.0, 9000.0], np.float32)),
            "aridity": ("basin", np.array([0.5, np.nan, 1.5, 7.0], np.float32)),
        },
        coords={"basin": BASINS, "time": time},
    )


def test_period_presets_and_user_periods():
    assert CAMELS_PERIODS["train"] == ("1999-10-01", "2008-09-30")
    assert CAMELS_PERIODS["validation"] == ("1980-10-01", "1989-09-30")
    assert CAMELS_PERIODS["test"] == ("1989-10-01", "1999-09-30")
    assert resolve_period("test") == (pd.Timestamp("1989-10-01"), pd.Timestamp("1999-09-30"))
    assert resolve_period(("2001-01-01", "2001-12-31"))[1] == pd.Timestamp("2001-12-31")
    with pytest.raises(ValueError, match="unknown period 'calibration'"):
        resolve_period("calibration")
    with pytest.raises(ValueError, match="before its start"):
        resolve_period(("2002-01-01", "2001-01-01"))


def test_normalization_uses_training_period_and_basins_only(toy, tmp_path):
    stats = fit_normalization(toy, ["precipitation", "temperature"], ["elev_mean", "aridity"], "train", basins=["a", "b", "c"])
    train = toy.sel(time=slice("1999-10-01", "2008-09-30"), basin=["a", "b", "c"])
    p = train["precipitation"].values.astype(np.float64)
    assert stats.mean["precipitation"] == pytest.approx(np.nanmean(p), rel=1e-6)
    assert stats.std["precipitation"] == pytest.approx(np.nanstd(p), rel=1e-6)
    # leaked validation days (+50) or basin d (+1000) would move the mean far away
    assert stats.mean["precipitation"] < 3.0
    assert stats.mean["elev_mean"] == pytest.approx(300.0) and stats.std["elev_mean"] == pytest.approx(np.std([100, 300, 500]))
    assert stats.mean["aridity"] == pytest.approx(1.0)  # NaN attribute ignored
    assert stats.basins == ("a", "b", "c") and stats.period == ("1999-10-01", "2008-09-30")
    path = stats.save(tmp_path / "norm.json")
    again = NormStats.load(path)
    assert again == stats
    assert again.standardise("elev_mean", 500.0) == pytest.approx(200.0 / np.std([100, 300, 500]))


def test_windows_stay_inside_the_period_and_mask_warmup(toy):
    stats = fit_normalization(toy, ["precipitation", "temperature"], ["elev_mean", "aridity"], "train", basins=["a", "b", "c"])
    window, warmup = 400, 150
    data = make_basin_data(toy, stats, "validation", window=window, warmup=warmup,
                           forcing=("precipitation", "day_index"), basins=["a", "b", "c"])
    first = (pd.Timestamp("1980-10-01") - DAY0).days
    last = (pd.Timestamp("1989-09-30") - DAY0).days
    sampler = make_sampler(data, 64)
    for i in range(5):
        batch = sampler(jax.random.PRNGKey(i))
        assert batch.forcing["precipitation"].shape == (64, window) and batch.inputs.shape == (64, window, 2)
        days = np.asarray(batch.forcing["day_index"])
        assert days.min() >= first and days.max() <= last  # never crosses the period boundary
        np.testing.assert_array_equal(np.diff(days, axis=1), 1.0)  # consecutive days
        np.testing.assert_array_equal(days[:, 0], first + np.asarray(batch.start))
        mask = np.asarray(batch.mask)
        assert not mask[:, :warmup].any()  # warm-up excluded from the loss
        # after the warm-up the mask is exactly "observed"
        obs = np.isfinite(toy["streamflow"].sel(basin=["a", "b", "c"]).values)
        b, s = np.asarray(batch.basin), np.asarray(batch.start) + (first - 0)
        expected = np.stack([obs[bi, si + np.arange(window)] for bi, si in zip(b, s)], axis=0)
        np.testing.assert_array_equal(mask[:, warmup:], expected[:, warmup:])
        target = np.asarray(batch.target)
        assert np.isfinite(target).all() and (target[~expected] == 0).all()
        # standardised inputs and statics use the training statistics
        raw_p = toy["precipitation"].values[b, :][np.arange(64)[:, None], (s[:, None] + np.arange(window)[None, :])]
        np.testing.assert_allclose(np.asarray(batch.inputs[..., 0]), (raw_p - stats.mean["precipitation"]) / stats.std["precipitation"], rtol=1e-5)
        aridity = np.asarray(batch.attributes[:, 1])
        assert np.all(aridity[b == 1] == 0.0)  # missing attribute -> training mean (0)


def test_windows_with_forcing_gaps_are_never_sampled(toy):
    stats = fit_normalization(toy, ["precipitation"], period="train")
    data = make_basin_data(toy, stats, ("2001-01-01", "2003-12-31"), window=100, warmup=10, basins=["b"],
                           forcing=("precipitation", "day_index"))
    gap_first = 8000 - (pd.Timestamp("2001-01-01") - DAY0).days
    starts = np.asarray(data.valid_windows)
    crosses = (starts <= gap_first + 9) & (starts + 100 > gap_first)
    assert not crosses.any() and starts.size == data.n_starts - 109
    batch = jax.jit(sample_batch, static_argnames="batch_size")(jax.random.PRNGKey(3), data, batch_size=256)
    assert np.isfinite(np.asarray(batch.forcing["precipitation"])).all()
    assert np.isfinite(np.asarray(batch.inputs)).all()


def test_sampling_is_reproducible_and_covers_basins(toy):
    stats = fit_normalization(toy, ["precipitation", "temperature"], period="train")
    data = make_basin_data(toy, stats, "train", window=365, warmup=100)
    sampler = make_sampler(data, 512)
    a, b, c = sampler(jax.random.PRNGKey(7)), sampler(jax.random.PRNGKey(7)), sampler(jax.random.PRNGKey(8))
    np.testing.assert_array_equal(a.start, b.start)
    assert not np.array_equal(a.start, c.start)
    assert set(np.asarray(a.basin).tolist()) == {0, 1, 2, 3}
    full = full_period_batch(data)
    n_time = toy.sel(time=slice("1999-10-01", "2008-09-30")).sizes["time"]
    assert full.target.shape == (4, n_time) and not bool(full.mask[:, :100].any())
    assert bool(jnp.all(full.mask[:, 100:] == jnp.isfinite(jnp.asarray(toy["streamflow"].sel(time=slice("1999-10-01", "2008-09-30")).values))[:, 100:]))


def test_bad_arguments(toy):
    stats = fit_normalization(toy, ["precipitation"], period="train")
    with pytest.raises(ValueError, match="warmup < window"):
        make_basin_data(toy, stats, "train", window=100, warmup=100)
    with pytest.raises(ValueError, match="dynamic variable 'swe' not in the data set"):
        make_basin_data(toy, stats, "train", window=100, warmup=10, forcing=("swe",))
    with pytest.raises(ValueError, match="fewer than one window"):
        make_basin_data(toy, stats, ("2001-01-01", "2001-01-31"), window=100, warmup=10)
    with pytest.raises(ValueError, match=r"basins \['zz'\] are not in the data set"):
        fit_normalization(toy, ["precipitation"], basins=["zz"])


def test_batches_from_shared_camels(data_dir):
    root = data_dir / "camels_us"
    if not root.is_dir():
        pytest.skip(f"CAMELS-US subset not found at {root}")
    ds = load_camels_us(root, forcing="nldas")
    stats = fit_normalization(ds, ["precipitation", "temperature", "srad", "vp"], ["p_mean", "aridity", "elev_mean"], "train")
    data = make_basin_data(ds, stats, "train", window=730, warmup=365)
    # exactly the basins whose (contiguous) NLDAS record holds a window in the training period
    sampled = {data.basins[i] for i in np.unique(np.asarray(data.valid_windows) // data.n_starts)}
    train = ds["precipitation"].sel(time=slice("1999-10-01", "2008-09-30"))
    assert sampled == {b for b in ds["basin"].values if int(np.isfinite(train.sel(basin=b)).sum()) >= 730}
    assert len(sampled) == 22
    batch = make_sampler(data, 32)(jax.random.PRNGKey(0))
    assert batch.forcing["temperature"].shape == (32, 730)
    assert np.isfinite(np.asarray(batch.forcing["precipitation"])).all()
    assert 0 < float(batch.mask.mean()) < 0.5 + 1e-6  # half the window is warm-up
