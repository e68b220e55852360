"""CRPS, PIT, coverage and width: analytical values and independent numpy/scipy implementations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from difhydro.nn.distributions import CMAL, GaussianMixture
from difhydro.training import probabilistic as P

# compiled once per shape: eager dispatch of the many small ops costs more than the tests
CRPS = jax.jit(P.crps)
SCORES = jax.jit(P.probabilistic_scores, static_argnames="levels")


def _crps_by_integral(cdf, y, lo, hi):
    """CRPS = ∫ (F(x) − 1[x >= y])² dx, integrated by scipy.quad (independent of the code)."""
    left = integrate.quad(lambda x: cdf(x) ** 2, lo, y, limit=400)[0]
    right = integrate.quad(lambda x: (1.0 - cdf(x)) ** 2, y, hi, limit=400)[0]
    return left + right


def test_crps_of_the_standard_normal_at_zero_is_analytical():
    dist = GaussianMixture(jnp.zeros((1, 1)), jnp.ones((1, 1)), jnp.ones((1, 1)))
    got = float(CRPS(dist, jnp.zeros(1))[0])
    assert got == pytest.approx((math.sqrt(2.0) - 1.0) / math.sqrt(math.pi), rel=1e-6)


def test_crps_of_the_symmetric_laplace_law_is_analytical():
    # CMAL with tau = 0.5 and scale b is Laplace(m, s = 2b): CRPS = s (|z| + exp(-|z|) - 3/4)
    m, b = 1.0, 0.75
    y = np.array([1.0, 2.2, -0.5, 6.0], np.float32)
    dist = CMAL(*(jnp.full((4, 1), v, jnp.float32) for v in (m, b, 0.5, 1.0)))
    z = np.abs(y - m) / (2 * b)
    np.testing.assert_allclose(np.asarray(CRPS(dist, y)), 2 * b * (z + np.exp(-z) - 0.75), rtol=1e-5)


def _mixtures():
    loc = np.array([[0.0, 1.5, 4.0], [2.0, 2.2, -1.0]], np.float32)
    scale = np.array([[0.5, 1.0, 2.0], [0.3, 1.7, 0.6]], np.float32)
    tau = np.array([[0.2, 0.5, 0.85], [0.6, 0.1, 0.4]], np.float32)
    w = np.array([[0.3, 0.5, 0.2], [0.25, 0.35, 0.4]], np.float32)
    return loc, scale, tau, w


def _scipy_mixture_cdf(kind, loc, scale, tau, w):
    if kind == "gmm":
        laws = [stats.norm(loc[k], scale[k]) for k in range(3)]
    else:
        laws = [stats.laplace_asymmetric(np.sqrt(tau[k] / (1 - tau[k])), loc=loc[k],
                                         scale=scale[k] / np.sqrt(tau[k] * (1 - tau[k]))) for k in range(3)]
    lo = min(law.ppf(1e-12) for law in laws)
    hi = max(law.ppf(1 - 1e-12) for law in laws)
    return (lambda x: sum(w[k] * laws[k].cdf(x) for k in range(3))), lo, hi


@pytest.mark.parametrize("kind", ["gmm", "cmal"])
def test_mixture_crps_equals_the_integral_of_the_squared_cdf_difference(kind):
    loc, scale, tau, w = _mixtures()
    dist = (GaussianMixture(*map(jnp.asarray, (loc, scale, w))) if kind == "gmm"
            else CMAL(*map(jnp.asarray, (loc, scale, tau, w))))
    y = np.array([0.9, 5.5], np.float32)
    got = np.asarray(CRPS(dist, y))
    for i in range(2):
        cdf, lo, hi = _scipy_mixture_cdf(kind, loc[i], scale[i], tau[i], w[i])
        assert got[i] == pytest.approx(_crps_by_integral(cdf, float(y[i]), lo, hi), rel=1e-5)


def test_crps_ensemble_equals_the_double_sum():
    rng = np.random.default_rng(0)
    draws = rng.gamma(2.0, 1.5, (3, 4, 25)).astype(np.float32)
    y = rng.gamma(2.0, 1.5, (3, 4)).astype(np.float32)
    ref = (np.abs(draws - y[..., None]).mean(-1)
           - 0.5 * np.abs(draws[..., :, None] - draws[..., None, :]).mean((-2, -1)))
    np.testing.assert_allclose(np.asarray(P.crps_ensemble(draws, y)), ref, rtol=1e-5)


def test_crps_ensemble_of_many_draws_approaches_the_closed_form():
    loc, scale, tau, w = _mixtures()
    dist = GaussianMixture(*map(jnp.asarray, (loc, scale, w)))
    from difhydro.nn.distributions import sample
    draws = jax.jit(sample, static_argnums=2)(dist, jax.random.PRNGKey(0), 4000)
    y = jnp.array([0.9, 5.5])
    np.testing.assert_allclose(np.asarray(jax.jit(P.crps_ensemble)(draws, y)), np.asarray(CRPS(dist, y)), rtol=0.03)


def _standard_normal(shape):
    return GaussianMixture(jnp.zeros(shape + (1,)), jnp.ones(shape + (1,)), jnp.ones(shape + (1,)))


def test_pit_coverage_and_width_of_a_standard_normal_forecast():
    obs = np.array([[0.0, 1.0, -0.5, 2.0, np.nan], [-3.0, 0.1, 0.2, 1.5, 1.7]], np.float32)
    dist = _standard_normal(obs.shape)
    u = np.asarray(jax.jit(P.pit)(dist, obs))
    np.testing.assert_allclose(u[~np.isnan(obs)], stats.norm.cdf(obs[~np.isnan(obs)]), atol=1e-6)
    assert np.isnan(u[0, 4])
    scores = SCORES(dist, obs, levels=(0.5, 0.9))
    # central 50 %: [-0.674, 0.674]; central 90 %: [-1.645, 1.645]
    np.testing.assert_allclose(np.asarray(scores["coverage_50"]), [2 / 4, 2 / 5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(scores["coverage_90"]), [3 / 4, 3 / 5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(scores["width_50"]), 2 * stats.norm.ppf(0.75), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(scores["width_90"]), 2 * stats.norm.ppf(0.95), rtol=1e-5)
    crps_ref = [np.mean([_crps_by_integral(stats.norm.cdf, float(v), -12, 12) for v in row[~np.isnan(row)]])
                for row in obs]
    np.testing.assert_allclose(np.asarray(scores["crps"]), crps_ref, rtol=1e-5)


def test_pit_histogram_counts_per_basin_and_skips_missing_values():
    values = np.array([[0.05, 0.15, 0.15, 0.5, 1.0, np.nan], [0.0, 0.1, 0.2, 0.99, np.nan, np.nan]], np.float32)
    h = np.asarray(P.pit_histogram(values, n_bins=5))
    np.testing.assert_allclose(h[0], [3 / 5, 0, 1 / 5, 0, 1 / 5], rtol=1e-6)
    np.testing.assert_allclose(h[1], [2 / 4, 1 / 4, 0, 0, 1 / 4], rtol=1e-6)


def test_a_calibrated_forecast_has_the_nominal_coverage_and_a_flat_pit_histogram():
    key = jax.random.PRNGKey(5)
    shape = (2, 4000)
    loc = jax.random.normal(key, shape)[..., None]
    dist = GaussianMixture(loc, jnp.full_like(loc, 0.7), jnp.ones_like(loc))
    obs = loc[..., 0] + 0.7 * jax.random.normal(jax.random.PRNGKey(6), shape)
    s = SCORES(dist, obs)
    np.testing.assert_allclose(np.asarray(s["coverage_90"]), 0.9, atol=0.015)
    np.testing.assert_allclose(np.asarray(s["coverage_50"]), 0.5, atol=0.025)
    h = np.asarray(jax.jit(lambda d, o: P.pit_histogram(P.pit(d, o), 10))(dist, obs))
    np.testing.assert_allclose(h, 0.1, atol=0.02)


def test_cmal_crps_with_tied_locations_and_observation_on_a_location_has_finite_gradients():
    loc = np.array([[1.0, 1.0, 2.0]], np.float32)
    scale = np.array([[0.4, 1.2, 0.7]], np.float32)
    tau = np.array([[0.3, 0.8, 0.5]], np.float32)
    w = np.array([[0.2, 0.3, 0.5]], np.float32)
    dist = CMAL(*map(jnp.asarray, (loc, scale, tau, w)))
    y = jnp.array([1.0])
    cdf, lo, hi = _scipy_mixture_cdf("cmal", loc[0], scale[0], tau[0], w[0])
    assert float(CRPS(dist, y)[0]) == pytest.approx(_crps_by_integral(cdf, 1.0, lo, hi), rel=1e-5)
    grads = jax.jit(jax.grad(lambda d, y: P.crps(d, y).sum(), argnums=(0, 1)))(dist, y)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    # dCRPS/dy = 2 F(y) - 1
    from difhydro.nn.distributions import cdf as mixture_cdf
    assert float(grads[1][0]) == pytest.approx(2 * float(jax.jit(mixture_cdf)(dist, y)[0]) - 1, abs=1e-5)


def test_cmal_crps_gradient_matches_finite_differences():
    loc, scale, tau, w = _mixtures()
    y = jnp.array([0.9, 5.5])

    @jax.jit
    def total(loc, scale):
        return P.crps(CMAL(loc, scale, jnp.asarray(tau), jnp.asarray(w)), y).sum()

    g_loc, g_scale = jax.jit(jax.grad(total, argnums=(0, 1)))(jnp.asarray(loc), jnp.asarray(scale))
    h = 1e-2
    for (arr, g, idx) in [(loc, g_loc, (0, 1)), (loc, g_loc, (1, 2)), (scale, g_scale, (0, 2)), (scale, g_scale, (1, 0))]:
        e = np.zeros_like(arr)
        e[idx] = h
        args = [jnp.asarray(loc), jnp.asarray(scale)]
        k = 0 if arr is loc else 1
        up, down = list(args), list(args)
        up[k], down[k] = args[k] + e, args[k] - e
        fd = (float(total(*up)) - float(total(*down))) / (2 * h)
        assert float(g[idx]) == pytest.approx(fd, rel=2e-3, abs=1e-5)
