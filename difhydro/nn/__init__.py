"""Flax (``flax.linen``) neural modules of difhydro.

All modules use pure ``init``/``apply`` with parameter pytrees, so they compose with the
``lax.scan`` physics, optax, orbax and ``jax.sharding``.

Layout: every sequence is batch-major, ``[batch, time, features]``; physics runs
time-major ``[time, *batch]`` (move the axis with ``jnp.moveaxis(x, 0, 1)``).
Dropout is active only when a module is called with ``deterministic=False`` and a
``'dropout'`` rng is given to ``apply``. ``dtype`` selects the computation dtype
(float32 default, ``jnp.bfloat16`` for fast matmuls), ``param_dtype`` the stored one.
"""

from .cnn import CNNLSTM, CausalConv1D, CausalConvHead
from .lstm import GATE_ORDER, LSTM
from .mlp import MLP
from .transformer import (
    CrossAttentionBlock,
    ParaFormerA,
    ParaFormerZ,
    PositionalEncoding,
    TransformerEncoder,
    TransformerEncoderLayer,
    key_padding_mask,
    sinusoidal_encoding,
)

__all__ = [
    "LSTM",
    "GATE_ORDER",
    "CausalConv1D",
    "CausalConvHead",
    "CNNLSTM",
    "MLP",
    "sinusoidal_encoding",
    "PositionalEncoding",
    "key_padding_mask",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "CrossAttentionBlock",
    "ParaFormerA",
    "ParaFormerZ",
]
