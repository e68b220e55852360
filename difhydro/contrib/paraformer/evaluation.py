"""Scores and spatial helpers of the ParaFormer comparison (Li & Lu 2023, Table 2)."""

from __future__ import annotations

import numpy as np

from ...training import metrics

__all__ = ["score", "neighbour_split", "parameter_r2", "roughness"]


def score(simulated: np.ndarray, observed: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-basin RMSE, PCC and NSE (the paper's Table 2 metrics) over the masked days;
    ``simulated``, ``observed``, ``mask`` ``[basin, time]``."""
    obs = np.where(np.asarray(mask), np.asarray(observed, np.float64), np.nan)
    sim = np.asarray(simulated, np.float64)
    return {
        "rmse": np.asarray(metrics.rmse(sim, obs)),
        "pcc": np.asarray(metrics.pearson_r(sim, obs)),
        "nse": np.asarray(metrics.nse(sim, obs)),
    }


def neighbour_split(coords: np.ndarray, n_holdout: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split basins into gauged and neighbouring held-out basins (DAS-S8 / DAS-S8NG).

    Greedy: walk the basins in order; an unassigned basin becomes gauged and its nearest
    unassigned neighbour (Euclidean in ``coords`` ``[basin, d]``) held out, until
    ``n_holdout`` are held out; the rest are gauged.

    Returns ``(gauged, held_out, donor)``: index arrays, ``donor[i]`` = the gauged basin
    nearest to ``held_out[i]`` (for transferring per-basin calibrations).
    """
    coords = np.asarray(coords, np.float64)
    n = coords.shape[0]
    if not 0 < n_holdout < n:
        raise ValueError(f"n_holdout must lie in (0, {n}), got {n_holdout}")
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    role = np.zeros(n, int)  # 0 unassigned, 1 gauged, 2 held out
    for i in range(n):
        if (role == 2).sum() >= n_holdout:
            break
        if role[i]:
            continue
        role[i] = 1
        free = np.flatnonzero(role == 0)
        if free.size:
            role[free[np.argmin(dist[i, free])]] = 2
    role[role == 0] = 1
    gauged, held = np.flatnonzero(role == 1), np.flatnonzero(role == 2)
    donor = gauged[np.argmin(dist[np.ix_(held, gauged)], axis=1)]
    return gauged, held, donor


def parameter_r2(learned: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination ``1 − Σ(l − t)² / Σ(t − t̄)²`` over basins."""
    learned, true = np.asarray(learned, np.float64), np.asarray(true, np.float64)
    return float(1.0 - np.sum((learned - true) ** 2) / np.sum((true - true.mean()) ** 2))


def roughness(values: np.ndarray, coords: np.ndarray, width: float) -> float:
    """Spatial roughness of a parameter field: median over basins of
    ``|θ_i − θ_nn(i)| / width`` with nn(i) the nearest other basin in ``coords``."""
    coords = np.asarray(coords, np.float64)
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argmin(dist, axis=1)
    values = np.asarray(values, np.float64)
    return float(np.median(np.abs(values - values[nearest])) / width)
