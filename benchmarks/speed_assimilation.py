"""Speed of rolling variational state updating against an open-loop run (issue 22).

Run ``python benchmarks/speed_assimilation.py [--basins 32] [--days 365] [--window 10]``.
It prints, for EXP-HYDRO on synthetic forcing and a synthetic twin's observed flow, the
basin-days per second of

1. the open-loop run over the period (``forecast.open_loop``: one ``run_physics``), and
2. :func:`difhydro.forecast.incremental_forecast` (the cycling incremental update: one
   ``lax.scan`` over days, one Gauss-Newton step per day on the tangent-linear model, no
   window re-simulation; what ``--assimilate`` runs), and
3. :func:`difhydro.forecast.rolling_forecast` (the window re-simulated for every day) with Gauss-Newton (the default, 4 iterations, and 2), Adam (20
   steps) and L-BFGS (5 iterations), the open-loop background solved in batches of days,
   and Gauss-Newton with the cycling ``lax.scan``,

side by side with the ratio to the open loop (the issue's target: < 10x). ``--quick`` times
only the open loop, the incremental update and one re-simulating variant. Times are the
best of three runs after a compiling one, on whatever load the machine has; the compile
time of each variant is printed too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, processor  # noqa: E402

from difhydro.forecast.assimilation import Assimilation, open_loop, rolling_forecast  # noqa: E402
from difhydro.forecast.incremental import incremental_forecast  # noqa: E402
from difhydro.hybrid import run_physics  # noqa: E402
from difhydro.physics import ExpHydro, day_length  # noqa: E402


def synthetic(n_basins: int, n_days: int, seed: int = 0):
    """Forcing ``[basin, time]`` (P mm d-1, T deg C, day length h) and parameters ``[basin]``."""
    rng = np.random.default_rng(seed)
    shape = (n_basins, n_days)
    precip = np.where(rng.random(shape) < 0.4, rng.gamma(0.8, 8.0, shape), 0.0)
    doy = np.arange(n_days) % 365 + 1
    temp = 8.0 + 14.0 * -np.cos(2 * np.pi * (doy - 15) / 365.0) + rng.normal(0.0, 3.0, shape)
    lday = np.broadcast_to(np.asarray(day_length(45.0, doy)), shape)
    forcing = {"precipitation": precip, "temperature": temp, "day_length": lday}
    forcing = {k: jnp.asarray(v, jnp.float32) for k, v in forcing.items()}
    params = {"f": rng.uniform(0.01, 0.03, n_basins), "smax": rng.uniform(300, 900, n_basins),
              "qmax": rng.uniform(15, 30, n_basins), "df": np.full(n_basins, 2.5), "tmax": np.full(n_basins, 1.0),
              "tmin": np.full(n_basins, -1.0)}
    return forcing, {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--basins", type=int, default=32)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="open loop, incremental and Gauss-Newton x2 only")
    args = ap.parse_args(argv)
    model = ExpHydro()
    warm = 365
    forcing, params = synthetic(args.basins, warm + args.days)
    _, truth = run_physics(model, params, {k: v[:, :warm] for k, v in forcing.items()}, return_state=True)
    period = {k: v[:, warm:] for k, v in forcing.items()}
    observed = run_physics(model, params, period, truth)["streamflow"]
    background = {**truth, "soil_storage": 0.5 * truth["soil_storage"]}
    basin_days = args.basins * args.days
    print(f"# {processor()}; EXP-HYDRO, {args.basins} basins x {args.days} days, window {args.window} days")

    run_ol = jax.jit(lambda p, f, s: open_loop(model, p, f, s)[0])
    t_ol = best_time(run_ol, params, period, background, repeat=20)  # short: the best of many under load
    print(f"{'variant':<48} {'basin-days/s':>14} {'x open loop':>12} {'compile s':>10}")
    print(f"{'open loop (one run_physics)':<48} {basin_days / t_ol:14.0f} {1.0:12.1f} {'':>10}")
    w = args.window
    for name, settings in (("incremental, soil, log flow (--assimilate)",
                            Assimilation(window=w, states=("soil_storage",), transform="log")),
                           ("incremental, snow and soil, sqrt flow", Assimilation(window=w))):
        fn = jax.jit(lambda p, f, o, s, settings=settings: incremental_forecast(model, p, f, o, s, settings)["forecast"])
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, period, observed, background))
        compile_s = time.perf_counter() - t0
        t = best_time(fn, params, period, observed, background, repeat=10)
        print(f"{name:<48} {basin_days / t:14.0f} {t / t_ol:12.1f} {compile_s:10.1f}", flush=True)
    variants = [
        ("Gauss-Newton x4, open-loop bg, 64 days/batch", Assimilation(window=w), False, 64),
        ("Gauss-Newton x4, open-loop bg, 365 days/batch", Assimilation(window=w), False, 365),
        ("Gauss-Newton x2, open-loop bg, 365 days/batch", Assimilation(window=w, n_steps=2), False, 365),
        ("Gauss-Newton x4, cycling (lax.scan over days)", Assimilation(window=w), True, 64),
        ("Adam x20, open-loop bg, 64 days/batch", Assimilation(window=w, optimizer="adam", n_steps=20), False, 64),
        ("L-BFGS x5, open-loop bg, 365 days/batch", Assimilation(window=w, optimizer="lbfgs", n_steps=5), False, 365),
    ]
    if args.quick:
        variants = [v for v in variants if v[0].startswith("Gauss-Newton x2")]
    for name, settings, cycling, batch in variants:
        fn = jax.jit(lambda p, f, o, s, settings=settings, cycling=cycling, batch=batch: rolling_forecast(
            model, p, f, o, s, settings, cycling=cycling, days_per_batch=batch)["forecast"])
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, period, observed, background))
        compile_s = time.perf_counter() - t0
        t = best_time(fn, params, period, observed, background, repeat=3)
        print(f"{name:<48} {basin_days / t:14.0f} {t / t_ol:12.1f} {compile_s:10.1f}", flush=True)


if __name__ == "__main__":
    main()
