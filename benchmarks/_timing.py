"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import time

import jax


def best_time(fn, *args, repeat: int = 3, sync=jax.block_until_ready) -> float:
    """Best wall-clock seconds of ``sync(fn(*args))`` over ``repeat`` runs (after one
    warm-up). ``sync`` waits for the result: JAX's by default; eager torch needs none
    (``sync=lambda out: out``)."""
    sync(fn(*args))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        sync(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def ns_per(seconds: float, count: int) -> float:
    return 1e9 * seconds / count


def processor() -> str:
    """The processor model and its widest vector units, from ``/proc/cpuinfo``."""
    model, flags = "unknown processor", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    units = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({', '.join(units) or 'no AVX2'}), {os.cpu_count()} logical CPUs"


def load_richards(path) -> type:
    """``Richards1D`` of another copy of the Richards solver, to compare against: a module
    file, or a package directory (e.g. ``difhydro/physics/richards`` of an older checkout;
    it imports this checkout's ``difhydro.physics`` siblings)."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "difhydro.physics._richards_compare"
    if Path(path).is_dir():
        spec = importlib.util.spec_from_file_location(name, Path(path) / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Richards1D
