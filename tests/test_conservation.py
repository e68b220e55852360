"""Water is conserved exactly at every threshold of every process model, smooth and hard.

A property test puts states and forcing exactly on the thresholds (snow/rain temperature,
melt temperature, empty store, full store, field capacity, upper-zone threshold, critical
and wilting moisture, ...), runs one step and checks that the change of the storages equals
the precipitation (the forcing, not a reported rain/snow split) minus evapotranspiration and
runoff, in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difhydro.physics import HBV, DegreeDaySnow, ExpHydro, VicBucket, simulate
from difhydro.physics.template import LinearReservoir

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
RTOL = 1e-10


_simulate = jax.jit(lambda model, p, f, s0: simulate(model, p, f, s0, check=False), static_argnums=0)


def _one_step(model, params, forcing, state0):
    """One step in float64 (the setting does not leak out of this function)."""
    with jax.enable_x64(True):
        f = {k: jnp.asarray([v], jnp.float64) for k, v in forcing.items() if k in model.forcing_names}
        p = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        s0 = {k: jnp.asarray(v, jnp.float64) for k, v in state0.items()}
        _, out = _simulate(model, p, f, s0)
        return {k: np.asarray(v[0], np.float64) for k, v in out.items()}


def _check(before, after, inflow, outflow):
    scale = max(1.0, abs(inflow), abs(before))
    assert after - before == pytest.approx(inflow - outflow, rel=RTOL, abs=RTOL * scale)


temperature_offsets = st.sampled_from([0.0, 0.0, 1e-12, -1e-12, 0.5, -0.5])


@SETTINGS
@given(smooth=st.booleans(), solver=st.sampled_from(["euler", "rk4"]), substeps=st.sampled_from([1, 3]),
       at_tmin=st.booleans(), at_tmax=st.booleans(), soil=st.sampled_from(["empty", "full", "half"]),
       snow=st.sampled_from([0.0, 5.0]), rain=st.sampled_from([0.0, 7.0]), dt=temperature_offsets)
def test_exphydro_conserves_water_at_its_thresholds(smooth, solver, substeps, at_tmin, at_tmax, soil, snow, rain, dt):
    params = dict(f=0.02, smax=400.0, qmax=18.0, df=2.5, tmax=1.0, tmin=-1.0)
    temperature = (params["tmin"] if at_tmin else params["tmax"] if at_tmax else 3.0) + dt
    s1 = {"empty": 0.0, "full": params["smax"], "half": 200.0}[soil]
    model = ExpHydro(smooth=smooth, solver=solver, n_substeps=substeps)
    out = _one_step(model, params, {"precipitation": rain, "temperature": temperature, "day_length": 12.0},
                    {"snow_storage": snow, "soil_storage": s1})
    outflow = out["evapotranspiration_flux"] + out["baseflow_flux"] + out["surface_runoff_flux"]
    _check(snow + s1, out["snow_storage"] + out["soil_storage"], rain, outflow)


def test_exphydro_hard_split_at_tmin_keeps_the_precipitation():
    """The bug the EXP-HYDRO authors' code comparison found: at T == Tmin with hard steps
    neither rain nor snow fell."""
    out = _one_step(ExpHydro(smooth=False), dict(f=0.02, smax=400.0, qmax=18.0, df=2.5, tmax=1.0, tmin=-1.0),
                    {"precipitation": 10.0, "temperature": -1.0, "day_length": 12.0},
                    {"snow_storage": 0.0, "soil_storage": 400.0})
    assert float(out["rainfall"] + out["snowfall"]) == 10.0
    # and at S1 == Smax, ET and baseflow are those of a full bucket, not both zero
    assert float(out["evapotranspiration_flux"]) > 0 and float(out["baseflow_flux"]) > 0


@SETTINGS
@given(smooth=st.booleans(), at_tt=st.booleans(), sm=st.sampled_from(["zero", "fc", "half"]),
       suz=st.sampled_from(["zero", "uzl", "high"]), mw=st.sampled_from(["zero", "cwh", "high"]),
       rain=st.sampled_from([0.0, 8.0]), dt=temperature_offsets, components=st.sampled_from([1, 2]))
def test_hbv_conserves_water_at_its_thresholds(smooth, at_tt, sm, suz, mw, rain, dt, components):
    model = HBV(smooth=smooth, n_components=components, use_betaet=True)
    params = {k: s.typical for k, s in model.param_spec.items()}
    params.update(fc=200.0, uzl=20.0, cwh=0.1, tt=0.0)
    if components > 1:
        params = {k: np.full(components, v) for k, v in params.items()}
    snowpack = 30.0
    state = {"snowpack": snowpack,
             "meltwater": {"zero": 0.0, "cwh": 0.1 * snowpack, "high": 5.0}[mw],
             "soil_moisture": {"zero": 0.0, "fc": 200.0, "half": 100.0}[sm],
             "upper_zone": {"zero": 0.0, "uzl": 20.0, "high": 35.0}[suz], "lower_zone": 10.0}
    state = {k: np.full(components, v) if components > 1 else v for k, v in state.items()}
    temperature = (0.0 if at_tt else 4.0) + dt
    out = _one_step(model, params, {"precipitation": rain, "temperature": temperature, "pet": 3.0}, state)
    total = lambda s: float(np.mean(sum(np.asarray(s[k], np.float64) for k in model.state_names)))  # noqa: E731
    outflow = float(out["evapotranspiration"] + out["streamflow"] - out["soil_floor_gain"])
    _check(total(state), total(out), rain, outflow)


@SETTINGS
@given(layers=st.sampled_from(["wilting", "critical", "full", "residual", "half"]), snow=st.booleans(),
       at_tmin=st.booleans(), rain=st.sampled_from([0.0, 25.0]), ds_equals_ws=st.booleans(), substeps=st.sampled_from([1, 4]))
def test_vic_conserves_water_at_its_thresholds(layers, snow, at_tmin, rain, ds_equals_ws, substeps):
    model = VicBucket(snow=snow, n_substeps=substeps, residual_moisture=5.0)
    soil = model.soil(jnp.float64)
    level = {"wilting": soil.wilting, "critical": soil.critical, "full": soil.capacity, "residual": soil.residual,
             "half": tuple(0.5 * (c + r) for c, r in zip(soil.capacity, soil.residual))}[layers]
    state = {f"soil_moisture_layer{i + 1}": float(level[i]) for i in range(3)}
    params = {k: s.typical for k, s in model.param_spec.items()}
    if ds_equals_ws:
        params["ds"] = params["ws"]
    forcing = {"precipitation": rain, "pet": 4.0}
    if snow:
        state["snow_storage"] = 10.0
        forcing["temperature"] = params["tmin"] if at_tmin else params["tmax"]
    out = _one_step(model, params, forcing, state)
    before = sum(state.values())
    after = float(sum(out[k] for k in model.state_names))
    _check(before, after, rain, float(out["evapotranspiration"] + out["streamflow"]))


@SETTINGS
@given(smooth=st.booleans(), at=st.sampled_from(["tmin", "tmax", "warm", "cold"]), swe=st.sampled_from([0.0, 3.0]),
       p=st.sampled_from([0.0, 6.0]))
def test_snow_and_template_conserve_water_at_their_thresholds(smooth, at, swe, p):
    params = {"df": 2.5, "tmax": 1.0, "tmin": -1.0}
    temperature = {"tmin": -1.0, "tmax": 1.0, "warm": 5.0, "cold": -5.0}[at]
    out = _one_step(DegreeDaySnow(smooth=smooth), params, {"precipitation": p, "temperature": temperature},
                    {"snow_storage": swe})
    _check(swe, float(out["snow_storage"]), p, float(out["liquid_water_input"]))
    model = LinearReservoir(n_substeps=2)
    out = _one_step(model, {**params, "k": 0.3}, {"precipitation": p, "temperature": temperature},
                    {"snow_storage": swe, "storage": 0.0})
    _check(swe, float(out["snow_storage"] + out["storage"]), p, float(out["streamflow"]))
