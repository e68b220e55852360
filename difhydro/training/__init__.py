"""Training: the Trainer (one jit-compiled step), generic losses, metrics, calibration.

- :class:`Trainer`, :class:`TrainConfig`, :class:`LossTerm` (``trainer.py``): outputs,
  targets and losses by name, several targets, orbax checkpoints, exact resume;
- :mod:`.losses`: NSE*, MSE, RMSE, the Richards residual loss;
- :mod:`.metrics`: NSE, KGE, ... over the time axis of ``[basin, time]`` arrays;
- :mod:`.calibrate`: per-basin gradient calibration and SCE-UA (spotpy).
"""

from . import calibrate as calibrate
from . import losses as losses
from . import metrics as metrics
from .calibrate import CalibrationResult as CalibrationResult
from .calibrate import gradient_calibration as gradient_calibration
from .calibrate import sceua_calibration as sceua_calibration
from .trainer import LOSSES as LOSSES
from .trainer import LossTerm as LossTerm
from .trainer import Objective as Objective
from .trainer import TrainConfig as TrainConfig
from .trainer import Trainer as Trainer
from .trainer import TrainState as TrainState
from .trainer import basin_mesh as basin_mesh
from .trainer import objective as objective
from .trainer import predict as predict
from .trainer import register_loss as register_loss

__all__ = [
    "Trainer", "TrainConfig", "TrainState", "LossTerm", "Objective", "LOSSES", "register_loss",
    "objective", "predict", "basin_mesh", "gradient_calibration", "sceua_calibration", "CalibrationResult",
    "losses", "metrics", "calibrate",
]
