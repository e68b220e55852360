"""PGDL CNN-LSTM (difhydro.contrib.pgdl): the bounded profile model and its loss, the
tabular features, and (slow) the example."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.contrib.pgdl import ProfileCNNLSTM, lagged_features, pgdl_loss
from difhydro.hybrid import ParamHead
from difhydro.physics import Richards1D

from helpers import load_example_script, soil_batch

def test_lagged_features():
    x = np.arange(10.0).reshape(1, 10)
    f = lagged_features({"a": x}, lags=3)
    np.testing.assert_array_equal(f[0, 5], [5, 4, 3])
    np.testing.assert_array_equal(f[0, 0], [0, 0, 0])


def test_profile_model_bounded_and_loss_gradients():
    b, length = 3, 12
    x = 50.0 * jax.random.normal(jax.random.PRNGKey(0), (b, length, 6))  # huge inputs push the bounds
    soil = {"theta_r": 0.06, "theta_s": 0.44, "alpha": 0.03, "n": 1.5, "k_s": 20.0}
    static = {k: jnp.full((b,), v) for k, v in soil.items()}
    forcing = {"pet": jnp.full((b, length), 3.0)}
    targets = {f"sm_{d}": jnp.full((b, length), 0.3) for d in (10, 20, 30, 40, 50)}
    batch = soil_batch(x, forcing, targets, static)
    model = ProfileCNNLSTM(hidden_size=8, conv_features=(4,))
    params = jax.jit(model.init)(jax.random.PRNGKey(1), batch)  # one program each: eager ops compile one by one
    theta = jax.jit(model.apply)(params, batch)["profile"]
    assert theta.shape == (b, length, 5)
    assert float(theta.min()) >= 0.06 and float(theta.max()) <= 0.44
    loss = pgdl_loss(tuple(targets), physics_weight=10.0, root_fraction=(0.2, 0.2, 0.2, 0.2, 0.1))
    value, grads = jax.jit(jax.value_and_grad(lambda p: loss(model.apply(p, batch), batch, {})))(params)
    assert np.isfinite(float(value)) and float(value) > 0
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_param_head_maps_soil_parameters_into_their_boxes():
    """Learned van Genuchten parameters go through the one ParamHead (was soil_from_raw)."""
    spec = {k: Richards1D.param_spec[k] for k in ("k_s", "n")}
    head = ParamHead(spec, {"k_s": (), "n": ()})
    phys = head.to_physical({"k_s": jnp.array([-50.0, 0.0, 50.0]), "n": jnp.array(0.0)})
    np.testing.assert_allclose(np.asarray(phys["k_s"])[[0, 2]], [0.1, 1000.0], rtol=1e-5)
    assert float(phys["n"]) == pytest.approx((1.05 + 3.0) / 2)
    with pytest.raises(ValueError, match="ParamSpec"):
        head.to_physical({"k_s": jnp.zeros(()), "n": jnp.zeros(()), "porosity": jnp.zeros(())})


@pytest.mark.slow
def test_pgdl_example_quick(tmp_path):
    # the 50 %-data experiment runs in the full setting; CI keeps the 100 % comparison
    out = load_example_script("pgdl_cnn_lstm").main(["--quick", "--out", str(tmp_path), "--no-progress", "--fractions", "100"])
    res = out["results"]
    assert (tmp_path / "pgdl_tables.md").exists()
    for hist in out["histories"].values():
        assert min(hist) < hist[0]
    # the tabular models beat copying the (noisy) surface into the 30-50 cm layers
    for key in (("100%", "Random Forest"), ("100%", "XGBoost")):
        assert np.all(res[key]["rmse"][2:] < res[("-", "surface copy")]["rmse"][2:])
    # the residual term does what it is built for, even after a few epochs
    pgdl, plain = res[("100%", "PGDL CNN-LSTM")], res[("100%", "CNN-LSTM")]
    assert pgdl["inconsistency"] < plain["inconsistency"]
    assert pgdl["outside_bounds"] == 0.0  # the bounded activation
