"""ParaFormer (Li & Lu 2023) at CAMELS scale: parameter learning through the physics.

Compares, on gauged basins and on neighbouring held-out basins (the paper's DAS-S8 /
DAS-S8NG split):

- per-basin calibration: SCE-UA (spotpy) and gradient descent through the model;
- regional parameter learning: FFN_A, LSTM_Z, ParaFormer_A, ParaFormer_Z, trained with
  gradients through the differentiable VicBucket ("direct");
- the paper's route: the same networks trained through a frozen LSTM surrogate of the
  VicBucket ("surrogate"; the surrogate is trained first, its cost is counted);

on two data sets: a VicBucket synthetic twin (forcing from the Caravan/CAMELS basins,
known parameters, liquid precipitation only, ``VicBucket()``) and real Caravan/CAMELS
streamflow (``VicBucket(snow=True)``: the EXP-HYDRO snow bucket turns ERA5-Land
precipitation and temperature into liquid water input, 8 learned parameters). Every
method is scored on the test period with the real model (Table 2 metrics: RMSE, PCC,
NSE); on the twin also evapotranspiration, never used in training (Table 3), the R2 of
learned vs true parameters on held-out basins, and the spatial roughness of the fields.

Usage::

    python examples/paraformer.py --quick --out /tmp/paraformer       # ~1 min
    python examples/paraformer.py --out runs/paraformer               # full setting

Writes ``results.md``, ``results.json`` and plots (``parameters_twin.png``,
``parameters_real.png``) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from difhydro.contrib import paraformer as pf  # noqa: E402
from difhydro.training.calibrate import gradient_calibration, sceua_calibration  # noqa: E402
from difhydro.data.batching import full_period_batch  # noqa: E402
from difhydro.hybrid import run_physics  # noqa: E402
from difhydro.training import predict  # noqa: E402
from difhydro.data import fit_normalization, load_caravan, make_basin_data, make_synthetic_twin  # noqa: E402
from difhydro.physics import VicBucket  # noqa: E402

DATA = Path("/work/shared/data/camels_caravan")
REAL_ATTRIBUTES = ("p_mean", "pet_mean", "aridity", "frac_snow", "high_prec_freq", "high_prec_dur",
                   "low_prec_freq", "seasonality", "ele_mt_sav", "slp_dg_sav", "for_pc_sse", "cly_pc_sav")

SETTINGS = {
    "quick": dict(
        datasets=("twin",), twin_basins=10, holdout=3, train=("1997-01-01", "1998-12-31"),
        test=("1999-01-01", "1999-12-31"), history=60, scored=120, steps=100, batch=16, lr=3e-3,
        surrogate_steps=100, surrogate_hidden=32, sceua_runs=60, gradient_steps=30,
        networks=("paraformer_a",), surrogate_networks=("paraformer_a",),
        sizes={"paraformer_a": {"d_model": 32, "num_heads": 2, "mlp_dim": 64},
               "paraformer_z": {"d_model": 32, "num_heads": 2, "mlp_dim": 64}},
    ),
    "full": dict(
        datasets=("twin", "real"), twin_basins=40, holdout=10, train=("1990-10-01", "1999-09-30"),
        test=("1999-10-01", "2004-09-30"), history=240, scored=365, steps=400, batch=32, lr=1e-3,
        surrogate_steps=800, surrogate_hidden=64, sceua_runs=600, gradient_steps=300,
        networks=("ffn_a", "lstm_z", "paraformer_a", "paraformer_z"),
        surrogate_networks=("paraformer_a", "paraformer_z"),
        # ParaFormer_A at the paper's size; ParaFormer_Z / LSTM_Z / FFN_A reduced (CPU budget)
        sizes={"paraformer_z": {"d_model": 64, "num_heads": 4, "mlp_dim": 128},
               "lstm_z": {"hidden_size": 64}, "ffn_a": {"hidden_size": 128}},
    ),
}
LABEL = {"ffn_a": "FFN_A", "lstm_z": "LSTM_Z", "paraformer_a": "ParaFormer_A", "paraformer_z": "ParaFormer_Z"}


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


def add_history_inputs(ds):
    """``streamflow_input`` (gaps filled with the basin mean) and ``streamflow_observed``
    (1/0): the observation history read by the *_Z networks (only ever before the scored
    days; see difhydro.contrib.paraformer)."""
    q = ds["streamflow"]
    ds["streamflow_input"] = q.fillna(q.mean("time"))
    ds["streamflow_observed"] = q.notnull().astype("float32")
    return ds


def prepare(ds, model, static, gauged, held, cfg):
    """BasinData for training (gauged basins, train period) and evaluation (test period
    preceded by ``history`` spin-up/history days), plus numpy series for calibration."""
    forcing = tuple(model.forcing_names)
    inputs = forcing + ("streamflow_input", "streamflow_observed")
    basins = np.asarray(ds.basin.values).astype(str)
    train_basins, held_basins = list(basins[gauged]), list(basins[held])
    stats = fit_normalization(ds, inputs, static, cfg["train"], train_basins)
    warm = cfg["history"]
    kw = dict(forcing=forcing, inputs=inputs, static=static)
    train = make_basin_data(ds, stats, cfg["train"], window=warm + cfg["scored"], warmup=warm,
                            basins=train_basins, **kw)
    start = (pd.Timestamp(cfg["test"][0]) - pd.Timedelta(days=warm)).strftime("%Y-%m-%d")
    period = (start, cfg["test"][1])
    evaluate = {name: make_basin_data(ds, stats, period, window=warm + 30, warmup=warm, basins=b, **kw)
                for name, b in (("gauged", train_basins), ("held_out", held_basins))}
    sub = ds.sel(time=slice(*cfg["train"]), basin=train_basins)
    series = {k: np.asarray(sub[k].transpose("basin", "time").values, np.float32) for k in forcing}
    observed = np.asarray(sub["streamflow"].transpose("basin", "time").values, np.float32)
    flag = stats.standardise("streamflow_observed", np.float32(0.5))
    return dict(stats=stats, train=train, evaluate=evaluate, forcing=series, observed=observed,
                mask_feature=len(inputs) - 1, mask_threshold=float(flag))


# ----------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------


def evaluate_params(model, params_by_group, prep, extra=()):
    """Simulate each group's test period with given parameters -> scores and outputs."""
    out = {}
    for group, data in prep["evaluate"].items():
        batch = full_period_batch(data)
        params = {k: jnp.asarray(v, jnp.float32) for k, v in params_by_group[group].items()}
        sim = jax.tree.map(np.asarray, jax.jit(lambda p, f: run_physics(model, p, f))(params, batch.forcing))
        out[group] = {"scores": pf.score(sim["streamflow"], batch.target, batch.mask),
                      "sim": {k: sim[k] for k in ("streamflow",) + tuple(extra)},
                      "params": {k: np.asarray(v) for k, v in params_by_group[group].items()}}
    return out


def classical(model, prep, gauged_donor, cfg, progress, extra):
    """SCE-UA and per-basin gradient calibration; held-out basins take the parameters of
    their nearest gauged basin (they have no calibration of their own)."""
    results = {}
    warm = cfg["history"]
    t0 = time.perf_counter()
    sce = sceua_calibration(model, prep["forcing"], prep["observed"], warmup_days=warm,
                            max_runs=cfg["sceua_runs"], progress=progress)
    t_sce = time.perf_counter() - t0
    t0 = time.perf_counter()
    grad = gradient_calibration(model, prep["forcing"], prep["observed"], warmup_days=warm,
                                steps=cfg["gradient_steps"], learning_rate=0.05, progress=progress)
    t_grad = time.perf_counter() - t0
    for name, res, sec, runs in (("SCE-UA", sce, t_sce, f"{cfg['sceua_runs']} runs/basin"),
                                 ("gradient calibration", grad, t_grad, f"{cfg['gradient_steps']} steps")):
        groups = {"gauged": res.params, "held_out": {k: np.asarray(v)[gauged_donor] for k, v in res.params.items()}}
        results[name] = {**evaluate_params(model, groups, prep, extra), "seconds": sec, "budget": runs}
    return results


def learned(model, prep, network, cfg, progress, extra, surrogate=None, seed=0):
    """Train one parameter network (direct or surrogate route) and evaluate it with the
    real model on both basin groups."""
    sizes = tuple(cfg["sizes"].get(network, {}).items())
    common = dict(model=model, network=network, sizes=sizes, history_days=cfg["history"],
                  history_mask_feature=prep["mask_feature"], history_mask_threshold=prep["mask_threshold"])
    learner = pf.ParameterLearner(**common, surrogate=surrogate)
    fit = pf.fit_parameter_learner(learner, prep["train"], steps=cfg["steps"], batch_size=cfg["batch"],
                                   learning_rate=cfg["lr"], seed=seed, progress=progress)
    direct = pf.ParameterLearner(**common)  # testing: the learned θ go into the real model
    result = {"seconds": fit["seconds"], "losses": fit["losses"].tolist(), "budget": f"{cfg['steps']} x {cfg['batch']} windows"}
    for group, data in prep["evaluate"].items():
        pf.check_leakage(direct, data)
        out, batch = predict(direct, fit["params"], data, chunk=32)
        result[group] = {"scores": pf.score(out["streamflow"], batch.target, batch.mask),
                         "sim": {k: out[k] for k in ("streamflow",) + tuple(extra)},
                         "params": out["params"]}
    return result


def mean_flow_baseline(prep):
    """Each basin's mean observed flow over its history days, held constant over the test."""
    out = {}
    for group, data in prep["evaluate"].items():
        batch = full_period_batch(data)
        obs = data.observations()[:, : data.warmup]
        sim = np.broadcast_to(np.nanmean(obs, axis=1)[:, None], batch.target.shape)
        out[group] = {"scores": pf.score(sim, batch.target, batch.mask)}
    return out


# ----------------------------------------------------------------------------------------
# One data set
# ----------------------------------------------------------------------------------------


def run_dataset(kind, source, cfg, progress):
    if kind == "twin":
        model = VicBucket()
        ds = make_synthetic_twin(model, source, cfg["twin_basins"], seed=0)
        static = [v for v in ds.data_vars if v.startswith("attribute_")]
        coords = np.stack([ds[v].values for v in static], axis=1)
        extra = ("evapotranspiration",)
    else:
        model = VicBucket(snow=True)
        ds = source
        static = list(REAL_ATTRIBUTES)
        coords = np.stack([ds.gauge_lat.values, ds.gauge_lon.values], axis=1)
        extra = ()
    ds = add_history_inputs(ds)
    gauged, held, donor = pf.neighbour_split(coords, cfg["holdout"])
    donor = np.searchsorted(gauged, donor)  # position of the donor among the gauged basins
    prep = prepare(ds, model, static, gauged, held, cfg)
    methods = {"mean flow (history)": mean_flow_baseline(prep)}
    if kind == "twin":
        truth = {g: {k.removeprefix("param_"): ds[k].values[idx] for k in ds.data_vars if k.startswith("param_")}
                 for g, idx in (("gauged", gauged), ("held_out", held))}
        methods["true parameters"] = evaluate_params(model, truth, prep, extra)
    methods.update(classical(model, prep, donor, cfg, progress, extra))
    for net in cfg["networks"]:
        methods[f"{LABEL[net]} (direct)"] = learned(model, prep, net, cfg, progress, extra)
    surrogate_info = None
    if kind == "twin" and cfg["surrogate_networks"]:
        surrogate, info = pf.train_surrogate(model, prep["train"], steps=cfg["surrogate_steps"],
                                             hidden_size=cfg["surrogate_hidden"], progress=progress)
        surrogate_info = {"seconds": info["seconds"], "model_runs": info["model_runs"],
                          "validation_nse_median": float(np.median(info["validation_nse"])),
                          "validation_nse_p10": float(np.percentile(info["validation_nse"], 10))}
        for net in cfg["surrogate_networks"]:
            res = learned(model, prep, net, cfg, progress, extra, surrogate=surrogate)
            res["seconds_with_surrogate"] = res["seconds"] + info["seconds"]
            methods[f"{LABEL[net]} (surrogate)"] = res
    result = {"methods": methods, "surrogate": surrogate_info, "model": model,
              "basins": {"gauged": np.asarray(ds.basin.values)[gauged].tolist(),
                         "held_out": np.asarray(ds.basin.values)[held].tolist()},
              "coords": {"gauged": coords[gauged], "held_out": coords[held]}}
    if kind == "twin":
        result["truth"] = truth
        result["et_truth"] = {g: twin_et(ds, prep, b) for g, b in (("gauged", gauged), ("held_out", held))}
    return result


def twin_et(ds, prep, idx):
    """The twin's true evapotranspiration over each evaluation window [basin, time]."""
    data = prep["evaluate"]["gauged"]
    start = pd.Timestamp(data.first_day)
    n = data.target.shape[1]
    return np.asarray(ds["true_evapotranspiration"].isel(basin=idx).sel(time=slice(start, None)).values[:, :n])


# ----------------------------------------------------------------------------------------
# Tables and plots
# ----------------------------------------------------------------------------------------


def median_scores(entry):
    return {m: float(np.nanmedian(v)) for m, v in entry["scores"].items()}


def table(result, groups=("gauged", "held_out")):
    head = "| method | " + " | ".join(f"{g} RMSE | {g} PCC | {g} NSE" for g in groups) + " | wall clock (s) | budget |"
    lines = [head, "|" + "---|" * (2 + 3 * len(groups))]
    for name, entry in result["methods"].items():
        cells = []
        for g in groups:
            s = median_scores(entry[g])
            cells += [f"{s['rmse']:.3f}", f"{s['pcc']:.3f}", f"{s['nse']:.3f}"]
        sec = entry.get("seconds_with_surrogate", entry.get("seconds"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if sec is None else f'{sec:.0f}'} | {entry.get('budget', '')} |")
    return "\n".join(lines)


def et_table(result, prep_warm):
    lines = ["| method | gauged RMSE | gauged PCC | gauged NSE | held-out RMSE | held-out PCC | held-out NSE |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in result["methods"].items():
        if "sim" not in entry.get("gauged", {}) or "evapotranspiration" not in entry["gauged"]["sim"]:
            continue
        cells = []
        for g in ("gauged", "held_out"):
            sim = entry[g]["sim"]["evapotranspiration"]
            obs = result["et_truth"][g]
            mask = np.zeros_like(obs, bool)
            mask[:, prep_warm:] = True
            s = {m: float(np.nanmedian(v)) for m, v in pf.score(sim, obs, mask).items()}
            cells += [f"{s['rmse']:.3f}", f"{s['pcc']:.3f}", f"{s['nse']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parameter_table(result):
    model = result["model"]
    names = list(model.param_spec)
    lines = ["| method | " + " | ".join(f"R2 {n}" for n in names) + " | mean R2 | roughness (truth "
             f"{np.mean([pf.roughness(result['truth']['gauged'][n], result['coords']['gauged'], model.param_spec[n].high - model.param_spec[n].low) for n in names]):.3f}) |",
             "|" + "---|" * (len(names) + 3)]
    for name, entry in result["methods"].items():
        if "params" not in entry.get("held_out", {}) or name == "true parameters":
            continue
        r2 = [pf.parameter_r2(entry["held_out"]["params"][n], result["truth"]["held_out"][n]) for n in names]
        rough = np.mean([pf.roughness(entry["gauged"]["params"][n], result["coords"]["gauged"],
                                      model.param_spec[n].high - model.param_spec[n].low) for n in names])
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in r2) + f" | {np.mean(r2):.2f} | {rough:.3f} |")
    return "\n".join(lines)


def plot_twin(result, path):
    model = result["model"]
    names = list(model.param_spec)
    shown = [m for m in result["methods"] if m.startswith(("SCE-UA", "gradient", "ParaFormer"))]
    fig, axes = plt.subplots(len(shown), len(names), figsize=(3 * len(names), 2.6 * len(shown)), squeeze=False)
    for i, m in enumerate(shown):
        for j, n in enumerate(names):
            ax = axes[i, j]
            for g, marker in (("gauged", "o"), ("held_out", "^")):
                ax.scatter(result["truth"][g][n], result["methods"][m][g]["params"][n], s=12, marker=marker, label=g)
            lo, hi = model.param_spec[n].low, model.param_spec[n].high
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"{m}: {n}", fontsize=8)
            if j == 0:
                ax.set_ylabel("learned")
            if i == len(shown) - 1:
                ax.set_xlabel("true")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_real(result, path, name="b_infilt"):
    shown = [m for m in result["methods"] if m.startswith(("SCE-UA", "ParaFormer_Z", "LSTM_Z"))]
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), squeeze=False)
    spec = result["model"].param_spec[name]
    for ax, m in zip(axes[0], shown):
        for g, marker in (("gauged", "o"), ("held_out", "^")):
            c = result["coords"][g]
            sc = ax.scatter(c[:, 1], c[:, 0], c=result["methods"][m][g]["params"][name], vmin=spec.low,
                            vmax=spec.high, marker=marker, s=40, cmap="viridis")
        ax.set_title(f"{name}: {m}", fontsize=9)
        ax.set_xlabel("lon")
    axes[0, 0].set_ylabel("lat")
    fig.colorbar(sc, ax=axes[0].tolist())
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _jsonable(result):
    out = {}
    for name, entry in result["methods"].items():
        out[name] = {g: median_scores(entry[g]) for g in ("gauged", "held_out")}
        out[name].update({k: entry[k] for k in ("seconds", "seconds_with_surrogate", "losses", "budget") if k in entry})
    return {"methods": out, "surrogate": result["surrogate"], "basins": result["basins"]}


# ----------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI setting (~1 min)")
    parser.add_argument("--out", default="runs/paraformer", help="output folder")
    parser.add_argument("--data", default=str(DATA), help="Caravan folder")
    parser.add_argument("--datasets", nargs="+", choices=("twin", "real"), help="default: the setting's")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    cfg = dict(SETTINGS["quick" if args.quick else "full"])
    if args.datasets:
        cfg["datasets"] = tuple(args.datasets)
    progress = not args.no_progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # ERA5-Land's potential_evaporation_sum is negative on condensation days: clipped to 0, counted in the report
    source = load_caravan(args.data, cache_dir=out / "cache", policies={"pet": {"clip": [0, None]}})
    results, report = {}, [f"# ParaFormer comparison ({'quick' if args.quick else 'full'} setting)\n",
                           f"Command: `python examples/paraformer.py {' '.join(argv or [])}`\n"]
    for kind in cfg["datasets"]:
        res = run_dataset(kind, source, cfg, progress)
        results[kind] = res
        report.append(f"## {kind}: streamflow, test period {cfg['test'][0]}..{cfg['test'][1]} "
                      f"(medians over basins; {len(res['basins']['gauged'])} gauged, "
                      f"{len(res['basins']['held_out'])} held-out)\n")
        report.append(table(res) + "\n")
        if kind == "twin":
            report.append("### twin: uncalibrated variable (evapotranspiration vs the twin's truth)\n")
            report.append(et_table(res, cfg["history"]) + "\n")
            report.append("### twin: parameters (R2 on held-out basins; roughness on gauged basins)\n")
            report.append(parameter_table(res) + "\n")
            if res["surrogate"]:
                s = res["surrogate"]
                report.append(f"Surrogate: {s['model_runs']} simulated windows, {s['seconds']:.0f} s "
                              f"(data + training), validation NSE median {s['validation_nse_median']:.3f}, "
                              f"10th percentile {s['validation_nse_p10']:.3f}.\n")
            plot_twin(res, out / "parameters_twin.png")
        else:
            plot_real(res, out / "parameters_real.png")
    report.append(f"Total wall clock: {time.perf_counter() - t0:.0f} s.\n")
    (out / "results.md").write_text("\n".join(report))
    (out / "results.json").write_text(json.dumps({k: _jsonable(v) for k, v in results.items()}, indent=1, default=float))
    print("\n".join(report))
    return results


if __name__ == "__main__":
    main()
