"""Speed of ``--assimilate`` on a saved model of a run against its open loop (issue 22).

Run ``python benchmarks/speed_assimilation_run.py RUN [--model dpl_hbv] [--window 3]``.
For the model's first seed on the run's basins and test period (its spin-up included), it
times the compiled open loop (:func:`~difhydro.hybrid.run_physics` with the saved model's
parameters: static, daily and routing ones) and
:func:`~difhydro.forecast.incremental_forecast` with the settings ``--assimilate N`` uses
(window N, log flow, the default states), on the same arrays; best of five runs after a
compiling one, basin-days per second and their ratio. Data from ``$DIFHYDRO_DATA_DIR`` or
the run's config, as ``difhydro evaluate``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, processor  # noqa: E402

from difhydro import load_run  # noqa: E402
from difhydro.experiment.assimilate import CORRECTION, updated_states  # noqa: E402
from difhydro.experiment.models import _process_model, predict_unit, window_period  # noqa: E402
from difhydro.forecast import Assimilation, incremental_forecast  # noqa: E402
from difhydro.hybrid import run_physics  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--model", default="dpl_hbv")
    ap.add_argument("--window", type=int, default=3)
    args = ap.parse_args(argv)
    run = load_run(args.run)
    saved = run.models()[args.model][0]
    data, period = run._data(None, None, None, None, need_observations=True)
    result = predict_unit(saved, data.ds, data.basins, period)
    physics = _process_model(saved.build())
    settings = updated_states(physics, Assimilation(window=args.window, transform="log"))
    needed = [v for v in dict.fromkeys(saved.info["forcing"] + saved.info["inputs"]) if v in data.ds]
    window, _, _ = window_period(data.ds, period, int(saved.info["warmup"]), data.basins, needed)
    sub = data.ds.sel(basin=data.basins, time=slice(*window))
    forcing = {k: jnp.asarray(sub[k].transpose("basin", "time").values, jnp.float32) for k in physics.forcing_names}
    observed = jnp.asarray(sub["streamflow"].transpose("basin", "time").values, jnp.float32)
    if any(k.endswith(CORRECTION) for k in result["params"]):
        raise SystemExit("forcing corrections: not in this benchmark (the update applies them as the model does)")
    varying = result["param_series_with_spin_up"]
    params = {**{k: jnp.asarray(v, jnp.float32) for k, v in result["params"].items()},
              **{k: jnp.asarray(v, jnp.float32) for k, v in varying.items()}}
    first = {k: (v[:, 0] if k in varying else v) for k, v in params.items() if k in physics.param_spec}
    state0 = physics.initial_state(first)
    names = tuple(varying)
    open_loop = jax.jit(lambda p, f: run_physics(physics, p, f, state0, time_varying=names)["streamflow"])
    updated = jax.jit(lambda p, f, o: incremental_forecast(physics, p, f, o, state0, settings,
                                                           time_varying=names)["forecast"])
    t_ol = best_time(open_loop, params, forcing, repeat=5)
    t_da = best_time(updated, params, forcing, observed, repeat=5)
    days = observed.size
    print(f"# {processor()}; {args.model} of {args.run}, {observed.shape[0]} basins x {observed.shape[1]} days, "
          f"window {args.window} days, states {settings.states}")
    print(f"open loop (run_physics)        {days / t_ol:12.0f} basin-days/s")
    print(f"incremental (--assimilate {args.window})   {days / t_da:12.0f} basin-days/s   x{t_da / t_ol:.1f} open loop")


if __name__ == "__main__":
    main()
