"""δHBV (Feng et al. 2022, doi:10.1029/2022WR032404): an LSTM learns static and daily HBV
parameters; a gamma unit hydrograph routes the flow; the first year of every window spins
the buckets up without gradients.

The model is the registry entry ``dpl_hbv`` (:class:`~difhydro.hybrid.DifferentiableParameterLearning`
with the settings of :func:`dhbv_model`); this package adds δHBV's loss. Importing it
registers the loss under the name ``"dhbv"`` for :class:`~difhydro.training.LossTerm`.
"""

from __future__ import annotations

import jax.numpy as jnp

from ...hybrid import build_model
from ...training import register_loss
from ...training.losses import rmse

Array = jnp.ndarray

__all__ = ["dhbv_loss", "dhbv_model"]


def dhbv_loss(predicted: Array, observed: Array, mask: Array, weight: float = 0.25) -> Array:
    """δHBV's ``(1 − w)·RMSE(Q) + w·RMSE(g(Q))`` with ``g(Q) = log10(√(Q + 1e-6) + 0.1)``.

    Flows in mm d-1; negative predictions are clamped at 0 inside ``g`` only.
    """
    g = lambda q: jnp.log10(jnp.sqrt(jnp.maximum(q, 0.0) + 1e-6) + 0.1)  # noqa: E731
    return (1 - weight) * rmse(predicted, observed, mask) + weight * rmse(g(predicted), g(observed), mask)


def dhbv_model(hidden_size: int = 256, components: int = 16, warmup_days: int = 365):
    """The δHBV setting of Feng et al. (2022): ``Dense -> ReLU -> LSTM`` (dmg's ``LstmModel``)
    -> 16-component HBV with time-varying BETA and BETAET, gamma routing, one year of
    warm-up without gradients."""
    return build_model("dpl_hbv", hidden_size=hidden_size, components=components, warmup_days=warmup_days,
                       lstm_input_layer=True)


register_loss("dhbv", lambda p, o, m, basin_std: dhbv_loss(p, o, m))
