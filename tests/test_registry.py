"""The model registry: every entry builds and takes one optimisation step on a tiny batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.data import fit_normalization, fulda_twin, make_basin_data
from difhydro.hybrid import MODELS, build_model, model_options
from difhydro.physics import ExpHydro, hamon_pet
from difhydro.training import TrainConfig, Trainer, gradient_calibration

ATTRS = [f"attribute_{k}" for k in range(5)]
INPUTS = ["precipitation", "temperature", "day_length"]
# small sizes so that every entry compiles quickly
SMALL = {"hybrid": dict(hidden_size=8), "lstm": dict(hidden_size=8), "dpl_exphydro": dict(hidden_size=8),
         "dpl_hbv": dict(hidden_size=8, components=2, warmup_days=20),
         "transformer": dict(hidden_size=8, heads=2, layers=1, max_span=16, chunk_size=8)}

@pytest.fixture(scope="module")
def tiny():
    ds = fulda_twin(ExpHydro(), n_basins=4, seed=1, noise=0.05)
    ds["pet"] = (("basin", "time"), np.asarray(hamon_pet(ds["temperature"].values, ds["day_length"].values), np.float32))
    period = ("1980-01-01", "1980-12-31")
    stats = fit_normalization(ds, INPUTS, ATTRS, period)
    data = make_basin_data(ds, stats, period, window=60, warmup=20,
                           forcing=("precipitation", "temperature", "day_length", "pet"))
    return ds, data

@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registry_entry_builds_and_takes_a_step(name, tiny):
    ds, data = tiny
    entry = MODELS[name]
    model = build_model(name, flow_mean=1.0, flow_std=2.0, **SMALL.get(name, {}))
    if entry.calibrated:
        sub = ds.sel(time=slice("1980-01-01", "1980-03-31"))
        forcing = {k: sub[k].transpose("basin", "time").values for k in model.forcing_names}
        result = gradient_calibration(model, forcing, sub["streamflow"].transpose("basin", "time").values,
                                      warmup_days=20, steps=2, progress=False)
        assert set(result.params) == set(model.param_spec) and np.all(np.isfinite(result.history))
        return
    trainer = Trainer(model, data, TrainConfig(epochs=1, steps_per_epoch=1, batch_size=4, progress=False))
    state = trainer.init_state()
    before = jax.tree.map(np.asarray, state["params"])
    state, loss = trainer.train_step(state)
    assert np.isfinite(float(loss)) and int(state["step"]) == 1
    moved = [not np.array_equal(a, np.asarray(b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state["params"]))]
    assert any(moved)  # the optimiser changed the parameters

def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown model 'gru'"):
        build_model("gru")
    with pytest.raises(ValueError, match="hidden_size"):
        build_model("lstm", hidden=4)
    assert model_options("dpl_hbv")["components"] == 16

def _adversarial_batch(n_basins=6, n_days=400, seed=0):
    """Extreme but valid inputs: storms of 300 mm, dry spells, -40 to +45 degC, PET up to
    20 mm/d, standardised inputs and attributes far outside the training range (+-50 sd)."""
    rng = np.random.default_rng(seed)
    rain = np.where(rng.random((n_basins, n_days)) < 0.1, 300.0, 0.0)
    rain[0] = 0.0  # an arid basin: no water at all
    temp = np.where(rng.random((n_basins, n_days)) < 0.5, -40.0, 45.0)
    forcing = {"precipitation": rain, "temperature": temp, "day_length": np.full((n_basins, n_days), 16.0),
               "pet": np.where(rng.random((n_basins, n_days)) < 0.5, 0.0, 20.0)}
    return {"forcing": {k: jnp.asarray(v, jnp.float32) for k, v in forcing.items()},
            "inputs": jnp.asarray(rng.choice([-20.0, 20.0], (n_basins, n_days, 3)), jnp.float32),
            "attributes": jnp.asarray(rng.choice([-50.0, 50.0], (n_basins, 5)), jnp.float32)}

@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_gives_nonnegative_streamflow_on_adversarial_inputs(name):

    batch = _adversarial_batch()
    model = build_model(name, flow_mean=1.0, flow_std=3.0, **SMALL.get(name, {}))
    if MODELS[name].calibrated:
        from difhydro.hybrid import run_physics

        for corner in (0.0, 1.0):  # every parameter at the low, then the high end of its box
            params = {k: jnp.full((6,), s.low + corner * (s.high - s.low)) for k, s in model.param_spec.items()}
            q = np.asarray(run_physics(model, params, batch["forcing"])["streamflow"])
            assert np.all(np.isfinite(q)) and q.min() >= 0.0, (name, corner, q.min())
        return
    variables = model.init(jax.random.key(0), batch)
    # adversarial weights too: every network weight blown up tenfold
    variables = jax.tree.map(lambda w: 10.0 * w, variables)
    out = model.apply(variables, batch)
    q = np.asarray(out["streamflow"])
    assert np.all(np.isfinite(q)) and q.min() >= 0.0, (name, q.min())
    if "physics_streamflow" in out:  # the hybrid head creates no water beyond its bound
        q_star = np.asarray(out["physics_streamflow"])
        assert np.all(q <= 2.0 * q_star + 1e-6)
        assert q[0].sum() <= 1e-3  # the arid basin gets (almost) nothing
        rain = np.asarray(batch["forcing"]["precipitation"]).sum(1)
        assert np.all(q.sum(1) <= 2.0 * rain + 1e-3)  # long-term flow bounded by the rain (empty start)
