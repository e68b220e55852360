"""Observed flow of the previous days as a network input, with a flag and random holdout.

Autoregressive inputs (Nearing et al. 2022, HESS 26, 5493) make a model forecast from the
latest observations; gaps in the record are frequent, so the model must learn to do without
them. :func:`lagged_flow` therefore returns each lagged value together with a flag saying
whether it is there, and during training :func:`holdout_mask` hides a random share of the
observed days (the same day hidden in every lag that would see it), so the network meets
"missing" as often as the user asks. A hidden or missing value is replaced by ``fill``
(0 by default) *and* its flag is 0: the fill is never a silent value.

Shapes are basin-first: observations ``[basin, time]``, inputs ``[basin, time, 2 * n_lags]``
(the ``n_lags`` values first, then the ``n_lags`` flags), in the units of the observations
given (e.g. normalised flow).

:func:`observed_lagged_flow` is what a model calls: the lagged flow of the batch's target,
with the holdout drawn from the model's dropout stream. :class:`AutoregressiveLSTM` (``lstm``
with ``autoregressive: true``) and :class:`~difhydro.hybrid.HybridPRNN` (``hybrid`` with
``autoregressive: true``, in its Conv1D head's input) both read it.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["holdout_mask", "lagged_flow", "observed_lagged_flow", "AutoregressiveLSTM"]


def holdout_mask(key: Array, shape: tuple[int, ...], probability: float) -> Array:
    """Bool ``shape`` mask, ``True`` where an observed day is held out (each day
    independently with ``probability``); a new ``key`` gives each training sample its own."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"holdout probability must be in [0, 1], got {probability}")
    return jax.random.bernoulli(key, probability, shape)


def lagged_flow(
    observed: Array,
    lags: Sequence[int] = (1,),
    *,
    holdout: float = 0.0,
    key: Array | None = None,
    fill: float = 0.0,
) -> Array:
    """Lagged observed flow with availability flags -> ``[basin, time, 2 * len(lags)]``.

    Entry ``[b, t, i]`` is ``observed[b, t − lags[i]]`` and ``[b, t, len(lags) + i]`` is 1
    where that value is available, 0 where it is missing (NaN), before the start of the
    series, or held out; the value is then ``fill``.

    Args:
        observed: ``[basin, time]`` flow, NaN where missing.
        lags: positive lags in days (1 = yesterday); only past observations are used.
        holdout: probability of hiding each observed day (training); 0 for evaluation.
        key: PRNG key of the holdout draw (required when ``holdout > 0``).
        fill: value written where the flag is 0.
    """
    obs = jnp.asarray(observed)
    if obs.ndim != 2:
        raise ValueError(f"observed must be [basin, time], got shape {obs.shape}")
    lags = tuple(int(lag) for lag in lags)
    if not lags or min(lags) < 1:
        raise ValueError(f"lags must be positive days (1 = yesterday), got {lags}")
    available = ~jnp.isnan(obs)
    if holdout > 0.0:
        if key is None:
            raise ValueError("lagged_flow needs a PRNG key when holdout > 0")
        available = available & ~holdout_mask(key, obs.shape, holdout)
    n_time = obs.shape[1]
    values, flags = [], []
    for lag in lags:
        pad = min(lag, n_time)
        shifted_ok = jnp.pad(available, ((0, 0), (pad, 0)), constant_values=False)[:, :n_time]
        shifted = jnp.pad(jnp.where(available, obs, fill), ((0, 0), (pad, 0)), constant_values=fill)[:, :n_time]
        values.append(jnp.where(shifted_ok, shifted, fill))
        flags.append(shifted_ok.astype(obs.dtype))
    return jnp.stack(values + flags, axis=-1)


def observed_lagged_flow(module: nn.Module, batch, lags: Sequence[int] = (1,), *, holdout: float = 0.0,
                         deterministic: bool = True, offset: float = 0.0, scale: float = 1.0) -> Array:
    """The lagged observed flow a model reads as inputs -> ``[basin, time, 2 * len(lags)]``
    float32 (:func:`lagged_flow`: the values, then the flags).

    The flow is the batch's primary target (the first of ``targets``) where its mask is set
    (observed and past the window's warm-up), as ``(q − offset) / scale``; elsewhere it is
    missing (flag 0). In training (``deterministic=False``) each observed day is hidden with
    probability ``holdout``, drawn from ``module``'s ``dropout`` stream (so each step and
    sample draws its own). Call it inside ``module``'s ``__call__``: the autoregressive LSTM
    and the autoregressive hybrid both do.
    """
    from ..hybrid.models import check_batch, field

    check_batch(batch, None, ("targets", "masks"))
    targets, masks = field(batch, "targets"), field(batch, "masks")
    name = next(iter(targets))
    observed = jnp.where(masks[name], (targets[name] - offset) / scale, jnp.nan)
    hide = 0.0 if deterministic else float(holdout)
    key = module.make_rng("dropout") if hide > 0.0 else None
    return lagged_flow(observed, lags, holdout=hide, key=key).astype(jnp.float32)


# ----------------------------------------------------------------------------------------
# The autoregressive regional LSTM (the registry's ``lstm`` with ``autoregressive: true``)
# ----------------------------------------------------------------------------------------


class AutoregressiveLSTM(nn.Module):
    """The regional LSTM (:class:`~difhydro.hybrid.RegionalLSTM`) with the observed flow of
    the previous days as inputs (Nearing et al. 2022): day ``t`` reads
    ``[inputs_t, attributes, q_obs(t − lag)…, flags…]`` for each lag of ``lags`` (days, all
    >= 1; the registry's ``lags: n`` gives ``1..n``) (:func:`lagged_flow`, the flow
    standardised as the output: ``(q − output_offset) / output_scale``), so its output is a
    one-day-ahead forecast from the flow observed up to yesterday.

    The observed flow comes from the batch's primary target where its mask is set
    (observed and past the window's warm-up: the first scored day of a training window
    therefore has no "yesterday"); during training each observed day is hidden with
    probability ``holdout`` (drawn from the ``dropout`` stream), so the network learns to
    forecast through gaps. Without observations (``difhydro predict`` on forcing only) every
    flag is 0 and the model runs on the meteorology alone. ``clip_in_training=False``: the
    training loss sees the unclipped linear output, as :class:`~difhydro.hybrid.RegionalLSTM`'s
    option; predictions are clipped at 0 either way.
    """

    hidden_size: int = 256
    dropout_rate: float = 0.4
    holdout: float = 0.5
    lags: tuple[int, ...] = (1,)
    initial_forget_bias: float = 3.0
    output_scale: float = 1.0
    output_offset: float = 0.0
    clip_in_training: bool = True

    @nn.compact
    def __call__(self, batch, *, deterministic: bool = True, initial_state=None) -> dict:
        from ..hybrid.models import check_batch, inputs_with_attributes, standardised_flow
        from ..nn import LSTM

        if initial_state is not None:
            raise ValueError("AutoregressiveLSTM has no process-model states to start from (hot start)")
        check_batch(batch, None, ("inputs", "targets", "masks"))
        lagged = observed_lagged_flow(self, batch, self.lags, holdout=self.holdout, deterministic=deterministic,
                                      offset=self.output_offset, scale=self.output_scale)
        x = jnp.concatenate([inputs_with_attributes(batch), lagged], axis=-1)
        y = LSTM(self.hidden_size, output_size=1, dropout_rate=self.dropout_rate,
                 initial_forget_bias=self.initial_forget_bias, name="lstm")(x, deterministic=deterministic)
        if not (deterministic or self.clip_in_training):  # the loss sees the linear output (RegionalLSTM's option)
            return {"streamflow": self.output_offset + self.output_scale * y[..., 0].astype(jnp.float32)}
        return {"streamflow": standardised_flow(y[..., 0], self.output_offset, self.output_scale)}
