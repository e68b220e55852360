import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.physics import ParamSpec, simulate, smooth_step
from difhydro.physics.base import from_physical, to_physical

from helpers import random_forcing


def test_paramspec_round_trip_and_box():
    spec = ParamSpec(100.0, 1500.0, "mm", 750.0, "capacity")
    raw = jnp.linspace(-8, 8, 33)
    phys = spec.to_physical(raw)
    assert float(phys.min()) > 100.0 and float(phys.max()) < 1500.0
    np.testing.assert_allclose(spec.from_physical(phys), raw, atol=2e-3)
    assert float(spec.to_physical(0.0)) == pytest.approx(800.0)
    assert spec.typical == 750.0
    assert np.isfinite(float(spec.from_physical(100.0)))


def test_paramspec_rejects_bad_boxes():
    with pytest.raises(ValueError):
        ParamSpec(1.0, 1.0)
    with pytest.raises(ValueError):
        ParamSpec(0.0, 1.0, default=2.0)


def test_mapping_helpers_require_all_keys():
    spec = {"a": ParamSpec(0, 1), "b": ParamSpec(-1, 1)}
    phys = to_physical(spec, {"a": 0.0, "b": 0.0})
    assert float(phys["a"]) == 0.5 and float(phys["b"]) == 0.0
    back = from_physical(spec, phys)
    assert float(back["a"]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="b"):
        to_physical(spec, {"a": 0.0})


def test_smooth_step_values_and_gradient():
    assert float(smooth_step(0.0)) == 0.5
    assert float(smooth_step(1.0)) == pytest.approx(0.5 * (1 + np.tanh(5.0)))
    assert float(jax.grad(smooth_step)(0.0)) == pytest.approx(2.5)


def test_the_template_model_follows_the_contract(x64):
    """physics/template.py, the file contributors copy: mass balance to round-off over
    three years, sub-steps through the shared helper, finite gradients."""
    from difhydro.physics.template import LinearReservoir

    forcing = {k: np.asarray(v, np.float64) for k, v in random_forcing(3 * 365, 3, seed=2).items() if k != "day_length"}
    for n in (1, 3):
        model = LinearReservoir(n_substeps=n)
        params = model.default_params((3,))
        _, out = simulate(model, params, forcing)
        storage = np.asarray(out["snow_storage"][-1] + out["storage"][-1])
        np.testing.assert_allclose(forcing["precipitation"].sum(0) - np.asarray(out["streamflow"]).sum(0), storage, atol=1e-9)
    grads = jax.grad(lambda p: simulate(model, p, forcing)[1]["streamflow"].sum())(params)
    assert all(np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0) for g in grads.values())
