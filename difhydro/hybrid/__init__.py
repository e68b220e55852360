"""Hybrid models: process models as recurrent layers inside Flax networks.

- :class:`ParamHead` (``params.py``): network output -> named raw values -> physical values;
- :class:`PRNN` and :func:`run_physics` (``layer.py``): the only bridge to
  :func:`~difhydro.physics.simulate` and the only place that moves the time axis;
- :class:`HybridPRNN`, :class:`DifferentiableParameterLearning`, :class:`RegionalLSTM`
  (``models.py``) and the model registry :data:`MODELS` (``registry.py``, readable without
  Flax: the ``difhydro`` command lists and checks models before it imports JAX).

Every array here is basin-first: ``[basin, time, ...]``. Names are imported on first use
(PEP 562), so that ``from difhydro.hybrid import MODELS`` stays light.
"""

from .._lazy import lazy_exports

_WHERE = {
    "ParamHead": "params", "ROUTING_SPECS": "params", "split_last_axis": "params",
    "PRNN": "layer", "run_physics": "layer",
    "HybridPRNN": "models", "DifferentiableParameterLearning": "models", "RegionalLSTM": "models", "RegionalTransformer": "models",
    "field": "models", "check_batch": "models", "inputs_with_attributes": "models",
    "MODELS": "registry", "RegisteredModel": "registry", "register_model": "registry",
    "build_model": "registry", "model_options": "registry",
}

__all__ = [
    "ParamHead", "ROUTING_SPECS", "split_last_axis", "PRNN", "run_physics", "HybridPRNN",
    "DifferentiableParameterLearning", "RegionalLSTM", "RegionalTransformer", "MODELS", "RegisteredModel",
    "register_model", "build_model", "model_options", "field", "check_batch",
    "inputs_with_attributes",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
