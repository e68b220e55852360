"""A causal temporal transformer over ``[batch, time, features]`` (the sequence twin of the LSTM).

``inputs -> Dense(d_model) -> + sinusoidal position -> causal TransformerEncoder -> Dropout
-> Dense(output_size)``. Day t sees only days <= t (and, with ``max_span``, only the last
``max_span`` days), so a prediction never uses the future: the same contract as
:class:`~difhydro.nn.LSTM`, which reads the window in order. The attention blocks are those
of :mod:`difhydro.nn.attention` (pre-norm, Xiong et al. 2020).

``position``: ``"sinusoidal"`` adds absolute positions counted from the first day of the
sequence (0, 1, ...); ``"relative"`` instead biases each attention weight by how many days
back the key lies (ALiBi, Press et al. 2022), so a model trained on windows reads a whole
test period with the positions it was trained on. Neither carries a calendar: day-of-year
must come in through the inputs if it matters.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from .attention import PositionalEncoding, TransformerEncoder
from .lstm import check_rate, check_sequence

Array = jax.Array
Dtype = Any

__all__ = ["TemporalTransformer", "POSITIONS"]

POSITIONS = ("sinusoidal", "relative")


class TemporalTransformer(nn.Module):
    """Causal self-attention over time: ``[batch, time, features] -> [batch, time, output_size]``.

    Attributes:
        d_model: width of the token of each day (the hidden size).
        num_heads: attention heads (must divide ``d_model``).
        num_layers: encoder layers.
        output_size: outputs per day (a linear read-out).
        mlp_dim: feed-forward width (``4 d_model`` if ``None``).
        dropout_rate: dropout after the positional encoding, in every block and before the
            read-out (active only with ``deterministic=False`` and a ``'dropout'`` rng).
        max_span: a day attends to at most this many days (itself included); ``None``: the
            whole window before it.
        chunk_size: compute the attention in blocks of this many days (needs ``max_span``;
            weights ``T (chunk_size + max_span - 1)`` instead of ``T²``, same numbers). It pays
            only when ``chunk_size + max_span`` is well below the window. Measured (compiled
            temporary memory of one forward + backward step, batch 128, ``d_model`` 64, 4
            heads, 2 layers, ``benchmarks/transformer_memory.py``): 730-day
            windows 8.1 GiB full, 6.4 GiB with span 365 / chunk 73, 4.6 GiB with span 180 /
            chunk 60; 270-day windows 1.6 GiB full (chunking there costs more than it saves).
        position: ``"sinusoidal"`` (absolute) or ``"relative"`` (ALiBi; see the module docstring).
        dtype, param_dtype: computation and parameter dtypes.
    """

    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    output_size: int = 1
    mlp_dim: int | None = None
    dropout_rate: float = 0.1
    max_span: int | None = None
    chunk_size: int | None = None
    position: str = "sinusoidal"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: Array, *, deterministic: bool = True) -> Array:
        check_sequence(inputs, "inputs")
        check_rate(self.dropout_rate, "dropout_rate")
        if self.d_model < 1 or self.num_layers < 1 or self.output_size < 1:
            raise ValueError(f"d_model, num_layers and output_size must be >= 1, got "
                             f"{self.d_model}, {self.num_layers}, {self.output_size}")
        if self.max_span is not None and self.max_span < 1:
            raise ValueError(f"max_span must be >= 1 day or None, got {self.max_span}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        x = nn.Dense(self.d_model, dtype=self.dtype, param_dtype=self.param_dtype, name="embed")(inputs)
        if self.position == "sinusoidal":
            x = PositionalEncoding(self.dropout_rate, name="position")(x, deterministic=deterministic)
        else:
            x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        x = TransformerEncoder(
            num_layers=self.num_layers, num_heads=self.num_heads, mlp_dim=self.mlp_dim or 4 * self.d_model,
            dropout_rate=self.dropout_rate, causal=True, max_span=self.max_span, chunk_size=self.chunk_size,
            relative_position=self.position == "relative", dtype=self.dtype, param_dtype=self.param_dtype, name="encoder",
        )(x, deterministic=deterministic)
        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return nn.Dense(self.output_size, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(x)
