"""Names of a package imported on first use (PEP 562), so that ``import difhydro`` and the
``difhydro`` command's checks import neither JAX nor xarray."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from importlib import import_module


def lazy_exports(package: str, where: Mapping[str, str], names: Collection[str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: ``name`` comes from the module
    ``package.<where[name]>`` on first use and is then kept in the package's namespace."""
    module = sys.modules[package]

    def __getattr__(name):
        if name in where:
            value = getattr(import_module(f".{where[name]}", package), name)
            setattr(module, name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(module)) | set(names))

    return __getattr__, __dir__
