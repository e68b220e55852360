"""Hybrid models: process models as recurrent layers inside Flax networks.

Layout: networks are batch-major (``[batch, time, features]``, the Flax convention);
:func:`~difhydro.physics.simulate` is time-major (``[time, *batch]``). :class:`PRNN` is the
one place that moves the axis. Every model here takes one ``batch``, a
:class:`~difhydro.data.batching.Batch` or any mapping with the same fields:

- ``forcing``: name -> ``[batch, time]`` in physical units (what the process model reads);
- ``inputs``: ``[batch, time, features]`` standardised dynamic inputs (for networks);
- ``attributes``: ``[batch, n_attributes]`` standardised static catchment attributes;

and returns a mapping with ``streamflow`` ``[batch, time]`` (mm d-1) plus, for physics
models, every output and state of the process model (``[batch, time, ...]``) and the
physical parameters used (``params``), so users can read what the layer inferred.

Models:
- :class:`PRNN` — any process model as a layer (Jiang et al. 2020).
- :class:`HybridPRNN` — Jiang et al.'s hybrid: forcings -> PRNN -> [Q*, forcings] ->
  causal Conv1D head -> Q, with a parameterization pipeline (attributes -> physical
  parameters θP and head weights θN); modes ``local``, ``regional``, ``pseudo_regional``.
- :class:`DifferentiableParameterLearning` — dPL (Tsai et al. 2021; δHBV, Feng et al.
  2022): a network (MLP on attributes, or LSTM on forcings + attributes with static or
  time-varying outputs) -> parameters -> process model -> flow, no surrogate.
- :class:`RegionalLSTM` — Kratzert et al. (2019): attributes concatenated to forcings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from .nn import LSTM, MLP
from .physics.base import Array, ParamSpec, ProcessModel, simulate, time_slice_params, warm_up
from .physics.exphydro import ExpHydro
from .physics.routing import GAMMA_UH_SPEC, MAXBAS_SPEC, route_streamflow

__all__ = [
    "PRNN",
    "HybridPRNN",
    "DifferentiableParameterLearning",
    "RegionalLSTM",
    "MODELS",
    "check_batch",
    "field",
    "build_model",
    "split_raw_params",
]

_ROUTING = {None: {}, "gamma": GAMMA_UH_SPEC, "maxbas": MAXBAS_SPEC}


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


class PRNN(nn.Module):
    """A process model as a recurrent layer (the P-RNN of Jiang et al. 2020).

    Parameters are unconstrained (``raw``) values mapped into their boxes with
    ``ParamSpec.to_physical``. They come either from the caller (``raw_params``: name ->
    ``[batch, *event]`` static or ``[batch, time, *event]`` time-varying; a regional
    model) or, when ``raw_params`` is ``None``, from the layer's own variables (one set
    shared by every basin of the batch: a local or pseudo-regional model, initialised at
    the box centre as Jiang's weights at 0.5).

    Attributes:
        model: any :class:`~difhydro.physics.ProcessModel`.
        routing: ``None``, ``"gamma"`` (δHBV unit hydrograph) or ``"maxbas"``; adds the
            routing parameters to :attr:`param_spec` and routes ``streamflow`` (the
            unrouted series stays as ``runoff``).
        warmup_days: days run first to spin the states up; with ``warmup_gradient=False``
            they run under ``stop_gradient`` (δHBV), otherwise gradients flow through them
            (P-RNN, where the spin-up is only excluded from the loss).
        checkpoint: ``jax.checkpoint`` each physics step (memory for long sequences).
    """

    model: ProcessModel
    routing: str | None = None
    warmup_days: int = 0
    warmup_gradient: bool = True
    checkpoint: bool = False

    @property
    def param_spec(self) -> dict[str, ParamSpec]:
        if self.routing not in _ROUTING:
            raise ValueError(f"routing must be one of {list(_ROUTING)}, got {self.routing!r}")
        return {**self.model.param_spec, **_ROUTING[self.routing]}

    def event_shape(self, name: str) -> tuple[int, ...]:
        return self.model.param_event_shape(name) if name in self.model.param_spec else ()

    def _own_params(self):
        return {
            k: self.param(k, nn.initializers.zeros_init(), self.event_shape(k), jnp.float32)
            for k in self.param_spec
        }

    @nn.compact
    def __call__(
        self,
        forcing: Mapping[str, Array],
        raw_params: Mapping[str, Array] | None = None,
        state0: Mapping[str, Array] | None = None,
    ) -> dict[str, Any]:
        """Run the physics over ``forcing`` (name -> ``[batch, time]``).

        Returns every output and state ``[batch, time, ...]`` and ``params`` (physical).
        """
        spec = self.param_spec
        missing = [k for k in self.model.forcing_names if k not in forcing]
        if missing:
            raise ValueError(f"{type(self.model).__name__} needs forcing {missing}; got {sorted(forcing)}")
        tm = {k: jnp.moveaxis(jnp.asarray(forcing[k]), 1, 0) for k in self.model.forcing_names}
        n_time, batch = tm[next(iter(tm))].shape[0], tm[next(iter(tm))].shape[1:]
        raw = self._own_params() if raw_params is None else raw_params
        absent = [k for k in spec if k not in raw]
        if absent:
            raise ValueError(f"raw_params lacks {absent}; the layer needs {list(spec)}")
        params = {}
        for k, s in spec.items():
            p = s.to_physical(jnp.asarray(raw[k]))
            if p.ndim == len(batch) + 1 + len(self.event_shape(k)):
                p = jnp.moveaxis(p, 1, 0)  # time-varying: [batch, time, ...] -> [time, batch, ...]
            params[k] = p
        physics = {k: v for k, v in params.items() if k in self.model.param_spec}
        routing = {k: v for k, v in params.items() if k not in self.model.param_spec}
        out = self._simulate(physics, tm, state0, n_time)
        if routing:
            out["runoff"] = out["streamflow"]
            out["streamflow"] = route_streamflow(out["streamflow"], routing)
        result = {k: jnp.moveaxis(v, 0, 1) for k, v in out.items()}
        result["params"] = {  # every parameter as [batch, ...] (time-varying: [batch, time, ...])
            k: (jnp.moveaxis(v, 0, 1) if v.ndim == len(batch) + 1 + len(self.event_shape(k))
                else jnp.broadcast_to(v, batch + self.event_shape(k)))
            for k, v in params.items()
        }
        return result

    def _simulate(self, params, forcing, state0, n_time):
        w = int(self.warmup_days)
        if w == 0 or self.warmup_gradient:
            return simulate(self.model, params, forcing, state0, check=False, checkpoint=self.checkpoint)[1]
        if w >= n_time:
            raise ValueError(f"warmup_days={w} must be shorter than the sequence ({n_time} days)")
        state_w, spin = warm_up(self.model, params, forcing, w, state0, return_outputs=True)
        batch_ndim = next(iter(forcing.values())).ndim - 1
        rest = simulate(
            self.model, time_slice_params(self.model, params, batch_ndim, w, n_time),
            {k: v[w:] for k, v in forcing.items()}, state_w, check=False, checkpoint=self.checkpoint,
        )[1]
        return {k: jnp.concatenate([spin[k], rest[k]], axis=0) for k in rest}


def split_raw_params(flat: Array, spec: Mapping[str, ParamSpec], event=lambda name: ()) -> dict[str, Array]:
    """Split the last axis of a network output ``[..., n]`` into one raw array per
    parameter of ``spec`` (in order), each shaped ``[..., *event(name)]``."""
    out, i = {}, 0
    for k in spec:
        shape = event(k)
        n = math.prod(shape)
        out[k] = flat[..., i : i + n].reshape(flat.shape[:-1] + shape)
        i += n
    return out


def _lag_windows(x: Array, lag: int) -> Array:
    """``[batch, time, F] -> [batch, time, lag, F]``: days t, t-1, ..., t-lag+1 (zeros before)."""
    padded = jnp.pad(x, ((0, 0), (lag - 1, 0), (0, 0)))
    n = x.shape[1]
    return jnp.stack([padded[:, lag - 1 - k : lag - 1 - k + n] for k in range(lag)], axis=2)


class _ConvHead(nn.Module):
    """Two causal Conv1D layers with weights given per basin (θN) or learned and shared.

    Layer 1: ``hidden`` filters over a ``lag_days`` window, ELU; layer 2: width-1 linear
    map to one output. Weights: ``w1 [K, F, C]``, ``b1 [C]``, ``w2 [C]``, ``b2 []``.
    """

    hidden: int
    lag_days: int

    def shapes(self, n_features: int):
        k, c = self.lag_days, self.hidden
        return {"w1": (k, n_features, c), "b1": (c,), "w2": (c,), "b2": ()}

    @nn.compact
    def __call__(self, x: Array, weights: Mapping[str, Array] | None = None) -> Array:
        """``x [batch, time, F]`` -> ``[batch, time]``; ``weights`` leaves ``[batch, ...]``."""
        shapes = self.shapes(x.shape[-1])
        if weights is None:
            # w2 starts at zero: an untrained residual head leaves the physics untouched
            init = {"w1": nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2)}
            weights = {
                k: self.param(k, init.get(k, nn.initializers.zeros_init()), s)[None] for k, s in shapes.items()
            }
        lagged = _lag_windows(x, self.lag_days)
        h = nn.elu(jnp.einsum("btkf,bkfc->btc", lagged, jnp.broadcast_to(weights["w1"], (x.shape[0],) + shapes["w1"]))
                   + weights["b1"][:, None, :])
        return jnp.einsum("btc,bc->bt", h, jnp.broadcast_to(weights["w2"], (x.shape[0],) + shapes["w2"])) + weights["b2"][:, None]


class HybridPRNN(nn.Module):
    """The hybrid DL model of Jiang et al. (2020), Fig. 1a.

    Main pipeline: ``forcing -> PRNN -> Q*``; ``[Q*, inputs] -> causal Conv1D head -> Q``.
    Parameterization pipeline (``mode="regional"``): ``attributes -> MLP -> θP`` (physical
    parameters of the PRNN) and ``attributes -> MLP -> θN`` (every weight of the head, a
    small hypernetwork). ``mode="local"`` (one basin) and ``"pseudo_regional"`` (pipeline
    off, one parameter set for all basins) learn θP and θN directly.

    With ``residual=True`` (default) the head predicts a correction added to Q*, so an
    untrained head starts from the physics; ``False`` is the paper's plain head.

    Attributes:
        model: process model of the PRNN (EXP-HYDRO by default).
        mode: ``"local"``, ``"regional"`` or ``"pseudo_regional"``.
        hidden_sizes: widths of the parameterization MLPs.
        head_hidden: filters of the head's first Conv1D layer.
        lag_days: lag window of the head (10 d in the paper).
        q_scale: Q* is divided by this (mm d-1) before entering the head.
        warmup_days, checkpoint: passed to :class:`PRNN`.
    """

    model: ProcessModel = ExpHydro()
    mode: str = "regional"
    hidden_sizes: Sequence[int] = (64, 64)
    head_hidden: int = 8
    lag_days: int = 10
    residual: bool = True
    q_scale: float = 1.0
    warmup_days: int = 0
    checkpoint: bool = False

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True) -> dict[str, Any]:
        if self.mode not in ("local", "regional", "pseudo_regional"):
            raise ValueError(f"mode must be local, regional or pseudo_regional, got {self.mode!r}")
        needs = ("forcing", "inputs") + (("attributes",) if self.mode == "regional" else ())
        check_batch(batch, self.model, needs)
        prnn = PRNN(self.model, warmup_days=self.warmup_days, checkpoint=self.checkpoint, name="prnn")
        head = _ConvHead(self.head_hidden, self.lag_days, name="head")
        inputs = jnp.asarray(field(batch, "inputs"))
        n_features = inputs.shape[-1] + 1
        raw, head_weights = None, None
        if self.mode == "regional":
            attrs = jnp.asarray(field(batch, "attributes"))
            spec = prnn.param_spec
            n_raw = sum(math.prod(prnn.event_shape(k)) for k in spec)
            flat = MLP(tuple(self.hidden_sizes), n_raw, name="physical_parameters")(attrs, deterministic=deterministic)
            raw = split_raw_params(flat, spec, prnn.event_shape)
            shapes = head.shapes(n_features)
            flat_w = MLP(tuple(self.hidden_sizes), sum(math.prod(s) for s in shapes.values()), name="head_parameters")(
                attrs, deterministic=deterministic
            )
            head_weights = split_raw_params(flat_w * 0.1, shapes, lambda k: shapes[k])
        out = prnn(field(batch, "forcing"), raw)
        q_star = out["streamflow"]
        x = jnp.concatenate([(q_star / self.q_scale)[..., None], inputs], axis=-1)
        correction = head(x, head_weights)
        out["physics_streamflow"] = q_star
        out["streamflow"] = q_star + correction if self.residual else correction
        return out


class DifferentiableParameterLearning(nn.Module):
    """dPL: network -> physical parameters -> process model -> flow (no surrogate).

    ``network="mlp"``: static attributes -> parameters (one set per basin).
    ``network="lstm"``: ``[inputs, attributes]`` over time -> LSTM -> parameters; static
    parameters take the last time step's output (δHBV), the names in
    ``dynamic_params`` keep the whole series (time-varying, e.g. HBV's ``beta``,
    ``betaet``).

    Attributes:
        model: process model.
        network: ``"mlp"`` or ``"lstm"``.
        hidden_sizes: MLP widths, or ``(hidden,)`` for the LSTM.
        dynamic_params: names of time-varying parameters (LSTM only).
        routing, warmup_days, warmup_gradient, checkpoint: as in :class:`PRNN`
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
    checkpoint: bool = False
    dropout_rate: float = 0.0
    lstm_input_layer: bool = False

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True) -> dict[str, Any]:
        prnn = PRNN(
            self.model, self.routing, self.warmup_days, self.warmup_gradient, self.checkpoint, name="prnn"
        )
        spec = prnn.param_spec
        unknown = [k for k in self.dynamic_params if k not in spec]
        if unknown:
            raise ValueError(f"dynamic_params {unknown} are not parameters of the model: {list(spec)}")
        n_raw = sum(math.prod(prnn.event_shape(k)) for k in spec)
        if self.network == "mlp":
            if self.dynamic_params:
                raise ValueError("time-varying parameters need network='lstm'")
            check_batch(batch, self.model, ("forcing", "attributes"))
            flat = MLP(tuple(self.hidden_sizes), n_raw, dropout_rate=self.dropout_rate, name="mlp")(
                jnp.asarray(field(batch, "attributes")), deterministic=deterministic
            )
            raw = split_raw_params(flat, spec, prnn.event_shape)
        elif self.network == "lstm":
            check_batch(batch, self.model, ("forcing", "inputs"))
            x = inputs_with_attributes(batch)
            if self.lstm_input_layer:
                x = nn.relu(nn.Dense(self.hidden_sizes[0], name="input_layer")(x))
            seq = LSTM(self.hidden_sizes[0], output_size=n_raw, dropout_rate=self.dropout_rate, name="lstm")(
                x, deterministic=deterministic
            )
            series = split_raw_params(seq, spec, prnn.event_shape)
            raw = {k: (v if k in self.dynamic_params else v[:, -1]) for k, v in series.items()}
        else:
            raise ValueError(f"network must be 'mlp' or 'lstm', got {self.network!r}")
        return prnn(field(batch, "forcing"), raw)


class RegionalLSTM(nn.Module):
    """Regional LSTM of Kratzert et al. (2019): ``[inputs, attributes] -> LSTM -> Q``.

    The output is ``streamflow = output_offset + output_scale · head`` (mm d-1), so the
    network can work in standardised units (set them from the training-period flow).
    """

    hidden_size: int = 256
    dropout_rate: float = 0.4
    initial_forget_bias: float = 3.0
    output_scale: float = 1.0
    output_offset: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True) -> dict[str, Any]:
        check_batch(batch, None, ("inputs",))
        x = inputs_with_attributes(batch)
        y = LSTM(
            self.hidden_size, output_size=1, dropout_rate=self.dropout_rate,
            initial_forget_bias=self.initial_forget_bias, dtype=self.dtype, name="lstm",
        )(x, deterministic=deterministic)
        return {"streamflow": self.output_offset + self.output_scale * y[..., 0].astype(jnp.float32)}


MODELS = {
    "hybrid": HybridPRNN,
    "dpl": DifferentiableParameterLearning,
    "lstm": RegionalLSTM,
    "prnn": PRNN,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate a model of :data:`MODELS` by name (``"hybrid"``, ``"dpl"``, ``"lstm"``,
    ``"prnn"``) with its keyword arguments; unknown names raise a ValueError."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](**kwargs)
