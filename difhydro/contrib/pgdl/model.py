"""The PGDL CNN-LSTM of Zhang et al. (2025, doi:10.1016/j.jhydrol.2025.133086): soil-moisture
profiles from a convolution over the inputs and an LSTM over time, bounded to each soil's
``[theta_r, theta_s]`` and trained with RMSE plus the Richards residual (docs/physics.md §3.6).

The Richards twin it is tested on is :func:`difhydro.data.richards_twin`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ...data.batching import Batch
from ...data.synthetic import TWIN_DEPTHS_CM
from ...hybrid import inputs_with_attributes
from ...nn import CNNLSTM
from ...physics.richards import feddes_reduction, richards_residual
from ...physics.richards.model import DEFAULT_AIR_ENTRY
from ...physics.soil_hydraulics import VanGenuchten
from ...training.losses import richards_residual_loss, rmse

Array = jax.Array

__all__ = ["bounded_water_content", "ProfileCNNLSTM", "profile_residual", "pgdl_loss", "inconsistency_share"]


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


class ProfileCNNLSTM(nn.Module):
    """PGDL CNN-LSTM (Zhang et al. 2025): convolution over the input-feature axis at each
    day, LSTM over time, a head for ``n_depths`` water contents.

    ``bounded=True`` maps the head through :func:`bounded_water_content` with each
    pixel's ``theta_r``/``theta_s`` (the ``batch.static`` fields named in ``bounds``,
    physical); otherwise the head is de-standardised linearly (the plain CNN-LSTM
    baseline). Output ``{"profile": [B, L, n_depths]}`` (m3 m-3) and each depth under its
    name in ``depth_names`` (``[B, L]``), the names the Trainer scores.
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
    depth_names: tuple[str, ...] = ()

    @nn.compact
    def __call__(self, batch: Batch, deterministic: bool = True) -> dict[str, Array]:
        x = inputs_with_attributes(batch)  # dynamic inputs, then the (standardised) soil attributes
        h = CNNLSTM(self.hidden_size, conv_features=self.conv_features, kernel_size=self.kernel_size,
                    conv_axis="layer", dropout_rate=self.dropout_rate, name="cnn_lstm")(x, deterministic=deterministic)
        raw = nn.Dense(self.n_depths, name="head")(h)
        if self.bounded:
            tr, ts = (batch.static[k][:, None, None] for k in self.bounds)
            # start near the training mean: sigmoid(raw + offset) ≈ mean fraction
            frac = jnp.clip((self.target_mean - tr) / (ts - tr), 0.05, 0.95)
            theta = bounded_water_content(raw + jnp.log(frac / (1 - frac)), tr, ts)
        else:
            theta = self.target_mean + self.target_std * raw
        if self.depth_names and len(self.depth_names) != self.n_depths:
            raise ValueError(f"depth_names {self.depth_names} must name the {self.n_depths} depths")
        return {"profile": theta, **{name: theta[..., i] for i, name in enumerate(self.depth_names)}}


_SOIL = ("theta_r", "theta_s", "alpha", "n", "k_s")


def _soil(static: Mapping[str, Array], air_entry: float) -> VanGenuchten:
    """Per-pixel van Genuchten soil from parameters ``[B]``, as ``[B, 1, 1]`` (over days and
    depths), on the retention curve with air-entry head ``air_entry`` (cm)."""
    missing = [k for k in _SOIL if k not in static]
    if missing:
        raise ValueError(f"the batch's static fields lack the soil parameters {missing}")
    return VanGenuchten(*(jnp.asarray(static[k])[:, None, None] for k in _SOIL), air_entry=air_entry)


def _uptake(theta: Array, soil, pet: Array, depths, root_fraction) -> Array | float:
    """Feddes root-water uptake of the twin, ``S_i = 0.8·PET·r_i·α_F(h_i)/Δ_i`` (d-1), at
    days 1..L-1 of ``theta`` ``[B, L, n_depths]``; 0 without ``root_fraction``."""
    if root_fraction is None:
        return 0.0
    h = soil.pressure_head(theta[:, 1:])
    depths_np = np.asarray(depths, float)
    control = np.gradient(depths_np) if len(depths_np) > 1 else np.ones(1)
    roots = jnp.asarray(np.asarray(root_fraction, float) / control, theta.dtype)
    return 0.08 * pet[:, 1:, None] * roots * feddes_reduction(h)


def profile_residual(theta: Array, static: Mapping[str, Array], pet: Array, depths=TWIN_DEPTHS_CM,
                     root_fraction: Sequence[float] | None = None, air_entry: float = DEFAULT_AIR_ENTRY) -> Array:
    """Richards residual (docs/physics.md §3.6) of predicted profiles ``[B, L, n_depths]`` with
    each pixel's van Genuchten parameters (``static``: ``theta_r``, ``theta_s``, ``alpha``,
    ``n``, ``k_s`` (cm d-1), ``[B]``) and, when ``root_fraction`` is given, the twin's Feddes
    uptake from ``pet`` (mm d-1, ``[B, L]``). ``air_entry`` (cm) is that of the retention
    curve (docs/physics.md §3.1): by default Richards1D's, the curve the twin is generated
    with; 0 for the plain van Genuchten curve. Returns ``[B, L − 1, n_depths − 2]`` (d-1)."""
    soil = _soil(static, air_entry)
    sink = _uptake(theta, soil, pet, depths, root_fraction)
    return richards_residual(theta[:, :-1], theta[:, 1:], jnp.asarray(depths, theta.dtype), soil, 1.0, sink)


def pgdl_loss(target_names: Sequence[str], physics_weight: float = 0.0, root_fraction=None, depths=TWIN_DEPTHS_CM,
              air_entry: float = DEFAULT_AIR_ENTRY):
    """Trainer loss of the profile models: mean over depths of the RMSE of the output named
    like each target against ``batch.targets[name]`` plus ``physics_weight`` · mean squared
    Richards residual (:func:`~difhydro.training.losses.richards_residual_loss`) over the
    days whose pair is scored, on the retention curve with air-entry head ``air_entry``
    (cm; by default Richards1D's, the twin's)."""

    def loss(pred, batch, ctx):
        theta = pred["profile"]
        fit = sum(rmse(theta[..., i], batch.targets[n], batch.masks[n]) for i, n in enumerate(target_names)) / len(target_names)
        if physics_weight == 0.0:
            return fit
        soil = _soil(batch.static, air_entry)
        sink = _uptake(theta, soil, batch.forcing["pet"], depths, root_fraction)
        return fit + physics_weight * richards_residual_loss(theta, jnp.asarray(depths, theta.dtype), soil,
                                                             batch.masks[target_names[0]], sink=sink)

    return loss


def inconsistency_share(residual: Array, tolerance: float, mask: Array | None = None) -> float:
    """Share of (pixel, day, node) residuals with ``|R| > tolerance`` (d-1)."""
    r = np.abs(np.asarray(residual))
    ok = np.isfinite(r) if mask is None else (np.asarray(mask, bool) & np.isfinite(r))
    return float((r[ok] > tolerance).mean())


