"""Generic Flax (``flax.linen``) layers: LSTM, causal convolutions, MLP, attention blocks,
the temporal transformer, probabilistic heads (CMAL and GMM mixtures, :mod:`.distributions`).

All modules use pure ``init``/``apply`` with parameter pytrees, so they compose with the
``lax.scan`` physics, optax, orbax and ``jax.sharding``.

Layout: every sequence is basin-first (batch-first), ``[batch, time, features]``, as every
array at difhydro's public surface. Dropout is active only when a module is called with
``deterministic=False`` and a ``'dropout'`` rng is given to ``apply``. ``dtype`` selects
the computation dtype (float32 default, ``jnp.bfloat16`` for fast matmuls),
``param_dtype`` the stored one.
"""

from .attention import AttributeTransformer as AttributeTransformer
from .attention import CrossAttentionBlock as CrossAttentionBlock
from .attention import PositionalEncoding as PositionalEncoding
from .attention import QueryReadout as QueryReadout
from .attention import TransformerEncoder as TransformerEncoder
from .attention import TransformerEncoderLayer as TransformerEncoderLayer
from .attention import attribute_tokens as attribute_tokens
from .attention import causal_band as causal_band
from .attention import key_padding_mask as key_padding_mask
from .attention import sinusoidal_encoding as sinusoidal_encoding
from .attention import zero_padding as zero_padding
from . import distributions as distributions
from .cnn import CNNLSTM as CNNLSTM
from .cnn import CausalConv1D as CausalConv1D
from .cnn import CausalConvHead as CausalConvHead
from .cnn import lag_windows as lag_windows
from .lstm import GATE_ORDER as GATE_ORDER
from .lstm import LSTM as LSTM
from .distributions import CMALHead as CMALHead
from .distributions import GMMHead as GMMHead
from .mlp import MLP as MLP
from .transformer import TemporalTransformer as TemporalTransformer

__all__ = [
    "LSTM", "GATE_ORDER", "CausalConv1D", "CausalConvHead", "CNNLSTM", "lag_windows", "MLP",
    "sinusoidal_encoding", "PositionalEncoding", "key_padding_mask", "zero_padding",
    "TransformerEncoderLayer", "TransformerEncoder", "CrossAttentionBlock", "QueryReadout",
    "attribute_tokens", "AttributeTransformer", "causal_band", "TemporalTransformer",
    "distributions", "CMALHead", "GMMHead",
]
