"""difhydro: differentiable hydrology in JAX.

Subpackages (dependencies point down the list):

- :mod:`difhydro.contrib`: one package per paper (PHY-LSTM, PGDL, ParaFormer, δHBV);
- :mod:`difhydro.experiment`: configs, run directories, train / evaluate / predict, the
  ``difhydro`` command;
- :mod:`difhydro.forecast`: state updating and autoregressive inputs (observed flow);
- :mod:`difhydro.training`: the Trainer, losses, metrics, calibration;
- :mod:`difhydro.hybrid`: ParamHead, the PRNN layer, hybrid and regional models, the registry;
- :mod:`difhydro.nn`, :mod:`difhydro.physics`, :mod:`difhydro.data`: generic layers, process
  models, readers and batching.

Public arrays are basin-first (``[basin, time, ...]``); process models scan time-first
inside :func:`difhydro.physics.simulate` (see ``docs/architecture.md``).
"""

__version__ = "0.2.0"

from importlib import import_module

_SUBPACKAGES = ("data", "experiment", "forecast", "hybrid", "nn", "physics", "training")

__all__ = ["data", "experiment", "forecast", "hybrid", "nn", "physics", "training", "load_run", "__version__"]


def __getattr__(name):
    """Subpackages and ``load_run`` on first use (PEP 562): ``import difhydro`` and the
    ``difhydro`` command's help, config listing and config checks import neither JAX nor
    xarray, and importing difhydro changes no global state."""
    if name in _SUBPACKAGES:
        return import_module(f".{name}", __name__)
    if name == "load_run":
        value = import_module(".experiment.api", __name__).load_run
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
