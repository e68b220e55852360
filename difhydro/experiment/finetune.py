"""``difhydro finetune``: continue training chosen parts of a run's models into a NEW run.

neuralhydrology's ``finetune``: a trained run's networks (the gauged ``temporal`` models,
every seed) continue training on new basins and/or a new training period, starting from
their saved parameters and with the source's normalisation. ``parts`` chooses what trains:

- ``all``: every parameter;
- ``head``: the output layer only (``head`` of the LSTM and of the hybrid's convolution,
  ``output`` of an MLP, the hybrid's ``head_parameters``);
- ``parameter_network``: the network that maps inputs to the process model's parameters
  (a dPL encoder, the hybrid's ``physical_parameters``); refused for pure networks.

The rest is frozen with :func:`optax.multi_transform` (``optax.set_to_zero``): frozen
parameters stay bit-identical. The source run is only read; the result is a new run
directory (its ``provenance.json`` names the source) that ``evaluate`` and ``predict``
use like any other. Its ``metrics.csv`` scores, on the test period, the fine-tuned models
(evaluation ``finetuned``) beside the source's (evaluation ``source``) on the fine-tuning
basins and on held-out basins (``gauged`` False: for the source run too, when it never saw
them, the ungauged prediction).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import optax
import pandas as pd
import yaml

from .. import __version__
from .._files import atomic_write_text
from ..data import NormStats, make_basin_data
from ..hybrid import MODELS
from ..training import Trainer
from ..training.trainer import TrainState
from . import reporting
from .config import config_hash, config_to_dict, load_config, model_training, parse_period
from .data import prepare_data, read_basin_file, with_pet
from .models import SavedModel, _process_model, load_params, predict_unit, save_params
from .rundir import RunDirError, check_new_run_dir, create_run_dir, write_json

__all__ = ["PARTS", "trainable_labels", "finetune_run"]

PARTS = ("all", "head", "parameter_network")
#: module names of output layers, and of the networks that give a process model its parameters
_HEAD = ("head", "output", "head_parameters")
_PARAMETER_NETWORK = ("mlp", "lstm", "attention", "input_layer", "physical_parameters")


def trainable_labels(params, parts: str, model) -> object:
    """A pytree like ``params`` of ``"train"`` / ``"freeze"`` labels for ``parts`` (see the
    module doc); a ValueError when ``parts`` names nothing of ``model``."""
    if parts not in PARTS:
        raise ValueError(f"--parts: choose one of {', '.join(PARTS)}; got {parts!r}")
    if parts == "parameter_network" and _process_model(model) is None:
        raise ValueError(f"--parts parameter_network: {type(model).__name__} has no process model, hence no "
                         "parameter network (use head or all)")

    def label(path, _):
        modules = [str(getattr(k, "key", k)) for k in path[:-1]]  # the leaf is a kernel or bias
        if parts == "all":
            return "train"
        if parts == "head":
            return "train" if any(m in _HEAD for m in modules) else "freeze"
        return "train" if modules and modules[0] in _PARAMETER_NETWORK else "freeze"

    labels = jax.tree_util.tree_map_with_path(label, params)
    if "train" not in jax.tree.leaves(labels):
        raise ValueError(f"--parts {parts}: {type(model).__name__} has no such parameters "
                         f"(its modules: {sorted(params)})")
    return labels


class _FromParams(Trainer):
    """A Trainer that starts from given parameters instead of a fresh initialisation."""

    def __init__(self, *args, params, **kwargs):
        super().__init__(*args, **kwargs)
        self._start = params

    def init_state(self):
        import jax.numpy as jnp

        params = jax.tree.map(jnp.asarray, self._start)
        return TrainState(params=params, opt_state=self.tx.init(params), step=jnp.asarray(0, jnp.int32))


def _new_config(source, config, period, basins, epochs):
    """The fine-tuning config: the source's models and options; ``config``'s data, periods
    and training (the source's per-model training sections dropped), else the source's with
    ``period`` as the training period and ``basins``."""
    d = config_to_dict(source.config)
    if config is not None:
        new = yaml.safe_load(Path(config).read_text()) if not isinstance(config, dict) else dict(config)
        for key in ("data", "periods", "training"):
            if key in new:
                d[key] = new[key]
        d["models"] = {k: {o: v for o, v in opts.items() if o != "training"} for k, opts in d["models"].items()}
    if period is not None:
        d["periods"]["train"] = period
        d["periods"].pop("validation", None)
    if basins is not None:
        d["data"]["basins"] = list(basins)
    if epochs is not None:
        d["training"]["epochs"] = int(epochs)
        for opts in d["models"].values():
            (opts.get("training") or {}).pop("epochs", None)
    d["name"] = f"{d['name']}_finetuned"
    return load_config(d)


def finetune_run(source, out, *, config=None, period: str | None = None, basin_file=None,
                 basins: Sequence[str] | None = None, holdout_file=None, holdout: Sequence[str] = (),
                 parts: str = "all", models=None, epochs: int | None = None, data_dir=None,
                 progress: bool = True, log=print) -> tuple[Path, pd.DataFrame]:
    """Fine-tune the trained models of run ``source`` into the new run directory ``out``.

    Args:
        source: a run directory (only read).
        out: the new run directory (absent or an empty folder).
        config: a YAML file (or mapping) whose ``data``, ``periods`` and ``training``
            replace the source's; or ``period`` (the new training period ``START:END``)
            and/or ``basin_file`` / ``basins`` (the fine-tuning basins).
        holdout_file, holdout: basins scored but not trained on.
        parts: ``all``, ``head`` or ``parameter_network``.
        models: subset of the source's trained models (calibrated ones cannot be fine-tuned).
        epochs: overrides the training epochs.

    Returns:
        ``(out, metrics table)``.
    """
    from .api import load_run
    from .run import _save_result, train_config

    if parts not in PARTS:
        raise ValueError(f"--parts: choose one of {', '.join(PARTS)}; got {parts!r}")
    src = load_run(source)
    out = check_new_run_dir(out)
    if Path(out).resolve() == Path(source).resolve():
        raise RunDirError("--out: the fine-tuned run must be a new directory, never the source run")
    if period is not None:
        period = ":".join(parse_period(period, "--period"))
    if basin_file:
        basins = read_basin_file(basin_file)
    held = list(read_basin_file(holdout_file) if holdout_file else holdout)
    cfg = _new_config(src, config, period, basins, epochs)
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dir=str(Path(data_dir).expanduser().resolve())))
    saved = {k: v for k, v in src.models().items() if not MODELS[k].calibrated and (not models or k in models)}
    if not saved:
        raise ValueError(f"{source} has no trained network models to fine-tune (calibrated models are calibrated "
                         "basin by basin)")
    train_basins = list(basins) if basins is not None else list(src.provenance["basins"])
    overlap = sorted(set(held) & set(train_basins))
    if overlap:
        raise ValueError(f"--holdout-file: basins {overlap[:5]} are also fine-tuning basins")
    eval_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, basins=train_basins + held))
    data = prepare_data(eval_cfg)
    missing = [b for b in train_basins if b not in data.basins]
    if missing:
        raise ValueError(f"fine-tuning basins {missing[:5]} were excluded by the data checks: {data.excluded}")
    create_run_dir(out, config_hash(cfg), __version__)
    atomic_write_text(out / "config.yml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    atomic_write_text(out / "config.sha256", config_hash(cfg) + "\n")
    write_json(out / "provenance.json", {"difhydro": __version__, **data.provenance(), "finetuned_from": str(
        Path(source).resolve()), "source_config_hash": src.marker["config_hash"], "parts": parts,
        "finetune_basins": train_basins, "holdout_basins": held})
    periods, ds = data.periods, data.ds
    test_time = pd.date_range(*periods["test"])
    observed = ds["streamflow"].sel(basin=data.basins, time=test_time).transpose("basin", "time").values
    rows, simulated, frozen_report = [], {}, []
    for name, members in saved.items():
        t = model_training(cfg, name)
        for member in members:
            folder = out / "models" / name / "temporal_fold0" / f"seed{member.seed}"
            folder.mkdir(parents=True)
            stats = NormStats.load(member.folder / "norm_stats.json")
            train = make_basin_data(with_pet(ds, member.info.get("pet")), stats, periods["train"], window=t.window,
                                    warmup=t.warmup,
                                    forcing=member.info["forcing"], basins=train_basins,
                                    min_observations=t.required_observations())
            model = member.build()
            start = _load(member, model, train)
            labels = trainable_labels(start, parts, model)
            tc = train_config(t, member.seed, progress)
            tx = optax.multi_transform({"train": tc.optimizer(), "freeze": optax.set_to_zero()}, labels)
            trainer = _FromParams(model, train, tc, loss=t.loss, run_dir=folder, norm_stats=stats, optimizer=tx,
                                  params=start)
            t0 = time.perf_counter()
            fit = trainer.fit()
            seconds = time.perf_counter() - t0
            save_params(folder / "params", fit["params"])
            n_frozen = sum(v == "freeze" for v in jax.tree.leaves(labels))
            frozen_report.append(f"{name} seed {member.seed}: {len(jax.tree.leaves(labels)) - n_frozen} parameter "
                                 f"arrays trained, {n_frozen} frozen ({parts})")
            info = {**member.info, "basins": train_basins, "train_period": list(periods["train"]),
                    "finetuned_from": str(member.folder.resolve()), "parts": parts, "difhydro": __version__}
            new = SavedModel(folder, info)
            new.write()
            mine = predict_unit(new, ds, data.basins, periods["test"], params=fit["params"])
            before = predict_unit(member, ds, data.basins, periods["test"])
            timing = {"train_seconds": seconds, "seconds_per_epoch": seconds / max(len(fit["history"]), 1),
                      "basin_days_per_second": np.nan}
            _save_result(folder, {**mine, **timing})
            for evaluation, res, timed in (("finetuned", mine, timing), ("source", before, None)):
                rows += reporting.metric_rows(evaluation=evaluation, fold=0, model=name, seed=member.seed,
                                              basins=data.basins, simulated=res["simulated"], observed=observed,
                                              spin_up_in_period=res["spin_up_in_period"], gauged=set(train_basins),
                                              timing=timed)
                if member is members[0]:
                    simulated[(evaluation, name)] = res["simulated"]
    head = [f"# difhydro fine-tuned run `{cfg.name}` (from `{source}`)", "", *[f"- {n}" for n in data.notes],
            f"- parts trained: {parts}; " + "; ".join(frozen_report),
            f"- fine-tuning basins: {len(train_basins)}, training period {periods['train'][0]}..{periods['train'][1]}; "
            f"held-out basins: {len(held)} (`gauged` False)", "",
            "`finetuned` = the fine-tuned models, `source` = the source run's models, on the same basins and test "
            "period.", ""]
    units = reporting.model_units(m[0].build() for m in saved.values())
    table, _ = reporting.write_report(
        out, rows=rows, time=test_time, basins=data.basins, simulated=simulated, observed=observed, params={},
        series={}, final={}, units=units, coords=reporting.basin_coords(ds, data.basins),
        attrs={"title": f"difhydro fine-tuned run {cfg.name}", "source": f"difhydro {__version__}; fine-tuned from "
               f"{source}", "difhydro_version": __version__, "config_hash": config_hash(cfg)},
        data=data, head=head, tail=_split_table(pd.DataFrame(rows)))
    log(f"difhydro finetune: wrote {out}")
    return Path(out), table


def _split_table(rows: pd.DataFrame) -> list[str]:
    """Median NSE of each model, evaluation and basin group (fine-tuning / held-out)."""
    rows = rows.assign(basins=np.where(rows["gauged"], "fine-tuning basins", "held-out basins"))
    table = rows.groupby(["model", "basins", "evaluation"])["nse"].median().unstack("evaluation")
    lines = ["## Fine-tuning and held-out basins (median NSE, test period)", "",
             "| model | basins | " + " | ".join(table.columns) + " |", "|---|---|" + "---|" * len(table.columns)]
    lines += [f"| {m} | {g} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for (m, g), row in table.iterrows()]
    return lines + [""]


def _load(saved: SavedModel, model, data):
    """The saved parameters of ``saved`` (shapes from ``model`` on one basin of ``data``)."""
    from ..data.batching import full_period_batch

    probe = jax.tree.map(lambda x: x[:1], full_period_batch(data))
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    template = jax.eval_shape(lambda b: model.init(rngs, b), probe)["params"]
    return load_params(saved.folder / "params", template)
