"""The experiment layer: configs, run directories, train / evaluate / predict, outputs.

- :func:`load_config` (``config.py``): the YAML schema, defaults and validation (no JAX,
  no xarray: the ``difhydro`` command checks a config before it imports them);
- :func:`train_run` (``run.py``): ``difhydro train``;
- :func:`load_run` (``api.py``): a trained run with ``predict`` and ``evaluate``;
- ``outputs.py`` (metrics.csv, CF-1.8 netCDF, summary.md), ``plots.py``, ``rundir.py``;
- ``neuralhydrology.py``: neuralhydrology's cudalstm as the peer of the regional LSTM;
- the ``difhydro`` command (``cli.py``) is a thin layer over these.

Names are imported on first use (PEP 562).
"""

from .._lazy import lazy_exports

_WHERE = {"Config": "config", "ConfigError": "config", "load_config": "config", "train_run": "run",
          "Run": "api", "load_run": "api"}

__all__ = ["Config", "ConfigError", "load_config", "train_run", "Run", "load_run"]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
