"""Differentiable parameter learning with HBV (δHBV, Feng et al. 2022) on CAMELS basins.

An LSTM reads forcing and catchment attributes and emits HBV parameters for every basin —
static ones from its last time step, BETA and BETAET as time series — and a gamma unit
hydrograph routes the flow. The first year of every window spins the buckets up without
gradients, as in δHBV. Loss: δHBV's RMSE + log-flow RMSE. No surrogate anywhere: the
gradient of the loss goes through 16 parallel HBV buckets back into the LSTM. The
network is dmg's ``Dense -> ReLU -> LSTM`` (:func:`difhydro.contrib.dhbv.dhbv_model`).

Run: ``python examples/dpl_hbv.py [--data-dir ../shared/data/camels_us] [--epochs 20]``
(the shared subset: 22 basins with NLDAS forcing; PET from Hamon because NLDAS has
tmax == tmin, which would zero Hargreaves' temperature range.)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from difhydro.experiment import plots
from difhydro.data import fit_normalization, load_camels_us, make_basin_data
from difhydro.contrib.dhbv import dhbv_model
from difhydro.physics import hamon_pet
from difhydro.training import TrainConfig, Trainer

ATTRIBUTES = ["p_mean", "pet_mean", "aridity", "p_seasonality", "frac_snow", "high_prec_freq", "low_prec_freq",
              "elev_mean", "slope_mean", "area_gages2", "frac_forest", "soil_depth_pelletier", "soil_porosity",
              "soil_conductivity", "max_water_content", "sand_frac", "clay_frac"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("DIFHYDRO_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data-dir", default=default if default.endswith("camels_us") else str(Path(default) / "camels_us"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--components", type=int, default=16, help="parallel HBV buckets (δHBV's nmul)")
    parser.add_argument("--out", default="results/dpl_hbv")
    args = parser.parse_args(argv)

    ds = load_camels_us(args.data_dir, forcing="nldas")
    ds["pet"] = (("basin", "time"), np.asarray(hamon_pet(ds["temperature"].values, ds["day_length"].values), np.float32))
    train_period, test_period = ("1999-10-01", "2008-09-30"), ("1993-10-01", "1999-09-30")
    inputs = ["precipitation", "temperature", "pet", "srad", "vp"]
    stats = fit_normalization(ds, inputs, ATTRIBUTES, train_period)
    forcing = ("precipitation", "temperature", "pet")
    train = make_basin_data(ds, stats, train_period, window=730, warmup=365, forcing=forcing)
    test = make_basin_data(ds, stats, test_period, window=366, warmup=365, forcing=forcing,
                           basins=[b for b in train.basins if np.isfinite(ds["precipitation"].sel(basin=b, time=slice(*test_period))).all()])

    model = dhbv_model(hidden_size=64, components=args.components)
    cfg = TrainConfig(epochs=args.epochs, steps_per_epoch=30, batch_size=32, learning_rate=3e-3, schedule="cosine")
    trainer = Trainer(model, train, cfg, loss="dhbv")
    params = trainer.fit()["params"]

    scores = trainer.evaluate(params, test)
    print(f"test period {test_period}: median NSE {np.nanmedian(scores['nse']):.3f}, median KGE {np.nanmedian(scores['kge']):.3f} "
          f"over {len(test.basins)} basins")
    for b, n in zip(test.basins, scores["nse"]):
        print(f"  {b}: NSE {n:.3f}")
    out = Path(args.out)
    plots.metric_cdf({"δHBV (LSTM -> HBV)": scores["nse"]}, out / "nse_cdf.png")
    pred, full = trainer.predict(params, test)
    best = int(np.nanargmax(scores["nse"]))
    obs = full.observations()
    dates = ds["time"].sel(time=slice(*test_period)).values
    plots.hydrographs(dates, obs[best:best + 1], {"δHBV": pred["streamflow"][best:best + 1]},
                      [f"{test.basins[best]} (NSE {scores['nse'][best]:.2f})"], out / "hydrograph.png")
    print(f"figures written to {out}; daily BETA of the best basin ranges "
          f"{pred['params']['beta'][best].min():.2f}..{pred['params']['beta'][best].max():.2f}" if "params" in pred else "")
    return scores


if __name__ == "__main__":
    main()
