"""Tests of the 1-D Richards solver against docs/physics.md §3.

Reference numbers: Celia et al. (1990) P1/P2 tables (section 3.4), Gardner's steady state
and Philip's early-time infiltration (section 3.5), the residual examples (section 3.6).
Benchmark runs use cm and s (k_s in cm s-1), the daily model cm and d.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difhydro.physics.base import simulate
from difhydro.physics.richards import Richards1D, richards_residual, richards_substep
from difhydro.physics.soil_hydraulics import (
    Gardner,
    Haverkamp,
    VanGenuchten,
    vg_capacity,
    vg_conductivity,
    vg_pressure_head,
    vg_water_content,
)

P2 = dict(theta_r=0.102, theta_s=0.368, alpha=0.0335, n=2.0, k_s=0.00922)  # cm, s
P2_REF_DEPTH = np.array([0, 10, 20, 30, 40, 45, 50.0])
P2_REF_HEAD = np.array([-75.00, -76.87, -80.28, -86.72, -100.45, -114.37, -142.8])
LOAM = dict(theta_r=0.078, theta_s=0.43, alpha=0.036, n=1.56, k_s=24.96)  # cm, d


def _soil64(cls, **p):
    return cls(**{k: jnp.float64(v) for k, v in p.items()})


def _run_benchmark(soil, length, dz, dt, t_end, h_init, top_head, bottom_head, n_iter, **kw):
    """Celia-type run with Dirichlet top/bottom: returns (h, theta, theta_init, top_integral)."""
    n = int(round(length / dz))
    thickness = np.full(n, dz)
    h0 = jnp.full(n, h_init, jnp.float64)

    @jax.jit
    def run(h0):
        def body(carry, _):
            h, theta = carry
            h, theta, f = richards_substep(
                h, theta, soil, thickness, dt, top_head=top_head, bottom_head=bottom_head,
                n_iter=n_iter, **kw,
            )
            return (h, theta), f.top

        (h, theta), top = jax.lax.scan(body, (h0, soil.water_content(h0)), None, length=int(round(t_end / dt)))
        return h, theta, top.sum() * dt

    h, theta, top = run(h0)
    return np.asarray(h), np.asarray(theta), np.asarray(soil.water_content(h0)), float(top)


def _head_at(depths, dz, h, top_head=None):
    """h at depths by linear interpolation of cell centres (the top face if given)."""
    centres = (np.arange(h.size) + 0.5) * dz
    if top_head is not None:
        centres, h = np.concatenate([[0.0], centres]), np.concatenate([[top_head], h])
    return np.interp(depths, centres, h)


# ----------------------------------------------------------------------------------------
# Soil hydraulics
# ----------------------------------------------------------------------------------------


def test_van_genuchten_reference_values_and_inverse():
    with jax.enable_x64(True):
        p = {k: jnp.float64(v) for k, v in P2.items()}
        h = jnp.array([-75.0, -1000.0])
        theta = vg_water_content(h, p["theta_r"], p["theta_s"], p["alpha"], p["n"])
        np.testing.assert_allclose(theta, [0.200366, 0.109937], rtol=5e-6)
        k = vg_conductivity(jnp.float64(-75.0), p["alpha"], p["n"], p["k_s"])
        np.testing.assert_allclose(k, 2.81739e-5, rtol=2e-6)
        back = vg_pressure_head(theta, p["theta_r"], p["theta_s"], p["alpha"], p["n"])
        np.testing.assert_allclose(back, h, rtol=1e-9)
        hs = jnp.array([-3000.0, -75.0, -2.0])
        c = vg_capacity(hs, p["theta_r"], p["theta_s"], p["alpha"], p["n"])
        eps = 1e-4
        fd = (
            vg_water_content(hs + eps, p["theta_r"], p["theta_s"], p["alpha"], p["n"])
            - vg_water_content(hs - eps, p["theta_r"], p["theta_s"], p["alpha"], p["n"])
        ) / (2 * eps)
        np.testing.assert_allclose(c, fd, rtol=1e-7)
        # Saturation: theta_s, K within 0.1 % of Ks for n = 2, C = 0.
        assert float(vg_water_content(jnp.float64(0.0), p["theta_r"], p["theta_s"], p["alpha"], p["n"])) == pytest.approx(0.368)
        assert float(vg_conductivity(jnp.float64(1.0), p["alpha"], p["n"], p["k_s"])) == pytest.approx(0.00922, rel=1e-3)
        assert float(vg_capacity(jnp.float64(0.5), p["theta_r"], p["theta_s"], p["alpha"], p["n"])) == 0.0


# ----------------------------------------------------------------------------------------
# Celia et al. (1990) benchmarks (section 3.4), cm and s
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dt, storage_ref, heads_ref",
    [
        (60.0, 4.13528, (-80.2594, -100.305, -142.036)),
        (300.0, 4.13787, (-80.2630, -100.307, -141.897)),
    ],
)
def test_celia_p2_fixed_iteration_table(dt, storage_ref, heads_ref):
    with jax.enable_x64(True):
        soil = _soil64(VanGenuchten, **P2)
        h, theta, theta0, _ = _run_benchmark(soil, 100.0, 1.0, dt, 86400.0, -1000.0, -75.0, -1000.0, 5)
        storage = float(((theta - theta0) * 1.0).sum())
        assert storage == pytest.approx(storage_ref, rel=5e-3)
        heads = _head_at([20.0, 40.0, 50.0], 1.0, h)
        np.testing.assert_allclose(heads, heads_ref, atol=0.5)
        # Same discretisation as the reference: agreement is far tighter than the tolerance.
        assert storage == pytest.approx(storage_ref, abs=2e-4)
        np.testing.assert_allclose(heads, heads_ref, atol=0.01)


def test_celia_p2_flux_column_and_closure_gap():
    """The table's top-flux integral uses the flux of the iterate entering the last
    iteration (K - 1 = 4 iterations from the same start); the solver reports the flux of
    the final iterate, whose integral is closer to the storage change."""
    with jax.enable_x64(True):
        soil = _soil64(VanGenuchten, **P2)
        n, dt = 100, 60.0
        thickness = np.ones(n)
        kw = dict(top_head=-75.0, bottom_head=-1000.0)

        @jax.jit
        def run(h0):
            def body(carry, _):
                h, theta = carry
                h_new, theta_new, f = richards_substep(h, theta, soil, thickness, dt, n_iter=5, **kw)
                _, _, f4 = richards_substep(h, theta, soil, thickness, dt, n_iter=4, **kw)
                return (h_new, theta_new), (f.top, f4.top)

            h0 = jnp.full(n, -1000.0)
            (h, theta), (top, top4) = jax.lax.scan(body, (h0, soil.water_content(h0)), None, length=1440)
            return ((theta - soil.water_content(h0)).sum(), top.sum() * dt, top4.sum() * dt)

        storage, top, top4 = (float(x) for x in run(None))
        assert top4 == pytest.approx(4.12900, abs=2e-4)
        assert abs(top - storage) < abs(top4 - storage)
        assert abs(top - storage) / storage < 2e-3


def test_celia_p2_converged_profile():
    """Fine grid (1/8 cm, 30 s, 10 iterations) against the converged table: +-0.05 cm above
    45 cm; at 50 cm the front-position accuracy (+-0.3 cm at dh/dz ~ 10) allows 0.5 cm."""
    with jax.enable_x64(True):
        soil = _soil64(VanGenuchten, **P2)
        dz = 0.125
        h, theta, theta0, _ = _run_benchmark(soil, 100.0, dz, 30.0, 86400.0, -1000.0, -75.0, -1000.0, 10)
        heads = _head_at(P2_REF_DEPTH, dz, h, top_head=-75.0)
        np.testing.assert_allclose(heads[:-1], P2_REF_HEAD[:-1], atol=0.05)
        assert heads[-1] == pytest.approx(P2_REF_HEAD[-1], abs=0.5)
        assert float(((theta - theta0) * dz).sum()) == pytest.approx(4.11, abs=0.005)
        centres = (np.arange(h.size) + 0.5) * dz
        front = np.interp(0.5 * (0.200366 + 0.109937), theta[::-1], centres[::-1])
        assert front == pytest.approx(50.4, abs=0.1)


def test_celia_p2_error_decreases_with_refinement():
    with jax.enable_x64(True):
        soil = _soil64(VanGenuchten, **P2)
        errors = []
        for dz, dt in [(2.0, 120.0), (1.0, 60.0), (0.5, 30.0)]:
            h, *_ = _run_benchmark(soil, 100.0, dz, dt, 86400.0, -1000.0, -75.0, -1000.0, 5)
            heads = _head_at(P2_REF_DEPTH[:-1], dz, h, top_head=-75.0)
            errors.append(np.abs(heads - P2_REF_HEAD[:-1]).max())
        assert errors[0] > 1.8 * errors[1] > 1.8**2 * errors[2]
        assert errors[2] < 0.15


def test_celia_p1_haverkamp():
    ref_depth = np.array([0, 5, 10, 12, 14, 15, 16, 17, 18, 20, 25.0])
    ref_head = np.array(
        [-20.70, -21.94, -25.07, -27.80, -32.87, -37.12, -43.02, -49.98, -55.94, -60.79, -61.50]
    )
    with jax.enable_x64(True):
        soil = _soil64(
            Haverkamp, theta_r=0.075, theta_s=0.287, alpha=1.611e6, beta=3.96, k_s=0.00944,
            a=1.175e6, gamma=4.74,
        )
        dz = 0.25
        h, theta, theta0, _ = _run_benchmark(soil, 40.0, dz, 2.0, 360.0, -61.5, -20.7, -61.5, 10)
        np.testing.assert_allclose(_head_at(ref_depth, dz, h, top_head=-20.7), ref_head, atol=1.0)
        assert float(((theta - theta0) * dz).sum()) == pytest.approx(2.367, abs=0.005)


# ----------------------------------------------------------------------------------------
# Analytical checks (section 3.5)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("interface, ref", [("arithmetic", 0.0455), ("geometric", 0.0228)])
def test_gardner_steady_state(interface, ref):
    """Flux top q = 0.2 cm/h, water table at 100 cm, 20 cells, run to steady state (cm, h)."""
    with jax.enable_x64(True):
        soil = _soil64(Gardner, theta_r=0.05, theta_s=0.45, alpha=0.05, k_s=1.0)
        n = 20
        thickness = np.full(n, 100.0 / n)

        @jax.jit
        def run(h0):
            def body(carry, _):
                h, theta = carry
                h, theta, f = richards_substep(
                    h, theta, soil, thickness, 1.0, top_flux=jnp.float64(0.2), bottom_head=0.0,
                    n_iter=5, interface=interface,
                )
                return (h, theta), f.bottom

            (h, _), bottom = jax.lax.scan(body, (h0, soil.water_content(h0)), None, length=2000)
            return h, bottom[-1]

        h, bottom = run(jnp.full(n, -30.0))
        height = 100.0 - (np.arange(n) + 0.5) * 100.0 / n
        exact = np.log(0.2 + 0.8 * np.exp(-0.05 * height)) / 0.05
        error = np.abs(np.asarray(h) - exact).max()
        assert error < 0.05
        assert error == pytest.approx(ref, abs=0.002)
        assert float(bottom) == pytest.approx(0.2, rel=1e-8)


def test_philip_early_time_infiltration():
    with jax.enable_x64(True):
        soil = _soil64(VanGenuchten, **P2)
        h0, hi = -75.0, -1000.0
        heads = np.linspace(hi, h0, 200001)
        th = np.asarray(soil.water_content(jnp.asarray(heads)))
        kk = np.asarray(soil.conductivity(jnp.asarray(heads)))
        th0, thi = float(soil.water_content(jnp.float64(h0))), float(soil.water_content(jnp.float64(hi)))
        sorptivity = math.sqrt(np.trapezoid((th0 + th - 2 * thi) * kk, heads))
        assert sorptivity == pytest.approx(0.0102842, rel=1e-4)
        k0 = float(soil.conductivity(jnp.float64(h0)))

        dz = 0.1
        thickness = np.full(200, dz)

        @jax.jit
        def run(h_init):
            def body(carry, _):
                h, theta = carry
                h, theta, _ = richards_substep(
                    h, theta, soil, thickness, 5.0, top_head=h0, bottom_head=hi, n_iter=10
                )
                return (h, theta), ((theta - soil.water_content(h_init)) * dz).sum()

            _, storage = jax.lax.scan(body, (h_init, soil.water_content(h_init)), None, length=720)
            return storage

        storage = np.asarray(run(jnp.full(200, hi)))
        for t, numeric_ref in [(600.0, 0.2559), (3600.0, 0.6484)]:
            numeric = storage[int(t / 5.0) - 1]
            philip = sorptivity * math.sqrt(t) + k0 * t / 3.0
            assert numeric == pytest.approx(philip, rel=0.02)
            assert numeric == pytest.approx(numeric_ref, rel=0.01)


# ----------------------------------------------------------------------------------------
# Residual (section 3.6)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depths, interface, ref",
    [
        ((10, 20, 30, 40, 50), "arithmetic", (-0.0386430, -0.0132059, -0.00325053)),
        ((10, 20, 30, 40, 50), "geometric", (-0.0325241, -0.0122119, -0.00319824)),
        ((5, 10, 20, 40, 80), "arithmetic", (-0.121122, -0.0107635, -0.000672817)),
    ],
)
def test_richards_residual_examples(depths, interface, ref):
    prev = np.array([0.30, 0.28, 0.27, 0.26, 0.25])
    now = np.array([0.32, 0.29, 0.272, 0.261, 0.25])
    with jax.enable_x64(True):
        soil = {k: jnp.float64(v) for k, v in LOAM.items()}
        r = richards_residual(prev, now, np.array(depths, float), soil, 1.0, interface=interface)
        np.testing.assert_allclose(r, ref, atol=1e-5, rtol=1e-5)
        h = _soil64(VanGenuchten, **LOAM).pressure_head(jnp.asarray(now))
        np.testing.assert_allclose(h, [-41.0626, -57.4412, -70.3074, -79.7837, -90.8609], rtol=1e-5)
        # Batched (pixels x nodes) under jit, and a sink adds to the interior only.
        batched = jax.jit(
            lambda a, b: richards_residual(a, b, np.array(depths, float), soil, 1.0, sink=0.01, interface=interface)
        )(np.stack([prev, prev]), np.stack([now, now]))
        np.testing.assert_allclose(batched, np.array([ref, ref]) + 0.01, atol=1e-5, rtol=1e-5)
    r32 = richards_residual(prev, now, np.array(depths, float), LOAM, 1.0, interface=interface)
    assert r32.dtype == jnp.float32
    np.testing.assert_allclose(r32, ref, atol=2e-5, rtol=1e-3)
    if depths == (10, 20, 30, 40, 50) and interface == "arithmetic":
        assert float(jnp.mean(r32**2)) == pytest.approx(5.59415e-4, rel=1e-3)


# ----------------------------------------------------------------------------------------
# Daily model: mass balance, shapes, gradients
# ----------------------------------------------------------------------------------------

THICK6 = (5.0, 10.0, 15.0, 20.0, 25.0, 25.0)


def _random_forcing(n_days, seed=0, batch=()):
    rng = np.random.default_rng(seed)
    shape = (n_days, *batch)
    rain = (rng.random(shape) < 0.3) * rng.exponential(0.6, shape)  # cm d-1
    day = np.arange(n_days).reshape((n_days,) + (1,) * len(batch))
    tp = 0.05 + 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * day / 365.0)) + 0 * rain
    return {"precipitation": rain, "potential_transpiration": tp}


def _closure(model, params, forcing):
    final, out = jax.jit(lambda p, f: simulate(model, p, f, check=False))(params, forcing)
    delta = np.asarray(model.thickness)
    s0 = float((model.initial_state(params)["water_content"] * delta).sum())
    s = np.concatenate([[s0], np.asarray(out["soil_water"], np.float64)])
    net = (
        np.asarray(out["infiltration"], np.float64)
        - np.asarray(out["drainage"], np.float64)
        - np.asarray(out["root_water_uptake"], np.float64)
    ) * model.dt
    daily = np.diff(s) - net
    return daily, out


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_mass_balance_30_years():
    """30 years of random daily rain on 6 coarse layers, 24 sub-steps x 4 iterations.

    Without the flux update the unconverged iterations leave a small daily imbalance; with
    it the balance closes to float32 round-off (float64: ~1e-12 cm)."""
    forcing = _random_forcing(365 * 30)
    forcing = {k: jnp.asarray(v, jnp.float32) for k, v in forcing.items()}
    results = {}
    for flux_update in (False, True):
        model = Richards1D(thickness=THICK6, n_substeps=24, n_iter=4, flux_update=flux_update)
        daily, out = _closure(model, model.default_params(), forcing)
        results[flux_update] = daily
        infiltration = float(np.asarray(out["infiltration"]).sum())
        assert np.isfinite(daily).all()
        assert 0.5 * float(forcing["precipitation"].sum()) < infiltration
        assert float(np.asarray(out["root_water_uptake"]).sum()) > 100.0
    cumulative = {k: abs(v.sum()) for k, v in results.items()}
    worst = {k: np.abs(v).max() for k, v in results.items()}
    print(f"closure over 30 y, cm: fixed K={cumulative[False]:.3g} (worst day {worst[False]:.3g}), "
          f"flux update={cumulative[True]:.3g} (worst day {worst[True]:.3g})")
    assert worst[True] < 2e-5 * 60  # float32 eps x profile storage
    assert cumulative[True] < 5e-3
    assert worst[False] < 1.0
    assert cumulative[False] < 5e-3 * float(forcing["precipitation"].sum())
    assert worst[True] < worst[False]

    with jax.enable_x64(True):
        model = Richards1D(thickness=THICK6, n_substeps=24, n_iter=4, flux_update=True)
        f64 = {k: jnp.asarray(v, jnp.float64) for k, v in _random_forcing(365 * 3).items()}
        params = {k: jnp.asarray(v, jnp.float64) for k, v in model.default_params().items()}
        daily, _ = _closure(model, params, f64)
        assert np.abs(daily).max() < 1e-11


def test_shapes_per_layer_and_per_profile_params():
    model = Richards1D(thickness=(10.0, 20.0, 30.0), n_substeps=2, n_iter=2)
    forcing = {k: jnp.asarray(v, jnp.float32) for k, v in _random_forcing(20, batch=(2, 3)).items()}
    per_profile = {k: jnp.full((2, 3, 1), v) for k, v in LOAM.items()}
    per_layer = {k: jnp.full((2, 3, 3), v) for k, v in LOAM.items()}
    final, out = simulate(model, per_profile, forcing)
    _, out_layer = simulate(model, per_layer, forcing)
    assert out["water_content"].shape == (20, 2, 3, 3)
    assert out["pressure_head"].shape == (20, 2, 3, 3)
    for name in ("infiltration", "runoff", "drainage", "root_water_uptake", "soil_water"):
        assert out[name].shape == (20, 2, 3)
    for name in ("water_balance_error", "iterations", "converged"):
        assert out[name].shape == (20, 2, 3)
    np.testing.assert_allclose(out["water_content"], out_layer["water_content"], rtol=1e-6)
    assert model.param_event_shape("k_s") == (3,)
    assert model.default_params((4,))["n"].shape == (4, 3)


def test_ponding_produces_runoff():
    model = Richards1D(thickness=(2.0, 5.0, 10.0), n_substeps=24, n_iter=5, initial_head=-20.0)
    params = {**LOAM, "k_s": 1.0}
    forcing = {"precipitation": jnp.full((3,), 10.0), "potential_transpiration": jnp.zeros(3)}
    _, out = simulate(model, params, forcing)
    runoff = np.asarray(out["runoff"])
    assert (runoff > 5.0).all()
    np.testing.assert_allclose(np.asarray(out["infiltration"]) + runoff, 10.0, rtol=1e-5)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="thickness"):
        Richards1D(thickness=(10.0, -1.0))
    with pytest.raises(ValueError, match="interface"):
        Richards1D(interface="harmonic")
    with pytest.raises(ValueError, match="root_fraction"):
        Richards1D(thickness=(10.0, 10.0), root_fraction=(0.5, 0.6))
    with pytest.raises(ValueError, match="top_flux or top_head"):
        richards_substep(jnp.zeros(3), jnp.zeros(3), VanGenuchten(**LOAM), (1.0,) * 3, 1.0)
    with pytest.raises(ValueError, match="k_s"):
        m = Richards1D(thickness=(10.0, 10.0))
        simulate(m, {**LOAM, "k_s": 5000.0}, {k: v[:, 0] for k, v in _random_forcing(3, batch=(1,)).items()})


def _short_loss(model, forcing):
    def loss(params):
        _, out = simulate(model, params, forcing, check=False)
        return out["soil_water"].sum() + 3.0 * out["drainage"].sum() + out["root_water_uptake"].sum()

    return loss


def test_gradients_match_finite_differences():
    """float64, 4 days, per-layer parameters, moderate rain (no ponding, Feddes plateau).
    The sub-steps are solved to 1e-10: central differences of a solver stopped at the
    default 1e-6 differ from the exact gradient by ~1e-5 of the small k_s derivative."""
    with jax.enable_x64(True):
        model = Richards1D(thickness=(5.0, 10.0, 15.0), n_substeps=4, n_iter=4, initial_head=-60.0, tol=1e-10)
        forcing = {
            "precipitation": jnp.array([0.8, 0.0, 1.5, 0.2]),
            "potential_transpiration": jnp.array([0.3, 0.4, 0.2, 0.3]),
        }
        base = {
            "theta_r": jnp.array([0.06, 0.07, 0.08]),
            "theta_s": jnp.array([0.42, 0.43, 0.40]),
            "alpha": jnp.array([0.030, 0.036, 0.02]),
            "n": jnp.array([1.5, 1.56, 1.8]),
            "k_s": jnp.array([20.0, 25.0, 10.0]),
        }
        loss = jax.jit(_short_loss(model, forcing))
        grads = jax.jit(jax.grad(_short_loss(model, forcing)))(base)
        rng = np.random.default_rng(1)
        for name in base:
            direction = jnp.asarray(rng.normal(size=3))
            eps = 1e-6 * float(jnp.abs(base[name]).max())
            plus = {**base, name: base[name] + eps * direction}
            minus = {**base, name: base[name] - eps * direction}
            fd = (loss(plus) - loss(minus)) / (2 * eps)
            ad = float(jnp.vdot(grads[name], direction))
            assert ad == pytest.approx(float(fd), rel=1e-5, abs=1e-8), name
            assert abs(ad) > 1e-6, name


_GRAD_MODEL = Richards1D(thickness=(5.0, 10.0, 15.0), n_substeps=2, n_iter=3)
_GRAD_FN = jax.jit(
    jax.grad(
        lambda params, state0, forcing: sum(
            o.sum()
            for k, o in simulate(_GRAD_MODEL, params, forcing, state0=state0, check=False)[1].items()
            if k in ("soil_water", "drainage", "runoff", "root_water_uptake")
        ),
        argnums=(0, 1),
    )
)


def _box(name, u):
    spec = Richards1D.param_spec[name]
    return spec.low + (spec.high - spec.low) * u


@settings(max_examples=10, deadline=None)
@given(
    u=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
    wet=st.booleans(),
    log_suction=st.floats(-3.0, 6.5),
)
def test_gradients_finite_near_saturation_and_dry(u, wet, log_suction):
    """Any parameters in the boxes; profiles at or near saturation (with ponding rain) or
    very dry (down to h = -3e6 cm): gradients are finite."""
    params = {k: jnp.float32(_box(k, ui)) for k, ui in zip(Richards1D.param_spec, u)}
    h0 = -(10.0 ** log_suction) if not wet else -(10.0 ** min(log_suction, -1.0))
    soil = _GRAD_MODEL.soil(params)
    h = jnp.full((3,), h0, jnp.float32)
    state0 = {"pressure_head": h, "water_content": soil.water_content(h)}
    rain = 20.0 if wet else 0.5
    forcing = {"precipitation": jnp.array([rain, 0.0]), "potential_transpiration": jnp.array([0.4, 0.4])}
    g_params, g_state = _GRAD_FN(params, state0, forcing)
    for name, g in {**g_params, **g_state}.items():
        assert np.isfinite(np.asarray(g)).all(), name


# The scheme Richards1D ran before iterating to a tolerance: 5 fixed modified Picard
# iterations in the head form (its damping is what the next test is about).
FIXED_PICARD = dict(tol=None, n_iter=5, jacobian="picard", update="head", line_search=False)


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_damped_picard_update_keeps_more_of_the_box_physical():
    # one year of random rain on 27 soils spanning the boxes (k_s, n, alpha corners and
    # centres): without a damped head update most permeable / flat-retention soils end
    # with water contents outside [theta_r, theta_s]; the default damping fixes most.
    # Setup changed: the assertions are about the fixed-iteration scheme, so it is named
    # explicitly (FIXED_PICARD); the default now iterates to a tolerance, which keeps 26 of
    # 27 soils physical even undamped and all 27 damped (checked at the end).
    import itertools

    rng = np.random.default_rng(0)
    n_days = 365
    rain = np.where(rng.random(n_days) < 0.35, rng.gamma(0.7, 1.2, n_days), 0.0)
    combos = list(itertools.product([0.1, 25.0, 1000.0], [1.05, 1.56, 3.0], [0.002, 0.036, 0.2]))
    b = len(combos)
    params = {"theta_r": jnp.full((b, 1), 0.05), "theta_s": jnp.full((b, 1), 0.45),
              "alpha": jnp.asarray([[c[2]] for c in combos]), "n": jnp.asarray([[c[1]] for c in combos]),
              "k_s": jnp.asarray([[c[0]] for c in combos])}
    forcing = {"precipitation": jnp.asarray(np.repeat(rain[:, None], b, 1), jnp.float32),
               "potential_transpiration": jnp.full((n_days, b), 0.3)}
    failed, unconverged = {}, {}
    for damping in (None, (50.0, 0.5)):
        model = Richards1D(thickness=(5.0, 5.0, 10.0, 15.0, 20.0, 25.0), max_head_change=damping, flux_update=True,
                           **FIXED_PICARD)
        out = simulate(model, params, forcing, check=False)[1]
        theta = np.asarray(out["water_content"])
        failed[damping] = {combos[i] for i in np.nonzero(((theta < 0.049) | (theta > 0.451)).any(axis=(0, 2)))[0]}
        unconverged[damping] = int((np.asarray(out["converged"]) < 1).sum())
    assert len(failed[None]) >= 15 and len(failed[(50.0, 0.5)]) <= 8
    assert failed[(50.0, 0.5)] <= failed[None] | {(25.0, 3.0, 0.2)}
    assert (25.0, 1.56, 0.036) not in failed[(50.0, 0.5)]  # loam-like soils stay physical

    # the default scheme (Newton to a tolerance, damped): every soil stays physical and far
    # fewer profile-days are left unconverged (and those are reported)
    model = Richards1D(thickness=(5.0, 5.0, 10.0, 15.0, 20.0, 25.0))
    out = simulate(model, params, forcing, check=False)[1]
    theta = np.asarray(out["water_content"])
    assert not ((theta < 0.049) | (theta > 0.451)).any()
    assert int((np.asarray(out["converged"]) < 1).sum()) < 0.1 * unconverged[(50.0, 0.5)]
