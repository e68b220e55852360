"""State updating of a run's process models: one-day-ahead forecasts with observed flow.

``difhydro predict|evaluate RUN --assimilate N`` and ``Run.predict/evaluate(assimilate=N)``
call :func:`assimilated_unit` for every saved model whose streamflow is the output of a
process model with static parameters (the ``*_calibrated`` entries and ``dpl_exphydro``;
the states updated are the slow stores (HBV's lower zone, EXP-HYDRO's soil) unless the
settings name them;
:func:`unsupported` says why another is not updated). The model runs its spin-up open loop
up to ``N`` days before the period, then :func:`~difhydro.forecast.incremental_forecast`
updates its states every day over the last ``N`` observed days and forecasts the next
day, through the whole period. Observed-flow gaps are masked in the misfit (a window
without any observation makes no update) and counted in the note returned; nothing is
filled. The forecasts are labelled ``<model>_assimilated``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..forecast.assimilation import Assimilation
from ..forecast.incremental import incremental_forecast
from ..hybrid import run_physics
from .models import SavedModel, _process_model, window_period

__all__ = ["SUFFIX", "SLOW_STORES", "SNOW_STATES", "updated_states", "unsupported", "assimilated_unit"]

SUFFIX = "_assimilated"
#: updated by default where a model has them: the slow stores, which the recent flow observes
#: and which persist (measured on 30 Caravan basins, 1989-92, --assimilate 3: HBV's lower zone
#: alone 0.50 against 0.45 with both zones, 0.30 with the soil too, open loop 0.40)
SLOW_STORES = ("lower_zone", "soil_storage")
#: never updated unless named: a few days of flow say little about the snow (updated, the
#: snowpack of real basins grew to metres while the flow misfit barely changed)
SNOW_STATES = ("snow_storage", "snowpack", "meltwater")


def updated_states(physics, settings: Assimilation) -> Assimilation:
    """``settings`` with its states: the given ones, else the model's slow stores
    (:data:`SLOW_STORES`), else every state but the snow's."""
    if settings.states is not None:
        return settings
    slow = tuple(k for k in SLOW_STORES if k in physics.state_names)
    return dataclasses.replace(settings, states=slow or tuple(k for k in physics.state_names if k not in SNOW_STATES))


def unsupported(saved: SavedModel, result: Mapping[str, Any]) -> str | None:
    """Why the states of ``saved`` cannot be updated (``None`` when they can), from the
    model and its open-loop ``result`` of :func:`~.models.predict_unit`."""
    built = saved.build()
    physics = _process_model(built)
    if physics is None:
        return "a network without process-model states"
    if not (saved.calibrated or type(built).__name__ == "DifferentiableParameterLearning"):
        return f"its streamflow is not the process model's output ({type(built).__name__} adds a network head)"
    routing = [k for k in result["params"] if k not in physics.param_spec]
    if routing:
        return f"unit-hydrograph routing ({', '.join(routing)}) carries water from before each window"
    varying = [k for k in result["series"] if k not in physics.state_names]
    if varying:
        return f"time-varying parameters ({', '.join(varying)}) are not supported by the state update yet"
    return None


def assimilated_unit(saved: SavedModel, ds: xr.Dataset, basins: Sequence[str], period: tuple[str, str],
                     result: Mapping[str, Any], settings: Assimilation) -> dict[str, Any]:
    """One-day-ahead forecasts of ``saved`` over ``period`` with daily state updates.

    Args:
        saved: a model :func:`unsupported` accepts; ``result``: its open-loop
            :func:`~.models.predict_unit` over the same basins and period (its parameters).
        ds: the data with ``streamflow`` (mm d-1, NaN where missing) and the forcing.
        settings: the window and the update's settings.

    Returns:
        like :func:`~.models.predict_unit`: ``simulated`` ``[basin, time]`` (day ``t``'s
        forecast from the observations up to ``t − 1``), ``time``, the analysed states as
        ``series``, ``spin_up_in_period``, ``gaps`` (the gap counts, see :func:`gap_counts`)
        and ``open_loop`` ``[basin, time]``, the same model without updates (it must equal
        the open-loop ``result``'s ``simulated``).
    """
    physics = _process_model(saved.build())
    settings = updated_states(physics, settings)
    n = int(settings.window)
    window, spin, unpredicted = window_period(ds, period, int(saved.info["warmup"]), basins, physics.forcing_names)
    sub = ds.sel(basin=list(basins), time=slice(*window))
    times = pd.DatetimeIndex(sub.time.values)
    forcing = {k: jnp.asarray(sub[k].transpose("basin", "time").values, jnp.float32) for k in physics.forcing_names}
    observed = sub["streamflow"].transpose("basin", "time").values.astype(np.float32)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in result["params"].items()}
    # open loop up to the first window (the updates start N days before the period, or at once)
    start = max(spin - unpredicted - n, 0)
    state0 = None
    if start:
        _, state0 = run_physics(physics, params, {k: v[:, :start] for k, v in forcing.items()}, return_state=True)
    else:
        state0 = physics.initial_state(params)
    run = jax.jit(lambda p, f, o, s: incremental_forecast(physics, p, f, o, s, settings))
    out = run(params, {k: v[:, start:] for k, v in forcing.items()}, jnp.asarray(observed[:, start:]), state0)
    keep = slice(spin - unpredicted - start, None)
    simulated = np.asarray(out["forecast"], np.float32)[:, keep]
    series = {k: np.asarray(v)[:, keep] for k, v in out["analysis"].items()}
    in_window = np.asarray(out["observed_in_window"])[:, keep]
    return {"time": times[start:][keep], "simulated": simulated, "params": {}, "series": series, "final_state": {},
            "spin_up_in_period": unpredicted, "gaps": gap_counts(in_window, n),
            "open_loop": np.asarray(out["open_loop"], np.float32)[:, keep]}


def gap_counts(in_window: np.ndarray, n: int) -> dict[str, int]:
    """``[basin, time]`` observed days in each forecast's window -> the number of basin-days
    whose window missed some days, and of those without any (no update: the forecast
    continues the trajectory unchanged)."""
    return {"partial": int(((in_window < n) & (in_window > 0)).sum()), "none": int((in_window == 0).sum()),
            "basin_days": int(in_window.size)}


def gap_note(name: str, gaps: Mapping[str, int], n: int) -> str:
    """One line on the observed-flow gaps met by ``name``'s state updates."""
    return (f"{name}{SUFFIX}: {gaps['partial']} of {gaps['basin_days']} basin-days forecast from a {n}-day window "
            f"with missing observed flow (masked in the misfit), {gaps['none']} with no observation in the window "
            "(no update from the misfit: the state only relaxes toward the open loop)")
