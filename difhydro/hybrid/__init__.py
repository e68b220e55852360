"""Hybrid models: process models as recurrent layers inside Flax networks.

- :class:`ParamHead` (``params.py``): network output -> named raw values -> physical values;
- :class:`PRNN` and :func:`run_physics` (``layer.py``): the only bridge to
  :func:`~difhydro.physics.simulate` and the only place that moves the time axis;
- :class:`HybridPRNN`, :class:`DifferentiableParameterLearning`, :class:`RegionalLSTM` and
  the model registry :data:`MODELS` (``models.py``).

Every array here is basin-first: ``[basin, time, ...]``.
"""

from .layer import PRNN as PRNN
from .layer import run_physics as run_physics
from .models import MODELS as MODELS
from .models import DifferentiableParameterLearning as DifferentiableParameterLearning
from .models import HybridPRNN as HybridPRNN
from .models import RegionalLSTM as RegionalLSTM
from .models import RegisteredModel as RegisteredModel
from .models import build_model as build_model
from .models import check_batch as check_batch
from .models import field as field
from .models import inputs_with_attributes as inputs_with_attributes
from .models import model_options as model_options
from .models import register_model as register_model
from .params import ROUTING_SPECS as ROUTING_SPECS
from .params import ParamHead as ParamHead
from .params import split_last_axis as split_last_axis

__all__ = [
    "ParamHead", "ROUTING_SPECS", "split_last_axis", "PRNN", "run_physics", "HybridPRNN",
    "DifferentiableParameterLearning", "RegionalLSTM", "MODELS", "RegisteredModel",
    "register_model", "build_model", "model_options", "field", "check_batch",
    "inputs_with_attributes",
]
