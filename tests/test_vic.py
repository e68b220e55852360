"""Tests of the simplified VIC-like bucket (docs/physics.md §2)."""

from __future__ import annotations

import itertools
import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from difhydro.physics import VicBucket, simulate
from difhydro.physics.vic import arno_baseflow, vic_runoff

MOISTURE = ("soil_moisture_layer1", "soil_moisture_layer2", "soil_moisture_layer3")
SOIL_PARAMS = {"b_infilt": 0.2, "ds": 0.1, "dsmax": 10.0, "ws": 0.7, "expt": 10.0}
SNOW_PARAMS = {"df": 2.5, "tmax": 1.0, "tmin": -1.0}

# §2.5: forcing and the 10-day reference table (W1, W2, W3, E, R, Qb)
TABLE_P = [0, 20, 35, 5, 0, 0, 60, 10, 0, 0]
TABLE_PET = [3, 2, 1.5, 2.5, 4, 4.5, 1, 2, 3.5, 4]
TABLE = np.array(
    [
        [23.9848, 78.8201, 179.187, 2.05556, 0, 0.952381],
        [40.3835, 78.0277, 178.365, 1.29212, 2.97546, 0.948080],
        [45, 99.9843, 177.538, 1.27122, 7.03894, 0.943731],
        [24.8859, 120.055, 177.912, 2.5, 1.22935, 0.939356],
        [23.5731, 110.257, 184.817, 3.26509, 0, 0.941336],
        [22.2870, 104.811, 187.063, 3.50914, 0, 0.977868],
        [45, 122.943, 188.348, 0.744084, 16.1353, 0.989749],
        [26.1452, 135, 198.200, 2, 3.94969, 0.996552],
        [24.8346, 107.001, 223.371, 2.97940, 0, 1.15925],
        [23.5285, 102.617, 223.076, 3.25940, 0, 2.72520],
    ]
)
TABLE_COLUMNS = (*MOISTURE, "evapotranspiration", "surface_runoff", "baseflow")
TABLE_STATE0 = dict(zip(MOISTURE, (25.0, 80.0, 180.0)))


# ----------------------------------------------------------------------------------------
# Independent reference: plain NumPy loops with the if-statements of VIC-5 runoff()
# ----------------------------------------------------------------------------------------


def np_vic_runoff(p, w, wm, b):
    im = (1 + b) * wm
    i0 = im * (1 - (1 - w / wm) ** (1 / (1 + b)))
    if i0 + p >= im:
        r = p - (wm - w)
    else:
        r = p - (wm - w) + wm * (1 - (i0 + p) / im) ** (1 + b)
    return max(r, 0.0)


def np_arno(x, ds, dsmax, ws, c=2.0):
    q = dsmax * ds / ws * x
    if x > ws:
        q += dsmax * (1 - ds / ws) * ((x - ws) / (1 - ws)) ** c
    return q


def np_simulate(precip, pet, temp, p, w0, snow0=0.0, n_sub=1, snow=False, k=5.0):
    """Reference run of the default soil (§2.5); returns daily W, S0, E, R, Qb."""
    wm = [45.0, 135.0, 270.0]
    wcr, wwp = [0.7 * x for x in wm], [0.3 * x for x in wm]
    root, ksat = [0.5, 0.5, 0.0], 30.0
    w, s0 = list(w0), snow0
    h = lambda x: 0.5 * (1 + math.tanh(k * x))  # noqa: E731
    rows = []
    for t in range(len(precip)):
        liquid = precip[t]
        if snow:
            snowfall = h(p["tmin"] - temp[t]) * precip[t]
            melt = h(temp[t] - p["tmax"]) * h(s0) * min(s0, p["df"] * (temp[t] - p["tmax"]))
            s0 += snowfall - melt
            liquid = precip[t] - snowfall + melt
        dt = 1.0 / n_sub
        e_day = r_day = qb_day = 0.0
        for _ in range(n_sub):
            e = []
            for i in range(3):
                beta = min(max((w[i] - wwp[i]) / (wcr[i] - wwp[i]), 0.0), 1.0)
                e.append(min(pet[t] * dt * root[i] * beta, w[i]))
            r = np_vic_runoff(liquid * dt, w[0] + w[1], wm[0] + wm[1], p["b_infilt"])
            q = [dt * ksat * (max(w[i] - e[i], 0.0) / wm[i]) ** p["expt"] for i in range(2)]
            w[0] += liquid * dt - r - e[0] - q[0]
            if w[0] > wm[0]:
                q[0] += w[0] - wm[0]
                w[0] = wm[0]
            if w[0] < 0:
                q[0] += w[0]
                w[0] = 0.0
            w[1] += q[0] - e[1] - q[1]
            if w[1] > wm[1]:
                w[0] += w[1] - wm[1]
                w[1] = wm[1]
                if w[0] > wm[0]:
                    r += w[0] - wm[0]
                    w[0] = wm[0]
            if w[1] < 0:
                q[1] += w[1]
                w[1] = 0.0
            qb = dt * np_arno(w[2] / wm[2], min(p["ds"], p["ws"]), p["dsmax"], p["ws"])
            w[2] += q[1] - e[2] - qb
            if w[2] < 0:
                qb += w[2]
                w[2] = 0.0
            excess, layer = max(w[2] - wm[2], 0.0), 2
            w[2] -= excess
            while excess > 0:
                layer -= 1
                if layer < 0:
                    r += excess
                    break
                w[layer] += excess
                excess = max(w[layer] - wm[layer], 0.0)
                w[layer] -= excess
            e_day, r_day, qb_day = e_day + sum(e), r_day + r, qb_day + qb
        rows.append([*w, s0, e_day, r_day, qb_day])
    return np.array(rows)


def random_forcing(n_days, n_basins=None, seed=0):
    """Daily P (mm d-1, ~40 % wet days, gamma amounts), seasonal PET and T."""
    rng = np.random.default_rng(seed)
    shape = (n_days,) if n_basins is None else (n_days, n_basins)
    doy = np.arange(n_days).reshape((n_days,) + (1,) * (len(shape) - 1))
    season = np.sin(2 * np.pi * (doy - 100) / 365.25)
    wet = rng.random(shape) < 0.4
    precip = np.where(wet, rng.gamma(0.8, 12.0, shape), 0.0)
    pet = np.clip(2.5 + 2.0 * season + 0.5 * rng.standard_normal(shape), 0.0, None)
    temp = 8.0 + 12.0 * season + 3.0 * rng.standard_normal(shape)
    return {"precipitation": precip, "pet": pet, "temperature": temp}


def cast(tree, dtype):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), tree)


def params_for(model, batch=()):
    values = {**SOIL_PARAMS, **(SNOW_PARAMS if model.snow else {})}
    return {k: jnp.full(batch, values[k], jnp.float32) for k in model.param_spec}


# ----------------------------------------------------------------------------------------
# Reference numbers
# ----------------------------------------------------------------------------------------


def test_unit_checks_runoff_and_baseflow():
    np.testing.assert_allclose(vic_runoff(30.0, 105.0, 180.0, 0.2), 4.88616, rtol=1e-5)
    np.testing.assert_allclose(vic_runoff(100.0, 105.0, 180.0, 0.2), 26.5636, rtol=1e-5)
    x = jnp.array([0.2, 0.5, 0.7, 0.85, 1.0])
    np.testing.assert_allclose(
        arno_baseflow(x, 0.1, 10.0, 0.7, 2.0), [0.285714, 0.714286, 1.0, 3.35714, 10.0], rtol=1e-5
    )
    # no rain, no runoff; a full top layer sheds all of P
    assert float(vic_runoff(0.0, 105.0, 180.0, 0.2)) == 0.0
    np.testing.assert_allclose(vic_runoff(5.0, 180.0, 180.0, 0.2), 5.0, rtol=1e-6)


def _table_run(dtype):
    model = VicBucket()
    forcing = cast({"precipitation": TABLE_P, "pet": TABLE_PET}, dtype)
    _, out = simulate(model, cast(SOIL_PARAMS, dtype), forcing, cast(TABLE_STATE0, dtype))
    return np.stack([np.asarray(out[k]) for k in TABLE_COLUMNS], axis=1)


def test_ten_day_table_float32():
    got = _table_run(jnp.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, TABLE, rtol=1e-4, atol=1e-4)


def test_ten_day_table_float64():
    with jax.enable_x64(True):
        got = _table_run(jnp.float64)
    assert got.dtype == np.float64
    # the table is printed to 6 significant digits: 5e-6 relative is its own rounding
    np.testing.assert_allclose(got, TABLE, rtol=5e-6, atol=1e-9)
    ref = np_simulate(TABLE_P, TABLE_PET, None, SOIL_PARAMS, (25.0, 80.0, 180.0))
    np.testing.assert_allclose(got, ref[:, [0, 1, 2, 4, 5, 6]], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_substeps,snow", [(4, False), (1, True), (3, True)])
def test_matches_numpy_reference_float64(n_substeps, snow):
    """One year of random forcing, sub-steps and snow, against the plain-loop reference."""
    f = random_forcing(365, seed=3)
    # a slow baseflow (small Dsmax) lets layer 3 fill up and overflow
    params = {**SOIL_PARAMS, **SNOW_PARAMS, "dsmax": 0.5}
    ref = np_simulate(
        f["precipitation"], f["pet"], f["temperature"], params, (30.0, 100.0, 250.0),
        snow0=40.0, n_sub=n_substeps, snow=snow,
    )
    model = VicBucket(n_substeps=n_substeps, snow=snow)
    state0 = {**dict(zip(MOISTURE, (30.0, 100.0, 250.0))), **({"snow_storage": 40.0} if snow else {})}
    with jax.enable_x64(True):
        forcing = cast({k: f[k] for k in model.forcing_names}, jnp.float64)
        _, out = simulate(
            model, cast({k: params[k] for k in model.param_spec}, jnp.float64), forcing,
            cast(state0, jnp.float64),
        )
        cols = [*MOISTURE, "evapotranspiration", "surface_runoff", "baseflow"]
        got = np.stack([np.asarray(out[k]) for k in cols], axis=1)
        if snow:
            np.testing.assert_allclose(out["snow_storage"], ref[:, 3], rtol=1e-9, atol=1e-9)
        upward = np.asarray(out["upward_flow_layer3"])
    np.testing.assert_allclose(got, ref[:, [0, 1, 2, 4, 5, 6]], rtol=1e-9, atol=1e-9)
    # the layer-3 overflow path (pushed up to layer 2, 1, then R) must have been exercised
    assert upward.max() > 0.0


# ----------------------------------------------------------------------------------------
# Mass balance
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [{}, {"n_substeps": 4}, {"snow": True}, {"snow": True, "n_substeps": 2}]
)
def test_mass_balance_30_years_float32(config):
    model = VicBucket(**config)
    n_days = 30 * 365
    f = random_forcing(n_days, n_basins=4, seed=1)
    forcing = cast({k: f[k] for k in model.forcing_names}, jnp.float32)
    params = params_for(model, (4,))
    # a wet, fast basin makes layer 3 overflow and drive the push-up path
    params["dsmax"] = jnp.array([10.0, 0.1, 30.0, 2.0], jnp.float32)
    state0 = model.initial_state(params)
    _, out = simulate(model, params, forcing, state0)
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    s0 = {k: np.asarray(v, np.float64) for k, v in state0.items()}

    def storage_change(name):
        series = out[name]
        return np.diff(np.concatenate([s0[name][None], series]), axis=0)

    d1, d2, d3 = (storage_change(k) for k in MOISTURE)
    inflow = out["liquid_water_input"]
    layer_residuals = [
        d1 - (out["infiltration"] - out["evaporation_layer1"] - out["drainage_layer1"]
              + out["upward_flow_layer2"]),
        d2 - (out["drainage_layer1"] - out["evaporation_layer2"] - out["drainage_layer2"]
              - out["upward_flow_layer2"] + out["upward_flow_layer3"]),
        d3 - (out["drainage_layer2"] - out["evaporation_layer3"] - out["baseflow"]
              - out["upward_flow_layer3"]),
        inflow - out["infiltration"] - out["surface_runoff"],
    ]
    total_storage = d1 + d2 + d3
    if model.snow:
        total_storage = total_storage + storage_change("snow_storage")
        layer_residuals.append(storage_change("snow_storage") - (out["snowfall"] - out["snowmelt"]))
        layer_residuals.append(inflow - out["rainfall"] - out["snowmelt"])
    precip = np.asarray(forcing["precipitation"], np.float64)
    total_residual = total_storage - (precip - out["evapotranspiration"] - out["streamflow"])
    # Every day closes to a few ulp of the storages (ulp of 270 mm in float32: 3e-5 mm).
    # Over 30 years the ~1e5 unbiased roundings of the state additions random-walk to
    # ~sqrt(1e5) * 1e-5 mm = 3e-3 mm (measured up to 3.4e-3), i.e. < 1e-7 of the ~4e4 mm
    # of precipitation per basin. A biased update (e.g. a full layer losing sub-ulp
    # inflows, fl(270 + 1e-6) - 270 = 0) drifts linearly in time, to 5e-2 mm here.
    for r in layer_residuals + [total_residual]:
        assert np.max(np.abs(r)) < 2e-4
    cumulated = np.abs(total_residual.sum(axis=0))
    throughput = precip.sum(axis=0)
    assert np.all(throughput > 4e4)
    assert np.all(cumulated < 1e-2), cumulated
    assert out["upward_flow_layer3"].max() > 0.0 and out["upward_flow_layer2"].max() > 0.0
    # states stay inside [Wr, Wm]
    for name, wm in zip(MOISTURE, (45.0, 135.0, 270.0)):
        assert out[name].min() >= 0.0 and out[name].max() <= wm * (1 + 1e-6)


# ----------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------


def _loss_fn(model, forcing, state0):
    def loss(params):
        _, out = simulate(model, params, forcing, state0, check=False)
        q, e = out["streamflow"], out["evapotranspiration"]
        return jnp.mean(q**2) + jnp.mean(jnp.sqrt(q + 1.0)) + jnp.mean(e)

    return loss


@pytest.mark.parametrize("snow", [False, True])
def test_gradient_matches_finite_differences_10_years(snow):
    model = VicBucket(snow=snow, n_substeps=2 if snow else 1)
    f = random_forcing(3650, seed=5)
    with jax.enable_x64(True):
        forcing = cast({k: f[k] for k in model.forcing_names}, jnp.float64)
        params = cast({**{k: v for k, v in SOIL_PARAMS.items()}, **(SNOW_PARAMS if snow else {})}, jnp.float64)
        params = {**params, "ds": jnp.float64(0.3), "expt": jnp.float64(6.0)}
        state0 = cast(model.initial_state(params), jnp.float64)
        loss = jax.jit(_loss_fn(model, forcing, state0))
        grad = jax.jit(jax.grad(_loss_fn(model, forcing, state0)))(params)
        for name, value in params.items():
            h = 1e-6 * max(abs(float(value)), 1.0)
            up = loss({**params, name: value + h})
            down = loss({**params, name: value - h})
            fd = float(up - down) / (2 * h)
            g = float(grad[name])
            assert np.isfinite(g)
            assert abs(g - fd) <= 1e-5 * max(abs(fd), 1e-3), (name, g, fd)


def _grad_over_corners(model, n_days=120):
    """Gradients at every corner of the parameter box, from full and from empty soil."""
    spec = model.param_spec
    corners = list(itertools.product(*[(s.low, s.high) for s in spec.values()]))
    params = {k: jnp.array([c[i] for c in corners], jnp.float32) for i, k in enumerate(spec)}
    f = random_forcing(n_days, n_basins=len(corners), seed=7)
    forcing = cast({k: f[k] for k in model.forcing_names}, jnp.float32)
    return params, forcing


def test_no_nan_gradients_at_box_corners():
    """All 2^8 corners of the box (snow on), starting from full and from empty layers."""
    stiff = VicBucket(snow=True)
    params, forcing = _grad_over_corners(stiff)
    model = VicBucket(snow=True, n_substeps=stiff.stable_substeps(params))
    soil = model.soil()
    n = params["b_infilt"].shape[0]
    # W == Wm and W == Wr are the points where the fractional powers have kinks:
    # the first half of the batch starts full, the second half empty
    params = {k: jnp.concatenate([v, v]) for k, v in params.items()}
    forcing = {k: jnp.concatenate([v, v], axis=1) for k, v in forcing.items()}
    state0 = {
        k: jnp.concatenate([jnp.full((n,), full, jnp.float32), jnp.full((n,), empty, jnp.float32)])
        for k, full, empty in zip(MOISTURE, soil.capacity, soil.residual)
    }
    state0["snow_storage"] = jnp.zeros((2 * n,), jnp.float32)
    grads = jax.jit(jax.grad(lambda p: _loss_fn(model, forcing, state0)(p) * n))(params)
    for name, g in grads.items():
        assert np.all(np.isfinite(g)), name
    # every parameter influences the loss somewhere in the box
    for name in ("b_infilt", "dsmax", "ws", "expt", "df"):
        assert np.any(np.asarray(grads[name]) != 0.0), name


def test_stiff_corner_needs_substeps_for_bounded_gradients():
    """Daily explicit steps at a steep ARNO curve oscillate; stable_substeps cures it."""
    params = {"b_infilt": 0.2, "ds": 0.001, "dsmax": 30.0, "ws": 0.99, "expt": 10.0}
    daily = VicBucket()
    n = daily.stable_substeps(params)
    # slope of Qb at a full layer: 30 * 2 / 0.01 / 270 = 22.2 per day
    assert n == 23
    f = random_forcing(60, seed=4)
    forcing = cast({k: f[k] for k in daily.forcing_names}, jnp.float32)
    state0 = dict(zip(MOISTURE, (jnp.float32(40.0), jnp.float32(130.0), jnp.float32(270.0))))
    sizes = []
    for model in (daily, VicBucket(n_substeps=n)):
        g = jax.jit(jax.grad(_loss_fn(model, forcing, state0)))(cast(params, jnp.float32))
        sizes.append(float(jnp.abs(g["ws"])))
    # daily: |1 - 22| per day amplifies the tangent (measured ~6e10 after 60 days)
    assert sizes[0] > 1e6 and sizes[1] < 1e3, sizes


# enough sub-steps for the steepest corner of the box (see stable_substeps)
_HYP_MODEL = VicBucket(snow=True, n_substeps=23)


@pytest.fixture(scope="module")
def hyp_grad():
    def loss(params, forcing, state0):
        return _loss_fn(_HYP_MODEL, forcing, state0)(params)

    return jax.jit(jax.grad(loss, argnums=(0, 2)))


def _box_value(spec):
    return st.one_of(st.sampled_from([spec.low, spec.high]), st.floats(spec.low, spec.high))


@settings(max_examples=15, deadline=None)
@given(
    values=st.fixed_dictionaries({k: _box_value(s) for k, s in _HYP_MODEL.param_spec.items()}),
    fill=st.tuples(*[st.sampled_from([0.0, 0.3, 1.0])] * 3),
    seed=st.integers(0, 1000),
)
def test_no_nan_gradients_hypothesis(hyp_grad, values, fill, seed):
    params = {k: jnp.float32(v) for k, v in values.items()}
    f = random_forcing(365, seed=seed)
    forcing = cast({k: f[k] for k in _HYP_MODEL.forcing_names}, jnp.float32)
    cap = _HYP_MODEL.soil().capacity
    state0 = {k: jnp.float32(u * c) for k, u, c in zip(MOISTURE, fill, cap)}
    state0["snow_storage"] = jnp.float32(seed % 50)
    g_params, g_state = hyp_grad(params, forcing, state0)
    for g in jax.tree.leaves((g_params, g_state)):
        assert np.all(np.isfinite(np.asarray(g)))


# ----------------------------------------------------------------------------------------
# jit, vmap, time-varying parameters, per-basin soils
# ----------------------------------------------------------------------------------------


def test_jit_vmap_and_time_varying_params_agree():
    model = VicBucket(n_substeps=2)
    n_basins, n_days = 3, 300
    f = random_forcing(n_days, n_basins=n_basins, seed=11)
    forcing = cast({k: f[k] for k in model.forcing_names}, jnp.float32)
    params = {
        "b_infilt": jnp.array([0.05, 0.3, 0.9]),
        "ds": jnp.array([0.05, 0.5, 0.9]),
        "dsmax": jnp.array([2.0, 10.0, 25.0]),
        "ws": jnp.array([0.5, 0.7, 0.9]),
        "expt": jnp.array([4.0, 10.0, 20.0]),
    }
    _, plain = simulate(model, params, forcing)
    run = jax.jit(lambda p, x: simulate(model, p, x)[1])
    jitted = run(params, forcing)
    vmapped = jax.vmap(lambda p, x: simulate(model, p, x)[1], in_axes=(0, 1), out_axes=1)(
        params, forcing
    )
    dynamic = {k: jnp.broadcast_to(v, (n_days, n_basins)) for k, v in params.items()}
    timevar = run(dynamic, forcing)
    for i in range(n_basins):
        single = run({k: v[i] for k, v in params.items()}, {k: v[:, i] for k, v in forcing.items()})
        np.testing.assert_allclose(single["streamflow"], plain["streamflow"][:, i], rtol=1e-5, atol=1e-6)
    for other in (jitted, vmapped, timevar):
        for k in ("streamflow", "evapotranspiration", *MOISTURE):
            np.testing.assert_allclose(other[k], plain[k], rtol=1e-5, atol=1e-5)
    assert float(jnp.std(plain["streamflow"][:, 2] - plain["streamflow"][:, 0])) > 0.1

    # a parameter that changes in time changes the result from that day on only
    step_change = dict(dynamic, dsmax=dynamic["dsmax"].at[200:].set(0.5))
    changed = run(step_change, forcing)
    np.testing.assert_allclose(changed["baseflow"][:200], plain["baseflow"][:200], rtol=1e-5)
    assert float(jnp.abs(changed["baseflow"][200:] - plain["baseflow"][200:]).max()) > 0.1


def test_per_basin_soil_arrays_match_single_basin_models():
    depth = np.array([[100.0, 300.0, 600.0], [50.0, 400.0, 1000.0]])
    porosity = np.array([[0.45, 0.45, 0.45], [0.35, 0.4, 0.3]])
    batched = VicBucket(layer_depth=depth, porosity=porosity, ksat=(30.0, np.array([30.0, 5.0]), 0.0))
    f = random_forcing(365, n_basins=2, seed=2)
    forcing = cast({k: f[k] for k in batched.forcing_names}, jnp.float32)
    params = params_for(batched, (2,))
    final, out = simulate(batched, params, forcing)
    np.testing.assert_allclose(final["soil_moisture_layer3"], out["soil_moisture_layer3"][-1])
    # default initial state: half of Wm per basin
    init = batched.initial_state(params)
    np.testing.assert_allclose(init["soil_moisture_layer3"], [135.0, 150.0])
    for i in range(2):
        single = VicBucket(layer_depth=tuple(depth[i]), porosity=tuple(porosity[i]), ksat=(30.0, [30.0, 5.0][i], 0.0))
        _, ref = simulate(single, params_for(single), {k: v[:, i] for k, v in forcing.items()})
        for k in ("streamflow", *MOISTURE):
            np.testing.assert_allclose(out[k][:, i], ref[k], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------
# Ds <= Ws safeguard and configuration
# ----------------------------------------------------------------------------------------


def test_ds_safeguard_keeps_baseflow_monotone():
    x = jnp.linspace(0.0, 1.0, 201)
    zeros = jnp.zeros_like(x)
    state = {"soil_moisture_layer1": zeros, "soil_moisture_layer2": zeros,
             "soil_moisture_layer3": x * 270.0}
    params = {"b_infilt": 0.2, "ds": 0.9, "dsmax": 10.0, "ws": 0.2, "expt": 10.0}
    for mode in ("clip", "fraction"):
        model = VicBucket(ds_mode=mode)
        qb = model.step(state, {"precipitation": zeros, "pet": zeros}, params)[1]["baseflow"]
        qb = np.asarray(qb)
        assert np.all(np.diff(qb) >= -1e-6), mode
        np.testing.assert_allclose(qb[-1], 10.0, rtol=1e-5)
        ds_eff = 0.2 if mode == "clip" else 0.2 * 0.9
        np.testing.assert_allclose(qb[20], 10.0 * ds_eff / 0.2 * 0.1, rtol=1e-5)
    # the raw formula with Ds > Ws is not monotone: that is what the safeguard prevents
    raw = np.asarray(arno_baseflow(x, 0.9, 10.0, 0.2))
    assert np.any(np.diff(raw) < 0)


def test_default_initial_state_is_half_full():
    model = VicBucket(snow=True)
    state = model.initial_state(model.default_params((5,)))
    np.testing.assert_allclose(state["soil_moisture_layer1"], np.full(5, 22.5))
    np.testing.assert_allclose(state["soil_moisture_layer3"], np.full(5, 135.0))
    np.testing.assert_allclose(state["snow_storage"], np.zeros(5))
    assert state["soil_moisture_layer2"].dtype == jnp.float32


def test_bad_input_raises_value_error():
    model = VicBucket()
    f = random_forcing(10, seed=0)
    params = params_for(model)
    with pytest.raises(ValueError, match="pet"):
        simulate(model, params, {"precipitation": f["precipitation"]})
    with pytest.raises(ValueError, match="temperature"):
        simulate(VicBucket(snow=True), params_for(VicBucket(snow=True)),
                 {"precipitation": f["precipitation"], "pet": f["pet"]})
    forcing = {"precipitation": f["precipitation"], "pet": f["pet"]}
    with pytest.raises(ValueError, match="expt"):
        simulate(model, {**params, "expt": 2.0}, forcing)
    with pytest.raises(ValueError, match="ws"):
        simulate(model, {**params, "ws": 1.0}, forcing)
    with pytest.raises(ValueError, match="root_fraction"):
        VicBucket(root_fraction=(0.5, 0.2, 0.0))
    with pytest.raises(ValueError, match="n_substeps"):
        VicBucket(n_substeps=0)
    with pytest.raises(ValueError, match="ds_mode"):
        VicBucket(ds_mode="scale")
    with pytest.raises(ValueError, match="porosity"):
        VicBucket(porosity=(0.4, 1.2, 0.4))
    with pytest.raises(ValueError, match="per-layer"):
        VicBucket(layer_depth=(100.0, 300.0))
    with pytest.raises(ValueError, match="wilting"):
        VicBucket(wilting_fraction=0.8)
