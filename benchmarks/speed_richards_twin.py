"""Wall time of the soil-moisture twin's Richards run (docs/soil_moisture_results.md) with
fixed sub-steps and with the time-step control.

The forcing is that of :func:`difhydro.data.richards_twin` (Caravan weather x Carsel &
Parrish soils, degree-day snow in front): ``--basins`` Caravan basins (default: the first
19, as in the twin) x ``--soils`` soils for ``--days`` days, 8 layers, 24 nominal
sub-steps, free drainage, roots to 50 cm. Each solver variant runs jit-compiled once
(compile) and is then timed on one call; printed: seconds, unconverged pixel-days, the
largest number of accepted sub-steps of a day, and the batch's total passes over all days
(the largest count per day summed: a batch runs as long as its hardest pixel).

Run: ``DIFHYDRO_DATA_DIR=... python benchmarks/speed_richards_twin.py [--variant NAME ...]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from difhydro.data.synthetic import TEXTURES, TWIN_THICKNESS_CM, degree_day_snow
from difhydro.physics import Richards1D, simulate
from difhydro.physics.pet import hamon_pet

#: solver variants: name -> Richards1D keywords (on top of the twin's layers and roots)
VARIANTS = {
    "fixed": dict(n_iter=5, flux_update=False, max_halvings=0, air_entry=0.0),  # the twin as generated
    "fixed_air_entry": dict(n_iter=5, flux_update=False, max_halvings=0),
    "control_n5": dict(n_iter=5, flux_update=False, air_entry=0.0),  # the run that did not finish in 9 min
    "control_n5_air_entry": dict(n_iter=5, flux_update=False),
    "defaults": dict(),
    "defaults_plain_vg": dict(air_entry=0.0),
}


def forcing_and_soils(root, n_basins, n_soils, days, seed=0):
    """``(forcing [days, pixel], params [pixel, 1])`` built as richards_twin builds them."""
    from difhydro.data.caravan import load_caravan

    weather = load_caravan(root, start="2000-01-01", end="2001-12-31")
    weather = weather.isel(basin=slice(0, n_basins), time=slice(0, days))
    rng = np.random.default_rng(seed)
    names = list(TEXTURES)
    n_pix = weather.sizes["basin"] * n_soils
    base = np.array([TEXTURES[names[i]] for i in rng.integers(0, len(names), n_pix)])
    jitter = np.exp(0.15 * rng.standard_normal((n_pix, 5)))
    soil = base * jitter
    soil[:, 3] = 1.0 + (base[:, 3] - 1.0) * jitter[:, 3]
    spec = Richards1D.param_spec
    keys = ("theta_r", "theta_s", "alpha", "n", "k_s")
    for j, k in enumerate(keys):
        soil[:, j] = np.clip(soil[:, j], spec[k].low * 1.01 + 1e-4, spec[k].high * 0.99)
    pix = np.repeat(np.arange(weather.sizes["basin"]), n_soils)
    p = np.nan_to_num(np.maximum(np.asarray(weather["precipitation"].transpose("time", "basin").values)[:, pix], 0.0))
    temp = np.nan_to_num(np.asarray(weather["temperature"].transpose("time", "basin").values)[:, pix])
    dl = np.asarray(weather["day_length"].transpose("time", "basin").values)[:, pix]
    water, _ = degree_day_snow(p, temp)
    pet = np.asarray(hamon_pet(temp, dl))
    forcing = {"precipitation": jnp.asarray(water / 10.0, jnp.float32),
               "potential_transpiration": jnp.asarray(0.8 * pet / 10.0, jnp.float32)}
    params = {k: jnp.asarray(soil[:, j:j + 1], jnp.float32) for j, k in enumerate(keys)}
    return forcing, params


def time_variant(name, forcing, params):
    model = Richards1D(thickness=TWIN_THICKNESS_CM, root_depth=50.0, initial_head=-100.0, **VARIANTS[name])
    fn = jax.jit(lambda f, q: simulate(model, q, f, check=False, checkpoint=False)[1])
    t0 = time.perf_counter()
    jax.block_until_ready(fn(forcing, params))
    compile_and_run = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(forcing, params))
    seconds = time.perf_counter() - t0
    sub = np.asarray(out["substeps"])
    print(f"{name:22s} {seconds:8.2f} s (first call {compile_and_run:.1f} s)  unconverged pixel-days "
          f"{int((np.asarray(out['converged']) < 1).sum())} of {sub.size}  accepted sub-steps per day "
          f"{sub.min():.0f}..{sub.max():.0f}  passes {sub.max(axis=1).sum():.0f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--basins", type=int, default=19)
    parser.add_argument("--soils", type=int, default=12)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    args = parser.parse_args(argv)
    root = Path(os.environ.get("DIFHYDRO_DATA_DIR", "/work/shared/data")) / "camels_caravan"
    forcing, params = forcing_and_soils(root, args.basins, args.soils, args.days)
    print(f"{forcing['precipitation'].shape[1]} pixels x {args.days} days", flush=True)
    for name in args.variant or list(VARIANTS):
        time_variant(name, forcing, params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
