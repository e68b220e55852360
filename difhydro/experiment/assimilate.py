"""State updating of a run's process models: one-day-ahead forecasts with observed flow.

``difhydro predict|evaluate RUN --assimilate N`` and ``Run.predict/evaluate(assimilate=N)``
call :func:`assimilated_unit` for every saved model whose streamflow is the output of a
process model (the ``*_calibrated`` entries, ``dpl_exphydro`` and ``dpl_hbv`` with its
unit-hydrograph routing, daily BETA/BETAET and forcing corrections; the states updated are
the slow stores (HBV's lower zone, EXP-HYDRO's soil) unless the settings name them;
:func:`unsupported` says why another is not updated). The model runs its spin-up open loop
up to ``N`` days before the period (with the parameters the saved model gave that run:
the static ones, the daily series of the time-varying ones, its forcing corrections), then
:func:`~difhydro.forecast.incremental_forecast` updates its states every day over the
last ``N`` observed days and forecasts the next day, through the whole period; with
routing, the runoff the spin-up generated is routed into the first days. Observed-flow
gaps are masked in the misfit (a window without any observation makes no update) and
counted in the note returned; nothing is filled. The forecasts are labelled ``<model>_assimilated``.
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
from ..hybrid.models import CORRECTION_SUFFIX as CORRECTION, apply_forcing_correction
from ..hybrid.params import ROUTING_PARAMETERS
from .data import with_pet
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
    known = {*physics.param_spec, *ROUTING_PARAMETERS}
    other = [k for k in result["params"] if k not in known and not k.endswith(CORRECTION)]
    other += [k for k in result["series"] if k not in physics.state_names and k not in physics.param_spec]
    if other:
        return f"parameters the state update does not know ({', '.join(other)})"
    return None


def assimilated_unit(saved: SavedModel, ds: xr.Dataset, basins: Sequence[str], period: tuple[str, str],
                     result: Mapping[str, Any], settings: Assimilation) -> dict[str, Any]:
    """One-day-ahead forecasts of ``saved`` over ``period`` with daily state updates.

    Args:
        saved: a model :func:`unsupported` accepts; ``result``: its open-loop
            :func:`~.models.predict_unit` over the same basins and period (its parameters:
            static ones, routing ones and forcing corrections ``[basin, ...]``, and the
            time-varying ones over the spin-up and the period).
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
    info = saved.info
    ds = with_pet(ds, info.get("pet"))
    # the window of predict_unit (the same variables decide where its spin-up runs)
    needed = [v for v in dict.fromkeys(info["forcing"] + info["inputs"]) if v in ds]
    window, spin, unpredicted = window_period(ds, period, int(info["warmup"]), basins, needed)
    sub = ds.sel(basin=list(basins), time=slice(*window))
    times = pd.DatetimeIndex(sub.time.values)
    forcing = {k: jnp.asarray(sub[k].transpose("basin", "time").values, jnp.float32) for k in physics.forcing_names}
    # dPL's forcing corrections, as the model applied them
    forcing = apply_forcing_correction(forcing, {k: jnp.asarray(v, jnp.float32) for k, v in result["params"].items()
                                                 if k.endswith(CORRECTION)})
    observed = sub["streamflow"].transpose("basin", "time").values.astype(np.float32)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in result["params"].items() if not k.endswith(CORRECTION)}
    varying = {k: jnp.asarray(v, jnp.float32) for k, v in result.get("param_series_with_spin_up", {}).items()}
    wrong = {k: v.shape for k, v in varying.items() if v.shape[1] != len(times)}
    if wrong:
        raise ValueError(f"time-varying parameters {wrong} do not span the {len(times)} days of "
                         f"{window[0]}:{window[1]}")
    # open loop up to the first window (the updates start N days before the period, or at once)
    start = max(spin - unpredicted - n, 0)
    history = None
    if start:
        before = {**params, **{k: v[:, :start] for k, v in varying.items()}}
        spun, state0 = run_physics(physics, before, {k: v[:, :start] for k, v in forcing.items()},
                                   time_varying=tuple(varying), return_state=True)
        history = spun.get("runoff")  # generated runoff, routed into the first days (with routing)
    else:
        state0 = physics.initial_state({**{k: v for k, v in params.items() if k in physics.param_spec},
                                        **{k: v[:, 0] for k, v in varying.items()}})
    run = jax.jit(lambda p, f, o, s, h: incremental_forecast(physics, p, f, o, s, settings, time_varying=tuple(varying),
                                                             runoff_history=h))
    after = {**params, **{k: v[:, start:] for k, v in varying.items()}}
    out = run(after, {k: v[:, start:] for k, v in forcing.items()}, jnp.asarray(observed[:, start:]), state0, history)
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
