"""The training objective: named losses, weighted terms, and the one loss signature.

Every loss the :class:`~difhydro.training.Trainer` minimises has one signature
``loss(predictions, batch, context) -> scalar``: ``predictions`` the model's named outputs
(``[batch, time]``), ``batch`` a :class:`~difhydro.data.Batch`, ``context["basin_std"][target]``
each training basin's standard deviation of that target. :func:`objective` makes one from

- a name of :data:`LOSSES` (scored on the primary target under its own name),
- one or several :class:`LossTerm` (``weight · fn(outputs[output], targets[target], masks[target])``),
- or any such function (the paper losses of :mod:`difhydro.contrib`).

:data:`LOSSES` holds the per-term losses by name, ``fn(predicted, observed, mask, basin_std)``;
:func:`register_loss` adds one (a contrib package does on import).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax

from . import losses
from ..data.batching import Batch

__all__ = ["LossFn", "LOSSES", "DISTRIBUTION_LOSSES", "register_loss", "LossTerm", "Objective", "objective"]

Array = jax.Array
#: ``loss(predictions, batch, context) -> scalar``: what the Trainer minimises
LossFn = Callable[[Mapping[str, Array], Batch, Mapping[str, Array]], Array]


#: built-in losses by name: ``fn(predicted, observed, mask, basin_std) -> scalar``
LOSSES: dict[str, Callable[..., Array]] = {
    "nse_star": lambda p, o, m, basin_std: losses.nse_star(p, o, m, basin_std),
    "mse": lambda p, o, m, basin_std: losses.mse(p, o, m),
    "rmse": lambda p, o, m, basin_std: losses.rmse(p, o, m),
    "rmse_low_flow": lambda p, o, m, basin_std: losses.rmse_low_flow(p, o, m),
    "nll": lambda d, o, m, basin_std: losses.mixture_nll(d, o, m),
}
#: losses of a predictive distribution: they read the output ``<output>_distribution`` (a
#: mixture of difhydro.nn.distributions, from a probabilistic head), not ``<output>``
DISTRIBUTION_LOSSES = ("nll",)


def register_loss(name: str, fn: Callable[..., Array]) -> None:
    """Add a named loss ``fn(predicted, observed, mask, basin_std)`` (contrib packages do)."""
    LOSSES[name] = fn


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One weighted term of a training objective: ``weight · fn(outputs[output], targets[target], masks[target])``.

    Attributes:
        fn: a name of :data:`LOSSES` (called with the basin's training-period standard
            deviation of the target as fourth argument, which ``nse_star`` uses) or a plain
            function ``fn(predicted, observed, mask) -> scalar`` (e.g. ``losses.rmse``).
        output: name of the model output.
        target: name of the observed target (default: ``output``).
        weight: factor of the term.
    """

    fn: str | Callable[..., Array] = "nse_star"
    output: str = "streamflow"
    target: str | None = None
    weight: float = 1.0

    def __post_init__(self):
        if isinstance(self.fn, str) and self.fn not in LOSSES:
            raise ValueError(f"unknown loss {self.fn!r}; choose from {sorted(LOSSES)} or pass a function")

    @property
    def target_name(self) -> str:
        return self.output if self.target is None else self.target

    def __call__(self, pred, batch, context) -> Array:
        name = self.target_name
        output = self.output
        if isinstance(self.fn, str) and self.fn in DISTRIBUTION_LOSSES:
            output = f"{self.output}_distribution"
            if output not in pred:
                raise ValueError(f"loss {self.fn!r} needs a predictive distribution: the model has no output "
                                 f"{output!r} (choose a probabilistic head, e.g. head: cmal)")
        p, o, m = pred[output], batch.targets[name], batch.masks[name]
        if isinstance(self.fn, str):
            return self.weight * LOSSES[self.fn](p, o, m, context["basin_std"][name][batch.basin])
        return self.weight * self.fn(p, o, m)


@dataclasses.dataclass(frozen=True)
class Objective:
    """The sum of :class:`LossTerm` s: a Trainer loss ``loss(predictions, batch, context)``."""

    terms: tuple[LossTerm, ...]

    def __call__(self, pred, batch, context) -> Array:
        return sum(term(pred, batch, context) for term in self.terms)

    @property
    def scored(self) -> dict[str, str]:
        """output -> target of every term (what evaluation scores)."""
        return {t.output: t.target_name for t in self.terms}


def objective(loss: str | LossFn | LossTerm | Sequence[LossTerm], target: str = "streamflow") -> LossFn:
    """A Trainer loss from a name (on output and target ``target``), a :class:`LossTerm`,
    several of them, or any function ``loss(predictions, batch, context)``."""
    if isinstance(loss, str):
        return Objective((LossTerm(loss, target, target),))
    if isinstance(loss, LossTerm):
        return Objective((loss,))
    if isinstance(loss, Sequence):
        if not loss or not all(isinstance(t, LossTerm) for t in loss):
            raise ValueError("a loss sequence must hold at least one LossTerm")
        return Objective(tuple(loss))
    if callable(loss):
        return loss
    raise ValueError(f"loss must be a name of {sorted(LOSSES)}, LossTerm(s) or a function, got {loss!r}")
