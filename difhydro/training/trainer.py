"""The Trainer: one jit-compiled step (sample -> physics -> networks -> loss -> update).

A training step draws a batch of windows from device-resident data with ``jax.random``,
runs the model (process-model scans and networks), takes the gradient of the loss with
respect to every network and layer parameter, and applies an optax update — all inside
one compiled function, with the batch sharded along the basin axis over every device of a
``jax.sharding.Mesh`` (on one device the same step runs without the sharding constraint).
The compiled step is shared by every Trainer with the same model, loss, optimiser and
data shapes (e.g. the folds of a cross-validation). Around it the
Python loop runs epochs with a progress bar, evaluates on validation data with
:mod:`difhydro.training.metrics`, stops early, logs a CSV and writes orbax checkpoints from which
:meth:`Trainer.fit` resumes exactly.

Multi-host (several machines): call ``jax.distributed.initialize()`` on every host before
building the Trainer; ``jax.devices()`` then lists all hosts' devices, the mesh spans
them and every host must feed the same ``BasinData`` (each keeps the rows it needs).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from . import losses, metrics
from .._files import atomic_path
from ..data.batching import BasinData, Batch, full_period_batch, sample_batch

__all__ = ["TrainConfig", "TrainState", "Trainer", "predict", "LossTerm", "Objective", "LOSSES", "register_loss", "objective", "basin_mesh"]

Array = jax.Array
LossFn = Callable[[Mapping[str, Array], Batch, Mapping[str, Array]], Array]


#: built-in losses by name: ``fn(predicted, observed, mask, basin_std) -> scalar``
LOSSES: dict[str, Callable[..., Array]] = {
    "nse_star": lambda p, o, m, basin_std: losses.nse_star(p, o, m, basin_std),
    "mse": lambda p, o, m, basin_std: losses.mse(p, o, m),
    "rmse": lambda p, o, m, basin_std: losses.rmse(p, o, m),
    "rmse_low_flow": lambda p, o, m, basin_std: losses.rmse_low_flow(p, o, m),
}


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
        p, o, m = pred[self.output], batch.targets[name], batch.masks[name]
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


def basin_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"basin"`` over ``devices`` (default: all devices)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("basin",))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run.

    Attributes:
        epochs: maximum number of epochs.
        steps_per_epoch: optimiser steps per epoch.
        batch_size: windows per step (a multiple of the number of devices).
        learning_rate: peak Adam step size.
        schedule: ``"constant"``, ``"cosine"`` (decay over all steps) or ``"warmup_cosine"``.
        clip_norm: global gradient-norm clipping (``None`` = off).
        patience: epochs without validation improvement before stopping (``None`` = off).
        monitor: ``"loss"`` (validation loss) or a metric of :mod:`difhydro.metrics`
            whose basin median is maximised (e.g. ``"nse"``).
        eval_metrics: metrics reported on validation data.
        seed: seeds initialisation, sampling and dropout.
        progress: show progress bars.
    """

    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    schedule: str = "constant"
    clip_norm: float | None = 1.0
    patience: int | None = None
    monitor: str = "loss"
    eval_metrics: tuple[str, ...] = ("nse", "kge", "mnse", "fhv", "r")
    seed: int = 0
    progress: bool = True

    def optimizer(self) -> optax.GradientTransformation:
        return _optimizer(self.epochs * self.steps_per_epoch, self.learning_rate, self.schedule, self.clip_norm)


@functools.lru_cache(maxsize=None)
def _optimizer(total: int, learning_rate: float, schedule: str, clip_norm: float | None) -> optax.GradientTransformation:
    """One optax transformation per setting, so equal settings share compiled steps."""
    total = max(total, 1)
    if schedule == "constant":
        lr = learning_rate
    elif schedule == "cosine":
        lr = optax.cosine_decay_schedule(learning_rate, total, alpha=0.05)
    elif schedule == "warmup_cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(total // 10 + 1, total), total, learning_rate * 0.05)
    else:
        raise ValueError(f"schedule must be constant, cosine or warmup_cosine, got {schedule!r}")
    clip = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    return optax.chain(*clip, optax.adam(lr))


class TrainState(dict):
    """``params``, ``opt_state`` and ``step`` (the sampler and dropout streams derive from
    the seed and the step, so this is all a checkpoint needs to resume exactly)."""


jax.tree_util.register_pytree_node(
    TrainState,
    lambda s: ((s["params"], s["opt_state"], s["step"]), None),
    lambda _, c: TrainState(params=c[0], opt_state=c[1], step=c[2]),
)


def _step_data(data: BasinData) -> tuple[BasinData, Array]:
    """``data`` as the compiled step sees it: the admissible-window list padded to a power
    of two (sampling uses only the first ``n_valid``) and the basin names dropped, so that
    folds of equal shape share one compiled program."""
    m = int(data.valid_windows.shape[0])
    size = 1 << max(m - 1, 0).bit_length()
    padded = jnp.concatenate([data.valid_windows, jnp.repeat(data.valid_windows[:1], size - m)])
    stripped = dataclasses.replace(data, valid_windows=padded, basins=(), first_day="", input_names=(), attribute_names=())
    return stripped, jnp.asarray(m, jnp.int32)


@functools.partial(jax.jit, static_argnames=("model", "loss_fn", "tx", "batch_size", "sharding"), donate_argnums=0)
def _train_step(state, data, n_valid, key, context, *, model, loss_fn, tx, batch_size, sharding):
    """Sample -> model (physics and networks) -> loss -> gradients -> optax update."""
    step_key = jax.random.fold_in(key, state["step"])
    sample_key, dropout_key = jax.random.split(step_key)
    batch = sample_batch(sample_key, data, batch_size, n_valid)
    if sharding is not None:
        batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)

    def objective(params):
        pred = model.apply({"params": params}, batch, deterministic=False, rngs={"dropout": dropout_key})
        return loss_fn(pred, batch, context)

    value, grads = jax.value_and_grad(objective)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return TrainState(params=params, opt_state=opt_state, step=state["step"] + 1), value


@functools.partial(jax.jit, static_argnames="model")
def _apply(params, batch, initial_state, *, model):
    if initial_state is None:
        return model.apply({"params": params}, batch)
    return model.apply({"params": params}, batch, initial_state=initial_state)


def predict(model: nn.Module, params, data: BasinData, chunk: int = 64,
            initial_state: Mapping[str, Array] | None = None) -> tuple[dict[str, np.ndarray], Batch]:
    """Run ``model`` over every basin's whole period of ``data`` (chunks of ``chunk`` basins).

    ``initial_state`` (process-model states ``[basin, ...]``) starts the physics of a
    hybrid or dPL model from them (a hot start). Returns ``(outputs, batch)``: outputs
    name -> ``[basin, time, ...]`` numpy arrays (physics models also give ``params``:
    name -> ``[basin, ...]``) and the full-period batch (targets, masks).
    """
    full = full_period_batch(data)
    n = full.target.shape[0]
    parts = []
    for lo in range(0, n, chunk):
        cut = lambda x: x[lo : lo + chunk]  # noqa: E731
        state = None if initial_state is None else jax.tree.map(lambda x: jnp.asarray(cut(x)), dict(initial_state))
        parts.append(jax.tree.map(np.asarray, _apply(params, jax.tree.map(cut, full), state, model=model)))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts), full


class Trainer:
    """Train a Flax model that maps a :class:`~difhydro.data.batching.Batch` to outputs.

    Args:
        model: a ``flax.linen`` module called as ``model(batch, deterministic=...)``
            returning a mapping of named outputs (``[basin, time]``).
        train_data: :class:`BasinData` of the training period and basins.
        config: :class:`TrainConfig`.
        loss: a name of :data:`LOSSES` (on the output named like the primary target), one
            or several :class:`LossTerm` (outputs, targets and weights by name), or any
            ``loss(predictions, batch, context)``; ``context["basin_std"][target]`` holds
            each training basin's standard deviation of that target.
        scored: output -> target pairs that :meth:`evaluate` scores (default: the loss
            terms' pairs, else the primary target under its own name); the first pair is
            the one validation monitors.
        validation: optional :class:`BasinData` for evaluation and early stopping.
        optimizer: any optax transformation (default from ``config``).
        run_dir: where ``log.csv``, ``checkpoints/`` and ``norm_stats.json`` go.
        norm_stats: the normalisation statistics to save with the checkpoints.
        mesh: device mesh with a ``"basin"`` axis (default: all devices).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: BasinData,
        config: TrainConfig = TrainConfig(),
        *,
        loss: str | LossFn | LossTerm | Sequence[LossTerm] = "nse_star",
        scored: Mapping[str, str] | None = None,
        validation: BasinData | None = None,
        optimizer: optax.GradientTransformation | None = None,
        run_dir: str | Path | None = None,
        norm_stats=None,
        mesh: Mesh | None = None,
    ):
        self.model, self.data, self.config, self.validation = model, train_data, config, validation
        self.loss_fn = objective(loss, train_data.target_names[0])
        default = getattr(self.loss_fn, "scored", {train_data.target_names[0]: train_data.target_names[0]})
        self.scored = dict(scored or default)
        unknown = [t for t in self.scored.values() if t not in train_data.targets]
        if unknown:
            raise ValueError(f"scored targets {unknown} are not targets of the data: {list(train_data.targets)}")
        self.tx = optimizer or config.optimizer()
        self.run_dir = None if run_dir is None else Path(run_dir).resolve()
        self.norm_stats = norm_stats
        self.mesh = mesh or basin_mesh()
        n_dev = self.mesh.devices.size
        if config.batch_size % n_dev:
            raise ValueError(f"batch_size {config.batch_size} is not a multiple of the {n_dev} devices")
        if config.monitor != "loss" and config.monitor not in metrics.METRICS:
            raise ValueError(f"monitor must be 'loss' or one of {sorted(metrics.METRICS)}")
        self.context = {"basin_std": self._basin_std(train_data)}
        # several devices: shard each batch along the basins; one device: no constraint (it
        # makes XLA partition the whole step, which slowed a VicBucket step 50x on CPU)
        self._sharding = NamedSharding(self.mesh, PartitionSpec("basin")) if n_dev > 1 else None
        self._key = jax.random.PRNGKey(config.seed)
        # trace the model once on a batch: configuration errors surface here, before compiling
        probe = sample_batch(self._key, train_data, config.batch_size)
        jax.eval_shape(lambda b: model.init({"params": self._key, "dropout": self._key}, b), probe)
        self._data, self._n_valid = _step_data(train_data)

    @staticmethod
    def _basin_std(data: BasinData) -> dict[str, Array]:
        """Each basin's standard deviation of each target over the period (1 if unobserved)."""
        out = {}
        for name in data.target_names:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                std = np.nanstd(data.observations(name), axis=1)
            out[name] = jnp.asarray(np.nan_to_num(std, nan=1.0), jnp.float32)
        return out

    def init_state(self) -> TrainState:
        """Initial parameters and optimiser state (deterministic for ``config.seed``)."""
        batch = sample_batch(self._key, self.data, self.config.batch_size)
        init_key = jax.random.fold_in(self._key, -1 % (2**31))
        variables = self.model.init({"params": init_key, "dropout": init_key}, batch)
        params = variables["params"]
        return TrainState(params=params, opt_state=self.tx.init(params), step=jnp.asarray(0, jnp.int32))

    def train_step(self, state: TrainState) -> tuple[TrainState, Array]:
        """One compiled optimisation step; returns the new state and the batch loss."""
        return _train_step(
            state, self._data, self._n_valid, self._key, self.context, model=self.model, loss_fn=self.loss_fn,
            tx=self.tx, batch_size=self.config.batch_size, sharding=self._sharding,
        )

    # -- evaluation -----------------------------------------------------------------------

    def predict(self, params, data: BasinData, chunk: int = 64) -> tuple[dict[str, np.ndarray], Batch]:
        """:func:`predict` with this Trainer's model."""
        return predict(self.model, params, data, chunk)

    def evaluate(self, params, data: BasinData, output: str | None = None) -> dict[str, np.ndarray]:
        """Per-basin metrics of ``output`` (default: the first scored output) against its
        target after the warm-up (NaN-masked), plus the loss."""
        pred, full = self.predict(params, data)
        pred = {k: v for k, v in pred.items() if k != "params"}
        output = next(iter(self.scored)) if output is None else output
        if output not in self.scored:
            raise ValueError(f"output {output!r} is not scored; scored pairs: {self.scored}")
        sim = pred[output]
        obs = full.observations(self.scored[output])
        scores = {m: np.asarray(metrics.METRICS[m](sim, obs)) for m in self.config.eval_metrics}
        ctx = {"basin_std": self._basin_std(data)}
        scores["loss"] = float(self.loss_fn({k: jnp.asarray(v) for k, v in pred.items()}, full, ctx))
        return scores

    # -- the loop -------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (or until early stopping).

        With ``resume=True`` and a checkpoint in ``run_dir``, continue from it exactly.
        Returns ``{"params", "best_params", "history"}``.
        """
        cfg = self.config
        state, meta = self.init_state(), {"epoch": 0, "best": None, "wait": 0, "history": []}
        # the step donates its input state, so keep real copies of what must survive it
        keep = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731
        best_params = keep(state["params"])
        if resume:
            restored = self.restore()
            if restored is not None:
                state, meta, best_params = restored
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.norm_stats is not None:
                self.norm_stats.save(self.run_dir / "norm_stats.json")
        for epoch in range(meta["epoch"], cfg.epochs):
            t0 = time.perf_counter()
            bar = tqdm(range(cfg.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
            total, step_times = 0.0, []
            for i in bar:
                t_step = time.perf_counter()
                state, value = self.train_step(state)
                total += float(value)  # waits for the step: the times below are real
                step_times.append(time.perf_counter() - t_step)
                if i % 10 == 0 or i == cfg.steps_per_epoch - 1:
                    bar.set_postfix(loss=f"{float(value):.4f}")
            row = {"epoch": epoch + 1, "train_loss": total / cfg.steps_per_epoch, "seconds": time.perf_counter() - t0,
                   "first_step_seconds": step_times[0], "median_step_seconds": float(np.median(step_times))}
            improved = True
            if self.validation is not None:
                scores = self.evaluate(state["params"], self.validation)
                row["val_loss"] = scores["loss"]
                row.update({f"val_median_{m}": float(np.nanmedian(scores[m])) for m in cfg.eval_metrics})
                score = -row["val_loss"] if cfg.monitor == "loss" else row[f"val_median_{cfg.monitor}"]
                improved = meta["best"] is None or score > meta["best"]
                if improved:
                    meta["best"], meta["wait"] = score, 0
                else:
                    meta["wait"] += 1
            if improved:
                best_params = keep(state["params"])
            meta["epoch"] = epoch + 1
            meta["history"].append(row)
            self._log(row)
            self.save(state, meta, best_params)
            if cfg.progress:
                shown = {k: round(v, 4) for k, v in row.items() if k != "epoch"}
                tqdm.write(f"epoch {epoch + 1}: {shown}")
            if cfg.patience is not None and meta["wait"] >= cfg.patience:
                if cfg.progress:
                    tqdm.write(f"early stopping after {epoch + 1} epochs (patience {cfg.patience})")
                break
        return {"params": state["params"], "best_params": best_params, "history": meta["history"], "state": state}

    # -- files ----------------------------------------------------------------------------

    def _log(self, row):
        if self.run_dir is None:
            return
        path = self.run_dir / "log.csv"
        rows = []
        if path.exists():
            with open(path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
        rows.append(row)
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)

    def _checkpoints(self):
        """An orbax CheckpointManager over ``run_dir/checkpoints`` (one step per epoch; the
        last two kept)."""
        import orbax.checkpoint as ocp

        options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
        return ocp.CheckpointManager(self.run_dir / "checkpoints", options=options,
                                     item_names=("state", "best_params", "meta"))

    def save(self, state: TrainState, meta: Mapping, best_params) -> None:
        """Write the latest state, the best parameters and the loop's metadata (orbax)."""
        if self.run_dir is None:
            return
        import orbax.checkpoint as ocp

        with self._checkpoints() as manager:
            manager.save(int(meta["epoch"]), args=ocp.args.Composite(
                state=ocp.args.StandardSave(dict(state)),
                best_params=ocp.args.StandardSave(best_params),
                meta=ocp.args.JsonSave(json.loads(json.dumps({**meta, "seed": self.config.seed}, default=float))),
            ))
            manager.wait_until_finished()

    def restore(self):
        """``(state, meta, best_params)`` from the newest checkpoint in ``run_dir`` or None."""
        if self.run_dir is None or not (self.run_dir / "checkpoints").is_dir():
            return None
        import orbax.checkpoint as ocp

        template = self.init_state()
        abstract = lambda tree: jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)  # noqa: E731
        with self._checkpoints() as manager:
            step = manager.latest_step()
            if step is None:
                return None
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract(dict(template))),
                best_params=ocp.args.StandardRestore(abstract(template["params"])),
                meta=ocp.args.JsonRestore(),
            ))
        # re-impose the exact pytree structure (optax named tuples) of a fresh state
        tree = {"state": dict(template), "best_params": template["params"]}
        leaves = jax.tree.leaves({"state": restored["state"], "best_params": restored["best_params"]})
        tree = jax.tree.unflatten(jax.tree.structure(tree), leaves)
        meta = dict(restored["meta"])
        if meta.get("seed") != self.config.seed:
            raise ValueError(f"checkpoint {self.run_dir / 'checkpoints'} was written with seed {meta.get('seed')}, "
                             f"the config has {self.config.seed}")
        return TrainState(**tree["state"]), meta, tree["best_params"]
