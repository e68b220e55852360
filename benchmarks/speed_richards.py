"""Forward + backward speed of :class:`~difhydro.physics.richards.Richards1D`.

Setup: 30 days x 24 sub-steps x 10 layers (10 cm each), 5 Picard iterations, float32,
loam parameters per layer, random daily rain; loss = sum of drainage and storage; one
``jax.grad`` through the 30 days (each day checkpointed). The cost per unit does not
depend on the day count; 30 days keep the 512-profile case under a minute on 2 CPU cores.
Prints the median wall time of a jit-compiled forward+backward call and the time per
layer-substep-profile (ns) for 1, 64 and 512 profiles. Run: ``python benchmarks/speed_richards.py``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from difhydro.physics.base import simulate
from difhydro.physics.richards import Richards1D

N_DAYS, N_SUB, N_LAYERS = 30, 24, 10


def _case(n_profiles: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (N_DAYS, n_profiles)
    rain = (rng.random(shape) < 0.3) * rng.exponential(0.6, shape)
    forcing = {
        "precipitation": jnp.asarray(rain, jnp.float32),
        "potential_transpiration": jnp.full(shape, 0.3, jnp.float32),
    }
    model = Richards1D(thickness=(10.0,) * N_LAYERS, n_substeps=N_SUB, n_iter=5)
    params = model.default_params((n_profiles,))
    return model, params, forcing


def run(profiles=(1, 64, 512), repeats: int = 2) -> dict[int, float]:
    """Print and return ns per layer-substep (per profile) of forward+backward."""
    results = {}
    for n in profiles:
        model, params, forcing = _case(n)

        def loss(p):
            _, out = simulate(model, p, forcing, check=False)
            return out["drainage"].sum() + out["soil_water"].sum()

        grad = jax.jit(jax.value_and_grad(loss))
        jax.block_until_ready(grad(params))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(grad(params))
            times.append(time.perf_counter() - t0)
        seconds = float(np.median(times))
        ns = seconds * 1e9 / (N_DAYS * N_SUB * N_LAYERS * n)
        results[n] = ns
        print(
            f"profiles={n:4d}  forward+backward {seconds:8.3f} s  "
            f"{ns:9.1f} ns per layer-substep-profile  ({N_DAYS} d x {N_SUB} sub x {N_LAYERS} layers)"
        )
    return results


if __name__ == "__main__":
    run()
