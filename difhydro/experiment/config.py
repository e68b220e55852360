"""Experiment configuration: one schema, its defaults and its validation.

A config is a YAML file whose sections mirror :class:`Config`; every key and its default is
documented in the dataclasses below (this module is the one place where defaults live).
:func:`load_config` reads a file (or a mapping), validates it in full and returns a frozen
:class:`Config`; any problem is a :class:`ConfigError` with one line that names the key and
the accepted values. :func:`config_hash` identifies a resolved config (run directories keep
it, so that ``--resume`` refuses a changed configuration).

Example (``benchmarks/configs/smoke.yml``)::

    name: smoke
    data: {basins: 6}
    evaluations: [temporal, kfold]
    folds: 2
    models:
      lstm: {hidden_size: 32}
      dpl_hbv: {hidden_size: 32, components: 2}
    training: {epochs: 2, steps_per_epoch: 30, batch_size: 16, window: 400, warmup: 200}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from ..data.batching import resolve_period
from ..hybrid import MODELS, model_options

__all__ = [
    "ConfigError",
    "DataConfig",
    "TrainingConfig",
    "PeersConfig",
    "Config",
    "load_config",
    "config_to_dict",
    "config_hash",
    "parse_period",
    "model_training",
    "FORMATS",
    "PET_METHODS",
    "EVALUATIONS",
]

FORMATS = ("auto", "camels_us", "caravan", "folder", "twin")
PET_METHODS = ("auto", "oudin", "hargreaves", "hamon", "data")
EVALUATIONS = ("temporal", "kfold")
POLICIES = ("error", "mask", "interpolate", "impute")


class ConfigError(ValueError):
    """A configuration problem, in one line naming the key and the accepted form."""


def _doc(text: str, choices: tuple = (), **kw) -> dict:
    return {"metadata": {"doc": text, "choices": choices}, **kw}


def field(default, doc: str, choices: tuple = ()):
    """A config key with its default, documentation and (optionally) accepted values."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), **_doc(doc, choices))
    return dataclasses.field(default=default, **_doc(doc, choices))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``data:`` where the basins come from and what the models read."""

    dir: str | None = field(None, "data folder (CAMELS-US, Caravan or a generic folder); default: $DIFHYDRO_DATA_DIR, "
                                  "then ../shared/data beside the checkout, else the synthetic twin")
    format: str = field("auto", "data layout; auto detects it from the folder", FORMATS)
    forcing: str = field("auto", "CAMELS-US forcing product (daymet, nldas, maurer, maurer_extended); auto: the one "
                                 "with the most basins")
    basins: int | list | str = field("all", "basins: 'all', the first N eligible ones, a list of ids, or a file with one id per line")
    pet: str = field("auto", "PET the process models read: auto = Oudin for Caravan, Hargreaves (Hamon where tmax == tmin) "
                             "for CAMELS-US, Hamon for the twin; 'data' reads the data set's own pet", PET_METHODS)
    attributes: str | list = field("auto", "static attributes of the networks: auto (per format) or a list")
    inputs: str | list = field("auto", "dynamic network inputs: auto (per format) or a list")
    policies: dict = field({}, "validation policy per variable (error, mask, interpolate[:max_gap], impute); "
                               "forcing defaults to error, streamflow to mask")
    folder: dict = field({}, "generic folder: {variables: {name: column}, units: {name: units}, attributes_file, "
                             "area, latitude} (see difhydro.data.load_folder)")
    twin_basins: int = field(24, "basins of the synthetic twin when no data is configured")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """``training:`` the optimisation of every trained model."""

    epochs: int = field(12, "epochs per model")
    steps_per_epoch: int = field(40, "optimiser steps per epoch")
    batch_size: int = field(32, "windows per step")
    window: int = field(730, "days per training window, warm-up included")
    warmup: int = field(365, "leading days of each window that spin up states and are not scored; also the spin-up "
                             "before every evaluation and prediction period")
    learning_rate: float = field(2e-3, "peak Adam learning rate")
    schedule: str = field("cosine", "learning-rate schedule", ("constant", "cosine", "warmup_cosine"))
    clip_norm: float = field(1.0, "global gradient-norm clipping")
    loss: str = field("nse_star", "training loss", ("nse_star", "mse", "rmse"))
    calibration_steps: int = field(300, "Adam steps of the per-basin calibration")
    calibration_learning_rate: float = field(0.05, "Adam step size of the calibration (logit scale)")
    min_observations: int = field(30, "observed days a training window needs after its warm-up")
    monitor: str = field("nse", "what picks the kept epoch on periods.validation: 'loss' (lowest validation loss) or "
                                "a metric whose basin median is maximised (nse, kge, mnse, r)")
    patience: int | None = field(None, "early stopping: epochs without a better validation score before training "
                                       "stops (null = off; needs periods.validation)")
    validate_every: int = field(1, "score the validation period every this many epochs")


@dataclasses.dataclass(frozen=True)
class PeersConfig:
    """``peers:`` models of other libraries trained in the same run (``pip install -e '.[peers]'``)."""

    neuralhydrology: bool = field(False, "train neuralhydrology's cudalstm with the same basins, periods, inputs, "
                                         "attributes and budget as the lstm model")
    threads: int = field(1, "torch threads of the peer")


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole experiment. Sections: :class:`DataConfig`, :class:`TrainingConfig`, :class:`PeersConfig`."""

    name: str = field("experiment", "a short name, used in titles")
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    periods: dict = field({}, "train and test periods as START:END (YYYY-MM-DD:YYYY-MM-DD); missing ones take the "
                              "data format's defaults (CAMELS: train 1999-10-01:2008-09-30, test 1989-10-01:1999-09-30); "
                              "optional validation: START:END, scored every training.validate_every epochs on the "
                              "training basins to keep the best epoch (training.monitor) and stop early "
                              "(training.patience); it must not overlap train or test")
    evaluations: list = field(["temporal", "kfold"], "temporal = gauged (test period, training basins); kfold = "
                                                     "ungauged (k-fold over basins)", EVALUATIONS)
    folds: int = field(5, "k of the k-fold evaluation")
    seeds: list = field([0], "seeds; several make an ensemble (mean of the members' predictions)")
    ensemble_models: list = field([], "models trained with every seed (others use the first seed only); "
                                      "empty: every trained model")
    kfold_models: list = field([], "models of the ungauged (kfold) evaluation; empty: every trained model")
    models: dict = field({}, "models of the registry with their options, e.g. {lstm: {hidden_size: 64}}, and "
                             "optionally their own training settings, {lstm: {training: {steps_per_epoch: 200}}}; "
                             "empty: every registry entry with its defaults")
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    peers: PeersConfig = dataclasses.field(default_factory=PeersConfig)


# ----------------------------------------------------------------------------------------
# Reading and validating
# ----------------------------------------------------------------------------------------


def parse_period(value, key: str) -> tuple[str, str]:
    """``"START:END"`` or ``[START, END]`` -> ``(start, end)`` ISO dates, both ends required
    (:func:`difhydro.data.resolve_period`, its errors as :class:`ConfigError`)."""
    try:
        start, end = resolve_period(value if isinstance(value, (str, list, tuple)) else repr(value), key)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return str(start.date()), str(end.date())


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


def _build(cls, values, path: str):
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ConfigError(f"{path + '.' if path else ''}{unknown[0]}: unknown key; accepted keys: {', '.join(fields)}")
    out = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in values:
            continue
        value = values[name]
        if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING else None):
            out[name] = _build(f.default_factory().__class__, value, key)
            continue
        types_ = _expected(f.type)
        if isinstance(value, bool) and bool not in types_:
            raise ConfigError(f"{key}: expected {'/'.join(t.__name__ for t in types_)}, got {value!r}")
        if not isinstance(value, types_):
            raise ConfigError(f"{key}: expected {'/'.join(t.__name__ for t in types_)}, got {value!r}")
        choices = f.metadata.get("choices", ())
        if choices:
            for v in value if isinstance(value, list) else [value]:
                if v not in choices:
                    raise ConfigError(f"{key}: {v!r} is not accepted; choose from {', '.join(map(str, choices))}")
        out[name] = float(value) if f.type in ("float", float) else value
    return cls(**out)


def _check(cfg: Config) -> Config:
    """Cross-key checks: periods, models and their options, sizes."""
    t = cfg.training
    for key, value in (("training.epochs", t.epochs), ("training.steps_per_epoch", t.steps_per_epoch),
                       ("training.batch_size", t.batch_size), ("training.window", t.window),
                       ("training.calibration_steps", t.calibration_steps), ("folds", cfg.folds)):
        if value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    if not 0 <= t.warmup < t.window:
        raise ConfigError(f"training.warmup: must lie in [0, training.window) = [0, {t.window}), got {t.warmup}")
    if "kfold" in cfg.evaluations and cfg.folds < 2:
        raise ConfigError(f"folds: the kfold evaluation needs at least 2 folds, got {cfg.folds}")
    if not cfg.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in cfg.seeds):
        raise ConfigError(f"seeds: expected a non-empty list of integers, got {cfg.seeds!r}")
    unknown = [k for k in cfg.periods if k not in ("train", "test", "validation")]
    if unknown:
        raise ConfigError(f"periods.{unknown[0]}: unknown period; accepted: train, test, validation")
    periods = {k: parse_period(v, f"periods.{k}") for k, v in cfg.periods.items()}
    check_validation_period(periods)
    _check_early_stopping(t, "training", "validation" in periods)
    for name, options in cfg.models.items():
        if isinstance(options, Mapping) and isinstance(options.get("training"), Mapping):
            own = _build(TrainingConfig, options["training"], f"models.{name}.training")
            merged = dataclasses.replace(t, **{k: getattr(own, k) for k in options["training"]})
            _check_early_stopping(merged, f"models.{name}.training", "validation" in periods)
    for name, options in cfg.models.items():
        if name not in MODELS:
            raise ConfigError(f"models.{name}: unknown model; choose from {', '.join(sorted(MODELS))}")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"models.{name}: expected a mapping of options, got {options!r}")
        accepted = list(model_options(name)) + ["training"]
        bad = [k for k in options if k not in accepted]
        if bad:
            raise ConfigError(f"models.{name}.{bad[0]}: unknown option; accepted: {', '.join(accepted)}")
        if "training" in options:  # this model's own training settings over the training: section
            _build(TrainingConfig, options["training"], f"models.{name}.training")
    for key in ("ensemble_models", "kfold_models"):
        for name in getattr(cfg, key):
            if name not in (cfg.models or MODELS):
                raise ConfigError(f"{key}: {name!r} is not a configured model")
    for name, policy in cfg.data.policies.items():
        action = str(policy).split(":")[0] if not isinstance(policy, Mapping) else policy.get("action", "")
        if action not in POLICIES:
            raise ConfigError(f"data.policies.{name}: {policy!r} is not a policy; choose from {', '.join(POLICIES)}")
    return dataclasses.replace(cfg, periods=periods, models={k: dict(v or {}) for k, v in cfg.models.items()})


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


def _check_early_stopping(t: TrainingConfig, key: str, has_validation: bool) -> None:
    from ..training.metrics import METRICS

    maximised = [m for m in ("nse", "kge", "kge_2012", "mnse", "r", "r_squared", "r2_cod") if m in METRICS]
    if t.monitor != "loss" and t.monitor not in maximised:  # the Trainer maximises the metric's basin median
        raise ConfigError(f"{key}.monitor: {t.monitor!r} is not accepted; choose 'loss' or one of {', '.join(maximised)}")
    if t.patience is not None and t.patience < 1:
        raise ConfigError(f"{key}.patience: must be null (off) or >= 1, got {t.patience}")
    if t.patience is not None and not has_validation:
        raise ConfigError(f"{key}.patience: early stopping needs a validation period; add periods.validation: START:END")
    if t.validate_every < 1:
        raise ConfigError(f"{key}.validate_every: must be >= 1, got {t.validate_every}")


def load_config(source: str | Path | Mapping, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, merge ``overrides`` (dotted keys, e.g. ``{"data.dir": "..."}``) and validate a config.

    Raises:
        ConfigError: one line naming the key and the accepted values (unknown key, wrong
            type, bad date, reversed period, unknown model, option or policy).
        FileNotFoundError: the file does not exist.
    """
    if isinstance(source, Mapping):
        values = json.loads(json.dumps(source, default=str))
    else:
        import yaml

        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return _check(_build(Config, values, ""))


def model_training(cfg: Config, name: str) -> TrainingConfig:
    """The training settings of model ``name``: ``training:`` with its own overrides."""
    own = cfg.models.get(name, {}).get("training") or {}
    checked = _build(TrainingConfig, own, f"models.{name}.training")
    return dataclasses.replace(cfg.training, **{k: getattr(checked, k) for k in own})


def config_to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what ``config.yml`` of a run directory holds)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_hash(cfg: Config) -> str:
    """SHA-256 of the resolved config (sorted JSON), the identity a resumed run must match."""
    return hashlib.sha256(json.dumps(config_to_dict(cfg), sort_keys=True).encode()).hexdigest()


def describe() -> str:
    """Every key with its default and documentation (for ``difhydro config --help`` and the README)."""
    lines = []

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory()):
                walk(type(f.default_factory()), f"{prefix}{f.name}.")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            choices = f.metadata.get("choices") or ()
            extra = f" (one of: {', '.join(map(str, choices))})" if choices else ""
            lines.append(f"{prefix}{f.name} = {default!r}: {f.metadata.get('doc', '')}{extra}")

    walk(Config, "")
    return "\n".join(lines)
