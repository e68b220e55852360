"""One degree-day snow routine: EXP-HYDRO's snow bucket (Patil & Stieglitz 2014; docs/physics.md §1.2).

:func:`snow_fluxes` gives the rates; :class:`ExpHydro <difhydro.physics.ExpHydro>` and the
snow option of :class:`VicBucket <difhydro.physics.VicBucket>` call it, and
:class:`DegreeDaySnow` runs it alone as a process model (the snow in front of the
soil-moisture twin). HBV keeps its own snow routine with meltwater and refreezing, in the
exact step order of dHBV 1.0 (docs/physics.md §4.1).

With hard steps rainfall is precipitation minus snowfall, so the split conserves water
also exactly at the threshold temperature (``1[x > 0]`` and ``1[-x > 0]`` are both 0 there);
the smooth split is P-RNN's ``H_k(T − Tmin)·P``, equal to it up to round-off.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp

from .base import Array, ParamSpec, ProcessModel, heaviside

__all__ = ["SNOW_SPEC", "snow_fluxes", "DegreeDaySnow"]

#: parameter boxes of the snow bucket (Jiang et al. 2020)
SNOW_SPEC: Mapping[str, ParamSpec] = {
    "df": ParamSpec(0.0, 5.0, "mm d-1 degC-1", 2.5, "degree-day snowmelt factor (Df)"),
    "tmax": ParamSpec(0.0, 3.0, "degC", 1.5, "snowmelt temperature threshold (Tmax)"),
    "tmin": ParamSpec(-3.0, 0.0, "degC", -1.5, "rain/snow temperature threshold (Tmin)"),
}


def snow_fluxes(
    snow_storage: Array,
    precipitation: Array,
    temperature: Array,
    df: Array,
    tmax: Array,
    tmin: Array,
    *,
    smooth: bool = True,
    k: float = 5.0,
    storage_offset: float = 0.0,
) -> dict[str, Array]:
    """Rates of the snow bucket (mm d-1) at snow storage S0 (mm), any broadcastable shapes.

    ``snowfall = H(Tmin − T)·P``, ``rainfall = P − snowfall`` (smooth: ``H(T − Tmin)·P``),
    ``snowmelt = H(T − Tmax)·H(S0 − offset)·min(S0, Df·(T − Tmax))``, with ``H`` the smooth
    step ``H_k`` (``smooth=True``; k per deg C or per mm) or the hard step ``1[x > 0]``.
    Just below Tmax the smooth melt is slightly negative (refreezing); it conserves mass.

    Args:
        snow_storage: S0, mm.
        precipitation: P, mm d-1.
        temperature: T, daily mean, deg C.
        df, tmax, tmin: Df (mm d-1 degC-1), Tmax and Tmin (deg C).
        smooth, k: step function and its steepness.
        storage_offset: evaluate the storage step as ``H(S0 − offset)`` (mm).
    """
    snowfall = heaviside(tmin - temperature, smooth, k) * precipitation
    snowmelt = (
        heaviside(temperature - tmax, smooth, k)
        * heaviside(snow_storage - storage_offset, smooth, k)
        * jnp.minimum(snow_storage, df * (temperature - tmax))
    )
    # smooth: H(T − Tmin)·P as in P-RNN (equal to P − snowfall); hard: the complement, so
    # that at T = Tmin the precipitation falls as rain instead of vanishing
    rain = heaviside(temperature - tmin, True, k) * precipitation if smooth else precipitation - snowfall
    return {"snowfall": snowfall, "rainfall": rain, "snowmelt": snowmelt}


class DegreeDaySnow(ProcessModel):
    """The snow bucket alone, one explicit day per step.

    Forcing (``[time, *batch]``): ``precipitation`` (mm d-1), ``temperature`` (deg C).
    Parameters: ``df``, ``tmax``, ``tmin`` (:data:`SNOW_SPEC`). State: ``snow_storage`` S0
    (mm, starts at 0). Outputs (mm d-1): ``snowfall``, ``rainfall``, ``snowmelt`` and
    ``liquid_water_input`` = rainfall + snowmelt, with ``ΔS0 = snowfall − snowmelt`` and
    ``precipitation = liquid_water_input + ΔS0`` exactly.

    Attributes:
        smooth: smooth steps (differentiable) instead of hard thresholds.
        k: steepness of the smooth steps.
    """

    smooth: bool = eqx.field(static=True, default=True)
    k: float = eqx.field(static=True, default=5.0)

    param_spec = SNOW_SPEC
    forcing_names = {"precipitation": "mm d-1", "temperature": "degC"}
    state_names = ("snow_storage",)
    output_names = ("snowfall", "rainfall", "snowmelt", "liquid_water_input")

    def initial_state(self, params):
        return {"snow_storage": jnp.zeros_like(jnp.asarray(params["df"]))}

    def step(self, state, forcing, params):
        s0 = state["snow_storage"]
        f = snow_fluxes(s0, forcing["precipitation"], forcing["temperature"], params["df"], params["tmax"],
                        params["tmin"], smooth=self.smooth, k=self.k)
        new = s0 + f["snowfall"] - f["snowmelt"]
        return {"snow_storage": new}, {**f, "liquid_water_input": f["rainfall"] + f["snowmelt"]}
