"""Figures hydrologists expect: metric CDFs, hydrographs, states vs observations, parameters.

Every function draws one figure, writes it to ``path`` (PNG) and returns the path. They
use matplotlib's object-oriented API (a :class:`~matplotlib.figure.Figure` printed by its
own Agg canvas), so they work on machines without a display and change no global state:
importing difhydro leaves the user's matplotlib backend and pyplot figures alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._files import atomic_path

__all__ = ["metric_cdf", "hydrographs", "state_vs_observed", "parameters_vs_attributes", "learned_vs_true",
           "reliability", "run_figures"]


def _subplots(nrows: int = 1, ncols: int = 1, figsize=(6, 4.5)) -> tuple[Figure, np.ndarray]:
    """A figure with its own Agg canvas and a ``[nrows, ncols]`` grid of axes (no pyplot state)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return path


def metric_cdf(values: Mapping[str, np.ndarray], path, metric: str = "NSE", lower: float = -1.0) -> Path:
    """Empirical CDF of a per-basin metric, one line per model (values below ``lower`` are
    drawn at ``lower``), the usual CAMELS comparison plot."""
    fig, axes = _subplots(figsize=(6, 4.5))
    ax = axes[0, 0]
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
    fig, axes = _subplots(n, 1, figsize=(11, 2.6 * n))
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
    fig, axes = _subplots(inferred.shape[0], 1, figsize=(11, 2.6 * inferred.shape[0]))
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
    fig, axes = _subplots(len(pn), len(an), figsize=(2.2 * len(an), 1.9 * len(pn)))
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
    fig, axes = _subplots(1, len(names), figsize=(2.6 * len(names), 2.8))
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


def reliability(pit: Mapping[str, np.ndarray], path, n_bins: int = 10) -> Path:
    """Reliability of probabilistic forecasts, one colour per model: left, the histogram of
    the PIT values of every scored basin-day (density; a calibrated forecast is flat at 1,
    a U shape is too narrow, a dome too wide); right, the fraction of basin-days inside the
    central interval of each nominal level, from the PIT (``|PIT − ½| <= level / 2``),
    against the diagonal.

    Args:
        pit: label -> PIT values ``[basin, time]`` (NaN: not scored).
    """
    fig, axes = _subplots(1, 2, figsize=(10, 4.2))
    hist, cover = axes[0, 0], axes[0, 1]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    levels = np.linspace(0.05, 0.95, 19)
    width = 1.0 / n_bins / max(len(pit), 1)
    for i, (label, values) in enumerate(pit.items()):
        v = np.asarray(values, float)
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        density = np.histogram(v, bins=edges)[0] / v.size * n_bins
        hist.bar(edges[:-1] + i * width, density, width=width, align="edge", label=label)
        inside = [(np.abs(v - 0.5) <= level / 2).mean() for level in levels]
        cover.plot(levels, inside, marker="o", ms=3, label=label)
    hist.axhline(1.0, color="k", lw=1, ls="--")
    hist.set_xlim(0, 1)
    hist.set_xlabel("PIT")
    hist.set_ylabel("density")
    hist.legend(fontsize=8)
    cover.plot([0, 1], [0, 1], color="k", lw=1, ls="--")
    cover.set_xlim(0, 1)
    cover.set_ylim(0, 1)
    cover.set_xlabel("nominal coverage of the central interval")
    cover.set_ylabel("observed coverage")
    cover.grid(alpha=0.3)
    cover.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def run_figures(run_dir, table, simulated, observed, dates, basins, params, series, data) -> dict[str, str]:
    """The figures of a run: NSE CDFs per evaluation, best/median/worst hydrographs, snow
    storage against the forcing files' SWE, learned parameters against attributes (or
    against the truth on the twin). Returns title -> file name."""
    from ..physics import ExpHydro

    run_dir = Path(run_dir)
    figures = {}
    for evaluation, sub in table.groupby("evaluation"):
        # one curve per model: its first seed's basins (the rows come in the config's seed order)
        cdf = {m: g["nse"].values[(g.seed == g.seed.iloc[0]).values] for m, g in sub.groupby("model", sort=False)}
        figures[f"NSE CDF ({evaluation})"] = metric_cdf(cdf, run_dir / f"nse_cdf_{evaluation}.png").name
        ref = "hybrid" if "hybrid" in cdf else next(iter(cdf))
        ranked = sub[sub.model == ref].drop_duplicates("basin").sort_values("nse", ascending=False)
        ranked = ranked[np.isfinite(ranked["nse"])]
        if len(ranked):
            picks = [ranked.iloc[0], ranked.iloc[len(ranked) // 2], ranked.iloc[-1]]
            idx = [basins.index(p["basin"]) for p in picks]
            shown = {m: simulated[(evaluation, m)][idx] for m in ("hybrid", "lstm", "dpl_hbv", "exphydro_calibrated",
                                                                  "nh_cudalstm", "nh_arlstm") if (evaluation, m) in simulated}
            titles = [f"{label} {ref} basin {p['basin']} (NSE {p['nse']:.2f})" for label, p in zip(("best", "median", "worst"), picks)]
            figures[f"hydrographs ({evaluation})"] = hydrographs(dates, observed[idx], shown, titles,
                                                                  run_dir / f"hydrographs_{evaluation}.png").name
    ds = data.ds
    snow = series.get(("temporal", "hybrid"), {}).get("snow_storage")
    if "swe" in ds and snow is not None:  # inferred snow storage against SWE (Jiang et al. 2020, Fig. 3)
        swe = ds["swe"].sel(basin=basins, time=dates).values
        snowy = [i for i in np.argsort(-np.nanmax(swe, axis=1))[:3] if np.nanmax(swe[i]) > 1]
        if snowy:
            figures["snow storage vs SWE"] = state_vs_observed(
                dates, snow[snowy], swe[snowy], [f"basin {basins[i]}" for i in snowy], run_dir / "snow_vs_swe.png").name
    for model in ("hybrid", "dpl_exphydro"):
        for evaluation in ("kfold", "temporal"):
            got = params.get((evaluation, model))
            if not got:
                continue
            learned = {k: np.asarray(got[k]) for k in ExpHydro.param_spec if k in got}
            if data.kind == "twin":
                true = {k: ds[f"param_{k}"].sel(basin=basins).values for k in learned}
                figures[f"{model} learned vs true parameters ({evaluation})"] = learned_vs_true(
                    true, learned, run_dir / f"parameters_{model}_{evaluation}.png").name
            else:
                shown = [a for a in ("aridity", "frac_snow", "p_mean", "elev_mean", "slope_mean", "ele_mt_sav")
                         if a in data.attributes][:4]
                attrs = {a: ds[a].sel(basin=basins).values for a in shown}
                if attrs:
                    figures[f"{model} parameters vs attributes ({evaluation})"] = parameters_vs_attributes(
                        learned, attrs, run_dir / f"parameters_{model}_{evaluation}.png").name
            break
    return figures
