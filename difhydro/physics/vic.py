"""Simplified VIC-like three-layer soil bucket (docs/physics.md §2).

A differentiable daily water balance following the VIC-5 ``runoff()`` logic (Liang et
al. 1994; Hamman et al. 2018): the variable infiltration curve (Wood et al. 1992) on the
two top layers, Brooks-Corey drainage between layers, ARNO baseflow (Todini 1996) from the
bottom layer and a stressed, root-weighted evapotranspiration. No frozen soil. Its five
learnable parameters are those of ParaFormer (Li & Lu 2023). An optional EXP-HYDRO snow
bucket (Patil & Stieglitz 2014, §1.2) turns precipitation into liquid water input.

All depths are mm and all fluxes mm d-1; one :meth:`VicBucket.step` is one day.
"""

from __future__ import annotations

import math

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import Array, ParamSpec, ProcessModel, safe_power
from .integrate import substeps
from .snow import SNOW_SPEC, snow_fluxes

__all__ = [
    "VicBucket",
    "vic_runoff",
    "arno_baseflow",
    "brooks_corey_drainage",
    "layer_evaporation",
]

_N_LAYERS = 3
_DS_MODES = ("clip", "fraction")
_MOISTURE = ("soil_moisture_layer1", "soil_moisture_layer2", "soil_moisture_layer3")
# water amounts accumulated over the sub-steps of one day (mm)
_SOIL_FLUXES = (
    "evaporation_layer1",
    "evaporation_layer2",
    "evaporation_layer3",
    "surface_runoff",
    "infiltration",
    "drainage_layer1",
    "drainage_layer2",
    "upward_flow_layer2",
    "upward_flow_layer3",
    "baseflow",
)


# ----------------------------------------------------------------------------------------
# Process functions (any broadcastable shapes)
# ----------------------------------------------------------------------------------------


def vic_runoff(precipitation: Array, top_moisture: Array, top_capacity: Array, b: Array) -> Array:
    """Surface runoff of the variable infiltration curve (Wood et al. 1992), mm.

    ``i_m = (1 + b) Wm``, ``i_0 = i_m [1 - (1 - W/Wm)^{1/(1+b)}]``;
    ``R = P - (Wm - W)`` if ``i_0 + P >= i_m`` else
    ``R = P - (Wm - W) + Wm [1 - (i_0 + P)/i_m]^{1+b}``; ``R = max(R, 0)``.

    Args:
        precipitation: water input P over the interval (mm).
        top_moisture: moisture W of the top layers (mm), ``0 <= W <= Wm``.
        top_capacity: their capacity Wm (mm).
        b: infiltration shape parameter ``b_infilt`` (-).
    """
    im = (1.0 + b) * top_capacity
    deficit = jnp.clip(1.0 - top_moisture / top_capacity, 0.0, 1.0)
    # y = 1 - i_0/i_m; safe_power: the exponent 1/(1+b) < 1 has an infinite slope at y = 0
    y = safe_power(deficit, 1.0 / (1.0 + b))
    remaining = y - precipitation / im  # 1 - (i_0 + P)/i_m
    # Wm - W written as Wm y^{1+b}: both branches then cancel exactly at P = 0 (R = 0)
    saturation_excess = precipitation - top_capacity * safe_power(y, 1.0 + b)
    partial = saturation_excess + top_capacity * safe_power(remaining, 1.0 + b)
    runoff = jnp.where(remaining > 0.0, partial, saturation_excess)
    return jnp.maximum(runoff, 0.0)


def arno_baseflow(rel_moisture: Array, ds: Array, dsmax: Array, ws: Array, c: float = 2.0) -> Array:
    """ARNO baseflow (Todini 1996) at relative moisture x of the bottom layer, mm d-1.

    ``Qb = Dsmax Ds/Ws x`` plus ``Dsmax (1 - Ds/Ws) [(x - Ws)/(1 - Ws)]^c`` where x > Ws.
    Monotone in x only for ``Ds <= Ws``; :class:`VicBucket` enforces that, this function
    evaluates the formula as given.

    Args:
        rel_moisture: ``x = (W3 - Wr3)/(Wm3 - Wr3)`` (-).
        ds: Ds, fraction of Dsmax at which the nonlinear part starts (-).
        dsmax: Dsmax, baseflow at a full layer (mm d-1).
        ws: Ws, fraction of the layer capacity where the nonlinear part starts (-).
        c: exponent of the nonlinear part (2 in VIC).
    """
    linear = dsmax * ds / ws * rel_moisture
    above = jnp.maximum(rel_moisture - ws, 0.0) / (1.0 - ws)
    nonlinear = jnp.where(above > 0.0, safe_power(above, c), 0.0)
    return linear + dsmax * (1.0 - ds / ws) * nonlinear


def brooks_corey_drainage(
    moisture: Array, residual: Array, capacity: Array, ksat: Array, expt: Array
) -> Array:
    """Gravity drainage to the layer below, ``Ksat [(W - Wr)/(Wm - Wr)]^expt`` (mm d-1).

    Brooks-Corey / Campbell conductivity with ``expt = 3 + 2/lambda``; ``moisture`` is the
    layer moisture after evaporation (mm), clipped to ``[Wr, Wm]``.
    """
    saturation = jnp.clip((moisture - residual) / (capacity - residual), 0.0, 1.0)
    # safe_power: d/d(expt) of s**expt is s**expt log(s), NaN at s = 0 without the floor
    return ksat * safe_power(saturation, expt)


def layer_evaporation(
    moisture: Array,
    pet: Array,
    root_fraction: Array,
    critical: Array,
    wilting: Array,
    residual: Array,
) -> Array:
    """Stressed evaporation of one layer, ``min(PET r beta, W - Wr)`` (mm).

    ``beta = clip((W - Wwp)/(Wcr - Wwp), 0, 1)`` with critical Wcr and wilting Wwp moisture
    (mm); ``pet`` and the result are amounts over the same interval.
    """
    stress = jnp.clip((moisture - wilting) / (critical - wilting), 0.0, 1.0)
    available = jnp.maximum(moisture - residual, 0.0)
    return jnp.clip(pet * root_fraction * stress, 0.0, available)


def _bounded_update(moisture: Array, net: Array, residual: Array, capacity: Array):
    """``moisture + net`` kept in ``[residual, capacity]`` -> (new, excess, deficit), mm.

    Excess and deficit come from the room left in the layer, not from the rounded sum: a
    full layer then passes small inflows on exactly, so float32 round-off does not bias
    the water balance (``fl(270 + 1e-6) - 270 = 0`` would lose the inflow).
    """
    excess = jnp.maximum(net - (capacity - moisture), 0.0)
    deficit = jnp.maximum((residual - moisture) - net, 0.0)
    new = jnp.clip(moisture + (net - excess + deficit), residual, capacity)
    return new, excess, deficit


# ----------------------------------------------------------------------------------------
# Soil configuration
# ----------------------------------------------------------------------------------------


def _per_layer(name: str):
    """Converter: float | 3 values | array ``[..., 3]`` -> 3-tuple (float or ``[*batch]``)."""

    def convert(value) -> tuple:
        if isinstance(value, jax.core.Tracer):
            return tuple(value[..., i] for i in range(_N_LAYERS))
        if isinstance(value, (int, float)):
            return (float(value),) * _N_LAYERS
        if isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) != _N_LAYERS:
                raise ValueError(
                    f"VicBucket {name} needs {_N_LAYERS} per-layer values, got {len(value)}"
                )
            return tuple(
                float(v) if isinstance(v, (int, float)) else np.asarray(v, dtype=float)
                for v in value
            )
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:
            return (float(arr),) * _N_LAYERS
        if arr.shape[-1] != _N_LAYERS:
            raise ValueError(
                f"VicBucket {name} per-layer arrays need a last axis of {_N_LAYERS}, "
                f"got shape {arr.shape}"
            )
        return tuple(arr[..., i] for i in range(_N_LAYERS))

    return convert


class _Soil(NamedTuple):
    capacity: tuple
    residual: tuple
    ksat: tuple
    critical: tuple
    wilting: tuple
    root: tuple


def _cast(x, dtype):
    return x if isinstance(x, float) else jnp.asarray(x, dtype)


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class VicBucket(ProcessModel):
    """Three-layer VIC-like soil bucket with an optional EXP-HYDRO snow bucket (§2).

    Forcing (each ``[time, *batch]``): ``precipitation`` P (mm d-1; liquid water input, or
    total precipitation when ``snow=True``), ``pet`` (mm d-1), and with ``snow=True``
    ``temperature`` T (daily mean, deg C).

    Parameters (physical units; toolkit boxes of §2.4, defaults = the §2.5 test case):
    ``b_infilt`` infiltration shape b (-), ``ds`` Ds (-), ``dsmax`` Dsmax (mm d-1),
    ``ws`` Ws (-), ``expt`` Brooks-Corey exponent (-, both drainage layers); with
    ``snow=True`` also ``df``, ``tmax``, ``tmin`` (boxes of §1.3).

    ``ds <= ws`` keeps the ARNO curve monotone. ``ds_mode="clip"`` (default) uses the
    effective ``Ds = min(ds, ws)`` inside the step; ``ds_mode="fraction"`` reads ``ds`` as
    u in ``Ds = Ws u`` (u in the same box), so every box value is physical.

    States (mm): ``soil_moisture_layer1..3`` W1, W2, W3, plus ``snow_storage`` S0 with
    ``snow=True``. Default initial state: each layer half full, ``Wr + (Wm - Wr)/2``, and no
    snow; override with ``state0`` in :func:`simulate`.

    One day (order of VIC-5 ``runoff()``, §2.3), repeated on ``n_substeps`` equal
    sub-steps that each receive ``1/n`` of the day's P and PET (rates x ``1/n`` d):
    1. E_i from start-of-step W_i; 2. R, infiltration I from the start-of-step top moisture;
    3. Q_1, Q_2 from ``W_i - E_i``; 4. layer 1 ``W1 += I - E1 - Q1`` (excess above Wm1 joins
    Q1, a deficit below Wr1 reduces Q1), layer 2 ``W2 += Q1 - E2 - Q2`` (excess pushed up
    into layer 1, then into R; a deficit reduces Q2); 5. Qb from start-of-step W3,
    ``W3 += Q2 - E3 - Qb`` (a deficit reduces Qb, an excess is pushed up: layer 2, layer 1,
    then R). The snow bucket takes one Euler step per day before the soil.

    Outputs (mm d-1, sums over the sub-steps): ``streamflow`` R + Qb, ``surface_runoff`` R,
    ``baseflow`` Qb, ``evapotranspiration`` E, ``evaporation_layer1..3`` E_i,
    ``infiltration`` I = liquid input - R, ``drainage_layer1``/``drainage_layer2`` Q_1/Q_2
    (downward, after the excess/deficit corrections), ``upward_flow_layer2`` (water pushed
    from layer 2 into layer 1) and ``upward_flow_layer3`` (from layer 3 into layer 2),
    ``liquid_water_input``; with snow also ``rainfall``, ``snowfall``, ``snowmelt``. The
    balances close exactly (up to round-off):
    ``dW1 = I - E1 - Q1 + U2``, ``dW2 = Q1 - E2 - Q2 - U2 + U3``, ``dW3 = Q2 - E3 - Qb - U3``,
    ``dS0 = snowfall - snowmelt``, and in total ``dS = precipitation - E - streamflow``.

    Soil configuration (static; a float, 3 per-layer values, or for per-basin soils an
    array shaped ``[*batch, 3]`` / a tuple of 3 arrays ``[*batch]`` that broadcasts with the
    parameters in :func:`simulate`; under ``jax.vmap`` over basins keep scalar soils or map
    the model too, e.g. with ``eqx.filter_vmap``):

    Attributes:
        layer_depth: layer thickness d_i (mm).
        porosity: porosity (-), capacity ``Wm_i = porosity_i d_i``.
        residual_moisture: residual moisture Wr_i (mm).
        ksat: saturated conductivity Ksat_i (mm d-1); the bottom value is unused.
        critical_fraction: Wcr_i / Wm_i (-).
        wilting_fraction: Wwp_i / Wm_i (-).
        root_fraction: root fractions r_i (-), summing to 1.
        baseflow_exponent: ARNO exponent c (fixed, 2).
        n_substeps: runoff sub-steps per day (VIC's ``runoff_steps_per_day``).
        snow: add the EXP-HYDRO snow bucket.
        ds_mode: ``"clip"`` or ``"fraction"`` (see above).
        k: steepness of the snow bucket's smooth steps (per deg C or per mm).
    """

    #: measured: checkpointed as fast as plain (within 7 %), with a fraction of the memory
    #: (benchmarks/speed_physics_defaults.py, docs/speed.md)
    default_checkpoint = True

    layer_depth: tuple = eqx.field(default=(100.0, 300.0, 600.0), converter=_per_layer("layer_depth"))
    porosity: tuple = eqx.field(default=0.45, converter=_per_layer("porosity"))
    residual_moisture: tuple = eqx.field(default=0.0, converter=_per_layer("residual_moisture"))
    ksat: tuple = eqx.field(default=30.0, converter=_per_layer("ksat"))
    critical_fraction: tuple = eqx.field(default=0.7, converter=_per_layer("critical_fraction"))
    wilting_fraction: tuple = eqx.field(default=0.3, converter=_per_layer("wilting_fraction"))
    root_fraction: tuple = eqx.field(default=(0.5, 0.5, 0.0), converter=_per_layer("root_fraction"))
    baseflow_exponent: float = eqx.field(static=True, default=2.0)
    n_substeps: int = eqx.field(static=True, default=1)
    snow: bool = eqx.field(static=True, default=False)
    ds_mode: str = eqx.field(static=True, default="clip")
    k: float = eqx.field(static=True, default=5.0)

    _soil_spec = {
        "b_infilt": ParamSpec(0.001, 1.0, "-", 0.2, "variable infiltration curve shape (b)"),
        "ds": ParamSpec(0.001, 1.0, "-", 0.1, "fraction of Dsmax where nonlinear baseflow starts (Ds)"),
        "dsmax": ParamSpec(0.1, 30.0, "mm d-1", 10.0, "maximum baseflow (Dsmax)"),
        "ws": ParamSpec(0.05, 0.99, "-", 0.7, "fraction of Wm3 where nonlinear baseflow starts (Ws)"),
        "expt": ParamSpec(3.0, 30.0, "-", 10.0, "Brooks-Corey drainage exponent (expt = 3 + 2/lambda)"),
    }

    def __check_init__(self):
        if not isinstance(self.n_substeps, int) or self.n_substeps < 1:
            raise ValueError(f"VicBucket n_substeps must be an int >= 1, got {self.n_substeps!r}")
        if self.ds_mode not in _DS_MODES:
            raise ValueError(f"VicBucket ds_mode must be one of {_DS_MODES}, got {self.ds_mode!r}")
        if not self.baseflow_exponent >= 1.0:
            raise ValueError(
                f"VicBucket baseflow_exponent must be >= 1 (C1 curve), got {self.baseflow_exponent}"
            )
        self._check_soil()

    def _check_soil(self):
        fields = (
            "layer_depth", "porosity", "residual_moisture", "ksat", "critical_fraction",
            "wilting_fraction", "root_fraction",
        )
        values = {}
        for name in fields:
            layers = getattr(self, name)
            if any(isinstance(v, jax.core.Tracer) for v in layers):
                return  # built inside a trace: values cannot be inspected
            values[name] = [np.asarray(v, dtype=float) for v in layers]

        def bad(name, message):
            raise ValueError(f"VicBucket {name} {message}, got {getattr(self, name)}")

        for i in range(_N_LAYERS):
            d, por, wr = values["layer_depth"][i], values["porosity"][i], values["residual_moisture"][i]
            wcr, wwp = values["critical_fraction"][i], values["wilting_fraction"][i]
            if np.any(d <= 0):
                bad("layer_depth", "must be > 0 mm")
            if np.any((por <= 0) | (por > 1)):
                bad("porosity", "must lie in (0, 1]")
            if np.any((wr < 0) | (wr >= por * d)):
                bad("residual_moisture", "must lie in [0, porosity * layer_depth) mm")
            if np.any(values["ksat"][i] < 0):
                bad("ksat", "must be >= 0 mm d-1")
            if np.any((wwp < 0) | (wcr > 1) | (wcr <= wwp)):
                bad("critical_fraction", "and wilting_fraction need 0 <= wilting < critical <= 1")
            if np.any(values["root_fraction"][i] < 0):
                bad("root_fraction", "must be >= 0")
        if np.any(np.abs(sum(values["root_fraction"]) - 1.0) > 1e-6):
            bad("root_fraction", "must sum to 1 over the layers")

    # -- contract -------------------------------------------------------------------------

    @property
    def param_spec(self) -> dict[str, ParamSpec]:
        if not self.snow:
            return dict(self._soil_spec)
        return {**self._soil_spec, **SNOW_SPEC}

    @property
    def forcing_names(self) -> dict[str, str]:
        names = {"precipitation": "mm d-1", "pet": "mm d-1"}
        return {**names, "temperature": "degC"} if self.snow else names

    @property
    def state_names(self) -> tuple[str, ...]:
        return _MOISTURE + (("snow_storage",) if self.snow else ())

    @property
    def output_names(self) -> tuple[str, ...]:
        snow = ("rainfall", "snowfall", "snowmelt") if self.snow else ()
        return ("streamflow", "evapotranspiration", "liquid_water_input") + _SOIL_FLUXES + snow

    def soil(self, dtype=jnp.float32) -> _Soil:
        """Per-layer soil constants in mm (and mm d-1 for ``ksat``), cast to ``dtype``."""
        c = lambda name: tuple(_cast(v, dtype) for v in getattr(self, name))  # noqa: E731
        depth, porosity, residual = c("layer_depth"), c("porosity"), c("residual_moisture")
        capacity = tuple(p * d for p, d in zip(porosity, depth))
        return _Soil(
            capacity=capacity,
            residual=residual,
            ksat=c("ksat"),
            critical=tuple(f * m for f, m in zip(c("critical_fraction"), capacity)),
            wilting=tuple(f * m for f, m in zip(c("wilting_fraction"), capacity)),
            root=c("root_fraction"),
        )

    def stable_substeps(self, params: Mapping[str, Array]) -> int:
        """A number of ``n_substeps`` sufficient to keep the explicit sub-step monotone.

        The sub-step map ``W -> W - dt Q(W)`` is monotone (and its derivative, hence the
        gradient through a long run, stays bounded) when ``dt dQ/dW <= 1`` for drainage
        and baseflow. Steep corners of the box (``ws`` near 0.99 with large ``dsmax``, or
        large ``expt`` with the top-layer Ksat) need up to ~23 sub-steps; with fewer, the
        run stays bounded (clipped) but gradients grow geometrically and can overflow.
        Evaluated on concrete parameter values (outside ``jit``).
        """
        soil = self.soil(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
        p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        ds = p["ds"] * p["ws"] if self.ds_mode == "fraction" else np.minimum(p["ds"], p["ws"])
        span3 = np.asarray(soil.capacity[2]) - np.asarray(soil.residual[2])
        c = self.baseflow_exponent
        # slopes at a full layer, where both curves are steepest (mm d-1 per mm)
        baseflow = p["dsmax"] * (ds / p["ws"] + c * (1.0 - ds / p["ws"]) / (1.0 - p["ws"])) / span3
        drainage = [
            np.asarray(ks) * p["expt"] / (np.asarray(wm) - np.asarray(wr))
            for ks, wm, wr in zip(soil.ksat[:2], soil.capacity[:2], soil.residual[:2])
        ]
        slope = max(float(np.max(x)) for x in (baseflow, *drainage))
        return max(1, math.ceil(slope))

    def initial_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        """Each layer half full (``Wr + (Wm - Wr)/2``), no snow; shaped like the batch."""
        zeros = jnp.zeros_like(params["b_infilt"])
        soil = self.soil(zeros.dtype)
        state = {
            name: zeros + wr + 0.5 * (wm - wr)
            for name, wm, wr in zip(_MOISTURE, soil.capacity, soil.residual)
        }
        if self.snow:
            state["snow_storage"] = zeros
        return state

    # -- physics --------------------------------------------------------------------------

    def _substep(self, moisture, water_input, pet, params, soil: _Soil, dt: float):
        """One runoff sub-step of ``dt`` days; amounts (not rates) in mm."""
        wm, wr = soil.capacity, soil.residual
        w1, w2, w3 = moisture
        evap = tuple(
            layer_evaporation(w, pet * dt, r, cr, wp, res)
            for w, r, cr, wp, res in zip(moisture, soil.root, soil.critical, soil.wilting, wr)
        )
        runoff = vic_runoff(water_input * dt, w1 + w2, wm[0] + wm[1], params["b_infilt"])
        infiltration = water_input * dt - runoff
        q1, q2 = (
            dt * brooks_corey_drainage(jnp.maximum(w - e, r0), r0, m, ks, params["expt"])
            for w, e, r0, m, ks in zip(moisture[:2], evap[:2], wr[:2], wm[:2], soil.ksat[:2])
        )
        # layer 1: excess above Wm1 drains on, a deficit below Wr1 is taken from Q1
        w1, excess, deficit = _bounded_update(w1, infiltration - evap[0] - q1, wr[0], wm[0])
        q1 = q1 + excess - deficit
        # layer 2: excess pushed up into layer 1, whose overflow becomes surface runoff
        w2, up2, deficit = _bounded_update(w2, q1 - evap[1] - q2, wr[1], wm[1])
        q2 = q2 - deficit
        w1, overflow, _ = _bounded_update(w1, up2, wr[0], wm[0])
        runoff = runoff + overflow
        # layer 3: ARNO baseflow from the start-of-step moisture
        ds = params["ds"]
        ds = ds * params["ws"] if self.ds_mode == "fraction" else jnp.minimum(ds, params["ws"])
        rel = (w3 - wr[2]) / (wm[2] - wr[2])
        baseflow = dt * arno_baseflow(rel, ds, params["dsmax"], params["ws"], self.baseflow_exponent)
        w3, up3, deficit = _bounded_update(w3, q2 - evap[2] - baseflow, wr[2], wm[2])
        baseflow = baseflow - deficit
        w2, over2, _ = _bounded_update(w2, up3, wr[1], wm[1])
        w1, overflow, _ = _bounded_update(w1, over2, wr[0], wm[0])
        runoff = runoff + overflow
        fluxes = {
            "evaporation_layer1": evap[0],
            "evaporation_layer2": evap[1],
            "evaporation_layer3": evap[2],
            "surface_runoff": runoff,
            "infiltration": water_input * dt - runoff,
            "drainage_layer1": q1,
            "drainage_layer2": q2,
            "upward_flow_layer2": up2 + over2,
            "upward_flow_layer3": up3,
            "baseflow": baseflow,
        }
        return (w1, w2, w3), fluxes

    def _soil_day(self, moisture, water_input, pet, params):
        soil = self.soil(moisture[0].dtype)
        n = self.n_substeps
        # one carry shape for lax.scan: states may start narrower than params / soils
        arrays = (*moisture, water_input, pet, *params.values(), *(v for f in soil for v in f))
        shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in arrays))
        moisture = tuple(jnp.broadcast_to(w, shape) for w in moisture)
        return substeps(lambda w: self._substep(w, water_input, pet, params, soil, 1.0 / n), moisture, n)

    def step(
        self, state: Mapping[str, Array], forcing: Mapping[str, Array], params: Mapping[str, Array]
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Advance one day. State/forcing/params shaped ``[*batch]``; fluxes in mm d-1."""
        precipitation, pet = forcing["precipitation"], forcing["pet"]
        new_state, outputs = {}, {}
        if self.snow:
            snow0 = jnp.asarray(state["snow_storage"])
            snow = snow_fluxes(
                snow0, precipitation, forcing["temperature"],
                params["df"], params["tmax"], params["tmin"], smooth=True, k=self.k,
            )
            new_snow = snow0 + snow["snowfall"] - snow["snowmelt"]
            new_state["snow_storage"] = new_snow.astype(snow0.dtype)
            liquid = snow["rainfall"] + snow["snowmelt"]
            outputs.update(snow)
        else:
            liquid = precipitation
        moisture = tuple(jnp.asarray(state[k]) for k in _MOISTURE)
        new_moisture, fluxes = self._soil_day(moisture, liquid, pet, params)
        for name, old, new in zip(_MOISTURE, moisture, new_moisture):
            new_state[name] = new.astype(old.dtype)
        evaporation = sum(fluxes[f"evaporation_layer{i}"] for i in (1, 2, 3))
        outputs.update(fluxes)
        outputs["evapotranspiration"] = evaporation
        outputs["streamflow"] = fluxes["surface_runoff"] + fluxes["baseflow"]
        outputs["liquid_water_input"] = liquid
        return new_state, outputs
