"""HBV as in dHBV 1.0 (Feng et al. 2022; HBV-light, Seibert & Vis 2012; Beck et al. 2020).

Five storages per component (mm): snowpack, meltwater in the snowpack, soil moisture, upper
and lower groundwater zones. The step follows the exact order of the released dHBV 1.0 code
(docs/physics.md §4.1); parameter boxes are those of dHBV (§4.2). Routing (§4.3) is not
part of the step: apply :func:`hbv_streamflow` or :mod:`.routing` to the simulated series.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp

from .base import Array, ParamSpec, ProcessModel, safe_power, simulate, smooth_step
from .routing import route_streamflow

__all__ = ["HBV", "hbv_streamflow"]

# dHBV clamps soil moisture after ET at this depth (mm); the water it adds is reported.
SOIL_FLOOR = 1e-5

_HBV_SPEC = {
    "beta": ParamSpec(1.0, 6.0, "-", 3.5, "shape of the soil recharge curve (BETA)"),
    "fc": ParamSpec(50.0, 1000.0, "mm", 525.0, "field capacity of the soil box (FC)"),
    "k0": ParamSpec(0.05, 0.9, "d-1", 0.475, "upper-zone outflow above UZL, quickflow (K0)"),
    "k1": ParamSpec(0.01, 0.5, "d-1", 0.255, "upper-zone outflow, interflow (K1)"),
    "k2": ParamSpec(0.001, 0.2, "d-1", 0.1005, "lower-zone outflow, baseflow (K2)"),
    "lp": ParamSpec(0.2, 1.0, "-", 0.6, "fraction of FC above which ET = PET (LP)"),
    "perc": ParamSpec(0.0, 10.0, "mm d-1", 5.0, "maximum percolation to the lower zone (PERC)"),
    "uzl": ParamSpec(0.0, 100.0, "mm", 50.0, "upper-zone threshold for quickflow (UZL)"),
    "tt": ParamSpec(-2.5, 2.5, "degC", 0.0, "rain/snow and melt threshold temperature (TT)"),
    "cfmax": ParamSpec(0.5, 10.0, "mm degC-1 d-1", 5.25, "degree-day melt factor (CFMAX)"),
    "cfr": ParamSpec(0.0, 0.1, "-", 0.05, "refreezing coefficient (CFR)"),
    "cwh": ParamSpec(0.0, 0.2, "-", 0.1, "water holding capacity of the snowpack (CWH)"),
}
_BETAET_SPEC = {
    "betaet": ParamSpec(0.3, 5.0, "-", 2.65, "shape of the ET reduction curve (BETAET)"),
}
# HBV 1.1p (Song et al. 2024/2025; dmg/hydrodl2 ``Hbv_1_1p``: parC in [0, 1])
_CAPILLARY_SPEC = {
    "c": ParamSpec(0.0, 1.0, "d-1", 0.5, "capillary rise: share of the lower zone per day, times the soil deficit (C)"),
}
# δHBV 2.0 (Song et al. 2025, dmg/hydrodl2 ``Hbv_2``) exchanges up to RT = 20 mm d-1 with
# the outside, signed by drainage area; here one signed rate per basin, learned (the network
# sees the area). Symmetric box: an untrained sigmoid head starts at no exchange. ±3 mm d-1
# covers most of GR4J's exchange coefficient X2 (80 % interval about -5 ... 3 mm d-1,
# Perrin et al. 2003) without letting the exchange dwarf the flow of a typical basin.
_EXCHANGE_SPEC = {
    "exchange": ParamSpec(-3.0, 3.0, "mm d-1", 0.0,
                          "groundwater exchange out of the lower zone (> 0: loss from the basin, < 0: gain)"),
}


class HBV(ProcessModel):
    """HBV (dHBV 1.0 step order), one day per step, ``n_components`` parallel buckets.

    Forcing (each ``[time, *batch]``): ``precipitation`` P (mm d-1), ``temperature`` T
    (daily mean, deg C), ``pet`` PET (mm d-1; Hargreaves in dHBV).

    Parameters (physical units, dHBV boxes): ``beta`` BETA, ``fc`` FC (mm), ``k0`` K0,
    ``k1`` K1, ``k2`` K2 (d-1), ``lp`` LP, ``perc`` PERC (mm d-1), ``uzl`` UZL (mm), ``tt``
    TT (deg C), ``cfmax`` CFMAX (mm degC-1 d-1), ``cfr`` CFR, ``cwh`` CWH, and ``betaet``
    BETAET (Feng et al. 2022) when ``use_betaet``, ``c`` C (d-1) when ``capillary_rise``,
    ``exchange`` (mm d-1, signed) when ``groundwater_exchange``. Each is ``[*batch]``, or
    ``[*batch, n_components]`` when ``n_components > 1`` (dHBV's ``nmul``); a leading time
    axis makes it time-varying (dHBV's dynamic BETA / BETAET).

    States (mm, ``[*batch]`` or ``[*batch, n_components]``): ``snowpack`` SNOWPACK,
    ``meltwater`` MW (liquid water held in the snow), ``soil_moisture`` SM, ``upper_zone``
    SUZ, ``lower_zone`` SLZ. They start at 0.001 mm (dHBV); see :func:`difhydro.physics.warm_up`.

    Outputs (mm d-1, ``[*batch]``, averaged over components):

    - ``streamflow`` Q = Q0 + Q1 + Q2, before routing;
    - ``quickflow`` Q0 = K0 max(SUZ - UZL, 0) (upper zone above UZL; dHBV "srflow"),
      ``interflow`` Q1 = K1 SUZ (upper zone; "ssflow"), ``baseflow`` Q2 = K2 SLZ (lower
      zone; "gwflow");
    - ``rainfall``, ``snowfall``, ``snowmelt`` (snowpack -> meltwater), ``refreezing``
      (meltwater -> snowpack), ``meltwater_outflow`` (meltwater -> soil, "tosoil"),
      ``recharge`` (soil -> upper zone, (SM/FC)^BETA share), ``soil_excess`` (soil above FC
      -> upper zone), ``evapotranspiration`` ET, ``percolation`` (upper -> lower zone),
      ``soil_floor_gain`` (the water ``max(SM - ET, 1e-5)`` adds);
    - ``capillary_rise`` (lower zone -> soil, HBV 1.1p; 0 unless ``capillary_rise``),
      ``groundwater_exchange`` (water leaving the basin from the lower zone, negative when
      it enters; 0 unless ``groundwater_exchange``).

    Mass balance per day, exact up to round-off, with S the sum of the five states:
    ``ΔS = precipitation - evapotranspiration - streamflow + soil_floor_gain - groundwater_exchange``.

    Attributes:
        n_components: parallel HBV buckets with their own parameters, outputs averaged.
        use_betaet: add the 13th parameter BETAET: ET factor ``(SM / (LP FC))^BETAET``.
        capillary_rise: HBV 1.1p (Song et al. 2024): after ET, ``C SLZ (1 - min(SM/FC, 1))``
            moves from the lower zone to the soil (parameter ``c``, d-1).
        groundwater_exchange: δHBV 2.0: after percolation, ``min(exchange, SLZ)`` leaves the
            lower zone to outside the basin (``exchange`` < 0: water enters).
        smooth: replace thresholds by smooth versions (``False``: dHBV 1.0, hard). With
            ``smooth=True`` exactly these change, the rest stays as in dHBV:

            - rain/snow split ``1[T >= TT]`` -> ``H_k(T - TT)``, k per deg C;
            - ``max(x, 0)`` -> ``softplus_k(x) = log(1 + exp(k x)) / k`` in the five
              threshold fluxes: snowmelt ``CFMAX (T - TT)`` and refreezing
              ``CFR CFMAX (TT - T)`` (x in deg C, so the factor multiplies the softplus),
              meltwater outflow ``MW - CWH SNOWPACK``, soil excess ``SM - FC`` and
              quickflow ``SUZ - UZL`` (x in mm).

            Kept hard: the supply limits ``min(flux, storage)`` (snowmelt <= SNOWPACK,
            refreezing <= MW, and in smooth mode also meltwater outflow <= MW, soil excess
            <= SM, the upper-zone water above UZL <= SUZ), the clips of the soil-wetness and ET
            factors at 1, ``min(SUZ, PERC)``, ``min(SM, ET)``, the 1e-5 soil floor, and the
            switches' ``min(SM/FC, 1)`` and ``min(exchange, SLZ)``.
            These keep every storage >= 0 and the mass balance exact; their gradients are
            already non-zero on the active side. ``softplus_k(0) = ln 2 / k`` (0.14 deg C
            or mm for k = 5) is the price of smoothness.
        k: steepness of the smooth steps (5, as in P-RNN).
        initial_storage: value of every state at the cold start (mm).
    """

    n_components: int = eqx.field(static=True, default=1)
    use_betaet: bool = eqx.field(static=True, default=False)
    capillary_rise: bool = eqx.field(static=True, default=False)
    groundwater_exchange: bool = eqx.field(static=True, default=False)
    smooth: bool = eqx.field(static=True, default=False)
    k: float = eqx.field(static=True, default=5.0)
    initial_storage: float = eqx.field(static=True, default=0.001)

    #: measured: forward + backward 3.5x (EXP-HYDRO) / 1.6x (HBV) faster checkpointed
    #: (benchmarks/speed_physics_defaults.py, docs/speed.md)
    default_checkpoint = True

    forcing_names = {"precipitation": "mm d-1", "temperature": "degC", "pet": "mm d-1"}
    state_names = ("snowpack", "meltwater", "soil_moisture", "upper_zone", "lower_zone")
    output_names = (
        "streamflow",
        "quickflow",
        "interflow",
        "baseflow",
        "rainfall",
        "snowfall",
        "snowmelt",
        "refreezing",
        "meltwater_outflow",
        "recharge",
        "soil_excess",
        "evapotranspiration",
        "soil_floor_gain",
        "percolation",
        "capillary_rise",
        "groundwater_exchange",
    )

    def __check_init__(self):
        if not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"HBV n_components must be an int >= 1, got {self.n_components!r}")
        if not self.k > 0:
            raise ValueError(f"HBV k must be > 0, got {self.k!r}")
        if not self.initial_storage >= 0:
            raise ValueError(f"HBV initial_storage must be >= 0 mm, got {self.initial_storage!r}")

    @property
    def param_spec(self) -> dict[str, ParamSpec]:
        spec = dict(_HBV_SPEC)
        for on, extra in ((self.use_betaet, _BETAET_SPEC), (self.capillary_rise, _CAPILLARY_SPEC),
                          (self.groundwater_exchange, _EXCHANGE_SPEC)):
            if on:
                spec.update(extra)
        return spec

    def param_event_shape(self, name: str) -> tuple[int, ...]:
        return (self.n_components,) if self.n_components > 1 else ()

    def initial_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        """Every state at ``initial_storage`` mm, shaped like ``params["fc"]``."""
        fc = jnp.asarray(params["fc"])
        # fc's own dtype (a weakly typed Python float follows the x64 setting)
        dtype = fc.dtype if jnp.issubdtype(fc.dtype, jnp.floating) else jnp.result_type(float)
        return {k: jnp.full(fc.shape, self.initial_storage, dtype) for k in self.state_names}

    # -- thresholds -----------------------------------------------------------------------

    def _ramp(self, x: Array) -> Array:
        """``max(x, 0)``, or ``softplus_k(x)`` in smooth mode."""
        if self.smooth:
            return jax.nn.softplus(self.k * x) / self.k
        return jnp.maximum(x, 0.0)

    def _ramp_scaled(self, factor: Array, dt: Array) -> Array:
        """``max(factor dt, 0)`` for ``factor >= 0``; smooth: ``factor softplus_k(dt)``."""
        if self.smooth:
            return factor * self._ramp(dt)
        return jnp.maximum(factor * dt, 0.0)

    def _rain_fraction(self, t: Array, tt: Array) -> Array:
        """``1[T >= TT]``, or ``H_k(T - TT)`` in smooth mode."""
        if self.smooth:
            return smooth_step(t - tt, self.k)
        return (t >= tt).astype(jnp.result_type(t, tt))

    # -- the step -------------------------------------------------------------------------

    def step(self, state, forcing, params):
        """One day of dHBV 1.0 (§4.1). States and parameters ``[*batch(, n_components)]``."""
        expand = (lambda x: x[..., None]) if self.n_components > 1 else (lambda x: x)
        p, t, pet = (expand(forcing[k]) for k in ("precipitation", "temperature", "pet"))
        beta, fc, lp = params["beta"], params["fc"], params["lp"]
        tt, cfmax = params["tt"], params["cfmax"]
        snowpack, mw = state["snowpack"], state["meltwater"]
        sm, suz, slz = state["soil_moisture"], state["upper_zone"], state["lower_zone"]

        # snow
        rain_frac = self._rain_fraction(t, tt)
        rain, snow = p * rain_frac, p * (1.0 - rain_frac)
        snowpack = snowpack + snow
        melt = jnp.minimum(self._ramp_scaled(cfmax, t - tt), snowpack)
        mw, snowpack = mw + melt, snowpack - melt
        refr = jnp.minimum(self._ramp_scaled(params["cfr"] * cfmax, tt - t), mw)
        snowpack, mw = snowpack + refr, mw - refr
        tosoil = self._ramp(mw - params["cwh"] * snowpack)
        if self.smooth:
            tosoil = jnp.minimum(tosoil, mw)
        mw = mw - tosoil

        # soil
        wetness = jnp.clip(safe_power(sm / fc, beta), 0.0, 1.0)
        recharge = (rain + tosoil) * wetness
        sm = sm + rain + tosoil - recharge
        excess = self._ramp(sm - fc)
        if self.smooth:
            excess = jnp.minimum(excess, sm)
        sm = sm - excess
        # clip before the power: same value, and x^a stays <= 1 for small BETAET
        ratio = jnp.clip(sm / (lp * fc), 0.0, 1.0)
        ef = safe_power(ratio, params["betaet"]) if self.use_betaet else ratio
        et = jnp.minimum(sm, pet * ef)
        sm_after_et = sm - et
        sm = jnp.maximum(sm_after_et, SOIL_FLOOR)
        floor_gain = sm - sm_after_et

        # capillary rise (HBV 1.1p), from yesterday's lower zone; C <= 1 keeps it <= SLZ,
        # the min guards values outside the box (check=False). dmg clamps SLZ at 1e-5
        # afterwards, which adds water; here nothing is clamped, the balance stays exact.
        if self.capillary_rise:
            deficit = 1.0 - jnp.minimum(sm / fc, 1.0)
            rise = jnp.minimum(params["c"] * slz * deficit, slz)
            sm, slz = sm + rise, slz - rise
        else:
            rise = jnp.zeros_like(sm)

        # groundwater boxes
        suz = suz + recharge + excess
        perc = jnp.minimum(suz, params["perc"])
        suz = suz - perc
        above = self._ramp(suz - params["uzl"])
        if self.smooth:
            above = jnp.minimum(above, suz)
        q0 = params["k0"] * above
        suz = suz - q0
        q1 = params["k1"] * suz
        suz = suz - q1
        slz = slz + perc
        if self.groundwater_exchange:  # δHBV 2.0 order: after percolation, before baseflow
            exchange = jnp.minimum(params["exchange"], slz)
            slz = slz - exchange
        else:
            exchange = jnp.zeros_like(slz)
        q2 = params["k2"] * slz
        slz = slz - q2

        new_state = {
            "snowpack": snowpack,
            "meltwater": mw,
            "soil_moisture": sm,
            "upper_zone": suz,
            "lower_zone": slz,
        }
        mean = (lambda x: jnp.mean(x, axis=-1)) if self.n_components > 1 else (lambda x: x)
        fluxes = {
            "streamflow": q0 + q1 + q2,
            "quickflow": q0,
            "interflow": q1,
            "baseflow": q2,
            "rainfall": rain,
            "snowfall": snow,
            "snowmelt": melt,
            "refreezing": refr,
            "meltwater_outflow": tosoil,
            "recharge": recharge,
            "soil_excess": excess,
            "evapotranspiration": et,
            "soil_floor_gain": floor_gain,
            "percolation": perc,
            "capillary_rise": rise,
            "groundwater_exchange": exchange,
        }
        return new_state, {k: mean(v) for k, v in fluxes.items()}


def hbv_streamflow(
    model: HBV,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    routing_params: Mapping[str, Array] | None = None,
    state0: Mapping[str, Array] | None = None,
    *,
    length: int | None = None,
    **simulate_kwargs,
) -> Array:
    """Streamflow ``[time, *batch]`` (mm d-1): simulate, average components, then route.

    ``routing_params`` selects the unit hydrograph by its keys (``uh_shape``/``uh_scale``:
    gamma UH of dHBV, ``length`` 15 by default; ``maxbas``: HBV-light triangle) with one
    value per basin ``[*batch]``; ``None`` returns the unrouted ``streamflow``. dHBV routes
    the component average, as here. Extra keyword arguments go to :func:`simulate`.
    """
    _, out = simulate(model, params, forcing, state0, **simulate_kwargs)
    q = out["streamflow"]
    if routing_params is None:
        return q
    return route_streamflow(q, routing_params, length)
