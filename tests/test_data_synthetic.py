"""Synthetic twins: known truth, water balance, reproducibility, noise."""

import numpy as np
import pytest

from difhydro.data import degree_day_snow, fulda_twin, load_camels_us, load_example, make_synthetic_twin, true_parameters
from difhydro.physics import ExpHydro, simulate

MODEL = ExpHydro()


@pytest.fixture(scope="module")
def twin():
    return fulda_twin(MODEL, n_basins=8, seed=3, noise=0.1)


def test_parameters_follow_the_fixed_map_inside_the_boxes(twin):
    attrs = np.stack([twin[f"attribute_{k}"].values for k in range(5)], axis=1)
    assert attrs.min() >= 0 and attrs.max() <= 1
    again = true_parameters(MODEL, attrs)
    for name, spec in MODEL.param_spec.items():
        p = twin[f"param_{name}"].values
        np.testing.assert_array_equal(p, again[name])
        margin = 0.05 * (spec.high - spec.low)
        assert p.min() >= spec.low + margin - 1e-5 and p.max() <= spec.high - margin + 1e-5
        assert p.std() > 0.02 * (spec.high - spec.low)  # basins really differ
    other = true_parameters(MODEL, attrs, mapping_seed=1)
    assert not np.allclose(other["smax"], again["smax"])


def test_true_flow_is_the_model_run_and_water_balance_closes(twin):
    forcing = {k: twin[k].values.T for k in MODEL.forcing_names}
    params = {k: twin[f"param_{k}"].values for k in MODEL.param_spec}
    state0 = {s: twin[f"initial_{s}"].values for s in MODEL.state_names}
    _, out = simulate(MODEL, params, forcing, state0)
    np.testing.assert_allclose(twin["true_streamflow"].values, np.asarray(out["streamflow"]).T, rtol=1e-5, atol=1e-6)
    # storage change = inputs - outputs over 10 years, per basin (float64 sums of float32 series)
    t = {k: twin[f"true_{k}"].values.astype(np.float64) for k in
         ("rainfall", "snowfall", "evapotranspiration_flux", "baseflow_flux", "surface_runoff_flux", "snow_storage", "soil_storage")}
    p = twin["precipitation"].values.astype(np.float64)
    np.testing.assert_allclose((t["rainfall"] + t["snowfall"]).sum(1), p.sum(1), rtol=1e-5)
    storage_change = (t["snow_storage"][:, -1] + t["soil_storage"][:, -1]
                      - twin["initial_snow_storage"].values - twin["initial_soil_storage"].values)
    net = p.sum(1) - (t["evapotranspiration_flux"] + t["baseflow_flux"] + t["surface_runoff_flux"]).sum(1)
    # measured residual <= 0.003 mm against ~9000 mm of precipitation (float32 round-off)
    np.testing.assert_allclose(storage_change, net, atol=1e-6 * p.sum(1).max())
    # plausible regional hydrology: 10 to 90 % of precipitation leaves as streamflow
    ratio = twin["true_streamflow"].values.sum(1) / p.sum(1)
    assert np.all((ratio > 0.1) & (ratio < 0.9))


def test_forcing_perturbation_and_noise(twin):
    fulda = load_example("fulda").isel(basin=0)
    shift = twin["shift_days"].values
    factor = twin["precipitation_factor"].values
    for i in range(twin.sizes["basin"]):
        np.testing.assert_allclose(twin["precipitation"].values[i], np.roll(fulda["precipitation"].values, shift[i]) * factor[i], rtol=1e-6)
        np.testing.assert_allclose(twin["temperature"].values[i], np.roll(fulda["temperature"].values, shift[i]) + twin["temperature_offset"].values[i], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(twin["day_length"].values[i], fulda["day_length"].values)
    assert len(set(zip(shift.tolist(), factor.round(4).tolist()))) == twin.sizes["basin"]
    q, q_true = twin["streamflow"].values, twin["true_streamflow"].values
    ok = q_true > 1e-3
    log_ratio = np.log(q[ok] / q_true[ok])
    assert log_ratio.std() == pytest.approx(0.1, rel=0.03)
    assert log_ratio.mean() == pytest.approx(-0.005, abs=0.003)  # mean-one noise: E[log] = -sigma^2/2
    assert (q >= 0).all()


def test_reproducible_noise_free_and_other_sources():
    a = fulda_twin(MODEL, n_basins=3, seed=5, noise=0.0, spinup_days=0)
    b = fulda_twin(MODEL, n_basins=3, seed=5, noise=0.0, spinup_days=0)
    np.testing.assert_array_equal(a["streamflow"].values, b["streamflow"].values)
    np.testing.assert_array_equal(a["streamflow"].values, a["true_streamflow"].values)
    assert (a["initial_soil_storage"].values == 0).all()
    with pytest.raises(ValueError, match=r"needs forcing \['temperature', 'day_length'\]"):
        make_synthetic_twin(MODEL, load_example("hymod"), 2)


def test_twin_from_camels_forcing(data_dir):
    root = data_dir / "camels_us"
    if not root.is_dir():
        pytest.skip(f"CAMELS-US subset not found at {root}")
    src = load_camels_us(root, basins=["01022500", "01031500"], forcing="daymet")
    ds = make_synthetic_twin(MODEL, src, 4, seed=0, spinup_days=200)
    # common gap-free record of both source basins: 2000-01-01 .. 2003-12-31
    assert str(ds["time"].values[0])[:10] == "2000-01-01" and ds.sizes["time"] == 1461
    assert set(ds["source_basin"].values.tolist()) == {"01022500", "01031500"}
    assert np.isfinite(ds["streamflow"].values).all()


def test_degree_day_snow_conserves_water(x64):
    rng = np.random.default_rng(0)
    p = rng.gamma(0.5, 4.0, (200, 3))
    t = 5 * np.sin(np.arange(200) / 20)[:, None] + rng.normal(0, 2, (200, 3))
    water, swe = degree_day_snow(p, t)
    np.testing.assert_allclose(p.sum(0), water.sum(0) + swe[-1], rtol=1e-12)
    assert np.all(swe >= 0) and np.all(water[t < 0] <= swe.max() + 1e-9)
