"""Hybrid and regional models, and the one model registry.

Every model takes one ``batch`` (a :class:`~difhydro.data.Batch` or any mapping with the
same fields), basin-first:

- ``forcing``: name -> ``[basin, time]`` in physical units (what the process model reads);
- ``inputs``: ``[basin, time, features]`` standardised dynamic inputs (for networks);
- ``attributes``: ``[basin, n_attributes]`` standardised static catchment attributes;

and returns a mapping with ``streamflow`` ``[basin, time]`` (mm d-1) plus, for physics
models, every output and state of the process model (``[basin, time, ...]``) and the
physical parameters used (``params``), so users can read what the layer inferred.

Models:

- :class:`HybridPRNN`: Jiang et al. (2020): forcing -> :class:`~difhydro.hybrid.PRNN` ->
  [Q*, inputs] -> causal Conv1D head -> Q, with a parameterization pipeline (attributes ->
  physical parameters θP and head weights θN); modes ``local``, ``regional``,
  ``pseudo_regional``.
- :class:`DifferentiableParameterLearning`: dPL (Tsai et al. 2021; δHBV, Feng et al.
  2022): an encoder (MLP or attention on attributes, LSTM on forcing + attributes) ->
  :class:`~difhydro.hybrid.ParamHead` -> process model -> flow, no surrogate.
- :class:`RegionalLSTM`: Kratzert et al. (2019): attributes concatenated to forcings.

:data:`MODELS` is the registry: name -> :class:`RegisteredModel`, whose ``build(**options)``
makes the model; the experiment layer, the benchmarks and the tests all build from it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..nn import LSTM, MLP, AttributeTransformer, CausalConvHead
from ..physics.base import Array, ProcessModel
from ..physics.exphydro import ExpHydro
from ..physics.hbv import HBV
from .layer import PRNN
from .params import ParamHead, split_last_axis

__all__ = [
    "HybridPRNN",
    "DifferentiableParameterLearning",
    "RegionalLSTM",
    "RegisteredModel",
    "MODELS",
    "register_model",
    "build_model",
    "model_options",
    "field",
    "check_batch",
    "inputs_with_attributes",
]


def field(batch, name: str):
    """``batch[name]`` for a mapping, ``batch.name`` for a Batch; ``None`` if absent."""
    if isinstance(batch, Mapping):
        return batch.get(name)
    return getattr(batch, name, None)


def inputs_with_attributes(batch) -> jax.Array:
    """``inputs`` [basin, time, features] with the static ``attributes`` [basin, n]
    repeated along time and appended (Kratzert et al. 2019); just ``inputs`` without them."""
    x = jnp.asarray(field(batch, "inputs"))
    attributes = field(batch, "attributes")
    if attributes is None or not attributes.shape[-1]:
        return x
    a = jnp.asarray(attributes)
    return jnp.concatenate([x, jnp.broadcast_to(a[:, None, :], x.shape[:2] + a.shape[-1:])], -1)


def check_batch(batch, model: ProcessModel | None = None, needs=()) -> None:
    """Raise a clear ValueError when a batch lacks what a model needs (before compiling)."""
    present = sorted(batch) if isinstance(batch, Mapping) else list(getattr(batch, "_fields", ()))
    for key in needs:
        if field(batch, key) is None:
            raise ValueError(f"batch has no {key!r}; fields present: {present}")
    if model is not None:
        forcing = field(batch, "forcing") or {}
        missing = [k for k in model.forcing_names if k not in forcing]
        if missing:
            raise ValueError(
                f"{type(model).__name__} needs forcing {missing}; batch['forcing'] has {sorted(forcing)}"
            )


class HybridPRNN(nn.Module):
    """The hybrid DL model of Jiang et al. (2020), Fig. 1a.

    Main pipeline: ``forcing -> PRNN -> Q*``; ``[Q*, inputs] -> causal Conv1D head -> Q``.
    Parameterization pipeline (``mode="regional"``): ``attributes -> MLP -> θP`` (physical
    parameters of the PRNN) and ``attributes -> MLP -> θN`` (every weight of the head, a
    small hypernetwork). ``mode="local"`` (one basin) and ``"pseudo_regional"`` (pipeline
    off, one parameter set for all basins) learn θP and θN directly.

    ``head`` says how the head's output ``h`` makes the streamflow:

    - ``"bounded"`` (default): ``Q = Q*·exp(head_bound·tanh(h))``, a factor in
      ``[e^-b, e^b]`` on the physics flow. Q is never negative, is 0 where the physics
      says so, and cannot create water beyond ``e^b`` times what the mass-conserving
      physics layer lets through, whatever the attributes (a hypernetwork extrapolating
      to an unseen basin cannot turn an arid basin's forcing into floods);
    - ``"residual"``: ``Q = Q* + h`` (a correction, unbounded);
    - ``"plain"``: ``Q = h`` (the paper's head).

    An untrained head (``w2 = 0``, so ``h = 0``) starts from the physics for ``bounded``
    and ``residual``.

    Attributes:
        model: process model of the PRNN (EXP-HYDRO by default).
        mode: ``"local"``, ``"regional"`` or ``"pseudo_regional"``.
        hidden_sizes: widths of the parameterization MLPs.
        head_hidden: filters of the head's first Conv1D layer.
        lag_days: lag window of the head (10 d in the paper).
        q_scale: Q* is divided by this (mm d-1) before entering the head.
        warmup_days: the PRNN's spin-up days: the first ``warmup_days`` of every sequence
            run the physics without gradients (:func:`~difhydro.physics.warm_up`, as δHBV)
            and the rest starts from the spun-up states; every day's output is still
            returned (the data's warm-up mask keeps the spin-up days out of the loss and
            the metrics). 0: gradients flow through every day (P-RNN's spin-up, where only
            the mask excludes the first days). Must be shorter than the sequence.
        checkpoint: passed to :class:`~difhydro.hybrid.PRNN`.
    """

    model: ProcessModel = ExpHydro()
    mode: str = "regional"
    hidden_sizes: Sequence[int] = (64, 64)
    head_hidden: int = 8
    lag_days: int = 10
    head: str = "bounded"
    head_bound: float = 0.6931471805599453  # ln 2: the head scales Q* by 0.5 ... 2
    q_scale: float = 1.0
    warmup_days: int = 0
    checkpoint: bool | None = None

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True,
                 initial_state: Mapping[str, Array] | None = None) -> dict[str, Any]:
        """``initial_state``: process-model states ``[basin, ...]`` at the first day (hot start)."""
        if self.mode not in ("local", "regional", "pseudo_regional"):
            raise ValueError(f"mode must be local, regional or pseudo_regional, got {self.mode!r}")
        if self.head not in ("bounded", "residual", "plain"):
            raise ValueError(f"head must be bounded, residual or plain, got {self.head!r}")
        needs = ("forcing", "inputs") + (("attributes",) if self.mode == "regional" else ())
        check_batch(batch, self.model, needs)
        # warmup_gradient=False: with gradients the spin-up days would be ordinary days
        prnn = PRNN(self.model, warmup_days=self.warmup_days, warmup_gradient=False, checkpoint=self.checkpoint,
                    name="prnn")
        conv = CausalConvHead(self.head_hidden, 1, self.lag_days, name="head")
        inputs = jnp.asarray(field(batch, "inputs"))
        raw, head_weights = None, None
        if self.mode == "regional":
            attrs = jnp.asarray(field(batch, "attributes"))
            params = prnn.head
            flat = MLP(tuple(self.hidden_sizes), params.size, name="physical_parameters")(attrs, deterministic=deterministic)
            raw = params.split(flat)
            shapes = conv.weight_shapes(inputs.shape[-1] + 1)
            flat_w = MLP(tuple(self.hidden_sizes), sum(math.prod(s) for s in shapes.values()),
                         name="head_parameters")(attrs, deterministic=deterministic)
            head_weights = split_last_axis(flat_w * 0.1, shapes)
        out = prnn(field(batch, "forcing"), raw, initial_state)
        q_star = out["streamflow"]
        x = jnp.concatenate([(q_star / self.q_scale)[..., None], inputs], axis=-1)
        h = conv(x, head_weights)[..., 0]
        out["physics_streamflow"] = q_star
        if self.head == "bounded":
            out["streamflow"] = q_star * jnp.exp(self.head_bound * jnp.tanh(h))
        else:
            out["streamflow"] = q_star + h if self.head == "residual" else h
        return out


_NETWORKS = ("mlp", "lstm", "attention")


class DifferentiableParameterLearning(nn.Module):
    """dPL: encoder -> physical parameters -> process model -> flow (no surrogate).

    Encoders (``network``):

    - ``"mlp"``: static attributes -> one parameter set per basin;
    - ``"attention"``: static attributes as tokens -> :class:`~difhydro.nn.AttributeTransformer`
      (ParaFormer's attribute network, Li & Lu 2023) -> one set per basin;
    - ``"lstm"``: ``[inputs, attributes]`` over time -> LSTM -> parameters per day; the
      static ones take the last day's output (δHBV), the names in ``dynamic_params`` keep
      the whole series (time-varying, e.g. HBV's ``beta``, ``betaet``).

    Attributes:
        model: process model.
        network: ``"mlp"``, ``"lstm"`` or ``"attention"``.
        hidden_sizes: MLP widths; ``(hidden,)`` for the LSTM; ``(d_model,)`` for attention.
        dynamic_params: names of time-varying parameters (LSTM only).
        routing, warmup_days, warmup_gradient, checkpoint: as in :class:`~difhydro.hybrid.PRNN`
            (δHBV: ``routing="gamma"``, ``warmup_gradient=False``).
        dropout_rate: dropout of the network.
        lstm_input_layer: put ``Dense(hidden) -> ReLU`` in front of the LSTM, as dmg's
            ``LstmModel`` of δHBV does (LSTM only).
    """

    model: ProcessModel
    network: str = "mlp"
    hidden_sizes: Sequence[int] = (64, 64)
    dynamic_params: Sequence[str] = ()
    routing: str | None = None
    warmup_days: int = 0
    warmup_gradient: bool = True
    checkpoint: bool | None = None
    dropout_rate: float = 0.0
    lstm_input_layer: bool = False

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True,
                 initial_state: Mapping[str, Array] | None = None) -> dict[str, Any]:
        """``initial_state``: process-model states ``[basin, ...]`` at the first day (hot start)."""
        if self.network not in _NETWORKS:
            raise ValueError(f"network must be one of {_NETWORKS}, got {self.network!r}")
        spec = ParamHead.for_model(self.model, self.routing).spec
        unknown = [k for k in self.dynamic_params if k not in spec]
        if unknown:
            raise ValueError(f"dynamic_params {unknown} are not parameters of the model: {list(spec)}")
        if self.dynamic_params and self.network != "lstm":
            raise ValueError(f"time-varying parameters (dynamic_params) need network='lstm', not {self.network!r}")
        prnn = PRNN(self.model, self.routing, tuple(self.dynamic_params), self.warmup_days, self.warmup_gradient,
                    self.checkpoint, name="prnn")
        head = prnn.head
        if self.network == "lstm":
            check_batch(batch, self.model, ("forcing", "inputs"))
            x = inputs_with_attributes(batch)
            if self.lstm_input_layer:
                x = nn.relu(nn.Dense(self.hidden_sizes[0], name="input_layer")(x))
            seq = LSTM(self.hidden_sizes[0], output_size=head.size, dropout_rate=self.dropout_rate, name="lstm")(
                x, deterministic=deterministic
            )
            raw = head.select(head.split(seq))
        else:
            check_batch(batch, self.model, ("forcing", "attributes"))
            attributes = jnp.asarray(field(batch, "attributes"))
            if self.network == "mlp":
                flat = MLP(tuple(self.hidden_sizes), head.size, dropout_rate=self.dropout_rate, name="mlp")(
                    attributes, deterministic=deterministic
                )
            else:
                d_model = self.hidden_sizes[0]
                flat = AttributeTransformer(head.size, d_model=d_model, mlp_dim=2 * d_model,
                                            dropout_rate=self.dropout_rate, name="attention")(
                    attributes, deterministic=deterministic
                )
            raw = head.split(flat)
        return prnn(field(batch, "forcing"), raw, initial_state)


class RegionalLSTM(nn.Module):
    """Regional LSTM of Kratzert et al. (2019): ``[inputs, attributes] -> LSTM -> Q``.

    The output is ``streamflow = max(output_offset + output_scale · head, 0)`` (mm d-1):
    the network works in standardised units (set them from the training-period flow) and a
    flow is never negative (neuralhydrology's ``output_activation: relu``).
    """

    hidden_size: int = 256
    dropout_rate: float = 0.4
    initial_forget_bias: float = 3.0
    output_scale: float = 1.0
    output_offset: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True,
                 initial_state: Mapping[str, Array] | None = None) -> dict[str, Any]:
        if initial_state is not None:
            raise ValueError("RegionalLSTM has no process-model states to start from (hot start)")
        check_batch(batch, None, ("inputs",))
        x = inputs_with_attributes(batch)
        y = LSTM(
            self.hidden_size, output_size=1, dropout_rate=self.dropout_rate,
            initial_forget_bias=self.initial_forget_bias, dtype=self.dtype, name="lstm",
        )(x, deterministic=deterministic)
        q = self.output_offset + self.output_scale * y[..., 0].astype(jnp.float32)
        return {"streamflow": jax.nn.relu(q)}


# ----------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------


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

    The EXP-HYDRO entries read the ``pet`` forcing (``pet_source="forcing"``), so that
    every process model of an experiment reads the same PET (``pet_source="hamon"`` is
    P-RNN's own Hamon PET), and report the water that left the buckets during each day
    (``output_timing="update"``): P-RNN's ``"updated"`` evaluation reports flow from an
    empty bucket (``H_5(0) = 0.5``), water that never existed.
        calibrated: per-basin calibration of a process model (gauged basins only).
    """

    build: Callable[..., Any]
    doc: str
    calibrated: bool = False


MODELS: dict[str, RegisteredModel] = {}


def register_model(name: str, build: Callable[..., Any], doc: str, *, calibrated: bool = False) -> None:
    """Add (or replace) a registry entry; a contrib package registers its models this way."""
    MODELS[name] = RegisteredModel(build, doc, calibrated)


def model_options(name: str) -> dict[str, Any]:
    """The options of ``name`` and their defaults (keyword arguments of its ``build``)."""
    _entry(name)
    sig = inspect.signature(MODELS[name].build)
    return {k: p.default for k, p in sig.parameters.items() if k not in ("flow_mean", "flow_std")}


def build_model(name: str, *, flow_mean: float = 0.0, flow_std: float = 1.0, **options) -> Any:
    """Build the registry entry ``name`` with its ``options`` (unknown names and options
    raise a ValueError listing the accepted ones)."""
    entry = _entry(name)
    accepted = model_options(name)
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; accepted: {sorted(accepted)}")
    return entry.build(flow_mean=flow_mean, flow_std=flow_std, **options)


def _entry(name: str) -> RegisteredModel:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name]


def _exphydro(pet_source: str) -> ExpHydro:
    return ExpHydro(pet_source=pet_source, output_timing="update")


def _hybrid(flow_mean, flow_std, hidden_size: int = 64, head_hidden: int = 8, lag_days: int = 10,
            head: str = "bounded", pet_source: str = "forcing"):
    return HybridPRNN(_exphydro(pet_source), mode="regional", q_scale=flow_std,
                      hidden_sizes=(hidden_size, hidden_size), head_hidden=head_hidden, lag_days=lag_days, head=head)


def _pseudo_hybrid(flow_mean, flow_std, head_hidden: int = 8, lag_days: int = 10, head: str = "bounded",
                   pet_source: str = "forcing"):
    return HybridPRNN(_exphydro(pet_source), mode="pseudo_regional", q_scale=flow_std,
                      head_hidden=head_hidden, lag_days=lag_days, head=head)


def _lstm(flow_mean, flow_std, hidden_size: int = 256, dropout: float | None = None):
    dropout = (0.4 if hidden_size >= 128 else 0.1) if dropout is None else dropout
    return RegionalLSTM(hidden_size=hidden_size, dropout_rate=dropout, output_scale=flow_std, output_offset=flow_mean)


def _dpl_exphydro(flow_mean, flow_std, hidden_size: int = 64, network: str = "mlp", pet_source: str = "forcing"):
    sizes = (hidden_size,) if network == "attention" else (hidden_size, hidden_size)
    return DifferentiableParameterLearning(_exphydro(pet_source), network=network, hidden_sizes=sizes)


def _dpl_hbv(flow_mean, flow_std, hidden_size: int = 256, components: int = 16, warmup_days: int = 365,
             dynamic_params: tuple[str, ...] = ("beta", "betaet"), lstm_input_layer: bool = False):
    return DifferentiableParameterLearning(
        HBV(n_components=components, use_betaet=True), network="lstm", hidden_sizes=(hidden_size,),
        dynamic_params=tuple(dynamic_params), routing="gamma", warmup_days=warmup_days, warmup_gradient=False,
        lstm_input_layer=lstm_input_layer,
    )


register_model("hybrid", _hybrid, "EXP-HYDRO PRNN + causal Conv1D head; attributes -> physical parameters and head weights (Jiang et al. 2020)")
register_model("pseudo_hybrid", _pseudo_hybrid, "the hybrid with one parameter set for all basins (Jiang et al. 2020)")
register_model("lstm", _lstm, "regional LSTM, attributes concatenated to the inputs (Kratzert et al. 2019)")
register_model("dpl_hbv", _dpl_hbv, "dPL: LSTM -> multi-component HBV, time-varying BETA/BETAET, gamma routing (δHBV, Feng et al. 2022)")
register_model("dpl_exphydro", _dpl_exphydro, "dPL: MLP on attributes -> EXP-HYDRO (Tsai et al. 2021)")
register_model("exphydro_calibrated", lambda flow_mean, flow_std, pet_source="forcing": _exphydro(pet_source),
               "EXP-HYDRO calibrated per basin by gradient descent", calibrated=True)
register_model("hbv_calibrated", lambda flow_mean, flow_std: HBV(),
               "HBV calibrated per basin by gradient descent", calibrated=True)
