"""Unit-hydrograph routing: gamma and MAXBAS (triangular) weights and a causal convolution.

Routing turns a simulated runoff series into streamflow at the outlet by convolving it with
a unit hydrograph ``w`` of ``L`` daily ordinates (``sum(w) = 1``):

    Q_r(t) = sum_k w_k Q(t - k),   k = 0 .. L-1   (causal; w_0 multiplies today's Q)

It sits outside the process-model step (a pure post-processing of a ``[time, *batch]``
series), so any model can use it. Two unit hydrographs:

- gamma (dHBV, Feng et al. 2022): ``alpha = max(a, 0) + 0.1``, ``theta = max(b, 0) + 0.5`` d,
  ``w_k ∝ t_k^(alpha-1) exp(-t_k / theta)`` at ``t_k = k + 0.5``; boxes ``a in [0, 2.9]``,
  ``b in [0, 6.5]`` (:data:`GAMMA_UH_SPEC`). The released dHBV code uses
  ``L = min(15, len(series))``; pass ``length=min(15, n_time)`` to reproduce it.
- MAXBAS (HBV-light, Seibert & Vis 2012): ``w_i = G(i) - G(i-1)``, ``G`` the CDF of a
  symmetric triangle on ``[0, MAXBAS]`` d (:data:`MAXBAS_SPEC`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from .base import ParamSpec

Array = jax.Array

__all__ = [
    "GAMMA_UH_SPEC",
    "MAXBAS_SPEC",
    "gamma_uh_weights",
    "maxbas_weights",
    "route",
    "route_streamflow",
]

GAMMA_UH_SPEC: Mapping[str, ParamSpec] = {
    "uh_shape": ParamSpec(0.0, 2.9, "-", 1.45, "gamma UH shape a; alpha = max(a, 0) + 0.1"),
    "uh_scale": ParamSpec(0.0, 6.5, "d", 3.25, "gamma UH scale b; theta = max(b, 0) + 0.5 d"),
}

MAXBAS_SPEC: Mapping[str, ParamSpec] = {
    "maxbas": ParamSpec(1.0, 7.0, "d", 3.0, "MAXBAS: base length of the triangular UH"),
}


def gamma_uh_weights(a: Array, b: Array, length: int = 15) -> Array:
    """Gamma unit-hydrograph ordinates of dHBV, normalised to sum 1.

    Args:
        a: shape parameter ``a`` (-), any shape ``[*batch]``; ``alpha = max(a, 0) + 0.1``.
        b: scale parameter ``b`` (d), broadcastable with ``a``; ``theta = max(b, 0) + 0.5``.
        length: number of daily ordinates ``L`` (static int >= 1).

    Returns:
        weights ``[*batch, length]``, ``w_k`` for ``t_k = k + 0.5`` d.
    """
    length = _check_length(length)
    a, b = jnp.broadcast_arrays(jnp.asarray(a), jnp.asarray(b))
    dtype = _float_dtype(a, b)
    alpha = jnp.maximum(a, 0.0)[..., None].astype(dtype) + 0.1
    theta = jnp.maximum(b, 0.0)[..., None].astype(dtype) + 0.5
    t = jnp.arange(length, dtype=dtype) + 0.5
    # Gamma(alpha) theta^alpha cancels in the normalisation; log form avoids overflow.
    log_w = (alpha - 1.0) * jnp.log(t) - t / theta
    w = jnp.exp(log_w - jnp.max(log_w, axis=-1, keepdims=True))
    return w / jnp.sum(w, axis=-1, keepdims=True)


def maxbas_weights(maxbas: Array, length: int = 7) -> Array:
    """HBV-light triangular weights ``w_i = G(i) - G(i-1)``, i = 1..length.

    ``G`` is the CDF of a symmetric triangle on ``[0, MAXBAS]``: ``2 x^2 / M^2`` for
    ``x <= M/2`` and ``1 - 2 (M - x)^2 / M^2`` above. Ordinates beyond ``ceil(MAXBAS)`` are 0.

    Args:
        maxbas: MAXBAS (d, > 0), any shape ``[*batch]``.
        length: number of ordinates (static int); must be ``>= ceil(MAXBAS)`` so the weights
            sum to 1 (checked for concrete values).

    Returns:
        weights ``[*batch, length]``.
    """
    length = _check_length(length)
    m = jnp.asarray(maxbas)
    if not isinstance(m, jax.core.Tracer):
        if bool(jnp.any(m <= 0)):
            raise ValueError(f"maxbas must be > 0 d, got min {float(jnp.min(m)):g}")
        if float(jnp.max(m)) > length:
            raise ValueError(
                f"maxbas = {float(jnp.max(m)):g} d needs length >= {float(jnp.max(m)):g}, "
                f"got length = {length}"
            )
    dtype = _float_dtype(m)
    m = m[..., None].astype(dtype)
    x = jnp.minimum(jnp.arange(length + 1, dtype=dtype), m)
    rising = 2.0 * jnp.square(x / m)
    falling = 1.0 - 2.0 * jnp.square((m - x) / m)
    cdf = jnp.where(x <= 0.5 * m, rising, falling)
    return jnp.diff(cdf, axis=-1)


def route(q: Array, weights: Array) -> Array:
    """Causal convolution of a series with unit-hydrograph weights.

    Args:
        q: runoff ``[time, *batch]`` (mm d-1).
        weights: ``[*batch, L]`` or ``[L]`` (broadcast over the batch), ``w_0`` for today.

    Returns:
        routed flow ``[time, *batch]`` (mm d-1); the first ``L - 1`` days see no water from
        before the series (zero history, as in dHBV).
    """
    q = jnp.asarray(q)
    weights = jnp.asarray(weights)
    if q.ndim < 1:
        raise ValueError("q must be shaped [time, *batch], got a scalar")
    if weights.ndim < 1:
        raise ValueError("weights must be shaped [*batch, L]")
    n_time, n_w = q.shape[0], weights.shape[-1]
    try:
        jnp.broadcast_shapes(weights.shape[:-1], q.shape[1:])
    except ValueError:
        raise ValueError(
            f"weights batch shape {weights.shape[:-1]} does not broadcast to q batch {q.shape[1:]}"
        ) from None
    # L shifted copies (L ~ 15): exact, cheap, and differentiable in q and w alike.
    padded = jnp.concatenate([jnp.zeros((n_w - 1,) + q.shape[1:], q.dtype), q], axis=0)
    out_shape = jnp.broadcast_shapes(q.shape, (1,) + weights.shape[:-1])
    out = jnp.zeros(out_shape, jnp.result_type(q, weights))
    for k in range(n_w):
        out = out + weights[..., k] * padded[n_w - 1 - k : n_w - 1 - k + n_time]
    return out


def route_streamflow(
    q: Array, routing_params: Mapping[str, Array], length: int | None = None
) -> Array:
    """Route ``q [time, *batch]`` with the unit hydrograph named by the parameter keys.

    ``{"uh_shape", "uh_scale"}`` selects the gamma UH (default ``length = 15``);
    ``{"maxbas"}`` the triangular UH (default ``length = 7``, the top of its box).
    Parameters are shaped ``[*batch]`` (one hydrograph per basin).
    """
    keys = set(routing_params)
    if keys == set(GAMMA_UH_SPEC):
        w = gamma_uh_weights(routing_params["uh_shape"], routing_params["uh_scale"], length or 15)
    elif keys == set(MAXBAS_SPEC):
        w = maxbas_weights(routing_params["maxbas"], length or 7)
    else:
        raise ValueError(
            f"routing_params must have keys {sorted(GAMMA_UH_SPEC)} (gamma UH) or "
            f"{sorted(MAXBAS_SPEC)} (MAXBAS); got {sorted(keys)}"
        )
    return route(q, w)


def _float_dtype(*xs):
    """Common floating dtype of ``xs`` (the default float for integer inputs)."""
    dtype = jnp.result_type(*xs)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def _check_length(length) -> int:
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"length must be a positive int (static), got {length!r}")
    return length
