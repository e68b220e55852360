"""A training run's files: orbax checkpoints (exact resume) and the per-epoch ``log.csv``.

Layout under a run directory:

- ``checkpoints/<epoch>/``: one orbax step per epoch (the last two kept) with three items:
  ``state`` (parameters, optimiser state, step), ``best_params`` and ``meta`` (JSON: the
  loop's epoch, best score and epoch, validations without improvement, history, seed);
- ``log.csv``: one row per epoch (train loss, timings, validation loss and metric medians),
  rewritten atomically so that a resumed run drops the rows after its checkpoint.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

from .._files import atomic_path

__all__ = ["write_log_row", "save_checkpoint", "restore_checkpoint"]


def write_log_row(run_dir: Path, row: Mapping[str, Any]) -> Path:
    """Write ``row`` (with an integer ``epoch``) into ``run_dir/log.csv`` after the rows of
    earlier epochs (rows of this and later epochs, left by an interrupted run, are dropped).
    Columns are the union of every row's keys; a value a row lacks is left empty."""
    path = Path(run_dir) / "log.csv"
    rows = []
    if path.exists():
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
    rows.append(dict(row))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _manager(run_dir: Path):
    """An orbax CheckpointManager over ``run_dir/checkpoints`` (one step per epoch; the last two kept)."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(run_dir) / "checkpoints", options=options,
                                 item_names=("state", "best_params", "meta"))


def save_checkpoint(run_dir: Path, epoch: int, state: Mapping, best_params, meta: Mapping) -> None:
    """Write ``state`` (``params``, ``opt_state``, ``step``), ``best_params`` and the JSON
    ``meta`` as orbax step ``epoch`` under ``run_dir/checkpoints`` (synchronously)."""
    import orbax.checkpoint as ocp

    with _manager(run_dir) as manager:
        manager.save(int(epoch), args=ocp.args.Composite(
            state=ocp.args.StandardSave(dict(state)),
            best_params=ocp.args.StandardSave(best_params),
            meta=ocp.args.JsonSave(json.loads(json.dumps(dict(meta), default=float))),
        ))
        manager.wait_until_finished()


def restore_checkpoint(run_dir: Path, template: Mapping) -> tuple[dict, Any, dict] | None:
    """``(state, best_params, meta)`` of the newest checkpoint under ``run_dir``, or None.

    ``template`` is a fresh state (``params``, ``opt_state``, ``step``): it gives the shapes
    and dtypes to restore and the exact pytree structure (optax named tuples) to re-impose.
    """
    if not (Path(run_dir) / "checkpoints").is_dir():
        return None
    import orbax.checkpoint as ocp

    abstract = lambda tree: jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)  # noqa: E731
    with _manager(run_dir) as manager:
        step = manager.latest_step()
        if step is None:
            return None
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract(dict(template))),
            best_params=ocp.args.StandardRestore(abstract(template["params"])),
            meta=ocp.args.JsonRestore(),
        ))
    tree = {"state": dict(template), "best_params": template["params"]}
    leaves = jax.tree.leaves({"state": restored["state"], "best_params": restored["best_params"]})
    tree = jax.tree.unflatten(jax.tree.structure(tree), leaves)
    return tree["state"], tree["best_params"], dict(restored["meta"])
