"""Single-layer LSTM over time, run with ``jax.lax.scan``.

Layout for the whole :mod:`difhydro.nn` package: sequences are batch-major,
``[batch, time, features]`` (the Flax convention). Physics outputs from
:func:`difhydro.physics.simulate` are time-major ``[time, *batch]``; move the time axis
with ``jnp.moveaxis(x, 0, 1)`` (or stack variables on a last axis) before a network.

The LSTM follows the equations of Hochreiter & Schmidhuber (1997) with a forget gate
(Gers et al. 2000); the forget-gate bias starts at ``initial_forget_bias`` (3.0 by
default) so that the cell remembers long by default, as in Kratzert et al. (2019).
The weights start as Flax's; :func:`difhydro.nn.initialisation.torch_initialised` redraws
them (and any model's holding this layer) as PyTorch's and neuralhydrology's.
"""

from __future__ import annotations

import functools

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

__all__ = ["LSTM", "GATE_ORDER"]

#: Order of the four gate blocks along the last axis of every LSTM weight.
GATE_ORDER = ("input", "forget", "cell", "output")


def check_sequence(x: Array, name: str, ndim: int = 3) -> None:
    """Raise ValueError unless ``x`` has ``ndim`` axes (``[batch, time, features]``)."""
    if x.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} axes ([batch, time, features]-style), got shape {x.shape}"
        )


def check_rate(rate: float, name: str) -> None:
    """Raise ValueError unless ``0 <= rate < 1`` (a dropout probability)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate}")


def accumulation_dtype(dtype: Dtype) -> Dtype:
    """float32 for float32/bfloat16/float16 computation, float64 for float64."""
    return jnp.promote_types(dtype, jnp.float32)


def dense_accumulate(x: Array, kernel: Array, dtype: Dtype) -> Array:
    """``x @ kernel`` with operands cast to ``dtype``, accumulated in at least float32."""
    return jnp.matmul(
        x.astype(dtype), kernel.astype(dtype),
        preferred_element_type=accumulation_dtype(dtype),
    )


def forget_bias_init(initial_forget_bias: float) -> Callable[..., Array]:
    """Bias initialiser: zeros except the forget block, set to ``initial_forget_bias``."""

    def init(key: Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> Array:
        del key
        hidden = shape[-1] // 4
        bias = jnp.zeros(shape, dtype)
        return bias.at[hidden : 2 * hidden].set(initial_forget_bias)

    return init


def gate_affine(hidden: int, dtype: Dtype) -> tuple[Array, Array]:
    """``(scale, offset)`` [4H] such that ``tanh(z * scale) * scale + offset`` is
    ``[σ(i), σ(f), tanh(g), σ(o)]``: one tanh for all four gates, as
    ``σ(x) = 1/2 + tanh(x/2)/2`` (exact identity; one fused op instead of four)."""
    sigmoid_block = jnp.full((hidden,), 0.5, dtype)
    cell_block = jnp.ones((hidden,), dtype)
    scale = jnp.concatenate([sigmoid_block, sigmoid_block, cell_block, sigmoid_block])
    offset = jnp.concatenate([sigmoid_block, sigmoid_block, jnp.zeros((hidden,), dtype), sigmoid_block])
    return scale, offset


def _lstm_forward(inputs, input_kernel, recurrent_kernel, bias, h0, c0, dtype, unroll, keep_residuals):
    """Forward recurrence; returns ``(h_T, c_T, outputs)``.

    ``outputs`` is ``hs [T, B, H]``, or with ``keep_residuals`` the tuple
    ``(hs, h_prevᵀ [T, H, B], dz_factor [T, B, 4H], dc_factor [T, B, 2H])``: the factors of
    the reverse pass, computed while the gates are in cache, so that the reverse scan does
    no transcendental work and its weight-gradient matmul has the contracted axis first.
    """
    scale, offset = gate_affine(recurrent_kernel.shape[0], h0.dtype)
    bias = bias.astype(h0.dtype)

    def step(carry, x_t):
        h, c = carry
        z = dense_accumulate(x_t, input_kernel, dtype) + dense_accumulate(h, recurrent_kernel, dtype) + bias
        gates = jnp.tanh(z * scale) * scale + offset
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c_next = f * c + i * g
        tanh_c = jnp.tanh(c_next)
        h_next = o * tanh_c
        if not keep_residuals:
            return (h_next, c_next), h_next
        # dz = [dc, dc, dc, dh] * dz_factor;  dc = dc_next + dh * dc_factor[:H];  dc_prev = dc * f
        dz_factor = jnp.concatenate(
            [g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g), tanh_c * o * (1.0 - o)], axis=-1)
        dc_factor = jnp.concatenate([o * (1.0 - tanh_c * tanh_c), f], axis=-1)
        return (h_next, c_next), (h_next, h.T, dz_factor, dc_factor)

    (h_last, c_last), outputs = jax.lax.scan(step, (h0, c0), inputs, unroll=unroll)
    return h_last, c_last, outputs


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def lstm_scan(inputs, input_kernel, recurrent_kernel, bias, h0, c0, dtype=jnp.float32, unroll=1):
    """The LSTM recurrence over time-major ``inputs`` ``[time, batch, features]``.

    ``z_t = x_t W + h_{t-1} U + b`` with ``W = input_kernel`` [F, 4H],
    ``U = recurrent_kernel`` [H, 4H], ``b = bias`` [4H]; ``h0``, ``c0`` [batch, H] in the
    accumulation dtype. Returns ``(hs [time, batch, H], (h_T, c_T))``.

    The reverse pass is written out: one reverse scan computes ``dz_t``, the input
    cotangents ``dz_t Wᵀ`` and accumulates ``Σ x_tᵀ dz_t``, ``Σ h_{t-1}ᵀ dz_t`` and
    ``Σ dz_t`` in its carry, so no ``[time, batch, 4H]`` gradient array is materialised
    (the input projection runs step by step for the same reason). Same numbers as
    autodiff of the plain scan (tested); the 256 x 365 x 256 train step of
    ``benchmarks/speed_training.py`` took 1.05 s against 1.83 s with the projection done
    up front and ``[time, batch, 4H]`` residuals.
    """
    h_last, c_last, hs = _lstm_forward(inputs, input_kernel, recurrent_kernel, bias, h0, c0, dtype, unroll, False)
    return hs, (h_last, c_last)


def _lstm_scan_fwd(inputs, input_kernel, recurrent_kernel, bias, h0, c0, dtype, unroll):
    h_last, c_last, (hs, *factors) = _lstm_forward(
        inputs, input_kernel, recurrent_kernel, bias, h0, c0, dtype, unroll, True)
    return (hs, (h_last, c_last)), (inputs, input_kernel, recurrent_kernel, bias, factors)


def _lstm_scan_bwd(dtype, unroll, residuals, cotangents):
    inputs, input_kernel, recurrent_kernel, bias, (h_prev_t, dz_factor, dc_factor) = residuals
    d_hs, (d_h_last, d_c_last) = cotangents
    input_kernel_t, recurrent_kernel_t = input_kernel.T, recurrent_kernel.T
    acc, hidden = d_h_last.dtype, recurrent_kernel.shape[0]

    def step(carry, xs):
        dh_next, dc_next, d_input_kernel, d_recurrent_kernel, d_bias = carry
        dh_out, x_t, h_p_t, dz_f, dc_f = xs
        dh = dh_out + dh_next
        dc = dc_next + dh * dc_f[:, :hidden]
        dz = jnp.concatenate([dc, dc, dc, dh], axis=-1) * dz_f
        carry = (
            dense_accumulate(dz, recurrent_kernel_t, dtype).astype(acc),
            dc * dc_f[:, hidden:],
            d_input_kernel + dense_accumulate(x_t.T, dz, dtype),
            d_recurrent_kernel + dense_accumulate(h_p_t, dz, dtype),
            d_bias + jnp.sum(dz, axis=0),
        )
        return carry, dense_accumulate(dz, input_kernel_t, dtype)

    zeros = lambda a: jnp.zeros(a.shape, acc)  # noqa: E731
    init = (d_h_last, d_c_last, zeros(input_kernel), zeros(recurrent_kernel), zeros(bias))
    (dh0, dc0, d_input_kernel, d_recurrent_kernel, d_bias), d_inputs = jax.lax.scan(
        step, init, (d_hs.astype(acc), inputs, h_prev_t, dz_factor, dc_factor), reverse=True, unroll=unroll,
    )
    return (
        d_inputs.astype(inputs.dtype),
        d_input_kernel.astype(input_kernel.dtype),
        d_recurrent_kernel.astype(recurrent_kernel.dtype),
        d_bias.astype(bias.dtype),
        dh0,
        dc0,
    )


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


class LSTM(nn.Module):
    """LSTM layer over ``[batch, time, features]`` with optional dropout and linear head.

    Equations (gate blocks in the order of :data:`GATE_ORDER`):
    ``z_t = x_t W + h_{t-1} U + b``, ``[i, f, g, o] = split(z_t)``,
    ``c_t = σ(f) c_{t-1} + σ(i) tanh(g)``, ``h_t = σ(o) tanh(c_t)``.
    Both matmuls run inside the ``lax.scan`` (:func:`lstm_scan`), with a hand-written
    reverse pass that never materialises a ``[time, batch, 4H]`` array.

    Parameters: ``input_kernel`` [features, 4H], ``recurrent_kernel`` [H, 4H] and
    ``bias`` [4H], plus ``head`` (a Dense) when ``output_size`` is set.

    Attributes:
        hidden_size: H, number of hidden/cell units.
        output_size: if set, a linear head maps the hidden state to this many outputs.
        dropout_rate: dropout on the hidden states before the head (active only when
            ``deterministic=False``; needs a ``'dropout'`` rng).
        initial_forget_bias: initial value of the forget-gate bias (Kratzert et al. 2019).
        return_sequences: if True return every time step ``[batch, time, out]``, else only
            the last one ``[batch, out]``.
        dtype: dtype of the matmul operands (``jnp.bfloat16`` for fast matmuls); gates,
            cell state and accumulation stay float32 (float64 if ``dtype`` is float64);
            outputs are returned in ``dtype``.
        param_dtype: dtype of the stored parameters.
        unroll: ``lax.scan`` unroll factor (a speed knob, same numbers).
    """

    hidden_size: int
    output_size: int | None = None
    dropout_rate: float = 0.0
    initial_forget_bias: float = 3.0
    return_sequences: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    unroll: int = 1

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        *,
        deterministic: bool = True,
        initial_state: tuple[Array, Array] | None = None,
        return_state: bool = False,
    ) -> Array | tuple[Array, tuple[Array, Array]]:
        """Run the LSTM.

        Args:
            inputs: ``[batch, time, features]``.
            deterministic: turn dropout off (evaluation) when True.
            initial_state: ``(h0, c0)``, each ``[batch, hidden_size]``; zeros if None.
            return_state: also return the final ``(h_T, c_T)`` (accumulation dtype).

        Returns:
            ``[batch, time, out]`` (or ``[batch, out]`` if not ``return_sequences``), where
            ``out`` is ``output_size`` or ``hidden_size``; with ``return_state`` a tuple
            ``(outputs, (h_T, c_T))``.
        """
        check_sequence(inputs, "inputs")
        check_rate(self.dropout_rate, "dropout_rate")
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {self.hidden_size}")
        batch, time, features = inputs.shape
        if time < 1:
            raise ValueError(f"inputs must have at least one time step, got shape {inputs.shape}")
        hidden = self.hidden_size

        input_kernel = self.param(
            "input_kernel", nn.initializers.lecun_normal(), (features, 4 * hidden),
            self.param_dtype,
        )
        recurrent_kernel = self.param(
            "recurrent_kernel", nn.initializers.orthogonal(), (hidden, 4 * hidden),
            self.param_dtype,
        )
        bias = self.param(
            "bias", forget_bias_init(self.initial_forget_bias), (4 * hidden,),
            self.param_dtype,
        )

        acc = accumulation_dtype(self.dtype)
        if initial_state is None:
            h0 = jnp.zeros((batch, hidden), acc)
            c0 = jnp.zeros((batch, hidden), acc)
        else:
            h0, c0 = (jnp.asarray(s, acc) for s in initial_state)
            for name, s in (("initial_state[0] (h0)", h0), ("initial_state[1] (c0)", c0)):
                if s.shape != (batch, hidden):
                    raise ValueError(f"{name} must be [batch, hidden_size] = "
                                     f"{(batch, hidden)}, got {s.shape}")

        # Time-major for the scan; the input projection happens inside it (see lstm_scan).
        hs, (h_last, c_last) = lstm_scan(
            jnp.swapaxes(inputs, 0, 1), input_kernel, recurrent_kernel, bias, h0, c0, self.dtype, self.unroll,
        )
        # Dropout and head act per time step, so they run time-major and only the (usually
        # much narrower) result is moved to batch-major.
        outputs = hs if self.return_sequences else h_last
        outputs = nn.Dropout(self.dropout_rate)(outputs, deterministic=deterministic)
        if self.output_size is not None:
            outputs = nn.Dense(
                self.output_size, dtype=self.dtype, param_dtype=self.param_dtype, name="head"
            )(outputs)
        if self.return_sequences:
            outputs = jnp.swapaxes(outputs, 0, 1)
        outputs = outputs.astype(self.dtype)
        if return_state:
            return outputs, (h_last, c_last)
        return outputs
