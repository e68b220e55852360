"""Weight initialisations of the LSTM and its heads: Flax's and PyTorch's (neuralhydrology's).

``"flax"`` (difhydro's default): input kernel LeCun normal (``N(0, 1/F)``, truncated),
recurrent kernel orthogonal, bias zero except the forget block at ``initial_forget_bias``;
Dense heads LeCun normal kernel, zero bias.

``"torch"`` (``torch.nn.LSTM.reset_parameters`` then neuralhydrology's ``CudaLSTM``): every
LSTM weight ``~ U(-1/√H, 1/√H)``; torch's two bias vectors ``b_ih`` and ``b_hh`` (each
``U(-1/√H, 1/√H)``) enter only as their sum, so the one bias here is drawn as that sum, and
neuralhydrology sets ``b_hh``'s forget block to ``initial_forget_bias``, so the forget block
is ``initial_forget_bias + U(-1/√H, 1/√H)``; the other blocks are the sum of two uniforms
(triangular on ``±2/√H``). Every Dense layer (``nn.Linear``'s default, Kaiming uniform
with ``a = √5``): kernel and bias ``~ U(-1/√fan_in, 1/√fan_in)``.

:func:`torch_parameters` redraws a whole parameter tree (LSTM layers and Dense layers,
wherever they sit, e.g. a mixture head's), :func:`torch_initialised` gives a model whose
``init`` does so, without changing the model's code or its parameter names.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Initialiser = Callable[..., Array]

__all__ = ["INITIALISATIONS", "check_initialisation", "torch_uniform", "torch_lstm_bias", "torch_parameters",
           "torch_initialised"]

#: the initialisation schemes (module doc)
INITIALISATIONS = ("flax", "torch")

_LSTM_KEYS = ("input_kernel", "recurrent_kernel", "bias")


def check_initialisation(scheme: str, name: str = "initialisation") -> None:
    """Raise ValueError unless ``scheme`` is one of :data:`INITIALISATIONS`."""
    if scheme not in INITIALISATIONS:
        raise ValueError(f"{name}: unknown initialisation {scheme!r}; choose from {', '.join(INITIALISATIONS)}")


def torch_uniform(bound: float) -> Initialiser:
    """Initialiser ``U(-bound, bound)`` (torch's ``init.uniform_``)."""

    def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_lstm_bias(initial_forget_bias: float) -> Initialiser:
    """Bias ``[4H]`` initialiser: ``b_ih + b_hh``, each ``U(-1/√H, 1/√H)``, with ``b_hh``'s
    forget block set to ``initial_forget_bias`` (neuralhydrology's ``CudaLSTM._reset_parameters``):
    forget block ``initial_forget_bias + U``, the others ``U + U`` (gate order i, f, g, o)."""

    def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        hidden = shape[-1] // 4
        uniform = torch_uniform(1.0 / math.sqrt(hidden))
        key_ih, key_hh = jax.random.split(key)
        b_hh = uniform(key_hh, shape, dtype).at[..., hidden: 2 * hidden].set(jnp.asarray(initial_forget_bias, dtype))
        return uniform(key_ih, shape, dtype) + b_hh

    return init


def _torch_lstm(layer: Mapping[str, Array], key: Array, initial_forget_bias: float) -> dict[str, Array]:
    hidden = layer["recurrent_kernel"].shape[0]
    uniform = torch_uniform(1.0 / math.sqrt(hidden))
    keys = jax.random.split(key, 3)
    inits = {"input_kernel": uniform, "recurrent_kernel": uniform, "bias": torch_lstm_bias(initial_forget_bias)}
    return {k: inits[k](sub, layer[k].shape, layer[k].dtype) for k, sub in zip(_LSTM_KEYS, keys)}


def _torch_dense(layer: Mapping[str, Array], key: Array) -> dict[str, Array]:
    uniform = torch_uniform(1.0 / math.sqrt(layer["kernel"].shape[0]))
    keys = dict(zip(("kernel", "bias"), jax.random.split(key)))
    return {k: uniform(keys[k], v.shape, v.dtype) for k, v in layer.items()}


def torch_parameters(params: Mapping[str, Any], key: Array, initial_forget_bias: float) -> dict[str, Any]:
    """Redraw a parameter tree with the ``"torch"`` scheme (module doc), same structure, shapes, dtypes.

    An LSTM layer is a mapping holding ``input_kernel`` ``[F, 4H]``, ``recurrent_kernel``
    ``[H, 4H]`` and ``bias`` ``[4H]`` (its other entries, e.g. a ``head``, are layers of
    their own); a Dense layer holds ``kernel`` ``[fan_in, out]`` and optionally ``bias``
    ``[out]``. Each layer gets its own key (folded in by its path). Any other parameter
    raises a ValueError naming it: no parameter keeps its old draw silently.
    """

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        layer_key = jax.random.fold_in(key, _path_number(path))
        if all(k in node for k in _LSTM_KEYS):
            out = _torch_lstm(node, layer_key, initial_forget_bias)
            return {**out, **{k: walk(v, path + (k,)) for k, v in node.items() if k not in _LSTM_KEYS}}
        if "kernel" in node and set(node) <= {"kernel", "bias"} and getattr(node["kernel"], "ndim", 0) == 2:
            return _torch_dense(node, layer_key)
        out = {}
        for k, v in node.items():
            if not isinstance(v, Mapping):
                raise ValueError(f"torch initialisation: no rule for parameter {'/'.join(path + (k,))} "
                                 f"(shape {getattr(v, 'shape', None)}); it is neither in an LSTM nor in a Dense layer")
            out[k] = walk(v, path + (k,))
        return out

    return walk(params, ())


def _path_number(path: tuple[str, ...]) -> int:
    """A stable 31-bit number of a parameter path (for ``fold_in``; Python's ``hash`` is salted)."""
    return zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF


class _TorchInitialised:
    """Mixin of :func:`torch_initialised`: ``init`` redraws the parameters with :func:`torch_parameters`."""

    def init(self, rngs, *args, **kwargs):
        variables = super().init(rngs, *args, **kwargs)
        key = rngs["params"] if isinstance(rngs, Mapping) else rngs
        params = torch_parameters(variables["params"], key, _forget_bias(self))
        return {**variables, "params": params}


@functools.cache
def _torch_class(cls: type) -> type:
    return type(f"TorchInitialised{cls.__name__}", (_TorchInitialised, cls),
                {"__module__": __name__, "__doc__": f"{cls.__name__} with the torch initialisation "
                                                    f"(difhydro.nn.initialisation).\n\n{cls.__doc__ or ''}"})


def _forget_bias(module) -> float:
    """The forget-gate bias ``module``'s LSTM layers start from: its own ``initial_forget_bias``,
    else the :class:`~difhydro.nn.LSTM` layer's default (what a model that does not set it builds)."""
    from .lstm import LSTM

    return getattr(module, "initial_forget_bias", LSTM.initial_forget_bias)


def torch_initialised(module):
    """The Flax ``module`` (a model holding LSTM and Dense layers, e.g. the regional LSTM or
    dPL-HBV's parameter network) with its ``init`` drawing the parameters as torch /
    neuralhydrology do (:func:`torch_parameters`, keyed by the ``params`` rng; the forget
    block at the model's ``initial_forget_bias``, else the LSTM layer's default). Same
    attributes, same parameter names and shapes, same ``apply``: only the starting values
    differ. A parameter outside LSTM and Dense layers raises at ``init``."""
    attributes = {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
                  if f.init and f.name not in ("parent", "name")}
    return _torch_class(type(module))(**attributes)
