"""Forward + backward speed of :class:`~difhydro.physics.richards.Richards1D`.

Setup: 30 days x 24 sub-steps x 10 layers (10 cm each), 5 iterations (``--n-iter``), float32,
loam parameters per layer, random daily rain; loss = sum of drainage and storage; one
``jax.grad`` through the 30 days (each day checkpointed). The cost per unit does not
depend on the day count; 30 days keep the 512-profile case under a minute on 2 CPU cores.
Prints the median wall time of a jit-compiled forward and forward+backward call and the
time per layer-substep-profile (ns) for 1, 64 and 512 profiles. ``--storm`` replaces the
rain by 3-day storms of 30 cm/d on every tenth day (the days where the time-step control
halves the sub-steps); ``--old PATH`` times another copy of the module (e.g. the solver
before the time-step control) in the same run. Run: ``python benchmarks/speed_richards.py``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from difhydro.physics.base import simulate
from difhydro.physics.richards import Richards1D

N_DAYS, N_SUB, N_LAYERS = 30, 24, 10


def _case(n_profiles: int, seed: int = 0, storm: bool = False, model_cls=Richards1D, n_iter: int = 5):
    rng = np.random.default_rng(seed)
    shape = (N_DAYS, n_profiles)
    rain = (rng.random(shape) < 0.3) * rng.exponential(0.6, shape)
    if storm:
        rain[(np.arange(N_DAYS) % 10) < 3] = 30.0
    forcing = {
        "precipitation": jnp.asarray(rain, jnp.float32),
        "potential_transpiration": jnp.full(shape, 0.3, jnp.float32),
    }
    model = model_cls(thickness=(10.0,) * N_LAYERS, n_substeps=N_SUB, n_iter=n_iter)
    params = model.default_params((n_profiles,))
    return model, params, forcing


def _time(fn, params, repeats):
    jax.block_until_ready(fn(params))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(min(times)), float(max(times))


def run(profiles=(1, 64, 512), repeats: int = 2, storm: bool = False, model_cls=Richards1D,
        label: str = "", n_iter: int = 5) -> dict[int, float]:
    """Print and return ns per layer-substep (per profile) of forward+backward."""
    results = {}
    for n in profiles:
        model, params, forcing = _case(n, storm=storm, model_cls=model_cls, n_iter=n_iter)

        def loss(p):
            _, out = simulate(model, p, forcing, check=False)
            return out["drainage"].sum() + out["soil_water"].sum()

        fwd = _time(jax.jit(loss), params, repeats)
        seconds, lo, hi = _time(jax.jit(jax.value_and_grad(loss)), params, repeats)
        ns = seconds * 1e9 / (N_DAYS * N_SUB * N_LAYERS * n)
        results[n] = ns
        print(
            f"{label}profiles={n:4d}  forward {fwd[0]:8.3f} s [{fwd[1]:.3f}, {fwd[2]:.3f}]  forward+backward "
            f"{seconds:8.3f} s [{lo:.3f}, {hi:.3f}]  {ns:9.1f} ns per layer-substep-profile  "
            f"({N_DAYS} d x {N_SUB} sub x {N_LAYERS} layers, n_iter={n_iter}{', storms' if storm else ''})"
        )
    return results


def _load(path):
    from _timing import load_richards

    return load_richards(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Richards1D speed")
    parser.add_argument("--old", help="path of another richards module, timed alternately with this one")
    parser.add_argument("--storm", action="store_true", help="3-day 30 cm/d storms every 10 days")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profiles", default="1,64,512")
    parser.add_argument("--n-iter", type=int, default=5, help="Newton iterations per attempt (the solver default is 20)")
    args = parser.parse_args()
    profiles = tuple(int(p) for p in args.profiles.split(","))
    old = _load(args.old) if args.old else None
    for n in profiles:
        run((n,), args.repeats, args.storm, label="new  ", n_iter=args.n_iter)
        if old is not None:
            run((n,), args.repeats, args.storm, model_cls=old, label="old  ", n_iter=args.n_iter)
