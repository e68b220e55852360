"""HBV (dHBV 1.0) and unit-hydrograph routing: reference numbers of docs/physics.md §4,
mass balance, an independent NumPy step, gradients against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difhydro.physics import HBV, simulate
from difhydro.physics import warm_up
from difhydro.physics.hbv import hbv_streamflow
from difhydro.physics.routing import gamma_uh_weights, maxbas_weights, route, route_streamflow

STATES = ("snowpack", "meltwater", "soil_moisture", "upper_zone", "lower_zone")

# §4.4 test case
P = [0, 12, 8, 0, 2, 30, 5, 0, 0, 1]
T = [-4, -1, 0.5, 3, 6, 8, 2, -2, 4, 10]
PET = [0.5, 0.8, 1, 1.5, 2, 2.5, 1.2, 0.6, 1.8, 3]
PARAMS = dict(beta=2.0, fc=200.0, k0=0.3, k1=0.1, k2=0.02, lp=0.7, perc=2.0, uzl=20.0,
              tt=0.0, cfmax=3.0, cfr=0.05, cwh=0.1)
STATE0 = dict(zip(STATES, [10.0, 0.5, 120.0, 10.0, 30.0]))
TABLE = {  # day 1..10
    "snowpack": [10.5, 22.5, 21, 12, 0, 0, 0, 0, 0, 0],
    "meltwater": [0, 0, 1.5, 1.2, 0, 0, 0, 0, 0, 0],
    "soil_moisture": [119.571, 118.888, 123.175, 127.566, 134.631, 148.537, 149.579, 148.979,
                      147.179, 144.637],
    "upper_zone": [7.2, 4.68, 4.95619, 5.83534, 9.01720, 18.3851, 17.2287, 13.7059, 10.5353,
                   8.16914],
    "lower_zone": [31.36, 32.6928, 33.9989, 35.2790, 36.5334, 37.7627, 38.9675, 40.1481,
                   41.3052, 42.4390],
    "quickflow": [0, 0, 0, 0, 0, 0.183404, 0, 0, 0, 0],
    "interflow": [0.8, 0.52, 0.550688, 0.648371, 1.00191, 2.04279, 1.91431, 1.52287, 1.17059,
                  0.907683],
    "baseflow": [0.64, 0.6672, 0.693856, 0.719979, 0.745579, 0.770668, 0.795254, 0.819349,
                 0.842962, 0.866103],
    "streamflow": [1.44, 1.1872, 1.24454, 1.36835, 1.74749, 2.99687, 2.70956, 2.34222, 2.01355,
                   1.77379],
    "evapotranspiration": [0.428571, 0.683265, 0.886152, 1.38158, 1.95118, 2.5, 1.2, 0.6, 1.8,
                           3],
}
ROUTED_L15 = [0.199931, 0.423913, 0.622346, 0.801976, 1.00316, 1.36041, 1.69457, 1.91196,
              2.00775, 2.01129]
GAMMA_W = [0.138841, 0.179917, 0.163857, 0.134408, 0.104759, 0.0792072, 0.0586918, 0.0428695,
           0.0309774, 0.0221978, 0.0158005, 0.0111856, 0.00788259, 0.00553357, 0.00387176]


def table_forcing(dtype=jnp.float32):
    return {"precipitation": jnp.asarray(P, dtype), "temperature": jnp.asarray(T, dtype),
            "pet": jnp.asarray(PET, dtype)}


def random_forcing(n_days, n_basins, seed, dtype=np.float64):
    """Daily P (wet days ~ exponential), seasonal T and PET, ``[time, basin]``."""
    rng = np.random.default_rng(seed)
    doy = np.arange(n_days)[:, None]
    season = np.sin(2 * np.pi * (doy - 100) / 365.25)
    p = rng.exponential(8.0, (n_days, n_basins)) * (rng.random((n_days, n_basins)) < 0.35)
    t = 6.0 + 12.0 * season + rng.normal(0, 4, (n_days, n_basins))
    pet = np.clip(2.0 + 2.0 * season + rng.normal(0, 0.5, (n_days, n_basins)), 0, None)
    return {k: jnp.asarray(v, dtype) for k, v in
            (("precipitation", p), ("temperature", t), ("pet", pet))}


def random_params(model, batch, seed, dtype=np.float64, margin=0.05):
    rng = np.random.default_rng(seed)
    out = {}
    for k, s in model.param_spec.items():
        u = rng.uniform(margin, 1 - margin, batch + model.param_event_shape(k))
        out[k] = jnp.asarray(s.low + (s.high - s.low) * u, dtype)
    return out


def total_storage(states, model):
    """Sum of the five storages, averaged over components (mm)."""
    s = sum(states[k] for k in STATES)
    return s.mean(-1) if model.n_components > 1 else s


# ---------------------------------------------------------------------------------------
# §4.4 reference numbers (float32)
# ---------------------------------------------------------------------------------------


def test_reference_table_float32():
    _, out = simulate(HBV(), PARAMS, table_forcing(), STATE0)
    for k, ref in TABLE.items():
        assert out[k].dtype == jnp.float32
        np.testing.assert_allclose(out[k], ref, rtol=1e-4, atol=1e-5, err_msg=k)


def test_default_model_is_dhbv_1():
    m = HBV()
    assert (m.n_components, m.smooth, m.use_betaet) == (1, False, False)
    assert list(m.param_spec) == ["beta", "fc", "k0", "k1", "k2", "lp", "perc", "uzl", "tt",
                                  "cfmax", "cfr", "cwh"]
    assert list(HBV(use_betaet=True).param_spec)[-1] == "betaet"
    assert (m.param_spec["fc"].low, m.param_spec["fc"].high) == (50.0, 1000.0)
    assert (m.param_spec["k2"].low, m.param_spec["k2"].high) == (0.001, 0.2)


def test_betaet_two():
    params = {**PARAMS, "betaet": 2.0}
    _, out = simulate(HBV(use_betaet=True), params, table_forcing(), STATE0)
    q = [1.44, 1.1872, 1.24531, 1.37048, 1.75272, 3.04029, 2.71798, 2.34981, 2.02037, 1.78012]
    et = [0.367347, 0.584162, 0.7872, 1.2772, 1.91215, 2.5, 1.2, 0.6, 1.8, 3]
    np.testing.assert_allclose(out["streamflow"], q, rtol=1e-4)
    np.testing.assert_allclose(out["evapotranspiration"], et, rtol=1e-4)


def test_cold_start():
    _, out = simulate(HBV(), PARAMS, table_forcing())
    np.testing.assert_allclose(out["soil_moisture"][-1], 53.1861, rtol=1e-4)
    np.testing.assert_allclose(out["streamflow"][0], 4e-5, rtol=1e-4)
    np.testing.assert_allclose(out["streamflow"][-1], 0.0145526, rtol=1e-4)


def test_gamma_weights_and_routed_series():
    np.testing.assert_allclose(gamma_uh_weights(1.5, 2.0, 15), GAMMA_W, rtol=1e-5)
    q = jnp.asarray(TABLE["streamflow"], jnp.float32)
    np.testing.assert_allclose(route(q, gamma_uh_weights(1.5, 2.0, 15)), ROUTED_L15, rtol=1e-4)
    routed10 = route(q, gamma_uh_weights(1.5, 2.0, 10))  # the dHBV code: min(15, 10 days)
    np.testing.assert_allclose(routed10[0], 0.209193, rtol=1e-4)
    np.testing.assert_allclose(routed10[-1], 2.10446, rtol=1e-4)


def test_maxbas_weights():
    np.testing.assert_allclose(maxbas_weights(3.5, 7),
                               [0.163265, 0.469388, 0.326531, 0.0408163, 0, 0, 0],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(maxbas_weights(2.0, 2), [0.5, 0.5], rtol=1e-6)
    w = maxbas_weights(jnp.array([1.0, 2.7, 7.0]), 7)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert w.shape == (3, 7)
    with pytest.raises(ValueError, match="maxbas"):
        maxbas_weights(3.5, 3)


def test_route_matches_numpy_convolution_per_basin():
    rng = np.random.default_rng(3)
    q = rng.exponential(2.0, (60, 3))
    a, b = np.array([0.2, 1.5, 2.9]), np.array([0.0, 2.0, 6.5])
    with jax.enable_x64(True):
        w = np.asarray(gamma_uh_weights(a, b, 15))
        routed = np.asarray(route(jnp.asarray(q), jnp.asarray(w)))
        via_keys = route_streamflow(jnp.asarray(q), {"uh_shape": a, "uh_scale": b})
    for i in range(3):
        np.testing.assert_allclose(routed[:, i], np.convolve(q[:, i], w[i])[:60], rtol=1e-12)
    np.testing.assert_allclose(via_keys, routed, rtol=1e-12)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="routing_params"):
        route_streamflow(jnp.asarray(q), {"a": a})


def test_hbv_streamflow_routes_the_component_mean():
    forcing = table_forcing()
    q = hbv_streamflow(HBV(), PARAMS, forcing, {"uh_shape": 1.5, "uh_scale": 2.0},
                       STATE0, length=15)
    np.testing.assert_allclose(q, ROUTED_L15, rtol=1e-4)
    np.testing.assert_allclose(hbv_streamflow(HBV(), PARAMS, forcing, None, STATE0),
                               TABLE["streamflow"], rtol=1e-4)


# ---------------------------------------------------------------------------------------
# Independent NumPy implementation (plain loops and ifs), many components, BETAET
# ---------------------------------------------------------------------------------------


def numpy_hbv(p, forcing, params, n_comp, fluxes=None):
    """dHBV 1.0 step written with scalar ifs; params [n_comp] for one basin. With ``c``
    (HBV 1.1p capillary rise) or ``exchange`` (δHBV 2.0) in ``params`` those fluxes run
    too; ``fluxes`` (a dict) collects their daily component means."""
    states = np.full((n_comp, 5), 0.001)
    q_mean, et_mean = [], []
    daily = {"capillary_rise": [], "groundwater_exchange": []}
    for day in range(len(p)):
        qs, ets, rises, losses = [], [], [], []
        for c in range(n_comp):
            sp, mw, sm, suz, slz = states[c]
            g = {k: v[c] for k, v in params.items()}
            rain = p[day] if forcing["T"][day] >= g["tt"] else 0.0
            snow = p[day] - rain
            sp += snow
            melt = min(max(g["cfmax"] * (forcing["T"][day] - g["tt"]), 0.0), sp)
            mw += melt
            sp -= melt
            refr = min(max(g["cfr"] * g["cfmax"] * (g["tt"] - forcing["T"][day]), 0.0), mw)
            sp += refr
            mw -= refr
            tosoil = max(mw - g["cwh"] * sp, 0.0)
            mw -= tosoil
            sw = min(max((sm / g["fc"]) ** g["beta"], 0.0), 1.0)
            rech = (rain + tosoil) * sw
            sm += rain + tosoil - rech
            exc = max(sm - g["fc"], 0.0)
            sm -= exc
            ef = min(max((sm / (g["lp"] * g["fc"])) ** g["betaet"], 0.0), 1.0)
            et = min(sm, forcing["PET"][day] * ef)
            sm = max(sm - et, 1e-5)
            rise = 0.0
            if "c" in g:  # HBV 1.1p: from yesterday's lower zone, times the soil deficit
                rise = g["c"] * slz * (1.0 - min(sm / g["fc"], 1.0))
                sm += rise
                slz -= rise
            suz += rech + exc
            perc = min(suz, g["perc"])
            suz -= perc
            q0 = g["k0"] * max(suz - g["uzl"], 0.0)
            suz -= q0
            q1 = g["k1"] * suz
            suz -= q1
            slz += perc
            lost = 0.0
            if "exchange" in g:  # δHBV 2.0: leaves (or enters) before baseflow, at most SLZ
                lost = min(g["exchange"], slz)
                slz -= lost
            q2 = g["k2"] * slz
            slz -= q2
            states[c] = sp, mw, sm, suz, slz
            qs.append(q0 + q1 + q2)
            ets.append(et)
            rises.append(rise)
            losses.append(lost)
        q_mean.append(np.mean(qs))
        et_mean.append(np.mean(ets))
        daily["capillary_rise"].append(np.mean(rises))
        daily["groundwater_exchange"].append(np.mean(losses))
    if fluxes is not None:
        fluxes.update({k: np.array(v) for k, v in daily.items()})
    return np.array(q_mean), np.array(et_mean), states


def test_components_and_betaet_match_numpy_reference():
    model = HBV(n_components=4, use_betaet=True)
    with jax.enable_x64(True):
        forcing = random_forcing(400, 1, seed=11)
        params = random_params(model, (1,), seed=12)
        _, out = simulate(model, params, forcing)
    f_np = {"T": np.asarray(forcing["temperature"][:, 0]), "PET": np.asarray(forcing["pet"][:, 0])}
    q, et, states = numpy_hbv(np.asarray(forcing["precipitation"][:, 0]), f_np,
                              {k: np.asarray(v[0]) for k, v in params.items()}, 4)
    np.testing.assert_allclose(out["streamflow"][:, 0], q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["evapotranspiration"][:, 0], et, rtol=1e-10, atol=1e-12)
    assert out["soil_moisture"].shape == (400, 1, 4)
    np.testing.assert_allclose(out["lower_zone"][-1, 0], states[:, 4], rtol=1e-10)


def test_identical_components_equal_one_component():
    forcing = table_forcing()
    many = {k: jnp.full((3,), v) for k, v in PARAMS.items()}
    state = {k: jnp.full((3,), v) for k, v in STATE0.items()}
    _, out3 = simulate(HBV(n_components=3), many, forcing, state)
    _, out1 = simulate(HBV(), PARAMS, forcing, STATE0)
    for k in HBV.output_names:
        np.testing.assert_allclose(out3[k], out1[k], rtol=1e-6, atol=1e-7, err_msg=k)


# ---------------------------------------------------------------------------------------
# Mass balance over 30 years
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [HBV(), HBV(smooth=True, use_betaet=True), HBV(n_components=16)],
                         ids=["hard", "smooth", "16-components"])
def test_mass_balance_30_years(model):
    n_days = 30 * 365
    with jax.enable_x64(True):
        forcing = random_forcing(n_days, 3, seed=1)
        params = random_params(model, (3,), seed=2, margin=0.0)
        # basin 0 arid: the soil dries out and the 1e-5 mm floor must be counted
        forcing["precipitation"] = forcing["precipitation"] * jnp.array([0.02, 1.0, 1.0])
        forcing["pet"] = forcing["pet"] * jnp.array([3.0, 1.0, 1.0])
        if model.use_betaet:
            params["betaet"] = params["betaet"].at[0].set(0.3)
        state0 = model.initial_state(params)
        _, out = jax.jit(lambda p, f: simulate(model, p, f, check=False))(params, forcing)
        s = np.concatenate([np.asarray(total_storage(state0, model))[None],
                            np.asarray(total_storage(out, model))])
        inflow = np.asarray(forcing["precipitation"] + out["soil_floor_gain"])
        outflow = np.asarray(out["evapotranspiration"] + out["streamflow"])
    daily = np.diff(s, axis=0) - (inflow - outflow)
    assert np.abs(daily).max() < 1e-10
    cumulative = s[-1] - s[0] - (inflow - outflow).sum(0)
    assert np.abs(cumulative).max() < 1e-8 * inflow.sum(0).max()
    assert float(np.asarray(out["soil_floor_gain"]).min()) >= 0.0
    if model.use_betaet:
        assert float(np.asarray(out["soil_floor_gain"]).max()) > 0.0
    for k in STATES:
        assert float(np.asarray(out[k]).min()) >= 0.0, k
    assert float(np.asarray(out["streamflow"]).mean()) > 0.1  # water actually moves


def test_soil_floor_gain_on_a_dry_soil():
    # BETAET = 0.3 and PET >> SM: ET takes all the soil water, the floor puts 1e-5 mm back
    params = {**PARAMS, "fc": 50.0, "lp": 0.2, "betaet": 0.3}
    state0 = {**{k: 0.0 for k in STATES}, "soil_moisture": 0.001}
    forcing = {"precipitation": jnp.zeros(5), "temperature": jnp.full(5, 10.0),
               "pet": jnp.full(5, 5.0)}
    with jax.enable_x64(True):
        forcing = jax.tree.map(lambda x: x.astype(jnp.float64), forcing)
        _, out = simulate(HBV(use_betaet=True), params, forcing, state0)
        np.testing.assert_allclose(out["evapotranspiration"], [1e-3, 1e-5, 1e-5, 1e-5, 1e-5],
                                   rtol=1e-12)
        np.testing.assert_allclose(out["soil_floor_gain"], 1e-5, rtol=1e-9)
        np.testing.assert_allclose(out["soil_moisture"], 1e-5, rtol=1e-12)


def test_mass_balance_float32_smooth():
    model = HBV(smooth=True)
    forcing = random_forcing(3650, 2, seed=5, dtype=np.float32)
    params = random_params(model, (2,), seed=6, dtype=np.float32)
    _, out = simulate(model, params, forcing)
    s = np.asarray(total_storage(out, model), np.float64)
    flux = np.asarray(forcing["precipitation"] + out["soil_floor_gain"]
                      - out["evapotranspiration"] - out["streamflow"], np.float64)
    np.testing.assert_allclose(s[-1] - s[0], flux[1:].sum(0), atol=2e-4 * s.max())


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------


def _loss_fn(model, forcing, q_obs, state0=None):
    def loss(params):
        _, out = simulate(model, params, forcing, state0, check=False)
        misfit = jnp.mean((out["streamflow"] - q_obs) ** 2)
        return misfit + 0.1 * jnp.mean(out["evapotranspiration"])
    return jax.jit(loss)


@pytest.mark.parametrize("smooth", [True, False], ids=["smooth", "hard"])
def test_gradient_matches_central_differences_10_years(smooth):
    model = HBV(smooth=smooth, use_betaet=True)
    with jax.enable_x64(True):
        forcing = jax.tree.map(lambda x: x[:, 0], random_forcing(3650, 1, seed=7))
        q_obs = jnp.asarray(np.random.default_rng(8).exponential(1.0, 3650))
        params = {k: v[0] for k, v in random_params(model, (1,), seed=9, margin=0.1).items()}
        loss = _loss_fn(model, forcing, q_obs)
        grad = jax.jit(jax.grad(loss))(params)
        for k, spec in model.param_spec.items():
            # small steps in float64 keep hard-mode kinks out of [x - h, x + h]
            h = (1e-6 if smooth else 1e-8) * (spec.high - spec.low)
            up = float(loss({**params, k: params[k] + h}))
            down = float(loss({**params, k: params[k] - h}))
            fd = (up - down) / (2 * h)
            g = float(grad[k])
            assert np.isfinite(g), k
            assert abs(g - fd) <= 1e-4 * abs(fd) + 1e-9, (k, g, fd)
    # a parameter the loss depends on must have a non-zero gradient
    assert abs(float(grad["fc"])) > 0 and abs(float(grad["k2"])) > 0
    if smooth:
        assert abs(float(grad["tt"])) > 0


_unit = st.floats(0.0, 1.0)


@pytest.fixture(scope="module")
def extreme_grad():
    """One compiled gradient (smooth + hard, BETAET, capillary rise, groundwater exchange)
    on 1 year of harsh forcing."""
    rng = np.random.default_rng(4)
    n = 365
    forcing = {"precipitation": jnp.asarray(rng.exponential(15, n) * (rng.random(n) < 0.3),
                                            jnp.float32),
               "temperature": jnp.asarray(rng.normal(0, 10, n), jnp.float32),
               "pet": jnp.asarray(rng.uniform(0, 8, n), jnp.float32)}
    q_obs = jnp.asarray(rng.exponential(1.0, n), jnp.float32)
    fns = {}
    for smooth in (True, False):
        model = HBV(smooth=smooth, use_betaet=True, capillary_rise=True, groundwater_exchange=True)
        fns[smooth] = (model, jax.jit(jax.grad(_loss_fn(model, forcing, q_obs))))
    zero_state = {k: jnp.zeros((), jnp.float32) for k in STATES}
    fns["zero"] = jax.jit(jax.grad(_loss_fn(fns[True][0], forcing, q_obs, zero_state)))
    return fns


@settings(max_examples=12, deadline=None)
@given(st.lists(_unit, min_size=15, max_size=15), st.sampled_from([0.0, 1.0, None]))
def test_no_nan_gradients_anywhere_in_the_boxes(extreme_grad, us, corner):
    model = extreme_grad[True][0]
    us = [corner if corner is not None and i % 2 == 0 else u for i, u in enumerate(us)]
    params = {k: jnp.float32(s.low + (s.high - s.low) * u)
              for (k, s), u in zip(model.param_spec.items(), us)}
    assert len(params) == 15  # every parameter, the switches' c and exchange included
    for g in (extreme_grad[True][1](params), extreme_grad[False][1](params),
              extreme_grad["zero"](params)):
        for k, v in g.items():
            assert np.isfinite(float(v)), k


# ---------------------------------------------------------------------------------------
# jit / vmap / time-varying parameters / warm-up
# ---------------------------------------------------------------------------------------


def test_jit_and_vmap_equal_plain_call():
    model = HBV(n_components=2)
    forcing = random_forcing(200, 3, seed=21, dtype=np.float32)
    params = random_params(model, (3,), seed=22, dtype=np.float32)
    _, plain = simulate(model, params, forcing)
    _, jitted = jax.jit(lambda p, f: simulate(model, p, f))(params, forcing)
    per_basin = jax.vmap(lambda p, f: simulate(model, p, f)[1], in_axes=(0, 1), out_axes=1)
    vmapped = per_basin(params, forcing)
    for k in ("streamflow", "evapotranspiration", "soil_moisture"):
        np.testing.assert_allclose(jitted[k], plain[k], rtol=1e-6, err_msg=k)
        np.testing.assert_allclose(vmapped[k], plain[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_time_varying_parameters():
    model = HBV(use_betaet=True)
    forcing = random_forcing(120, 2, seed=31, dtype=np.float32)
    params = random_params(model, (2,), seed=32, dtype=np.float32)
    _, static = simulate(model, params, forcing)
    tiled = {**params, "beta": jnp.broadcast_to(params["beta"], (120, 2))}
    _, dyn_const = simulate(model, tiled, forcing)
    np.testing.assert_allclose(dyn_const["streamflow"], static["streamflow"], rtol=1e-6)
    # BETA and BETAET switch on day 60 == two runs chained through the state
    beta2, betaet2 = params["beta"] * 0.5 + 0.5, params["betaet"] * 0.3 + 0.2
    dyn = {**params,
           "beta": jnp.concatenate([jnp.broadcast_to(params["beta"], (60, 2)),
                                    jnp.broadcast_to(beta2, (60, 2))]),
           "betaet": jnp.concatenate([jnp.broadcast_to(params["betaet"], (60, 2)),
                                      jnp.broadcast_to(betaet2, (60, 2))])}
    _, out = simulate(model, dyn, forcing)
    first = jax.tree.map(lambda x: x[:60], forcing)
    second = jax.tree.map(lambda x: x[60:], forcing)
    mid, _ = simulate(model, params, first)
    _, out2 = simulate(model, {**params, "beta": beta2, "betaet": betaet2}, second, mid)
    np.testing.assert_allclose(out["streamflow"][60:], out2["streamflow"], rtol=1e-6)
    assert not np.allclose(out["streamflow"][60:], static["streamflow"][60:], rtol=1e-3)


def test_warm_up_returns_final_state_without_gradient():
    model = HBV()
    forcing = random_forcing(500, 2, seed=41, dtype=np.float32)
    params = random_params(model, (2,), seed=42, dtype=np.float32)
    state, _ = simulate(model, params, jax.tree.map(lambda x: x[:365], forcing))
    warm = warm_up(model, params, forcing, days=365)
    for k in STATES:
        np.testing.assert_allclose(warm[k], state[k], rtol=1e-6)
    assert float(warm["soil_moisture"].min()) > 1.0  # left the 0.001 mm cold start

    rest = jax.tree.map(lambda x: x[365:], forcing)

    def loss(p, through_warm_up):
        s0 = warm_up(model, p, forcing, 365) if through_warm_up else jax.lax.stop_gradient(warm)
        return simulate(model, p, rest, s0, check=False)[1]["streamflow"].sum()

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    g_warm, g_fixed = grad(params, True), grad(params, False)
    for k in params:
        np.testing.assert_allclose(g_warm[k], g_fixed[k], rtol=1e-6, err_msg=k)
    with pytest.raises(ValueError, match="days"):
        warm_up(model, params, forcing, days=600)


def test_smooth_mode_tends_to_hard_mode_for_steep_steps():
    _, hard = simulate(HBV(), PARAMS, table_forcing(jnp.float32), STATE0)
    _, steep = simulate(HBV(smooth=True, k=1e4), PARAMS, table_forcing(jnp.float32), STATE0)
    _, soft = simulate(HBV(smooth=True), PARAMS, table_forcing(jnp.float32), STATE0)
    np.testing.assert_allclose(steep["streamflow"], hard["streamflow"], rtol=1e-3)
    assert np.abs(np.asarray(soft["streamflow"] - hard["streamflow"])).max() > 1e-3


def test_bad_configuration_and_shapes_raise():
    with pytest.raises(ValueError, match="n_components"):
        HBV(n_components=0)
    with pytest.raises(ValueError, match="length"):
        gamma_uh_weights(1.0, 1.0, 0)
    model = HBV(n_components=4)
    params = {k: jnp.full((3,), v) for k, v in PARAMS.items()}  # lacks the component axis
    with pytest.raises(ValueError, match="beta"):
        simulate(model, params, random_forcing(10, 3, 0, np.float32))


def test_routing_gradients_finite_at_box_corners_and_match_fd():
    q = np.asarray(TABLE["streamflow"] * 3)  # 30 days, float64

    def loss(a, b):
        return jnp.sum(route(jnp.asarray(q), gamma_uh_weights(a, b, 15)) ** 2)

    with jax.enable_x64(True):
        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        for a, b in [(0.0, 0.0), (2.9, 6.5), (0.0, 6.5), (2.9, 0.0)]:
            assert all(np.isfinite(float(g)) for g in grad(a, b))
        h = 1e-6
        ga, gb = grad(1.2, 3.0)
        np.testing.assert_allclose(ga, (loss(1.2 + h, 3.0) - loss(1.2 - h, 3.0)) / (2 * h),
                                   rtol=1e-6)
        np.testing.assert_allclose(gb, (loss(1.2, 3.0 + h) - loss(1.2, 3.0 - h)) / (2 * h),
                                   rtol=1e-6)
