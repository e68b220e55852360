"""When does each forcing product's daily precipitation fall, relative to the streamflow day?

For every basin, the Pearson correlation between the precipitation of day ``t - k`` and the
day-to-day rise of streamflow ``Q_t - Q_{t-1}`` (the rain of a day shows as a rise of flow
the same day or the next, whatever the basin's recession). The median over basins at each
lag ``k`` says how a product's day lines up with the gauge's day: a product whose peak is
at ``k = 1`` labels its rain a day before the flow responds. Also, on the basins present in
both, the correlation of Caravan's ERA5-Land precipitation at ``t - k`` with Daymet's at
``t``.

    python benchmarks/forcing_timing.py [--data-dir ../shared/data] [--out docs/forcing_timing.md]
        [--figure docs/img/forcing_timing.png]

Reads ``camels_caravan`` (ERA5-Land) and ``camels_us`` (Daymet, NLDAS, Maurer) under the
data folder, through difhydro's loaders (validation on).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from difhydro.data.camels import load_camels_us
from difhydro.data.caravan import load_caravan

REPO = Path(__file__).resolve().parents[1]
LAGS = (-1, 0, 1, 2)
PERIOD = ("1981-01-01", "2008-12-31")  # the years the Caravan subset and CAMELS-US share


def lagged_correlation(x: np.ndarray, y: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``x[t - lag]`` with ``y[t]`` over the days where both are
    finite (``x``, ``y``: ``[time]``); NaN with fewer than 30 such days."""
    n = len(x)
    if lag >= 0:
        a, b = x[: n - lag], y[lag:]
    else:
        a, b = x[-lag:], y[: n + lag]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 30:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def rise_correlations(precipitation: np.ndarray, streamflow: np.ndarray, lags=LAGS) -> np.ndarray:
    """``[basin, lag]``: correlation of precipitation at ``t - lag`` with ``Q_t - Q_{t-1}``
    (inputs ``[basin, time]``, mm d-1)."""
    rise = np.diff(streamflow, axis=1, prepend=np.nan)
    return np.array([[lagged_correlation(p, r, k) for k in lags] for p, r in zip(precipitation, rise)])


def _series(ds, name):
    return ds[name].transpose("basin", "time").values.astype(np.float64)


def timing_table(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """The median over basins of :func:`rise_correlations` per product; on the basins each
    CAMELS-US product shares with Caravan, the median of each basin's best-lag correlation
    for the product and for ERA5-Land (both against the same Caravan streamflow); and
    ERA5-Land's correlation with Daymet per lag; and each product's correlations
    ``[basin, lag]``."""
    caravan = load_caravan(data_dir / "camels_caravan", start=PERIOD[0], end=PERIOD[1], day_length=False)
    rows, curves = [], {}
    products = {"ERA5-Land (Caravan)": caravan}
    for forcing in ("daymet", "nldas", "maurer"):
        products[f"{forcing} (CAMELS-US)"] = load_camels_us(
            data_dir / "camels_us", forcing=forcing, start=PERIOD[0], end=PERIOD[1], attributes=False,
            missing_streamflow="nan")
    for name, ds in products.items():
        corr = curves[name] = rise_correlations(_series(ds, "precipitation"), _series(ds, "streamflow"))
        peak = np.asarray(LAGS)[np.nanargmax(np.nan_to_num(corr, nan=-np.inf), axis=1)]
        rows.append({"precipitation": name, "basins": len(corr),
                     **{f"k = {k}": float(np.nanmedian(corr[:, i])) for i, k in enumerate(LAGS)},
                     "basins peaking at k = 1": int((peak == 1).sum())})
    same, era_name = [], next(iter(products))
    position = {b: i for i, b in enumerate(caravan.basin.values)}
    for name, ds in list(products.items())[1:]:  # each product against ERA5-Land on the same basins
        shared = sorted(set(position) & set(ds.basin.values))
        own = rise_correlations(_series(ds.sel(basin=shared, time=caravan.time), "precipitation"),
                                _series(caravan.sel(basin=shared), "streamflow"))  # against Caravan's gauge
        era = curves[era_name][[position[b] for b in shared]]
        same.append({"product": name, "basins": len(shared),
                     "its best-lag correlation": float(np.nanmedian(np.nanmax(own, axis=1))),
                     "ERA5-Land's": float(np.nanmedian(np.nanmax(era, axis=1)))})
    daymet = products["daymet (CAMELS-US)"]
    shared = sorted(set(caravan.basin.values) & set(daymet.basin.values))
    era = _series(caravan.sel(basin=shared), "precipitation")
    day = _series(daymet.sel(basin=shared, time=caravan.time), "precipitation")
    cross = np.array([[lagged_correlation(e, d, k) for k in LAGS] for e, d in zip(era, day)])
    versus = pd.DataFrame([{"basins": len(shared),
                            **{f"ERA5-Land day t{-k:+d} vs Daymet day t": float(np.nanmedian(cross[:, i]))
                               for i, k in enumerate(LAGS)}}])
    return pd.DataFrame(rows), pd.DataFrame(same), versus, curves


def markdown(table: pd.DataFrame) -> str:
    """A pipe table, floats to three decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)]
    lines = [list(map(str, table.columns)), ["---"] * table.shape[1], *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def write_figure(curves: dict[str, np.ndarray], path: Path) -> None:
    """Median and interquartile range over basins of each product's correlations by lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, corr in curves.items():
        lo, mid, hi = np.nanpercentile(corr, [25, 50, 75], axis=0)
        (line,) = ax.plot(LAGS, mid, "o-", label=f"{name}, {len(corr)} basins")
        ax.fill_between(LAGS, lo, hi, color=line.get_color(), alpha=0.15)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xticks(LAGS)
    ax.set_xlabel("k: precipitation of day t - k")
    ax.set_ylabel("corr(P(t - k), Q(t) - Q(t - 1))")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, help="folder holding camels_caravan and camels_us "
                   "(default: $DIFHYDRO_DATA_DIR, else ../shared/data beside the checkout)",
                   default=Path(os.environ.get("DIFHYDRO_DATA_DIR", REPO.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, help="write the tables as markdown here")
    p.add_argument("--figure", type=Path, help="write the correlations by lag as a PNG here")
    args = p.parse_args(argv)
    rise, same, versus, curves = timing_table(args.data_dir)
    text = ("# When the rain falls, by forcing product\n\n`python benchmarks/forcing_timing.py --out "
            "docs/forcing_timing.md --figure docs/img/forcing_timing.png`\n\n"
            "![correlation by lag](img/forcing_timing.png)\n\n"
            f"Median over basins of corr(P(t - k), Q(t) - Q(t - 1)), {PERIOD[0]}..{PERIOD[1]}\n\n"
            + markdown(rise) + "\n\nOn the basins in both subsets, against the same streamflow: the median "
            "of each basin's largest correlation over the lags\n\n" + markdown(same)
            + "\n\nERA5-Land against Daymet, median over the shared basins\n\n"
            + markdown(versus) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.figure:
        write_figure(curves, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
