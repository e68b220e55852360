"""Trained models on disk: what a run directory keeps of each model, and how it comes back.

A trained (or calibrated) model of a run lives in ``models/<model>/<evaluation>_fold<k>/seed<s>/``:

- ``model.json``: registry name, options, training-flow statistics, inputs, attributes,
  forcing, window and warm-up, training basins and period, seed;
- ``norm_stats.json``: the standardisation of inputs and attributes (training data only);
- ``params/``: the final parameters (orbax), or ``calibrated.npz`` (per-basin physical
  parameters of a calibrated process model);
- ``checkpoints/``, ``log.csv``: the Trainer's (resume and the per-epoch log);
- ``result.npz``: the test-period predictions of that unit (written last: its presence
  means the unit is done).

:class:`SavedModel` reloads one and runs it over any basins and period (:func:`predict_unit`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..data import NormStats, make_basin_data
from ..hybrid import MODELS, build_model, model_options, run_physics
from ..training import predict as predict_batches
from .data import with_pet
from .rundir import write_json

__all__ = ["SavedModel", "save_params", "load_params", "window_period", "predict_unit"]


def save_params(path: Path, params) -> None:
    """Write a parameter pytree with orbax (atomic: orbax writes to a temporary folder first)."""
    import orbax.checkpoint as ocp

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(Path(path).resolve(), jax.tree.map(np.asarray, params))
    checkpointer.wait_until_finished()


def load_params(path: Path, template):
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    restored = ocp.StandardCheckpointer().restore(Path(path).resolve(), abstract)
    return jax.tree.unflatten(jax.tree.structure(template), jax.tree.leaves(restored))


def window_period(ds: xr.Dataset, period: tuple[str, str], warmup: int, basins=None, variables=()) -> tuple[tuple[str, str], int, int]:
    """The evaluation window of ``period`` with a ``warmup``-day spin-up.

    The spin-up runs on the ``warmup`` days before the period when ``variables`` are
    complete there for every basin; otherwise (the data start too late) it runs on the first
    ``warmup`` days of the period itself, which are then simulated but not scored. Returns
    ``((start, end), spin-up days, spin-up days inside the period)``.
    """
    start = pd.Timestamp(period[0])
    before = start - pd.Timedelta(days=warmup)
    if warmup and before >= pd.Timestamp(ds["time"].values[0]):
        sub = ds[list(variables)].sel(time=slice(str(before.date()), str((start - pd.Timedelta(days=1)).date())))
        if basins is not None:
            sub = sub.sel(basin=list(basins))
        if all(bool(np.isfinite(sub[v].values).all()) for v in variables):
            return (str(before.date()), period[1]), warmup, 0
    if not warmup:
        return (period[0], period[1]), 0, 0
    return (period[0], period[1]), warmup, warmup


#: defaults that changed since runs began to save every option (run.py ``_options``): a
#: model.json without the option was trained with the old default
LEGACY_DEFAULTS = {"transformer": {"position": "sinusoidal"}}


@dataclasses.dataclass
class SavedModel:
    """One trained or calibrated model of a run directory."""

    folder: Path
    info: dict

    @classmethod
    def load(cls, folder: Path) -> SavedModel:
        return cls(Path(folder), json.loads((Path(folder) / "model.json").read_text()))

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def seed(self) -> int:
        return int(self.info.get("seed", 0))

    @property
    def calibrated(self) -> bool:
        return MODELS[self.name].calibrated

    def build(self, **overrides):
        info = self.info
        legacy = LEGACY_DEFAULTS.get(self.name, {})  # the defaults of runs that saved only the given options
        return build_model(self.name, flow_mean=info["flow_mean"], flow_std=info["flow_std"],
                           **{**legacy, **info["options"], **overrides})

    def write(self) -> None:
        write_json(self.folder / "model.json", self.info)


def predict_unit(saved: SavedModel, ds: xr.Dataset, basins: Sequence[str], period: tuple[str, str],
                 state0: Mapping[str, np.ndarray] | None = None, params=None) -> dict[str, Any]:
    """Run a saved model over ``basins`` and ``period`` (with its spin-up before the period).

    Returns ``simulated`` ``[basin, time]`` (mm d-1, the period only), ``time``, for a
    probabilistic head ``distribution`` (field -> ``[basin, time, K]``, mm d-1) and
    ``distribution_kind`` (``"cmal"`` / ``"gmm"``), the
    per-basin physical parameters (``params``, static ones), the daily ``series`` of
    time-varying parameters and of the process-model states (the parameters' also over the
    spin-up, ``param_series_with_spin_up``), and ``final_state`` (the
    states at the end of the period, for a hot start). ``state0`` (a hot start) runs the
    physics from those states without spin-up.
    """
    info = saved.info
    ds = with_pet(ds, info.get("pet"))
    warmup = 0 if state0 is not None else int(info["warmup"])
    needed = [v for v in dict.fromkeys(info["forcing"] + info["inputs"]) if v in ds]
    window, spin, unpredicted = window_period(ds, period, warmup, basins, needed)
    sub = ds[needed].sel(basin=list(basins), time=slice(*window))
    for v in needed:  # never a silent fill: the window (spin-up included) must be complete
        bad = ~np.isfinite(sub[v].transpose("basin", "time").values)
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise ValueError(f"{v} is missing for basin {basins[b]} on {str(sub.time.values[t])[:10]} (and "
                             f"{int(bad.sum()) - 1} more day(s)) inside {window[0]}:{window[1]}, the period with its "
                             f"{spin}-day spin-up; choose another period or an interpolate policy for {v}")
    if saved.calibrated:
        model = saved.build()
        calibrated = np.load(saved.folder / "calibrated.npz")
        index = [info["basins"].index(b) for b in basins]
        physical = {k: jnp.asarray(calibrated[k][index]) for k in model.param_spec}
        sub = ds.sel(basin=list(basins), time=slice(*window))
        forcing = {k: jnp.asarray(sub[k].transpose("basin", "time").values, jnp.float32) for k in model.forcing_names}
        out, final = run_physics(model, physical, forcing, state0, return_state=True)
        out = jax.tree.map(np.asarray, out)
        out["params"] = {k: np.asarray(v) for k, v in physical.items()}
        final = {k: np.asarray(v) for k, v in final.items()}
    else:
        stats = NormStats.load(saved.folder / "norm_stats.json")
        overrides = {"warmup_days": 0} if state0 is not None and "warmup_days" in model_options(saved.name) else {}
        model = saved.build(**overrides)
        if "streamflow" not in ds:  # a prediction: BasinData needs a target, nothing reads or scores this one
            ds = ds.assign(streamflow=xr.full_like(ds[info["forcing"][0]], np.nan))
        data = make_basin_data(ds, stats, window, window=max(spin, 0) + 1, warmup=spin, forcing=info["forcing"],
                               basins=list(basins), min_observations=0)
        template = params
        if template is None:
            from ..data.batching import full_period_batch

            probe = jax.tree.map(lambda x: x[:1], full_period_batch(data))  # one basin: shapes only
            rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
            template = jax.eval_shape(lambda b: model.init(rngs, b), probe)["params"]
            params = load_params(saved.folder / "params", template)
        out, _ = predict_batches(model, params, data, initial_state=state0)
        final = {k: np.asarray(out[k])[:, -1] for k in out if k in getattr(_process_model(model), "state_names", ())}
    times = pd.date_range(*window)
    keep = slice(spin - unpredicted, None)
    simulated = np.asarray(out["streamflow"], np.float32)[:, keep]  # spin-up days inside the period: not scored
    result = {"time": times[keep], "simulated": simulated, "final_state": final, "spin_up_in_period": unpredicted}
    if not saved.calibrated and "streamflow_distribution" in out:  # a probabilistic head: its mixture, mm d-1
        from ..nn.distributions import kind_of

        dist = out["streamflow_distribution"]
        result["distribution"] = {k: np.asarray(v, np.float32)[:, keep] for k, v in dist._asdict().items()}
        result["distribution_kind"] = kind_of(dist)
    series, static, with_spin_up = {}, {}, {}
    for k, v in out.get("params", {}).items():
        v = np.asarray(v)
        (series.__setitem__(k, v[:, keep]) if v.ndim >= 2 and v.shape[1] == len(times) else static.__setitem__(k, v))
        if k in series:  # the state update (assimilate.py) reruns the spin-up with them
            with_spin_up[k] = v
    model_ = _process_model(model)
    for k in getattr(model_, "state_names", ()):
        if k in out:
            series[k] = np.asarray(out[k])[:, keep]
    result["params"], result["series"], result["param_series_with_spin_up"] = static, series, with_spin_up
    return result


def _process_model(model):
    """The process model inside a registry model (``None`` for a pure network)."""
    if hasattr(model, "param_spec"):
        return model
    return getattr(model, "model", None)
