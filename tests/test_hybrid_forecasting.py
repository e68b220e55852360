"""The regional hybrid with a probabilistic output (distribution: cmal|gmm) and with the
observed flow of the previous days as an input of its head (autoregressive: true)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.experiment.config import ConfigError, load_config
from difhydro.hybrid import build_model
from difhydro.hybrid.registry import mixture_kind, probabilistic
from difhydro.nn.distributions import CMAL, GaussianMixture, cdf, median, nll, quantiles
from difhydro.physics import ExpHydro

from helpers import random_forcing

Q_SCALE = 2.0  # mm d-1, the training flow's standard deviation


def _batch(flow=None, n_basins=3, n_days=120, seed=0):
    """Synthetic forcing (with PET), standardised inputs, attributes; ``flow`` [basin, time]
    (NaN = missing) becomes the primary target and its mask."""
    forcing = {k: jnp.asarray(v).T for k, v in random_forcing(n_days, n_basins, seed=seed).items()}
    forcing["pet"] = jnp.full((n_basins, n_days), 1.5, jnp.float32)
    rng = np.random.default_rng(seed)
    batch = {"forcing": forcing,
             "inputs": jnp.asarray(rng.normal(size=(n_basins, n_days, 3)), jnp.float32),
             "attributes": jnp.asarray(rng.normal(size=(n_basins, 4)), jnp.float32)}
    if flow is not None:
        batch["targets"] = {"streamflow": jnp.asarray(np.nan_to_num(flow), jnp.float32)}
        batch["masks"] = {"streamflow": jnp.asarray(np.isfinite(flow))}
    return batch


#: a wet start (mm): from empty buckets EXP-HYDRO gives no flow for months
STATE0 = {"snow_storage": jnp.zeros(3), "soil_storage": jnp.full(3, 800.0)}


_COMPILED = {}


def _apply(model, params, batch, **kw):
    """``model.apply`` from the wet start, compiled once per model (tests run in seconds)."""
    if id(model) not in _COMPILED:
        _COMPILED[id(model)] = (model, jax.jit(model.apply, static_argnames=("deterministic",)))
    return _COMPILED[id(model)][1]({"params": params}, batch, initial_state=STATE0, **kw)


def _init(model, batch, seed=0):
    return jax.jit(model.init)({"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}, batch)["params"]


# -- probabilistic output -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["cmal", "gmm"])
def probabilistic_hybrid(request):
    model = build_model("hybrid", flow_std=Q_SCALE, hidden_size=8, distribution=request.param, components=3)
    batch = _batch()
    return request.param, model, _init(model, batch), batch


def test_the_mixture_quantiles_and_median_agree_with_its_cdf(probabilistic_hybrid):
    kind, model, params, batch = probabilistic_hybrid
    out = _apply(model, params, batch)
    dist = out["streamflow_distribution"]
    assert isinstance(dist, {"cmal": CMAL, "gmm": GaussianMixture}[kind])
    assert dist.loc.shape == (3, 120, 3)
    probs = (0.05, 0.25, 0.5, 0.75, 0.95)
    q = np.asarray(quantiles(dist, probs))
    assert (np.diff(q, axis=-1) > 0).all()
    for i, p in enumerate(probs):  # F(F^-1(p)) = p, to float32 round-off of the CDF
        np.testing.assert_allclose(np.asarray(cdf(dist, q[..., i])), p, atol=2e-5)
    # the point forecast is the median censored at 0
    np.testing.assert_allclose(np.asarray(out["streamflow"]), np.maximum(q[..., 2], 0.0), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(cdf(dist, out["streamflow"])), 0.5, atol=2e-5)


def test_the_mixture_is_centred_on_the_point_flow_of_the_hybrid(probabilistic_hybrid):
    """Untrained, the probabilistic hybrid forecasts as the point hybrid with the same weights,
    and its mixture's median is that flow; the centring is built in, so it holds for any
    weights of the mixture head too (here perturbed). Tolerance: the median comes from 60
    bisections to float32 resolution plus one Newton step; 1e-5 relative + 1e-5 mm d-1."""
    kind, model, params, batch = probabilistic_hybrid
    point_model = build_model("hybrid", flow_std=Q_SCALE, hidden_size=8)
    point = {k: v for k, v in params.items() if k != "distribution"}
    assert set(params) - set(point) == {"distribution"}
    q_point = np.asarray(_apply(point_model, point, batch)["streamflow"])
    assert q_point.min() >= 0.0 and q_point.max() > 0.5  # a real flow, not a zero series
    leaves, tree = jax.tree.flatten(params["distribution"])
    keys = jax.random.split(jax.random.key(7), len(leaves))
    noisy = jax.tree.unflatten(tree, [w + 0.1 * jax.random.normal(k, w.shape) for w, k in zip(leaves, keys)])
    for head_params in (noisy, params["distribution"]):
        out = _apply(model, dict(params, distribution=head_params), batch)
        np.testing.assert_array_equal(np.asarray(out["streamflow"]), q_point)
        np.testing.assert_allclose(np.asarray(median(out["streamflow_distribution"])), q_point, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(out["physics_streamflow"]),
                                      np.asarray(_apply(point_model, point, batch)["physics_streamflow"]))
    # untrained, the mixture is a real spread around it (5-95 % wider than 0.1 q_scale), not a point mass
    q05, q95 = np.moveaxis(np.asarray(quantiles(out["streamflow_distribution"], (0.05, 0.95))), -1, 0)
    assert (q95 - q05 > 0.1 * Q_SCALE).all() and ((q05 < q_point) & (q_point < q95)).all()


def test_the_nll_gradient_is_finite_across_the_physical_parameter_box(probabilistic_hybrid):
    """The physical parameters at the low end, the middle and the high end of their boxes
    (the parameter network's output bias saturates the sigmoid): every gradient is finite."""
    kind, model, params, batch = probabilistic_hybrid
    observed = jnp.asarray(np.random.default_rng(3).gamma(1.0, 2.0, size=(3, 120)), jnp.float32)
    mask = jnp.arange(120)[None, :] >= 30

    def loss(p):
        out = _apply(model, p, batch)
        return nll(out["streamflow_distribution"], observed, mask), out["params"]

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    spec = ExpHydro().param_spec
    last = params["physical_parameters"]["output"]
    for edge in (-30.0, 0.0, 30.0):
        saturated = {"kernel": jnp.zeros_like(last["kernel"]), "bias": jnp.full_like(last["bias"], edge)}
        p = dict(params, physical_parameters=dict(params["physical_parameters"], output=saturated))
        (value, physical), grads = value_and_grad(p)
        assert np.isfinite(float(value))
        for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
            assert np.isfinite(np.asarray(g)).all(), (edge, jax.tree_util.keystr(path))
        if edge == 0.0:  # inside the box the likelihood does reach the physical parameters
            assert float(jnp.abs(grads["physical_parameters"]["output"]["bias"]).sum()) > 0.0
        else:  # and the saturated bias did put every parameter on its bound
            for name, v in physical.items():
                if name in spec:
                    bound = spec[name].low if edge < 0 else spec[name].high
                    np.testing.assert_allclose(np.asarray(v), bound, rtol=1e-5, atol=1e-6)


def test_the_mixture_option_is_one_mechanism_for_the_lstm_and_the_hybrids():
    assert mixture_kind("lstm", {"head": "cmal"}) == "cmal"
    assert mixture_kind("hybrid", {"distribution": "gmm"}) == "gmm"
    assert mixture_kind("pseudo_hybrid", {"distribution": "cmal"}) == "cmal"
    assert mixture_kind("hybrid", {"head": "residual"}) is None  # the hybrid's head is not its mixture
    assert not probabilistic("hybrid", {}) and not probabilistic("lstm", {}) and not probabilistic("dpl_hbv", {})
    pseudo = build_model("pseudo_hybrid", flow_std=Q_SCALE, distribution="gmm")
    out = _apply(pseudo, _init(pseudo, _batch()), _batch())
    assert isinstance(out["streamflow_distribution"], GaussianMixture)


# -- autoregression -----------------------------------------------------------------------

FLOW = np.abs(np.random.default_rng(1).normal(1.5, 1.0, size=(3, 120))).astype(np.float32)


@pytest.fixture(scope="module", params=["bounded", "residual"])
def ar_hybrid(request):
    model = build_model("hybrid", flow_std=Q_SCALE, hidden_size=8, head=request.param, autoregressive=True,
                        holdout=0.5)
    batch = _batch(FLOW)
    params = _init(model, batch)
    # the hypernetwork's head weights follow the channels [Q*, 3 inputs, lagged flow, flag]:
    # w1 [lag 10, 6, 8], b1 [8], w2 [8, 1], b2 [1]
    assert params["head_parameters"]["output"]["kernel"].shape[-1] == 10 * 6 * 8 + 8 + 8 + 1
    return model, params


def _flow(model, params, flow, **kw):
    return np.asarray(_apply(model, params, _batch(flow), **kw)["streamflow"])


def test_the_ar_hybrid_reads_only_the_flow_observed_before_each_day(ar_hybrid):
    model, params = ar_hybrid
    base = _flow(model, params, FLOW)
    t = 60
    later = FLOW.copy()
    later[:, t:] *= 3.0  # days >= t: cannot change the forecast of day t
    np.testing.assert_array_equal(_flow(model, params, later)[:, :t + 1], base[:, :t + 1])
    yesterday = FLOW.copy()
    yesterday[:, t - 1] += 4.0  # day t - 1: changes day t
    moved = _flow(model, params, yesterday)
    np.testing.assert_array_equal(moved[:, :t], base[:, :t])
    assert (np.abs(moved[:, t] - base[:, t]) > 1e-5).all()
    # a gap is a flag, not a value: a masked day gives the same forecast whatever its target holds
    gap = FLOW.copy()
    gap[:, t - 1] = np.nan
    a = _apply(model, params, _batch(gap))["streamflow"]
    other = _batch(gap)
    other["targets"]["streamflow"] = other["targets"]["streamflow"].at[:, t - 1].set(99.0)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(_apply(model, params, other)["streamflow"]))
    assert (np.abs(np.asarray(a)[:, t] - base[:, t]) > 1e-5).all()


def test_a_holdout_of_one_equals_running_without_observations(ar_hybrid):
    model, params = ar_hybrid
    unseen = _flow(model, params, np.full_like(FLOW, np.nan))
    rngs = {"dropout": jax.random.key(3)}
    hidden = _flow(model.clone(holdout=1.0), params, FLOW, deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(hidden, unseen)
    assert np.abs(_flow(model, params, FLOW) - unseen).max() > 1e-4  # the observations do matter
    kept = _flow(model.clone(holdout=0.0), params, FLOW, deterministic=False, rngs=rngs)
    np.testing.assert_array_equal(kept, _flow(model, params, FLOW))
    half = _flow(model, params, FLOW, deterministic=False, rngs=rngs)
    assert not np.array_equal(half, unseen) and not np.array_equal(half, kept)


def test_the_ar_hybrid_with_a_mixture_trains_both_without_a_special_case():
    model = build_model("hybrid", flow_std=Q_SCALE, hidden_size=8, autoregressive=True, distribution="cmal")
    batch = _batch(FLOW)
    params = _init(model, batch)
    out = _apply(model, params, batch)
    np.testing.assert_allclose(np.asarray(median(out["streamflow_distribution"])), np.asarray(out["streamflow"]),
                               rtol=1e-5, atol=1e-5)
    later = FLOW.copy()
    later[:, 60:] *= 3.0
    changed = _apply(model, params, _batch(later))["streamflow_distribution"]
    for a, b in zip(out["streamflow_distribution"], changed):  # the whole mixture of day 60 is causal too
        np.testing.assert_array_equal(np.asarray(a)[:, :61], np.asarray(b)[:, :61])
    grads = jax.jit(jax.grad(lambda p: nll(_apply(model, p, batch, deterministic=False,
                                               rngs={"dropout": jax.random.key(0)})["streamflow_distribution"],
                                   jnp.asarray(FLOW))))(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


# -- config rules -------------------------------------------------------------------------


def _config(options):
    return {"name": "t", "models": {"hybrid": options}}


def test_config_rules_name_the_key():
    load_config(_config({"distribution": "cmal", "training": {"loss": "nll"}}))
    load_config(_config({"distribution": "gmm", "autoregressive": True, "training": {"loss": "nll"}}))
    load_config(_config({"autoregressive": True, "holdout": 0.25}))
    refused = [
        ({"distribution": "cmal"}, r"^models.hybrid.training.loss: 'nse_star' with distribution 'cmal'; .* nll"),
        ({"training": {"loss": "nll"}}, r"^models.hybrid.training.loss: 'nll' with distribution 'none'"),
        ({"distribution": "laplace"}, r"^models.hybrid.distribution: 'laplace' is not accepted; choose from none, "
                                      r"cmal, gmm"),
        ({"components": 0, "distribution": "cmal", "training": {"loss": "nll"}}, r"^models.hybrid.components: must "
                                                                                 r"be >= 1"),
        ({"holdout": 1.5}, r"^models.hybrid.holdout: must be <= 1.0"),
        ({"autoregressive": "yes"}, r"^models.hybrid.autoregressive: expected true/false"),
    ]
    for options, message in refused:
        with pytest.raises(ConfigError, match=message) as err:
            load_config(_config(options))
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^models.pseudo_hybrid.autoregressive: unknown option"):
        load_config({"name": "t", "models": {"pseudo_hybrid": {"autoregressive": True}}})
    with pytest.raises(ConfigError, match=r"^models.dpl_exphydro.training.loss: 'nll' needs a probabilistic output"):
        load_config({"name": "t", "models": {"dpl_exphydro": {"training": {"loss": "nll"}}}})


# -- what a run writes ----------------------------------------------------------------------


def test_predictions_netcdf_holds_the_mixture_and_the_parameters_of_a_probabilistic_hybrid():
    import pandas as pd

    from difhydro.experiment.outputs import predictions_dataset

    model = build_model("hybrid", flow_std=Q_SCALE, hidden_size=8, distribution="cmal")
    batch = _batch()
    out = _apply(model, _init(model, batch), batch)
    dist = out["streamflow_distribution"]
    key = ("temporal", "hybrid")
    ds = predictions_dataset(pd.date_range("2000-01-01", periods=120), ["a", "b", "c"],
                             {key: np.asarray(out["streamflow"])}, None,
                             params={key: {k: np.asarray(v) for k, v in out["params"].items()}},
                             units={"smax": "mm"},
                             mixtures={key: {"kind": "cmal", **{k: np.asarray(v) for k, v in dist._asdict().items()}}})
    np.testing.assert_array_equal(ds["mixture_hybrid__loc"].values[0], np.asarray(dist.loc))
    assert ds["mixture_hybrid__loc"].attrs["units"] == "mm d-1"
    np.testing.assert_array_equal(ds["param_hybrid__smax"].values[0], np.asarray(out["params"]["smax"]))
    assert ds["param_hybrid__smax"].attrs["units"] == "mm"
