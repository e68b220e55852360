"""Template of a process model: copy this file, rename the class, fill in the physics.

A linear reservoir with a degree-day snow bucket in front is the whole example. It shows
everything the contract of :mod:`.base` asks for and nothing more:

- static configuration only, as ``eqx.field(static=True)`` (no parameters, no state);
- ``param_spec`` (name -> :class:`~.base.ParamSpec` with box, units, default, meaning),
  ``forcing_names`` (name -> units), ``state_names``, ``output_names``;
- ``initial_state(params)`` shaped like the batch of the parameters;
- ``step(state, forcing, params) -> (new_state, outputs)``: pure, jit-able, one forcing
  interval, no Python control flow on traced values;
- every flux reported, so that storage change = inputs − outputs holds to round-off,
  also exactly at thresholds;
- sub-steps through :func:`~.integrate.substeps` (never a loop of your own).

Then: add the equations, units and boxes to ``docs/physics.md``, export the class in
``physics/__init__.py``, and add tests (a reference table, mass balance over years of
random forcing, finite-difference gradients, no NaN gradient at the box corners); see
``docs/contributing.md``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .base import ParamSpec, ProcessModel
from .integrate import substeps
from .snow import SNOW_SPEC, snow_fluxes

__all__ = ["LinearReservoir"]


class LinearReservoir(ProcessModel):
    """Snow bucket + linear reservoir: ``Q = k·S`` (mm d-1), one day per step.

    Forcing (``[time, *batch]``): ``precipitation`` (mm d-1), ``temperature`` (deg C).
    Parameters: ``k`` outflow rate (d-1) and the snow parameters ``df``, ``tmax``, ``tmin``.
    States (mm): ``snow_storage``, ``storage``. Outputs (mm d-1): ``streamflow`` and the
    snow fluxes, with ``Δsnow + Δstorage = precipitation − streamflow`` exactly.

    Attributes:
        n_substeps: explicit sub-steps per day (stable for ``k·dt <= 1``).
    """

    n_substeps: int = eqx.field(static=True, default=1)

    param_spec = {"k": ParamSpec(0.01, 1.0, "d-1", 0.1, "outflow rate of the reservoir (k)"), **SNOW_SPEC}
    forcing_names = {"precipitation": "mm d-1", "temperature": "degC"}
    state_names = ("snow_storage", "storage")
    output_names = ("streamflow", "snowfall", "rainfall", "snowmelt")

    def initial_state(self, params):
        zeros = jnp.zeros_like(jnp.asarray(params["k"]))
        return {"snow_storage": zeros, "storage": zeros}

    def step(self, state, forcing, params):
        dt = 1.0 / self.n_substeps

        def substep(storages):
            snow, store = storages
            f = snow_fluxes(snow, forcing["precipitation"], forcing["temperature"], params["df"], params["tmax"],
                            params["tmin"], smooth=True)
            # the outflow never takes more than the reservoir holds after the inflow
            inflow = dt * (f["rainfall"] + f["snowmelt"])
            outflow = jnp.minimum(dt * params["k"] * store, store + inflow)
            amounts = {k: dt * v for k, v in f.items()} | {"streamflow": outflow}
            return (snow + amounts["snowfall"] - amounts["snowmelt"], store + inflow - outflow), amounts

        (snow, store), moved = substeps(substep, (state["snow_storage"], state["storage"]), self.n_substeps)
        return {"snow_storage": snow, "storage": store}, moved
