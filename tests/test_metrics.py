import HydroErr as he
import hydroeval
import jax
import numpy as np
import pytest

from difhydro.training import metrics

from helpers import SECTION_5_3

T = np.arange(100)
OBS = 2 + 1.5 * np.sin(2 * np.pi * T / 25) + 0.05 * T + 4 * np.exp(-0.5 * ((T - 60) / 2) ** 2)
SIM = 0.9 * OBS + 0.3 * np.cos(T / 3) + 0.1


@pytest.mark.parametrize(
    "name,ref",
    [
        ("nse", 0.943084),
        ("kge", 0.879826),
        ("kge_2012", 0.921297),
        ("mnse", 0.750015),
        ("fhv", -7.29614),
        ("pfab", 7.29614),
        ("r", 0.992536),
        ("r_squared", 0.985129),
        ("rmse", 0.456638),
        ("r2_cod", 0.943084),
    ],
)
def test_reference_series(name, ref, x64):
    got = float(metrics.METRICS[name](SIM, OBS))
    assert got == pytest.approx(ref, rel=2e-6, abs=2e-6)


def _random_pair(rng, n=400, nan_frac=0.15):
    obs = rng.gamma(1.5, 2.0, n)
    sim = obs * rng.normal(1.0, 0.3, n) + rng.normal(0, 0.5, n)
    obs[rng.random(n) < nan_frac] = np.nan
    return sim, obs


def _independent(sim, obs):
    m = ~np.isnan(obs)
    s, o = sim[m], obs[m]
    kge09, r, alpha, beta = hydroeval.kge(s, o)[:, 0]
    return {
        "nse": he.nse(s, o),
        "kge": he.kge_2009(s, o),
        "kge_2012": he.kge_2012(s, o),
        "mnse": he.nse_mod(s, o),
        "r": he.pearson_r(s, o),
        "r_squared": he.r_squared(s, o),
        "rmse": he.rmse(s, o),
        "_kge_hydroeval": kge09,
    }


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_hydroerr_and_hydroeval_on_series_with_nans(seed, x64):
    sim, obs = _random_pair(np.random.default_rng(seed))
    ref = _independent(sim, obs)
    assert ref["kge"] == pytest.approx(ref["_kge_hydroeval"], rel=1e-9)
    for name, value in ref.items():
        if name.startswith("_"):
            continue
        assert float(metrics.METRICS[name](sim, obs)) == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_fhv_against_numpy_sorting_with_nans():
    rng = np.random.default_rng(3)
    sim, obs = _random_pair(rng, n=1000)
    m = ~np.isnan(obs)
    s, o = np.sort(sim[m])[::-1], np.sort(obs[m])[::-1]
    h = int(np.round(0.02 * m.sum()))
    ref = 100 * (s[:h] - o[:h]).sum() / o[:h].sum()
    assert float(metrics.fhv(sim, obs)) == pytest.approx(ref, rel=1e-5)


def test_basin_axis_jit_and_float32():
    rng = np.random.default_rng(4)
    pairs = [_random_pair(rng, 300) for _ in range(6)]
    sim = np.stack([p[0] for p in pairs], axis=1).astype(np.float32)  # [time, basin]
    obs = np.stack([p[1] for p in pairs], axis=1).astype(np.float32)
    batched = jax.jit(lambda s, o: metrics.evaluate(s, o, tuple(metrics.METRICS), axis=0))(sim, obs)
    for name in metrics.METRICS:
        assert batched[name].shape == (6,)
        for b in range(6):
            one = float(metrics.METRICS[name](sim[:, b], obs[:, b]))
            assert float(batched[name][b]) == pytest.approx(one, rel=1e-5, abs=1e-6), name
    # the default axis (-1) is the time axis of the basin-first [basin, time] layout
    np.testing.assert_allclose(metrics.nse(sim.T, obs.T), batched["nse"], rtol=1e-6)


def test_nan_in_simulation_propagates_and_unknown_metric_fails():
    sim, obs = SIM.copy(), OBS.copy()
    sim[5] = np.nan
    assert np.isnan(float(metrics.nse(sim, obs)))
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.evaluate(SIM, OBS, ("nse", "bogus"))


def test_physical_consistency_worked_example():
    # docs/physics.md §5.3: t = 0..6
    p, e, sro, sd, sm, sm_hat = (SECTION_5_3[k] for k in ("p", "e", "sro", "sd", "sm", "sm_hat"))
    w = np.concatenate([[np.nan], p[1:] - e[1:] - sro[1:] + (sd[:-1] - sd[1:])])
    np.testing.assert_allclose(w[1:], [3.3, 11, 2.4, -3, -3.2, 6.2], atol=1e-12)
    assert float(metrics.physical_consistency(w, sm, sm_hat)) == pytest.approx(0.4)


def test_constant_observed_series_gives_nan_never_inf():
    """A constant observed series has zero variance: NSE, KGE, r are undefined (NaN), not
    -inf; the other basin of the batch keeps its reference value and a finite gradient."""
    obs = np.stack([OBS, np.full_like(OBS, 0.7)])  # [basin, time]: basin 1 constant
    sim = np.stack([SIM, SIM])
    undefined = ("nse", "kge", "kge_2012", "mnse", "r", "r_squared", "r2_cod")
    for name in undefined:
        got = np.asarray(metrics.METRICS[name](sim, obs))
        assert np.isnan(got[1]), name
        assert float(got[0]) == pytest.approx(float(metrics.METRICS[name](SIM, OBS)), rel=1e-6), name
    # rmse and fhv stay defined for a constant, non-zero series
    assert float(metrics.rmse(sim, obs)[1]) == pytest.approx(np.sqrt(np.mean((SIM - 0.7) ** 2)), rel=1e-6)
    assert np.isfinite(float(metrics.fhv(sim, obs)[1]))
    # an all-zero series (a dry ephemeral stream): FHV divides by a zero volume -> NaN
    assert np.isnan(float(metrics.fhv(SIM, np.zeros_like(OBS))))
    # a mean over basins is not dragged to -inf; nanmean skips the undefined basin
    assert np.nanmean(np.asarray(metrics.nse(sim, obs))) == pytest.approx(0.943084, rel=2e-6)
    grad = jax.grad(lambda s: metrics.nse(s, obs)[0])(sim)
    assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)
