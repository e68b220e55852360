import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difhydro.physics import ExpHydro, ParamSpec, day_length, simulate

from helpers import random_forcing

P = np.array([5, 10, 0, 3, 12, 0, 0, 25, 2, 0.0])
T = np.array([-5, -2, -0.5, 0.5, 2, 4, 6, 3, 1, 8.0])
PARAMS = dict(f=0.01, smax=500.0, qmax=20.0, df=2.0, tmax=1.0, tmin=-1.0)
STATE0 = dict(snow_storage=20.0, soil_storage=300.0)

# docs/physics.md §1.6
EULER_SMOOTH_S0 = [25, 34.9995, 34.9995, 35.0062, 33.0063, 27.0063, 17.0063, 13.0063, 13.0063, 0]
EULER_SMOOTH_S1 = [296.958, 293.919, 290.915, 290.950, 301.936, 304.530, 310.951, 336.303, 333.817, 342.082]
EULER_SMOOTH_Q = [2.62560, 2.54701, 2.47165, 2.47252, 2.75962, 2.83215, 3.01995, 3.89138, 3.79582, 4.12286]
EULER_HARD_S0 = [25, 35, 35, 35, 33, 27, 17, 13, 13, 0]
EULER_HARD_S1 = [296.958, 293.918, 290.915, 290.957, 301.942, 304.536, 310.957, 336.309, 333.822, 342.080]
EULER_HARD_Q = [2.62560, 2.54700, 2.47164, 2.47267, 2.75979, 2.83232, 3.02012, 3.89160, 3.79602, 4.12282]
RK4_S1 = [297.000, 294.001, 291.035, 291.067, 301.899, 304.456, 310.779, 335.700, 333.287, 336.593]
RK4_Q = [2.62670, 2.54911, 2.47461, 2.47539, 2.75861, 2.83005, 3.01478, 3.86800, 3.77577, 3.90269]
PET = [0.559510, 0.696273, 0.776821, 0.836227, 0.930826, 1.07001, 1.22718, 1.00927, 0.884659, 1.41646]


def table_forcing():
    return dict(precipitation=P, temperature=T, day_length=day_length(45.0, np.arange(80, 90)))


def run(model, state0=STATE0, params=PARAMS):
    return simulate(model, params, table_forcing(), state0)[1]


def close(got, ref, rel=1e-4, abs_=1e-4):
    np.testing.assert_allclose(np.asarray(got), ref, rtol=rel, atol=abs_)


def test_euler_smooth_table():
    out = run(ExpHydro())
    close(out["snow_storage"], EULER_SMOOTH_S0)
    close(out["soil_storage"], EULER_SMOOTH_S1, abs_=1e-3)
    close(out["streamflow"], EULER_SMOOTH_Q)
    close(out["pet"], PET)


def test_euler_hard_table():
    out = run(ExpHydro(smooth=False))
    close(out["snow_storage"], EULER_HARD_S0)
    close(out["soil_storage"], EULER_HARD_S1, abs_=1e-3)
    close(out["streamflow"], EULER_HARD_Q)


def test_rk4_tables():
    out = run(ExpHydro(solver="rk4"))
    close(out["soil_storage"], RK4_S1, abs_=1e-3)
    close(out["streamflow"], RK4_Q)
    close(out["snow_storage"], EULER_SMOOTH_S0[:-1] + [4.87737])
    out24 = run(ExpHydro(solver="rk4", n_substeps=24))
    close(out24["snow_storage"][-1], 4.78476)
    close(out24["soil_storage"][-1], 336.691, abs_=1e-3)
    close(out24["streamflow"][-1], 3.90649)


def test_bosh3_is_close_to_fine_rk4():
    # adaptive ODE integration (HydroNODE) approaches the converged solution of the ODE
    fine = run(ExpHydro(solver="rk4", n_substeps=96))
    ode = run(ExpHydro(solver="bosh3", rtol=1e-6, atol=1e-6))
    close(ode["soil_storage"], np.asarray(fine["soil_storage"]), abs_=2e-3)
    close(ode["snow_storage"], np.asarray(fine["snow_storage"]), abs_=2e-3)


def test_flux_of_the_update_output_timing():
    out = run(ExpHydro(output_timing="update"))
    close(out["streamflow"][0], 2.70671)
    close(out["streamflow"][1:], EULER_SMOOTH_Q[:-1])


def test_zero_state_pitfall_is_reproduced_and_avoidable():
    zero = dict(snow_storage=0.0, soil_storage=0.0)
    jiang = ExpHydro(limit_outflow=False)  # Jiang et al.'s scheme exactly
    out = run(jiang, state0=zero)
    close(out["soil_storage"][:4], [-0.0673795, -0.112364, -0.145346, 2.82251])
    close(out["streamflow"][-1], 0.234288)
    # default initial state is zeros, same result
    close(simulate(jiang, PARAMS, table_forcing())[1]["streamflow"][-1], 0.234288)
    # shifting the storage steps by 0.5 mm cuts the spurious drain of an empty bucket
    # from H_5(0) = 0.5 to H_5(-0.5) = 0.0067 of its value (the deficit shrinks > 50x)
    shifted = run(ExpHydro(storage_step_offset=0.5, limit_outflow=False), state0=zero)
    assert -0.003 < float(jnp.min(shifted["soil_storage"])) < 0
    # the outflow limiter (default) never lets the bucket go below empty
    limited = run(ExpHydro(), state0=zero)
    assert float(jnp.min(limited["soil_storage"])) > -1e-5
    close(limited["soil_storage"][:3], [0.0, 0.0, 0.0], abs_=1e-5)


@pytest.mark.parametrize("limit", [True, False])
def test_reference_tables_do_not_depend_on_the_limiter(limit):
    out = run(ExpHydro(limit_outflow=limit))
    close(out["streamflow"], EULER_SMOOTH_Q)
    close(run(ExpHydro(solver="rk4", limit_outflow=limit))["streamflow"], RK4_Q)


def test_stiff_corner_gradients_stay_finite_over_10_years():
    # small f with large qmax makes dQb/dS1 ~ 2.5 qmax per mm: an unlimited explicit step
    # oscillates around an empty bucket and its gradient explodes (1e22 after 3 years)
    forcing = random_forcing(10 * 365, 3, seed=9)
    params = dict(f=jnp.array([0.0, 0.0014, 0.005]), smax=jnp.array([100.0, 266.0, 152.0]),
                  qmax=jnp.array([50.0, 44.7, 48.2]), df=jnp.full(3, 3.9), tmax=jnp.full(3, 1.8),
                  tmin=jnp.full(3, -0.4))

    def loss(p, model):
        return jnp.mean(simulate(model, p, forcing, check=False)[1]["streamflow"][365:] ** 2)

    g = jax.grad(loss)(params, ExpHydro())
    for k, v in g.items():
        assert bool(jnp.all(jnp.isfinite(v))) and float(jnp.abs(v).max()) < 1e6, k
    g_jiang = jax.grad(loss)(params, ExpHydro(limit_outflow=False))
    assert max(float(jnp.abs(v).max()) for v in g_jiang.values()) > 1e10  # why the limiter exists


def balance_residuals(out, s0_snow, s0_soil):
    o = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    first = np.ones_like(o["snow_storage"][:1])
    snow = np.concatenate([first * s0_snow, o["snow_storage"]])
    soil = np.concatenate([first * s0_soil, o["soil_storage"]])
    r_snow = np.diff(snow, axis=0) - (o["snowfall"] - o["snowmelt_flux"])
    r_soil = np.diff(soil, axis=0) - (
        o["rainfall"] + o["snowmelt_flux"] - o["evapotranspiration_flux"] - o["baseflow_flux"]
        - o["surface_runoff_flux"]
    )
    return r_snow, r_soil, np.abs(soil).max() + np.abs(snow).max()


@pytest.mark.parametrize(
    "model",
    [ExpHydro(), ExpHydro(smooth=False), ExpHydro(solver="rk4", n_substeps=2), ExpHydro(solver="bosh3")],
    ids=["euler", "euler-hard", "rk4", "bosh3"],
)
def test_water_balance_closes_over_30_years(model):
    forcing = random_forcing(30 * 365, 3, seed=1)
    params = {k: jnp.full((3,), v) for k, v in PARAMS.items()}
    params["smax"] = jnp.array([150.0, 500.0, 1400.0])
    _, out = simulate(model, params, forcing, dict(snow_storage=jnp.zeros(3), soil_storage=jnp.full(3, 100.0)))
    assert out["streamflow"].dtype == jnp.float32
    r_snow, r_soil, scale = balance_residuals(out, 0.0, 100.0)
    # every daily budget closes to float32 round-off of the storages involved ...
    eps = np.finfo(np.float32).eps
    assert np.abs(r_snow).max() < 16 * eps * scale
    assert np.abs(r_soil).max() < 16 * eps * scale
    # ... and the round-off does not accumulate into a drift over 10 950 days
    inputs = np.asarray(forcing["precipitation"], np.float64).sum(0)
    assert np.all(np.abs(r_soil.sum(0) + r_snow.sum(0)) < 1e-6 * inputs.max() + 1e-2)


def test_water_balance_float64_exact(x64):
    forcing = {k: np.asarray(v, np.float64) for k, v in random_forcing(30 * 365, 2, seed=2).items()}
    for model in (ExpHydro(), ExpHydro(solver="rk4")):
        _, out = simulate(model, {k: np.float64(v) for k, v in PARAMS.items()}, forcing)
        r_snow, r_soil, _ = balance_residuals(out, 0.0, 0.0)
        assert np.abs(r_snow.sum(0)).max() < 1e-8 and np.abs(r_soil.sum(0)).max() < 1e-8


def _loss_fn(model, forcing, obs):
    def loss(p):
        out = simulate(model, p, forcing, dict(snow_storage=0.0, soil_storage=200.0), check=False)[1]
        return jnp.mean((out["streamflow"][365:] - obs[365:]) ** 2)

    return loss


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_gradient_matches_finite_differences_10_years(x64, solver):
    model = ExpHydro(solver=solver)
    forcing = {k: np.asarray(v, np.float64) for k, v in random_forcing(10 * 365, seed=3).items()}
    truth = {k: np.float64(v) for k, v in PARAMS.items()}
    obs = simulate(model, truth, forcing)[1]["streamflow"] * 1.1 + 0.05
    loss = jax.jit(_loss_fn(model, forcing, obs))
    p0 = dict(f=0.03, smax=700.0, qmax=30.0, df=3.0, tmax=0.7, tmin=-1.4)
    p0 = {k: np.float64(v) for k, v in p0.items()}
    grads = jax.grad(loss)(p0)
    for k, v in p0.items():
        h = 1e-6 * max(abs(v), 1.0)
        fd = (loss({**p0, k: v + h}) - loss({**p0, k: v - h})) / (2 * h)
        assert float(grads[k]) == pytest.approx(float(fd), rel=1e-4, abs=1e-9), k


_GRAD_CACHE = {}


def _nan_free_grad():
    if "f" not in _GRAD_CACHE:
        model = ExpHydro()
        forcing = {k: jnp.asarray(v) for k, v in random_forcing(3 * 365, 4, seed=5).items()}

        def loss(p, scale, s0):
            f = {k: v * scale for k, v in forcing.items() if k == "precipitation"}
            f = {**forcing, **f}
            out = simulate(model, p, f, s0, check=False)[1]
            return jnp.mean(out["streamflow"] ** 2) + jnp.mean(out["soil_storage"]) * 1e-3

        _GRAD_CACHE["f"] = jax.jit(jax.grad(loss, argnums=(0, 2)))
    return _GRAD_CACHE["f"]


def _box_value(spec: ParamSpec):
    return st.one_of(st.just(spec.low), st.just(spec.high), st.floats(spec.low, spec.high))


def test_no_nan_gradients_at_every_corner_of_the_box():
    specs = ExpHydro.param_spec
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * len(specs))).reshape(len(specs), -1)  # 64 corners
    params = {k: jnp.asarray(s.low + (s.high - s.low) * corners[i], jnp.float32) for i, (k, s) in enumerate(specs.items())}
    model = ExpHydro()
    forcing = {k: jnp.asarray(np.repeat(v, corners.shape[1], axis=1)) for k, v in random_forcing(5 * 365, 1, seed=6).items()}

    def loss(p):
        return jnp.mean(simulate(model, p, forcing, dict(snow_storage=0.0, soil_storage=50.0), check=False)[1]["streamflow"] ** 2)

    for k, g in jax.grad(loss)(params).items():
        assert bool(jnp.all(jnp.isfinite(g))), k


@settings(max_examples=20, deadline=None)
@given(
    values=st.fixed_dictionaries({k: _box_value(s) for k, s in ExpHydro.param_spec.items()}),
    scale=st.floats(0.0, 5.0),
    soil0=st.sampled_from([0.0, 1e-3, 100.0, 1500.0, 3000.0]),
    snow0=st.sampled_from([0.0, 50.0]),
)
def test_no_nan_gradients_anywhere_in_the_boxes(values, scale, soil0, snow0):
    params = {k: jnp.full((4,), v, jnp.float32) for k, v in values.items()}
    s0 = dict(snow_storage=jnp.full((4,), snow0), soil_storage=jnp.full((4,), soil0))
    gp, gs = _nan_free_grad()(params, jnp.float32(scale), s0)
    for k, g in {**gp, **gs}.items():
        assert bool(jnp.all(jnp.isfinite(g))), k


def test_jit_vmap_and_time_varying_parameters_agree():
    model = ExpHydro()
    forcing = random_forcing(400, 5, seed=7)
    rng = np.random.default_rng(0)
    params = {
        k: (s.low + (s.high - s.low) * rng.random(5)).astype(np.float32) for k, s in model.param_spec.items()
    }
    _, plain = simulate(model, params, forcing)
    _, jitted = jax.jit(lambda p, f: simulate(model, p, f))(params, forcing)
    np.testing.assert_allclose(jitted["streamflow"], plain["streamflow"], rtol=1e-5, atol=1e-6)
    # vmap over basins with single-basin calls
    single = lambda p, f: simulate(model, p, f)[1]["streamflow"]  # noqa: E731
    vm = jax.vmap(single, in_axes=(0, 1), out_axes=1)(params, forcing)
    np.testing.assert_allclose(vm, plain["streamflow"], rtol=1e-5, atol=1e-6)
    # the same parameters repeated in time give the same answer
    dynamic = {k: np.broadcast_to(v, (400, 5)) for k, v in params.items()}
    _, dyn = simulate(model, dynamic, forcing)
    np.testing.assert_allclose(dyn["streamflow"], plain["streamflow"], rtol=1e-6, atol=1e-7)
    # and a parameter that changes in time changes the answer from that day on
    smax = np.broadcast_to(params["smax"], (400, 5)).copy()
    smax[200:] = 150.0
    _, changed = simulate(model, {**dynamic, "smax": smax}, forcing)
    np.testing.assert_allclose(changed["streamflow"][:200], plain["streamflow"][:200], rtol=1e-6)
    assert np.abs(np.asarray(changed["streamflow"][200:] - plain["streamflow"][200:])).max() > 1e-2


def test_bad_input_gives_clear_errors():
    model = ExpHydro()
    forcing = table_forcing()
    with pytest.raises(ValueError, match="day_length"):
        simulate(model, PARAMS, {k: v for k, v in forcing.items() if k != "day_length"})
    with pytest.raises(ValueError, match="smax"):
        simulate(model, {k: v for k, v in PARAMS.items() if k != "smax"}, forcing)
    with pytest.raises(ValueError, match="'qmax'.*outside its box"):
        simulate(model, {**PARAMS, "qmax": 80.0}, forcing)
    bad = dict(forcing, precipitation=np.where(np.arange(10) == 3, np.nan, P))
    with pytest.raises(ValueError, match="precipitation.*NaN"):
        simulate(model, PARAMS, bad)
    with pytest.raises(ValueError, match="-999"):
        simulate(model, PARAMS, dict(forcing, temperature=np.where(np.arange(10) == 2, -999.0, T)))
    with pytest.raises(ValueError, match="share one"):
        simulate(model, PARAMS, dict(forcing, temperature=T[:5]))
    with pytest.raises(ValueError, match="'f' has"):
        simulate(model, {**PARAMS, "f": np.full(3, 0.01)}, forcing)
    with pytest.raises(ValueError, match="unknown parameter"):
        simulate(model, {**PARAMS, "beta": 1.0}, forcing)
    with pytest.raises(ValueError, match="solver"):
        ExpHydro(solver="euler2")


def test_empty_bucket_without_rain_has_finite_gradients():
    # regression: the outflow limiter divided 0 by a denormal demand (1e-20 mm/d), and
    # d(0/x)/dx = -0/x² = 0/0 once x² underflows
    forcing = random_forcing(30, 2, seed=1)
    forcing["precipitation"] = np.zeros_like(forcing["precipitation"])
    forcing["temperature"] = np.full_like(forcing["temperature"], 15.0)
    params = dict(f=0.0548, smax=892.0, qmax=29.2, df=2.6, tmax=1.6, tmin=-1.9)
    for model in (ExpHydro(), ExpHydro(solver="rk4")):
        g = jax.grad(lambda p: jnp.mean(simulate(model, p, forcing)[1]["streamflow"] ** 2))(params)
        assert all(np.isfinite(float(v)) for v in g.values()), g
