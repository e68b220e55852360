"""Figures hydrologists expect: metric CDFs, hydrographs, states vs observations, parameters.

Every function draws one figure, writes it to ``path`` (PNG) and returns the path. They
use matplotlib's Agg backend, so they work on machines without a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["metric_cdf", "hydrographs", "state_vs_observed", "parameters_vs_attributes", "learned_vs_true"]


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metric_cdf(values: Mapping[str, np.ndarray], path, metric: str = "NSE", lower: float = -1.0) -> Path:
    """Empirical CDF of a per-basin metric, one line per model (values below ``lower`` are
    drawn at ``lower``), the usual CAMELS comparison plot."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, v in values.items():
        v = np.sort(np.clip(np.asarray(v, float)[np.isfinite(v)], lower, None))
        if v.size:
            ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=f"{name} (median {np.median(v):.2f})")
    ax.set_xlim(lower, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(metric)
    ax.set_ylabel("fraction of basins")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def hydrographs(
    dates, observed: np.ndarray, simulated: Mapping[str, np.ndarray], titles: Sequence[str], path,
    units: str = "mm d$^{-1}$",
) -> Path:
    """Stacked hydrographs: ``observed`` ``[panel, time]`` against each model's
    ``[panel, time]`` series, one panel per basin (e.g. best, median, worst)."""
    observed = np.atleast_2d(observed)
    n = observed.shape[0]
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(dates, observed[i], color="k", lw=0.8, label="observed")
        for name, sim in simulated.items():
            ax.plot(dates, np.atleast_2d(sim)[i], lw=0.8, label=name)
        ax.set_title(titles[i], fontsize=9)
        ax.set_ylabel(f"Q ({units})")
    axes[0, 0].legend(fontsize=8, ncol=min(len(simulated) + 1, 5), loc="upper right")
    return _save(fig, path)


def state_vs_observed(dates, inferred: np.ndarray, observed: np.ndarray, titles: Sequence[str], path,
                      inferred_label: str = "inferred snow storage", observed_label: str = "Daymet SWE",
                      units: str = "mm") -> Path:
    """An internal state inferred by a physics layer against an independent observation
    (Jiang et al. 2020, Fig. 3: P-RNN snow storage vs SWE), one panel per basin, with r."""
    inferred, observed = np.atleast_2d(inferred), np.atleast_2d(observed)
    fig, axes = plt.subplots(inferred.shape[0], 1, figsize=(11, 2.6 * inferred.shape[0]), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ok = np.isfinite(inferred[i]) & np.isfinite(observed[i])
        r = np.corrcoef(inferred[i][ok], observed[i][ok])[0, 1] if ok.sum() > 2 and observed[i][ok].std() > 0 else np.nan
        ax.plot(dates, observed[i], color="k", lw=0.8, label=observed_label)
        ax.plot(dates, inferred[i], color="tab:blue", lw=0.8, label=inferred_label)
        ax.set_title(f"{titles[i]} (r = {r:.2f})", fontsize=9)
        ax.set_ylabel(units)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def parameters_vs_attributes(params: Mapping[str, np.ndarray], attributes: Mapping[str, np.ndarray], path) -> Path:
    """Grid of scatter plots: each learned parameter (rows) against each attribute (columns)."""
    pn, an = list(params), list(attributes)
    fig, axes = plt.subplots(len(pn), len(an), figsize=(2.2 * len(an), 1.9 * len(pn)), squeeze=False)
    for i, p in enumerate(pn):
        for j, a in enumerate(an):
            ax = axes[i, j]
            ax.scatter(attributes[a], params[p], s=8, alpha=0.7)
            if i == len(pn) - 1:
                ax.set_xlabel(a, fontsize=8)
            if j == 0:
                ax.set_ylabel(p, fontsize=8)
            ax.tick_params(labelsize=6)
    return _save(fig, path)


def learned_vs_true(true: Mapping[str, np.ndarray], learned: Mapping[str, np.ndarray], path) -> Path:
    """Learned against true parameters (synthetic twins), one panel per parameter with R²."""
    names = list(true)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.8), squeeze=False)
    for ax, k in zip(axes[0], names):
        t, e = np.asarray(true[k]), np.asarray(learned[k])
        r2 = 1 - np.sum((e - t) ** 2) / np.sum((t - t.mean()) ** 2)
        ax.scatter(t, e, s=10)
        lo, hi = min(t.min(), e.min()), max(t.max(), e.max())
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.7)
        ax.set_title(f"{k}: R² = {r2:.2f}", fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("learned", fontsize=8)
        ax.tick_params(labelsize=7)
    return _save(fig, path)
