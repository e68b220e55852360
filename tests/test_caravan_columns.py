"""Caravan columns beyond the shared three forcing series: a user's copy with more ERA5-Land
series (the full Caravan has about 40) offers each one by name, with Caravan's units, as a
network input; a required column that a file lacks is an error naming the file. Day length,
derived from the gauge latitude, is an input by name too.

The copies are made in ``tmp_path`` from one basin of the shared subset (never written to)."""

import numpy as np
import pandas as pd
import pytest

from difhydro.data import DataFileError, load_caravan
from difhydro.data.caravan import caravan_column_attrs
from difhydro.experiment.config import load_config
from difhydro.experiment.data import prepare_data

GAUGE = "01022500"


@pytest.fixture
def copy_with_radiation(caravan, tmp_path):
    """One basin of the shared subset with two more columns: a Caravan series and a column
    of the user's own."""
    root = tmp_path / "caravan"
    (root / "timeseries/csv/camels").mkdir(parents=True)
    (root / "attributes/camels").mkdir(parents=True)
    table = pd.read_csv(caravan / f"timeseries/csv/camels/camels_{GAUGE}.csv")
    day = np.arange(len(table))
    table["surface_net_solar_radiation_mean"] = np.round(120 + 90 * np.sin(2 * np.pi * (day - 80) / 365.25), 3)
    table["my_index"] = day % 7
    table.to_csv(root / f"timeseries/csv/camels/camels_{GAUGE}.csv", index=False)
    for name in ("other", "caravan"):
        attrs = pd.read_csv(caravan / f"attributes/camels/attributes_{name}_camels.csv", dtype={"gauge_id": str})
        attrs[attrs["gauge_id"] == f"camels_{GAUGE}"].to_csv(root / f"attributes/camels/attributes_{name}_camels.csv",
                                                              index=False)
    return root, table


def test_a_further_caravan_column_loads_by_name_with_its_units(copy_with_radiation):
    root, table = copy_with_radiation
    ds = load_caravan(root, validate=False)
    radiation = ds["surface_net_solar_radiation_mean"]
    assert radiation.dims == ("basin", "time") and radiation.attrs["units"] == "W m-2"
    np.testing.assert_allclose(radiation.values[0], table["surface_net_solar_radiation_mean"].to_numpy(), rtol=1e-6)
    assert "units" not in ds["my_index"].attrs  # not a Caravan series: loaded, and said so
    assert "my_index" in ds.attrs["data_notes"] and "without units" in ds.attrs["data_notes"]


def test_a_required_column_missing_names_the_file(copy_with_radiation):
    root, _ = copy_with_radiation
    load_caravan(root, required_columns=["precipitation", "surface_net_solar_radiation_mean"], validate=False)
    with pytest.raises(DataFileError) as err:
        load_caravan(root, required_columns=["volumetric_soil_water_layer_1_mean"], validate=False)
    message = str(err.value)
    assert f"camels_{GAUGE}.csv" in message and "volumetric_soil_water_layer_1_mean" in message
    assert "surface_net_solar_radiation_mean" in message  # the columns the file has


def test_further_columns_and_day_length_are_network_inputs_of_a_config(copy_with_radiation):
    root, _ = copy_with_radiation
    cfg = load_config({"name": "t", "evaluations": ["temporal"], "models": {"lstm": {}},
                       "data": {"format": "caravan", "attributes": [],
                                "inputs": ["precipitation", "surface_net_solar_radiation_mean", "day_length"]}})
    data = prepare_data(cfg, data_dir=str(root))
    assert data.inputs == ["precipitation", "surface_net_solar_radiation_mean", "day_length"]
    assert data.basins == [GAUGE]
    # day length against FAO-56 written out here: eq. 24 (declination), 25 (sunset hour angle), 34
    lat = np.deg2rad(float(data.ds["gauge_lat"].values[0]))
    doy = pd.DatetimeIndex(data.ds["time"].values).dayofyear.to_numpy()
    delta = 0.409 * np.sin(2 * np.pi * doy / 365 - 1.39)
    hours = 24 / np.pi * np.arccos(-np.tan(lat) * np.tan(delta))
    np.testing.assert_allclose(data.ds["day_length"].values[0], hours, rtol=1e-5)
    assert 8.5 < hours.min() < 9.5 and 15.0 < hours.max() < 16.0  # 44.7 deg N (Maine)


@pytest.mark.parametrize("column, units", [
    ("dewpoint_temperature_2m_min", "degC"), ("temperature_2m_max", "degC"), ("surface_pressure_mean", "kPa"),
    ("volumetric_soil_water_layer_4_max", "m3 m-3"), ("snow_depth_water_equivalent_mean", "mm"),
    ("surface_net_thermal_radiation_mean", "W m-2"), ("u_component_of_wind_10m_mean", "m s-1"),
    ("potential_evaporation_sum_FAO_PENMAN_MONTEITH", "mm d-1"), ("total_precipitation_sum", "mm d-1"),
    ("surface_pressure_median", None), ("my_index", None), ("temperature_2m", "degC"),
])
def test_caravan_column_units(column, units):
    attrs = caravan_column_attrs(column)
    assert (attrs and attrs["units"]) == units


def test_a_config_input_missing_from_the_files_names_the_file(copy_with_radiation):
    root, _ = copy_with_radiation
    cfg = load_config({"name": "t", "evaluations": ["temporal"], "models": {"lstm": {}},
                       "data": {"format": "caravan", "attributes": [],
                                "inputs": ["precipitation", "volumetric_soil_water_layer_1_mean"]}})
    with pytest.raises(DataFileError) as err:
        prepare_data(cfg, data_dir=str(root))
    assert f"camels_{GAUGE}.csv" in str(err.value) and "volumetric_soil_water_layer_1_mean" in str(err.value)


def test_an_input_with_gaps_is_an_error_when_named_and_a_note_when_automatic(copy_with_radiation, monkeypatch):
    import difhydro.experiment.data as experiment_data

    root, table = copy_with_radiation
    table.loc[table["date"].between("2000-01-01", "2000-01-10"), "my_index"] = np.nan  # in the training period
    table.to_csv(root / f"timeseries/csv/camels/camels_{GAUGE}.csv", index=False)
    named = {"name": "t", "evaluations": ["temporal"], "models": {"lstm": {}},
             "data": {"format": "caravan", "attributes": [], "inputs": ["precipitation", "my_index"],
                      "policies": {"my_index": "mask"}}}
    with pytest.raises(experiment_data.DataError, match=r"data.inputs: \['my_index'\] have missing values"):
        prepare_data(load_config(named), data_dir=str(root))
    monkeypatch.setitem(experiment_data.NETWORK_INPUTS, "caravan", ("precipitation", "my_index", "not_a_column"))
    data = prepare_data(load_config({**named, "data": {**named["data"], "inputs": "auto"}}), data_dir=str(root))
    assert data.inputs == ["precipitation"]
    said = "\n".join(data.notes)
    assert "['not_a_column'] are not in the caravan data and are not used" in said
    assert "['my_index'] have missing values" in said and "are not used" in said


def test_negative_data_pet_in_the_physics_needs_a_clip_policy(copy_with_radiation):
    """ERA5-Land's PET is negative on condensation days (16 in this basin, down to -0.43 mm d-1);
    read by the buckets as PET it would add water. data.pet = 'data' refuses it unless clipped."""
    import difhydro.experiment.data as experiment_data

    root, table = copy_with_radiation
    negative = table["potential_evaporation_sum"] < 0
    assert negative.sum() == 16
    raw = {"name": "t", "evaluations": ["temporal"], "models": {"hbv_calibrated": {}},
           "data": {"format": "caravan", "attributes": [], "pet": "data"}}
    with pytest.raises(experiment_data.DataError, match=r"pet has 16 negative value\(s\) \(min -0.43 mm d-1\) in 1 basin"):
        prepare_data(load_config(raw), data_dir=str(root))
    clipped = {**raw, "data": {**raw["data"], "policies": {"pet": {"clip": [0, None]}}}}
    data = prepare_data(load_config(clipped), data_dir=str(root))
    pet = data.ds["pet"].sel(basin=GAUGE).values
    assert pet.min() == 0.0 and (pet == 0).sum() >= 16
    np.testing.assert_allclose(pet[~negative.to_numpy()], table.loc[~negative, "potential_evaporation_sum"], rtol=1e-6)


def test_train_config_passes_weight_decay_and_input_noise():
    from difhydro.experiment.config import model_training
    from difhydro.experiment.run import train_config

    cfg = load_config({"name": "t", "evaluations": ["temporal"], "models": {"lstm": {}},
                       "training": {"weight_decay": 0.01, "input_noise": 0.2}})
    tc = train_config(model_training(cfg, "lstm"), seed=3, progress=False)
    assert (tc.weight_decay, tc.input_noise, tc.seed) == (0.01, 0.2, 3)


def test_the_peer_reads_every_network_input_or_is_not_run():
    """neuralhydrology gets the file column of each input; before, an input named ``pet``
    (data.pet = 'data') was dropped from the peer's inputs without a word."""
    from difhydro.experiment.run import peer_inputs

    assert peer_inputs(["precipitation", "temperature", "pet_era5"], "oudin") == [
        "total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
    assert peer_inputs(["precipitation", "temperature", "pet"], "data") == [
        "total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
    assert peer_inputs(["precipitation", "surface_net_solar_radiation_mean"], "oudin")[1] == "surface_net_solar_radiation_mean"
    with pytest.raises(ValueError, match=r"derived input\(s\) \['pet'\]"):
        peer_inputs(["precipitation", "pet"], "oudin")  # Oudin's, computed by difhydro
    with pytest.raises(ValueError, match="day_length"):
        peer_inputs(["precipitation", "day_length"], "data")


def test_models_without_the_lstm_leave_out_its_neuralhydrology_peer():
    from difhydro.experiment.config import select_models

    cfg = load_config({"name": "t", "models": {"lstm": {}, "transformer": {}}, "peers": {"neuralhydrology": True}})
    assert select_models(cfg, "transformer").peers.neuralhydrology is False
    assert select_models(cfg, "lstm,transformer").peers.neuralhydrology is True
    assert list(select_models(cfg, "transformer").models) == ["transformer"]


def test_a_model_reads_its_own_pet(copy_with_radiation, tmp_path):
    """``models.<name>.pet`` overrides ``data.pet`` for one model (calibrated HBV loses with
    ERA5-Land's PET, the other process models gain, docs/regional_study.md): the data carry
    the other method's PET as its own variable, the run trains and predicts the model with
    it and records it in model.json."""
    from difhydro.experiment.config import ConfigError
    from difhydro.experiment.data import with_pet
    from difhydro.experiment.models import SavedModel, predict_unit
    from difhydro.experiment.run import train_run
    from difhydro.physics import oudin_pet

    root, _ = copy_with_radiation
    raw = {"name": "own_pet", "evaluations": ["temporal"], "seeds": [0],
           "models": {"hbv_calibrated": {"pet": "oudin"}, "exphydro_calibrated": {}},
           "data": {"format": "caravan", "attributes": [], "pet": "data", "policies": {"pet": {"clip": [0, None]}}},
           "periods": {"train": "2000-10-01:2002-09-30", "test": "2003-10-01:2004-09-30"},
           "training": {"calibration_steps": 3, "warmup": 30}}
    with pytest.raises(ConfigError, match=r"models.hbv_calibrated.pet: 'penman' is not a PET method"):
        load_config({**raw, "models": {"hbv_calibrated": {"pet": "penman"}}})
    data = prepare_data(load_config(raw), data_dir=str(root))
    assert any("Oudin" in n and "read by hbv_calibrated" in n for n in data.notes)
    ds = data.ds
    doy = ds["time"].dt.dayofyear.values[None, :].astype(np.float32)
    expected = np.asarray(oudin_pet(ds["temperature"].values, ds["gauge_lat"].values[:, None], doy))
    np.testing.assert_allclose(with_pet(ds, "oudin")["pet"].values, expected, rtol=1e-6)
    assert with_pet(ds, "data") is ds and with_pet(ds, None) is ds
    assert float(np.abs(expected - ds["pet"].values).mean()) > 0.3  # the two PETs differ (mm d-1)

    run, _, failures = train_run(raw, out=tmp_path / "run", data_dir=str(root), progress=False, log=lambda *a: None)
    assert not failures
    hbv = SavedModel.load(next((run / "models/hbv_calibrated").rglob("model.json")).parent)
    exphydro = SavedModel.load(next((run / "models/exphydro_calibrated").rglob("model.json")).parent)
    assert hbv.info["pet"] == "oudin" and exphydro.info["pet"] == "data"
    ran = predict_unit(hbv, ds, [GAUGE], data.periods["test"])["simulated"]
    by_hand = {k: v for k, v in hbv.info.items() if k != "pet"}  # a model without its own PET reads ds["pet"]
    oudin_ds = ds.assign(pet=(("basin", "time"), expected.astype(np.float32)))
    np.testing.assert_allclose(ran, predict_unit(SavedModel(hbv.folder, by_hand), oudin_ds, [GAUGE],
                                                 data.periods["test"])["simulated"], rtol=1e-6)
    era5 = predict_unit(SavedModel(hbv.folder, by_hand), ds, [GAUGE], data.periods["test"])["simulated"]
    assert float(np.abs(ran - era5).mean()) > 0.01
