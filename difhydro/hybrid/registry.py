"""The one model registry: names, one-line docs, options and their checks, without Flax.

:data:`MODELS` maps a name to a :class:`RegisteredModel`. Its ``build(flow_mean, flow_std,
**options)`` makes the model; the options and their defaults are the keyword arguments of
``build`` (:func:`model_options`). The built-in ``build`` functions below import the model
classes inside their body, so that the ``difhydro`` command can list and check models and
options without importing JAX or Flax.

An option's value is checked (:func:`check_model_options`) against

- its type: the annotation of the ``build`` argument (``int``, ``float | None``,
  ``tuple[str, ...]``; a float accepts an int, nothing accepts a bool but a bool), else the
  type of its default (a ``None`` default without annotation accepts anything);
- its sign: a number whose default is >= 0 must be >= 0;
- the entry's ``limits``: ``{option: {"ge"|"gt"|"le"|"lt": number, "choices": (...)}}``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "RegisteredModel",
    "MODELS",
    "RESERVED_SUFFIX",
    "RESERVED_NAMES",
    "register_model",
    "model_options",
    "option_types",
    "check_model_options",
    "reserved_name",
    "build_model",
    "LSTM_HEADS",
    "PROBABILISTIC_HEADS",
    "HYBRID_DISTRIBUTIONS",
    "mixture_kind",
    "probabilistic",
]

#: names the outputs use for other things: ``<model>_ensemble`` (the mean of an ensemble)
#: and neuralhydrology's peer LSTMs (``nh_cudalstm``; ``nh_arlstm``, the autoregressive one)
RESERVED_SUFFIX = "_ensemble"
RESERVED_NAMES = ("nh_cudalstm", "nh_arlstm")


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """One entry of :data:`MODELS`.

    Attributes:
        build: ``build(flow_mean, flow_std, **options)`` -> a Flax module trained by the
            :class:`~difhydro.training.Trainer`, or (``calibrated``) a process model that is
            calibrated basin by basin. ``flow_mean``/``flow_std`` (mm d-1) are the training
            data's streamflow statistics; the options and their defaults are the keyword
            arguments of ``build`` (:func:`model_options`).
        doc: one line for listings and summaries.
        calibrated: per-basin calibration of a process model (gauged basins only).
        limits: option -> bounds and choices (``ge``, ``gt``, ``le``, ``lt``, ``choices``)
            beyond what the option's type and default say.
        mixture: the option that names the model's output mixture (the lstm's ``head``, the
            hybrids' ``distribution``): with a value of :data:`PROBABILISTIC_HEADS` the model
            returns ``streamflow_distribution`` (:func:`probabilistic`); ``None``: never.

    The EXP-HYDRO entries read the ``pet`` forcing (``pet_source="forcing"``), so that
    every process model of an experiment reads the same PET (``pet_source="hamon"`` is
    P-RNN's own Hamon PET), and report the water that left the buckets during each day
    (``output_timing="update"``): P-RNN's ``"updated"`` evaluation reports flow from an
    empty bucket (``H_5(0) = 0.5``), water that never existed.
    """

    build: Callable[..., Any]
    doc: str
    calibrated: bool = False
    limits: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    mixture: str | None = None


MODELS: dict[str, RegisteredModel] = {}


def reserved_name(name: str) -> str | None:
    """Why ``name`` cannot be a model's name, or ``None`` when it can."""
    if name.endswith(RESERVED_SUFFIX):
        return f"names ending in {RESERVED_SUFFIX} are reserved for ensemble means"
    if name in RESERVED_NAMES:
        return f"{name} is reserved for neuralhydrology's peer LSTM"
    return None


def register_model(name: str, build: Callable[..., Any], doc: str, *, calibrated: bool = False,
                   limits: Mapping[str, Mapping[str, Any]] | None = None, mixture: str | None = None) -> None:
    """Add (or replace) a registry entry; a contrib package registers its models this way."""
    why = reserved_name(name)
    if why:
        raise ValueError(f"model name {name!r}: {why}")
    unknown = [k for k in (limits or {}) if k not in _options(build)]
    if unknown:
        raise ValueError(f"model {name!r}: limits for {unknown}, which are not options of its build function")
    if mixture is not None and mixture not in _options(build):
        raise ValueError(f"model {name!r}: mixture option {mixture!r} is not an option of its build function")
    MODELS[name] = RegisteredModel(build, doc, calibrated, dict(limits or {}), mixture)


def _options(build) -> dict[str, inspect.Parameter]:
    return {k: p for k, p in inspect.signature(build).parameters.items() if k not in ("flow_mean", "flow_std")}


def model_options(name: str) -> dict[str, Any]:
    """The options of ``name`` and their defaults (keyword arguments of its ``build``)."""
    return {k: p.default for k, p in _options(_entry(name).build).items()}


_TYPES = {"int": (int,), "float": (float, int), "str": (str,), "bool": (bool,), "None": (type(None),),
          "tuple": (list, tuple), "list": (list, tuple), "Sequence": (list, tuple), "dict": (dict,), "Mapping": (dict,)}


def option_types(name: str) -> dict[str, tuple[type, ...] | None]:
    """Option -> the Python types it accepts (``None``: not checked), from the annotations of
    ``build`` (``"float | None"``) or else the type of the default."""
    out = {}
    for k, p in _options(_entry(name).build).items():
        note = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", None)
        if p.annotation is not inspect.Parameter.empty and note:
            parts = [t.strip().split("[")[0].split(".")[-1] for t in note.split("|")]
            accepted = tuple(t for part in parts for t in _TYPES.get(part, ()))
            out[k] = accepted if all(part in _TYPES for part in parts) else None
        elif p.default is None or p.default is inspect.Parameter.empty:
            out[k] = None
        else:
            out[k] = _TYPES.get(type(p.default).__name__)
    return out


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null",
             list: "a list", dict: "a mapping"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types
                                     if t is not tuple and not (t is int and float in types)))


def check_model_options(name: str, options: Mapping[str, Any], where: str | None = None) -> None:
    """Raise a ValueError ``<where>.<option>: ...`` for an unknown option or a value of the wrong
    type, sign or range (see the module doc); ``where`` (e.g. ``models.lstm``) names the
    options in the message, default ``model 'lstm' option``."""

    def label(option):
        return f"{where}.{option}" if where else f"model {name!r} option {option}"

    defaults = model_options(name)
    unknown = [k for k in options if k not in defaults]
    if unknown:
        raise ValueError(f"{label(unknown[0])}: unknown option; accepted: {', '.join(defaults) or 'none'}")
    types, limits = option_types(name), MODELS[name].limits
    for key, value in options.items():
        accepted = types[key]
        if accepted is not None:
            bad_bool = isinstance(value, bool) and bool not in accepted
            if bad_bool or not isinstance(value, accepted):
                raise ValueError(f"{label(key)}: expected {_type_names(accepted)} (default {defaults[key]!r}), "
                                 f"got {value!r}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{label(key)}: expected a finite number, got {value!r}")
        default = defaults[key]
        if number and isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0 > value:
            raise ValueError(f"{label(key)}: must be >= 0, got {value!r}")
        bounds = limits.get(key, {})
        for item in value if isinstance(value, (list, tuple)) else [value]:  # choices bound each item of a list
            if "choices" in bounds and item not in bounds["choices"]:
                raise ValueError(f"{label(key)}: {item!r} is not accepted; choose from "
                                 f"{', '.join(map(str, bounds['choices']))}")
        if number:
            for op, test in (("ge", value >= bounds.get("ge", -math.inf)), ("gt", value > bounds.get("gt", -math.inf)),
                             ("le", value <= bounds.get("le", math.inf)), ("lt", value < bounds.get("lt", math.inf))):
                if not test:
                    sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
                    raise ValueError(f"{label(key)}: must be {sign} {bounds[op]}, got {value!r}")
        if isinstance(value, (list, tuple)) and accepted is not None:
            note = str(_options(MODELS[name].build)[key].annotation)
            if "[str" in note and not all(isinstance(v, str) for v in value):
                raise ValueError(f"{label(key)}: expected a list of names, got {value!r}")


def build_model(name: str, *, flow_mean: float = 0.0, flow_std: float = 1.0, **options) -> Any:
    """Build the registry entry ``name`` with its ``options`` (unknown names and options, and
    options of the wrong type, sign or range, raise a ValueError naming the accepted ones)."""
    entry = _entry(name)
    check_model_options(name, options)
    return entry.build(flow_mean=flow_mean, flow_std=flow_std, **options)


def _entry(name: str) -> RegisteredModel:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name]


# ----------------------------------------------------------------------------------------
# The built-in entries (model classes imported when a model is built)
# ----------------------------------------------------------------------------------------

_PET_SOURCES = ("forcing", "hamon")
_HEADS = ("bounded", "residual", "plain")


def _exphydro(pet_source: str):
    from ..physics.exphydro import ExpHydro

    return ExpHydro(pet_source=pet_source, output_timing="update")


#: the hybrids' output: a point flow, or a mixture around it (trained with the loss ``nll``)
HYBRID_DISTRIBUTIONS = ("none", "cmal", "gmm")


def _hybrid(flow_mean, flow_std, hidden_size: int = 64, head_hidden: int = 8, lag_days: int = 10,
            head: str = "bounded", pet_source: str = "forcing", distribution: str = "none", components: int = 3,
            autoregressive: bool = False, holdout: float = 0.5):
    from .models import HybridPRNN

    return HybridPRNN(_exphydro(pet_source), mode="regional", q_scale=flow_std,
                      hidden_sizes=(hidden_size, hidden_size), head_hidden=head_hidden, lag_days=lag_days, head=head,
                      distribution=None if distribution == "none" else distribution, components=components,
                      autoregressive=autoregressive, holdout=holdout)


def _pseudo_hybrid(flow_mean, flow_std, head_hidden: int = 8, lag_days: int = 10, head: str = "bounded",
                   pet_source: str = "forcing", distribution: str = "none", components: int = 3):
    from .models import HybridPRNN

    return HybridPRNN(_exphydro(pet_source), mode="pseudo_regional", q_scale=flow_std,
                      head_hidden=head_hidden, lag_days=lag_days, head=head,
                      distribution=None if distribution == "none" else distribution, components=components)


#: output heads of the LSTM: a point forecast, or a mixture (trained with the loss ``nll``)
LSTM_HEADS = ("regression", "cmal", "gmm")
#: weight initialisations of the LSTM (difhydro.nn.initialisation.INITIALISATIONS, kept literal: the
#: registry imports no JAX): Flax's, or PyTorch's uniform draws with neuralhydrology's forget bias
LSTM_INITIALISATIONS = ("flax", "torch")
#: the mixture kinds (the value of an entry's ``mixture`` option) whose model returns
#: ``streamflow_distribution`` (the loss ``nll`` needs one)
PROBABILISTIC_HEADS = ("cmal", "gmm")


def _lstm(flow_mean, flow_std, hidden_size: int = 256, dropout: float | None = None, head: str = "regression",
          components: int = 3, autoregressive: bool = False, holdout: float = 0.5, clip_in_training: bool = True,
          lags: int = 1, init: str = "flax"):
    from .models import RegionalLSTM

    dropout = (0.4 if hidden_size >= 128 else 0.1) if dropout is None else dropout
    if lags != 1 and not autoregressive:
        raise ValueError(f"lstm: lags: {lags} needs autoregressive: true (the lags are of the observed flow)")
    if autoregressive:  # the observed flow of days t-1..t-lags as inputs, hidden with probability holdout in training
        if head != "regression":
            raise ValueError(f"lstm: autoregressive: true takes head: regression only (got head: {head})")
        from ..forecast.autoregression import AutoregressiveLSTM

        return _initialised(AutoregressiveLSTM(hidden_size=hidden_size, dropout_rate=dropout, holdout=holdout,
                                               lags=tuple(range(1, lags + 1)), clip_in_training=clip_in_training,
                                               output_scale=flow_std, output_offset=flow_mean), init)
    return _initialised(RegionalLSTM(hidden_size=hidden_size, dropout_rate=dropout, output_scale=flow_std,
                                     output_offset=flow_mean, head=head, components=components,
                                     clip_in_training=clip_in_training), init)


def _initialised(model, init: str, name: str = "lstm"):
    """``model`` whose ``init`` draws the LSTM and its head (linear or mixture) as ``init`` says
    (:mod:`difhydro.nn.initialisation`: ``flax`` as built, ``torch`` as neuralhydrology)."""
    from ..nn.initialisation import check_initialisation, torch_initialised

    check_initialisation(init, f"models.{name}.init")  # the config checks the choice; a direct call here
    return model if init == "flax" else torch_initialised(model)


def mixture_kind(name: str, options: Mapping[str, Any]) -> str | None:
    """The mixture model ``name`` with ``options`` predicts (``"cmal"``, ``"gmm"``), read from
    the entry's ``mixture`` option (lstm: ``head``, hybrids: ``distribution``); ``None`` for a
    point forecast."""
    option = _entry(name).mixture
    if option is None:
        return None
    kind = options.get(option, model_options(name)[option])
    return kind if kind in PROBABILISTIC_HEADS else None


def probabilistic(name: str, options: Mapping[str, Any]) -> bool:
    """Whether model ``name`` with ``options`` predicts a distribution (:func:`mixture_kind`)."""
    return mixture_kind(name, options) is not None


def _dpl_exphydro(flow_mean, flow_std, hidden_size: int = 64, network: str = "mlp", pet_source: str = "forcing"):
    from .models import DifferentiableParameterLearning

    sizes = (hidden_size,) if network == "attention" else (hidden_size, hidden_size)
    return DifferentiableParameterLearning(_exphydro(pet_source), network=network, hidden_sizes=sizes)


def _transformer(flow_mean, flow_std, hidden_size: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1,
                 max_span: int | None = None, chunk_size: int | None = None, position: str = "relative"):
    from .models import RegionalTransformer

    return RegionalTransformer(hidden_size=hidden_size, num_heads=heads, num_layers=layers, dropout_rate=dropout,
                               max_span=max_span, chunk_size=chunk_size, position=position, output_scale=flow_std,
                               output_offset=flow_mean)


def _dpl_hbv(flow_mean, flow_std, hidden_size: int = 256, components: int = 16, warmup_days: int = 365,
             dynamic_params: tuple[str, ...] = ("beta", "betaet"), lstm_input_layer: bool = False,
             capillary_rise: bool = False, groundwater_exchange: bool = False,
             forcing_correction: tuple[str, ...] = (), init: str = "flax"):
    from ..physics.hbv import HBV
    from .models import DifferentiableParameterLearning

    hbv = HBV(n_components=components, use_betaet=True, capillary_rise=capillary_rise,
              groundwater_exchange=groundwater_exchange)
    return _initialised(DifferentiableParameterLearning(
        hbv, network="lstm", hidden_sizes=(hidden_size,),
        dynamic_params=tuple(dynamic_params), routing="gamma", warmup_days=warmup_days, warmup_gradient=False,
        lstm_input_layer=lstm_input_layer, forcing_correction=tuple(forcing_correction),
    ), init, "dpl_hbv")


def _exphydro_calibrated(flow_mean, flow_std, pet_source: str = "forcing"):
    return _exphydro(pet_source)


def _hbv_calibrated(flow_mean, flow_std):
    from ..physics.hbv import HBV

    return HBV()


_EXPHYDRO_LIMITS = {"pet_source": {"choices": _PET_SOURCES}}
_HYBRID_LIMITS = {**_EXPHYDRO_LIMITS, "head": {"choices": _HEADS}, "distribution": {"choices": HYBRID_DISTRIBUTIONS},
                  "components": {"ge": 1}}
register_model("hybrid", _hybrid, "EXP-HYDRO PRNN + causal Conv1D head; attributes -> physical parameters and head "
               "weights (Jiang et al. 2020); distribution: a cmal/gmm mixture centred on the flow, trained with loss "
               "nll; autoregressive: yesterday's observed flow as an input of the head",
               limits={**_HYBRID_LIMITS, "holdout": {"ge": 0.0, "le": 1.0}}, mixture="distribution")
register_model("pseudo_hybrid", _pseudo_hybrid, "the hybrid with one parameter set for all basins (Jiang et al. 2020)",
               limits=_HYBRID_LIMITS, mixture="distribution")
register_model("lstm", _lstm, "regional LSTM, attributes concatenated to the inputs (Kratzert et al. 2019); head: "
               "regression, or a mixture of asymmetric Laplace (cmal) or normal (gmm) laws trained with loss nll "
               "(Klotz et al. 2022); autoregressive: the observed flow of the previous lags days (1 = yesterday) as "
               "inputs (Nearing et al. 2022); init: flax or torch (neuralhydrology's uniform draws)",
               limits={"dropout": {"ge": 0.0, "lt": 1.0}, "head": {"choices": LSTM_HEADS}, "components": {"ge": 1},
                       "holdout": {"ge": 0.0, "le": 1.0}, "lags": {"ge": 1, "le": 365},
                       "init": {"choices": LSTM_INITIALISATIONS}},
               mixture="head")
register_model("transformer", _transformer, "regional causal transformer over the window, attributes concatenated to "
               "the inputs", limits={"dropout": {"ge": 0.0, "lt": 1.0}, "hidden_size": {"ge": 1}, "heads": {"ge": 1},
                                     "layers": {"ge": 1}, "max_span": {"ge": 1}, "chunk_size": {"ge": 1},
                                     "position": {"choices": ("relative", "sinusoidal")}})
register_model("dpl_hbv", _dpl_hbv, "dPL: LSTM -> multi-component HBV, time-varying BETA/BETAET, gamma routing (δHBV, "
               "Feng et al. 2022); options: capillary rise (HBV 1.1p), groundwater exchange (δHBV 2.0), learned "
               "forcing_correction of precipitation and/or pet; init: flax or torch (the LSTM's draws, as the lstm's)",
               limits={"forcing_correction": {"choices": ("precipitation", "pet")},
                       "init": {"choices": LSTM_INITIALISATIONS}})
register_model("dpl_exphydro", _dpl_exphydro, "dPL: MLP on attributes -> EXP-HYDRO (Tsai et al. 2021)",
               limits={**_EXPHYDRO_LIMITS, "network": {"choices": ("mlp", "lstm", "attention")}})
register_model("exphydro_calibrated", _exphydro_calibrated, "EXP-HYDRO calibrated per basin by gradient descent",
               calibrated=True, limits=_EXPHYDRO_LIMITS)
register_model("hbv_calibrated", _hbv_calibrated, "HBV calibrated per basin by gradient descent", calibrated=True)
