"""One sub-stepping mechanism for every process model, and the checkpoint switch.

A process model's :meth:`~difhydro.physics.ProcessModel.step` advances one forcing
interval (a day). Models whose scheme needs shorter steps (EXP-HYDRO's Euler and RK4, the
VIC runoff steps, the backward-Euler Richards solver) split the interval into ``n`` equal
sub-steps with the forcing held constant. :func:`substeps` runs a model's sub-step function
``n`` times (a ``lax.scan`` when ``n > 1``) and adds up the water each sub-step moved, so
every model reports interval totals the same way. The model supplies the sub-step; the
loop lives here, as ``diffrax`` separates a vector field from its solver.

:func:`checkpointed` is the one place that decides whether a step function is wrapped in
``jax.checkpoint`` (recomputed in the backward pass instead of stored): :func:`simulate
<difhydro.physics.simulate>` calls it with the caller's choice or, by default, the model's
measured preference :attr:`~difhydro.physics.ProcessModel.default_checkpoint`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

__all__ = ["substeps", "checkpointed"]

State = TypeVar("State")
Fluxes = Any


def substeps(
    substep: Callable[[State], tuple[State, Fluxes]],
    state: State,
    n: int,
    combine: Callable[[Fluxes, Fluxes], Fluxes] | None = None,
    identity: Fluxes | None = None,
) -> tuple[State, Fluxes]:
    """Apply ``substep`` ``n`` times and sum the amounts it returns.

    Args:
        substep: ``state -> (state, fluxes)``; ``fluxes`` is a pytree of the water moved in
            one sub-step (amounts, e.g. mm, not rates), shaped like the batch.
        state: pytree of storages at the start of the interval.
        n: number of sub-steps (a static int >= 1).
        combine: ``(running total, fluxes) -> running total``; the default adds leaf by
            leaf. A model that also reports diagnostics (the Richards solver's iteration
            count and convergence flag) passes its own.
        identity: pytree of scalars, one per leaf of ``fluxes``, that ``combine`` leaves
            unchanged (the running total starts there); default 0 for every leaf.

    Returns:
        ``(state after n sub-steps, fluxes combined over the sub-steps)``. With ``n == 1``
        it is ``substep(state)`` itself (no loop is traced).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of sub-steps must be >= 1, got {n}")
    if n == 1:
        return substep(state)
    if combine is None:
        combine = functools.partial(jax.tree.map, jnp.add)
    shapes = jax.eval_shape(substep, state)[1]
    if identity is None:
        identity = jax.tree.map(lambda _: 0, shapes)
    start = jax.tree.map(lambda s, v: jnp.full(s.shape, v, s.dtype), shapes, identity)

    def body(carry, _):
        current, total = carry
        current, fluxes = substep(current)
        return (current, combine(total, fluxes)), None

    (state, total), _ = jax.lax.scan(body, (state, start), None, length=n)
    return state, total


def checkpointed(fn: Callable, checkpoint: bool) -> Callable:
    """``jax.checkpoint(fn)`` when ``checkpoint`` is true, else ``fn``: bounded memory for
    long scans at the price of recomputing ``fn`` in the backward pass."""
    return jax.checkpoint(fn) if checkpoint else fn
