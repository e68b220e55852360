"""Synthetic twins: a regional data set whose true parameters are known.

Recipe (for any :class:`~difhydro.physics.ProcessModel`):

1. Real forcing from any loader (CAMELS-US, Caravan or the spotpy Fulda / hymod series)
   is given to each synthetic basin from a source basin, circularly shifted by a whole
   number of years, with precipitation scaled by a log-normal factor and temperature
   offset by a normal shift. So even one real catchment (Fulda) yields many distinct
   basins. ``day_length`` is astronomical and is not shifted.
2. Basin attributes are drawn uniformly on ``[0, 1]``.
3. A fixed nonlinear map (:func:`true_parameters`: a one-hidden-layer tanh network with
   weights from ``mapping_seed``) sends attributes to unconstrained values and the model's
   parameter boxes to physical parameters, kept 5 % inside each box.
4. :func:`difhydro.physics.simulate` runs the model from a state spun up over
   ``spinup_days`` of the basin's own forcing; observed streamflow is the simulated flow
   times mean-one log-normal noise (``exp(sigma e - sigma^2 / 2)``), so it stays >= 0.

The twin is the ground truth of parameter-recovery tests and the default data of the
regional benchmark when no CAMELS copy is configured (:func:`fulda_twin`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..physics.base import ProcessModel, simulate
from ..physics.snow import DegreeDaySnow
from ..physics.soil_hydraulics import CARSEL_PARRISH
from ._common import VARIABLE_ATTRS, with_day_length

__all__ = ["true_parameters", "make_synthetic_twin", "fulda_twin", "richards_twin", "degree_day_snow", "TEXTURES", "TWIN_THICKNESS_CM", "TWIN_DEPTHS_CM"]

_MARGIN = 0.05
_HIDDEN = 16


def true_parameters(model: ProcessModel, attributes, mapping_seed: int = 0) -> dict[str, np.ndarray]:
    """The fixed nonlinear map from attributes to physical parameters.

    ``z = 2 tanh((a - 0.5) W1 + b1) W2 / 4``, ``u = sigmoid(z)``,
    ``theta = low + (high - low)(0.05 + 0.9 u)``, with ``W1 ~ N(0, 3^2)`` (``[K, 16]``),
    ``b1 ~ U(-1, 1)``, ``W2 ~ N(0, 1.5^2)`` (``[16, n_params]``) drawn once from
    ``mapping_seed``: the same seed always gives the same map.

    Args:
        model: process model whose ``param_spec`` gives names and boxes.
        attributes: ``[basin, K]`` values in ``[0, 1]``.
        mapping_seed: seed of the map's weights.

    Returns:
        name -> ``[basin]`` float32 parameters in physical units.
    """
    a = np.asarray(attributes, np.float64)
    if a.ndim != 2:
        raise ValueError(f"attributes must be [basin, K], got shape {a.shape}")
    names = list(model.param_spec)
    rng = np.random.default_rng(mapping_seed)
    w1 = rng.normal(0.0, 3.0, size=(a.shape[1], _HIDDEN))
    b1 = rng.uniform(-1.0, 1.0, size=_HIDDEN)
    w2 = rng.normal(0.0, 1.5, size=(_HIDDEN, len(names)))
    z = np.tanh((a - 0.5) @ w1 + b1) @ w2 / np.sqrt(_HIDDEN) * 2.0
    u = 1.0 / (1.0 + np.exp(-z))
    out = {}
    for j, name in enumerate(names):
        spec = model.param_spec[name]
        out[name] = (spec.low + (spec.high - spec.low) * (_MARGIN + (1 - 2 * _MARGIN) * u[:, j])).astype(np.float32)
    return out


def _source_forcing(model: ProcessModel, source: xr.Dataset) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Model forcing from ``source`` as ``[source_basin, time]`` over the days where every
    source basin has finite values; ``day_length`` from a latitude if absent."""
    lat = next((n for n in ("gauge_lat", "latitude", "forcing_latitude") if n in source), None)
    missing = [n for n in model.forcing_names if n not in source and not (n == "day_length" and lat)]
    if missing:
        hint = " (day_length can also come from a gauge_lat / latitude variable)" if "day_length" in missing else ""
        raise ValueError(
            f"{type(model).__name__} needs forcing {missing}; the source data set has "
            f"{sorted(source.data_vars)}{hint}"
        )
    if "day_length" in model.forcing_names and "day_length" not in source:
        source = with_day_length(source, lat)
    arrays = {n: np.asarray(source[n].transpose("basin", "time").values, np.float64) for n in model.forcing_names}
    finite = np.all([np.isfinite(a).all(axis=0) for a in arrays.values()], axis=0)
    if not finite.any():
        raise ValueError("no day on which every source basin has finite forcing; select basins or a period first")
    first, last = np.flatnonzero(finite)[[0, -1]]
    if not finite[first : last + 1].all():
        raise ValueError("source forcing has gaps inside its common record; select a gap-free period first")
    times = source["time"].values[first : last + 1]
    return {n: a[:, first : last + 1] for n, a in arrays.items()}, times


def make_synthetic_twin(
    model: ProcessModel,
    source: xr.Dataset,
    n_basins: int = 32,
    *,
    seed: int = 0,
    n_attributes: int = 5,
    noise: float = 0.1,
    precipitation_spread: float = 0.2,
    temperature_spread: float = 1.5,
    spinup_days: int = 365,
    mapping_seed: int = 0,
) -> xr.Dataset:
    """A regional data set of ``n_basins`` synthetic basins with known parameters.

    Args:
        model: any process model (e.g. ``ExpHydro()``); its ``forcing_names`` must be in
            ``source`` (``day_length`` may instead be computed from a latitude).
        source: real forcing on ``(basin, time)`` from any loader; the days on which every
            source basin has finite forcing are used.
        n_basins: number of synthetic basins.
        seed: seed of the basin draws (attributes, source basin, shift, perturbation, noise).
        n_attributes: ``K``, attributes per basin.
        noise: ``sigma`` of the multiplicative log-normal observation noise (0: exact).
        precipitation_spread: ``sigma`` of the log-normal precipitation factor.
        temperature_spread: standard deviation of the temperature offset (deg C).
        spinup_days: days of the basin's forcing run once to set the initial state.
        mapping_seed: seed of the attribute -> parameter map (:func:`true_parameters`).

    Returns:
        Dataset on ``(basin, time)``: the model forcing, ``streamflow`` (noisy
        observation, mm d-1), ``true_<output>`` for every model output and state;
        on ``(basin,)``: ``attribute_<k>``, ``param_<name>`` (true parameters),
        ``initial_<state>`` (state after spin-up), and the provenance ``source_basin``,
        ``shift_days``, ``precipitation_factor``, ``temperature_offset``.
    """
    if n_basins < 1 or n_attributes < 1:
        raise ValueError(f"n_basins and n_attributes must be >= 1, got {n_basins}, {n_attributes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    arrays, times = _source_forcing(model, source)
    n_src, n_time = next(iter(arrays.values())).shape
    if spinup_days > n_time:
        raise ValueError(f"spinup_days={spinup_days} exceeds the {n_time} days of common source forcing")
    rng = np.random.default_rng(seed)
    # float32 as stored, so that the stored attributes reproduce the parameters exactly
    attributes = rng.uniform(0.0, 1.0, size=(n_basins, n_attributes)).astype(np.float32)
    src = rng.permutation(np.arange(n_basins) % n_src)
    shift = rng.integers(0, max(n_time // 365, 1), size=n_basins) * 365
    p_factor = np.exp(rng.normal(0.0, precipitation_spread, size=n_basins))
    t_offset = rng.normal(0.0, temperature_spread, size=n_basins)

    forcing = {}
    for name, a in arrays.items():
        per_basin = a[src]  # [basin, time]
        if name != "day_length":  # astronomy stays on the calendar
            rows = (np.arange(n_time)[None, :] - shift[:, None]) % n_time
            per_basin = np.take_along_axis(per_basin, rows, axis=1)
        if name == "precipitation":
            per_basin = per_basin * p_factor[:, None]
        if name in ("temperature", "tmax", "tmin"):
            per_basin = per_basin + t_offset[:, None]
        forcing[name] = per_basin.T.astype(np.float32)  # [time, basin]

    params = true_parameters(model, attributes, mapping_seed)
    state0 = None
    if spinup_days > 0:
        state0, _ = simulate(model, params, {k: v[:spinup_days] for k, v in forcing.items()})
    _, outputs = simulate(model, params, forcing, state0)
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    initial = {k: np.asarray(v) for k, v in (state0 or model.initial_state(params)).items()}

    q_true = outputs["streamflow"]
    eps = rng.normal(size=q_true.shape)
    observed = q_true * np.exp(noise * eps - 0.5 * noise**2)

    dims = ("basin", "time")
    basins = np.array([f"twin_{i:04d}" for i in range(n_basins)])
    ds = xr.Dataset(coords={"basin": basins, "time": times})
    for name, a in forcing.items():
        ds[name] = (dims, a.T)
        ds[name].attrs.update(VARIABLE_ATTRS.get(name, {}))
    ds["streamflow"] = (dims, observed.T.astype(np.float32))
    ds["streamflow"].attrs.update(VARIABLE_ATTRS["streamflow"], comment=f"simulated x log-normal noise, sigma={noise}")
    for name, a in outputs.items():
        if a.shape[:2] == (n_time, n_basins) and a.ndim == 2:
            ds[f"true_{name}"] = (dims, a.T.astype(np.float32))
    for k in range(n_attributes):
        ds[f"attribute_{k}"] = ("basin", attributes[:, k].astype(np.float32))
    for name, v in params.items():
        ds[f"param_{name}"] = ("basin", v)
        ds[f"param_{name}"].attrs["units"] = model.param_spec[name].units
    for name, v in initial.items():
        if np.shape(v) == (n_basins,):
            ds[f"initial_{name}"] = ("basin", np.asarray(v, np.float32))
    source_ids = np.asarray(source["basin"].values).astype(str)
    ds["source_basin"] = ("basin", source_ids[src])
    ds["shift_days"] = ("basin", shift.astype(np.int32))
    ds["precipitation_factor"] = ("basin", p_factor.astype(np.float32))
    ds["temperature_offset"] = ("basin", t_offset.astype(np.float32))
    ds.attrs.update(
        title=f"synthetic twin of {type(model).__name__}",
        model=type(model).__name__,
        seed=seed,
        mapping_seed=mapping_seed,
        noise=noise,
        spinup_days=spinup_days,
        source=str(source.attrs.get("title", "")),
    )
    return ds


def fulda_twin(model: ProcessModel, n_basins: int = 32, **kwargs) -> xr.Dataset:
    """:func:`make_synthetic_twin` on the spotpy Fulda forcing (1979-1988), needing no
    downloaded data: the default regional data set when no CAMELS copy is configured."""
    from .sites import load_example

    return make_synthetic_twin(model, load_example("fulda"), n_basins, **kwargs)


# ----------------------------------------------------------------------------------------
# The soil-moisture twin (PGDL, Zhang et al. 2025; PHY-LSTM, Geng et al. 2024)
# ----------------------------------------------------------------------------------------

# Layers (cm) whose centres are 2.5 (surface "remote-sensing" layer), 10, 20, 30, 40, 50,
# 65 and 87.5 cm: the 10-50 cm centres are the nodes of the section-3.6 residual.
TWIN_THICKNESS_CM = (5.0, 10.0, 10.0, 10.0, 10.0, 10.0, 20.0, 25.0)
TWIN_DEPTHS_CM = (10, 20, 30, 40, 50)
_TWIN_LAYERS = (1, 2, 3, 4, 5)
# the medium textures of Carsel & Parrish (1988) (physics.soil_hydraulics.CARSEL_PARRISH)
TEXTURES = {k: CARSEL_PARRISH[k] for k in ("loam", "silt_loam", "silt", "clay_loam", "silty_clay_loam", "sandy_clay_loam")}


def degree_day_snow(precipitation: np.ndarray, temperature: np.ndarray, ddf: float = 3.0, threshold: float = 0.0):
    """The snow bucket (:class:`~difhydro.physics.snow.DegreeDaySnow`, hard steps) with one
    ``threshold`` (deg C) for snowfall and melt and melt factor ``ddf`` (mm d-1 degC-1):
    ``[time, *batch]`` precipitation (mm d-1) and temperature -> ``(water_input, swe)`` in
    mm d-1 and mm, where ``water_input`` = rain + melt reaches the soil."""
    model = DegreeDaySnow(smooth=False)
    params = {"df": ddf, "tmax": threshold, "tmin": threshold}
    _, out = simulate(model, params, {"precipitation": precipitation, "temperature": temperature})
    return np.asarray(out["liquid_water_input"]), np.asarray(out["snow_storage"])


def richards_twin(
    root,
    n_soils: int = 16,
    start: str = "2000-01-01",
    end: str = "2003-12-31",
    spinup_days: int = 365,
    noise_surface: float = 0.02,
    noise_deep: float = 0.005,
    n_substeps: int = 24,
    seed: int = 0,
    basins: Sequence[str] | None = None,
) -> xr.Dataset:
    """A gridded soil-moisture twin: Richards1D over ``n_soils`` soils x Caravan basins.

    Each pixel takes the weather of one Caravan basin (precipitation, temperature; PET by
    Hamon from temperature and day length) and a van Genuchten soil drawn from
    :data:`TEXTURES` with ±15 % log-normal jitter (homogeneous profile). Snow is a
    degree-day bucket; rain + melt enters :class:`~difhydro.physics.Richards1D` (layers
    :data:`TWIN_THICKNESS_CM`, free drainage, roots to 50 cm, transpiration = 0.8 PET,
    theta = theta(h) of the last Picard iterate, bounded by construction) in a single ``simulate`` call over all pixels. The
    first ``spinup_days`` are dropped.

    Returns a Dataset on ``(basin, time)`` (basin = pixel ``"<gauge>_<k>"``):
    ``precipitation``, ``water_input``, ``pet``, ``evaporation`` (actual uptake),
    ``runoff`` (mm d-1), ``temperature`` (deg C), ``snow_water`` (mm); true water content
    ``true_sm_surface`` (0-5 cm) and ``true_sm_<d>`` for d in :data:`TWIN_DEPTHS_CM`;
    noisy observations ``sm_surface`` (sd ``noise_surface``, a remote-sensing stand-in)
    and ``sm_<d>`` (sd ``noise_deep``, probes); static ``theta_r``, ``theta_s``,
    ``alpha``, ``n``, ``k_s`` (cm d-1), ``texture`` index.
    """
    from ..physics.pet import hamon_pet
    from ..physics.richards import Richards1D
    from .caravan import load_caravan

    weather = load_caravan(root, basins=basins, start=start, end=end)
    rng = np.random.default_rng(seed)
    names = list(TEXTURES)
    gauges = [str(b) for b in weather["basin"].values]
    n_pix = len(gauges) * n_soils
    tex = rng.integers(0, len(names), n_pix)
    base = np.array([TEXTURES[names[i]] for i in tex])
    jitter = np.exp(0.15 * rng.standard_normal((n_pix, 5)))
    soil = base * jitter
    spec = Richards1D.param_spec
    keys = ("theta_r", "theta_s", "alpha", "n", "k_s")
    soil[:, 3] = 1.0 + (base[:, 3] - 1.0) * jitter[:, 3]  # jitter n − 1, keeps n > 1
    for j, k in enumerate(keys):
        soil[:, j] = np.clip(soil[:, j], spec[k].low * 1.01 + 1e-4, spec[k].high * 0.99)
    pix_basin = np.repeat(np.arange(len(gauges)), n_soils)

    p = np.asarray(weather["precipitation"].transpose("time", "basin").values, np.float64)[:, pix_basin]
    temp = np.asarray(weather["temperature"].transpose("time", "basin").values, np.float64)[:, pix_basin]
    dl = np.asarray(weather["day_length"].transpose("time", "basin").values, np.float64)[:, pix_basin]
    p = np.nan_to_num(np.maximum(p, 0.0))
    temp = np.nan_to_num(temp)
    pet = np.asarray(hamon_pet(temp, dl))
    water, swe = degree_day_snow(p, temp)

    # The solver's defaults: time-step control, 20 iterations and the -2 cm air-entry curve.
    # One year of 228 pixels takes 22 s (fixed 5-iteration steps: 38 s with 12 818 unconverged
    # pixel-days; benchmarks/speed_richards_twin.py, docs/physics.md section 3.8).
    model = Richards1D(thickness=TWIN_THICKNESS_CM, n_substeps=n_substeps, root_depth=50.0, initial_head=-100.0)
    params = {k: jnp.asarray(soil[:, j:j + 1], jnp.float32) for j, k in enumerate(keys)}
    forcing = {"precipitation": jnp.asarray(water / 10.0, jnp.float32),
               "potential_transpiration": jnp.asarray(0.8 * pet / 10.0, jnp.float32)}
    _, out = jax.jit(lambda f, q: simulate(model, q, f, check=False, checkpoint=False))(forcing, params)
    theta = np.asarray(out["water_content"])  # [time, pixel, layer]
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError("the Richards twin produced non-finite water content")

    keep = slice(spinup_days, None)
    times = pd.DatetimeIndex(weather["time"].values)[keep]
    dims = ("basin", "time")
    data = {
        "precipitation": p, "water_input": water, "pet": pet, "temperature": temp, "snow_water": swe,
        "evaporation": 10.0 * np.asarray(out["root_water_uptake"]),
        "runoff": 10.0 * np.asarray(out["runoff"]),
    }
    ds = xr.Dataset({k: (dims, v[keep].T.astype(np.float32)) for k, v in data.items()},
                    coords={"basin": [f"{gauges[b]}_{k % n_soils}" for k, b in enumerate(pix_basin)], "time": times})
    ds["true_sm_surface"] = (dims, theta[keep, :, 0].T.astype(np.float32))
    ds["sm_surface"] = (dims, (theta[keep, :, 0].T + noise_surface * rng.standard_normal(ds["true_sm_surface"].shape)).astype(np.float32))
    for layer, depth in zip(_TWIN_LAYERS, TWIN_DEPTHS_CM):
        truth = theta[keep, :, layer].T
        ds[f"true_sm_{depth}"] = (dims, truth.astype(np.float32))
        ds[f"sm_{depth}"] = (dims, (truth + noise_deep * rng.standard_normal(truth.shape)).astype(np.float32))
    for j, k in enumerate(keys):
        ds[k] = ("basin", soil[:, j])
    ds["texture"] = ("basin", tex)
    ds["latitude"] = ("basin", np.asarray(weather["gauge_lat"].values, np.float64)[pix_basin])
    ds.attrs.update(
        title="Richards1D soil-moisture twin (synthetic) under Caravan weather",
        layers_cm=str(TWIN_THICKNESS_CM), substeps=n_substeps, spinup_days=spinup_days,
        root_fraction=str(model.root_fractions().round(4).tolist()),
        # the solver's own report over the whole run (spin-up included): pixel-days whose
        # sub-steps were halved, the most accepted sub-steps of a day, unconverged days
        halved_pixel_days=int((np.asarray(out["substeps"]) > n_substeps).sum()),
        max_substeps_per_day=int(np.asarray(out["substeps"]).max()),
        unconverged_pixel_days=int((np.asarray(out["converged"]) < 1).sum()),
    )
    return ds
