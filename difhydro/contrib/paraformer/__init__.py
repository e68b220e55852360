"""ParaFormer (Li & Lu 2023, Remote Sens. 15, 3536): attention networks that learn process
model parameters, trained through the differentiable physics or through a frozen surrogate.

Networks in :mod:`.networks`, the surrogate route in :mod:`.surrogate`, the learner and the
range-boundary loss in :mod:`.learner`, scores and spatial helpers in :mod:`.evaluation`.
The full comparison is ``examples/paraformer.py``; results in ``docs/paraformer_results.md``.
"""

from .evaluation import neighbour_split as neighbour_split
from .evaluation import parameter_r2 as parameter_r2
from .evaluation import roughness as roughness
from .evaluation import score as score
from .learner import ParameterLearner as ParameterLearner
from .learner import check_history as check_history
from .learner import check_leakage as check_leakage
from .learner import fit_parameter_learner as fit_parameter_learner
from .learner import paraformer_loss as paraformer_loss
from .learner import range_boundary_loss as range_boundary_loss
from .networks import HISTORY_NETWORKS as HISTORY_NETWORKS
from .networks import NETWORKS as NETWORKS
from .networks import PAPER_BOUNDS as PAPER_BOUNDS
from .networks import PAPER_HISTORY_DAYS as PAPER_HISTORY_DAYS
from .networks import PAPER_SIZES as PAPER_SIZES
from .networks import ParaFormerA as ParaFormerA
from .networks import ParaFormerZ as ParaFormerZ
from .networks import ParameterNetwork as ParameterNetwork
from .surrogate import FrozenSurrogate as FrozenSurrogate
from .surrogate import StreamflowSurrogate as StreamflowSurrogate
from .surrogate import train_surrogate as train_surrogate

__all__ = [
    "PAPER_BOUNDS", "PAPER_SIZES", "NETWORKS", "HISTORY_NETWORKS", "PAPER_HISTORY_DAYS", "ParaFormerA",
    "ParaFormerZ", "ParameterNetwork", "StreamflowSurrogate", "FrozenSurrogate", "train_surrogate",
    "ParameterLearner", "check_leakage", "check_history", "range_boundary_loss", "paraformer_loss",
    "fit_parameter_learner", "score", "neighbour_split", "parameter_r2", "roughness",
]
