"""Speed of difhydro's process models: nanoseconds per basin-day, and ratios to peers.

Run: ``python benchmarks/speed.py [--quick] [--only exphydro,hbv,vic,richards]``.
Each section prints forward and forward+backward (``jax.grad`` of a loss through the whole
simulation) cost per basin-day, compiled with ``jit`` and timed after a warm-up. Times
are wall-clock on whatever machine runs it (this project's CI machine: 2 CPU cores).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_time, ns_per, processor  # noqa: E402

from difhydro.physics import ExpHydro, day_length, simulate  # noqa: E402


def _forcing(n_days, n_basins, seed=0):
    rng = np.random.default_rng(seed)
    wet = rng.random((n_days, n_basins)) < 0.4
    p = np.where(wet, rng.gamma(0.8, 8.0, (n_days, n_basins)), 0.0).astype(np.float32)
    doy = np.arange(n_days) % 365 + 1
    t = (8 - 14 * np.cos(2 * np.pi * (doy - 15) / 365))[:, None] + rng.normal(0, 3, (n_days, n_basins))
    lday = np.repeat(np.asarray(day_length(45.0, doy))[:, None], n_basins, 1)
    return {"precipitation": p, "temperature": t.astype(np.float32), "day_length": lday.astype(np.float32)}


def _exphydro_numpy(params, forcing):
    """Plain numpy loop over days (vectorised over basins) of the P-RNN EXP-HYDRO step."""
    H = lambda x: 0.5 * (1 + np.tanh(5 * x))  # noqa: E731
    f, smax, qmax, df, tmax, tmin = (params[k] for k in ("f", "smax", "qmax", "df", "tmax", "tmin"))
    n_days, n_basins = forcing["precipitation"].shape
    s0 = np.zeros(n_basins, np.float32)
    s1 = np.zeros(n_basins, np.float32)
    q = np.empty((n_days, n_basins), np.float32)

    def fluxes(s0, s1, p, t, lday):
        pet = 29.8 * lday * 0.611 * np.exp(17.3 * t / (t + 237.3)) / (t + 273.2)
        ps, pr = H(tmin - t) * p, H(t - tmin) * p
        m = H(t - tmax) * H(s0) * np.minimum(s0, df * (t - tmax))
        full, unsat = H(s1 - smax), H(smax - s1)
        et = H(s1) * (full * pet + unsat * pet * s1 / smax)
        qb = H(s1) * (full * qmax + unsat * qmax * np.exp(-f * np.maximum(smax - s1, 0)))
        qs = H(s1) * full * (s1 - smax)
        return ps, pr, m, et, qb, qs

    for i in range(n_days):
        p, t, lday = (forcing[k][i] for k in ("precipitation", "temperature", "day_length"))
        ps, pr, m, et, qb, qs = fluxes(s0, s1, p, t, lday)
        s0 = s0 + np.clip(ps - m, -1e5, 1e5)
        s1 = s1 + np.clip(pr + m - et - qb - qs, -1e5, 1e5)
        *_, qb, qs = fluxes(s0, s1, p, t, lday)
        q[i] = qb + qs
    return q


def time_model(model, params, forcing, n_days, n_basins, output="streamflow"):
    """(forward, forward+backward) seconds for one simulation of ``[n_days, n_basins]``."""
    fwd = jax.jit(lambda p, f: simulate(model, p, f, check=False)[1][output])

    def loss(p, f):
        return jnp.mean(simulate(model, p, f, check=False)[1][output] ** 2)

    bwd = jax.jit(jax.value_and_grad(loss))
    return best_time(fwd, params, forcing), best_time(bwd, params, forcing)


def exphydro_section(sizes, n_days):
    print("\n== EXP-HYDRO (Euler, smooth steps) — ns per basin-day")
    print(f"{'basins':>7} {'days':>6} {'forward':>10} {'fwd+bwd':>10} {'numpy fwd':>10} {'numpy/jax fwd':>14}")
    model = ExpHydro()
    for n_basins in sizes:
        forcing = {k: jnp.asarray(v) for k, v in _forcing(n_days, n_basins).items()}
        params = model.default_params((n_basins,))
        t_fwd, t_bwd = time_model(model, params, forcing, n_days, n_basins)
        np_params = {k: np.asarray(v) for k, v in params.items()}
        np_forcing = {k: np.asarray(v) for k, v in forcing.items()}
        t0 = time.perf_counter()
        q_np = _exphydro_numpy(np_params, np_forcing)
        t_np = time.perf_counter() - t0
        q_jax = np.asarray(simulate(model, params, forcing)[1]["streamflow"])
        assert np.allclose(q_np, q_jax, rtol=1e-3, atol=1e-3), "numpy and JAX EXP-HYDRO disagree"
        count = n_days * n_basins
        print(
            f"{n_basins:>7} {n_days:>6} {ns_per(t_fwd, count):>10.1f} {ns_per(t_bwd, count):>10.1f} "
            f"{ns_per(t_np, count):>10.1f} {t_np / t_fwd:>13.1f}x"
        )


SECTIONS = {"exphydro": exphydro_section}
# the other sections live in their own modules, each with a run() that prints its table
EXTERNAL = {"vic": "speed_vic", "hbv": "speed_hbv", "richards": "speed_richards", "training": "speed_training"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="EXP-HYDRO at 1, 64 basins x 730 days; training section quick")
    parser.add_argument("--only", default="", help="comma-separated sections: " + ",".join([*SECTIONS, *EXTERNAL]))
    args = parser.parse_args(argv)
    sizes, n_days = ((1, 64), 730) if args.quick else ((1, 64, 512), 3650)
    wanted = [s for s in args.only.split(",") if s] or [*SECTIONS, *EXTERNAL]
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}; {processor()}")
    for name in wanted:
        if name in SECTIONS:
            SECTIONS[name](sizes, n_days)
        elif name in EXTERNAL:
            print(f"\n== {name} ({EXTERNAL[name]}.py)")
            module = importlib.import_module(EXTERNAL[name])
            module.run(quick=True) if (args.quick and name == "training") else module.run()
        else:
            raise SystemExit(f"unknown section {name!r}; choose from {[*SECTIONS, *EXTERNAL]}")


if __name__ == "__main__":
    main()
