"""The δHBV-family switches: capillary rise (HBV 1.1p), groundwater exchange (δHBV 2.0), the
dPL forcing corrections, the dpl_hbv registry options and the low-flow loss. Hand values,
an independent NumPy step (tests/test_hbv.py), the water balance with the exchange counted,
finite-difference gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.hybrid import build_model, model_options, run_physics
from difhydro.physics import HBV, simulate
from difhydro.training import LOSSES
from difhydro.training.losses import low_flow_transform, rmse_low_flow
from test_hbv import (PARAMS, STATE0, STATES, TABLE, _loss_fn, numpy_hbv, random_forcing, random_params,
                      table_forcing, total_storage)

BOTH = HBV(capillary_rise=True, groundwater_exchange=True)


def test_switches_default_off_and_add_their_parameters():
    assert (HBV().capillary_rise, HBV().groundwater_exchange) == (False, False)
    assert list(BOTH.param_spec)[-2:] == ["c", "exchange"]
    assert "c" not in HBV().param_spec and "exchange" not in HBV().param_spec
    c, x = BOTH.param_spec["c"], BOTH.param_spec["exchange"]
    assert (c.low, c.high, c.units) == (0.0, 1.0, "d-1")
    assert (x.low, x.high, x.units, x.typical) == (-3.0, 3.0, "mm d-1", 0.0)
    _, out = simulate(HBV(), PARAMS, table_forcing(), STATE0)  # off: both fluxes exactly 0
    assert float(jnp.abs(out["capillary_rise"]).max()) == 0.0
    assert float(jnp.abs(out["groundwater_exchange"]).max()) == 0.0


def test_zero_capillary_and_zero_exchange_reproduce_the_reference_table():
    _, out = simulate(BOTH, {**PARAMS, "c": 0.0, "exchange": 0.0}, table_forcing(), STATE0)
    for k, ref in TABLE.items():
        np.testing.assert_allclose(out[k], ref, rtol=1e-4, atol=1e-5, err_msg=k)


def test_first_day_by_hand():
    """Day 1 of §4.4: SM after ET = 119.571429 mm, SLZ = 30 mm, PERC = 2 mm."""
    with jax.enable_x64(True):
        forcing = jax.tree.map(lambda v: v.astype(jnp.float64), table_forcing())
        _, cap = simulate(HBV(capillary_rise=True), {**PARAMS, "c": 0.2}, forcing, STATE0)
        rise = 0.2 * 30.0 * (1.0 - 119.5714286 / 200.0)  # C SLZ (1 - SM/FC) = 2.412857 mm
        np.testing.assert_allclose(cap["capillary_rise"][0], rise, rtol=1e-6)
        np.testing.assert_allclose(cap["soil_moisture"][0], 119.5714286 + rise, rtol=1e-6)
        np.testing.assert_allclose(cap["baseflow"][0], 0.02 * (30.0 - rise + 2.0), rtol=1e-6)
        for exchange, q2 in ((0.5, 0.02 * 31.5), (-1.0, 0.02 * 33.0)):
            _, out = simulate(HBV(groundwater_exchange=True), {**PARAMS, "exchange": exchange}, forcing, STATE0)
            np.testing.assert_allclose(out["groundwater_exchange"][0], exchange, rtol=1e-12)
            np.testing.assert_allclose(out["baseflow"][0], q2, rtol=1e-9)
            np.testing.assert_allclose(out["lower_zone"][0], (32.0 - exchange) * 0.98, rtol=1e-9)
        # a loss larger than the lower zone takes only what is there: SLZ = 0 + PERC = 2 mm
        _, out = simulate(HBV(groundwater_exchange=True), {**PARAMS, "exchange": 3.0}, forcing,
                          {**STATE0, "lower_zone": 0.0})
        np.testing.assert_allclose(out["groundwater_exchange"][0], 2.0, rtol=1e-12)
        assert float(out["lower_zone"][0]) == 0.0 and float(out["baseflow"][0]) == 0.0


def test_switches_match_the_numpy_reference():
    model = HBV(n_components=3, use_betaet=True, capillary_rise=True, groundwater_exchange=True)
    with jax.enable_x64(True):
        forcing = random_forcing(300, 1, seed=51)
        params = random_params(model, (1,), seed=52)
        params["exchange"] = jnp.asarray([[1.5, -0.7, 0.2]])  # a loss, a gain, a small loss
        _, out = simulate(model, params, forcing)
    f_np = {"T": np.asarray(forcing["temperature"][:, 0]), "PET": np.asarray(forcing["pet"][:, 0])}
    fluxes = {}
    q, et, states = numpy_hbv(np.asarray(forcing["precipitation"][:, 0]), f_np,
                              {k: np.asarray(v[0]) for k, v in params.items()}, 3, fluxes)
    np.testing.assert_allclose(out["streamflow"][:, 0], q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["evapotranspiration"][:, 0], et, rtol=1e-10, atol=1e-12)
    for k in ("capillary_rise", "groundwater_exchange"):
        np.testing.assert_allclose(out[k][:, 0], fluxes[k], rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(out["lower_zone"][-1, 0], states[:, 4], rtol=1e-10)
    assert fluxes["capillary_rise"].max() > 0.01  # the rise actually moved water


@pytest.mark.parametrize("switches", [dict(capillary_rise=True), dict(groundwater_exchange=True),
                                      dict(capillary_rise=True, groundwater_exchange=True, smooth=True)],
                         ids=["capillary", "exchange", "both-smooth"])
def test_water_balance_counts_the_exchange(switches):
    """ΔS = P − ET − Q + soil_floor_gain − groundwater_exchange, every day of 10 years."""
    model = HBV(n_components=2, use_betaet=True, **switches)
    with jax.enable_x64(True):
        forcing = random_forcing(3650, 3, seed=61)
        params = random_params(model, (3,), seed=62, margin=0.0)
        forcing["precipitation"] = forcing["precipitation"] * jnp.array([0.05, 1.0, 1.0])  # an arid basin
        if model.groundwater_exchange:  # the box corners: full loss, full gain, none
            params["exchange"] = jnp.asarray([[3.0, 3.0], [-3.0, -3.0], [0.0, 0.0]])
        if model.capillary_rise:
            params["c"] = jnp.asarray([[1.0, 0.0], [1.0, 0.5], [0.3, 1.0]])
        state0 = model.initial_state(params)
        _, out = jax.jit(lambda p, f: simulate(model, p, f, check=False))(params, forcing)
        s = np.concatenate([np.asarray(total_storage(state0, model))[None], np.asarray(total_storage(out, model))])
        flux = np.asarray(forcing["precipitation"] + out["soil_floor_gain"] - out["evapotranspiration"]
                          - out["streamflow"] - out["groundwater_exchange"])
    assert np.abs(np.diff(s, axis=0) - flux).max() < 1e-9
    for k in STATES:
        assert float(np.asarray(out[k]).min()) >= 0.0, k
    if model.groundwater_exchange:
        x = np.asarray(out["groundwater_exchange"])
        np.testing.assert_allclose(x[:, 1], -3.0, rtol=1e-12)  # a gain is never limited
        assert x[:, 0].min() >= 0.0 and 0 < x[:, 0].mean() < 3.0  # a loss is, by the lower zone
    if model.capillary_rise:
        assert float(np.asarray(out["capillary_rise"]).min()) >= 0.0
        assert float(np.asarray(out["capillary_rise"]).max()) > 0.0


@pytest.mark.parametrize("smooth", [True, False], ids=["smooth", "hard"])
def test_gradients_of_the_switches_match_central_differences(smooth):
    model = HBV(smooth=smooth, use_betaet=True, capillary_rise=True, groundwater_exchange=True)
    with jax.enable_x64(True):
        forcing = jax.tree.map(lambda x: x[:, 0], random_forcing(730, 1, seed=71))
        q_obs = jnp.asarray(np.random.default_rng(72).exponential(1.0, 730))
        params = {k: v[0] for k, v in random_params(model, (1,), seed=73, margin=0.1).items()}
        params["exchange"] = jnp.asarray(0.4)  # a loss below the lower zone's content
        loss = _loss_fn(model, forcing, q_obs)
        grad = jax.jit(jax.grad(loss))(params)
        for k in ("c", "exchange", "k2", "fc", "perc"):
            h = (1e-6 if smooth else 1e-8) * (model.param_spec[k].high - model.param_spec[k].low)
            fd = (float(loss({**params, k: params[k] + h})) - float(loss({**params, k: params[k] - h}))) / (2 * h)
            assert abs(float(grad[k]) - fd) <= 1e-4 * abs(fd) + 1e-9, (k, float(grad[k]), fd)
        assert abs(float(grad["c"])) > 0 and abs(float(grad["exchange"])) > 0


# ---------------------------------------------------------------------------------------
# dPL: forcing corrections and the dpl_hbv options
# ---------------------------------------------------------------------------------------


def _batch(n_basins=3, n_days=60, seed=0):
    rng = np.random.default_rng(seed)
    forcing = {"precipitation": rng.exponential(3.0, (n_basins, n_days)), "temperature": rng.normal(6, 6, (n_basins, n_days)),
               "pet": rng.uniform(0.5, 3, (n_basins, n_days))}
    return {"forcing": {k: jnp.asarray(v, jnp.float32) for k, v in forcing.items()},
            "inputs": jnp.asarray(rng.normal(size=(n_basins, n_days, 3)), jnp.float32),
            "attributes": jnp.asarray(rng.normal(size=(n_basins, 4)), jnp.float32)}


def test_dpl_hbv_options_and_defaults():
    options = model_options("dpl_hbv")
    assert options["warmup_days"] == 365 and tuple(options["dynamic_params"]) == ("beta", "betaet")
    assert (options["capillary_rise"], options["groundwater_exchange"], tuple(options["forcing_correction"])) == (False, False, ())
    default = build_model("dpl_hbv")
    assert (default.model.capillary_rise, default.model.groundwater_exchange, default.forcing_correction) == (False, False, ())
    on = build_model("dpl_hbv", capillary_rise=True, groundwater_exchange=True, warmup_days=200,
                     dynamic_params=["beta", "k0"], forcing_correction=["precipitation"])
    assert on.model.capillary_rise and on.model.groundwater_exchange and on.warmup_days == 200
    assert on.dynamic_params == ("beta", "k0")


def test_forcing_correction_scales_the_forcing_the_physics_sees():
    model = build_model("dpl_hbv", hidden_size=8, components=2, warmup_days=10,
                        forcing_correction=["precipitation", "pet"], groundwater_exchange=True)
    batch = _batch()
    variables = jax.jit(model.init)(jax.random.key(1), batch)
    out = jax.jit(model.apply)(variables, batch)
    params = dict(out["params"])
    factors = {k: params.pop(f"{k}_correction") for k in ("precipitation", "pet")}
    for f in factors.values():
        assert f.shape == (3,) and float(f.min()) > 0.5 and float(f.max()) < 1.5
        assert float(jnp.abs(f - 1.0).max()) > 1e-4  # learned, not a constant
    # the same physics by hand on the corrected forcing
    forcing = {k: v * factors[k][:, None] if k in factors else v for k, v in batch["forcing"].items()}
    physics = jax.jit(lambda p, f: run_physics(model.model, p, f, time_varying=("beta", "betaet"), warmup_days=10,
                                               warmup_gradient=False)["streamflow"])
    np.testing.assert_allclose(out["streamflow"], physics(params, forcing), rtol=1e-5, atol=1e-6)
    uncorrected = {"streamflow": physics(params, batch["forcing"])}
    assert not np.allclose(out["streamflow"], uncorrected["streamflow"], rtol=1e-3)


def test_forcing_correction_with_zero_raw_output_is_one():
    model = build_model("dpl_hbv", hidden_size=8, components=2, warmup_days=10, forcing_correction=["precipitation"])
    batch = _batch()
    variables = jax.jit(model.init)(jax.random.key(2), batch)
    variables = jax.tree.map(jnp.zeros_like, variables)  # every raw output 0: box centres
    out = jax.jit(model.apply)(variables, batch)
    np.testing.assert_allclose(out["params"]["precipitation_correction"], 1.0, rtol=1e-7)


def test_bad_forcing_correction_and_dynamic_params_raise():
    batch = _batch()
    with pytest.raises(ValueError, match="forcing_correction"):
        build_model("dpl_hbv", hidden_size=8, components=2, warmup_days=10,
                    forcing_correction=["temperature"]).init(jax.random.key(0), batch)
    with pytest.raises(ValueError, match="dynamic_params"):
        build_model("dpl_hbv", hidden_size=8, components=2, warmup_days=10,
                    dynamic_params=["c"]).init(jax.random.key(0), batch)  # c exists only with capillary_rise


def test_dpl_hbv_with_every_switch_has_finite_gradients_at_extreme_weights():
    model = build_model("dpl_hbv", hidden_size=8, components=2, warmup_days=10, capillary_rise=True,
                        groundwater_exchange=True, forcing_correction=["precipitation", "pet"],
                        dynamic_params=["beta", "exchange"])
    batch = _batch(seed=3)
    variables = jax.jit(model.init)(jax.random.key(0), batch)
    obs = jnp.asarray(np.random.default_rng(4).exponential(1.0, (3, 50)), jnp.float32)
    mask = jnp.ones((3, 50), bool)

    def loss(v):
        q = model.apply(v, batch)["streamflow"][:, 10:]
        return rmse_low_flow(q, obs, mask)

    grad = jax.jit(jax.grad(loss))
    for scale in (1.0, 30.0):  # 30x weights saturate every sigmoid at its box edge
        g = grad(jax.tree.map(lambda w: scale * w, variables))
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g)), scale


# ---------------------------------------------------------------------------------------
# The low-flow loss
# ---------------------------------------------------------------------------------------


def test_rmse_low_flow_against_numpy():
    rng = np.random.default_rng(5)
    pred, obs = rng.exponential(1.0, (2, 40)), rng.exponential(1.0, (2, 40))
    pred[0, :3] = -0.2  # negative predictions count as 0 in g only
    obs[1, 5] = np.nan
    mask = np.ones((2, 40), bool)
    mask[0, 30:] = False
    keep = mask & ~np.isnan(obs)
    g = lambda q: np.log10(np.sqrt(np.maximum(q, 0) + 1e-6) + 0.1)  # noqa: E731
    rmse = lambda a, b: np.sqrt(np.mean((a[keep] - b[keep]) ** 2))  # noqa: E731
    expected = 0.75 * rmse(pred, obs) + 0.25 * rmse(g(pred), g(obs))
    with jax.enable_x64(True):
        got = rmse_low_flow(jnp.asarray(pred), jnp.asarray(obs), jnp.asarray(mask))
        np.testing.assert_allclose(float(got), expected, rtol=1e-6)
        named = LOSSES["rmse_low_flow"](jnp.asarray(pred), jnp.asarray(obs), jnp.asarray(mask), None)
        np.testing.assert_allclose(float(named), expected, rtol=1e-6)
        from difhydro.contrib.dhbv import dhbv_loss  # the paper package's copy must agree

        np.testing.assert_allclose(float(dhbv_loss(jnp.asarray(pred), jnp.asarray(obs), jnp.asarray(mask))),
                                   expected, rtol=1e-6)
    np.testing.assert_allclose(float(low_flow_transform(jnp.float32(0.0))), np.log10(1e-3 + 0.1), rtol=1e-6)
    assert np.isfinite(float(jax.grad(lambda q: low_flow_transform(q))(0.0)))


def test_dpl_hbv_torch_init_redraws_its_lstm_and_keeps_the_flax_default():
    batch = _batch()
    options = dict(hidden_size=8, components=2, warmup_days=10)
    flax_params = jax.jit(build_model("dpl_hbv", **options).init)(jax.random.key(0), batch)["params"]
    default_again = jax.jit(build_model("dpl_hbv", init="flax", **options).init)(jax.random.key(0), batch)["params"]
    jax.tree_util.tree_map(np.testing.assert_array_equal, flax_params, default_again)
    model = build_model("dpl_hbv", init="torch", **options)
    params = jax.jit(model.init)(jax.random.key(0), batch)["params"]
    assert jax.tree_util.tree_map(jnp.shape, params) == jax.tree_util.tree_map(jnp.shape, flax_params)
    lstm = params["lstm"]
    bound = 1 / np.sqrt(8)  # U(+-1/sqrt(H)) kernels; flax's LeCun normal exceeds it (14 inputs: std 0.27)
    for k in ("input_kernel", "recurrent_kernel"):
        assert np.abs(np.asarray(lstm[k])).max() <= bound
    assert np.abs(np.asarray(flax_params["lstm"]["input_kernel"])).max() > bound
    forget = np.asarray(lstm["bias"])[8:16]  # gate order i, f, g, o: the LSTM layer's default forget bias 3
    assert np.all(np.abs(forget - 3.0) <= bound) and forget.std() > 0
    head = lstm["head"]
    assert np.abs(np.asarray(head["kernel"])).max() <= 1 / np.sqrt(head["kernel"].shape[0])
    out = jax.jit(model.apply)({"params": params}, batch)["streamflow"]
    assert np.isfinite(np.asarray(out)).all()
    with pytest.raises(ValueError, match="dpl_hbv.*init: 'xavier' is not accepted; choose from flax, torch"):
        build_model("dpl_hbv", init="xavier", **options)
