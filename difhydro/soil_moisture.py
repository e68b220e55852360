"""Physics-guided soil-moisture models and their data (Geng et al. 2024; Zhang et al. 2025).

Models (``flax.linen``, called as ``model(batch, deterministic=...)`` like every model of
:class:`~difhydro.train.Trainer`; a site or a pixel is a "basin" of a
:class:`~difhydro.data.Batch`):

- :class:`SequenceLSTM`: PHY-LSTM / PHYs-LSTM of Geng et al. (2024): at every day t an LSTM
  reads the ``sequence_length`` (7) days ending at t and forecasts surface soil moisture
  of day t (one day ahead: the inputs carry soil moisture up to t − 1 and the weather of
  t). The physics enters only through the loss (:func:`phy_lstm_loss`).
- :class:`ProfileCNNLSTM`: the PGDL CNN-LSTM of Zhang et al. (2025): a convolution over
  the input-feature axis at each day, an LSTM over time and a head that gives water
  content at several depths, bounded to ``[theta_r, theta_s]`` by
  :func:`bounded_water_content`; trained with :func:`pgdl_loss` (RMSE + Richards residual).

Data:

- :func:`site_dataset`: the real profile site shipped with spotpy (10/25/40 cm, daily),
  with FAO-56 Penman-Monteith reference evapotranspiration (``pyet``) and the water-balance
  series of the ablation (only P and ET are observed there).
- :func:`richards_twin`: a synthetic "gridded" twin, :class:`~difhydro.physics.Richards1D`
  run with one ``simulate`` call over pixels of varied van Genuchten soils under real
  Caravan weather (degree-day snow in front), sampled at 2.5 (surface) and 10-50 cm with
  observation noise. It stands in for ERA5-Land / 10-km grids and gives the true deep
  moisture that scores the root-zone estimate.

Tabular baselines (scikit-learn Random Forest, XGBoost) are imported lazily, as is
``pyet``; the core package does not need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from . import losses, metrics
from .data.batching import Batch
from .nn import CNNLSTM, LSTM
from .physics.base import ParamSpec
from .physics.richards import feddes_reduction, richards_residual

Array = jax.Array

__all__ = [
    "bounded_water_content",
    "soil_from_raw",
    "SITE_LATITUDE",
    "SITE_ELEVATION_M",
    "fao56_reference_et",
    "site_dataset",
    "TWIN_THICKNESS_CM",
    "TWIN_DEPTHS_CM",
    "TEXTURES",
    "degree_day_snow",
    "richards_twin",
    "SequenceLSTM",
    "ProfileCNNLSTM",
    "phy_lstm_loss",
    "pgdl_loss",
    "profile_residual",
    "inconsistency_share",
    "score",
    "lagged_features",
    "fit_random_forest",
    "fit_xgboost",
]

# ----------------------------------------------------------------------------------------
# Bounded output and learned soil parameters
# ----------------------------------------------------------------------------------------


def bounded_water_content(raw: Array, theta_r: Array, theta_s: Array) -> Array:
    """``theta = theta_r + (theta_s − theta_r)·sigmoid(raw)`` (Zhang et al. 2025), m3 m-3.

    Never leaves ``[theta_r, theta_s]`` (also for ``raw = ±inf``); the gradient in ``raw``
    is ``(theta_s − theta_r)·σ(1 − σ)``, finite and 0 at the saturated ends.
    """
    if isinstance(theta_r, (int, float)) and isinstance(theta_s, (int, float)) and not theta_s > theta_r:
        raise ValueError(f"theta_s ({theta_s}) must exceed theta_r ({theta_r})")
    theta_r, theta_s = jnp.asarray(theta_r), jnp.asarray(theta_s)
    # clip keeps theta inside [theta_r, theta_s] despite rounding of r + (s − r)·1
    return jnp.clip(theta_r + (theta_s - theta_r) * jax.nn.sigmoid(raw), theta_r, theta_s)


def soil_from_raw(raw: Mapping[str, Array], specs: Mapping[str, ParamSpec] | None = None) -> dict[str, Array]:
    """Learned van Genuchten parameters: unconstrained ``raw`` values -> physical units via
    the :class:`ParamSpec` boxes (default: those of :class:`~difhydro.physics.Richards1D`)."""
    if specs is None:
        from .physics import Richards1D

        specs = Richards1D.param_spec
    unknown = [k for k in raw if k not in specs]
    if unknown:
        raise ValueError(f"raw soil parameters {unknown} have no ParamSpec; known: {sorted(specs)}")
    return {k: specs[k].to_physical(v) for k, v in raw.items()}


# ----------------------------------------------------------------------------------------
# The real profile site (spotpy cmf example, Schwingbach site 24, Hesse)
# ----------------------------------------------------------------------------------------

SITE_LATITUDE = 50.5
# Vollnkirchener Bach valley floor; the groundwater head in the driver file is ~238 m a.s.l.
SITE_ELEVATION_M = 250.0
SITE_DEPTHS_CM = (10, 25, 40)


def fao56_reference_et(ds: xr.Dataset, elevation: float = SITE_ELEVATION_M, latitude: float = SITE_LATITUDE) -> np.ndarray:
    """FAO-56 Penman-Monteith reference evapotranspiration (mm d-1) with ``pyet``.

    Uses the daily ``temperature``, ``tmax``, ``tmin`` (deg C), ``wind_speed`` (m s-1,
    taken as 2-m wind), ``srad`` (daily mean W m-2 -> MJ m-2 d-1), ``relative_humidity``
    (%) and ``air_pressure`` (hPa -> kPa) of a one-basin daily Dataset. Returns ``[time]``.
    """
    try:
        import pyet
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError("fao56_reference_et needs pyet (pip install pyet)") from err
    index = pd.DatetimeIndex(ds["time"].values)

    def series(name, scale=1.0):
        if name not in ds:
            raise ValueError(f"variable '{name}' missing; FAO-56 needs it")
        return pd.Series(np.asarray(ds[name].values, np.float64).reshape(-1) * scale, index=index)

    et0 = pyet.pm_fao56(
        series("temperature"),
        wind=series("wind_speed"),
        rs=series("srad", 0.0864),
        tmax=series("tmax"),
        tmin=series("tmin"),
        rh=series("relative_humidity"),
        pressure=series("air_pressure", 0.1),
        elevation=elevation,
        lat=np.deg2rad(latitude),
    )
    return et0.to_numpy(np.float32)


def _lag1(x: np.ndarray) -> np.ndarray:
    """``out[..., t] = x[..., t − 1]`` along the last axis, NaN on the first step."""
    out = np.full_like(x, np.nan)
    out[..., 1:] = x[..., :-1]
    return out


def site_dataset(ds: xr.Dataset | None = None, deep_thickness_mm: float = 300.0) -> xr.Dataset:
    """The spotpy profile site as a one-basin daily Dataset for the PHY-LSTM experiments.

    Adds ``et0`` (FAO-56 PM, mm d-1), ``sm_10``, ``sm_25``, ``sm_40`` (observed, m3 m-3),
    ``sm_prev`` (``sm_10`` of the day before, a network input), ``observed_flag`` (1 where
    ``sm_10`` is observed) and the water-balance series of the ablation (mm d-1; the site
    has no runoff or snow observations): ``w_A1 = P``, ``w_A2 = P − ET0`` and
    ``w_B1``/``w_B2`` = the same minus the change of the deep (25-40 cm mean) moisture
    times ``deep_thickness_mm`` (17.5-47.5 cm, 300 mm).
    """
    if ds is None:
        from .data import load_example

        ds = load_example("soil_moisture_profile", daily=True)
    ds = ds.copy()
    sm = np.asarray(ds["soil_moisture"].transpose("basin", "time", "depth").values, np.float32)
    dims = ("basin", "time")
    for i, depth in enumerate(SITE_DEPTHS_CM):
        ds[f"sm_{depth}"] = (dims, sm[..., i])
        ds[f"sm_{depth}"].attrs.update(units="m3 m-3", long_name=f"observed soil moisture at {depth} cm")
    ds["et0"] = (dims, fao56_reference_et(ds.isel(basin=0))[None])
    ds["et0"].attrs.update(units="mm d-1", long_name="FAO-56 Penman-Monteith reference ET (pyet)")
    ds["sm_prev"] = (dims, _lag1(sm[..., 0]))
    ds["observed_flag"] = (dims, np.isfinite(sm[..., 0]).astype(np.float32))
    p = np.asarray(ds["precipitation"].values, np.float32)
    et = np.asarray(ds["et0"].values, np.float32)
    deep = sm[..., 1:].mean(-1)
    d_deep = deep - _lag1(deep)
    ds["w_A1"] = (dims, p)
    ds["w_A2"] = (dims, np.asarray(losses.water_balance(p, et)))
    ds["w_B1"] = (dims, np.asarray(losses.water_balance(p, 0.0, 0.0, 0.0, d_deep, deep_scale=deep_thickness_mm)))
    ds["w_B2"] = (dims, np.asarray(losses.water_balance(p, et, 0.0, 0.0, d_deep, deep_scale=deep_thickness_mm)))
    for k in ("w_A1", "w_A2", "w_B1", "w_B2"):
        ds[k].attrs["units"] = "mm d-1"
    return ds


# ----------------------------------------------------------------------------------------
# The Richards twin
# ----------------------------------------------------------------------------------------

# Layers (cm) whose centres are 2.5 (surface "remote-sensing" layer), 10, 20, 30, 40, 50,
# 65 and 87.5 cm: the 10-50 cm centres are the nodes of the section-3.6 residual.
TWIN_THICKNESS_CM = (5.0, 10.0, 10.0, 10.0, 10.0, 10.0, 20.0, 25.0)
TWIN_DEPTHS_CM = (10, 20, 30, 40, 50)
_TWIN_LAYERS = (1, 2, 3, 4, 5)
# Carsel & Parrish (1988) van Genuchten classes: theta_r, theta_s, alpha (cm-1), n, Ks (cm d-1)
TEXTURES = {
    "loam": (0.078, 0.43, 0.036, 1.56, 24.96),
    "silt_loam": (0.067, 0.45, 0.020, 1.41, 10.8),
    "silt": (0.034, 0.46, 0.016, 1.37, 6.0),
    "clay_loam": (0.095, 0.41, 0.019, 1.31, 6.24),
    "silty_clay_loam": (0.089, 0.43, 0.010, 1.23, 1.68),
    "sandy_clay_loam": (0.100, 0.39, 0.059, 1.48, 31.44),
}


def degree_day_snow(precipitation: np.ndarray, temperature: np.ndarray, ddf: float = 3.0, threshold: float = 0.0):
    """Degree-day snow bucket (mm, deg C, ``[time, *batch]``): snowfall below ``threshold``,
    melt ``min(ddf·max(T − threshold, 0), SWE)``. Returns ``(water_input, swe)`` in mm d-1
    and mm, where ``water_input`` = rain + melt reaches the soil."""
    swe = np.zeros(precipitation.shape[1:])
    water, store = np.zeros_like(precipitation), np.zeros_like(precipitation)
    for t in range(precipitation.shape[0]):
        cold = temperature[t] < threshold
        swe = swe + np.where(cold, precipitation[t], 0.0)
        melt = np.minimum(ddf * np.maximum(temperature[t] - threshold, 0.0), swe)
        swe = swe - melt
        water[t] = np.where(cold, 0.0, precipitation[t]) + melt
        store[t] = swe
    return water, store


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
    from .data import load_caravan
    from .physics import Richards1D, simulate
    from .physics.pet import hamon_pet

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

    model = Richards1D(thickness=TWIN_THICKNESS_CM, n_substeps=n_substeps, n_iter=5, flux_update=False,
                       root_depth=50.0, initial_head=-100.0, checkpoint=False)
    params = {k: jnp.asarray(soil[:, j:j + 1], jnp.float32) for j, k in enumerate(keys)}
    forcing = {"precipitation": jnp.asarray(water / 10.0, jnp.float32),
               "potential_transpiration": jnp.asarray(0.8 * pet / 10.0, jnp.float32)}
    _, out = jax.jit(lambda f, q: simulate(model, q, f, check=False))(forcing, params)
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
    )
    return ds


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------


def _sliding(x: Array, length: int) -> Array:
    """``[B, L, F] -> [B, L, length, F]``: the ``length`` days ending at each day (the
    first day repeated before the start)."""
    steps = jnp.arange(x.shape[1])[:, None] - (length - 1) + jnp.arange(length)[None, :]
    return x[:, jnp.clip(steps, 0, None)]


class SequenceLSTM(nn.Module):
    """PHY-LSTM backbone (Geng et al. 2024): one LSTM over the ``sequence_length`` days
    ending at each day t, a linear head, output de-standardised to m3 m-3.

    Input ``batch.inputs`` ``[B, L, F]`` (standardised; soil moisture enters lagged by one
    day), output ``{"soil_moisture": [B, L]}`` — day t's forecast uses inputs of days
    t − 6 ... t only, so training windows (L = 8, warm-up 7) and whole-period evaluation
    give the same numbers. The same series is also returned as ``"streamflow"``, the
    output the Trainer scores on validation data.

    Attributes:
        hidden_size: 128 in the paper.
        sequence_length: 7 days.
        dropout_rate: 0.15.
        target_mean, target_std: de-standardisation of the head (m3 m-3).
    """

    hidden_size: int = 128
    sequence_length: int = 7
    dropout_rate: float = 0.15
    target_mean: float = 0.0
    target_std: float = 1.0

    @nn.compact
    def __call__(self, batch: Batch, deterministic: bool = True) -> dict[str, Array]:
        x = batch.inputs
        b, length, f = x.shape
        windows = _sliding(x, self.sequence_length).reshape(b * length, self.sequence_length, f)
        y = LSTM(self.hidden_size, output_size=1, dropout_rate=self.dropout_rate, return_sequences=False,
                 name="lstm")(windows, deterministic=deterministic)
        sm = self.target_mean + self.target_std * y.reshape(b, length)
        # the Trainer's validation scores the "streamflow" output (train.py has no option)
        return {"soil_moisture": sm, "streamflow": sm}


class ProfileCNNLSTM(nn.Module):
    """PGDL CNN-LSTM (Zhang et al. 2025): convolution over the input-feature axis at each
    day, LSTM over time, a head for ``n_depths`` water contents.

    ``bounded=True`` maps the head through :func:`bounded_water_content` with each
    pixel's ``theta_r``/``theta_s`` (read from the ``batch.forcing`` entries named in
    ``bounds``, physical, constant in time); otherwise the head is de-standardised linearly (the plain CNN-LSTM baseline).
    Output ``{"profile": [B, L, n_depths]}`` (m3 m-3) and its first depth under
    ``"streamflow"`` (the Trainer scores that name on validation data).
    """

    n_depths: int = 5
    hidden_size: int = 64
    conv_features: tuple[int, ...] = (16, 16)
    kernel_size: int = 3
    dropout_rate: float = 0.1
    bounded: bool = True
    target_mean: float = 0.3
    target_std: float = 0.1
    bounds: tuple[str, str] = ("theta_r", "theta_s")

    @nn.compact
    def __call__(self, batch: Batch, deterministic: bool = True) -> dict[str, Array]:
        h = CNNLSTM(self.hidden_size, conv_features=self.conv_features, kernel_size=self.kernel_size,
                    conv_axis="layer", dropout_rate=self.dropout_rate, name="cnn_lstm")(batch.inputs, deterministic=deterministic)
        raw = nn.Dense(self.n_depths, name="head")(h)
        if self.bounded:
            tr, ts = (batch.forcing[k][..., None] for k in self.bounds)
            # start near the training mean: sigmoid(raw + offset) ≈ mean fraction
            frac = jnp.clip((self.target_mean - tr) / (ts - tr), 0.05, 0.95)
            theta = bounded_water_content(raw + jnp.log(frac / (1 - frac)), tr, ts)
        else:
            theta = self.target_mean + self.target_std * raw
        # "streamflow" = top estimated layer, the series the Trainer's validation scores
        return {"profile": theta, "streamflow": theta[..., 0]}


# ----------------------------------------------------------------------------------------
# Losses wired to batches
# ----------------------------------------------------------------------------------------


def _observed(batch: Batch) -> Array:
    flag = batch.forcing.get("observed_flag")
    return batch.target if flag is None else jnp.where(flag > 0.5, batch.target, jnp.nan)


def phy_lstm_loss(water_balance_name: str | None, rmse_weight: float = 0.5, physics_weight: float = 0.5,
                  mask_disagreement: bool = True):
    """Trainer loss ``λ1·RMSE + λ2·Loss_PHY`` on ``predictions["soil_moisture"]``.

    ``water_balance_name`` is the ``batch.forcing`` entry holding W (e.g. ``"w_A2"``);
    ``None`` is the plain LSTM (RMSE only, the weights ignored).
    """

    def loss(pred, batch, ctx):
        sm = pred["soil_moisture"]
        if water_balance_name is None:
            return losses.rmse(sm, batch.target, batch.mask)
        return losses.water_balance_loss(sm, _observed(batch), batch.forcing[water_balance_name], batch.mask,
                                         rmse_weight, physics_weight, mask_disagreement=mask_disagreement)

    return loss


def profile_residual(theta: Array, forcing: Mapping[str, Array], depths=TWIN_DEPTHS_CM,
                     root_fraction: Sequence[float] | None = None) -> Array:
    """Richards residual (§3.6) of predicted profiles ``[B, L, n_depths]`` with each pixel's
    van Genuchten parameters and, when ``root_fraction`` is given, the Feddes uptake sink
    ``S_i = 0.8·PET·r_i·α_F(h_i)/Δ_i`` (the twin's). Returns ``[B, L − 1, n_depths − 2]``
    (d-1); ``forcing`` holds ``theta_r``, ``theta_s``, ``alpha``, ``n``, ``k_s`` (cm d-1)
    and ``pet`` (mm d-1) as ``[B, L]``."""
    soil = {k: forcing[k][:, 1:, None] for k in ("theta_r", "theta_s", "alpha", "n", "k_s")}
    sink = 0.0
    if root_fraction is not None:
        from .physics.soil_hydraulics import vg_pressure_head

        h = vg_pressure_head(theta[:, 1:], soil["theta_r"], soil["theta_s"], soil["alpha"], soil["n"])
        depths_np = np.asarray(depths, float)
        control = np.gradient(depths_np) if len(depths_np) > 1 else np.ones(1)
        roots = jnp.asarray(np.asarray(root_fraction, float) / control, theta.dtype)
        sink = 0.08 * forcing["pet"][:, 1:, None] * roots * feddes_reduction(h)
    return richards_residual(theta[:, :-1], theta[:, 1:], jnp.asarray(depths, theta.dtype), soil, 1.0, sink)


def pgdl_loss(target_names: Sequence[str], physics_weight: float = 0.0, root_fraction=None, depths=TWIN_DEPTHS_CM):
    """Trainer loss for the profile models: mean over depths of the RMSE against
    ``batch.forcing[target_names[i]]`` (observations, physical units) plus
    ``physics_weight`` · mean squared Richards residual (:func:`profile_residual`) over
    the masked days."""

    def loss(pred, batch, ctx):
        theta = pred["profile"]
        fit = sum(losses.rmse(theta[..., i], batch.forcing[n], batch.mask) for i, n in enumerate(target_names)) / len(target_names)
        if physics_weight == 0.0:
            return fit
        r = profile_residual(theta, batch.forcing, depths, root_fraction)
        pair = (batch.mask[:, 1:] & batch.mask[:, :-1])[..., None]
        pair = jnp.broadcast_to(pair, r.shape)
        return fit + physics_weight * losses.masked_mean(r**2, pair)

    return loss


# ----------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------


def inconsistency_share(residual: Array, tolerance: float, mask: Array | None = None) -> float:
    """Share of (pixel, day, node) residuals with ``|R| > tolerance`` (d-1)."""
    r = np.abs(np.asarray(residual))
    ok = np.isfinite(r) if mask is None else (np.asarray(mask, bool) & np.isfinite(r))
    return float((r[ok] > tolerance).mean())


def score(sim: np.ndarray, obs: np.ndarray, water_balance: np.ndarray | None = None, axis: int = -1) -> dict[str, float]:
    """R, RMSE, R² (coefficient of determination), KGE pooled as the median over series
    (axis = time) and, with W, the median physical consistency (Geng et al. 2024)."""
    sim, obs = np.asarray(sim, np.float64), np.asarray(obs, np.float64)
    out = {
        "R": float(np.nanmedian(np.asarray(metrics.pearson_r(sim, obs, axis=axis)))),
        "RMSE": float(np.nanmedian(np.asarray(metrics.rmse(sim, obs, axis=axis)))),
        "R2": float(np.nanmedian(np.asarray(metrics.r2_cod(sim, obs, axis=axis)))),
        "KGE": float(np.nanmedian(np.asarray(metrics.kge(sim, obs, axis=axis)))),
    }
    if water_balance is not None:
        w = np.asarray(water_balance, np.float64)
        # consistency only where the forecast is scored (obs present at t and t − 1)
        sim_c = np.where(np.isfinite(obs), sim, np.nan)
        v = np.asarray(metrics.physical_consistency(w, obs, np.nan_to_num(sim_c, nan=0.0), axis=axis))
        valid = np.isfinite(np.moveaxis(sim_c, axis, -1)[..., 1:]) & np.isfinite(np.moveaxis(obs, axis, -1)[..., :-1])
        if not valid.all():
            dw = np.sign(np.diff(np.moveaxis(w, axis, -1), axis=-1))
            vv = dw * (np.moveaxis(obs, axis, -1)[..., :-1] - np.moveaxis(sim_c, axis, -1)[..., 1:])
            v = ((vv < 0) & valid).sum(-1) / (((vv < 0) | (vv > 0)) & valid).sum(-1)
        v = np.asarray(v, np.float64)
        # a forecast that never changes (persistence) has no scored step: PC undefined
        out["PC"] = float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
    return out


# ----------------------------------------------------------------------------------------
# Tabular baselines (lazy imports)
# ----------------------------------------------------------------------------------------


def lagged_features(columns: Mapping[str, np.ndarray], lags: int = 7) -> np.ndarray:
    """Stack ``[pixel, time]`` series and their ``lags − 1`` previous days into rows
    ``[pixel, time, n_columns · lags]`` (the first days repeat day 0), the tabular view of
    a ``lags``-day window for RF / XGBoost."""
    feats = []
    for v in columns.values():
        v = np.asarray(v, np.float32)
        for lag in range(lags):
            shifted = np.concatenate([np.repeat(v[:, :1], lag, axis=1), v[:, : v.shape[1] - lag]], axis=1)
            feats.append(shifted)
    return np.stack(feats, axis=-1)


def fit_random_forest(x: np.ndarray, y: np.ndarray, n_estimators: int = 100, seed: int = 0, **kwargs):
    """scikit-learn ``RandomForestRegressor`` (multi-output) on rows ``x [n, F]``, ``y [n, D]``."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=5, n_jobs=2, random_state=seed, **kwargs)
    return model.fit(x, y)


def fit_xgboost(x: np.ndarray, y: np.ndarray, n_estimators: int = 300, seed: int = 0, **kwargs):
    """XGBoost ``XGBRegressor`` (hist trees, one model per output) on ``x [n, F]``, ``y [n, D]``."""
    from xgboost import XGBRegressor

    model = XGBRegressor(n_estimators=n_estimators, max_depth=6, learning_rate=0.05, subsample=0.8,
                         tree_method="hist", n_jobs=2, random_state=seed, **kwargs)
    return model.fit(x, y)
