"""ParamHead: a network's raw output -> named raw values -> physical parameter values.

Every route from a network to a process model goes through one :class:`ParamHead`:

1. :meth:`ParamHead.split` cuts the last axis of a network output ``[..., size]`` into one
   raw array per parameter (``[..., *event]``, e.g. HBV's components);
2. :meth:`ParamHead.select` keeps the whole time series of the parameters named in
   ``time_varying`` and the last time step of the others (δHBV's static parameters from an
   LSTM);
3. :meth:`ParamHead.to_physical` maps raw values into their boxes
   (:class:`~difhydro.physics.ParamSpec`): ``"sigmoid"`` (default, always inside) or
   ``"linear"`` (``low + (high - low)(raw + 1/2)``, clipped for the physics; the unclipped
   values feed a range-boundary loss, Li & Lu 2023).

Which parameters vary in time is a list of names, never read off an array's rank.
Layout: basin-first, static ``[basin, *event]``, time-varying ``[basin, time, *event]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..physics.base import ParamSpec, ProcessModel
from ..physics.routing import GAMMA_UH_SPEC, MAXBAS_SPEC

Array = jax.Array

__all__ = ["ParamHead", "ROUTING_PARAMETERS", "ROUTING_SPECS", "split_last_axis"]

#: parameter boxes of the unit hydrographs a :class:`~difhydro.hybrid.PRNN` may add
ROUTING_SPECS: Mapping[str | None, Mapping[str, ParamSpec]] = {
    None: {},
    "gamma": GAMMA_UH_SPEC,
    "maxbas": MAXBAS_SPEC,
}
#: the names of every routing parameter (any scheme of :data:`ROUTING_SPECS`)
ROUTING_PARAMETERS = frozenset(k for spec in ROUTING_SPECS.values() for k in spec)
_MAPPINGS = ("sigmoid", "linear")


def split_last_axis(flat: Array, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Array]:
    """Cut the last axis of ``flat`` ``[..., n]`` into named pieces ``[..., *shape]`` (in
    the order of ``shapes``; ``n`` must equal the total size)."""
    total = sum(math.prod(s) for s in shapes.values())
    if flat.shape[-1] != total:
        raise ValueError(f"the network emits {flat.shape[-1]} values, {list(shapes)} need {total}")
    out, i = {}, 0
    for k, shape in shapes.items():
        n = math.prod(shape)
        out[k] = flat[..., i : i + n].reshape(flat.shape[:-1] + tuple(shape))
        i += n
    return out


@dataclasses.dataclass(frozen=True)
class ParamHead:
    """Named, boxed parameters of a process model (and its routing), in network order.

    Attributes:
        spec: name -> :class:`~difhydro.physics.ParamSpec`, in the order networks emit them.
        event_shapes: name -> trailing shape per basin (``()`` for scalars).
        time_varying: names of the parameters that vary in time.
        mapping: ``"sigmoid"`` or ``"linear"`` (see the module docstring).
    """

    spec: Mapping[str, ParamSpec]
    event_shapes: Mapping[str, tuple[int, ...]]
    time_varying: tuple[str, ...] = ()
    mapping: str = "sigmoid"

    def __post_init__(self):
        unknown = [k for k in self.time_varying if k not in self.spec]
        if unknown:
            raise ValueError(f"time_varying parameters {unknown} are not parameters of the model: {list(self.spec)}")
        if self.mapping not in _MAPPINGS:
            raise ValueError(f"mapping must be one of {_MAPPINGS}, got {self.mapping!r}")

    @classmethod
    def for_model(
        cls, model: ProcessModel, routing: str | None = None, time_varying=(), mapping: str = "sigmoid"
    ) -> ParamHead:
        """The head of ``model``'s parameters plus those of ``routing`` (``None``,
        ``"gamma"`` or ``"maxbas"``)."""
        if routing not in ROUTING_SPECS:
            raise ValueError(f"routing must be one of {list(ROUTING_SPECS)}, got {routing!r}")
        spec = {**model.param_spec, **ROUTING_SPECS[routing]}
        events = {k: (model.param_event_shape(k) if k in model.param_spec else ()) for k in spec}
        return cls(spec, events, tuple(time_varying), mapping)

    @property
    def size(self) -> int:
        """Number of raw values a network must emit."""
        return sum(math.prod(self.event_shapes[k]) for k in self.spec)

    def split(self, flat: Array) -> dict[str, Array]:
        """``[..., size]`` -> name -> ``[..., *event]`` (raw, in :attr:`spec` order)."""
        return split_last_axis(flat, {k: self.event_shapes[k] for k in self.spec})

    def select(self, series: Mapping[str, Array]) -> dict[str, Array]:
        """From per-step raw values ``[basin, time, *event]``: the whole series of the
        time-varying parameters, the last step of the static ones."""
        return {k: (v if k in self.time_varying else v[:, -1]) for k, v in series.items()}

    def to_physical(self, raw: Mapping[str, Array]) -> dict[str, Array]:
        """Raw values -> physical values inside the boxes (any leading shape)."""
        missing = [k for k in self.spec if k not in raw]
        if missing:
            raise ValueError(f"raw parameters lack {missing}; the model needs {list(self.spec)}")
        unknown = [k for k in raw if k not in self.spec]
        if unknown:
            raise ValueError(f"raw parameters {unknown} have no ParamSpec in this head: {list(self.spec)}")
        if self.mapping == "sigmoid":
            return {k: s.to_physical(jnp.asarray(raw[k])) for k, s in self.spec.items()}
        values = self.unconstrained(raw)
        return {k: jnp.clip(values[k], s.low, s.high) for k, s in self.spec.items()}

    def unconstrained(self, raw: Mapping[str, Array]) -> dict[str, Array]:
        """The ``"linear"`` mapping before clipping: ``low + (high - low)(raw + 1/2)``."""
        return {k: s.low + (s.high - s.low) * (jnp.asarray(raw[k]) + 0.5) for k, s in self.spec.items()}

    def flatten(self, values: Mapping[str, Array]) -> Array:
        """name -> ``[basin, *event]`` back to ``[basin, size]`` (network order)."""
        return jnp.concatenate([jnp.reshape(values[k], jnp.shape(values[k])[:1] + (-1,)) for k in self.spec], -1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``, each ``[size]``, in network order."""
        low = [s.low for k, s in self.spec.items() for _ in range(math.prod(self.event_shapes[k]))]
        high = [s.high for k, s in self.spec.items() for _ in range(math.prod(self.event_shapes[k]))]
        return np.asarray(low, np.float32), np.asarray(high, np.float32)
