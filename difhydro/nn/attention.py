"""Attention blocks: transformer encoder layers, cross-attention, attribute tokens.

Sequences are ``[batch, time, d_model]``. Padding masks are boolean ``[batch, time]``,
True on valid steps. Padded steps never change the outputs of valid steps: keys at padded
steps get zero attention weight, padded inputs are replaced by zeros first (so NaN
padding cannot leak through ``0 * NaN``), and every other operation is per step.

Normalisation is **pre-norm** by default (``norm_first=True``: ``x + f(LayerNorm(x))``,
Xiong et al. 2020, stable without learning-rate warm-up); ``norm_first=False`` gives the
post-norm layer of Vaswani et al. (2017), ``LayerNorm(x + f(x))``.

:class:`AttributeTransformer` is the attention encoder of static basin attributes (each
attribute a token, one learned query per output reading them out; the attribute network
of ParaFormer, Li & Lu 2023): attributes ``[batch, n_attributes]`` -> ``[batch, outputs]``
unconstrained values, e.g. for :class:`~difhydro.hybrid.ParamHead`.
"""

from __future__ import annotations

import dataclasses
import functools

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from .lstm import check_rate, check_sequence

Array = jax.Array
Dtype = Any

__all__ = [
    "sinusoidal_encoding",
    "PositionalEncoding",
    "key_padding_mask",
    "causal_band",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "CrossAttentionBlock",
    "QueryReadout",
    "zero_padding",
    "distance_bias",
    "attribute_tokens",
    "AttributeTransformer",
]


def sinusoidal_encoding(
    length: int, d_model: int, max_timescale: float = 10000.0, dtype: Dtype = jnp.float32
) -> Array:
    """Sinusoidal positional encoding (Vaswani et al. 2017), shape ``[length, d_model]``.

    ``PE[p, 2i] = sin(p / max_timescale^(2i / d_model))`` and
    ``PE[p, 2i+1] = cos(p / max_timescale^(2i / d_model))``, p = 0 ... length-1.
    """
    if length < 0 or d_model < 1:
        raise ValueError(f"length must be >= 0 and d_model >= 1, got {length}, {d_model}")
    position = jnp.arange(length, dtype=jnp.float32)[:, None]
    even = jnp.arange(0, d_model, 2, dtype=jnp.float32)
    angle = position / jnp.power(max_timescale, even / d_model)
    encoding = jnp.zeros((length, d_model), jnp.float32)
    encoding = encoding.at[:, 0::2].set(jnp.sin(angle))
    encoding = encoding.at[:, 1::2].set(jnp.cos(angle[:, : d_model // 2]))
    return encoding.astype(dtype)


class PositionalEncoding(nn.Module):
    """Adds :func:`sinusoidal_encoding` to ``[batch, time, d_model]``, then dropout."""

    dropout_rate: float = 0.0
    max_timescale: float = 10000.0

    @nn.compact
    def __call__(self, inputs: Array, *, deterministic: bool = True) -> Array:
        check_sequence(inputs, "inputs")
        check_rate(self.dropout_rate, "dropout_rate")
        encoding = sinusoidal_encoding(
            inputs.shape[1], inputs.shape[2], self.max_timescale, inputs.dtype
        )
        return nn.Dropout(self.dropout_rate)(inputs + encoding, deterministic=deterministic)


def key_padding_mask(
    key_mask: Array | None, causal_length: int | None = None, max_span: int | None = None
) -> Array | None:
    """Attention mask ``[batch, 1, 1 or T, T_key]`` from a ``[batch, T_key]`` valid mask.

    With ``causal_length`` (self-attention only) step t also cannot see steps after t, and
    with ``max_span`` neither steps before ``t - max_span + 1`` (t sees ``max_span`` steps,
    itself included). Padded query rows keep the valid keys, so they stay finite.
    """
    mask = None if key_mask is None else key_mask.astype(bool)[:, None, None, :]
    if causal_length is not None:
        causal = causal_band(causal_length, causal_length, 0, max_span)[None, None]
        mask = causal if mask is None else jnp.logical_and(mask, causal)
    return mask


def causal_band(n_queries: int, n_keys: int, offset: int, max_span: int | None) -> Array:
    """``[n_queries, n_keys]`` bool: query q (at step ``q + offset`` of the keys) sees key j
    iff ``j <= q + offset`` and, with ``max_span``, ``q + offset - j < max_span``."""
    q = jnp.arange(n_queries)[:, None] + offset
    j = jnp.arange(n_keys)[None, :]
    band = j <= q
    if max_span is not None:
        band = band & (q - j < max_span)
    return band


def distance_bias(n_queries: int, n_keys: int, offset: int, num_heads: int) -> Array:
    """ALiBi's relative position bias (Press et al. 2022), ``[1, heads, n_queries, n_keys]``:
    ``-slope_h (offset + q - k)``, slopes ``2^(-8 h / heads)``, h = 1 ... heads.

    It depends only on how many steps back a key lies, never on where the sequence starts,
    so a model trained on 270-day windows reads a 10-year sequence the same way (absolute
    positions beyond the training window are never seen in training). Future keys
    (negative distance) get 0; the causal mask removes them.
    """
    slopes = 2.0 ** (-8.0 * jnp.arange(1, num_heads + 1, dtype=jnp.float32) / num_heads)
    distance = offset + jnp.arange(n_queries)[:, None] - jnp.arange(n_keys)[None, :]
    return -(slopes[:, None, None] * jnp.maximum(distance, 0).astype(jnp.float32))[None]


def zero_padding(x: Array, mask: Array | None, name: str) -> Array:
    """Replace padded steps of ``x`` [batch, T, d] by zeros (``mask`` [batch, T])."""
    if mask is None:
        return x
    if mask.shape != x.shape[:2]:
        raise ValueError(f"{name} must be [batch, time] = {x.shape[:2]}, got {mask.shape}")
    return jnp.where(mask.astype(bool)[..., None], x, jnp.zeros((), x.dtype))


class _FeedForward(nn.Module):
    """Position-wise ``Dense(mlp_dim) -> activation -> Dropout -> Dense(d) -> Dropout``."""

    mlp_dim: int
    activation: Callable[[Array], Array]
    dropout_rate: float
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        y = nn.Dense(self.mlp_dim, dtype=self.dtype, param_dtype=self.param_dtype)(x)
        y = nn.Dropout(self.dropout_rate)(self.activation(y), deterministic=deterministic)
        y = nn.Dense(x.shape[-1], dtype=self.dtype, param_dtype=self.param_dtype)(y)
        return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)


class _Residual(nn.Module):
    """Settings and shared parts of the attention blocks (attention, norms, feed-forward).

    Attributes:
        num_heads: attention heads (must divide d_model).
        mlp_dim: width of the feed-forward hidden layer.
        dropout_rate: dropout on the attention output and in the feed-forward block.
        attention_dropout_rate: dropout on attention weights.
        norm_first: pre-norm (True, default) or post-norm (False).
        activation: feed-forward activation (GELU).
        dtype, param_dtype: computation and parameter dtypes (float32 default).
    """

    num_heads: int = 4
    mlp_dim: int = 128
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    norm_first: bool = True
    activation: Callable[[Array], Array] = nn.gelu
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def settings(self) -> dict:
        """The attributes above, to build another block with the same settings."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(_Residual) if f.name not in ("parent", "name")}

    def check(self, d_model: int) -> None:
        check_rate(self.dropout_rate, "dropout_rate")
        check_rate(self.attention_dropout_rate, "attention_dropout_rate")
        if self.num_heads < 1 or d_model % self.num_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must divide d_model ({d_model})"
            )

    def norm(self, name: str) -> nn.LayerNorm:
        return nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name=name)

    def attention(self, deterministic: bool, bias: Array | None = None) -> nn.MultiHeadDotProductAttention:
        """The attention module; ``bias`` [1, heads, T_q, T_k] is added to its logits."""
        extra = {} if bias is None else {"attention_fn": functools.partial(nn.dot_product_attention, bias=bias)}
        return nn.MultiHeadDotProductAttention(
            **extra,
            num_heads=self.num_heads,
            dropout_rate=self.attention_dropout_rate,
            deterministic=deterministic,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="attention",
        )

    def feed_forward(self, x: Array, deterministic: bool) -> Array:
        ff = _FeedForward(self.mlp_dim, self.activation, self.dropout_rate,
                          self.dtype, self.param_dtype, name="feed_forward")
        if self.norm_first:
            return x + ff(self.norm("norm_ff")(x), deterministic)
        return self.norm("norm_ff")(x + ff(x, deterministic))


class TransformerEncoderLayer(_Residual):
    """Self-attention + feed-forward layer on ``[batch, time, d_model]``.

    Attributes: those of :class:`_Residual`, and

    - ``causal``: step t attends only to steps <= t;
    - ``max_span`` (causal only): ... and only to the last ``max_span`` steps (itself
      included);
    - ``chunk_size`` (needs ``max_span``): the same attention computed for blocks of
      ``chunk_size`` queries against their ``chunk_size + max_span - 1`` keys, so the
      attention weights take ``T (chunk_size + max_span - 1)`` instead of ``T²`` per head
      (long windows on a CPU). Same numbers as the unchunked layer.
    """

    causal: bool = False
    max_span: int | None = None
    chunk_size: int | None = None
    relative_position: bool = False

    def _check_span(self) -> None:
        if self.max_span is not None and (not self.causal or self.max_span < 1):
            raise ValueError(f"max_span needs causal=True and must be >= 1, got {self.max_span}")
        if self.chunk_size is not None and (self.max_span is None or self.chunk_size < 1):
            raise ValueError(f"chunk_size needs max_span and must be >= 1, got {self.chunk_size}")

    def _chunked(self, attend: nn.Module, y: Array, mask: Array | None) -> Array:
        """Causal banded self-attention of ``y`` [batch, T, d] by blocks of queries."""
        batch, length, d = y.shape
        # a span or block longer than the sequence changes nothing but the memory
        c, span = min(self.chunk_size, length), min(self.max_span, length)
        n = -(-length // c)
        valid = jnp.ones((batch, length), bool) if mask is None else mask.astype(bool)
        tail = n * c - length
        y_q = jnp.pad(y, ((0, 0), (0, tail), (0, 0))).reshape(batch * n, c, d)
        # keys of block i: steps i c - span + 1 ... (i + 1) c - 1, zero-padded in front
        y_k = jnp.pad(y, ((0, 0), (span - 1, tail), (0, 0)))
        v_k = jnp.pad(valid, ((0, 0), (span - 1, tail)))
        index = jnp.arange(n)[:, None] * c + jnp.arange(c + span - 1)[None, :]
        keys = y_k[:, index].reshape(batch * n, c + span - 1, d)
        key_valid = v_k[:, index].reshape(batch * n, 1, 1, c + span - 1)
        band = causal_band(c, c + span - 1, span - 1, span)[None, None]
        out = attend(y_q, keys, mask=jnp.logical_and(key_valid, band))
        return out.reshape(batch, n * c, d)[:, :length]

    @nn.compact
    def __call__(
        self, inputs: Array, mask: Array | None = None, *, deterministic: bool = True
    ) -> Array:
        """``inputs`` [batch, time, d_model], ``mask`` [batch, time] (True = valid)."""
        check_sequence(inputs, "inputs")
        self.check(inputs.shape[-1])
        self._check_span()
        x = zero_padding(inputs, mask, "mask")
        length = x.shape[1]
        if self.chunk_size is not None:
            # every block's query q and key k lie span - 1 + q - k steps apart
            c, span = min(self.chunk_size, length), min(self.max_span, length)
            bias = distance_bias(c, c + span - 1, span - 1, self.num_heads) if self.relative_position else None
            attend = self.attention(deterministic, bias)
            self_attend = lambda y: self._chunked(attend, y, mask)  # noqa: E731
        else:
            bias = distance_bias(length, length, 0, self.num_heads) if self.relative_position else None
            attend = self.attention(deterministic, bias)
            attn_mask = key_padding_mask(mask, length if self.causal else None, self.max_span)
            self_attend = lambda y: attend(y, mask=attn_mask)  # noqa: E731
        drop = nn.Dropout(self.dropout_rate)
        if self.norm_first:
            y = self.norm("norm_attention")(x)
            x = x + drop(self_attend(y), deterministic=deterministic)
        else:
            y = self_attend(x)
            x = self.norm("norm_attention")(x + drop(y, deterministic=deterministic))
        return self.feed_forward(x, deterministic)


class TransformerEncoder(_Residual):
    """A stack of :class:`TransformerEncoderLayer` (same attributes, plus ``num_layers``).

    With pre-norm a final LayerNorm closes the stack. Padded steps of the output are zero.
    """

    num_layers: int = 2
    causal: bool = False
    max_span: int | None = None
    chunk_size: int | None = None
    relative_position: bool = False

    @nn.compact
    def __call__(
        self, inputs: Array, mask: Array | None = None, *, deterministic: bool = True
    ) -> Array:
        """``inputs`` [batch, time, d_model], ``mask`` [batch, time] -> same shape."""
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        x = inputs
        for n in range(self.num_layers):
            x = TransformerEncoderLayer(**self.settings(), causal=self.causal, max_span=self.max_span,
                                        chunk_size=self.chunk_size, relative_position=self.relative_position,
                                        name=f"layer_{n}")(
                x, mask, deterministic=deterministic
            )
        if self.norm_first:
            x = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(x)
        return zero_padding(x, mask, "mask")


class CrossAttentionBlock(_Residual):
    """Queries from one sequence attend to keys/values of another, then feed-forward.

    ``queries`` [batch, T_q, d_model], ``context`` [batch, T_k, d_context],
    ``key_mask`` [batch, T_k] (True = valid context step). Output [batch, T_q, d_model].
    Padded context steps get zero attention weight; a sample without any valid context
    step averages over all of them (no NaN). Attributes as in :class:`_Residual`.
    """

    @nn.compact
    def __call__(
        self,
        queries: Array,
        context: Array,
        key_mask: Array | None = None,
        *,
        deterministic: bool = True,
    ) -> Array:
        check_sequence(queries, "queries")
        check_sequence(context, "context")
        if queries.shape[0] != context.shape[0]:
            raise ValueError(
                f"queries and context must share the batch axis, got {queries.shape} "
                f"and {context.shape}"
            )
        self.check(queries.shape[-1])
        context = zero_padding(context, key_mask, "key_mask")
        attn_mask = key_padding_mask(key_mask)
        attend = self.attention(deterministic)
        drop = nn.Dropout(self.dropout_rate)
        x = queries
        if self.norm_first:
            q = self.norm("norm_queries")(x)
            kv = self.norm("norm_context")(context)
            x = x + drop(attend(q, kv, mask=attn_mask), deterministic=deterministic)
        else:
            y = attend(x, context, mask=attn_mask)
            x = self.norm("norm_attention")(x + drop(y, deterministic=deterministic))
        return self.feed_forward(x, deterministic)


class QueryReadout(nn.Module):
    """One learned query per output cross-attends to encoded tokens ``[batch, n, d_model]``
    (``mask`` ``[batch, n]``, True = valid) and a linear read-out gives one unconstrained value
    each: ``[batch, num_params]``."""

    num_params: int
    num_heads: int
    mlp_dim: int
    dropout_rate: float
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, tokens: Array, mask: Array | None, deterministic: bool) -> Array:
        batch, _, d_model = tokens.shape
        queries = self.param(
            "parameter_queries", nn.initializers.normal(0.02), (self.num_params, d_model),
            self.param_dtype,
        )
        queries = jnp.broadcast_to(queries.astype(tokens.dtype), (batch,) + queries.shape)
        x = CrossAttentionBlock(
            num_heads=self.num_heads, mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            dtype=self.dtype, param_dtype=self.param_dtype, name="cross_attention",
        )(queries, tokens, mask, deterministic=deterministic)
        x = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(x)
        raw = nn.Dense(1, dtype=self.dtype, param_dtype=self.param_dtype, name="readout")(x)
        return raw[..., 0]


def attribute_tokens(module: nn.Module, attributes: Array, d_model: int) -> tuple[Array, Array]:
    """Attribute j -> token ``a_j w_j + e_j`` (``[batch, n_attributes, d_model]``) and the
    mask of present (finite) attributes ``[batch, n_attributes]``; called inside a compact
    ``__call__`` so the parameters belong to ``module``."""
    if attributes.ndim != 2:
        raise ValueError(
            f"attributes must be [batch, n_attributes], got shape {attributes.shape}"
        )
    n_attributes = attributes.shape[1]
    mask = jnp.isfinite(attributes)
    values = jnp.where(mask, attributes, 0.0).astype(jnp.float32)
    scale = module.param("attribute_scale", nn.initializers.normal(1.0),
                         (n_attributes, d_model), module.param_dtype)
    identity = module.param("attribute_embedding", nn.initializers.normal(1.0),
                            (n_attributes, d_model), module.param_dtype)
    return (values[..., None] * scale + identity).astype(module.dtype), mask


class AttributeTransformer(nn.Module):
    """Static basin attributes ``[batch, n_attributes]`` -> raw parameters.

    Each attribute j becomes a token ``a_j · w_j + e_j`` (its own value scale ``w_j`` and
    identity embedding ``e_j``, so no positional encoding is needed); a
    :class:`TransformerEncoder` mixes the tokens and one learned query per parameter reads
    them out by cross-attention. Missing attributes (NaN) are masked out. Returns
    ``[batch, num_params]``, unconstrained.
    """

    num_params: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def encoder(self, name: str) -> TransformerEncoder:
        """A :class:`TransformerEncoder` with this module's sizes (inside a compact call)."""
        return TransformerEncoder(num_layers=self.num_layers, num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                                  dropout_rate=self.dropout_rate, dtype=self.dtype, param_dtype=self.param_dtype,
                                  name=name)

    @nn.compact
    def __call__(self, attributes: Array, *, deterministic: bool = True) -> Array:
        if attributes.ndim != 2:
            raise ValueError(
                f"attributes must be [batch, n_attributes], got shape {attributes.shape}"
            )
        if self.num_params < 1:
            raise ValueError(f"num_params must be >= 1, got {self.num_params}")
        tokens, mask = attribute_tokens(self, attributes, self.d_model)
        x = self.encoder("encoder")(tokens, mask, deterministic=deterministic)
        return QueryReadout(
            self.num_params, self.num_heads, self.mlp_dim, self.dropout_rate,
            self.dtype, self.param_dtype, name="readout",
        )(x, mask, deterministic)
