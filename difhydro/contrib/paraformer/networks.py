"""The parameter networks of ParaFormer (Li & Lu 2023, Remote Sens. 15, 3536) and its baselines.

- ``paraformer_a``: attributes A -> θ (:class:`ParaFormerA`, the attention encoder of
  static attributes, :class:`~difhydro.nn.AttributeTransformer`);
- ``paraformer_z``: (forcing, observation) history Z and attributes A -> θ
  (:class:`ParaFormerZ`, the paper's encoder-decoder);
- ``ffn_a`` (MLP on A) and ``lstm_z`` (LSTM over X, Z and A; Tsai et al. 2021).

Each emits one unconstrained value per parameter, ``[batch, p]``, for a
:class:`~difhydro.hybrid.ParamHead`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ...nn import (
    LSTM,
    MLP,
    AttributeTransformer,
    CrossAttentionBlock,
    PositionalEncoding,
    QueryReadout,
    attribute_tokens,
    zero_padding,
)
from ...nn.lstm import check_sequence

Array = jax.Array
Dtype = Any

__all__ = ["PAPER_BOUNDS", "PAPER_SIZES", "NETWORKS", "HISTORY_NETWORKS", "PAPER_HISTORY_DAYS",
           "ParaFormerA", "ParaFormerZ", "ParameterNetwork"]

#: ParaFormer_A: static attributes -> raw parameters (the generic attention encoder)
ParaFormerA = AttributeTransformer


class ParaFormerZ(AttributeTransformer):
    """(Forcing, observation) history ``[batch, time, features]`` -> raw parameters.

    Steps: Dense embedding to ``d_model``, sinusoidal positions, a
    :class:`TransformerEncoder` over time (``mask`` [batch, time] marks valid steps; fill
    missing observations with 0 and, if wanted, add a 0/1 "observed" feature).

    Without ``attributes``, one learned query per parameter cross-attends to the encoded
    history. With ``attributes`` ``[batch, n_attributes]`` (the paper's decoder side,
    Li & Lu 2023 Eqs. 10-12): the attributes are encoded as in :class:`ParaFormerA`
    (self-attention over attribute tokens gives the queries Q_A), Q_A cross-attend to the
    encoded history (K_Z, V_Z) with a residual feed-forward block,
    ``FFN(O_Z + Q_A) + O_Z + Q_A``, and the learned parameter queries read the fused
    attribute tokens out. NaN attributes are masked out.
    Returns ``[batch, num_params]``, unconstrained. Attributes as in
    :class:`~difhydro.nn.AttributeTransformer`.
    """

    @nn.compact
    def __call__(self, inputs: Array, mask: Array | None = None, attributes: Array | None = None, *,
                 deterministic: bool = True) -> Array:
        check_sequence(inputs, "inputs")
        if self.num_params < 1:
            raise ValueError(f"num_params must be >= 1, got {self.num_params}")
        x = zero_padding(inputs, mask, "mask")
        x = nn.Dense(self.d_model, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="embed")(x)
        x = PositionalEncoding(self.dropout_rate)(x, deterministic=deterministic)
        x = self.encoder("encoder")(x, mask, deterministic=deterministic)
        readout = QueryReadout(
            self.num_params, self.num_heads, self.mlp_dim, self.dropout_rate,
            self.dtype, self.param_dtype, name="readout",
        )
        if attributes is None:
            return readout(x, mask, deterministic)
        if attributes.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"attributes must be [batch, n_attributes] with batch {inputs.shape[0]}, "
                f"got shape {attributes.shape}"
            )
        tokens, attribute_mask = attribute_tokens(self, attributes, self.d_model)
        queries = self.encoder("attribute_encoder")(tokens, attribute_mask, deterministic=deterministic)
        fused = CrossAttentionBlock(
            num_heads=self.num_heads, mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
            dtype=self.dtype, param_dtype=self.param_dtype, name="history_attention",
        )(queries, x, mask, deterministic=deterministic)
        return readout(fused, attribute_mask, deterministic)


#: Li & Lu's Table 1 ranges (their RBL bounds; units of their NLDAS-2 set, see
#: docs/physics.md §2.4), keyed by the toolkit's VicBucket names.
PAPER_BOUNDS = {
    "ds": (0.0, 7.6),
    "dsmax": (0.0, 10.8),
    "expt": (0.0, 4.6),
    "b_infilt": (0.0, 1.0),
    "ws": (0.0, 1.0),
}

#: Network sizes of the paper (§4.2, DAS-S8). Feed-forward widths of the transformers
#: are not stated; 2 x d_model is used.
PAPER_SIZES = {
    "ffn_a": {"hidden_size": 256, "num_layers": 2},
    "lstm_z": {"hidden_size": 256},
    "paraformer_a": {"d_model": 128, "num_heads": 4, "num_layers": 2, "mlp_dim": 256},
    "paraformer_z": {"d_model": 256, "num_heads": 8, "num_layers": 2, "mlp_dim": 512},
}
NETWORKS = tuple(PAPER_SIZES)
HISTORY_NETWORKS = ("lstm_z", "paraformer_z")
PAPER_HISTORY_DAYS = 240


# ----------------------------------------------------------------------------------------
# Parameter networks
# ----------------------------------------------------------------------------------------


class ParameterNetwork(nn.Module):
    """One of :data:`NETWORKS` -> ``[batch, num_params]`` unconstrained values.

    Attributes:
        kind: ``"ffn_a"``, ``"lstm_z"``, ``"paraformer_a"`` or ``"paraformer_z"``.
        num_params: p, number of outputs.
        sizes: overrides of :data:`PAPER_SIZES` as ``((name, value), ...)``.
        dropout_rate: dropout inside the network (training only).
    """

    kind: str
    num_params: int
    sizes: tuple = ()
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, attributes: Array, history: Array | None = None, history_mask: Array | None = None, *,
                 deterministic: bool = True) -> Array:
        """``attributes`` [batch, n_attributes] (standardised), ``history``
        [batch, H, features] (standardised forcing + observations), ``history_mask``
        [batch, H] (True = valid step)."""
        if self.kind not in PAPER_SIZES:
            raise ValueError(f"network kind must be one of {NETWORKS}, got {self.kind!r}")
        cfg = {**PAPER_SIZES[self.kind], **dict(self.sizes)}
        if self.kind in HISTORY_NETWORKS and history is None:
            raise ValueError(f"network {self.kind!r} needs a history [batch, H, features]")
        if self.kind == "ffn_a":
            hidden = (cfg["hidden_size"],) * cfg["num_layers"]
            return MLP(hidden, self.num_params, dropout_rate=self.dropout_rate, name="ffn")(
                attributes, deterministic=deterministic
            )
        if self.kind == "paraformer_a":
            return ParaFormerA(self.num_params, dropout_rate=self.dropout_rate, name="paraformer", **cfg)(
                attributes, deterministic=deterministic
            )
        if self.kind == "paraformer_z":
            return ParaFormerZ(self.num_params, dropout_rate=self.dropout_rate, name="paraformer", **cfg)(
                history, history_mask, attributes, deterministic=deterministic
            )
        # lstm_z: padded steps are zeroed (an LSTM still counts them as steps)
        x = history if history_mask is None else jnp.where(history_mask[..., None], history, 0.0)
        a = jnp.broadcast_to(attributes[:, None, :], x.shape[:2] + attributes.shape[-1:])
        return LSTM(cfg["hidden_size"], output_size=self.num_params, dropout_rate=self.dropout_rate,
                    return_sequences=False, name="lstm")(jnp.concatenate([x, a], -1), deterministic=deterministic)


