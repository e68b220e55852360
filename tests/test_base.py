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


# -- forcing values simulate refuses (outside jit), and check=False really skipping them ------


def _exphydro_run(forcing, **kw):
    from difhydro.physics import ExpHydro

    model = ExpHydro()
    return simulate(model, model.default_params((2,)), forcing, **kw)


@pytest.mark.parametrize("name, edit, message", [
    ("precipitation", lambda f: f["precipitation"].__setitem__((3, 1), -0.5),
     r"^forcing 'precipitation' \(mm d-1\) has 1 negative value\(s\) \(min -0.5\)"),
    ("temperature", lambda f: f["temperature"].__setitem__((slice(None), 1), f["temperature"][:, 1] + 273.15),
     r"^forcing 'temperature' looks like Kelvin, not degC, in 1 of 2 series \(median over time up to 268\.9 > 200\)"),
])
def test_simulate_refuses_negative_fluxes_and_kelvin(name, edit, message):
    forcing = {k: np.array(v) for k, v in random_forcing(60, 2).items()}
    _exphydro_run(forcing)  # the clean forcing runs
    edit(forcing)
    with pytest.raises(ValueError, match=message) as info:
        _exphydro_run(forcing)
    assert "\n" not in str(info.value)
    if name == "temperature":  # the median quoted is that of the Kelvin series (60 winter days)
        assert f"{np.median(forcing['temperature'][:, 1]):.1f}" == "268.9"


def test_simulate_refuses_negative_pet():
    from difhydro.physics import HBV

    model = HBV()
    forcing = {k: np.array(v) for k, v in random_forcing(40, 2).items() if k != "day_length"}
    forcing["pet"] = np.full((40, 2), 1.5, np.float32)
    simulate(model, model.default_params((2,)), forcing)
    forcing["pet"][[5, 9], 0] = [-0.2, -4.3]  # ERA5-Land condensation days, unclipped
    with pytest.raises(ValueError, match=r"^forcing 'pet' \(mm d-1\) has 2 negative value\(s\) \(min -4.3\)"):
        simulate(model, model.default_params((2,)), forcing)


def test_check_false_skips_every_value_check_and_jit_has_none():
    from difhydro.physics import ExpHydro

    model = ExpHydro()
    params = model.default_params((2,))
    forcing = {k: np.array(v) for k, v in random_forcing(30, 2).items()}
    forcing["precipitation"][4, 0] = np.nan
    forcing["temperature"][:, 1] += 273.15
    with pytest.raises(ValueError, match="forcing 'precipitation' contains 1 NaN"):
        simulate(model, params, forcing)
    # check=False: no check at all, the NaN propagates from day 5 on in basin 0 only
    _, out = simulate(model, params, forcing, check=False)
    q = np.asarray(out["streamflow"])
    assert np.isfinite(q[:4]).all() and np.isnan(q[4:, 0]).all() and np.isfinite(q[:, 1]).all()
    # a parameter outside its box is not checked either
    simulate(model, {**params, "smax": jnp.full((2,), 5000.0)}, {k: np.nan_to_num(v) for k, v in forcing.items()}, check=False)
    # under jit the values are traced: no check (and no host transfer), the same result
    _, jitted = jax.jit(lambda f: simulate(model, params, f))(forcing)
    np.testing.assert_array_equal(np.asarray(jitted["streamflow"]), q)


def test_warm_up_checks_its_forcing_unless_told_not_to():
    from difhydro.physics import ExpHydro, warm_up

    model = ExpHydro()
    params = model.default_params((2,))
    forcing = {k: np.array(v) for k, v in random_forcing(60, 2).items()}
    forcing["precipitation"][10, 1] = -2.0  # inside the 30 warm-up days
    with pytest.raises(ValueError, match=r"^forcing 'precipitation' \(mm d-1\) has 1 negative value"):
        warm_up(model, params, forcing, days=30)
    state = warm_up(model, params, forcing, days=30, check=False)
    assert all(np.isfinite(np.asarray(v)).all() for v in state.values())
