"""Cycling incremental state updating (forecast.incremental) on a synthetic EXP-HYDRO twin
whose soil storage starts at half the truth: known answers for perfect observations, for no
observations (the open loop exactly) and for the gap counts; the small solver against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.forecast import Assimilation, incremental_forecast
from difhydro.forecast.incremental import _spd_solve
from difhydro.hybrid import run_physics
from difhydro.physics import ExpHydro
from difhydro.training.metrics import nse
from helpers import random_forcing

MODEL = ExpHydro()
B, WARM, T = 3, 485, 60  # the period starts on 1 May (rain, not a winter recession)
SOIL = ("soil_storage",)


@pytest.fixture(scope="module")
def twin():
    """Parameters, forcing of the 60 days, the true flow and soil storage (perfect
    observations), the true state at the period start and a background with half its soil."""
    f = {k: jnp.asarray(v.T) for k, v in random_forcing(WARM + T, B, seed=1).items()}
    params = {"f": jnp.array([0.02, 0.01, 0.015]), "smax": jnp.array([400.0, 800.0, 600.0]),
              "qmax": jnp.array([15.0, 25.0, 20.0]), "df": jnp.full(B, 2.5), "tmax": jnp.full(B, 1.0),
              "tmin": jnp.full(B, -1.0)}
    _, state = run_physics(MODEL, params, {k: v[:, :WARM] for k, v in f.items()}, return_state=True)
    forcing = {k: v[:, WARM:] for k, v in f.items()}
    truth = run_physics(MODEL, params, forcing, state)
    background = {**state, "soil_storage": 0.5 * state["soil_storage"]}
    return params, forcing, truth, background


def _run(settings):
    return jax.jit(lambda p, f, o, s: incremental_forecast(MODEL, p, f, o, s, settings))


@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_perfect_observations_recover_the_perturbed_soil_storage(twin, transform):
    params, forcing, truth, background = twin
    flow = truth["streamflow"]
    out = _run(Assimilation(window=10, states=SOIL, transform=transform))(params, forcing, flow, background)
    # analysis[:, t] is the state at the start of day t = the true state at the end of day t - 1
    soil = np.asarray(out["analysis"]["soil_storage"])
    true = np.asarray(truth["soil_storage"])
    start_error = np.abs(np.asarray(background["soil_storage"]) - np.asarray(truth["soil_storage"][:, 0]))
    # measured: 0.1-0.5 mm left of the 150-290 mm error after 20 days (sqrt), 0.02-0.4 mm (log)
    assert (np.abs(soil[:, 21] - true[:, 20]) < 0.01 * start_error).all(), (soil[:, 21], true[:, 20])
    # the snow is not a control and does not depend on the soil: it stays the truth's
    np.testing.assert_allclose(np.asarray(out["analysis"]["snow_storage"][:, 1:]),
                               np.asarray(truth["snow_storage"][:, :-1]), rtol=1e-6, atol=1e-4)
    obs = np.asarray(flow)[:, 25:]
    fc, ol = np.asarray(nse(out["forecast"][:, 25:], obs)), np.asarray(nse(out["open_loop"][:, 25:], obs))
    # measured over days 25-59: forecast 0.997-0.99998 (both transforms), open loop -106 .. -11
    assert (fc > 0.97).all() and (ol < 0).all(), (fc, ol)
    # the open loop is the model run from the background without updates
    np.testing.assert_allclose(np.asarray(out["open_loop"]),
                               np.asarray(run_physics(MODEL, params, forcing, background)["streamflow"]), rtol=1e-5)


def test_without_observations_the_forecast_is_the_open_loop(twin):
    params, forcing, truth, background = twin
    missing = jnp.full_like(truth["streamflow"], jnp.nan)
    out = _run(Assimilation(window=5, states=SOIL))(params, forcing, missing, background)
    np.testing.assert_array_equal(np.asarray(out["forecast"]), np.asarray(out["open_loop"]))
    assert not np.asarray(out["observed_in_window"]).any()


def test_gaps_are_masked_and_counted(twin):
    params, forcing, truth, background = twin
    flow = np.asarray(truth["streamflow"]).copy()
    flow[:, 20:32] = np.nan  # twelve missing days
    n = 5
    out = _run(Assimilation(window=n, states=SOIL))(params, forcing, jnp.asarray(flow), background)
    # day t's forecast saw the window of days t-n .. t-1: count them independently
    ok = np.isfinite(flow)
    expected = np.array([[ok[b, max(t - n, 0):t].sum() for t in range(T)] for b in range(B)])
    np.testing.assert_array_equal(np.asarray(out["observed_in_window"]), expected)
    assert expected[0, 32] == 0 and expected[0, 34] == 2  # the gap empties whole windows
    fc = np.asarray(out["forecast"])
    assert np.isfinite(fc).all()  # a gap is masked, never a NaN forecast
    # after the gap the state is pulled back to the truth: measured NSE 0.99 over days 40-59
    assert (np.asarray(nse(fc[:, 40:], np.asarray(truth["streamflow"])[:, 40:])) > 0.95).all()


def test_the_small_solver_matches_numpy():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5):
        m = rng.normal(size=(k, k))
        a = m @ m.T + k * np.eye(k)
        b = rng.normal(size=k)
        np.testing.assert_allclose(np.asarray(_spd_solve(jnp.asarray(a), jnp.asarray(b))), np.linalg.solve(a, b),
                                   rtol=1e-5)


def test_basins_in_chunks_give_the_same_forecasts(twin):
    params, forcing, truth, background = twin
    settings = Assimilation(window=5, states=SOIL, transform="log")
    whole = incremental_forecast(MODEL, params, forcing, truth["streamflow"], background, settings)
    chunked = incremental_forecast(MODEL, params, forcing, truth["streamflow"], background, settings,
                                   basins_per_chunk=2)  # 3 basins: two chunks, one padded
    for key in ("forecast", "open_loop", "observed_in_window"):
        np.testing.assert_allclose(np.asarray(chunked[key]), np.asarray(whole[key]), rtol=1e-6, atol=1e-6)
