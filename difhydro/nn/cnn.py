"""Causal 1-D convolutions over time, the P-RNN convolutional head, and CNN-LSTM.

All sequences are ``[batch, time, features]`` (see :mod:`difhydro.nn.lstm`).

- :class:`CausalConv1D`: output at day t sees only days ``t - (kernel_size - 1) ... t``
  (zeros padded on the left), the lag window of the hybrid model of Jiang et al. (2020).
- :class:`CausalConvHead`: two stacked causal convolutions, the head that maps
  ``[Q*, forcings]`` from the P-RNN layer to streamflow; the second layer has kernel 1, so
  the whole head keeps the ``lag_days`` window.
- :class:`CNNLSTM`: convolution over time (causal) or over a layer/space axis (e.g. soil
  depths or a line of pixels at each day, as in the PGDL CNN-LSTM of Zhang et al. 2025),
  then an LSTM over time.
"""

from __future__ import annotations

import dataclasses

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from .lstm import LSTM, check_rate, check_sequence

Array = jax.Array
Dtype = Any

__all__ = ["CausalConv1D", "CausalConvHead", "CNNLSTM", "lag_windows"]


class CausalConv1D(nn.Module):
    """Causal convolution over the time axis of ``[*batch, time, channels]``.

    ``y_t = act(b + Σ_{k=0}^{K-1} W_k x_{t - k·dilation})`` with ``x`` zero before the
    first day, so ``y_t`` depends on days ``t - (K-1)·dilation ... t`` only.

    Attributes:
        features: number of output channels.
        kernel_size: K, the lag window in time steps (10 days in Jiang et al. 2020).
        dilation: spacing of the taps in time steps.
        activation: applied to the output (None for linear).
        use_bias: add a bias.
        dtype, param_dtype: computation and parameter dtypes (float32 default).
    """

    features: int
    kernel_size: int = 10
    dilation: int = 1
    activation: Callable[[Array], Array] | None = None
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        """``[*batch, time, channels] -> [*batch, time, features]``."""
        if inputs.ndim < 2:
            raise ValueError(f"inputs must be [*batch, time, channels], got shape {inputs.shape}")
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if self.dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {self.dilation}")
        left = self.dilation * (self.kernel_size - 1)
        pad = [(0, 0)] * (inputs.ndim - 2) + [(left, 0), (0, 0)]
        x = jnp.pad(inputs, pad)
        y = nn.Conv(
            self.features,
            kernel_size=(self.kernel_size,),
            kernel_dilation=(self.dilation,),
            padding="VALID",
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x)
        return y if self.activation is None else self.activation(y)


def lag_windows(x: Array, lag: int) -> Array:
    """``[batch, time, F] -> [batch, time, lag, F]``: days t, t-1, ..., t-lag+1 (zeros
    before the first day)."""
    padded = jnp.pad(x, ((0, 0), (lag - 1, 0), (0, 0)))
    n = x.shape[1]
    return jnp.stack([padded[:, lag - 1 - k : lag - 1 - k + n] for k in range(lag)], axis=2)


class CausalConvHead(nn.Module):
    """Two-layer causal convolutional head (the P-RNN hybrid model, Jiang et al. 2020).

    Layer 1: ``hidden_features`` filters over a ``lag_days`` window with ``activation``;
    layer 2: ``output_features`` filters of width 1, linear. The output at day t depends
    only on inputs of days ``t - lag_days + 1 ... t``.

    Weights ``w1 [lag_days, F, C]``, ``b1 [C]``, ``w2 [C, O]``, ``b2 [O]`` are the layer's
    own (shared by every sample; ``w1`` variance-scaled, the rest zero, so an untrained head
    outputs 0 and a residual head starts from the physics) or, per sample, the ``weights``
    passed in (leaves ``[batch, ...]``, e.g. from a hypernetwork on basin attributes:
    Jiang et al.'s θN). :meth:`weight_shapes` gives their shapes.

    Attributes:
        hidden_features: C, filters of the first layer.
        output_features: O, channels of the output (1 for streamflow).
        lag_days: window of the first layer, in time steps (days).
        activation: activation of the first layer (ELU as in Jiang et al. 2020).
        dtype, param_dtype: computation and parameter dtypes.
    """

    hidden_features: int = 8
    output_features: int = 1
    lag_days: int = 10
    activation: Callable[[Array], Array] = nn.elu
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def weight_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        """Shapes of one sample's weights for inputs with ``n_features`` channels."""
        k, c, o = self.lag_days, self.hidden_features, self.output_features
        return {"w1": (k, n_features, c), "b1": (c,), "w2": (c, o), "b2": (o,)}

    @nn.compact
    def __call__(self, inputs: Array, weights: dict[str, Array] | None = None) -> Array:
        """``[batch, time, F] -> [batch, time, output_features]``."""
        check_sequence(inputs, "inputs")
        if self.lag_days < 1:
            raise ValueError(f"lag_days must be >= 1, got {self.lag_days}")
        batch = inputs.shape[0]
        shapes = self.weight_shapes(inputs.shape[-1])
        if weights is None:
            init = {"w1": nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2)}
            weights = {
                k: self.param(k, init.get(k, nn.initializers.zeros_init()), s, self.param_dtype)[None]
                for k, s in shapes.items()
            }
        w = {k: jnp.broadcast_to(weights[k], (batch,) + s).astype(self.dtype) for k, s in shapes.items()}
        lagged = lag_windows(inputs.astype(self.dtype), self.lag_days)
        h = self.activation(jnp.einsum("btkf,bkfc->btc", lagged, w["w1"]) + w["b1"][:, None, :])
        return jnp.einsum("btc,bco->bto", h, w["w2"]) + w["b2"][:, None, :]


class CNNLSTM(LSTM):
    """Convolutions, then an LSTM over time.

    ``conv_axis="time"``: inputs ``[batch, time, features]``; each entry of
    ``conv_features`` is a :class:`CausalConv1D` of width ``kernel_size`` (time stays causal).

    ``conv_axis="layer"``: inputs ``[batch, time, layers, features]`` (or
    ``[batch, time, layers]``, one feature per layer); the convolutions run along the
    layer axis (soil depths, or a line of pixels) at each day independently with ``SAME``
    padding, the result is flattened to ``[batch, time, layers * channels]`` and fed to
    the LSTM. The layer count must be the same at every call.

    Attributes:
        conv_features: output channels of each convolution layer.
        kernel_size: convolution width (time steps or layers).
        conv_axis: ``"time"`` or ``"layer"``.
        activation: activation after every convolution.
        hidden_size, output_size, dropout_rate, initial_forget_bias, return_sequences,
        dtype, param_dtype, unroll: those of the :class:`~difhydro.nn.LSTM` that follows.
    """

    conv_features: Sequence[int] = (16,)
    kernel_size: int = 3
    conv_axis: str = "time"
    activation: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, inputs: Array, *, deterministic: bool = True) -> Array:
        """Returns ``[batch, time, out]`` (or ``[batch, out]``), ``out`` as in LSTM."""
        check_rate(self.dropout_rate, "dropout_rate")
        if self.conv_axis == "time":
            check_sequence(inputs, "inputs")
            x = inputs
            for n, features in enumerate(self.conv_features):
                x = CausalConv1D(
                    features, self.kernel_size, activation=self.activation,
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv_{n}",
                )(x)
        elif self.conv_axis == "layer":
            if inputs.ndim == 3:
                inputs = inputs[..., None]
            if inputs.ndim != 4:
                raise ValueError(
                    "inputs must be [batch, time, layers, features] or [batch, time, layers] "
                    f"when conv_axis='layer', got shape {inputs.shape}"
                )
            x = inputs
            for n, features in enumerate(self.conv_features):
                # nn.Conv folds the leading (batch, time) axes into one batch axis.
                x = nn.Conv(
                    features, kernel_size=(self.kernel_size,), padding="SAME",
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv_{n}",
                )(x)
                x = self.activation(x)
            x = x.reshape(x.shape[:2] + (-1,))
        else:
            raise ValueError(f"conv_axis must be 'time' or 'layer', got {self.conv_axis!r}")
        lstm_fields = (f.name for f in dataclasses.fields(LSTM) if f.name not in ("parent", "name"))
        return LSTM(**{k: getattr(self, k) for k in lstm_fields}, name="lstm")(x, deterministic=deterministic)
