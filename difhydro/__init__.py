"""difhydro: differentiable hydrology in JAX.

Process models (:mod:`difhydro.physics`) are pure ``lax.scan`` step functions that can be
used alone, calibrated by gradient descent, or wrapped as physics RNN layers inside
neural networks.
"""

from . import metrics, physics

__version__ = "0.1.0"
__all__ = ["metrics", "physics", "__version__"]
