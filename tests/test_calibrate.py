import numpy as np
import pytest

from difhydro.training import metrics
from difhydro.training.calibrate import gradient_calibration, sceua_calibration
from difhydro.hybrid import run_physics
from difhydro.physics import ExpHydro, simulate

from helpers import random_forcing

TRUE = dict(f=0.02, smax=400.0, qmax=18.0, df=2.5, tmax=0.5, tmin=-1.0)


@pytest.fixture(scope="module")
def twin():
    # basin-first [basin, time], the layout of the calibration API
    forcing = {k: v.T for k, v in random_forcing(4 * 365, 2, seed=11).items()}
    truth = {k: np.array([v, v * 1.3 if k in ("smax", "qmax", "df") else v], np.float32) for k, v in TRUE.items()}
    obs = np.asarray(run_physics(ExpHydro(), truth, forcing)["streamflow"])
    return forcing, truth, obs


def test_gradient_calibration_fits_a_known_twin_per_basin(twin):
    forcing, truth, obs = twin
    res = gradient_calibration(ExpHydro(), forcing, obs, steps=300, learning_rate=0.1, progress=False)
    assert res.history[-1] < 0.2 * res.history[0]
    sim = run_physics(ExpHydro(), res.params, forcing)["streamflow"]
    nse = np.asarray(metrics.nse(sim[:, 365:], obs[:, 365:]))
    assert nse.shape == (2,) and np.all(nse > 0.97)
    # the bucket capacity, which controls most of the flow dynamics, is recovered
    np.testing.assert_allclose(res.params["smax"], truth["smax"], rtol=0.15)


def test_gradient_calibration_validates_inputs(twin):
    forcing, _, obs = twin
    with pytest.raises(ValueError, match="observed"):
        gradient_calibration(ExpHydro(), forcing, obs[:1], steps=1, progress=False)
    with pytest.raises(ValueError, match="warmup_days"):
        gradient_calibration(ExpHydro(), forcing, obs, warmup_days=10_000, steps=1, progress=False)


def test_sceua_improves_on_the_prior_guess(twin):
    forcing, _, obs = twin
    one = {k: v[0] for k, v in forcing.items()}
    res = sceua_calibration(ExpHydro(), one, obs[0], max_runs=300, progress=False)
    guess = simulate(ExpHydro(), ExpHydro().default_params(), one)[1]["streamflow"]  # one basin: [time]
    prior = 1 - float(metrics.nse(guess[365:], obs[0, 365:]))
    assert res.history[0] < prior
    assert set(res.params) == set(TRUE)
