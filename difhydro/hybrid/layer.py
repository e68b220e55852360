"""The one bridge from networks to the physics: :func:`run_physics` and the :class:`PRNN` layer.

At the public surface every array is basin-first: forcing ``[basin, time]``, static
parameters ``[basin, *event]``, time-varying ones ``[basin, time, *event]``, outputs
``[basin, time, ...]``. :func:`~difhydro.physics.simulate` scans the leading axis, so it
runs time-first; :func:`run_physics` is the only place that moves the time axis.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ..physics.base import Array, ProcessModel, simulate, time_slice_params, warm_up
from ..physics.routing import route_streamflow
from .params import ROUTING_PARAMETERS, ParamHead

__all__ = ["PRNN", "run_physics"]


def _time_first(x: Array) -> Array:
    return jnp.moveaxis(jnp.asarray(x), 1, 0)


def _basin_first(x: Array) -> Array:
    return jnp.moveaxis(x, 0, 1)


def run_physics(
    model: ProcessModel,
    params: Mapping[str, Array],
    forcing: Mapping[str, Array],
    state0: Mapping[str, Array] | None = None,
    *,
    time_varying: Collection[str] = (),
    warmup_days: int = 0,
    warmup_gradient: bool = True,
    checkpoint: bool | None = None,
    check: bool = False,
    return_state: bool = False,
) -> dict[str, Array] | tuple[dict[str, Array], dict[str, Array]]:
    """Run ``model`` on basin-first arrays; route the streamflow if routing parameters are given.

    Args:
        model: any :class:`~difhydro.physics.ProcessModel`.
        params: physical values: the model's parameters (static ``[basin, *event]``,
            time-varying ``[basin, time, *event]``) plus, optionally, the unit-hydrograph
            parameters of :mod:`difhydro.physics.routing` (``uh_shape``/``uh_scale`` or
            ``maxbas``, ``[basin]``).
        forcing: name -> ``[basin, time]`` in the units of ``model.forcing_names``.
        state0: initial state (name -> ``[basin, ...]``), the model's if ``None``.
        time_varying: names of the time-varying parameters.
        warmup_days: leading days that spin the states up; with ``warmup_gradient=False``
            they run under ``stop_gradient`` (δHBV; the outputs are the same values, only
            the gradients differ), otherwise gradients flow through them and they are
            ordinary days (``warmup_days`` then changes nothing).
        checkpoint: ``jax.checkpoint`` each step (``None``: the model's default).
        check: validate keys, shapes, gaps in forcing and parameter boxes
            (:func:`~difhydro.physics.simulate`'s checks; values only outside ``jit``).
        return_state: also return the final state (name -> ``[basin, ...]``).

    Returns:
        every output and state, ``[basin, time, ...]``; with routing, ``streamflow`` is
        routed and the unrouted series is ``runoff``.
    """
    missing = [k for k in model.forcing_names if k not in forcing]
    if missing:
        raise ValueError(f"{type(model).__name__} needs forcing {missing}; got {sorted(forcing)}")
    tm = {k: _time_first(forcing[k]) for k in model.forcing_names}
    n_time = tm[next(iter(tm))].shape[0]
    physics = {k: (_time_first(v) if k in time_varying else jnp.asarray(v)) for k, v in params.items() if k in model.param_spec}
    routing = {k: v for k, v in params.items() if k not in model.param_spec}
    unknown = [k for k in routing if k not in ROUTING_PARAMETERS]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {type(model).__name__}; expected {list(model.param_spec)} "
                         f"and optionally routing parameters {sorted(ROUTING_PARAMETERS)}")
    varying = tuple(k for k in time_varying if k in model.param_spec)
    w = int(warmup_days)
    run = dict(time_varying=varying, check=check, checkpoint=checkpoint)
    if w == 0 or warmup_gradient:
        final, out = simulate(model, physics, tm, state0, **run)
    else:
        if w >= n_time:
            raise ValueError(f"warmup_days={w} must be shorter than the sequence ({n_time} days)")
        state_w, spin = warm_up(model, physics, tm, w, state0, time_varying=varying, return_outputs=True, check=check)
        final, rest = simulate(model, time_slice_params(physics, varying, w, n_time),
                               {k: v[w:] for k, v in tm.items()}, state_w, **run)
        out = {k: jnp.concatenate([spin[k], rest[k]], axis=0) for k in rest}
    if routing:
        out["runoff"] = out["streamflow"]
        out["streamflow"] = route_streamflow(out["streamflow"], routing)
    out = {k: _basin_first(v) for k, v in out.items()}
    return (out, final) if return_state else out


class PRNN(nn.Module):
    """A process model as a recurrent layer (the P-RNN of Jiang et al. 2020).

    Parameters are unconstrained (raw) values mapped into their boxes by the layer's
    :class:`~difhydro.hybrid.ParamHead`. They come either from the caller (``raw_params``:
    name -> ``[basin, *event]`` static or ``[basin, time, *event]`` for the names in
    ``time_varying``; a regional model) or, when ``raw_params`` is ``None``, from the layer's
    own variables (one set shared by every basin of the batch: a local or pseudo-regional
    model, initialised at the box centre as Jiang's weights at 0.5).

    Attributes:
        model: any :class:`~difhydro.physics.ProcessModel`.
        routing: ``None``, ``"gamma"`` (δHBV unit hydrograph) or ``"maxbas"``; adds the
            routing parameters to the head and routes ``streamflow`` (the unrouted series
            stays as ``runoff``).
        time_varying: names of the parameters given per time step.
        warmup_days, warmup_gradient, checkpoint: as in :func:`run_physics`.
    """

    model: ProcessModel
    routing: str | None = None
    time_varying: tuple[str, ...] = ()
    warmup_days: int = 0
    warmup_gradient: bool = True
    checkpoint: bool | None = None

    @property
    def head(self) -> ParamHead:
        return ParamHead.for_model(self.model, self.routing, self.time_varying)

    @nn.compact
    def __call__(
        self,
        forcing: Mapping[str, Array],
        raw_params: Mapping[str, Array] | None = None,
        state0: Mapping[str, Array] | None = None,
    ) -> dict[str, Any]:
        """Run the physics over ``forcing`` (name -> ``[basin, time]``).

        Returns every output and state ``[basin, time, ...]`` and ``params``: the physical
        values used, ``[basin, *event]`` (time-varying ``[basin, time, *event]``).
        """
        head = self.head
        if raw_params is None:
            if self.time_varying:
                raise ValueError("a PRNN with its own parameters has no time-varying ones")
            raw_params = {k: self.param(k, nn.initializers.zeros_init(), head.event_shapes[k], jnp.float32) for k in head.spec}
        params = head.to_physical(raw_params)
        result = run_physics(
            self.model, params, forcing, state0, time_varying=self.time_varying,
            warmup_days=self.warmup_days, warmup_gradient=self.warmup_gradient, checkpoint=self.checkpoint,
        )
        basins = jnp.shape(next(iter(forcing.values())))[0]
        result["params"] = {
            k: (v if k in self.time_varying else jnp.broadcast_to(v, (basins,) + head.event_shapes[k]))
            for k, v in params.items()
        }
        return result
