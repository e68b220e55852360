"""Probabilistic heads through the workflow: a small `difhydro train` run of the LSTM with a
CMAL head and neuralhydrology's cmal peer, whose metrics.csv is recomputed here with NumPy
from predictions.nc and the peer's draws (numeric integration of the mixture CDF, the
CRPS double sum, empirical quantiles), plus the pieces: head and loss options, the model's
outputs, the Trainer's evaluation of the likelihood, the ensemble mixture, the PIT KS."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from difhydro.experiment.outputs import open_predictions

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TINY = {
    "name": "tinyprob",
    "data": {"format": "caravan", "basins": ["01022500", "01031500", "01052500"], "pet": "oudin"},
    "periods": {"train": "2000-10-01:2002-09-30", "test": "1995-10-01:1996-03-31"},
    "evaluations": ["temporal"],
    "seeds": [0],
    "models": {"lstm": {"hidden_size": 8, "head": "cmal", "components": 2, "training": {"loss": "nll"}}},
    "training": {"epochs": 1, "steps_per_epoch": 4, "batch_size": 8, "window": 60, "warmup": 30},
    "peers": {"neuralhydrology": True, "threads": 1},
}


# -- independent NumPy versions of the asymmetric Laplace mixture ---------------------------


def _cmal_cdf(x, loc, scale, tau, w):
    """Mixture CDF at ``x`` ``[..., G]`` of components ``[..., K]`` (NumPy, float64)."""
    x = x[..., :, None]
    loc, scale, tau, w = (a[..., None, :].astype(np.float64) for a in (loc, scale, tau, w))
    u = x - loc
    below = tau * np.exp(np.minimum(u, 0) * (1 - tau) / scale)
    above = 1 - (1 - tau) * np.exp(-np.maximum(u, 0) * tau / scale)
    return (w * np.where(u < 0, below, above)).sum(-1)


def _crps_by_integration(loc, scale, tau, w, y, n=20001):
    """∫ (F(x) − 1[x >= y])² dx on a grid wide enough for every component's tails."""
    lo = (loc - 40 * scale / np.minimum(1 - tau, tau)).min(-1)
    hi = (loc + 40 * scale / np.minimum(1 - tau, tau)).max(-1)
    lo, hi = np.minimum(lo, y) - 1, np.maximum(hi, y) + 1
    grid = lo[..., None] + (hi - lo)[..., None] * np.linspace(0, 1, n)
    f = _cmal_cdf(grid, loc, scale, tau, w)
    step = (grid >= y[..., None]).astype(float)
    return np.trapezoid((f - step) ** 2, grid, axis=-1)


@pytest.fixture(scope="module")
def run(caravan, tmp_path_factory):
    """The tiny run, with neuralhydrology's cmal peer where the peer imports (a clean CI
    install has no `peers` extra: difhydro's own mixture is checked there too)."""
    from difhydro.experiment.run import train_run

    try:
        import neuralhydrology  # noqa: F401
        with_peer = True
    except ImportError:
        with_peer = False
    folder = tmp_path_factory.mktemp("prob")
    cfg = folder / "tiny.yml"
    cfg.write_text(yaml.safe_dump({**TINY, "peers": {**TINY["peers"], "neuralhydrology": with_peer}}))
    run_dir, table, failures = train_run(str(cfg), folder / "run", data_dir=str(caravan), progress=False,
                                         log=lambda *a: None)
    assert failures == []
    metrics = pd.read_csv(run_dir / "metrics.csv", dtype={"basin": str})
    return run_dir, metrics, open_predictions(run_dir / "predictions.nc")


def test_lstm_crps_in_metrics_equals_numeric_integration_of_the_mixture_in_predictions(run):
    _, metrics, ds = run
    fields = [ds[f"mixture_lstm__{k}"].sel(evaluation="temporal").values for k in ("loc", "scale", "asymmetry", "weights")]
    assert ds["mixture_lstm__loc"].attrs["distribution"] == "cmal"
    np.testing.assert_allclose(fields[3].sum(-1), 1.0, atol=1e-5)
    obs = ds["observed_streamflow"].values
    rows = metrics[metrics.model == "lstm"].set_index("basin")
    for b, basin in enumerate(ds.basin.values):
        ok = np.isfinite(obs[b])
        crps = _crps_by_integration(*(f[b][ok] for f in fields), obs[b][ok].astype(np.float64))
        assert rows.loc[basin, "crps"] == pytest.approx(crps.mean(), rel=2e-4)
        assert rows.loc[basin, "days"] == ok.sum()


def test_lstm_quantiles_are_ordered_invert_the_cdf_and_give_the_point_forecast(run):
    _, _, ds = run
    assert tuple(ds["quantile"].values) == QUANTILES
    q = ds["streamflow_quantile"].sel(evaluation="temporal", model="lstm").values  # [basin, time, 5]
    assert np.isfinite(q).all() and (np.diff(q, axis=-1) > 0).all()
    fields = [ds[f"mixture_lstm__{k}"].sel(evaluation="temporal").values for k in ("loc", "scale", "asymmetry", "weights")]
    f = _cmal_cdf(q.astype(np.float64), *fields)
    np.testing.assert_allclose(f, np.broadcast_to(QUANTILES, f.shape), atol=2e-5)
    # the point forecast is the median, clipped at 0 (the median of the mixture censored at 0)
    sim = ds["simulated_streamflow"].sel(evaluation="temporal", model="lstm").values
    np.testing.assert_allclose(sim, np.maximum(q[..., 2], 0), rtol=1e-5, atol=1e-6)


def _needs(model, metrics):
    if model not in set(metrics["model"]):
        pytest.skip(f"{model} was not trained here (neuralhydrology does not import)")


@pytest.mark.parametrize("model", ["lstm", "nh_cudalstm"])
def test_coverage_width_and_pit_agree_with_the_written_quantiles(run, model):
    _, metrics, ds = run
    _needs(model, metrics)
    q = ds["streamflow_quantile"].sel(evaluation="temporal", model=model).values
    obs = ds["observed_streamflow"].values
    rows = metrics[metrics.model == model].set_index("basin")
    for b, basin in enumerate(ds.basin.values):
        ok = np.isfinite(obs[b])
        y, qb = obs[b][ok], q[b][ok]
        for level, (lo, hi) in ((50, (1, 3)), (90, (0, 4))):
            inside = (y >= qb[:, lo]) & (y <= qb[:, hi])
            assert rows.loc[basin, f"coverage_{level}"] == pytest.approx(inside.mean(), abs=1e-6)
            assert rows.loc[basin, f"width_{level}"] == pytest.approx((qb[:, hi] - qb[:, lo]).mean(), rel=1e-5)
    if model == "lstm":  # PIT = F(y): the KS statistic of scipy on the NumPy CDF
        fields = [ds[f"mixture_lstm__{k}"].sel(evaluation="temporal").values for k in ("loc", "scale", "asymmetry", "weights")]
        for b, basin in enumerate(ds.basin.values):
            ok = np.isfinite(obs[b])
            pit = _cmal_cdf(obs[b][ok, None].astype(np.float64), *(f[b][ok] for f in fields))[:, 0]
            assert rows.loc[basin, "pit_ks"] == pytest.approx(stats.kstest(pit, "uniform").statistic, abs=1e-4)


def test_nh_cmal_peer_is_scored_from_its_own_draws(run):
    run_dir, metrics, ds = run
    _needs("nh_cudalstm", metrics)
    with np.load(run_dir / "peers" / "nh_cudalstm" / "result.npz") as z:
        draws = z["samples"].astype(np.float64)  # [basin, time, n]
    assert draws.shape[:2] == (3, len(ds.time)) and draws.shape[2] == 100
    obs = ds["observed_streamflow"].values
    rows = metrics[metrics.model == "nh_cudalstm"].set_index("basin")
    q = ds["streamflow_quantile"].sel(evaluation="temporal", model="nh_cudalstm").values
    np.testing.assert_allclose(q, np.moveaxis(np.quantile(draws, QUANTILES, axis=-1), 0, -1), rtol=1e-5, atol=1e-5)
    sim = ds["simulated_streamflow"].sel(evaluation="temporal", model="nh_cudalstm").values
    np.testing.assert_allclose(sim, np.median(draws, -1), rtol=1e-5, atol=1e-6)
    n = draws.shape[-1]
    for b, basin in enumerate(ds.basin.values):
        ok = np.isfinite(obs[b])
        x, y = draws[b][ok], obs[b][ok]
        # the unbiased CRPS of the draws' law: E|X - y| - E|X - X'| / 2 over distinct pairs
        pairs = np.abs(x[:, :, None] - x[:, None, :]).sum((1, 2)) / (n * (n - 1))
        crps = np.abs(x - y[:, None]).mean(-1) - 0.5 * pairs
        assert rows.loc[basin, "crps"] == pytest.approx(crps.mean(), rel=1e-4)
        pit = (x <= y[:, None]).mean(-1)
        assert rows.loc[basin, "pit_ks"] == pytest.approx(stats.kstest(pit, "uniform").statistic, abs=1e-5)


def test_a_reliability_figure_and_a_probabilistic_table_are_written(run):
    run_dir, metrics, _ = run
    assert (run_dir / "reliability.png").stat().st_size > 10_000
    summary = (run_dir / "summary.md").read_text()
    assert "median CRPS" in summary and "`reliability.png`" in summary
    if "nh_cudalstm" in set(metrics["model"]):
        assert "head cmal" in summary  # the peer's head is named


# -- the pieces -------------------------------------------------------------------------------


def test_head_and_loss_must_agree_in_the_config():
    from difhydro.experiment.config import ConfigError, load_config

    load_config({"models": {"lstm": {"head": "gmm", "components": 4, "training": {"loss": "nll"}}}})
    with pytest.raises(ConfigError, match=r"models.lstm.training.loss: 'nse_star' with head 'cmal'"):
        load_config({"models": {"lstm": {"head": "cmal"}}})
    with pytest.raises(ConfigError, match=r"models.lstm.training.loss: 'nll' with head 'regression'"):
        load_config({"models": {"lstm": {}}, "training": {"loss": "nll"}})
    with pytest.raises(ConfigError, match=r"models.lstm.head: 'umal' is not accepted; choose from regression, cmal, gmm"):
        load_config({"models": {"lstm": {"head": "umal"}}})
    with pytest.raises(ConfigError, match=r"models.lstm.components: must be >= 1"):
        load_config({"models": {"lstm": {"head": "cmal", "components": 0, "training": {"loss": "nll"}}}})


@pytest.fixture(scope="module")
def twin_data():
    from difhydro.data import fit_normalization, fulda_twin, make_basin_data
    from difhydro.physics import ExpHydro

    ds = fulda_twin(ExpHydro(), n_basins=2, seed=4, noise=0.05)
    period = ("1985-01-01", "1985-12-31")
    attrs, inputs = [f"attribute_{k}" for k in range(3)], ["precipitation", "temperature"]
    return make_basin_data(ds, fit_normalization(ds, inputs, attrs, period), period, window=100, warmup=20)


@pytest.mark.parametrize("head", ["cmal", "gmm"])
def test_the_mixture_is_the_standardised_head_moved_to_mm_per_day_and_streamflow_its_median(head, twin_data):
    import jax
    import jax.numpy as jnp

    from difhydro.data.batching import full_period_batch
    from difhydro.hybrid import build_model
    from difhydro.nn import distributions as D

    batch = jax.tree.map(lambda x: x[:, :40] if x.ndim >= 2 and x.shape[1] == 365 else x, full_period_batch(twin_data))
    model = build_model("lstm", flow_mean=1.5, flow_std=2.0, hidden_size=8, head=head, components=3)
    unit = build_model("lstm", flow_mean=0.0, flow_std=1.0, hidden_size=8, head=head, components=3)
    params = model.init(jax.random.key(0), batch)["params"]
    out, ref = model.apply({"params": params}, batch), unit.apply({"params": params}, batch)
    dist, std = out["streamflow_distribution"], ref["streamflow_distribution"]
    assert D.kind_of(dist) == head and dist.loc.shape == (2, 40, 3)
    np.testing.assert_allclose(dist.loc, 1.5 + 2.0 * std.loc, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.scale, 2.0 * std.scale, rtol=1e-5)
    np.testing.assert_allclose(dist.weights, std.weights)
    median = np.asarray(D.quantiles(dist, (0.5,)))[..., 0]
    np.testing.assert_allclose(np.asarray(D.cdf(dist, jnp.asarray(median))), 0.5, atol=1e-5)
    np.testing.assert_allclose(out["streamflow"], np.maximum(median, 0), rtol=1e-5, atol=1e-6)


def test_trainer_evaluation_scores_the_likelihood_of_the_mixture(twin_data):
    import jax
    import jax.numpy as jnp

    from difhydro.data.batching import full_period_batch
    from difhydro.hybrid import build_model
    from difhydro.nn.distributions import nll
    from difhydro.training import TrainConfig, Trainer

    data = twin_data
    model = build_model("lstm", flow_mean=1.0, flow_std=1.0, hidden_size=4, head="cmal", components=2)
    trainer = Trainer(model, data, TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, progress=False), loss="nll")
    params = trainer.init_state()["params"]
    scores = trainer.evaluate(params, data)
    pred, full = trainer.predict(params, data)
    dist = type(pred["streamflow_distribution"])(*(jnp.asarray(f) for f in pred["streamflow_distribution"]))
    expected = float(nll(dist, full.targets["streamflow"], full.masks["streamflow"]))
    assert np.isfinite(expected) and scores["loss"] == pytest.approx(expected, rel=1e-5)
    # nll on a point model: one line naming the missing output
    point = build_model("lstm", hidden_size=4)
    point_params = point.init(jax.random.key(0), full_period_batch(data))["params"]
    loose = Trainer(point, data, TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, progress=False), loss="nll")
    with pytest.raises(ValueError, match="needs a predictive distribution: the model has no output "
                                         "'streamflow_distribution'"):
        loose.evaluate(point_params, data)


def test_the_ensemble_of_probabilistic_members_is_their_equal_weight_mixture():
    from difhydro.experiment.reporting import ensemble, forecast_of

    rng = np.random.default_rng(1)

    def member():
        w = rng.uniform(0.1, 1, (2, 5, 3))
        return {"simulated": rng.uniform(0, 2, (2, 5)), "distribution_kind": "cmal", "distribution": {
            "loc": rng.normal(size=(2, 5, 3)), "scale": rng.uniform(0.2, 1, (2, 5, 3)),
            "asymmetry": rng.uniform(0.1, 0.9, (2, 5, 3)), "weights": w / w.sum(-1, keepdims=True)}}

    runs = [member(), member()]
    mix = ensemble(runs)["distribution"]
    assert mix["loc"].shape == (2, 5, 6)
    x = np.linspace(-3, 3, 7)[None, None, :].repeat(2, 0).repeat(5, 1)
    both = np.mean([_cmal_cdf(x, *(r["distribution"][k] for k in ("loc", "scale", "asymmetry", "weights")))
                    for r in runs], axis=0)
    np.testing.assert_allclose(_cmal_cdf(x, *(mix[k] for k in ("loc", "scale", "asymmetry", "weights"))), both,
                               rtol=1e-12)
    assert forecast_of({"simulated": 0}) is None


def test_pit_ks_equals_scipy_and_fair_crps_the_distinct_pair_sum():
    import jax.numpy as jnp

    from difhydro.training import probabilistic as P

    rng = np.random.default_rng(0)
    u = rng.uniform(size=(3, 60)) ** 1.3
    u[1, 10:] = np.nan
    want = [stats.kstest(r[np.isfinite(r)], "uniform").statistic for r in u]
    np.testing.assert_allclose(P.pit_ks(jnp.asarray(u)), want, rtol=1e-5)
    assert np.isnan(P.pit_ks(jnp.full((1, 4), jnp.nan)))[0]
    x, y = rng.normal(size=(4, 7)), rng.normal(size=4)
    pairs = np.abs(x[:, :, None] - x[:, None, :]).sum((1, 2))
    fair = np.abs(x - y[:, None]).mean(-1) - pairs / (2 * 7 * 6)
    np.testing.assert_allclose(P.crps_ensemble(jnp.asarray(x), jnp.asarray(y), fair=True), fair, rtol=1e-5)


def test_evaluate_scores_the_mixture_as_train_did(run, caravan):
    import difhydro

    run_dir, metrics, ds = run
    table = difhydro.load_run(run_dir).evaluate(data_dir=str(caravan), progress=False)
    again = pd.read_csv(Path(table.attrs["folder"]) / "metrics.csv", dtype={"basin": str})
    cols = ["crps", "pit_ks", "coverage_50", "width_50", "coverage_90", "width_90"]
    trained = metrics[metrics.model == "lstm"].set_index("basin")[cols]
    evaluated = again[again.model == "lstm"].set_index("basin")[cols]
    np.testing.assert_allclose(evaluated.loc[trained.index].to_numpy(), trained.to_numpy(), rtol=1e-5)
    written = open_predictions(Path(table.attrs["folder"]) / "predictions.nc")
    np.testing.assert_allclose(written["streamflow_quantile"].sel(model="lstm").values.squeeze(),
                               ds["streamflow_quantile"].sel(model="lstm", evaluation="temporal").values, rtol=1e-5)
