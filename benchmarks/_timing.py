"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import time

import jax


def best_time(fn, *args, repeat: int = 3) -> float:
    """Best wall-clock seconds of ``fn(*args)`` over ``repeat`` runs (after one warm-up)."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def ns_per(seconds: float, count: int) -> float:
    return 1e9 * seconds / count
