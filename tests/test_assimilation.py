"""Variational state updating of EXP-HYDRO on a synthetic twin whose initial soil storage is wrong."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.forecast.assimilation import Assimilation, flow_misfit, rolling_forecast, update_state
from difhydro.hybrid import run_physics
from difhydro.physics import ExpHydro
from difhydro.training.metrics import nse
from helpers import random_forcing

MODEL = ExpHydro()
B, WARM, T = 3, 485, 60  # the period starts on 1 May (rain, not a winter recession)
SETTINGS = Assimilation(window=10, n_steps=4, background_sigma=100.0, obs_sigma=0.1, states=("soil_storage",))


@pytest.fixture(scope="module")
def twin():
    """Three basins: parameters, the true state after a year (and four months) of spin-up, the next 60 days'
    forcing and observed flow (truth with 5 % noise), and a background whose soil storage is half the truth."""
    f = {k: jnp.asarray(v.T) for k, v in random_forcing(WARM + T, B, seed=1).items()}
    params = {"f": jnp.array([0.02, 0.01, 0.015]), "smax": jnp.array([400.0, 800.0, 600.0]),
              "qmax": jnp.array([15.0, 25.0, 20.0]), "df": jnp.full(B, 2.5), "tmax": jnp.full(B, 1.0),
              "tmin": jnp.full(B, -1.0)}
    _, truth_state = run_physics(MODEL, params, {k: v[:, :WARM] for k, v in f.items()}, return_state=True)
    forcing = {k: v[:, WARM:] for k, v in f.items()}
    flow = run_physics(MODEL, params, forcing, truth_state)["streamflow"]
    # observations with 5 % multiplicative error
    flow = flow * jnp.exp(0.05 * jax.random.normal(jax.random.PRNGKey(0), flow.shape))
    background = {**truth_state, "soil_storage": 0.5 * truth_state["soil_storage"]}
    return params, forcing, flow, truth_state, background


def test_state_update_moves_toward_the_truth_and_beats_the_open_loop(twin):
    params, forcing, flow, truth, background = twin
    run = jax.jit(lambda p, f, o, s: rolling_forecast(MODEL, p, f, o, s, SETTINGS))
    result = run(params, forcing, flow, background)
    n = SETTINGS.window
    soil0 = np.asarray(result["analysis"]["soil_storage"][:, 0])
    true0, bg0 = np.asarray(truth["soil_storage"]), np.asarray(background["soil_storage"])
    # the first window's analysis removes the 50 % error in every basin (measured: 313, 573,
    # 480 mm for a truth of 312, 575, 480 mm and a background of 156, 287, 240 mm)
    assert (np.abs(soil0 - true0) < 0.03 * np.abs(bg0 - true0)).all(), (soil0, true0, bg0)
    # the snow storage is not updated
    np.testing.assert_array_equal(np.asarray(result["analysis"]["snow_storage"][:, 0]),
                                  np.asarray(background["snow_storage"]))
    obs = np.asarray(flow)[:, n:]
    nse_fc = np.asarray(nse(result["forecast"], obs))
    nse_ol = np.asarray(nse(np.asarray(result["open_loop"])[:, n:], obs))
    # measured against the noisy observations: forecast [0.96, 0.93, 0.97], open loop [-6.8, -23.8, -6.0]
    assert (nse_fc > 0.9).all(), nse_fc
    assert (nse_fc - nse_ol > 0.1).all() and np.median(nse_fc) - np.median(nse_ol) > 0.5, (nse_fc, nse_ol)


@functools.cache
def _update(settings):
    """One compiled update per settings (the tests share shapes, so they share the compile)."""
    return jax.jit(lambda p, f, o, b: update_state(MODEL, p, f, o, b, settings))


SOIL = ("soil_storage",)


@pytest.mark.parametrize("settings, share", [
    (Assimilation(n_steps=4, states=SOIL), 0.03),  # Gauss-Newton (the default)
    pytest.param(Assimilation(optimizer="lbfgs", n_steps=5, states=SOIL), 0.03, marks=pytest.mark.slow),  # 30 s to compile
    # Adam is slower: measured 0.14, 0.49, 0.21 of the error left after 20 steps
    (Assimilation(optimizer="adam", n_steps=20, learning_rate=0.3, states=SOIL), 0.6),
], ids=["gauss_newton", "lbfgs", "adam"])
def test_each_optimiser_moves_the_first_window_toward_the_truth(twin, settings, share):
    params, forcing, flow, truth, background = twin
    window = {k: v[:, :10] for k, v in forcing.items()}
    analysis = _update(settings)(params, window, flow[:, :10], background)
    soil, true, bg = (np.asarray(x["soil_storage"]) for x in (analysis, truth, background))
    assert (np.abs(soil - true) < share * np.abs(bg - true)).all(), (soil, true, bg)
    np.testing.assert_array_equal(np.asarray(analysis["snow_storage"]), np.asarray(background["snow_storage"]))


def test_cycling_carries_the_analysis_and_beats_the_open_loop(twin):
    params, forcing, flow, truth, background = twin
    run = jax.jit(lambda p, f, o, s: rolling_forecast(MODEL, p, f, o, s, SETTINGS, cycling=True))
    result = run(params, forcing, flow, background)
    obs = np.asarray(flow)[:, SETTINGS.window:]
    nse_fc = np.asarray(nse(result["forecast"], obs))
    # measured: [0.96, 0.93, 0.97] (open loop [-6.8, -23.8, -6.0])
    assert (nse_fc > 0.9).all(), nse_fc
    # the second window starts from the first analysis carried one day forward
    first = {k: v[:, 0] for k, v in result["analysis"].items()}
    day0 = {k: v[:, :1] for k, v in forcing.items()}
    _, carried = run_physics(MODEL, params, day0, first, return_state=True)
    second_bg_snow = np.asarray(carried["snow_storage"])
    np.testing.assert_allclose(np.asarray(result["analysis"]["snow_storage"][:, 1]), second_bg_snow, rtol=1e-6)


def test_gaps_in_the_forcing_are_refused_outside_jit(twin):
    params, forcing, flow, truth, background = twin
    bad = {**forcing, "temperature": forcing["temperature"].at[0, 5].set(jnp.nan)}
    with pytest.raises(ValueError, match="temperature"):
        rolling_forecast(MODEL, params, bad, flow, background, SETTINGS)


def _window(twin, days=10):
    params, forcing, flow, truth, background = twin
    return params, {k: v[:, :days] for k, v in forcing.items()}, flow[:, :days], background


def test_without_observations_the_background_is_returned(twin):
    params, forcing, flow, background = _window(twin)
    analysis = _update(Assimilation(n_steps=4))(params, forcing, jnp.full_like(flow, jnp.nan), background)
    for k in MODEL.state_names:
        np.testing.assert_array_equal(np.asarray(analysis[k]), np.asarray(background[k]))


def test_misfit_gradient_matches_finite_differences(twin):
    params, forcing, flow, background = _window(twin)
    misfit = jax.jit(lambda soil: flow_misfit(MODEL, params, forcing, flow,
                                              {**background, "soil_storage": soil}, SETTINGS).sum())
    soil = background["soil_storage"]
    g = np.asarray(jax.jit(jax.grad(misfit))(soil))
    h = 0.5  # mm; the misfit is smooth on this scale and float32 round-off stays small
    for b in range(B):
        e = jnp.zeros(B).at[b].set(h)
        fd = (float(misfit(soil + e)) - float(misfit(soil - e))) / (2 * h)
        assert g[b] == pytest.approx(fd, rel=2e-3)
        assert g[b] < 0.0  # too little water: more soil storage lowers the misfit


def test_basins_are_independent_under_vmap(twin):
    params, forcing, flow, background = _window(twin)
    settings = Assimilation(n_steps=4)
    update = _update(settings)
    joint = update(params, forcing, flow, background)["soil_storage"]
    changed = update(params, forcing, flow.at[2].multiply(3.0), background)["soil_storage"]
    np.testing.assert_array_equal(np.asarray(changed[:2]), np.asarray(joint[:2]))
    assert abs(float(changed[2]) - float(joint[2])) > 1.0
    # basin 1 alone gives its own answer
    one = lambda t: jax.tree.map(lambda a: a[1:2], t)  # noqa: E731
    alone = update_state(MODEL, one(params), one(forcing), flow[1:2], one(background), settings)["soil_storage"]
    np.testing.assert_allclose(np.asarray(alone), np.asarray(joint[1:2]), rtol=1e-5)


def test_bad_settings_and_routing_parameters_are_refused(twin):
    params, forcing, flow, background = _window(twin)
    with pytest.raises(ValueError, match="window"):
        Assimilation(window=0)
    with pytest.raises(ValueError, match="not states of ExpHydro"):
        update_state(MODEL, params, forcing, flow, background, Assimilation(states=("lower_zone",)))
    with pytest.raises(ValueError, match="routing"):
        update_state(MODEL, {**params, "maxbas": jnp.ones(B)}, forcing, flow, background)
    with pytest.raises(ValueError, match="static parameters"):
        update_state(MODEL, {**params, "f": jnp.full((B, 10), 0.02)}, forcing, flow, background)
