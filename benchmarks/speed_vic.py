"""Speed of the VIC-like bucket: forward and forward+backward, ns per basin-day.

Times the jit-compiled :func:`difhydro.physics.simulate` of :class:`VicBucket` (daily
steps, default soil, float32) after a warm-up call, with ``block_until_ready``. Run:
``python benchmarks/speed_vic.py``.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_time  # noqa: E402

from difhydro.physics import VicBucket, simulate  # noqa: E402

SIZES = ((1, 3650), (64, 3650), (512, 3650))


def _forcing(n_basins: int, n_days: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    shape = (n_days, n_basins)
    season = np.sin(2 * np.pi * np.arange(n_days)[:, None] / 365.25)
    precip = np.where(rng.random(shape) < 0.4, rng.gamma(0.8, 12.0, shape), 0.0)
    pet = np.clip(2.5 + 2.0 * season + 0.5 * rng.standard_normal(shape), 0.0, None)
    return {"precipitation": jnp.asarray(precip, jnp.float32), "pet": jnp.asarray(pet, jnp.float32)}


def run(model: VicBucket | None = None) -> dict[tuple[int, int], tuple[float, float]]:
    """Print and return ``{(basins, days): (forward_ns, forward_backward_ns)}`` per basin-day."""
    model = VicBucket() if model is None else model

    def streamflow(params, forcing):
        return simulate(model, params, forcing, check=False)[1]["streamflow"]

    forward = jax.jit(streamflow)
    backward = jax.jit(jax.grad(lambda p, f: jnp.mean(streamflow(p, f) ** 2)))
    results = {}
    print(f"{'basins':>7} {'days':>6} {'forward ns/basin-day':>22} {'fwd+bwd ns/basin-day':>22}")
    for n_basins, n_days in SIZES:
        params = model.default_params((n_basins,))
        forcing = _forcing(n_basins, n_days)
        cells = n_basins * n_days
        fwd = best_time(forward, params, forcing) / cells * 1e9
        bwd = best_time(backward, params, forcing) / cells * 1e9
        results[(n_basins, n_days)] = (fwd, bwd)
        print(f"{n_basins:>7} {n_days:>6} {fwd:>22.1f} {bwd:>22.1f}")
    return results


if __name__ == "__main__":
    run()
