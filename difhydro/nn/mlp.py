"""Multilayer perceptron, e.g. static basin attributes -> unconstrained model parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from .lstm import check_rate

Array = jax.Array
Dtype = Any

__all__ = ["MLP"]


class MLP(nn.Module):
    """``[*batch, features] -> [*batch, output_size]`` through Dense layers.

    Each hidden layer is ``Dense -> activation -> Dropout``; the last layer is a Dense of
    ``output_size`` followed by ``output_activation`` if given. Outputs are unconstrained
    unless an output activation is set; map them into parameter boxes with
    :meth:`difhydro.physics.ParamSpec.to_physical`.

    Attributes:
        hidden_sizes: widths of the hidden layers (empty: a single linear layer).
        output_size: width of the output.
        activation: hidden activation.
        dropout_rate: dropout after every hidden activation (only when
            ``deterministic=False``; needs a ``'dropout'`` rng).
        output_activation: optional activation of the output.
        dtype, param_dtype: computation and parameter dtypes (float32 default).
    """

    hidden_sizes: Sequence[int]
    output_size: int
    activation: Callable[[Array], Array] = nn.relu
    dropout_rate: float = 0.0
    output_activation: Callable[[Array], Array] | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: Array, *, deterministic: bool = True) -> Array:
        """Apply the MLP to the last axis of ``inputs``."""
        check_rate(self.dropout_rate, "dropout_rate")
        if inputs.ndim < 1:
            raise ValueError(f"inputs must have a feature axis, got shape {inputs.shape}")
        if any(size < 1 for size in self.hidden_sizes) or self.output_size < 1:
            raise ValueError(
                f"hidden_sizes and output_size must be >= 1, got {tuple(self.hidden_sizes)} "
                f"and {self.output_size}"
            )
        x = inputs
        for n, size in enumerate(self.hidden_sizes):
            x = nn.Dense(size, dtype=self.dtype, param_dtype=self.param_dtype,
                         name=f"hidden_{n}")(x)
            x = self.activation(x)
            x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        x = nn.Dense(self.output_size, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="output")(x)
        return x if self.output_activation is None else self.output_activation(x)
