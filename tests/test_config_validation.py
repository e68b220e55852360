"""Every config value is checked in one place, before any data is read: one line naming the key."""

import dataclasses
import inspect
import math

import pytest
import yaml

from difhydro.experiment.config import (
    ConfigError,
    FolderConfig,
    PeriodsConfig,
    config_hash,
    config_to_dict,
    describe,
    load_config,
    model_training,
)

BASE = {"name": "t", "evaluations": ["temporal"], "models": {"lstm": {}, "exphydro_calibrated": {}}}


def _with(dotted: str, value) -> dict:
    cfg = yaml.safe_load(yaml.safe_dump(BASE))
    node = cfg
    *parents, last = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return cfg


def _refused(cfg, key: str, words: str = ""):
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    message = str(err.value)
    assert "\n" not in message and message.startswith(key), message
    assert words in message, message
    return message


# -- numbers: sign, zero, NaN / inf, and every other YAML type against an integer -----------------

@pytest.mark.parametrize("key, value, words", [
    ("training.learning_rate", 0.0, "> 0"),
    ("training.learning_rate", -1e-3, "> 0"),
    ("training.learning_rate", math.nan, "finite"),
    ("training.learning_rate", math.inf, "finite"),
    ("training.learning_rate", "1e-3", "1.0e-3"),  # YAML 1.1 reads 1e-3 as text: say so
    ("training.clip_norm", 0.0, "> 0"),
    ("training.clip_norm", -1.0, "> 0"),
    ("training.calibration_learning_rate", 0.0, "> 0"),
    ("training.calibration_steps", 0, ">= 1"),
    ("training.min_observations", 0, ">= 1"),
    ("training.epochs", 0, ">= 1"),
    ("training.steps_per_epoch", -5, ">= 1"),
    ("training.batch_size", 0, ">= 1"),
    ("training.window", 0, ">= 1"),
    ("training.warmup", -1, ">= 0"),
    ("training.epochs", True, "integer"),
    ("training.epochs", 3.5, "integer"),
    ("training.epochs", 3.0, "integer"),
    ("training.epochs", "10", "integer"),
    ("training.epochs", None, "integer"),
    ("peers.threads", 0, ">= 1"),
    ("peers.neuralhydrology", "yes", "true/false"),
    ("data.twin_basins", 0, ">= 1"),
    ("folds", 0, ">= 1"),
    ("data.basins", 0, ">= 1"),
    ("data.basins", 2.5, "integer"),
])
def test_numbers_out_of_range_or_of_another_type_are_refused(key, value, words):
    _refused(_with(key, value), key, words)


def test_cross_key_ranges():
    _refused(_with("training.warmup", 730), "training.warmup", "[0, training.window)")
    _refused({**BASE, "evaluations": ["temporal", "kfold"], "folds": 1}, "folds", "at least 2")
    # each model's own training settings, merged with training:, are checked the same way
    _refused(_with("models.lstm.training", {"window": 100}), "models.lstm.training.warmup", "[0, models.lstm.training.window)")
    _refused(_with("models.lstm.training", {"learning_rate": -1.0}), "models.lstm.training.learning_rate", "> 0")
    _refused(_with("models.lstm.training", {"epoch": 3}), "models.lstm.training.epoch", "unknown key")
    ok = load_config(_with("models.lstm.training", {"window": 200, "warmup": 100}))
    assert model_training(ok, "lstm").window == 200 and model_training(ok, "exphydro_calibrated").window == 730


def test_valid_numbers_are_accepted_and_resolved():
    cfg = load_config({**BASE, "training": {"learning_rate": 1, "clip_norm": None, "warmup": 0, "window": 1},
                       "folds": 1, "seeds": [0, 3]})
    assert cfg.training.learning_rate == 1.0 and isinstance(cfg.training.learning_rate, float)
    assert cfg.training.clip_norm is None and cfg.seeds == [0, 3]


# -- lists: duplicates, item types, reserved values ---------------------------------------------

@pytest.mark.parametrize("key, value, words", [
    ("seeds", [0, 0], "listed twice"),
    ("seeds", [], "empty"),
    ("seeds", [1.5], "integer"),
    ("seeds", [True], "integer"),
    ("seeds", [-1], ">= 0"),
    ("evaluations", ["temporal", "temporal"], "listed twice"),
    ("evaluations", [], "empty"),
    ("evaluations", ["spatial"], "choose from"),
    ("data.attributes", ["area", "area"], "listed twice"),
    ("data.attributes", "all", "'auto' or a list"),
    ("data.inputs", ["precipitation", 3], "expected a name"),
    ("data.inputs", ["precipitation", "precipitation"], "listed twice"),
    ("data.basins", ["01013500", "01013500"], "listed twice"),
    ("data.basins", [1013500], "quoted"),
    ("data.basins", [], "empty"),
    ("ensemble_models", ["lstm", "lstm"], "listed twice"),
    ("ensemble_models", ["hybrid"], "not a configured model"),
    ("kfold_models", ["lstm_ensemble"], "not a configured model"),
    ("kfold_models", ["lstm", "lstm"], "listed twice"),
])
def test_lists_with_repeats_wrong_items_or_reserved_values_are_refused(key, value, words):
    _refused(_with(key, value), key, words)


@pytest.mark.parametrize("name, words", [("lstm_ensemble", "reserved"), ("nh_cudalstm", "reserved"),
                                         ("nh_arlstm", "reserved"),
                                         ("gru", "unknown model")])
def test_reserved_and_unknown_model_names_are_refused(name, words):
    _refused(_with(f"models.{name}", {}), f"models.{name}", words)


# -- names that could escape the run folder -----------------------------------------------------

@pytest.mark.parametrize("name", ["../up", "a/b", "a\\b", "..", ".hidden", "a\x00b", "", " ", "x..y"])
def test_names_that_could_escape_the_run_folder_are_refused(name):
    _refused(_with("name", name), "name", "safe folder name")


def test_ordinary_names_are_accepted():
    assert load_config(_with("name", "CAMELS run 2 (lstm)")).name == "CAMELS run 2 (lstm)"


# -- unknown keys at every depth -----------------------------------------------------------------

@pytest.mark.parametrize("key", ["modls", "data.dirs", "training.epoch", "peers.thread", "periods.valid",
                                 "data.folder.variable", "models.lstm.hidden"])
def test_unknown_keys_are_refused_at_every_depth(key):
    _refused(_with(key, 1), key, "unknown")


def test_folder_section_is_checked_like_any_other():
    folder = {"variables": {"precipitation": "P", "streamflow": "Q"}, "units": {"precipitation": "mm/d", "streamflow": "mm/d"}}
    _refused(_with("data.folder", {**folder, "units": {**folder["units"], "temperature": "degC"}}),
             "data.folder.units.temperature", "not in data.folder.variables")
    _refused(_with("data.folder", {**folder, "units": {"precipitation": "mm/d"}}), "data.folder.units", "streamflow")
    _refused(_with("data.folder", {**folder, "variables": {"precipitation": 3}}), "data.folder.variables.precipitation")
    _refused(_with("data.folder", {**folder, "area_units": "ha"}), "data.folder.area_units", "choose from")
    _refused(_with("data.folder", {**folder, "day_length": "no"}), "data.folder.day_length", "true/false")
    _refused(_with("data.folder", [1]), "data.folder", "mapping")
    _refused(_with("data.format", "folder"), "data.folder.variables", "variable: column")
    # the keys given are kept as given (load_folder's defaults apply to the others), null included
    cfg = load_config(_with("data.folder", {**folder, "attributes_file": None, "latitude": "lat"}))
    assert cfg.data.folder == {**folder, "attributes_file": None, "latitude": "lat"}


def test_folder_keys_are_those_of_load_folder_with_its_defaults():
    from difhydro.data import load_folder

    params = inspect.signature(load_folder).parameters
    config_side = {"root", "basins", "start", "end", "validate", "policies", "required_attributes"}
    assert set(params) - config_side <= {f.name for f in dataclasses.fields(FolderConfig)}
    for f in dataclasses.fields(FolderConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        expected = params[f.name].default
        # a mapping key given as {} means "none": load_folder's required argument or its None default
        assert default == expected or (default == {} and expected in (inspect.Parameter.empty, None)), f.name


# -- periods -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, words", [("1999-10-01", "both ends"), ("1999-13-01:2008-09-30", "not a date"),
                                          ("2008-09-30:1999-10-01", "before its start"), (None, "text or a list"),
                                          ("1999/10/01:2008/09/30", "not a date")])
def test_bad_periods_are_refused(value, words):
    _refused(_with("periods.train", value), "periods.train", words)


def test_periods_resolve_to_iso_pairs_and_round_trip():
    cfg = load_config(_with("periods", {"train": ["1999-10-01", "2008-09-30"], "test": "1989-10-01:1999-09-30"}))
    assert cfg.periods == {"train": ("1999-10-01", "2008-09-30"), "test": ("1989-10-01", "1999-09-30")}
    again = load_config(config_to_dict(cfg))  # what a run directory stores and reads back
    assert config_hash(again) == config_hash(cfg)
    assert {f.name for f in dataclasses.fields(PeriodsConfig)} >= {"train", "test"}


# -- policies: one grammar with the validation pass --------------------------------------------

@pytest.mark.parametrize("policy", ["mean", "median", "impute", "mask", "interpolate", "interpolate:5",
                                    {"action": "mask", "clip": [0, None]}, {"impute": "median", "action": "impute"},
                                    {"action": "interpolate", "max_gap": 2}, {"range": [0, 50]}])
def test_every_policy_the_validation_accepts_the_config_accepts(policy):
    from difhydro.data import Policy

    Policy.parse(policy)  # the validation accepts it ...
    load_config(_with("data.policies", {"precipitation": policy}))  # ... and so does the config


@pytest.mark.parametrize("policy, words", [("fill", "policy action"), ("interpolate:x", "whole number"),
                                           ("mean:3", "only 'interpolate"), ({"action": "drop"}, "policy action"),
                                           ({"max_gap": -1, "action": "interpolate"}, ">= 0"),
                                           ({"clip": 5}, "pair"), ({"impute": "mode"}, "mean' or 'median"),
                                           ({"when": 1}, "unknown policy field"), (3, "a string or a mapping")])
def test_bad_policies_are_refused_by_config_and_validation_alike(policy, words):
    from difhydro.data import Policy

    _refused(_with("data.policies", {"attribute_0": policy}), "data.policies.attribute_0", words)
    with pytest.raises((ValueError, TypeError), match=words.replace("(", r"\(")):
        Policy.parse(policy)


# -- model options against the build functions ---------------------------------------------------

@pytest.mark.parametrize("options, key, words", [
    ({"hidden_size": "abc"}, "models.lstm.hidden_size", "integer"),
    ({"hidden_size": -3}, "models.lstm.hidden_size", ">= 0"),
    ({"hidden_size": 8.0}, "models.lstm.hidden_size", "integer"),
    ({"hidden_size": True}, "models.lstm.hidden_size", "integer"),
    ({"dropout": "x"}, "models.lstm.dropout", "number or null"),
    ({"dropout": 1.0}, "models.lstm.dropout", "< 1.0"),
    ({"dropout": -0.1}, "models.lstm.dropout", ">= 0.0"),
    ({"hidden": 3}, "models.lstm.hidden", "unknown option"),
])
def test_model_options_are_checked_against_the_build_function(options, key, words):
    _refused(_with("models.lstm", options), key, words)


def test_model_option_types_that_fit_are_accepted():
    cfg = load_config({**BASE, "models": {"lstm": {"dropout": 0, "hidden_size": 0},  # a float option takes an int
                                          "dpl_hbv": {"dynamic_params": ["beta"], "lstm_input_layer": True},
                                          "dpl_exphydro": {"network": "attention"}}})
    assert cfg.models["lstm"] == {"dropout": 0, "hidden_size": 0}
    assert load_config(_with("models.lstm", {"dropout": None})).models["lstm"]["dropout"] is None
    _refused(_with("models.dpl_exphydro", {"network": "gru"}), "models.dpl_exphydro.network", "choose from")
    _refused(_with("models.dpl_hbv", {"dynamic_params": [3]}), "models.dpl_hbv.dynamic_params", "names")
    _refused(_with("models.hybrid", {"pet_source": "era5"}), "models.hybrid.pet_source", "choose from")


def test_registry_choices_are_those_the_models_accept():
    from difhydro.hybrid import MODELS
    from difhydro.hybrid import models as classes
    from difhydro.physics import exphydro

    assert set(MODELS["hybrid"].limits["pet_source"]["choices"]) == set(exphydro._PET_SOURCES)
    assert set(MODELS["dpl_exphydro"].limits["network"]["choices"]) == set(classes._NETWORKS)


# -- the YAML itself -------------------------------------------------------------------------------

def test_a_key_given_twice_in_one_mapping_is_refused_with_its_lines(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("name: a\ntraining:\n  epochs: 3\n  batch_size: 8\n  epochs: 30\n")
    with pytest.raises(ConfigError, match=r"line 5.*'epochs' given twice \(first on line 3\)"):
        load_config(path)
    # YAML merge keys are not duplicates
    path.write_text("base: &b {epochs: 3}\n")
    with pytest.raises(ConfigError, match="base: unknown key"):
        load_config(path)


@pytest.mark.parametrize("text, words", [("- a\n- b\n", "mapping of keys"), ("just text\n", "mapping of keys"),
                                         ("name: [bad\n", "not valid YAML"), ("data: 5\n", "data: expected a mapping")])
def test_a_config_that_is_not_a_mapping_is_refused(tmp_path, text, words):
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_config(path, {"data.dir": "/x"})


def test_describe_lists_every_key_with_its_checks():
    text = describe()
    for key in ("data.folder.variables", "data.folder.units", "data.folder.attributes_file", "data.folder.basin_column",
                "data.folder.time_column", "data.folder.area", "data.folder.area_units", "data.folder.latitude",
                "data.folder.longitude", "data.folder.date_format", "data.folder.delimiter", "periods.train",
                "training.learning_rate", "models.lstm.hidden_size", "models.dpl_hbv.components"):
        assert f"\n{key} = " in text or f"  {key} = " in text, key
    assert "training.learning_rate = 0.002: peak Adam learning rate (> 0)" in text


def test_the_monitor_choices_are_the_validation_loss_and_every_metric():
    from difhydro.experiment.config import MONITORS
    from difhydro.training.metrics import METRICS

    assert MONITORS[0] == "loss" and sorted(MONITORS[1:]) == sorted(METRICS)


def test_the_loss_choices_are_the_named_losses():
    from difhydro.experiment.config import LOSS_NAMES
    from difhydro.training import LOSSES

    built_in = [k for k, fn in LOSSES.items() if fn.__module__.startswith("difhydro.training")]  # not contrib's
    assert sorted(LOSS_NAMES) == sorted(built_in)


def test_every_plausibility_check_is_a_policy_key_the_config_names():
    from difhydro.data.plausibility import CHECKS
    from difhydro.experiment.config import DataConfig, load_config

    doc = {f.name: f for f in __import__("dataclasses").fields(DataConfig)}["policies"].metadata["doc"]
    for name in CHECKS:
        assert name in doc
        assert load_config({"data": {"policies": {name: "flag"}}}).data.policies == {name: "flag"}


@pytest.mark.parametrize("key", ["training.weight_decay", "training.input_noise"])
def test_regularisation_keys_are_non_negative_numbers_defaulting_to_off(key):
    assert getattr(load_config(BASE).training, key.split(".")[1]) == 0.0
    _refused(_with(key, -0.01), key, ">= 0")
    _refused(_with(key, "1e-4"), key, "decimal point")
    _refused(_with(key, float("inf")), key, "finite")
    assert getattr(load_config(_with(key, 1)).training, key.split(".")[1]) == 1.0  # an integer resolves to a float
    own = _with(f"models.lstm.training.{key.split('.')[1]}", 0.05)
    assert getattr(model_training(load_config(own), "lstm"), key.split(".")[1]) == 0.05



def test_autoregressive_lstm_refuses_a_probabilistic_head():
    with pytest.raises(ConfigError, match=r"models.lstm.autoregressive: the autoregressive LSTM has a point head"):
        load_config({"name": "t", "models": {"lstm": {"autoregressive": True, "head": "cmal",
                                                      "training": {"loss": "nll"}}}})
    load_config({"name": "t", "models": {"lstm": {"autoregressive": True}}})


def test_clip_in_training_only_on_the_regression_lstm():
    with pytest.raises(ConfigError, match=r"models.lstm.clip_in_training: false applies to the plain"):
        load_config({"name": "t", "models": {"lstm": {"clip_in_training": False, "head": "cmal",
                                                      "training": {"loss": "nll"}}}})
    load_config({"name": "t", "models": {"lstm": {"clip_in_training": False}}})
    load_config({"name": "t", "models": {"lstm": {"clip_in_training": False, "autoregressive": True}}})


def test_a_window_scoring_one_day_needs_that_day_observed_not_30():
    from difhydro.experiment.config import model_training

    cfg = load_config({"name": "t", "models": {"lstm": {"training": {"window": 366, "warmup": 365}}, "dpl_hbv": {}},
                       "training": {"window": 270, "warmup": 90}})
    assert model_training(cfg, "lstm").required_observations() == 1  # Kratzert et al.: one scored day
    assert model_training(cfg, "dpl_hbv").required_observations() == 30  # 180 scored days: the default
    cfg = load_config({"name": "t", "training": {"window": 300, "warmup": 290, "min_observations": 5}})
    assert cfg.training.required_observations() == 5
