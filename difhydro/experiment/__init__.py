"""The experiment layer: configs, run directories, train / evaluate / predict, outputs.

- :func:`load_config` (``config.py``): the YAML schema, defaults and validation;
- :func:`train_run` (``run.py``): ``difhydro train``;
- :func:`load_run` (``api.py``): a trained run with ``predict`` and ``evaluate``;
- ``outputs.py`` (metrics.csv, CF-1.8 netCDF, summary.md), ``plots.py``, ``rundir.py``;
- ``neuralhydrology.py``: neuralhydrology's cudalstm as the peer of the regional LSTM;
- the ``difhydro`` command (``cli.py``) is a thin layer over these.
"""

from .api import Run as Run
from .api import load_run as load_run
from .config import Config as Config
from .config import ConfigError as ConfigError
from .config import load_config as load_config
from .run import train_run as train_run

__all__ = ["Config", "ConfigError", "load_config", "train_run", "Run", "load_run"]
