"""The solver settings of the Richards model: one frozen module, validated once.

:class:`~difhydro.physics.richards.Richards1D` holds a :class:`RichardsSolver` the way the
implicit solvers of diffrax hold a root finder; :func:`~difhydro.physics.richards.richards_substep`
builds one from its keyword arguments. Everything that says *how* a backward-Euler step is
solved and how the day is cut into steps lives here; what the profile *is* (layers,
boundaries, roots) stays in the model.
"""

from __future__ import annotations

import equinox as eqx

GRADIENTS = ("implicit", "unrolled")
UPDATES = ("head", "mixed")
INTERFACES = ("arithmetic", "geometric")
CAPACITIES = ("tangent", "chord")
JACOBIANS = ("picard", "newton")


def check_choice(name: str, value: str, choices: tuple[str, ...]):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class RichardsSolver(eqx.Module):
    """How each backward-Euler sub-step is solved and how a forcing step is cut into them.

    Iteration (one sub-step; see :func:`~difhydro.physics.richards.richards_substep`):

    - ``n_iter``: cap on the iterations of a sub-step (with ``tol=None`` their fixed number).
    - ``tol``: a sub-step has converged when every cell's mass residual is within ``tol``
      of its content plus its throughput; ``None`` runs exactly ``n_iter`` iterations
      (convergence still reported, against 1e-6) and turns the time-step control off.
    - ``jacobian``: ``"newton"`` (dK/dh included) or ``"picard"`` (Celia's frozen K).
    - ``capacity``: ``"tangent"`` or ``"chord"`` storage coefficient (matrix only).
    - ``interface``: ``"arithmetic"`` or ``"geometric"`` face conductivity.
    - ``diagonal_shift``: relative diagonal shift of the iteration matrix.
    - ``max_head_change``: ``(a, b)``, each update limited to ``a + b |h|`` cm; ``None`` undamped.
    - ``gradient``: ``"implicit"`` (implicit function theorem at the converged step) or
      ``"unrolled"`` (through a fixed ``n_iter``-pass scan).
    - ``update``: ``"mixed"`` or ``"head"``; ``line_search``: backtracking on the residual.
    - ``flux_update``: theta advanced by the fluxes of the solution (exact balance).
    - ``ponding_head``: surface head once ponded (cm); the excess is runoff.

    Time-step control (HYDRUS-1D's rule, on a binary grid): a sub-step that has not
    converged after ``n_iter`` iterations is repeated from its start with half the step,
    down to ``1 / 2**max_halvings`` of the nominal sub-step (``dt / n_substeps``); after
    ``grow_after`` easy steps in a row (converged within :attr:`easy_iterations`, 3/10 of
    ``n_iter``) the step doubles again (never beyond the
    nominal one, never across a nominal boundary). A step that fails at the smallest size
    is kept and the day reported unconverged. ``max_substeps`` bounds the accepted steps
    of one forcing step (``None``: the whole grid, ``n_substeps * 2**max_halvings``, so no
    step is ever forced); the last one allowed, or the last of ``2 max_substeps +
    max_halvings`` attempts, takes the rest of the day whatever happens (reported
    unconverged if it fails). For the gradient a forward pass keeps the first
    ``stored_substeps`` accepted steps of each day (``None``: max(4 x ``n_substeps``, 96));
    a day that needed more is recomputed in the backward pass. The
    control acts only with ``tol`` set and ``gradient="implicit"``; ``max_halvings=0``
    gives the fixed sub-steps.
    """

    n_iter: int = eqx.field(static=True, default=20)
    tol: float | None = eqx.field(static=True, default=1e-6)
    jacobian: str = eqx.field(static=True, default="newton")
    capacity: str = eqx.field(static=True, default="tangent")
    interface: str = eqx.field(static=True, default="arithmetic")
    diagonal_shift: float = eqx.field(static=True, default=1e-5)
    max_head_change: tuple[float, float] | None = eqx.field(static=True, default=(50.0, 0.5))
    gradient: str = eqx.field(static=True, default="implicit")
    update: str = eqx.field(static=True, default="mixed")
    line_search: bool = eqx.field(static=True, default=True)
    flux_update: bool = eqx.field(static=True, default=True)
    ponding_head: float = eqx.field(static=True, default=0.0)
    max_halvings: int = eqx.field(static=True, default=6)
    grow_after: int = eqx.field(static=True, default=2)
    max_substeps: int | None = eqx.field(static=True, default=None)
    stored_substeps: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if int(self.n_iter) < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}")
        if self.tol is not None and not self.tol > 0:
            raise ValueError(f"tol must be positive or None, got {self.tol}")
        check_choice("interface", self.interface, INTERFACES)
        check_choice("gradient", self.gradient, GRADIENTS)
        check_choice("update", self.update, UPDATES)
        check_choice("jacobian", self.jacobian, JACOBIANS)
        check_choice("capacity", self.capacity, CAPACITIES)
        if not self.diagonal_shift >= 0:
            raise ValueError(f"diagonal_shift must be >= 0, got {self.diagonal_shift}")
        if self.max_head_change is not None and (
            len(self.max_head_change) != 2 or not min(self.max_head_change) >= 0 or not max(self.max_head_change) > 0
        ):
            raise ValueError(f"max_head_change must be None or (a >= 0, b >= 0) not both 0, got {self.max_head_change}")
        if not 0 <= int(self.max_halvings) <= 16:
            raise ValueError(f"max_halvings must be in [0, 16], got {self.max_halvings}")
        if int(self.grow_after) < 1:
            raise ValueError(f"grow_after must be >= 1, got {self.grow_after}")
        for name in ("max_substeps", "stored_substeps"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")

    @property
    def adaptive(self) -> bool:
        """Whether the time-step control runs (tolerance set, implicit gradient, halvings > 0)."""
        return self.tol is not None and self.gradient == "implicit" and int(self.max_halvings) > 0

    def step_budget(self, n_substeps: int) -> int:
        """Largest number of accepted sub-steps in one forcing step."""
        return max(int(n_substeps), int(self.max_substeps or int(n_substeps) * 2 ** int(self.max_halvings)))

    @property
    def easy_iterations(self) -> int:
        """Iterations within which an accepted step counts towards growing the step again:
        3/10 of ``n_iter`` (HYDRUS-1D: 3 of its default 10), at least 1."""
        return max(1, (3 * int(self.n_iter)) // 10)

    def stored_steps(self, n_substeps: int) -> int:
        """Accepted sub-steps of a day kept by the forward pass for the gradient."""
        return min(self.step_budget(n_substeps), int(self.stored_substeps or max(4 * int(n_substeps), 96)))
