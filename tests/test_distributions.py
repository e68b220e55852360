"""CMAL and GMM heads and mixture functions, checked against scipy.stats computed independently."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from difhydro.nn import distributions as D

# two basins x three days x three components (target units)
LOC = np.array([[[0.0, 1.0, 3.0], [0.5, -1.0, 2.0], [1.0, 1.5, 4.0]],
                [[2.0, 2.5, 0.0], [0.2, 0.3, 0.4], [-1.0, 0.0, 1.0]]], np.float32)
SCALE = np.array([[[0.5, 1.0, 2.0], [0.3, 0.7, 1.1], [1.0, 0.2, 0.6]],
                  [[0.4, 0.9, 1.3], [0.8, 0.8, 0.8], [0.25, 0.5, 1.5]]], np.float32)
TAU = np.array([[[0.2, 0.5, 0.9], [0.3, 0.6, 0.5], [0.1, 0.8, 0.4]],
                [[0.5, 0.7, 0.25], [0.45, 0.55, 0.65], [0.9, 0.15, 0.5]]], np.float32)
W = np.array([[[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.3, 0.3, 0.4]],
              [[0.1, 0.1, 0.8], [0.33, 0.33, 0.34], [0.5, 0.25, 0.25]]], np.float32)
Y = np.array([[0.7, np.nan, 3.1], [1.9, 0.1, -0.4]], np.float32)


def _cmal():
    return D.CMAL(*(jnp.asarray(a) for a in (LOC, SCALE, TAU, W)))


def _gmm():
    return D.GaussianMixture(*(jnp.asarray(a) for a in (LOC, SCALE, W)))


def _scipy_ald(m, b, tau):
    """neuralhydrology's (m, b, tau) as scipy's laplace_asymmetric(kappa, loc, scale)."""
    return stats.laplace_asymmetric(np.sqrt(tau / (1 - tau)), loc=m, scale=b / np.sqrt(tau * (1 - tau)))


def _scipy_pdf(kind, idx, y):
    i, t = idx
    comps = [(_scipy_ald(LOC[i, t, k], SCALE[i, t, k], TAU[i, t, k]) if kind == "cmal"
              else stats.norm(LOC[i, t, k], SCALE[i, t, k])) for k in range(3)]
    return sum(W[i, t, k] * comps[k].pdf(y) for k in range(3)), sum(W[i, t, k] * comps[k].cdf(y) for k in range(3))


@pytest.mark.parametrize("kind", ["cmal", "gmm"])
def test_nll_equals_scipy_mixture_and_ignores_missing_and_masked_days(kind):
    dist = _cmal() if kind == "cmal" else _gmm()
    lp = np.asarray(jax.jit(D.log_prob)(dist, jnp.nan_to_num(jnp.asarray(Y))))
    expected = {}
    for i in range(2):
        for t in range(3):
            if not np.isnan(Y[i, t]):
                expected[(i, t)] = np.log(_scipy_pdf(kind, (i, t), float(Y[i, t]))[0])
                assert lp[i, t] == pytest.approx(expected[(i, t)], rel=1e-5, abs=1e-5)
    nll = jax.jit(D.nll)
    assert float(nll(dist, Y)) == pytest.approx(-np.mean(list(expected.values())), rel=1e-5)
    mask = np.array([[True, True, False], [True, True, True]])
    kept = [v for key, v in expected.items() if mask[key]]
    assert float(nll(dist, Y, mask)) == pytest.approx(-np.mean(kept), rel=1e-5)
    # a NaN observation gives no NaN gradient
    grads = jax.jit(jax.grad(lambda d: D.nll(d, Y)))(dist)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    assert float(nll(dist, np.full_like(Y, np.nan))) == 0.0


@pytest.mark.parametrize("kind", ["cmal", "gmm"])
def test_cdf_and_mean_equal_scipy(kind):
    dist = _cmal() if kind == "cmal" else _gmm()
    y = np.nan_to_num(Y, nan=0.3)
    F = np.asarray(jax.jit(D.cdf)(dist, y))
    for i in range(2):
        for t in range(3):
            assert F[i, t] == pytest.approx(_scipy_pdf(kind, (i, t), float(y[i, t]))[1], abs=1e-6)
    means = np.asarray(jax.jit(D.mean)(dist))
    comp = (_scipy_ald(LOC, SCALE, TAU) if kind == "cmal" else stats.norm(LOC, SCALE)).mean()
    np.testing.assert_allclose(means, (W * comp).sum(-1), rtol=1e-5, atol=1e-5)


def test_symmetric_cmal_is_the_laplace_law_of_scale_2b():
    dist = D.CMAL(jnp.array([[1.0]]), jnp.array([[0.5]]), jnp.array([[0.5]]), jnp.array([[1.0]]))
    y = np.array([-1.0, 0.0, 1.0, 2.5], np.float32)
    lp = np.asarray(D.log_prob(D.CMAL(*(jnp.broadcast_to(x, (4, 1)) for x in dist)), y))
    np.testing.assert_allclose(lp, stats.laplace(1.0, 1.0).logpdf(y), rtol=1e-6)


PROBS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@pytest.mark.parametrize("kind", ["cmal", "gmm"])
def test_quantiles_invert_the_mixture_cdf(kind):
    dist = _cmal() if kind == "cmal" else _gmm()
    q = jax.jit(D.quantiles, static_argnums=1)(dist, PROBS)
    assert q.shape == (2, 3, len(PROBS))
    F = np.asarray(D.cdf(D.CMAL(*(x[..., None, :] for x in dist)) if kind == "cmal"
                         else D.GaussianMixture(*(x[..., None, :] for x in dist)), q))
    np.testing.assert_allclose(F, np.broadcast_to(PROBS, F.shape), atol=1e-4)
    assert (np.diff(np.asarray(q), axis=-1) > 0).all()
    # independently: scipy's brentq on the scipy mixture CDF
    for i, t, j in [(0, 0, 1), (1, 2, 5), (0, 1, 3)]:
        root = __import__("scipy.optimize", fromlist=["brentq"]).brentq(
            lambda x: _scipy_pdf(kind, (i, t), x)[1] - PROBS[j], -50, 50, xtol=1e-10)
        assert float(q[i, t, j]) == pytest.approx(root, abs=2e-4)


def test_quantile_gradient_matches_finite_differences():
    @jax.jit
    def q30(loc):
        return D.quantiles(D.CMAL(loc, jnp.asarray(SCALE), jnp.asarray(TAU), jnp.asarray(W)), (0.3,))[0, 0, 0]

    loc = jnp.asarray(LOC)
    g = np.asarray(jax.jit(jax.grad(q30))(loc))
    h = 1e-2
    e = np.zeros(LOC.shape, np.float32)
    e[0, 0, 1] = h
    fd = (float(q30(loc + e)) - float(q30(loc - e))) / (2 * h)
    assert g[0, 0, 1] == pytest.approx(fd, rel=2e-3)
    assert 0.0 < g[0, 0, 1] < 1.0
    assert g[0, 0].sum() == pytest.approx(1.0, rel=1e-5)  # shifting every location shifts q
    assert np.abs(g[1:]).max() == 0.0 and np.abs(g[0, 1:]).max() == 0.0


@pytest.mark.parametrize("kind", ["cmal", "gmm"])
def test_sample_moments_match_the_analytical_mean_and_cdf(kind):
    dist = _cmal() if kind == "cmal" else _gmm()
    n = 20000
    s = np.asarray(jax.jit(D.sample, static_argnums=2)(dist, jax.random.PRNGKey(3), n))
    assert s.shape == (2, 3, n)
    mu = np.asarray(jax.jit(D.mean)(dist))
    se = s.std(-1) / np.sqrt(n)
    assert (np.abs(s.mean(-1) - mu) < 4.5 * se).all()
    # the fraction of draws below the median is 1/2
    med = np.asarray(jax.jit(D.quantiles, static_argnums=1)(dist, (0.5,)))
    np.testing.assert_allclose((s < med).mean(-1), 0.5, atol=0.015)


def test_component_abs_deviation_equals_numerical_integral():
    dist = _cmal()
    y = 0.8
    got = np.asarray(jax.jit(D.component_abs_deviation)(dist, jnp.float32(y)))
    for (i, t, k) in [(0, 0, 0), (0, 0, 2), (1, 2, 1), (1, 1, 2)]:
        law = _scipy_ald(LOC[i, t, k], SCALE[i, t, k], TAU[i, t, k])
        ref = integrate.quad(lambda x: abs(x - y) * law.pdf(x), law.ppf(1e-13), law.ppf(1 - 1e-13), points=[y], limit=200)[0]
        assert got[i, t, k] == pytest.approx(ref, rel=1e-4)
    g = np.asarray(D.component_abs_deviation(_gmm(), jnp.float32(y)))
    law = stats.norm(LOC[1, 0, 1], SCALE[1, 0, 1])
    ref = integrate.quad(lambda x: abs(x - y) * law.pdf(x), law.ppf(1e-13), law.ppf(1 - 1e-13), points=[y], limit=200)[0]
    assert g[1, 0, 1] == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("head", [D.CMALHead(n_components=4, hidden_size=8), D.GMMHead(n_components=4, hidden_size=0)])
def test_heads_map_basin_first_features_into_valid_parameters_with_finite_gradients(head):
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 7, 6)) * 3.0
    variables = jax.jit(head.init)(jax.random.PRNGKey(1), x)
    dist = jax.jit(head.apply)(variables, x)
    assert all(f.shape == (5, 7, 4) for f in dist)
    assert float(dist.scale.min()) > 0.0
    np.testing.assert_allclose(np.asarray(dist.weights.sum(-1)), 1.0, rtol=1e-6)
    if isinstance(dist, D.CMAL):
        assert 0.0 < float(dist.asymmetry.min()) and float(dist.asymmetry.max()) < 1.0
    y = jnp.where(jnp.arange(7) % 3 == 0, jnp.nan, 1.0) * jnp.ones((5, 7))
    grads = jax.jit(jax.grad(lambda v: D.nll(head.apply(v, x), y)))(variables)
    leaves = jax.tree.leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    assert max(float(jnp.abs(g).max()) for g in leaves) > 0.0
