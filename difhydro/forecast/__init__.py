"""Forecasting with observed flow: variational state updating of process models (the
cycling incremental update of :mod:`.incremental`, which ``--assimilate`` runs, and the exact
window re-simulation of :mod:`.assimilation`) and lagged observed-flow inputs with random
holdout (:mod:`.autoregression`, with the autoregressive LSTM). Arrays are basin-first
(``[basin, time, ...]``)."""

from .assimilation import Assimilation as Assimilation
from .assimilation import flow_misfit as flow_misfit
from .assimilation import open_loop as open_loop
from .assimilation import rolling_forecast as rolling_forecast
from .assimilation import update_state as update_state
from .incremental import incremental_forecast as incremental_forecast
from .autoregression import AutoregressiveLSTM as AutoregressiveLSTM
from .autoregression import holdout_mask as holdout_mask
from .autoregression import lagged_flow as lagged_flow
from .autoregression import observed_lagged_flow as observed_lagged_flow

__all__ = ["Assimilation", "flow_misfit", "open_loop", "rolling_forecast", "update_state", "incremental_forecast",
           "holdout_mask", "lagged_flow", "observed_lagged_flow", "AutoregressiveLSTM"]
