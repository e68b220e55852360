"""difhydro: differentiable hydrology in JAX.

Subpackages (dependencies point down the list):

- :mod:`difhydro.contrib`: one package per paper (PHY-LSTM, PGDL, ParaFormer, δHBV);
- :mod:`difhydro.experiment`: configs, run directories, train / evaluate / predict, the
  ``difhydro`` command;
- :mod:`difhydro.training`: the Trainer, losses, metrics, calibration;
- :mod:`difhydro.hybrid`: ParamHead, the PRNN layer, hybrid and regional models, the registry;
- :mod:`difhydro.nn`, :mod:`difhydro.physics`, :mod:`difhydro.data`: generic layers, process
  models, readers and batching.

Public arrays are basin-first (``[basin, time, ...]``); process models scan time-first
inside :func:`difhydro.physics.simulate` (see ``docs/architecture.md``).
"""

__version__ = "0.2.0"

from . import data as data
from . import experiment as experiment
from . import hybrid as hybrid
from . import nn as nn
from . import physics as physics
from . import training as training
from .experiment import load_run as load_run

__all__ = ["data", "experiment", "hybrid", "nn", "physics", "training", "load_run", "__version__"]
