"""Training: the Trainer (one jit-compiled step), generic losses, metrics, calibration.

- :class:`Trainer`, :class:`TrainConfig` (``trainer.py``): the compiled step, prediction,
  evaluation and the loop (validation every ``validate_every`` epochs, best epoch by the
  monitored metric's direction, early stopping, exact resume);
- :mod:`.objectives`: :class:`LossTerm`, :class:`Objective`, :func:`objective`, the named
  :data:`LOSSES` (outputs, targets and losses by name, several targets);
- :mod:`.checkpoints`: orbax checkpoints and ``log.csv`` of a run directory;
- :mod:`.losses`: NSE*, MSE, RMSE, the Richards residual loss;
- :mod:`.metrics`: NSE, KGE, ... over the time axis of ``[basin, time]`` arrays;
- :mod:`.probabilistic`: CRPS (closed forms for the CMAL and Gaussian mixtures), PIT,
  interval coverage and width;
- :mod:`.calibrate`: per-basin gradient calibration and SCE-UA (spotpy).
"""

from . import calibrate as calibrate
from . import checkpoints as checkpoints
from . import losses as losses
from . import metrics as metrics
from . import objectives as objectives
from . import probabilistic as probabilistic
from .calibrate import CalibrationResult as CalibrationResult
from .calibrate import gradient_calibration as gradient_calibration
from .calibrate import sceua_calibration as sceua_calibration
from .objectives import LOSSES as LOSSES
from .objectives import LossTerm as LossTerm
from .objectives import Objective as Objective
from .objectives import objective as objective
from .objectives import register_loss as register_loss
from .trainer import TrainConfig as TrainConfig
from .trainer import Trainer as Trainer
from .trainer import TrainState as TrainState
from .trainer import basin_mesh as basin_mesh
from .trainer import predict as predict

__all__ = [
    "Trainer", "TrainConfig", "TrainState", "LossTerm", "Objective", "LOSSES", "register_loss",
    "objective", "predict", "basin_mesh", "gradient_calibration", "sceua_calibration", "CalibrationResult",
    "losses", "metrics", "calibrate", "checkpoints", "objectives", "probabilistic",
]
