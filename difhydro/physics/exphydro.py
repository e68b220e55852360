"""EXP-HYDRO (Patil & Stieglitz 2014) as the physics RNN layer of Jiang et al. (2020).

Two buckets: snow storage S0 and catchment (soil) storage S1, both in mm. Equations,
parameter boxes and the 10-day reference table: docs/physics.md §1.
"""

from __future__ import annotations

from collections.abc import Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .base import Array, ParamSpec, ProcessModel, heaviside
from .integrate import substeps
from .snow import SNOW_SPEC, snow_fluxes
from .pet import hamon_pet

__all__ = ["ExpHydro"]

_SOLVERS = ("euler", "rk4", "bosh3")
_TIMINGS = ("updated", "update")
_PET_SOURCES = ("hamon", "forcing")
# order of the water fluxes integrated alongside the storages (mm d-1)
_FLUXES = (
    "snowfall",
    "rainfall",
    "snowmelt",
    "evapotranspiration",
    "baseflow",
    "surface_runoff",
)


class ExpHydro(ProcessModel):
    """EXP-HYDRO snow + catchment bucket, one day per step.

    Forcing (each ``[time, *batch]``): ``precipitation`` P (mm d-1), ``temperature`` T
    (daily mean, deg C), ``day_length`` Lday (h); PET is Hamon's (§5.1). With
    ``pet_source="forcing"`` the ``pet`` forcing (mm d-1, e.g. Oudin's, §5.6) replaces
    ``day_length`` and Hamon.

    Parameters (physical units; boxes of Jiang et al. 2020, §1.3): ``f`` baseflow decline
    rate (mm-1), ``smax`` bucket capacity Smax (mm), ``qmax`` baseflow at full bucket Qmax
    (mm d-1), ``df`` degree-day factor Df (mm d-1 degC-1), ``tmax`` melt threshold Tmax
    (deg C), ``tmin`` rain/snow threshold Tmin (deg C).

    States: ``snow_storage`` S0 and ``soil_storage`` S1 (mm), start at 0 (Jiang et al.).

    Outputs (mm d-1): ``streamflow`` Q = Qb + Qs, ``baseflow`` Qb, ``surface_runoff`` Qs,
    ``evapotranspiration`` ET, ``snowmelt`` M, ``pet``. With ``output_timing="updated"``
    (default, P-RNN parity) they are evaluated from the updated state with day-t forcing;
    with ``"update"`` they are the fluxes that moved water during the day. Either way the
    day's water budget is reported as ``rainfall``, ``snowfall`` and the ``*_flux``
    outputs (``snowmelt_flux``, ``evapotranspiration_flux``, ``baseflow_flux``,
    ``surface_runoff_flux``), so that ``Δsnow = snowfall − snowmelt_flux`` and
    ``Δsoil = rainfall + snowmelt_flux − evapotranspiration_flux − baseflow_flux −
    surface_runoff_flux`` hold exactly (up to float round-off).

    Attributes:
        pet_source: ``"hamon"`` (P-RNN, default) or ``"forcing"`` (read ``pet``).
        solver: ``"euler"`` (P-RNN, default), ``"rk4"`` (classic fixed step, forcing held
            constant over the day) or ``"bosh3"`` (adaptive Bogacki-Shampine 3(2) through
            diffrax, as HydroNODE; ``rtol``/``atol``).
        n_substeps: equal sub-steps per day for ``euler`` and ``rk4``.
        smooth: smooth steps ``H_k`` (differentiable) instead of hard thresholds.
        k: steepness of the smooth steps (per deg C or per mm); 5 in P-RNN.
        output_timing: ``"updated"`` or ``"update"`` (see above).
        storage_step_offset: evaluate the storage steps as ``H(S − offset)`` (mm). 0 keeps
            Jiang's formulation, whose ``H_5(0) = 0.5`` drains an empty bucket (the
            zero-state pitfall of §1.6); 0.5 mm avoids it.
        limit_outflow: scale the soil bucket's outflows (ET, Qb, Qs) of each (sub-)step
            down so that they never take more water than the bucket holds plus what enters
            it that step (``euler`` and ``rk4``). Without it the explicit step is unstable
            where the outflow is steep in storage (small ``f`` with large ``qmax``: the
            smooth step ``H_5(S1)`` makes ``dQb/dS1`` up to ``2.5 qmax`` per mm): the
            storage oscillates around 0 and gradients grow without bound over the years
            (1e22 after 3 years at f = 0.001, qmax = 48). With it, an emptied bucket stays
            at 0 and gradients stay finite in the whole box. It does not act in the
            reference tables of §1.6 from a filled bucket; ``limit_outflow=False`` is
            Jiang et al.'s scheme exactly (including the negative storages of the
            zero-state pitfall).
    """

    solver: str = eqx.field(static=True, default="euler")
    n_substeps: int = eqx.field(static=True, default=1)
    smooth: bool = eqx.field(static=True, default=True)
    k: float = eqx.field(static=True, default=5.0)
    output_timing: str = eqx.field(static=True, default="updated")
    storage_step_offset: float = eqx.field(static=True, default=0.0)
    limit_outflow: bool = eqx.field(static=True, default=True)
    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-3)
    pet_source: str = eqx.field(static=True, default="hamon")

    #: measured: forward + backward 3.5x (EXP-HYDRO) / 1.6x (HBV) faster checkpointed
    #: (benchmarks/speed_physics_defaults.py, docs/speed.md)
    default_checkpoint = True

    param_spec = {
        "f": ParamSpec(0.0, 0.1, "mm-1", 0.05, "decline rate of baseflow with storage deficit (f)"),
        "smax": ParamSpec(100.0, 1500.0, "mm", 750.0, "catchment bucket capacity (Smax)"),
        "qmax": ParamSpec(10.0, 50.0, "mm d-1", 25.0, "baseflow at full bucket (Qmax)"),
        **SNOW_SPEC,
    }
    state_names = ("snow_storage", "soil_storage")
    output_names = (
        "streamflow", "baseflow", "surface_runoff", "evapotranspiration", "snowmelt", "pet", "rainfall", "snowfall",
        "snowmelt_flux", "evapotranspiration_flux", "baseflow_flux", "surface_runoff_flux",
    )

    @property
    def forcing_names(self) -> dict[str, str]:
        if self.pet_source == "forcing":
            return {"precipitation": "mm d-1", "temperature": "degC", "pet": "mm d-1"}
        return {"precipitation": "mm d-1", "temperature": "degC", "day_length": "h"}

    def __check_init__(self):
        if self.pet_source not in _PET_SOURCES:
            raise ValueError(f"ExpHydro pet_source must be one of {_PET_SOURCES}, got {self.pet_source!r}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"ExpHydro solver must be one of {_SOLVERS}, got {self.solver!r}")
        if self.output_timing not in _TIMINGS:
            raise ValueError(
                f"ExpHydro output_timing must be one of {_TIMINGS}, got {self.output_timing!r}"
            )
        if int(self.n_substeps) < 1:
            raise ValueError(f"ExpHydro n_substeps must be >= 1, got {self.n_substeps}")

    # -- physics --------------------------------------------------------------------------

    def fluxes(self, snow, soil, forcing: Mapping[str, Array], params: Mapping[str, Array]):
        """Instantaneous fluxes (mm d-1) at storages ``snow`` S0 and ``soil`` S1 (§1.2).

        The complementary steps are written ``1 − H(x)`` (rain = P − snowfall, unsaturated
        = 1 − full), so hard thresholds conserve water also at equality (T = Tmin, S1 = Smax).
        """
        H = lambda x: heaviside(x, self.smooth, self.k)  # noqa: E731
        pet = self.pet(forcing)
        smax = params["smax"]
        off = self.storage_step_offset
        snow_rates = snow_fluxes(snow, forcing["precipitation"], forcing["temperature"], params["df"], params["tmax"],
                                 params["tmin"], smooth=self.smooth, k=self.k, storage_offset=off)
        wet = H(soil - off)
        full = H(soil - smax)
        # smooth: H(-x) as in P-RNN (equal to 1 - H(x)); hard: the complement, so that at
        # S1 = Smax exactly one branch is on
        unsaturated = H(smax - soil) if self.smooth else 1.0 - full
        et = wet * (full * pet + unsaturated * pet * soil / smax)
        # clamp the exponent: exp(+large) * H(~0) would give 0 * inf = NaN
        deficit = jnp.maximum(smax - soil, 0.0)
        qmax = params["qmax"]
        baseflow = wet * (full * qmax + unsaturated * qmax * jnp.exp(-params["f"] * deficit))
        surface_runoff = wet * full * (soil - smax)
        return {
            **snow_rates,
            "evapotranspiration": et,
            "baseflow": baseflow,
            "surface_runoff": surface_runoff,
            "pet": pet,
        }

    def pet(self, forcing: Mapping[str, Array]) -> Array:
        """Potential evapotranspiration (mm d-1): Hamon's from temperature and day length
        (``pet="hamon"``, P-RNN) or the ``pet`` forcing (``pet="forcing"``, e.g. Oudin's)."""
        if self.pet_source == "forcing":
            return forcing["pet"]
        return hamon_pet(forcing["temperature"], forcing["day_length"])

    def _rates(self, y, forcing, params):
        """Time derivative of (S0, S1, cumulative fluxes) — the augmented system."""
        fl = self.fluxes(y[0], y[1], forcing, params)
        d_snow = fl["snowfall"] - fl["snowmelt"]
        d_soil = (
            fl["rainfall"] + fl["snowmelt"] - fl["evapotranspiration"] - fl["baseflow"]
            - fl["surface_runoff"]
        )
        return (d_snow, d_soil) + tuple(fl[k] for k in _FLUXES)

    def _substep(self, storages, forcing, params, h):
        """One fixed step of length ``h`` (d): new ``(S0, S1)`` and the water each flux
        moved (mm), for :func:`~difhydro.physics.integrate.substeps`."""
        add = lambda a, b, c: tuple(ai + c * bi for ai, bi in zip(a, b))  # noqa: E731
        if self.solver == "euler":
            # P-RNN clips the storage increments; fluxes are then exactly the increments
            incr = self._rates(storages, forcing, params)
            incr = tuple(jnp.clip(k, -1e5, 1e5) for k in incr[:2]) + incr[2:]
        else:
            k1 = self._rates(storages, forcing, params)
            k2 = self._rates(add(storages, k1, h / 2), forcing, params)
            k3 = self._rates(add(storages, k2, h / 2), forcing, params)
            k4 = self._rates(add(storages, k3, h), forcing, params)
            incr = tuple((a + 2 * b + 2 * c + d) / 6 for a, b, c, d in zip(k1, k2, k3, k4))
        if self.limit_outflow:
            incr = self._limit(storages[1], incr, h)
        return add(storages, incr[:2], h), tuple(h * r for r in incr[2:])

    @staticmethod
    def _limit(soil, incr, h):
        """Scale the soil outflows of one step so the bucket cannot go below 0 (mass-conserving)."""
        rates = dict(zip(("d_snow", "d_soil") + _FLUXES, incr))
        inflow = rates["rainfall"] + rates["snowmelt"]
        demand = rates["evapotranspiration"] + rates["baseflow"] + rates["surface_runoff"]
        available = jnp.maximum(soil / h + inflow, 0.0)
        # the 1e-6 mm d-1 floor keeps d(available/demand) finite when the demand is a
        # denormal (an empty bucket's spurious baseflow is ~1e-20 mm d-1)
        limited = demand > available
        scale = jnp.where(limited, jnp.minimum(available / jnp.maximum(demand, 1e-6), 1.0), 1.0)
        for k in ("evapotranspiration", "baseflow", "surface_runoff"):
            rates[k] = scale * rates[k]
        rates["d_soil"] = inflow - scale * demand
        return tuple(rates.values())

    def _integrate_day(self, storages, forcing, params):
        """``(S0, S1)`` at the end of the day and the water each flux of :data:`_FLUXES`
        moved during it (mm)."""
        if self.solver == "bosh3":
            # the fluxes ride along as extra components of the ODE (their integrals)
            zeros = tuple(jnp.zeros_like(storages[1]) for _ in _FLUXES)
            term = diffrax.ODETerm(lambda t, y, args: self._rates(y, *args))
            sol = diffrax.diffeqsolve(
                term,
                diffrax.Bosh3(),
                t0=0.0,
                t1=1.0,
                dt0=0.25,
                y0=tuple(storages) + zeros,
                args=(forcing, params),
                stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
                saveat=diffrax.SaveAt(t1=True),
                max_steps=4096,
            )
            y = jax.tree.map(lambda x: x[0], sol.ys)
            return y[:2], y[2:]
        n = int(self.n_substeps)
        return substeps(lambda s: self._substep(s, forcing, params, 1.0 / n), tuple(storages), n)

    # -- contract -------------------------------------------------------------------------

    def initial_state(self, params):
        zeros = jnp.zeros_like(params["smax"])
        return {"snow_storage": zeros, "soil_storage": zeros}

    def step(self, state, forcing, params):
        (new_snow, new_soil), amounts = self._integrate_day(
            (state["snow_storage"], state["soil_storage"]), forcing, params
        )
        moved = dict(zip(_FLUXES, amounts))
        if self.output_timing == "updated":
            shown = self.fluxes(new_snow, new_soil, forcing, params)
        else:
            shown = {**moved, "pet": self.pet(forcing)}
        outputs = {
            "streamflow": shown["baseflow"] + shown["surface_runoff"],
            "baseflow": shown["baseflow"],
            "surface_runoff": shown["surface_runoff"],
            "evapotranspiration": shown["evapotranspiration"],
            "snowmelt": shown["snowmelt"],
            "pet": shown["pet"],
            "rainfall": moved["rainfall"],
            "snowfall": moved["snowfall"],
            "snowmelt_flux": moved["snowmelt"],
            "evapotranspiration_flux": moved["evapotranspiration"],
            "baseflow_flux": moved["baseflow"],
            "surface_runoff_flux": moved["surface_runoff"],
        }
        return {"snow_storage": new_snow, "soil_storage": new_soil}, outputs
