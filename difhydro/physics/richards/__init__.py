"""One-dimensional Richards equation: layered soil, Newton to a tolerance, adaptive steps.

One idea per module:

- :mod:`.fluxes`: face fluxes, the storage coefficient, the Feddes root sink;
- :mod:`.newton`: the Newton / modified Picard iteration with line search;
- :mod:`.implicit`: the gradient of a converged sub-step (implicit function theorem);
- :mod:`.substep`: one backward-Euler sub-step (:func:`richards_substep`);
- :mod:`.adaptive`: the day cut into sub-steps that halve where Newton fails (HYDRUS-1D's
  control), inside jit, with its custom VJP;
- :mod:`.settings`: :class:`RichardsSolver`, the solver settings, validated once;
- :mod:`.model`: :class:`Richards1D`, the daily P-RNN layer;
- :mod:`.residual`: :func:`richards_residual`, the discrete residual as a physics loss.

Equations and reference numbers: docs/physics.md section 3.
"""

from .fluxes import SubstepFluxes, feddes_reduction
from .model import Richards1D
from .residual import richards_residual
from .settings import RichardsSolver
from .substep import richards_substep

__all__ = ["Richards1D", "RichardsSolver", "richards_substep", "richards_residual", "feddes_reduction",
           "SubstepFluxes"]
