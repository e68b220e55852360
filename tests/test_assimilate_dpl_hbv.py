"""``--assimilate`` on a saved dpl_hbv (gamma routing, daily BETA/BETAET from the LSTM, a learned
precipitation correction) of the synthetic twin: the state update's open loop is the saved
model's own prediction (the parameter series over the spin-up, the corrected forcing, the
runoff routed from before the window), and the
updated forecasts are scored beside it. Slow (training compiles dPL-HBV: ~35 s on 2 busy
cores); the routing and daily parameters of the update itself are checked by default in
``test_incremental_routing.py``."""

import numpy as np
import pytest

from difhydro import load_run
from difhydro.experiment.assimilate import assimilated_unit, unsupported
from difhydro.experiment.models import predict_unit
from difhydro.forecast import Assimilation
from helpers import train_config_run

pytestmark = pytest.mark.slow

CONFIG = {"name": "twin_hbv_da", "data": {"format": "twin", "basins": 3}, "evaluations": ["temporal"], "seeds": [0],
          "models": {"dpl_hbv": {"hidden_size": 4, "components": 2, "forcing_correction": ["precipitation"]}},
          "training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 3, "window": 120, "warmup": 60}}


@pytest.fixture(scope="module")
def hbv_run(tmp_path_factory):
    return load_run(train_config_run(tmp_path_factory.mktemp("twin_hbv_da"), CONFIG))


def test_the_open_loop_of_the_state_update_is_the_saved_prediction(hbv_run):
    saved = hbv_run.models()["dpl_hbv"][0]
    data, period = hbv_run._data(None, None, None, "1985-03-01:1985-08-31", need_observations=True)
    result = predict_unit(saved, data.ds, data.basins, period)
    assert unsupported(saved, result) is None
    assert {"uh_shape", "uh_scale", "precipitation_correction"} <= set(result["params"])
    assert np.ptp(result["params"]["precipitation_correction"]) > 0  # a factor per basin, not 1
    assert set(result["param_series_with_spin_up"]) == {"beta", "betaet"}
    out = assimilated_unit(saved, data.ds, data.basins, period, result, Assimilation(window=3, transform="log"))
    np.testing.assert_allclose(out["open_loop"], result["simulated"], rtol=2e-5, atol=2e-6)
    assert out["simulated"].shape == result["simulated"].shape and np.isfinite(out["simulated"]).all()
    assert np.abs(out["simulated"] - result["simulated"]).max() > 1e-3  # the states were updated
    np.testing.assert_array_equal(out["time"], result["time"])


def test_evaluate_scores_the_assimilated_dpl_hbv(hbv_run):
    table = hbv_run.evaluate(name="da", period="1985-03-01:1985-08-31", assimilate=3, progress=False)
    assert set(table.model) == {"dpl_hbv", "dpl_hbv_assimilated"}
    rows = table.groupby("model").size()
    assert np.isfinite(table.nse).all() and rows["dpl_hbv"] == rows["dpl_hbv_assimilated"] > 0
