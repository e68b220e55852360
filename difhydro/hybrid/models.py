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
- :class:`RegionalTransformer`: the same inputs through causal self-attention over the window.

:data:`MODELS` (``registry.py``, re-exported here) is the registry: name ->
:class:`RegisteredModel`, whose ``build(**options)`` makes the model; the experiment layer,
the benchmarks and the tests all build from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..nn import LSTM, MLP, AttributeTransformer, CausalConvHead, TemporalTransformer
from ..nn.distributions import HEADS, affine, median
from ..physics.base import Array, ParamSpec, ProcessModel
from ..physics.exphydro import ExpHydro
from .layer import PRNN
from .params import ParamHead, split_last_axis

__all__ = [
    "HybridPRNN",
    "DifferentiableParameterLearning",
    "RegionalLSTM",
    "RegionalTransformer",
    "FORCING_CORRECTIONS",
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

    ``autoregressive``: the head also reads the observed flow of the previous days
    (``lags``, scaled by ``q_scale``) and their flags (:func:`~difhydro.forecast.autoregression.
    observed_lagged_flow`: the batch's primary target where its mask is set; in training each
    observed day is hidden with probability ``holdout``, drawn from the dropout stream), so
    its output is a one-day-ahead forecast from the flow observed up to yesterday; without
    observations every flag is 0. The hypernetwork's head weights grow by the new channels.

    ``distribution`` (``"cmal"`` or ``"gmm"``): the model also returns
    ``streamflow_distribution``, a mixture of ``components`` laws in mm d-1, centred on the
    point flow Q: a :data:`~difhydro.nn.distributions.HEADS` head reads each day's
    ``[Q/q_scale, Q*/q_scale, inputs (and lagged flow), attributes, log1p(states in mm)]``
    and gives the shape of the mixture (offsets, scales, asymmetries, weights) in flow
    scaled by ``q_scale``; the mixture is then shifted so that its median is exactly
    ``Q/q_scale`` and mapped to mm d-1 (``affine(·, ·, q_scale)``). ``streamflow`` is
    ``max(Q, 0)``, the median of the mixture censored at 0, so the bounded head's bound
    (Q within ``e^±b`` of the physics) holds for the point forecast of the probabilistic
    model too, and an untrained one forecasts like the point hybrid. The mixture lives on
    the whole real line (as the LSTM's).

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
        distribution: ``None`` (a point forecast), ``"cmal"`` or ``"gmm"`` (see above).
        components: laws of the mixture.
        autoregressive: the head reads the lagged observed flow (see above).
        holdout: probability of hiding an observed day in training (autoregressive only).
        lags: days of lag of the observed flow (1 = yesterday).
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
    distribution: str | None = None
    components: int = 3
    autoregressive: bool = False
    holdout: float = 0.5
    lags: tuple[int, ...] = (1,)

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True,
                 initial_state: Mapping[str, Array] | None = None) -> dict[str, Any]:
        """``initial_state``: process-model states ``[basin, ...]`` at the first day (hot start)."""
        if self.mode not in ("local", "regional", "pseudo_regional"):
            raise ValueError(f"mode must be local, regional or pseudo_regional, got {self.mode!r}")
        if self.head not in ("bounded", "residual", "plain"):
            raise ValueError(f"head must be bounded, residual or plain, got {self.head!r}")
        if self.distribution is not None and self.distribution not in HEADS:
            raise ValueError(f"distribution must be None or one of {sorted(HEADS)}, got {self.distribution!r}")
        needs = ("forcing", "inputs") + (("attributes",) if self.mode == "regional" else ())
        check_batch(batch, self.model, needs + (("targets", "masks") if self.autoregressive else ()))
        # warmup_gradient=False: with gradients the spin-up days would be ordinary days
        prnn = PRNN(self.model, warmup_days=self.warmup_days, warmup_gradient=False, checkpoint=self.checkpoint,
                    name="prnn")
        conv = CausalConvHead(self.head_hidden, 1, self.lag_days, name="head")
        inputs = jnp.asarray(field(batch, "inputs"))
        if self.autoregressive:  # [inputs, q_obs(t - lag) / q_scale..., flags...]
            from ..forecast.autoregression import observed_lagged_flow

            lagged = observed_lagged_flow(self, batch, self.lags, holdout=self.holdout, deterministic=deterministic,
                                          scale=self.q_scale)
            inputs = jnp.concatenate([inputs, lagged], axis=-1)
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
            q = q_star * jnp.exp(self.head_bound * jnp.tanh(h))
        else:
            q = q_star + h if self.head == "residual" else h
        out["streamflow"] = q
        if self.distribution is not None:
            features = mixture_features(q / self.q_scale, x, field(batch, "attributes"),
                                        [out[k] for k in self.model.state_names])
            shape = HEADS[self.distribution](n_components=self.components, name="distribution")(features)
            # shifted so that the median is Q: the head gives the spread, the hybrid the centre
            centre = q / self.q_scale - median(shape)
            out["streamflow_distribution"] = affine(shape, self.q_scale * centre[..., None], self.q_scale)
            out["streamflow"] = jax.nn.relu(q)
        return out


def mixture_features(q_scaled: Array, head_input: Array, attributes: Array | None,
                     states: Sequence[Array]) -> Array:
    """What the hybrid's mixture head reads each day -> ``[basin, time, features]``:
    the scaled point flow ``q_scaled`` ``[basin, time]``, the Conv1D head's input
    ``head_input`` ``[basin, time, F]`` (``Q*/q_scale``, inputs, lagged flow), the static
    ``attributes`` ``[basin, n]`` (if any) and ``log1p`` of the process-model ``states``
    (mm, ``[basin, time, ...]``: the spread depends on snow and wetness)."""
    shape = q_scaled.shape
    features = [q_scaled[..., None], head_input]
    if attributes is not None and attributes.shape[-1]:
        a = jnp.asarray(attributes)
        features.append(jnp.broadcast_to(a[:, None, :], shape + a.shape[-1:]))
    features += [jnp.log1p(jnp.maximum(s.reshape(shape + (-1,)), 0.0)) for s in states]
    return jnp.concatenate(features, axis=-1)


_NETWORKS = ("mlp", "lstm", "attention")

#: per-basin multiplicative corrections of the forcing a dPL model may learn (name of the
#: forcing -> box). Boxes centred on 1, so an untrained sigmoid head changes nothing. ±50 %:
#: HBV calibrations allow PCORR 0.5-2 (Beck et al. 2016, 2020; dPL-HBV's ``pcorr``), skewed
#: upward for gauge undercatch; Caravan's ERA5-Land precipitation errs both ways against
#: gauges (Clerc-Schwarzenbach et al. 2024), and ERA5-Land PET is known to run high, so a
#: symmetric box around 1 is the neutral choice. Applied before the physics, every day.
FORCING_CORRECTIONS: Mapping[str, ParamSpec] = {
    "precipitation": ParamSpec(0.5, 1.5, "-", 1.0, "precipitation multiplier per basin (PCORR)"),
    "pet": ParamSpec(0.5, 1.5, "-", 1.0, "PET multiplier per basin"),
}


#: suffix of the per-basin forcing multipliers (``<forcing>_correction``)
CORRECTION_SUFFIX = "_correction"


def correction_head(names: Sequence[str]) -> ParamHead:
    """A :class:`ParamHead` of the forcing corrections ``names`` (keys of
    :data:`FORCING_CORRECTIONS`), output names ``<forcing>_correction``, one value per basin."""
    unknown = [k for k in names if k not in FORCING_CORRECTIONS]
    if unknown:
        raise ValueError(f"forcing_correction {unknown} not available; choose from {list(FORCING_CORRECTIONS)}")
    spec = {f"{k}{CORRECTION_SUFFIX}": FORCING_CORRECTIONS[k] for k in names}
    return ParamHead(spec, {k: () for k in spec})


def apply_forcing_correction(forcing: Mapping[str, Array], factors: Mapping[str, Array]) -> dict[str, Array]:
    """``forcing`` (name -> ``[basin, time]``) with each corrected series multiplied by its
    factor ``[basin]`` (``factors``: ``<forcing>_correction`` -> ``[basin]``)."""
    out = dict(forcing)
    for key, factor in factors.items():
        name = key.removesuffix(CORRECTION_SUFFIX)
        if name not in out:
            raise ValueError(f"forcing_correction names {name!r}, which is not in the forcing {sorted(out)}")
        out[name] = jnp.asarray(out[name]) * factor[:, None]
    return out


class DifferentiableParameterLearning(nn.Module):
    """dPL: encoder -> physical parameters -> process model -> flow (no surrogate).

    Encoders (``network``):

    - ``"mlp"``: static attributes -> one parameter set per basin;
    - ``"attention"``: static attributes as tokens -> :class:`~difhydro.nn.AttributeTransformer`
      (ParaFormer's attribute network, Li & Lu 2023) -> one set per basin;
    - ``"lstm"``: ``[inputs, attributes]`` over time -> LSTM -> parameters per day; the
      static ones take the last day's output (δHBV), the names in ``dynamic_params`` keep
      the whole series (time-varying, e.g. HBV's ``beta``, ``betaet``).

    ``forcing_correction`` (e.g. ``("precipitation", "pet")``) makes the encoder emit one
    more static value per name, mapped into :data:`FORCING_CORRECTIONS`' box, that multiplies
    that forcing series of the basin before the physics (dPL-HBV's ``pcorr``); the factors
    are reported in ``params`` as ``<forcing>_correction`` ``[basin]``.

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
        forcing_correction: names of forcing series corrected per basin (see above).
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
    forcing_correction: Sequence[str] = ()

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
        corrections = correction_head(tuple(self.forcing_correction))
        missing = [k for k in self.forcing_correction if k not in self.model.forcing_names]
        if missing:
            raise ValueError(f"forcing_correction {missing}: {type(self.model).__name__} reads no such forcing "
                             f"({list(self.model.forcing_names)})")
        size = head.size + corrections.size
        if self.network == "lstm":
            check_batch(batch, self.model, ("forcing", "inputs"))
            x = inputs_with_attributes(batch)
            if self.lstm_input_layer:
                x = nn.relu(nn.Dense(self.hidden_sizes[0], name="input_layer")(x))
            seq = LSTM(self.hidden_sizes[0], output_size=size, dropout_rate=self.dropout_rate, name="lstm")(
                x, deterministic=deterministic
            )
            raw = head.select(head.split(seq[..., :head.size]))
            raw_corrections = corrections.split(seq[:, -1, head.size:])
        else:
            check_batch(batch, self.model, ("forcing", "attributes"))
            attributes = jnp.asarray(field(batch, "attributes"))
            if self.network == "mlp":
                flat = MLP(tuple(self.hidden_sizes), size, dropout_rate=self.dropout_rate, name="mlp")(
                    attributes, deterministic=deterministic
                )
            else:
                d_model = self.hidden_sizes[0]
                flat = AttributeTransformer(size, d_model=d_model, mlp_dim=2 * d_model,
                                            dropout_rate=self.dropout_rate, name="attention")(
                    attributes, deterministic=deterministic
                )
            raw, raw_corrections = head.split(flat[..., :head.size]), corrections.split(flat[..., head.size:])
        factors = corrections.to_physical(raw_corrections)
        out = prnn(apply_forcing_correction(field(batch, "forcing"), factors), raw, initial_state)
        out["params"] = {**out["params"], **factors}
        return out


def standardised_flow(head: Array, offset: float, scale: float) -> Array:
    """``max(offset + scale · head, 0)`` (mm d-1) from a network's standardised output
    ``[basin, time]``: the network works in units of the training-period flow, and a flow is
    never negative (neuralhydrology's ``output_activation: relu``)."""
    return jax.nn.relu(offset + scale * head.astype(jnp.float32))


class RegionalLSTM(nn.Module):
    """Regional LSTM of Kratzert et al. (2019): ``[inputs, attributes] -> LSTM -> Q``.

    The output is ``streamflow = max(output_offset + output_scale · head, 0)`` (mm d-1,
    :func:`standardised_flow`; set the offset and scale from the training-period flow).
    With ``clip_in_training=False`` the training loss sees ``output_offset + output_scale ·
    head`` unclipped (no zero gradient below 0 flow, neuralhydrology's default linear output);
    predictions (``deterministic=True``) are clipped at 0 either way.

    With a probabilistic ``head`` (``"cmal"`` or ``"gmm"``, :mod:`difhydro.nn.distributions`,
    as neuralhydrology's heads on the LSTM's hidden states) the model also returns
    ``streamflow_distribution``: the mixture of ``components`` laws in mm d-1 (the head
    works in standardised flow; :func:`~difhydro.nn.distributions.affine` maps it), and
    ``streamflow`` is the mixture's median, clipped at 0 (the median of the mixture
    censored at 0). The mixture itself lives on the whole real line.
    """

    hidden_size: int = 256
    dropout_rate: float = 0.4
    initial_forget_bias: float = 3.0
    output_scale: float = 1.0
    output_offset: float = 0.0
    dtype: Any = jnp.float32
    head: str = "regression"
    components: int = 3
    clip_in_training: bool = True

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True,
                 initial_state: Mapping[str, Array] | None = None) -> dict[str, Any]:
        if initial_state is not None:
            raise ValueError("RegionalLSTM has no process-model states to start from (hot start)")
        check_batch(batch, None, ("inputs",))
        x = inputs_with_attributes(batch)
        if self.head != "regression":
            if self.head not in HEADS:
                raise ValueError(f"head must be 'regression' or one of {sorted(HEADS)}, got {self.head!r}")
            h = LSTM(self.hidden_size, dropout_rate=self.dropout_rate, initial_forget_bias=self.initial_forget_bias,
                     dtype=self.dtype, name="lstm")(x, deterministic=deterministic)
            standard = HEADS[self.head](n_components=self.components, name="distribution")(h.astype(jnp.float32))
            dist = affine(standard, self.output_offset, self.output_scale)
            return {"streamflow": jax.nn.relu(median(dist)), "streamflow_distribution": dist}
        y = LSTM(
            self.hidden_size, output_size=1, dropout_rate=self.dropout_rate,
            initial_forget_bias=self.initial_forget_bias, dtype=self.dtype, name="lstm",
        )(x, deterministic=deterministic)
        if not (deterministic or self.clip_in_training):  # the loss sees the linear output, as neuralhydrology's
            return {"streamflow": self.output_offset + self.output_scale * y[..., 0].astype(jnp.float32)}
        return {"streamflow": standardised_flow(y[..., 0], self.output_offset, self.output_scale)}


class RegionalTransformer(nn.Module):
    """``[inputs, attributes] -> causal temporal transformer -> Q`` (inputs as :class:`RegionalLSTM`).

    Day t's flow depends only on days <= t of the window (:class:`~difhydro.nn.TemporalTransformer`);
    the output is :func:`standardised_flow`, as the LSTM's.

    Attributes:
        hidden_size: width of a day's token (d_model).
        num_heads, num_layers, dropout_rate: of the encoder.
        max_span: a day sees at most this many days (itself included); ``None``: the window.
        chunk_size: attention by blocks of days (memory), needs ``max_span``.
        position: ``"relative"`` (ALiBi, the default: trained on windows, it predicts whole
            periods) or ``"sinusoidal"`` (absolute, counted from the sequence's first day).
        output_scale, output_offset: flow standardisation (mm d-1).
    """

    hidden_size: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dropout_rate: float = 0.1
    max_span: int | None = None
    chunk_size: int | None = None
    position: str = "relative"
    output_scale: float = 1.0
    output_offset: float = 0.0

    @nn.compact
    def __call__(self, batch: Mapping[str, Any], *, deterministic: bool = True,
                 initial_state: Mapping[str, Array] | None = None) -> dict[str, Any]:
        if initial_state is not None:
            raise ValueError("RegionalTransformer has no process-model states to start from (hot start)")
        check_batch(batch, None, ("inputs",))
        y = TemporalTransformer(
            d_model=self.hidden_size, num_heads=self.num_heads, num_layers=self.num_layers, output_size=1,
            dropout_rate=self.dropout_rate, max_span=self.max_span, chunk_size=self.chunk_size, position=self.position, name="transformer",
        )(inputs_with_attributes(batch), deterministic=deterministic)
        return {"streamflow": standardised_flow(y[..., 0], self.output_offset, self.output_scale)}


# The registry lives in registry.py (readable without Flax); re-exported here.
from .registry import MODELS, RegisteredModel, build_model, model_options, register_model  # noqa: E402
