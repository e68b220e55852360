"""Compiled temporary memory of one training step of the `transformer` entry (forward +
backward, dropout on), full against banded and chunked attention. Compiles only, runs nothing.

    python benchmarks/transformer_memory.py 730     # window length in days
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

from difhydro.hybrid import build_model

SETTINGS = ({}, {"max_span": 365}, {"max_span": 365, "chunk_size": 73}, {"max_span": 180, "chunk_size": 60})


def temporary_bytes(window: int, batch: int = 128, inputs: int = 3, attributes: int = 20, **options) -> int:
    """XLA's temporary allocation of the compiled gradient step (bytes)."""
    data = {"inputs": jnp.zeros((batch, window, inputs)), "attributes": jnp.zeros((batch, attributes))}
    model = build_model("transformer", hidden_size=64, heads=4, layers=2, dropout=0.1, **options)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jax.tree.map(lambda x: x[:1], data)))

    def loss(v):
        return model.apply(v, data, deterministic=False, rngs={"dropout": jax.random.key(1)})["streamflow"].mean()

    return jax.jit(jax.grad(loss)).lower(variables).compile().memory_analysis().temp_size_in_bytes


if __name__ == "__main__":
    window = int(sys.argv[1]) if len(sys.argv) > 1 else 730
    for options in SETTINGS:
        print(f"window {window}, batch 128, {options or 'full attention'}: "
              f"{temporary_bytes(window, **options) / 2**30:.2f} GiB", flush=True)
