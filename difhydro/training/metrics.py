"""Goodness-of-fit metrics for hydrographs and soil moisture (docs/physics.md §5.5, §5.3).

Every metric takes ``(simulated, observed)`` arrays (numpy or JAX) of equal shape,
reduces over the time axis ``axis`` (default -1: the last axis, as in the basin-first
``[basin, time]`` layout of difhydro's public surface) and returns one value per remaining
(basin) entry.
Time steps where the **observation** is NaN are ignored; a NaN in the simulation
propagates so that a broken model is never hidden. A metric that divides by a property of
the observed series that is zero (the variance of a constant series for NSE, KGE, r; the
mean of an all-zero series for KGE's β; the high-flow volume for FHV) is undefined there
and returns NaN, never ±inf or a huge negative number (a constant series of a dry
ephemeral stream would otherwise dominate a mean over basins). All functions are jit-able
and their gradients stay finite where the metric is defined.
"""

from __future__ import annotations

import jax.numpy as jnp

Array = jnp.ndarray

__all__ = [
    "nse",
    "kge",
    "kge_2012",
    "mnse",
    "fhv",
    "pfab",
    "pearson_r",
    "r_squared",
    "r2_cod",
    "rmse",
    "physical_consistency",
    "evaluate",
    "METRICS",
    "DIRECTION",
]


def _prepare(simulated, observed, axis):
    sim = jnp.moveaxis(jnp.asarray(simulated), axis, -1)
    obs = jnp.moveaxis(jnp.asarray(observed), axis, -1)
    if sim.shape != obs.shape:
        raise ValueError(f"simulated {sim.shape} and observed {obs.shape} shapes differ")
    mask = ~jnp.isnan(obs)
    n = mask.sum(-1)
    return sim, jnp.where(mask, obs, 0.0), mask, n


def _mean(x, mask, n):
    return jnp.where(mask, x, 0.0).sum(-1) / n


def _ratio(num, den):
    """``num / den``, NaN where ``den`` is 0 (undefined: a constant or all-zero observed
    series); the double ``where`` keeps gradients finite elsewhere."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.nan)


def _moments(simulated, observed, axis):
    sim, obs, mask, n = _prepare(simulated, observed, axis)
    mu_s, mu_o = _mean(sim, mask, n), _mean(obs, mask, n)
    ds = jnp.where(mask, sim - mu_s[..., None], 0.0)
    do = jnp.where(mask, obs - mu_o[..., None], 0.0)
    sd_s = jnp.sqrt((ds**2).sum(-1) / n)
    sd_o = jnp.sqrt((do**2).sum(-1) / n)
    r = _ratio((ds * do).sum(-1) / n, sd_s * sd_o)
    return sim, obs, mask, n, mu_s, mu_o, sd_s, sd_o, r


def nse(simulated, observed, axis: int = -1) -> Array:
    """Nash-Sutcliffe efficiency ``1 − Σ(s − o)² / Σ(o − ō)²`` (Nash & Sutcliffe 1970);
    NaN for a constant observed series (zero variance: undefined, not −inf)."""
    sim, obs, mask, n = _prepare(simulated, observed, axis)
    mu_o = _mean(obs, mask, n)
    num = jnp.where(mask, (sim - obs) ** 2, 0.0).sum(-1)
    den = jnp.where(mask, (obs - mu_o[..., None]) ** 2, 0.0).sum(-1)
    return 1.0 - _ratio(num, den)


def r2_cod(simulated, observed, axis: int = -1) -> Array:
    """Coefficient of determination as in Geng et al. (2024): the NSE formula."""
    return nse(simulated, observed, axis)


def mnse(simulated, observed, axis: int = -1) -> Array:
    """Modified NSE ``1 − Σ|s − o| / Σ|o − ō|`` (Legates & McCabe 1999, E1); NaN for a
    constant observed series."""
    sim, obs, mask, n = _prepare(simulated, observed, axis)
    mu_o = _mean(obs, mask, n)
    num = jnp.where(mask, jnp.abs(sim - obs), 0.0).sum(-1)
    den = jnp.where(mask, jnp.abs(obs - mu_o[..., None]), 0.0).sum(-1)
    return 1.0 - _ratio(num, den)


def kge(simulated, observed, axis: int = -1) -> Array:
    """Kling-Gupta efficiency (Gupta et al. 2009): ``1 − √((r−1)² + (α−1)² + (β−1)²)``,
    ``α = σ_s/σ_o``, ``β = s̄/ō``; NaN for a constant observed series."""
    *_, mu_s, mu_o, sd_s, sd_o, r = _moments(simulated, observed, axis)
    alpha, beta = _ratio(sd_s, sd_o), _ratio(mu_s, mu_o)
    return 1.0 - jnp.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)


def kge_2012(simulated, observed, axis: int = -1) -> Array:
    """KGE′ (Kling et al. 2012): α replaced by ``γ = (σ_s/s̄)/(σ_o/ō)``; NaN for a
    constant observed series."""
    *_, mu_s, mu_o, sd_s, sd_o, r = _moments(simulated, observed, axis)
    gamma, beta = _ratio(_ratio(sd_s, mu_s), _ratio(sd_o, mu_o)), _ratio(mu_s, mu_o)
    return 1.0 - jnp.sqrt((r - 1) ** 2 + (gamma - 1) ** 2 + (beta - 1) ** 2)


def pearson_r(simulated, observed, axis: int = -1) -> Array:
    """Pearson correlation coefficient r (NaN when either series is constant)."""
    return _moments(simulated, observed, axis)[-1]


def r_squared(simulated, observed, axis: int = -1) -> Array:
    """Squared Pearson correlation r² (not the NSE-like :func:`r2_cod`)."""
    return pearson_r(simulated, observed, axis) ** 2


def rmse(simulated, observed, axis: int = -1) -> Array:
    """Root mean squared error, in the units of the series."""
    sim, obs, mask, n = _prepare(simulated, observed, axis)
    return jnp.sqrt(jnp.where(mask, (sim - obs) ** 2, 0.0).sum(-1) / n)


def fhv(simulated, observed, axis: int = -1, fraction: float = 0.02) -> Array:
    """High-flow volume bias of the flow duration curve, % (Yilmaz et al. 2008).

    ``100 Σ_{h≤H}(s_(h) − o_(h)) / Σ_{h≤H} o_(h)`` with simulation and observation sorted
    separately in descending order over the valid steps and ``H = round(fraction · N)``;
    NaN when the observed high flows sum to zero (an all-zero series).
    """
    sim, obs, mask, n = _prepare(simulated, observed, axis)
    h = jnp.round(fraction * n)
    # masked steps sink to the end of the descending order
    s_desc = -jnp.sort(jnp.where(mask, -sim, jnp.inf), axis=-1)
    o_desc = -jnp.sort(jnp.where(mask, -obs, jnp.inf), axis=-1)
    top = jnp.arange(sim.shape[-1]) < h[..., None]
    s_top = jnp.where(top, s_desc, 0.0).sum(-1)
    o_top = jnp.where(top, o_desc, 0.0).sum(-1)
    return jnp.where(h > 0, 100.0 * _ratio(s_top - o_top, o_top), jnp.nan)


def pfab(simulated, observed, axis: int = -1, fraction: float = 0.02) -> Array:
    """Peak-flow absolute bias ``|FHV|`` (%), as in Jiang et al. (2020)."""
    return jnp.abs(fhv(simulated, observed, axis, fraction))


def physical_consistency(water_balance, observed, predicted, axis: int = -1) -> Array:
    """Share of physically consistent predicted changes (Geng et al. 2024, §5.3).

    ``v_t = ΔW_t · (SM_{t−1} − SM^_t)`` with ``ΔW_t = sign(W_t − W_{t−1})``; a step is
    consistent if ``v < 0`` and inconsistent if ``v > 0``; ``v = 0`` and steps with NaN in
    any input are excluded. Returns #consistent / (#consistent + #inconsistent).

    Args:
        water_balance: W_t (mm), e.g. ``P − E − SRO + ΔSD``, aligned in time with
        observed: observed soil moisture SM_t (m3 m-3) and
        predicted: predicted soil moisture SM^_t.
    """
    w = jnp.moveaxis(jnp.asarray(water_balance), axis, -1)
    o = jnp.moveaxis(jnp.asarray(observed), axis, -1)
    p = jnp.moveaxis(jnp.asarray(predicted), axis, -1)
    dw = jnp.sign(w[..., 1:] - w[..., :-1])
    v = dw * (o[..., :-1] - p[..., 1:])
    consistent = (v < 0).sum(-1)
    inconsistent = (v > 0).sum(-1)
    return consistent / (consistent + inconsistent)


METRICS = {
    "nse": nse,
    "kge": kge,
    "kge_2012": kge_2012,
    "mnse": mnse,
    "fhv": fhv,
    "pfab": pfab,
    "r": pearson_r,
    "r_squared": r_squared,
    "r2_cod": r2_cod,
    "rmse": rmse,
}

#: how each metric of :data:`METRICS` improves: ``"max"`` (higher is better), ``"min"``
#: (lower is better) or ``"zero"`` (closest to 0 is best: signed percent biases)
DIRECTION: dict[str, str] = {
    "nse": "max",
    "kge": "max",
    "kge_2012": "max",
    "mnse": "max",
    "fhv": "zero",
    "pfab": "zero",
    "r": "max",
    "r_squared": "max",
    "r2_cod": "max",
    "rmse": "min",
}


def evaluate(simulated, observed, metrics=("nse", "kge", "mnse", "fhv", "r"), axis: int = -1):
    """Several metrics at once: name -> array over the non-time axes."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: {sorted(METRICS)}")
    return {m: METRICS[m](simulated, observed, axis=axis) for m in metrics}
