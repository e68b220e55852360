"""Which scan settings are fastest for each process model: checkpointing and unrolling.

For every process model, forward + backward through a whole simulation (jit-compiled,
the mean squared streamflow as loss) is timed with ``simulate(..., checkpoint=False)``
and ``checkpoint=True``, and with ``unroll`` 1 and 4, across sequence lengths. The
table says which setting wins; ``ProcessModel.default_checkpoint`` of each model is set
from it (see docs/speed.md for the rule and the measured numbers).

``python benchmarks/speed_physics_defaults.py [--quick]``
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from _timing import best_time, ns_per, processor
from difhydro.physics import HBV, ExpHydro, Richards1D, VicBucket, simulate


def _forcing(model, n_days, n_basins, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, units in model.forcing_names.items():
        if name == "precipitation":
            v = np.where(rng.random((n_days, n_basins)) < 0.4, rng.gamma(0.8, 8.0, (n_days, n_basins)), 0.0)
            v = v / 10.0 if units == "cm d-1" else v
        elif name == "temperature":
            v = 8 + 14 * np.sin(np.arange(n_days) / 58.0)[:, None] + rng.normal(0, 3, (n_days, n_basins))
        elif name == "day_length":
            v = 12 + 3 * np.sin(np.arange(n_days) / 58.0)[:, None] + np.zeros((1, n_basins))
        else:  # pet, potential_transpiration
            v = np.full((n_days, n_basins), 0.3 if units == "cm d-1" else 3.0)
        out[name] = jnp.asarray(v, jnp.float32)
    return out


def time_settings(model, n_days, n_basins, settings):
    forcing = _forcing(model, n_days, n_basins)
    params = model.default_params((n_basins,))
    out = {}
    for checkpoint, unroll in settings:
        def loss(p, f, checkpoint=checkpoint, unroll=unroll):
            q = simulate(model, p, f, check=False, checkpoint=checkpoint, unroll=unroll)[1]["streamflow"
                                                                                          if "streamflow" in model.output_names else "drainage"]
            return jnp.mean(q ** 2)

        step = jax.jit(jax.value_and_grad(loss))
        out[(checkpoint, unroll)] = best_time(step, params, forcing, repeat=2)
    return out


MODELS = {
    "EXP-HYDRO": (ExpHydro(), (365, 3650), 512),
    "HBV (16 components)": (HBV(n_components=16, use_betaet=True), (365, 3650), 256),
    "VIC bucket": (VicBucket(), (365, 3650), 512),
    "Richards (10 layers, 24 sub-steps)": (Richards1D(), (30, 120), 64),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    print(f"processor: {processor()}; jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}")
    settings = [(False, 1), (True, 1), (False, 4), (True, 4)]
    print(f"\n{'model':<36} {'days':>5} {'basins':>6} " + " ".join(f"{f'ckpt={c},unroll={u}':>18}" for c, u in settings)
          + "   fastest   ns/basin-day")
    for name, (model, lengths, basins) in MODELS.items():
        basins = 32 if args.quick else basins
        for n_days in lengths[:1] if args.quick else lengths:
            times = time_settings(model, n_days, basins, settings)
            best = min(times, key=times.get)
            cells = " ".join(f"{1e3 * times[s]:>15.1f} ms" for s in settings)
            print(f"{name:<36} {n_days:>5} {basins:>6} {cells}   ckpt={best[0]},u={best[1]}   "
                  f"{ns_per(times[best], n_days * basins):.0f}", flush=True)


if __name__ == "__main__":
    main()
