"""PHY-LSTM / PHYs-LSTM of Geng et al. (2024): a sliding-window LSTM forecasting surface
soil moisture one day ahead, trained with ``λ1·RMSE + λ2·Loss_PHY``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ...data.batching import Batch
from ...nn import LSTM
from ...training import metrics
from ...training.losses import rmse
from .losses import water_balance_loss

Array = jax.Array

__all__ = ["SequenceLSTM", "phy_lstm_loss", "score"]


def _sliding(x: Array, length: int) -> Array:
    """``[B, L, F] -> [B, L, length, F]``: the ``length`` days ending at each day (the
    first day repeated before the start)."""
    steps = jnp.arange(x.shape[1])[:, None] - (length - 1) + jnp.arange(length)[None, :]
    return x[:, jnp.clip(steps, 0, None)]


class SequenceLSTM(nn.Module):
    """PHY-LSTM backbone (Geng et al. 2024): one LSTM over the ``sequence_length`` days
    ending at each day t, a linear head, output de-standardised to m3 m-3.

    Input ``batch.inputs`` ``[B, L, F]`` (standardised; soil moisture enters lagged by one
    day), output ``{"soil_moisture": [B, L]}`` — day t's forecast uses inputs of days
    t − 6 ... t only, so training windows (L = 8, warm-up 7) and whole-period evaluation
    give the same numbers. Train it with ``scored={"soil_moisture": <target>}``.

    Attributes:
        hidden_size: 128 in the paper.
        sequence_length: 7 days.
        dropout_rate: 0.15.
        target_mean, target_std: de-standardisation of the head (m3 m-3).
    """

    hidden_size: int = 128
    sequence_length: int = 7
    dropout_rate: float = 0.15
    target_mean: float = 0.0
    target_std: float = 1.0

    @nn.compact
    def __call__(self, batch: Batch, deterministic: bool = True) -> dict[str, Array]:
        x = batch.inputs
        b, length, f = x.shape
        windows = _sliding(x, self.sequence_length).reshape(b * length, self.sequence_length, f)
        y = LSTM(self.hidden_size, output_size=1, dropout_rate=self.dropout_rate, return_sequences=False,
                 name="lstm")(windows, deterministic=deterministic)
        return {"soil_moisture": self.target_mean + self.target_std * y.reshape(b, length)}




def _observed(batch: Batch) -> Array:
    flag = batch.forcing.get("observed_flag")
    return batch.target if flag is None else jnp.where(flag > 0.5, batch.target, jnp.nan)


def phy_lstm_loss(water_balance_name: str | None, rmse_weight: float = 0.5, physics_weight: float = 0.5,
                  mask_disagreement: bool = True):
    """Trainer loss ``λ1·RMSE + λ2·Loss_PHY`` on ``predictions["soil_moisture"]``.

    ``water_balance_name`` is the ``batch.forcing`` entry holding W (e.g. ``"w_A2"``);
    ``None`` is the plain LSTM (RMSE only, the weights ignored).
    """

    def loss(pred, batch, ctx):
        sm = pred["soil_moisture"]
        if water_balance_name is None:
            return rmse(sm, batch.target, batch.mask)
        return water_balance_loss(sm, _observed(batch), batch.forcing[water_balance_name], batch.mask,
                                         rmse_weight, physics_weight, mask_disagreement=mask_disagreement)

    return loss



def score(sim: np.ndarray, obs: np.ndarray, water_balance: np.ndarray | None = None, axis: int = -1) -> dict[str, float]:
    """R, RMSE, R² (coefficient of determination), KGE pooled as the median over series
    (axis = time) and, with W, the median physical consistency (Geng et al. 2024)."""
    sim, obs = np.asarray(sim, np.float64), np.asarray(obs, np.float64)
    out = {
        "R": float(np.nanmedian(np.asarray(metrics.pearson_r(sim, obs, axis=axis)))),
        "RMSE": float(np.nanmedian(np.asarray(metrics.rmse(sim, obs, axis=axis)))),
        "R2": float(np.nanmedian(np.asarray(metrics.r2_cod(sim, obs, axis=axis)))),
        "KGE": float(np.nanmedian(np.asarray(metrics.kge(sim, obs, axis=axis)))),
    }
    if water_balance is not None:
        w = np.asarray(water_balance, np.float64)
        # consistency only where the forecast is scored (obs present at t and t − 1)
        sim_c = np.where(np.isfinite(obs), sim, np.nan)
        v = np.asarray(metrics.physical_consistency(w, obs, np.nan_to_num(sim_c, nan=0.0), axis=axis))
        valid = np.isfinite(np.moveaxis(sim_c, axis, -1)[..., 1:]) & np.isfinite(np.moveaxis(obs, axis, -1)[..., :-1])
        if not valid.all():
            dw = np.sign(np.diff(np.moveaxis(w, axis, -1), axis=-1))
            vv = dw * (np.moveaxis(obs, axis, -1)[..., :-1] - np.moveaxis(sim_c, axis, -1)[..., 1:])
            v = ((vv < 0) & valid).sum(-1) / (((vv < 0) | (vv > 0)) & valid).sum(-1)
        v = np.asarray(v, np.float64)
        # a forecast that never changes (persistence) has no scored step: PC undefined
        out["PC"] = float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
    return out


