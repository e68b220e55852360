"""Does Richards1D stay in its box? The 96-case grid of issue 21, with the defaults.

Twelve Carsel & Parrish (1988) textures in a 1-m profile of 5-cm cells, dry (h = -1000 cm)
and wet (h = -30 cm) starts, 3-day storms of 2, 5, 10 and 30 cm/d followed by 7 dry days
with 0.5 cm/d potential transpiration; float32, all 96 profiles in one batch. A case
passes when every day converged, theta stays in [theta_r, theta_s] (within 1e-5, the
float32 round-off of a flux update), 0 <= infiltration <= rain and the daily balance
closes within 0.1 % of the day's rain or 1e-3 cm. Prints one line per failing case and
the totals; exits non-zero if any case fails.

Run: ``python benchmarks/richards_box_grid.py [--old PATH]`` (``--old`` loads another
copy of the module, e.g. the solver before the time-step control, for comparison).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from difhydro.physics.soil_hydraulics import CARSEL_PARRISH

STARTS = {"dry": -1000.0, "wet": -30.0}
STORMS = (2.0, 5.0, 10.0, 30.0)
THICKNESS = (5.0,) * 20
N_STORM, N_DRY, TP = 3, 7, 0.5
THETA_SLACK = 1e-5


def cases():
    return [(t, s, r) for t in CARSEL_PARRISH for s in STARTS for r in STORMS]


def run(model_cls, **options):
    """Outputs (numpy float64, ``[time, case]``; states ``[time, case, layer]``), the
    initial storage and the parameters of the grid."""
    from difhydro.physics import simulate

    rows = cases()
    model = model_cls(thickness=THICKNESS, **options)
    params = {k: jnp.asarray([[CARSEL_PARRISH[t][j]] for t, _, _ in rows], jnp.float32)
              for j, k in enumerate(("theta_r", "theta_s", "alpha", "n", "k_s"))}
    n = len(THICKNESS)
    soil = model.soil({k: jnp.broadcast_to(v, (len(rows), n)) for k, v in params.items()})
    h0 = jnp.asarray([[STARTS[s]] * n for _, s, _ in rows], jnp.float32)
    state0 = {"pressure_head": h0, "water_content": soil.water_content(h0)}
    storm = np.array([r for _, _, r in rows])
    rain = np.concatenate([np.tile(storm, (N_STORM, 1)), np.zeros((N_DRY, len(rows)))])
    tp = np.concatenate([np.zeros((N_STORM, len(rows))), np.full((N_DRY, len(rows)), TP)])
    forcing = {"precipitation": jnp.asarray(rain, jnp.float32), "potential_transpiration": jnp.asarray(tp, jnp.float32)}
    fn = jax.jit(lambda p, s, f: simulate(model, p, f, state0=s, check=False)[1])
    jax.block_until_ready(fn(params, state0, forcing))
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(params, state0, forcing))
    seconds = time.perf_counter() - t0
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    s0 = (np.asarray(state0["water_content"], np.float64) * np.asarray(THICKNESS)).sum(-1)
    return out, s0, {k: np.asarray(v, np.float64)[:, 0] for k, v in params.items()}, rain, seconds


def check(out, s0, params, rain):
    """Per case: (ok, message)."""
    theta = out["water_content"]
    lo, hi = params["theta_r"][None, :, None], params["theta_s"][None, :, None]
    storage = np.concatenate([s0[None], out["soil_water"]])
    balance = np.diff(storage, axis=0) - (out["infiltration"] - out["drainage"] - out["root_water_uptake"])
    allowed = np.maximum(1e-3 * rain, 1e-3)
    results = []
    for c, (tex, start, storm) in enumerate(cases()):
        problems = []
        if not np.isfinite(theta[:, c]).all():
            problems.append("non-finite theta")
        below = (lo[:, c] - THETA_SLACK - theta[:, c]).max()
        above = (theta[:, c] - hi[:, c] - THETA_SLACK).max()
        if below > 0 or above > 0:
            problems.append(f"theta in [{theta[:, c].min():.4g}, {theta[:, c].max():.4g}] "
                            f"vs [{params['theta_r'][c]}, {params['theta_s'][c]}]")
        inf = out["infiltration"][:, c]
        if (inf < -1e-6).any() or (inf > rain[:, c] * (1 + 1e-6) + 1e-6).any():
            problems.append(f"infiltration {inf.min():.4g}..{inf.max():.4g} outside [0, rain]")
        if (np.abs(balance[:, c]) > allowed[:, c]).any():
            problems.append(f"balance error {np.abs(balance[:, c]).max():.3g} cm")
        bad_days = int((out["converged"][:, c] < 1).sum())
        if bad_days:
            problems.append(f"{bad_days} days not converged")
        results.append((not problems, f"{tex:16s} {start:3s} {storm:4.0f} cm/d: " + ("; ".join(problems) or "ok")))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", help="path of another richards module to compare (file or package directory, e.g. before the change)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a solver option, e.g. max_halvings=8 (Python literal)")
    args = parser.parse_args(argv)
    import ast

    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.option)}
    if args.old:
        from _timing import load_richards

        model_cls = load_richards(args.old)
    else:
        from difhydro.physics import Richards1D as model_cls
    out, s0, params, rain, seconds = run(model_cls, **options)
    results = check(out, s0, params, rain)
    for ok, line in results:
        if not ok:
            print(line)
    n_ok = sum(ok for ok, _ in results)
    extra = ""
    if "substeps" in out:
        extra = (f"; accepted sub-steps per day {out['substeps'].min():.0f}..{out['substeps'].max():.0f}, "
                 f"smallest {out['smallest_substep'].min() * 86400:.0f} s")
    print(f"{n_ok} of {len(results)} cases in their box ({seconds:.2f} s for the batch of 96 x 10 days{extra})")
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
