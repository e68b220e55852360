"""benchmarks/forcing_timing.py: lagged correlations against NumPy on series of known lag."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import forcing_timing  # noqa: E402


def test_lagged_correlation_is_numpys_on_the_aligned_days_and_skips_gaps():
    rng = np.random.default_rng(0)
    x, y = rng.random(400), rng.random(400)
    y[5] = np.nan
    for lag in (-2, 0, 3):
        a = x[: 400 - lag] if lag >= 0 else x[-lag:]
        b = y[lag:] if lag >= 0 else y[: 400 + lag]
        ok = np.isfinite(b)
        assert forcing_timing.lagged_correlation(x, y, lag) == np.corrcoef(a[ok], b[ok])[0, 1]
    assert np.isnan(forcing_timing.lagged_correlation(x[:20], y[:20], 0))  # too few days


def test_rain_labelled_a_day_early_peaks_at_lag_one():
    rng = np.random.default_rng(1)
    rain = np.where(rng.random((2, 3000)) < 0.2, rng.exponential(10.0, (2, 3000)), 0.0)
    flow = np.zeros_like(rain)
    for t in range(1, rain.shape[1]):  # a linear reservoir fed by the rain of the same day
        flow[:, t] = 0.8 * flow[:, t - 1] + 0.2 * rain[:, t]
    early = np.roll(rain, -1, axis=1)  # the product labels each day's rain one day early
    corr = forcing_timing.rise_correlations(np.stack([rain[0], early[1]]), flow, lags=(-1, 0, 1, 2))
    assert corr.shape == (2, 4)
    assert np.argmax(corr[0]) == 1 and corr[0, 1] > 0.9  # aligned: the rise follows the same day's rain
    assert np.argmax(corr[1]) == 2 and corr[1, 2] > 0.9  # early: it follows the rain labelled the day before
