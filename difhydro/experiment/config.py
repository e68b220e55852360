"""Experiment configuration: one schema, its defaults and its validation.

A config is a YAML file whose sections mirror :class:`Config`; every key, its default and
its checks are declared once, by :func:`field` in the dataclasses below (this module is the
one place where defaults live). :func:`load_config` reads a file (or a mapping), validates
it in full and returns a frozen :class:`Config`; any problem is a :class:`ConfigError` with
one line that names the key and the accepted values. :func:`config_hash` identifies a
resolved config (run directories keep it, so that ``--resume`` refuses a changed
configuration).

The module imports neither JAX nor xarray (the registry, the period and the policy grammars
it checks against are light), so the ``difhydro`` command reports a config error at once.

Example (``benchmarks/configs/smoke.yml``)::

    name: smoke
    data: {basins: 6}
    evaluations: [temporal, kfold]
    folds: 2
    models:
      lstm: {hidden_size: 32}
      dpl_hbv: {hidden_size: 32, components: 2}
    training: {epochs: 2, steps_per_epoch: 30, batch_size: 16, window: 400, warmup: 200}

How a key is checked (the metadata of :func:`field`): its annotation gives the accepted
YAML types (an ``int`` accepts neither ``true``, ``3.0``, ``"10"`` nor ``null``; a ``float``
accepts an integer, never NaN or infinity); ``choices``, ``ge``/``gt``/``le``/``lt`` bound
a value or every item of a list; ``unique`` and ``nonempty`` constrain lists; ``items`` is
the type of a list's items; ``kind`` names a value form (``name``, ``period``, ``basins``,
``names``, ``policies``, ``columns``, ``models``) and ``schema`` a section kept as a
mapping of the keys given (``periods``, ``data.folder``). A section's ``check`` method holds
its cross-key rules (``training.warmup < training.window``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..data.periods import period_bounds
from ..data.policies import policy_fields
from ..hybrid.registry import MODELS, check_model_options, model_options, option_types, probabilistic, reserved_name

__all__ = [
    "ConfigError",
    "DataConfig",
    "FolderConfig",
    "PeriodsConfig",
    "TrainingConfig",
    "PeersConfig",
    "Config",
    "load_config",
    "config_to_dict",
    "config_hash",
    "parse_period",
    "check_name",
    "MODEL_KEYS",
    "registry_options",
    "select_models",
    "model_training",
    "describe",
    "FORMATS",
    "FORCINGS",
    "PET_METHODS",
    "EVALUATIONS",
]

FORMATS = ("auto", "camels_us", "caravan", "folder", "twin")
#: CAMELS-US forcing products (difhydro.data.FORCING_PRODUCTS) and auto
FORCINGS = ("auto", "daymet", "maurer", "maurer_extended", "nldas")
PET_METHODS = ("auto", "oudin", "hargreaves", "hamon", "data")
EVALUATIONS = ("temporal", "kfold")
#: the named losses of difhydro.training (listed here because that module imports JAX; a test
#: keeps the two lists equal)
LOSS_NAMES = ("nse_star", "mse", "rmse", "rmse_low_flow", "nll")
#: what training.monitor accepts: the validation loss or a metric of difhydro.training.metrics.METRICS
#: (listed here because that module imports JAX; a test keeps the two lists equal)
MONITORS = ("loss", "nse", "kge", "kge_2012", "mnse", "fhv", "pfab", "r", "r_squared", "r2_cod", "rmse")


class ConfigError(ValueError):
    """A configuration problem, in one line naming the key and the accepted form."""


def field(default, doc: str, choices: tuple = (), *, ge=None, gt=None, le=None, lt=None, unique: bool = False,
          nonempty: bool = False, items: type | None = None, kind: str | None = None, schema: type | None = None):
    """A config key: its default, documentation and checks (applied by :func:`load_config`).

    Args:
        choices: accepted values (of the value, or of each item of a list).
        ge, gt, le, lt: bounds of a number (or of each number of a list).
        unique, nonempty: a list without repeated items, a list with at least one item.
        items: the type of a list's items.
        kind: a value form checked by a function of :data:`_KINDS` (e.g. ``"period"``).
        schema: a dataclass describing the keys of a mapping-valued key (``data.folder``);
            the resolved value keeps only the keys given.
    """
    meta = {"doc": doc, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt, "unique": unique,
            "nonempty": nonempty, "items": items, "kind": kind, "schema": schema}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls):
    """A nested section (``data:``, ``training:``) with its own defaults."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls})


# ----------------------------------------------------------------------------------------
# The schema
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FolderConfig:
    """``data.folder:`` a generic folder (``timeseries/<basin>.csv|.nc`` and an attribute table),
    the keyword arguments of :func:`difhydro.data.load_folder` (defaults the same)."""

    variables: dict = field({}, "package variable -> file column, e.g. {precipitation: P, streamflow: Q} (required "
                                "for a generic folder)", kind="columns")
    units: dict = field({}, "package variable -> units of its file column, for every variable, e.g. "
                            "{precipitation: mm/d, temperature: K}", kind="columns")
    attributes_file: str | None = field("attributes.csv", "the attribute CSV below the folder (null: no attributes)")
    basin_column: str | None = field(None, "basin id column of the attribute table (default: basin, else gauge_id)")
    time_column: str = field("date", "date column (CSV) or dimension (netCDF)")
    area: str | None = field(None, "attribute column with the catchment area (needed to turn a discharge into mm d-1)")
    area_units: str = field("km2", "units of the area column", ("km2", "m2"))
    latitude: str | None = field(None, "attribute column in degrees north (gauge latitude; day length, PET); default: "
                                       "the first of gauge_lat, latitude, lat")
    longitude: str | None = field(None, "attribute column in degrees east (gauge longitude); default: the first of "
                                        "gauge_lon, longitude, lon")
    day_length: bool = field(True, "add day_length (h, FAO-56) unless a variable provides it")
    date_format: str | None = field("%Y-%m-%d", "strftime format of the CSV date column (null: any ISO 8601 date)")
    delimiter: str = field(",", "delimiter of the CSV files")

    def check(self, key: str) -> None:
        no_units = [v for v in self.variables if v not in self.units]
        if no_units:
            raise ConfigError(f"{key}.units: no units for variable {no_units[0]!r}; give the units of every column of "
                              f"{key}.variables")
        extra = [v for v in self.units if v not in self.variables]
        if extra:
            raise ConfigError(f"{key}.units.{extra[0]}: unknown variable; it is not in {key}.variables "
                              f"({', '.join(self.variables) or 'empty'})")
        if not self.delimiter:
            raise ConfigError(f"{key}.delimiter: an empty delimiter")


@dataclasses.dataclass(frozen=True)
class PeriodsConfig:
    """``periods:`` START:END (YYYY-MM-DD:YYYY-MM-DD) or [START, END]; missing ones take the data
    format's defaults (CAMELS: train 1999-10-01:2008-09-30, test 1989-10-01:1999-09-30)."""

    train: str | list = field(None, "training period", kind="period")
    test: str | list = field(None, "test period (gauged evaluation; also the default of evaluate)", kind="period")
    validation: str | list = field(None, "validation period, neither train nor test: scored every "
                                         "training.validate_every epochs on the training basins to keep the best "
                                         "epoch (training.monitor) and stop early (training.patience)", kind="period")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``data:`` where the basins come from and what the models read."""

    dir: str | None = field(None, "data folder (CAMELS-US, Caravan or a generic folder); default: $DIFHYDRO_DATA_DIR, "
                                  "else the synthetic twin")
    format: str = field("auto", "data layout; auto detects it from the folder", FORMATS)
    forcing: str = field("auto", "CAMELS-US forcing product; auto: the one with the most basins", FORCINGS)
    basins: int | list | str = field("all", "basins: 'all', the first N eligible ones, a list of ids (quoted: "
                                            "'01013500'), or a file with one id per line", kind="basins")
    pet: str = field("auto", "PET the process models read: auto = Oudin for Caravan, Hargreaves (Hamon where tmax == tmin) "
                             "for CAMELS-US, Hamon for the twin; 'data' reads the data set's own pet", PET_METHODS)
    attributes: str | list = field("auto", "static attributes of the networks: auto (per format) or a list", kind="names")
    inputs: str | list = field("auto", "dynamic network inputs: auto (per format) or a list", kind="names")
    policies: dict = field({}, "validation policy per variable, attribute, group (forcing, target, attributes, "
                               "plausibility) or basin-level plausibility check (runoff_ratio, water_limit, "
                               "energy_limit, precipitation_magnitude, coordinates, latitude_agreement, "
                               "constant_streamflow): error, mask, interpolate[:max_gap], impute, mean, median, flag "
                               "(report only), or a mapping {action, max_gap, clip, impute, range}; forcing defaults "
                               "to error, streamflow to mask",
                           kind="policies")
    folder: dict = field({}, "a generic folder: the keys data.folder.* below (see difhydro.data.load_folder)",
                         schema=FolderConfig)
    twin_basins: int = field(24, "basins of the synthetic twin when no data is configured", ge=1)

    def check(self, key: str) -> None:
        if self.format == "folder" and not self.folder.get("variables"):
            raise ConfigError(f"{key}.folder.variables: a generic folder needs the mapping {{variable: column}} "
                              "(see difhydro config)")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """``training:`` the optimisation of every trained model."""

    epochs: int = field(12, "epochs per model", ge=1)
    steps_per_epoch: int = field(40, "optimiser steps per epoch", ge=1)
    batch_size: int = field(32, "windows per step", ge=1)
    window: int = field(730, "days per training window, warm-up included", ge=1)
    warmup: int = field(365, "leading days of each window that spin up states and are not scored (< window); also "
                             "the spin-up before every evaluation and prediction period", ge=0)
    learning_rate: float = field(2e-3, "peak Adam learning rate", gt=0)
    schedule: str = field("cosine", "learning-rate schedule", ("constant", "cosine", "warmup_cosine"))
    clip_norm: float | None = field(1.0, "global gradient-norm clipping (null: none)", gt=0)
    loss: str = field("nse_star", "training loss: nse_star (Kratzert et al. 2019), mse, rmse, rmse_low_flow "
                                  "(0.75 RMSE(Q) + 0.25 RMSE(log10(sqrt(Q) + 0.1)), δHBV), or nll (negative "
                                  "log-likelihood of a probabilistic output: the lstm's head or the hybrids' distribution cmal or gmm)", LOSS_NAMES)
    calibration_steps: int = field(300, "Adam steps of the per-basin calibration", ge=1)
    calibration_learning_rate: float = field(0.05, "Adam step size of the calibration (logit scale)", gt=0)
    min_observations: int = field(30, "observed days a training window needs after its warm-up (at most its scored "
                                      "days: a window of 366 days with a 365-day warm-up needs its one day observed)", ge=1)
    monitor: str = field("nse", "what picks the kept epoch on periods.validation: 'loss' (lowest validation loss) "
                                "or a metric's basin median, in its direction (nse, kge, mnse, r: highest; rmse: "
                                "lowest; fhv, pfab: closest to 0)", MONITORS)
    patience: int | None = field(None, "early stopping: validations without a better score before training stops "
                                       "(null = off; needs periods.validation)", ge=1)
    validate_every: int = field(1, "score the validation period every this many epochs (and after the last)", ge=1)
    weight_decay: float = field(0.0, "decoupled weight decay (AdamW, optax.adamw): every step also shrinks each "
                                      "network parameter by learning_rate x weight_decay of itself (0 = Adam)", ge=0)
    input_noise: float = field(0.0, "standard deviation of Gaussian noise added to the standardised dynamic network "
                                     "inputs of every training batch (in training standard deviations; never at "
                                     "evaluation, never to the forcing of the process models; 0 = none)", ge=0)

    def check(self, key: str) -> None:
        if self.warmup >= self.window:
            raise ConfigError(f"{key}.warmup: must lie in [0, {key}.window) = [0, {self.window}), got {self.warmup}")

    def required_observations(self) -> int:
        """Observed days a training window needs after its warm-up: ``min_observations``, at
        most the window's scored days (Kratzert et al.'s protocol, a 365-day warm-up and one
        scored day, needs that day observed; 30 of 1 would admit no window)."""
        return min(self.min_observations, self.window - self.warmup)


@dataclasses.dataclass(frozen=True)
class PeersConfig:
    """``peers:`` models of other libraries trained in the same run (``pip install -e '.[peers]'``)."""

    neuralhydrology: bool = field(False, "train neuralhydrology's cudalstm with the same basins, periods, inputs, "
                                         "attributes and budget as the lstm model")
    threads: int = field(1, "torch threads of the peer", ge=1)


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole experiment. Sections: :class:`DataConfig`, :class:`PeriodsConfig`,
    :class:`TrainingConfig`, :class:`PeersConfig`."""

    name: str = field("experiment", "a short name, used in titles and in the default run folder runs/<name>_<time> "
                                    "(no /, \\, .., leading dot)", kind="name")
    data: DataConfig = section(DataConfig)
    periods: dict = field({}, "train and test periods (the keys periods.* below)", schema=PeriodsConfig)
    evaluations: list = field(["temporal", "kfold"], "temporal = gauged (test period, training basins); kfold = "
                                                     "ungauged (k-fold over basins)", EVALUATIONS,
                              unique=True, nonempty=True, items=str)
    folds: int = field(5, "k of the k-fold evaluation (>= 2 with kfold)", ge=1)
    seeds: list = field([0], "seeds; several make an ensemble (mean of the members' predictions)", ge=0,
                        unique=True, nonempty=True, items=int)
    ensemble_models: list = field([], "models trained with every seed (others use the first seed only); "
                                      "empty: every trained model", unique=True, items=str)
    kfold_models: list = field([], "models of the ungauged (kfold) evaluation; empty: every trained model",
                               unique=True, items=str)
    models: dict = field({}, "models of the registry with their options, e.g. {lstm: {hidden_size: 64}}, and "
                             "optionally their own training settings, {lstm: {training: {steps_per_epoch: 200}}}, "
                             "and PET, {hbv_calibrated: {pet: oudin}} (default data.pet); "
                             "empty: every registry entry with its defaults (entries and options below)",
                         kind="models")
    training: TrainingConfig = section(TrainingConfig)
    peers: PeersConfig = section(PeersConfig)

    def check(self, key: str) -> None:
        if "kfold" in self.evaluations and self.folds < 2:
            raise ConfigError(f"folds: the kfold evaluation needs at least 2 folds, got {self.folds}")
        configured = list(self.models) or list(MODELS)
        for list_key in ("ensemble_models", "kfold_models"):
            for name in getattr(self, list_key):
                if name not in configured:
                    raise ConfigError(f"{list_key}: {name!r} is not a configured model; choose from "
                                      f"{', '.join(configured)}")
        check_validation_period(self.periods)
        for name in [None, *self.models]:  # each model's own training settings, merged with training:, checked
            t = self.training if name is None else model_training(self, name)
            if t.patience is not None and "validation" not in self.periods:
                key = "training" if name is None else f"models.{name}.training"
                raise ConfigError(f"{key}.patience: early stopping needs a validation period; add "
                                  "periods.validation: START:END")
        for name in configured:  # a probabilistic output is trained by the likelihood, and only it can be
            loss = (model_training(self, name) if name in self.models else self.training).loss
            if MODELS[name].calibrated:
                continue
            own = self.models.get(name, {})
            if probabilistic(name, own) != (loss == "nll"):
                option = MODELS[name].mixture  # the option naming the mixture (lstm: head, hybrids: distribution)
                if option is None:
                    raise ConfigError(f"models.{name}.training.loss: 'nll' needs a probabilistic output, and {name} "
                                      "has none (the lstm's head or the hybrids' distribution: cmal or gmm)")
                raise ConfigError(f"models.{name}.training.loss: {loss!r} with {option} "
                                  f"{own.get(option, model_options(name)[option])!r}; a probabilistic output ({option}: "
                                  "cmal or gmm) is trained with loss nll (its negative log-likelihood), and nll needs "
                                  "one")
            if name == "lstm" and own.get("autoregressive") and probabilistic(name, own):
                raise ConfigError(f"models.{name}.autoregressive: the autoregressive LSTM has a point head only; "
                                  "drop head or autoregressive")
            if own.get("clip_in_training") is False and probabilistic(name, own):
                raise ConfigError(f"models.{name}.clip_in_training: false applies to the plain regression LSTM only "
                                  "(not with a probabilistic head)")
            if name == "lstm" and own.get("lags", 1) != 1 and not own.get("autoregressive"):
                raise ConfigError(f"models.{name}.lags: {own['lags']!r} needs autoregressive: true (the lags are "
                                  "days of observed flow the model reads)")


# ----------------------------------------------------------------------------------------
# Value forms (field(kind=...))
# ----------------------------------------------------------------------------------------


def check_name(value: str, key: str) -> str:
    """``value`` if it is a safe folder name: not empty, no ``/``, ``\\``, ``..``, NUL or
    other control characters, no leading dot (it must not escape or hide in a run folder)."""
    bad = (not value.strip() or "/" in value or "\\" in value or ".." in value or value.startswith(".")
           or any(ord(c) < 32 for c in value))
    if bad:
        raise ConfigError(f"{key}: {value!r} is not a safe folder name (no /, \\, .., control characters or "
                          f"leading dot; not empty)")
    return value


def parse_period(value, key: str) -> tuple[str, str]:
    """``"START:END"`` or ``[START, END]`` -> ``(start, end)`` ISO dates, both ends required
    (:func:`difhydro.data.periods.period_bounds`, its errors as :class:`ConfigError`)."""
    try:
        start, end = period_bounds(value if isinstance(value, (str, list, tuple)) else repr(value), key)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return str(start.date()), str(end.date())


def _basins(value, key):
    if isinstance(value, int) and value < 1:
        raise ConfigError(f"{key}: the first N eligible basins needs N >= 1, got {value}")
    if isinstance(value, str) and not value.strip():
        raise ConfigError(f"{key}: give 'all', a number, a list of ids or a basin file")
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{key}: an empty list of basins")
        for i, b in enumerate(value):
            if not isinstance(b, str):
                raise ConfigError(f"{key}[{i}]: {b!r} is not a quoted id; write basin ids as strings ('01013500'): "
                                  "YAML reads 01013500 as a number and drops its leading zero")
        _unique(value, key)
    return value


def _names(value, key):
    if isinstance(value, str):
        if value != "auto":
            raise ConfigError(f"{key}: 'auto' or a list of names, got {value!r}")
        return value
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{key}[{i}]: expected a name, got {v!r}")
    _unique(value, key)
    return value


def _policies(value, key):
    for name, policy in value.items():
        if not isinstance(name, str):
            raise ConfigError(f"{key}: {name!r} is not a variable name")
        try:
            policy_fields(policy)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key}.{name}: {err}") from None
    return value


def _columns(value, key):
    for name, column in value.items():
        if not isinstance(name, str) or not isinstance(column, str) or not column:
            raise ConfigError(f"{key}.{name}: expected a column name (text), got {column!r}")
    return value


def _models(value, key):
    out = {}
    for name, options in value.items():
        name_key = f"{key}.{name}"
        if not isinstance(name, str):
            raise ConfigError(f"{key}: {name!r} is not a model name")
        why = reserved_name(name)
        if why:
            raise ConfigError(f"{name_key}: not a model name ({why})")
        if name not in MODELS:
            raise ConfigError(f"{name_key}: unknown model; choose from {', '.join(sorted(MODELS))}")
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise ConfigError(f"{name_key}: expected a mapping of options, got {options!r}")
        try:
            check_model_options(name, registry_options(options), name_key)
        except ValueError as err:
            message = str(err)
            if "unknown option" in message:
                message += ", " + ", ".join(MODEL_KEYS)
            raise ConfigError(message) from None
        if "pet" in options and options["pet"] not in PET_METHODS:
            raise ConfigError(f"{name_key}.pet: {options['pet']!r} is not a PET method; choose from "
                              f"{', '.join(PET_METHODS)} (default: data.pet)")
        if "training" in options:  # its keys; merged with training: they are checked by Config.check
            _build(TrainingConfig, options["training"], f"{name_key}.training", cross_checks=False)
        out[name] = dict(options)
    return out


_KINDS = {"name": check_name, "period": parse_period, "basins": _basins, "names": _names,
          "policies": _policies, "columns": _columns, "models": _models}


# ----------------------------------------------------------------------------------------
# Reading and validating
# ----------------------------------------------------------------------------------------


def _expected(tp) -> tuple:
    """The Python types a field annotation accepts."""
    if isinstance(tp, str):
        tp = eval(tp, {"Any": Any}, {})  # annotations are strings (from __future__)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(tp) for t in _expected(a))
    if tp is type(None) or tp is None:
        return (type(None),)
    if tp is float:
        return (float, int)
    return (origin or tp,)


def _type_error(key: str, accepted: tuple, value) -> ConfigError:
    names = {int: "an integer", float: "a number", str: "text", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    wanted = " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in accepted if not (t is int and float in accepted)))
    hint = ""
    if isinstance(value, str) and float in accepted:
        try:
            float(value)
            hint = f" (YAML reads {value} as text: write a decimal point, e.g. 1.0e-3)"
        except ValueError:
            pass
    return ConfigError(f"{key}: expected {wanted}, got {value!r}{hint}")


def _unique(values: list, key: str) -> None:
    seen = []
    for v in values:
        if v in seen:
            raise ConfigError(f"{key}: {v!r} is listed twice")
        seen.append(v)


def _bounds(value, meta: dict, key: str) -> None:
    for op, sign, ok in (("ge", ">=", lambda a, b: a >= b), ("gt", ">", lambda a, b: a > b),
                         ("le", "<=", lambda a, b: a <= b), ("lt", "<", lambda a, b: a < b)):
        if meta.get(op) is not None and not ok(value, meta[op]):
            raise ConfigError(f"{key}: must be {sign} {meta[op]}, got {value!r}")


def _scalar(value, meta: dict, key: str) -> None:
    """Choices, finiteness and bounds of one value (of a key or of a list item)."""
    choices = meta.get("choices") or ()
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not accepted; choose from {', '.join(map(str, choices))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        _bounds(value, meta, key)


def _value(f: dataclasses.Field, value, key: str):
    """One key's value, checked against its field's type and metadata; returns it resolved."""
    accepted = _expected(f.type)
    if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
        raise _type_error(key, accepted, value)
    meta = f.metadata
    if meta.get("schema") is not None:
        given = _build(meta["schema"], value, key)
        return {k: getattr(given, k) for k in value}  # the keys given (the reader's defaults apply)
    if isinstance(value, list):
        if meta.get("nonempty") and not value:
            raise ConfigError(f"{key}: an empty list")
        item_type = meta.get("items")
        for i, v in enumerate(value):
            if item_type is not None and (isinstance(v, bool) or not isinstance(v, item_type)):
                raise _type_error(f"{key}[{i}]", (item_type,), v)
            _scalar(v, meta, key)
        if meta.get("unique"):
            _unique(value, key)
    elif value is not None:
        _scalar(value, meta, key)
    if meta.get("kind") is not None and value is not None:
        value = _KINDS[meta["kind"]](value, key)
    return float(value) if float in accepted and isinstance(value, int) else value


def _build(cls, values, path: str, cross_checks: bool = True):
    """An instance of the section ``cls`` from a mapping, every key checked, then (with
    ``cross_checks``) the section's ``check``."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ConfigError(f"{path + '.' if path else ''}{unknown[0]}: unknown key; accepted keys: {', '.join(fields)}")
    out = {}
    for name, value in values.items():
        f = fields[name]
        key = f"{path}.{name}" if path else name
        sub = f.metadata.get("section")
        out[name] = _build(sub, value, key) if sub is not None else _value(f, value, key)
    built = cls(**out)
    if cross_checks and hasattr(built, "check"):
        built.check(path)
    return built


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # PyYAML itself refuses an unhashable key below
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path):
    """The YAML document of ``path`` (a duplicated key is an error naming both lines)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file ({err.reason})") from None


def check_validation_period(periods: Mapping[str, tuple[str, str]]) -> None:
    """Refuse a ``periods.validation`` that overlaps ``train`` or ``test`` (ISO dates), one line."""
    if "validation" not in periods:
        return
    v0, v1 = periods["validation"]
    for other in ("train", "test"):
        if other in periods:
            o0, o1 = periods[other]
            if v0 <= o1 and o0 <= v1:
                raise ConfigError(f"periods.validation: {v0}:{v1} overlaps periods.{other} {o0}:{o1}; "
                                  "give a validation period outside both")


def load_config(source: str | Path | Mapping, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, merge ``overrides`` (dotted keys, e.g. ``{"data.dir": "..."}``) and validate a config.

    Raises:
        ConfigError: one line naming the key and the accepted values (unknown key at any
            depth, wrong type, out of range, repeated list item, bad date, reversed period,
            unknown model, option or policy, a key given twice in the YAML).
        FileNotFoundError: the file does not exist.
    """
    if isinstance(source, Mapping):
        values = json.loads(json.dumps(source, default=str))
    else:
        values = read_yaml(source)
        values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: a config is a mapping of keys (name:, data:, models: ...), got "
                          f"{type(values).__name__}")
    for dotted, value in (overrides or {}).items():
        node, path = values, []
        *parents, last = dotted.split(".")
        for p in parents:
            path.append(p)
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
            if not isinstance(node, Mapping):
                raise ConfigError(f"{'.'.join(path)}: expected a mapping of keys, got {node!r}")
        node[last] = value
    return _build(Config, values, "")


def select_models(cfg: Config, text: str | None, of: str = "the config") -> Config:
    """``cfg`` restricted to the comma-separated model names of ``--models`` ``text``: each
    one of the configured models (every registry entry when none is configured; ``of`` says
    whose models they are in the message), none twice. Without the lstm the
    neuralhydrology peer, matched to it, is off."""
    if not text:
        return cfg
    names = [m.strip() for m in text.split(",")]
    available = list(cfg.models or MODELS)
    for name in names:
        if not name:
            raise ConfigError(f"--models: an empty name in {text!r}; give comma-separated model names")
        if name not in available:
            raise ConfigError(f"--models: {name!r} is not a model of {of}; choose from {', '.join(available)}")
    _unique(names, "--models")
    # the neuralhydrology peer is matched to the lstm: without the lstm it has nothing to match
    peers = cfg.peers if "lstm" in names else dataclasses.replace(cfg.peers, neuralhydrology=False)
    return dataclasses.replace(cfg, models={m: cfg.models.get(m, {}) for m in names}, peers=peers)


#: keys of a ``models.<name>`` entry that are not options of the registry's model: its own
#: ``training`` settings and the ``pet`` its process model reads (default ``data.pet``)
MODEL_KEYS = ("training", "pet")


def registry_options(options: Mapping) -> dict:
    """The options of a ``models.<name>`` entry that go to the registry's builder."""
    return {k: v for k, v in options.items() if k not in MODEL_KEYS}


def model_training(cfg: Config, name: str) -> TrainingConfig:
    """The training settings of model ``name``: ``training:`` with its own overrides."""
    own = cfg.models.get(name, {}).get("training") or {}
    checked = _build(TrainingConfig, {**dataclasses.asdict(cfg.training), **own}, f"models.{name}.training")
    return dataclasses.replace(cfg.training, **{k: getattr(checked, k) for k in own})


def config_to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what ``config.yml`` of a run directory holds)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_hash(cfg: Config) -> str:
    """SHA-256 of the resolved config (sorted JSON), the identity a resumed run must match."""
    return hashlib.sha256(json.dumps(config_to_dict(cfg), sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------
# Listing (difhydro config)
# ----------------------------------------------------------------------------------------


def _checks_text(meta: Mapping) -> str:
    parts = []
    if meta.get("choices"):
        parts.append("one of: " + ", ".join(map(str, meta["choices"])))
    for op, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(op) is not None:
            parts.append(f"{sign} {meta[op]}")
    if meta.get("unique"):
        parts.append("no repeats")
    return f" ({'; '.join(parts)})" if parts else ""


def describe() -> str:
    """Every key with its default, meaning and checks, then the registry's models and their
    options (``difhydro config``)."""
    lines = []

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            if f.metadata.get("section") is not None:
                walk(f.metadata["section"], f"{prefix}{f.name}.")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"{prefix}{f.name} = {default!r}: {f.metadata.get('doc', '')}{_checks_text(f.metadata)}")
            if f.metadata.get("schema") is not None:
                walk(f.metadata["schema"], f"{prefix}{f.name}.")

    walk(Config, "")
    lines += ["", "Models of the registry (models.<name>.<option> = default; models.<name>.training.* overrides "
                  "training.* for that model):"]
    for name, entry in MODELS.items():
        lines.append(f"models.{name}: {entry.doc}{' (calibrated per basin)' if entry.calibrated else ''}")
        accepted = option_types(name)
        words = {"int": "integer", "float": "number", "str": "text", "NoneType": "null", "list": "list", "bool": "bool"}
        for option, default in model_options(name).items():
            limits = dict(entry.limits.get(option, {}))
            if isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0:
                limits.setdefault("ge", 0)
            kinds = " or ".join(dict.fromkeys(words.get(t.__name__, t.__name__) for t in accepted[option] or ()
                                              if t is not tuple and not (t is int and float in accepted[option])))
            lines.append(f"  models.{name}.{option} = {default!r}{f' [{kinds}]' if kinds else ''}{_checks_text(limits)}")
    return "\n".join(lines)
