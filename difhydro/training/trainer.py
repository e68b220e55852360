"""The Trainer: one jit-compiled step (sample -> physics -> networks -> loss -> update).

A training step draws a batch of windows from device-resident data with ``jax.random``,
runs the model (process-model scans and networks), takes the gradient of the loss with
respect to every network and layer parameter, and applies an optax update — all inside
one compiled function, with the batch sharded along the basin axis over every device of a
``jax.sharding.Mesh`` (on one device the same step runs without the sharding constraint).
The compiled step is shared by every Trainer with the same model, loss, optimiser and
data shapes (e.g. the folds of a cross-validation). Around it the Python loop runs
epochs, validates every ``validate_every`` epochs with :mod:`difhydro.training.metrics`,
keeps the best parameters by the monitored score's direction, stops early and prints one
line per epoch. The loss comes from :mod:`.objectives`; ``log.csv`` and the orbax
checkpoints from which :meth:`Trainer.fit` resumes exactly from :mod:`.checkpoints`.

Multi-host (several machines): call ``jax.distributed.initialize()`` on every host before
building the Trainer; ``jax.devices()`` then lists all hosts' devices, the mesh spans
them and every host must feed the same ``BasinData`` (each keeps the rows it needs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from . import metrics
from .checkpoints import restore_checkpoint, save_checkpoint, write_log_row
from .objectives import LOSSES, LossFn, LossTerm, Objective, objective, register_loss
from ..data.batching import BasinData, Batch, add_input_noise, full_period_batch, sample_batch

__all__ = ["TrainConfig", "TrainState", "Trainer", "predict", "LossTerm", "Objective", "LOSSES", "register_loss",
           "learning_rate_schedule", "objective", "basin_mesh", "improves", "epoch_line", "training_batch"]

Array = jax.Array


def basin_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"basin"`` over ``devices`` (default: all devices)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("basin",))


#: accepted values of ``TrainConfig.monitor``
MONITORS = ("loss", *metrics.METRICS)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run.

    Attributes:
        epochs: maximum number of epochs.
        steps_per_epoch: optimiser steps per epoch.
        batch_size: windows per step (a multiple of the number of devices).
        learning_rate: peak Adam step size.
        weight_decay: decoupled weight decay of AdamW (Loshchilov & Hutter 2019, ``optax.adamw``):
            each step also subtracts ``learning_rate(step) * weight_decay * parameter`` from every
            parameter. ``0`` (default) is plain Adam, the same transformation as before the key.
        input_noise: standard deviation of Gaussian noise added to the standardised dynamic
            network inputs (``Batch.inputs``, in units of each input's training standard
            deviation) of every training batch; never at evaluation or prediction, never to
            the physical forcing the process models read. ``0`` (default): no noise.
        schedule: ``"constant"``, ``"cosine"`` (decay over all steps) or ``"warmup_cosine"``.
        clip_norm: global gradient-norm clipping (``None`` = off).
        patience: validations without improvement of the monitored score before stopping
            (``None`` = off).
        monitor: ``"loss"`` (validation loss, minimised) or a metric of
            :data:`difhydro.training.metrics.METRICS` whose basin median is judged by its
            :data:`~difhydro.training.metrics.DIRECTION` (``nse`` maximised, ``rmse``
            minimised, ``fhv`` closest to zero); always evaluated.
        eval_metrics: metrics reported on validation data (basin medians in ``log.csv``).
        seed: seeds initialisation, sampling and dropout.
        progress: show progress bars and one line per epoch.
        validate_every: validate every this many epochs (the last epoch is always
            validated when there is validation data), as neuralhydrology's ``validate_every``.
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
    validate_every: int = 1
    weight_decay: float = 0.0
    input_noise: float = 0.0

    def __post_init__(self):
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor {self.monitor!r} is unknown; accepted: {', '.join(MONITORS)}")
        unknown = [m for m in self.eval_metrics if m not in metrics.METRICS]
        if isinstance(self.eval_metrics, str) or unknown:
            raise ValueError(f"eval_metrics {unknown or self.eval_metrics!r} unknown; a sequence of: "
                             f"{', '.join(metrics.METRICS)}")
        for name in ("epochs", "steps_per_epoch", "batch_size", "validate_every"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.patience is not None and (not isinstance(self.patience, (int, np.integer)) or self.patience < 1):
            raise ValueError(f"patience must be a positive integer or None, got {self.patience!r}")
        for name in ("weight_decay", "input_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def direction(self) -> str:
        """How the monitored score improves: ``"max"``, ``"min"`` or ``"zero"``."""
        return "min" if self.monitor == "loss" else metrics.DIRECTION[self.monitor]

    @property
    def validation_metrics(self) -> tuple[str, ...]:
        """``eval_metrics`` plus the monitored metric (every validation computes these)."""
        extra = (self.monitor,) if self.monitor != "loss" and self.monitor not in self.eval_metrics else ()
        return tuple(self.eval_metrics) + extra

    @property
    def monitor_column(self) -> str:
        """The history / ``log.csv`` column of the monitored score."""
        return "val_loss" if self.monitor == "loss" else f"val_median_{self.monitor}"

    def validates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) ends with a validation (given validation data)."""
        return epoch % self.validate_every == 0 or epoch == self.epochs

    def learning_rates(self) -> float | dict[int, float]:
        """The rate of each update: ``learning_rate`` for a constant schedule, else
        ``{update index (0-based): rate}`` over the ``epochs x steps_per_epoch`` updates (what a
        peer trained with the same budget must follow)."""
        total = self.epochs * self.steps_per_epoch
        lr = learning_rate_schedule(total, self.learning_rate, self.schedule)
        if not callable(lr):
            return float(lr)
        return {i: float(r) for i, r in enumerate(np.asarray(jax.vmap(lr)(jnp.arange(total))))}

    def optimizer(self) -> optax.GradientTransformation:
        # a constant rate ignores the length: equal rates share one transformation (and step)
        total = 0 if self.schedule == "constant" else self.epochs * self.steps_per_epoch
        return _optimizer(total, self.learning_rate, self.schedule, self.clip_norm, float(self.weight_decay))


def improves(value: float, best: float | None, direction: str) -> bool:
    """Whether the validation score ``value`` beats ``best`` (``None``: no score yet) in
    ``direction`` (``"max"``, ``"min"``, ``"zero"``: smaller absolute value). A NaN score
    never improves."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    if direction == "max":
        return value > best
    if direction == "min":
        return value < best
    if direction == "zero":
        return abs(value) < abs(best)
    raise ValueError(f"direction must be max, min or zero, got {direction!r}")


def _label(name: str) -> str:
    return "loss" if name == "loss" else name.upper()


def epoch_line(row: Mapping[str, Any], epochs: int, monitor: str = "loss", best: bool = False) -> str:
    """One readable line for an epoch's history ``row``, e.g.
    ``epoch 3/10  loss 0.3121  val loss 0.2804  val NSE 0.5812  12.0 s  (best)``:
    the training loss, and after a validation its loss, the median NSE (when evaluated)
    and the monitored metric; ``(best)`` when the monitored score improved."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4g}"]
    if "val_loss" in row:
        shown = ["loss"] + [m for m in dict.fromkeys(("nse", monitor)) if f"val_median_{m}" in row]
        for m in shown:
            value = row["val_loss" if m == "loss" else f"val_median_{m}"]
            parts.append(f"val {_label(m)} {value:.4g}")
    parts.append(f"{row['seconds']:.1f} s")
    if best:
        parts.append("(best)")
    return "  ".join(parts)


def learning_rate_schedule(total: int, learning_rate: float, schedule: str) -> float | optax.Schedule:
    """The learning rate over ``total`` updates: ``learning_rate`` itself (``"constant"``), or
    an optax schedule of the update index, ``"cosine"`` (decay to 5 % over all updates) or
    ``"warmup_cosine"`` (linear warm-up over the first tenth, then the same decay)."""
    total = max(total, 1)
    if schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total, alpha=0.05)
    if schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(total // 10 + 1, total), total,
                                                  learning_rate * 0.05)
    raise ValueError(f"schedule must be constant, cosine or warmup_cosine, got {schedule!r}")


@functools.lru_cache(maxsize=None)
def _optimizer(total: int, learning_rate: float, schedule: str, clip_norm: float | None,
               weight_decay: float = 0.0) -> optax.GradientTransformation:
    """One optax transformation per setting, so equal settings share compiled steps. Adam, or
    AdamW with decoupled ``weight_decay`` (scaled by the scheduled rate, as ``optax.adamw``)."""
    lr = learning_rate_schedule(total, learning_rate, schedule)
    clip = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    # weight_decay 0 keeps plain Adam (adamw would add a zero term: same numbers, another program)
    adam = optax.adamw(lr, weight_decay=weight_decay) if weight_decay else optax.adam(lr)
    return optax.chain(*clip, adam)


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


def training_batch(step_key: Array, data: BasinData, batch_size: int, n_valid: Array | None = None,
                   input_noise: float = 0.0) -> Batch:
    """The batch a training step sees: :func:`sample_batch` with ``jax.random.split(step_key)[0]``
    and, when ``input_noise > 0``, Gaussian noise of that standard deviation on the
    standardised dynamic inputs (:func:`~difhydro.data.batching.add_input_noise`, drawn with
    a key folded from the sampling key, so the sampled windows and the dropout stream are
    those of a run without noise)."""
    sample_key = jax.random.split(step_key)[0]
    batch = sample_batch(sample_key, data, batch_size, n_valid)
    if input_noise:
        batch = add_input_noise(jax.random.fold_in(sample_key, 1), batch, input_noise)
    return batch


@functools.partial(jax.jit, static_argnames=("model", "loss_fn", "tx", "batch_size", "sharding", "input_noise"),
                   donate_argnums=0)
def _train_step(state, data, n_valid, key, context, *, model, loss_fn, tx, batch_size, sharding, input_noise=0.0):
    """Sample (and perturb the inputs) -> model (physics and networks) -> loss -> gradients -> optax update."""
    step_key = jax.random.fold_in(key, state["step"])
    dropout_key = jax.random.split(step_key)[1]
    batch = training_batch(step_key, data, batch_size, n_valid, input_noise)
    if sharding is not None:
        batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)

    def batch_loss(params):
        pred = model.apply({"params": params}, batch, deterministic=False, rngs={"dropout": dropout_key})
        return loss_fn(pred, batch, context)

    value, grads = jax.value_and_grad(batch_loss)(state["params"])
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
        for role, data in (("training", train_data), ("validation", validation)):
            unknown = [] if data is None else [t for t in self.scored.values() if t not in data.targets]
            if unknown:
                raise ValueError(f"scored targets {unknown} are not targets of the {role} data: {list(data.targets)}")
        self.tx = optimizer or config.optimizer()
        self.run_dir = None if run_dir is None else Path(run_dir).resolve()
        self.norm_stats = norm_stats
        self.mesh = mesh or basin_mesh()
        n_dev = self.mesh.devices.size
        if config.batch_size % n_dev:
            raise ValueError(f"batch_size {config.batch_size} is not a multiple of the {n_dev} devices")
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
            input_noise=float(self.config.input_noise),
        )

    # -- evaluation -----------------------------------------------------------------------

    def predict(self, params, data: BasinData, chunk: int = 64) -> tuple[dict[str, np.ndarray], Batch]:
        """:func:`predict` with this Trainer's model."""
        return predict(self.model, params, data, chunk)

    def evaluate(self, params, data: BasinData, output: str | None = None) -> dict[str, np.ndarray]:
        """Per-basin metrics (``config.validation_metrics``) of ``output`` (default: the
        first scored output) against its target, plus the loss. Both score only the days
        of ``full_period_batch(data).masks``: observed and after the first ``data.warmup``
        days (the metrics see NaN elsewhere)."""
        pred, full = self.predict(params, data)
        pred = {k: v for k, v in pred.items() if k != "params"}
        output = next(iter(self.scored)) if output is None else output
        if output not in self.scored:
            raise ValueError(f"output {output!r} is not scored; scored pairs: {self.scored}")
        sim = pred[output]
        obs = full.observations(self.scored[output])
        scores = {m: np.asarray(metrics.METRICS[m](sim, obs)) for m in self.config.validation_metrics}
        ctx = {"basin_std": self._basin_std(data)}
        scores["loss"] = float(self.loss_fn(jax.tree.map(jnp.asarray, pred), full, ctx))  # keeps mixtures whole
        return scores

    # -- the loop -------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (or until early stopping).

        Every ``config.validate_every`` epochs (and after the last) with validation data,
        the monitored score (``config.monitor``, judged by ``config.direction``) decides
        whether these parameters are the best so far; ``config.patience`` validations
        without improvement stop the run. Without validation data the last epoch is the best.
        With ``resume=True`` and a checkpoint in ``run_dir``, continue from it exactly (a
        run that stopped early stays stopped).

        Returns ``{"params", "state", "best_params", "best_epoch", "best_score",
        "stopped_early", "history"}``: the last parameters and state, the best parameters,
        their 1-based epoch and monitored score (``None`` before any improvement), whether
        early stopping fired, and one row per epoch (as in ``log.csv``).
        """
        cfg = self.config
        state = self.init_state()
        meta = {"epoch": 0, "best": None, "best_epoch": None, "wait": 0, "stopped": False, "history": []}
        # the step donates its input state, so keep real copies of what must survive it
        keep = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731
        best_params = keep(state["params"])
        if resume:
            restored = self.restore()
            if restored is not None:
                state, restored_meta, best_params = restored
                meta.update(restored_meta)
                if meta["stopped"]:
                    self._say(f"resume: the run stopped early after epoch {meta['epoch']}; nothing to train")
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.norm_stats is not None:
                self.norm_stats.save(self.run_dir / "norm_stats.json")
        for epoch in range(meta["epoch"] + 1, cfg.epochs + 1):
            if meta["stopped"]:
                break
            state, row = self._train_epoch(state, epoch)
            validated = self.validation is not None and cfg.validates(epoch)
            improved = self.validation is None  # without validation the last epoch is the best
            if validated:
                row.update(self._validation_row(state["params"]))
                improved = improves(row[cfg.monitor_column], meta["best"], cfg.direction)
                if improved:
                    meta["best"], meta["wait"] = row[cfg.monitor_column], 0
                else:
                    meta["wait"] += 1
                meta["stopped"] = cfg.patience is not None and meta["wait"] >= cfg.patience
            if improved:
                best_params, meta["best_epoch"] = keep(state["params"]), epoch
            meta["epoch"] = epoch
            meta["history"].append(row)
            self._log(row)
            self.save(state, meta, best_params)
            self._say(epoch_line(row, cfg.epochs, cfg.monitor, best=validated and improved))
            if meta["stopped"]:
                best = "no finite score" if meta["best"] is None else f"best {meta['best']:.4g} at epoch {meta['best_epoch']}"
                self._say(f"early stopping after epoch {epoch}/{cfg.epochs}: val {_label(cfg.monitor)} did not "
                          f"improve in {cfg.patience} validation(s); {best}")
        return {"params": state["params"], "state": state, "best_params": best_params,
                "best_epoch": meta["best_epoch"], "best_score": meta["best"], "stopped_early": bool(meta["stopped"]),
                "history": meta["history"]}

    def _train_epoch(self, state: TrainState, epoch: int) -> tuple[TrainState, dict[str, float]]:
        """``steps_per_epoch`` steps; returns the state and the epoch's row (train loss, timings)."""
        cfg = self.config
        t0 = time.perf_counter()
        bar = tqdm(range(cfg.steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress,
                   leave=False)
        total, step_times = 0.0, []
        for i in bar:
            t_step = time.perf_counter()
            state, value = self.train_step(state)
            total += float(value)  # waits for the step: the times below are real
            step_times.append(time.perf_counter() - t_step)
            if i % 10 == 0 or i == cfg.steps_per_epoch - 1:
                bar.set_postfix(loss=f"{float(value):.4f}")
        return state, {"epoch": epoch, "train_loss": total / cfg.steps_per_epoch, "seconds": time.perf_counter() - t0,
                       "first_step_seconds": step_times[0], "median_step_seconds": float(np.median(step_times))}

    def _validation_row(self, params) -> dict[str, float]:
        """``val_loss`` and ``val_median_<metric>`` (basin median, NaN basins ignored) on the validation data."""
        scores = self.evaluate(params, self.validation)
        row = {"val_loss": float(scores["loss"])}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN median: reported as NaN in the row
            row.update({f"val_median_{m}": float(np.nanmedian(scores[m])) for m in self.config.validation_metrics})
        return row

    def _say(self, line: str) -> None:
        if self.config.progress:
            tqdm.write(line)

    # -- files ----------------------------------------------------------------------------

    def _log(self, row) -> None:
        """Write ``row`` into ``run_dir/log.csv`` (see :func:`~.checkpoints.write_log_row`)."""
        if self.run_dir is not None:
            write_log_row(self.run_dir, row)

    def save(self, state: TrainState, meta: Mapping, best_params) -> None:
        """Write the latest state, the best parameters and the loop's metadata (orbax)."""
        if self.run_dir is None:
            return
        save_checkpoint(self.run_dir, int(meta["epoch"]), state, best_params, {**meta, "seed": self.config.seed})

    def restore(self):
        """``(state, meta, best_params)`` from the newest checkpoint in ``run_dir`` or None."""
        if self.run_dir is None:
            return None
        restored = restore_checkpoint(self.run_dir, self.init_state())
        if restored is None:
            return None
        state, best_params, meta = restored
        if meta.get("seed") != self.config.seed:
            raise ValueError(f"checkpoint {self.run_dir / 'checkpoints'} was written with seed {meta.get('seed')}, "
                             f"the config has {self.config.seed}")
        return TrainState(**state), meta, best_params
