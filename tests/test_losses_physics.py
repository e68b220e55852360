"""Physics-guided soil-moisture losses against the worked examples of docs/physics.md
§5.3 (monotonic water-balance loss, difhydro.contrib.phy_lstm) and §3.6 (Richards residual,
difhydro.training.losses), an independent NumPy implementation, and gradient checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difhydro.contrib import phy_lstm
from difhydro.contrib.pgdl import bounded_water_content
from difhydro.training import losses, metrics

from helpers import SECTION_5_3

# §5.3 example, t = 0..6 (mm and m3 m-3)
P, E, SRO, SD, SM, SM_HAT = (SECTION_5_3[k] for k in ("p", "e", "sro", "sd", "sm", "sm_hat"))

# §3.6 example (loam, cm and d)
LOAM = {"theta_r": 0.078, "theta_s": 0.43, "alpha": 0.036, "n": 1.56, "k_s": 24.96}
THETA = np.array([[0.30, 0.28, 0.27, 0.26, 0.25], [0.32, 0.29, 0.272, 0.261, 0.25]])


def _w1():
    return phy_lstm.water_balance(P, E, SRO, phy_lstm.snow_water_change(jnp.asarray(SD)))


def test_water_balance_example(x64):
    w = np.asarray(_w1())
    assert np.isnan(w[0])
    np.testing.assert_allclose(w[1:], [3.3, 11, 2.4, -3, -3.2, 6.2], atol=1e-12)
    dw = np.asarray(phy_lstm.monotonic_direction(w))
    np.testing.assert_array_equal(dw[2:], [1, -1, -1, -1, 1])
    masked = np.asarray(phy_lstm.monotonic_direction(w, SM))
    np.testing.assert_array_equal(masked[2:], [1, 0, -1, -1, 0])


def test_sign_conventions(x64):
    era5 = phy_lstm.water_balance(P, -E, SRO, phy_lstm.snow_water_change(jnp.asarray(SD), "accumulation"),
                                evaporation_sign=-1.0, snow_sign=-1.0)
    np.testing.assert_allclose(np.asarray(era5)[1:], np.asarray(_w1())[1:], atol=1e-12)
    deep = np.array([0, 0.01, -0.02, 0.0, 0.03, 0, 0])
    w2 = phy_lstm.water_balance(P, E, SRO, 0.0, deep, deep_scale=100.0)
    np.testing.assert_allclose(np.asarray(w2), P - E - SRO - 100.0 * deep, atol=1e-12)
    with pytest.raises(ValueError, match="convention"):
        phy_lstm.snow_water_change(jnp.asarray(SD), "melt")


def test_monotonic_loss_example(x64):
    mask = np.arange(7) >= 1
    pred = np.nan_to_num(SM_HAT, nan=0.3)
    loss = phy_lstm.monotonic_loss(pred, SM, _w1(), mask)
    assert float(loss) == pytest.approx(2e-05, rel=1e-9)
    pc = metrics.physical_consistency(np.asarray(_w1())[1:], SM[1:], SM_HAT[1:])
    assert float(pc) == pytest.approx(0.4)
    # weighting with RMSE, λ1 : λ2 = 3 : 7
    rmse = np.sqrt(np.mean((SM_HAT[1:] - SM[1:]) ** 2))
    total = phy_lstm.water_balance_loss(pred, SM, _w1(), mask, 0.3, 0.7)
    assert float(total) == pytest.approx(0.3 * rmse + 0.7 * 2e-05, rel=1e-6)


def test_monotonic_loss_ignores_missing_and_unmasked(x64):
    mask = np.arange(7) >= 1
    pred = np.nan_to_num(SM_HAT, nan=0.3)
    obs = SM.copy()
    obs[3] = np.nan
    # step 4 loses its SM_{t-1} (leaves N); step 3 loses the Eq.-13 check, so its
    # ΔW = −1 stays and it contributes (0.36 − 0.31)²; N = 4 (t = 2, 3, 5, 6)
    loss = phy_lstm.monotonic_loss(pred, obs, _w1(), mask)
    assert float(loss) == pytest.approx(0.05**2 / 4, rel=1e-9)
    grads = jax.grad(lambda p: phy_lstm.water_balance_loss(p, obs, _w1(), mask & ~np.isnan(obs)))(jnp.asarray(pred))
    assert np.all(np.isfinite(np.asarray(grads)))
    # masking out everything gives 0, not NaN
    assert float(phy_lstm.monotonic_loss(pred, SM, _w1(), np.zeros(7, bool))) == 0.0


def _numpy_monotonic(pred, obs, w, mask, disagreement=True):
    total, n = 0.0, 0
    for t in range(1, len(obs)):
        if not (mask[t] and np.isfinite(obs[t - 1]) and np.isfinite(w[t]) and np.isfinite(w[t - 1])):
            continue
        n += 1
        dw = 1.0 if w[t] > w[t - 1] else (-1.0 if w[t] < w[t - 1] else 0.0)
        if disagreement and np.isfinite(obs[t]) and dw * (obs[t - 1] - obs[t]) > 0:
            dw = 0.0
        total += max(dw * (obs[t - 1] - pred[t]), 0.0) ** 2
    return total / max(n, 1)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_monotonic_loss_matches_numpy(seed, disagreement):
    rng = np.random.default_rng(seed)
    n = 30
    obs = 0.3 + 0.05 * rng.standard_normal(n)
    obs[rng.random(n) < 0.15] = np.nan
    pred = 0.3 + 0.05 * rng.standard_normal(n)
    w = np.round(rng.standard_normal(n), 1)  # ties make ΔW = 0 steps
    mask = rng.random(n) < 0.8
    with jax.enable_x64(True):
        got = float(phy_lstm.monotonic_loss(pred, obs, w, mask, mask_disagreement=disagreement))
    assert got == pytest.approx(_numpy_monotonic(pred, obs, w, mask, disagreement), rel=1e-10, abs=1e-15)


def test_monotonic_loss_batched_equals_per_row(x64):
    rng = np.random.default_rng(3)
    obs, pred, w = (rng.random((4, 12)) for _ in range(3))
    mask = rng.random((4, 12)) < 0.9
    got = float(phy_lstm.monotonic_loss(pred, obs, w, mask))
    # pooled mean: Σ over rows of (row loss · row N) / Σ N
    sums = [_numpy_monotonic(pred[i], obs[i], w[i], mask[i]) for i in range(4)]
    counts = [sum(mask[i, t] for t in range(1, 12)) for i in range(4)]
    assert got == pytest.approx(np.dot(sums, counts) / sum(counts), rel=1e-10)


@pytest.mark.parametrize(
    "depths, expected",
    [((10, 20, 30, 40, 50), 5.59415e-4), ((5, 10, 20, 40, 80), 4.92895e-3)],
)
def test_richards_residual_loss_example(x64, depths, expected):
    loss = losses.richards_residual_loss(THETA, np.array(depths, float), LOAM)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_richards_residual_loss_mask_and_geometric(x64):
    # three days: a repeated day in front is masked out, so the loss is the example's
    theta = np.concatenate([THETA[:1] + 0.05, THETA])
    mask = np.array([False, True, True])
    assert float(losses.richards_residual_loss(theta, np.arange(10.0, 60, 10), LOAM, mask)) == pytest.approx(5.59415e-4, rel=1e-5)
    geo = np.array([-0.0325241, -0.0122119, -0.00319824])
    got = losses.richards_residual_loss(THETA, np.arange(10.0, 60, 10), LOAM, interface="geometric")
    assert float(got) == pytest.approx(np.mean(geo**2), rel=1e-5)


def test_richards_residual_loss_gradient_matches_finite_difference(x64):
    """Gradient with respect to a learned soil parameter (through ParamSpec) and to θ."""
    from difhydro.physics import Richards1D

    spec = Richards1D.param_spec["k_s"]
    depths = np.arange(10.0, 60, 10)

    def f(raw_ks, theta):
        return losses.richards_residual_loss(theta, depths, {**LOAM, "k_s": spec.to_physical(raw_ks)})

    raw = spec.from_physical(jnp.asarray(24.96))
    g_raw, g_theta = jax.grad(f, argnums=(0, 1))(raw, jnp.asarray(THETA))
    eps = 1e-6
    fd = (f(raw + eps, THETA) - f(raw - eps, THETA)) / (2 * eps)
    assert float(g_raw) == pytest.approx(float(fd), rel=1e-5)
    bump = np.zeros_like(THETA)
    bump[1, 2] = eps
    fd_theta = (f(raw, THETA + bump) - f(raw, THETA - bump)) / (2 * eps)
    assert float(g_theta[1, 2]) == pytest.approx(float(fd_theta), rel=1e-5)


def test_losses_jit():
    mask = np.arange(7) >= 1
    pred = np.nan_to_num(SM_HAT, nan=0.3).astype(np.float32)
    f = jax.jit(phy_lstm.water_balance_loss)
    assert float(f(pred, SM.astype(np.float32), _w1().astype(jnp.float32), mask)) > 0
    g = jax.jit(lambda t: losses.richards_residual_loss(t, jnp.arange(10.0, 60, 10), LOAM))
    assert float(g(THETA.astype(np.float32))) == pytest.approx(5.59415e-4, rel=1e-3)


# -- the bounded output activation -----------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(0.0, 0.2), st.floats(0.3, 0.6))
def test_bounded_water_content_inside_bounds(raw, theta_r, theta_s):
    theta = float(bounded_water_content(jnp.float32(raw), jnp.float32(theta_r), jnp.float32(theta_s)))
    assert np.float32(theta_r) <= theta <= np.float32(theta_s)


def test_bounded_water_content_gradients_finite_at_bounds():
    raw = jnp.array([-jnp.inf, -1e30, -100.0, 0.0, 100.0, 1e30, jnp.inf], jnp.float32)
    tr, ts = jnp.float32(0.05), jnp.float32(0.45)
    theta = bounded_water_content(raw, tr, ts)
    assert float(theta[0]) == pytest.approx(0.05) and float(theta[-1]) == pytest.approx(0.45)
    assert float(theta[3]) == pytest.approx(0.25)
    g = jax.grad(lambda r, a, b: bounded_water_content(r, a, b).sum(), argnums=(0, 1, 2))(raw, tr, ts)
    for part in g:
        assert np.all(np.isfinite(np.asarray(part)))
    # the residual loss stays finite on profiles pinned at the bounds
    prof = jnp.stack([bounded_water_content(jnp.full(5, -jnp.inf), tr, ts), bounded_water_content(jnp.full(5, jnp.inf), tr, ts)])
    soil = {**LOAM, "theta_r": tr, "theta_s": ts}
    val, grad = jax.value_and_grad(lambda p: losses.richards_residual_loss(p, jnp.arange(10.0, 60, 10), soil))(prof)
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
    with pytest.raises(ValueError, match="theta_s"):
        bounded_water_content(jnp.zeros(3), 0.4, 0.3)
