"""The tails of a regional run: which basins fail, and what they have in common (issue 20, item 3).

Reads the per-basin NSE of one or more runs (``metrics.csv`` of ``difhydro train`` /
``evaluate``) and three basin characteristics of the Caravan folder: the aridity index
(``aridity`` = mean PET / mean P of ERA5-Land, ``attributes_caravan_camels.csv``; ERA5-Land's PET
is too high on many CAMELS basins, Clerc-Schwarzenbach et al. 2024, so read it as a rank), the
fraction of precipitation falling as snow (``frac_snow``, same table) and the runoff ratio
(mean streamflow / mean precipitation over the days with both, computed here from the
time-series files, since the Caravan tables do not carry it). Writes:

- a markdown table per model: NSE by tercile of each characteristic (basins, median and mean
  NSE, basins below 0 and below -1), the worst basins with their characteristics, and where
  the basins below ``--threshold`` sit against all basins (median characteristic, share in
  each tercile);
- with the run's ``predictions.nc`` beside its ``metrics.csv``: the volume ratio (mean
  simulated / mean observed flow on the scored days) of the worst basins and of the tail
  against the other basins (is the failure a water-balance error?);
- for a held-out (``kfold``) evaluation: how many failing basins have an attribute outside the
  range of their model's training basins (does the network fail by extrapolating?);
- a figure of NSE against aridity per model (coloured by snow fraction, runoff ratio as size;
  NSE below -1 drawn at -1 and counted).

Several seeds of a model are averaged per basin (their count is printed); ensembles keep
their own model name.

    python benchmarks/regional_tails.py runs/regional/metrics.csv --data-dir ../shared/data/camels_caravan \\
        --table docs/regional_tails.md --figure docs/img/regional_tails.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
#: the characteristics the tails are grouped by: column -> (label, how to print it)
CHARACTERISTICS = {
    "aridity": ("aridity (PET/P, ERA5-Land)", "{:.2f}"),
    "runoff_ratio": ("runoff ratio (Q/P)", "{:.2f}"),
    "frac_snow": ("snow fraction", "{:.2f}"),
}
TERCILES = ("low", "mid", "high")


def read_metrics(paths, evaluation: str = "temporal") -> pd.DataFrame:
    """Per-basin NSE ``[model, basin, nse, seeds, fold]`` of one evaluation from ``metrics.csv``
    files (or run folders holding one): the mean over each model's seeds and files; ``fold``
    is the basin's fold (its held-out fold in ``kfold``)."""
    frames = []
    for path in paths:
        path = Path(path)
        path = path / "metrics.csv" if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"{path}: no metrics.csv")
        table = pd.read_csv(path, dtype={"basin": str})
        missing = [c for c in ("evaluation", "model", "seed", "basin", "nse") if c not in table.columns]
        if missing:
            raise SystemExit(f"{path}: columns {missing} missing; is it a difhydro metrics.csv?")
        frames.append(table[table["evaluation"] == evaluation])
    table = pd.concat(frames, ignore_index=True)
    if "fold" not in table.columns:
        table["fold"] = 0
    if table.empty:
        raise SystemExit(f"no rows of evaluation {evaluation!r} in {', '.join(map(str, paths))}")
    return (table.groupby(["model", "basin"], sort=False)
            .agg(nse=("nse", "mean"), seeds=("seed", "nunique"), fold=("fold", "first")).reset_index())


def volume_ratios(paths, evaluation: str = "temporal") -> pd.DataFrame:
    """Mean simulated over mean observed streamflow on the scored (observed) days,
    ``[model, basin, volume_ratio]``, from the ``predictions.nc`` beside each metrics file
    (the mean over files); empty without any."""
    from difhydro.experiment.outputs import open_predictions

    frames = []
    for path in paths:
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        if not (folder / "predictions.nc").is_file():
            continue
        with open_predictions(folder / "predictions.nc") as ds:
            if evaluation not in ds["evaluation"].values or "observed_streamflow" not in ds:
                continue
            obs = ds["observed_streamflow"].values
            for model in ds["model"].values:
                sim = ds["simulated_streamflow"].sel(evaluation=evaluation, model=model).values
                scored = np.isfinite(obs) & np.isfinite(sim)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.where(scored, sim, 0).sum(1) / np.where(scored, obs, 0).sum(1)
                ratio[scored.sum(1) == 0] = np.nan
                frames.append(pd.DataFrame({"model": str(model), "basin": ds["basin"].values.astype(str),
                                            "volume_ratio": ratio}))
    if not frames:
        return pd.DataFrame(columns=["model", "basin", "volume_ratio"])
    return pd.concat(frames).groupby(["model", "basin"], sort=False)["volume_ratio"].mean().reset_index()


def volume_table(nse: pd.DataFrame, volumes: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per model: median volume ratio of the basins below ``threshold`` and of the others,
    and how many tail basins over-predict the volume by more than half or under-predict it
    by more than a third."""
    joined = nse.merge(volumes, on=["model", "basin"], how="inner")
    rows = []
    for model, sub in joined.groupby("model", sort=False):
        tail, rest = sub[sub["nse"] < threshold], sub[sub["nse"] >= threshold]
        rows.append({"model": model, "tail_basins": len(tail), "tail_median": float(tail["volume_ratio"].median()),
                     "rest_median": float(rest["volume_ratio"].median()),
                     "over": int((tail["volume_ratio"] > 1.5).sum()), "under": int((tail["volume_ratio"] < 2 / 3).sum())})
    return pd.DataFrame(rows)


def runoff_ratio(streamflow: np.ndarray, precipitation: np.ndarray) -> float:
    """Mean streamflow over mean precipitation on the days both are finite (mm d-1 / mm d-1);
    NaN without such days or with no precipitation."""
    both = np.isfinite(streamflow) & np.isfinite(precipitation)
    p = float(np.mean(precipitation[both])) if both.any() else np.nan
    return float(np.mean(streamflow[both])) / p if both.any() and p > 0 else np.nan


def basin_characteristics(root, basins, source: str = "camels") -> pd.DataFrame:
    """``aridity``, ``frac_snow`` (Caravan's climate table), ``runoff_ratio`` (from the
    time-series files), ``p_mean``, ``gauge_lat``, ``gauge_lon``, ``area`` of ``basins``, indexed
    by basin id."""
    from difhydro.data.caravan import read_caravan_attributes, read_caravan_timeseries

    root = Path(root)
    attrs = read_caravan_attributes(root, source, list(basins))
    keep = [c for c in ("aridity", "frac_snow", "p_mean", "gauge_lat", "gauge_lon", "area") if c in attrs.columns]
    missing = [c for c in ("aridity", "frac_snow") if c not in attrs.columns]
    if missing:
        raise SystemExit(f"{root / 'attributes' / source}: the attribute tables lack {missing}")
    out = attrs[keep].astype(float).copy()
    ratios = {}
    for b in basins:
        path = root / "timeseries" / "csv" / source / f"{source}_{b}.csv"
        if not path.is_file():
            path = root / "timeseries" / "netcdf" / source / f"{source}_{b}.nc"
        _, values = read_caravan_timeseries(path, b)
        if "streamflow" not in values:
            raise SystemExit(f"{path}: no streamflow column (the runoff ratio needs it)")
        ratios[b] = runoff_ratio(values["streamflow"], values["total_precipitation_sum"])
    out["runoff_ratio"] = pd.Series(ratios)
    return out.loc[list(basins)]


def terciles(values: pd.Series) -> pd.Series:
    """``low`` / ``mid`` / ``high`` tercile of each value: by rank, a third of the basins each,
    except that equal values share a bin (the basins without snow are all ``low``, however many)."""
    below = values.rank(method="min").to_numpy() - 1  # basins with a smaller value
    index = np.minimum((3 * below / len(values)).astype(int), 2)
    return pd.Series(np.asarray(TERCILES)[index], index=values.index)


def _groups(nse: pd.DataFrame, chars: pd.DataFrame):
    """For each characteristic and model: (characteristic, its values, their terciles, model,
    the model's rows of the basins that have the characteristic)."""
    for column in CHARACTERISTICS:
        values = chars[column].dropna()
        bins = terciles(values)
        for model, sub in nse.groupby("model", sort=False):
            yield column, values, bins, model, sub[sub["basin"].isin(values.index)]


def tercile_table(nse: pd.DataFrame, chars: pd.DataFrame) -> pd.DataFrame:
    """Per model, characteristic and tercile: range, basins, median and mean NSE, basins
    with NSE < 0 and < -1. ``nse``: ``[model, basin, nse]``; ``chars``: indexed by basin."""
    rows = []
    for column, values, bins, model, sub in _groups(nse, chars):
        group = bins.loc[sub["basin"]].to_numpy()
        for t in TERCILES:
            scores = sub["nse"].to_numpy(float)[group == t]
            in_bin = values[bins == t]
            rows.append({"model": model, "characteristic": column, "tercile": t,
                         "range": f"{in_bin.min():.2f}..{in_bin.max():.2f}", "basins": len(scores),
                         "median_nse": float(np.nanmedian(scores)) if len(scores) else np.nan,
                         "mean_nse": float(np.nanmean(scores)) if len(scores) else np.nan,
                         "below_0": int((scores < 0).sum()), "below_minus_1": int((scores < -1).sum())})
    return pd.DataFrame(rows)


def worst_basins(nse: pd.DataFrame, chars: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` lowest-NSE basins of each model with their characteristics."""
    joined = nse.join(chars, on="basin")
    return joined.sort_values(["model", "nse"], kind="stable").groupby("model", sort=False).head(n)


def what_the_tail_shares(nse: pd.DataFrame, chars: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per model and characteristic: the basins below ``threshold`` against all scored
    basins: their count, their median characteristic against the median of all, and their
    share in each tercile beside the share of all scored basins (equal shares: the
    characteristic does not tell them apart)."""
    rows = []
    for column, values, bins, model, sub in _groups(nse, chars):
        tail = sub.loc[sub["nse"] < threshold, "basin"]
        share = bins.loc[tail].value_counts(normalize=True).reindex(list(TERCILES), fill_value=0.0)
        everyone = bins.loc[sub["basin"]].value_counts(normalize=True).reindex(list(TERCILES), fill_value=0.0)
        rows.append({"model": model, "characteristic": column, "tail_basins": len(tail),
                     "tail_median": float(values.loc[tail].median()) if len(tail) else np.nan,
                     "all_median": float(values.loc[sub["basin"]].median()),
                     **{f"share_{t}": float(share[t]) if len(tail) else np.nan for t in TERCILES},
                     **{f"all_{t}": float(everyone[t]) for t in TERCILES}})
    return pd.DataFrame(rows)


def outside_training_range(nse: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
    """For a held-out (``kfold``) evaluation: how many of a basin's attributes lie outside the
    range (min..max) of the basins its model was trained on, i.e. the model's basins of the
    other folds. ``nse``: ``[model, basin, fold, nse]``; ``attributes``: the network's static
    attributes, indexed by basin. Returns ``[model, basin, nse, outside]``; a basin that fails
    with ``outside == 0`` failed by interpolation, not by extrapolation."""
    rows = []
    for model, sub in nse.groupby("model", sort=False):
        sub = sub[sub["basin"].isin(attributes.index)]
        for fold, held_out in sub.groupby("fold", sort=False):
            seen = attributes.loc[sub.loc[sub["fold"] != fold, "basin"]]
            if seen.empty:
                raise SystemExit(f"{model}: fold {fold} has no training basins among the scored ones; "
                                 "is this a kfold evaluation?")
            x = attributes.loc[held_out["basin"]]
            outside = ((x < seen.min()) | (x > seen.max())).sum(axis=1)
            rows.append(pd.DataFrame({"model": model, "basin": held_out["basin"].to_numpy(),
                                      "nse": held_out["nse"].to_numpy(float), "outside": outside.to_numpy(int)}))
    return pd.concat(rows, ignore_index=True)


def run_attributes(paths) -> list[str]:
    """The static attributes the networks of the runs read: ``data.attributes`` of each run's
    ``config.yml`` (``auto``: :data:`difhydro.experiment.data.CARAVAN_ATTRIBUTES`); the runs
    must agree."""
    from difhydro.experiment.config import load_config
    from difhydro.experiment.data import CARAVAN_ATTRIBUTES

    found = {}
    for path in paths:
        config = (Path(path) if Path(path).is_dir() else Path(path).parent) / "config.yml"
        if not config.is_file():
            raise SystemExit(f"{config}: missing; the range check needs the run's attributes")
        attributes = load_config(config).data.attributes
        found[config] = list(CARAVAN_ATTRIBUTES) if attributes == "auto" else list(attributes)
    if len({tuple(a) for a in found.values()}) > 1:
        raise SystemExit(f"the runs read different attributes: {found}")
    return next(iter(found.values()))


def network_attributes(root, basins, attributes, source: str = "camels") -> pd.DataFrame:
    """The Caravan ``attributes`` of ``basins`` as floats, indexed by basin id."""
    from difhydro.data.caravan import read_caravan_attributes

    table = read_caravan_attributes(Path(root), source, list(basins))
    missing = [c for c in attributes if c not in table.columns]
    if missing:
        raise SystemExit(f"{Path(root) / 'attributes' / source}: the attribute tables lack {missing}")
    return table[list(attributes)].astype(float).loc[list(basins)]


def _f(value, spec="{:.3f}") -> str:
    return "NaN" if value is None or not np.isfinite(value) else spec.format(value)


def write_table(nse, chars, path: Path, *, worst: int, threshold: float, command: str,
                volumes: pd.DataFrame | None = None, ranges: pd.DataFrame | None = None) -> str:
    """The markdown report; returns its text."""
    seeds = nse.groupby("model", sort=False)["seeds"].max()
    lines = ["# The tails of the regional models", "", f"`{command}` (benchmarks/regional_tails.py).", "",
             "Per-basin NSE (mean over seeds: " + ", ".join(f"{m} {s}" for m, s in seeds.items()) + ") grouped by "
             "terciles of the aridity index (Caravan's PET/P, ERA5-Land PET: read as a rank), the runoff ratio "
             "(mean Q / mean P on the days with both) and the snow fraction (Caravan's frac_snow).", ""]
    terc = tercile_table(nse, chars)
    lines += ["## NSE by tercile", "",
              "| model | characteristic | tercile | range | basins | median NSE | mean NSE | NSE < 0 | NSE < -1 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in terc.itertuples():
        lines.append(f"| {r.model} | {r.characteristic} | {r.tercile} | {r.range} | {r.basins} | {_f(r.median_nse)} | "
                     f"{_f(r.mean_nse)} | {r.below_0} | {r.below_minus_1} |")
    shares = what_the_tail_shares(nse, chars, threshold)
    lines += ["", f"## What the basins with NSE < {threshold:g} share", "",
              "Their median characteristic against all scored basins', and their share in each tercile (in "
              "brackets: the share of all scored basins; equal shares: the characteristic does not set them "
              "apart).", "",
              "| model | characteristic | basins | their median | all basins' median | low | mid | high |",
              "|---|---|---|---|---|---|---|---|"]
    for r in shares.itertuples():
        lines.append(f"| {r.model} | {r.characteristic} | {r.tail_basins} | {_f(r.tail_median, '{:.2f}')} | "
                     f"{_f(r.all_median, '{:.2f}')} | "
                     + " | ".join(f"{_f(getattr(r, 'share_' + t), '{:.0%}')} ({getattr(r, 'all_' + t):.0%})"
                                  for t in TERCILES) + " |")
    volumes = volumes if volumes is not None and len(volumes) else None
    if volumes is not None:
        lines += ["", f"## Volume: mean simulated / mean observed flow (NSE < {threshold:g} against the others)", "",
                  "| model | tail basins | their median ratio | the others' median | tail > 1.5 | tail < 2/3 |",
                  "|---|---|---|---|---|---|"]
        for r in volume_table(nse, volumes, threshold).itertuples():
            lines.append(f"| {r.model} | {r.tail_basins} | {_f(r.tail_median, '{:.2f}')} | {_f(r.rest_median, '{:.2f}')} | "
                         f"{r.over} | {r.under} |")
    if ranges is not None:
        lines += ["", "## Held out: extrapolation or not", "",
                  "Basins with at least one of the networks' attributes outside the range of the basins their "
                  "model was trained on (the other folds), among the tail and among the others.", "",
                  f"| model | tail basins (NSE < {threshold:g}) | of them outside | NSE < -1 | of them outside | "
                  "other basins | of them outside |", "|---|---|---|---|---|---|---|"]
        for model, sub in ranges.groupby("model", sort=False):
            tail, bad, rest = sub[sub["nse"] < threshold], sub[sub["nse"] < -1], sub[sub["nse"] >= threshold]
            lines.append(f"| {model} | {len(tail)} | {int((tail['outside'] > 0).sum())} | {len(bad)} | "
                         f"{int((bad['outside'] > 0).sum())} | {len(rest)} | {int((rest['outside'] > 0).sum())} |")
    ranked = worst_basins(nse, chars, worst)
    if volumes is not None:
        ranked = ranked.merge(volumes, on=["model", "basin"], how="left")
    lines += ["", f"## The {worst} worst basins of each model", "",
              "| model | basin | NSE | aridity | runoff ratio | snow fraction | P mean (mm/d) | lat | lon | Qsim/Qobs |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ranked.itertuples():
        lines.append(f"| {r.model} | {r.basin} | {_f(r.nse, '{:.2f}')} | {_f(r.aridity, '{:.2f}')} | "
                     f"{_f(r.runoff_ratio, '{:.2f}')} | {_f(r.frac_snow, '{:.2f}')} | "
                     f"{_f(getattr(r, 'p_mean', np.nan), '{:.2f}')} | {_f(getattr(r, 'gauge_lat', np.nan), '{:.2f}')} | "
                     f"{_f(getattr(r, 'gauge_lon', np.nan), '{:.2f}')} | "
                     f"{_f(getattr(r, 'volume_ratio', np.nan), '{:.2f}')} |")
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def write_figure(nse, chars, path: Path) -> None:
    """NSE against aridity, one panel per model (NSE < -1 drawn at -1 and counted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (matplotlib.ticker below)

    models = list(dict.fromkeys(nse["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False, sharey=True)
    joined = nse.join(chars, on="basin")
    for ax, model in zip(axes[0], models):
        sub = joined[joined["model"] == model]
        shown = np.maximum(sub["nse"].to_numpy(float), -1.0)
        size = 8 + 60 * np.clip(sub["runoff_ratio"].to_numpy(float), 0, 1.2)
        points = ax.scatter(sub["aridity"], shown, c=sub["frac_snow"], s=size, cmap="viridis", vmin=0, vmax=0.6,
                            alpha=0.8, edgecolors="none")
        clipped = int((sub["nse"] < -1).sum())
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([1, 2, 5, 10, 20]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("aridity PET/P (ERA5-Land); size: runoff ratio")
        ax.set_title(f"{model}: median NSE {np.nanmedian(sub['nse']):.2f}, {clipped} below -1 (at -1)", fontsize=8)
        ax.set_ylim(-1.05, 1.0)
    axes[0, 0].set_ylabel("NSE")
    fig.colorbar(points, ax=axes[0, -1], label="snow fraction")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", nargs="+", help="metrics.csv files or run folders holding one")
    p.add_argument("--data-dir", default=str(Path(os.environ.get("DIFHYDRO_DATA_DIR", REPO.parent / "shared" / "data"))
                                          / "camels_caravan"), help="the Caravan folder of the run")
    p.add_argument("--source", default="camels", help="Caravan sub-data set")
    p.add_argument("--evaluation", default="temporal", help="temporal (gauged) or kfold (ungauged)")
    p.add_argument("--models", default=None, help="comma-separated subset of the models")
    p.add_argument("--worst", type=int, default=10, help="worst basins listed per model")
    p.add_argument("--threshold", type=float, default=0.0, help="the tail: basins with NSE below this")
    p.add_argument("--table", default="regional_tails.md")
    p.add_argument("--figure", default="regional_tails.png")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    nse = read_metrics(args.metrics, args.evaluation)
    if args.models:
        wanted = args.models.split(",")
        unknown = [m for m in wanted if m not in set(nse["model"])]
        if unknown:
            raise SystemExit(f"--models {unknown}: not in the metrics; they hold {sorted(set(nse['model']))}")
        nse = nse[nse["model"].isin(wanted)]
    chars = basin_characteristics(args.data_dir, list(dict.fromkeys(nse["basin"])), args.source)
    command = "python benchmarks/regional_tails.py " + " ".join(argv if argv is not None else sys.argv[1:])
    ranges = None
    if args.evaluation == "kfold":
        attributes = network_attributes(args.data_dir, list(chars.index), run_attributes(args.metrics), args.source)
        ranges = outside_training_range(nse, attributes)
    text = write_table(nse, chars, Path(args.table), worst=args.worst, threshold=args.threshold, command=command,
                       volumes=volume_ratios(args.metrics, args.evaluation), ranges=ranges)
    write_figure(nse, chars, Path(args.figure))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
