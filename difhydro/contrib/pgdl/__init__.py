"""PGDL CNN-LSTM (Zhang et al. 2025): physics-guided soil-moisture profiles.

The model, its loss and the residual diagnostics in :mod:`.model`; the tabular baselines in
:mod:`.baselines`. Full experiment: ``examples/pgdl_cnn_lstm.py``; results in
``docs/soil_moisture_results.md``.
"""

from .baselines import fit_random_forest as fit_random_forest
from .baselines import fit_xgboost as fit_xgboost
from .baselines import lagged_features as lagged_features
from .model import ProfileCNNLSTM as ProfileCNNLSTM
from .model import bounded_water_content as bounded_water_content
from .model import inconsistency_share as inconsistency_share
from .model import pgdl_loss as pgdl_loss
from .model import profile_residual as profile_residual

__all__ = ["bounded_water_content", "ProfileCNNLSTM", "profile_residual", "pgdl_loss", "inconsistency_share",
           "lagged_features", "fit_random_forest", "fit_xgboost"]
