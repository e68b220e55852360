"""Parameter learning (ParaFormer, Li & Lu 2023): RBL, networks, masking, leakage, routes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.contrib import paraformer as pf
from difhydro.contrib.paraformer import range_boundary_loss
from difhydro.hybrid import ParamHead, run_physics
from difhydro.physics import HBV, ExpHydro, VicBucket

from helpers import load_example_script

KEY = jax.random.PRNGKey(0)
SMALL = {
    "ffn_a": (("hidden_size", 8), ("num_layers", 1)),
    "lstm_z": (("hidden_size", 8),),
    "paraformer_a": (("d_model", 8), ("num_heads", 2), ("num_layers", 1), ("mlp_dim", 8)),
    "paraformer_z": (("d_model", 8), ("num_heads", 2), ("num_layers", 1), ("mlp_dim", 8)),
}


# ---------------------------------------------------------------------------------------
# Range-boundary loss (docs/physics.md §5.4)
# ---------------------------------------------------------------------------------------


PAPER_LOW = np.array([b[0] for b in pf.PAPER_BOUNDS.values()])
PAPER_HIGH = np.array([b[1] for b in pf.PAPER_BOUNDS.values()])
EXAMPLE = np.array([8.0, 5.0, -0.2, 1.3, 0.5])  # (ds, dsmax, expt1, infiltr, ws)


def test_rbl_worked_example(x64):
    assert list(pf.PAPER_BOUNDS) == ["ds", "dsmax", "expt", "b_infilt", "ws"]
    theta = jnp.asarray(EXAMPLE)
    upper = range_boundary_loss(theta, np.full(5, -np.inf), PAPER_HIGH)  # upper bounds only
    lower = range_boundary_loss(theta, PAPER_LOW, np.full(5, np.inf))
    total = range_boundary_loss(theta, PAPER_LOW, PAPER_HIGH)
    np.testing.assert_allclose(float(upper), 1.74129, rtol=1e-5)
    np.testing.assert_allclose(float(lower), 0.990099, rtol=1e-5)
    np.testing.assert_allclose(float(total), 2.73139, rtol=1e-5)


def test_rbl_zero_inside_mean_over_sites_and_gradient_direction():
    inside = jnp.asarray([[1.0, 2.0, 1.0, 0.5, 0.5]])
    assert float(range_boundary_loss(inside, PAPER_LOW, PAPER_HIGH)) == 0.0
    sites = jnp.stack([jnp.asarray(EXAMPLE, jnp.float32), inside[0]])
    np.testing.assert_allclose(float(range_boundary_loss(sites, PAPER_LOW, PAPER_HIGH)), 2.73139 / 2, rtol=1e-5)
    g = np.asarray(jax.grad(lambda t: range_boundary_loss(t, PAPER_LOW, PAPER_HIGH))(jnp.asarray(EXAMPLE, jnp.float32)))
    # violating upper values are pushed down, the lower violation up, inside values untouched
    np.testing.assert_allclose(g, [5 / 2.01, 0.0, -5 / 1.01, 5 / 2.01, 0.0], rtol=1e-5)


def test_squashed_outputs_have_zero_rbl():
    model = VicBucket()
    low, high = ParamHead.for_model(model).bounds()
    raw = jax.random.normal(KEY, (64, 5)) * 10.0
    theta = low + (high - low) * jax.nn.sigmoid(raw)
    assert float(range_boundary_loss(theta, low, high)) == 0.0


# ---------------------------------------------------------------------------------------
# Networks: shapes, padding, attention masks
# ---------------------------------------------------------------------------------------


B, H, F, S = 3, 20, 4, 6


def _inputs():
    k1, k2 = jax.random.split(KEY)
    return jax.random.normal(k1, (B, S)), jax.random.normal(k2, (B, H, F))


@pytest.mark.parametrize("kind", pf.NETWORKS)
def test_network_shapes(kind):
    attributes, history = _inputs()
    net = pf.ParameterNetwork(kind, 7, SMALL[kind])
    variables = net.init(KEY, attributes, history)
    out = net.apply(variables, attributes, history)
    assert out.shape == (B, 7) and np.all(np.isfinite(np.asarray(out)))


def test_paper_sizes_are_defaults():
    attributes, history = _inputs()
    shapes = jax.eval_shape(lambda: pf.ParameterNetwork("paraformer_z", 5).init(KEY, attributes, history))
    p = shapes["params"]["paraformer"]
    assert p["embed"]["kernel"].shape == (F, 256)
    assert p["encoder"]["layer_1"]["attention"]["query"]["kernel"].shape == (256, 8, 32)  # 8 heads
    assert "layer_2" not in p["encoder"]  # N = 2
    shapes = jax.eval_shape(lambda: pf.ParameterNetwork("paraformer_a", 5).init(KEY, attributes))
    p = shapes["params"]["paraformer"]
    assert p["attribute_scale"].shape == (S, 128)
    assert p["encoder"]["layer_0"]["attention"]["query"]["kernel"].shape == (128, 4, 32)


def test_paraformer_z_ignores_padded_steps_and_uses_attribute_queries():
    attributes, history = _inputs()
    lengths = np.array([H, 12, 5])
    mask = jnp.asarray(np.arange(H)[None] < lengths[:, None])
    net = pf.ParameterNetwork("paraformer_z", 5, SMALL["paraformer_z"])
    variables = net.init(KEY, attributes, history, mask)
    apply = jax.jit(net.apply)
    base = np.asarray(apply(variables, attributes, history, mask))
    noise = jax.random.normal(jax.random.PRNGKey(9), history.shape) * 100.0
    padded = jnp.where(mask[..., None], history, noise)
    np.testing.assert_allclose(np.asarray(apply(variables, attributes, padded, mask)), base, rtol=1e-5, atol=1e-6)
    nan_padded = jnp.where(mask[..., None], history, jnp.nan)
    np.testing.assert_allclose(np.asarray(apply(variables, attributes, nan_padded, mask)), base, rtol=1e-5, atol=1e-6)
    # a valid step does matter, and the attributes (queries) matter
    moved = np.asarray(apply(variables, attributes, history.at[1, 3].add(5.0), mask))
    assert np.max(np.abs(moved[1] - base[1])) > 1e-4
    np.testing.assert_allclose(moved[[0, 2]], base[[0, 2]], rtol=1e-5, atol=1e-6)
    other = np.asarray(apply(variables, attributes.at[2].add(1.0), history, mask))
    assert np.max(np.abs(other[2] - base[2])) > 1e-4


def test_unknown_network_and_missing_history_raise():
    attributes, history = _inputs()
    with pytest.raises(ValueError, match="network kind"):
        pf.ParameterNetwork("gru_z", 5).init(KEY, attributes, history)
    with pytest.raises(ValueError, match="history"):
        pf.ParameterNetwork("lstm_z", 5, SMALL["lstm_z"]).init(KEY, attributes)


# ---------------------------------------------------------------------------------------
# ParameterLearner: routes, leakage, generality
# ---------------------------------------------------------------------------------------


T, W = 60, 20


def _batch(model, n=4, seed=0, warmup=W):
    rng = np.random.default_rng(seed)
    forcing = {
        "precipitation": rng.exponential(3.0, (n, T)).astype(np.float32),
        "pet": rng.uniform(1.0, 4.0, (n, T)).astype(np.float32),
        "temperature": rng.normal(8.0, 6.0, (n, T)).astype(np.float32),
        "day_length": np.full((n, T), 12.0, np.float32),
    }
    forcing = {k: jnp.asarray(v) for k, v in forcing.items() if k in model.forcing_names}
    mask = np.zeros((n, T), bool)
    mask[:, warmup:] = True
    return {"forcing": forcing, "inputs": jnp.asarray(rng.normal(size=(n, T, 3)), jnp.float32),
            "attributes": jnp.asarray(rng.normal(size=(n, S)), jnp.float32),
            "target": jnp.asarray(rng.exponential(1.0, (n, T)), jnp.float32), "mask": jnp.asarray(mask)}


def test_history_network_reads_only_unscored_days():
    model = VicBucket()
    learner = pf.ParameterLearner(model, "paraformer_z", SMALL["paraformer_z"], history_days=W)
    batch = _batch(model)
    variables = learner.init(KEY, batch)
    base = learner.apply(variables, batch)
    changed = dict(batch, inputs=batch["inputs"].at[:, W:].add(50.0))  # scored days' observations
    out = learner.apply(variables, changed)
    np.testing.assert_array_equal(np.asarray(out["streamflow"]), np.asarray(base["streamflow"]))
    bad = dict(batch, mask=batch["mask"].at[:, W - 1].set(True))
    with pytest.raises(ValueError, match="history"):
        learner.init(KEY, bad)


def test_direct_route_matches_simulate_and_squash_modes():
    model = VicBucket()
    batch = _batch(model)
    learner = pf.ParameterLearner(model, "ffn_a", SMALL["ffn_a"], squash=False)
    variables = learner.init(KEY, batch)
    out = learner.apply(variables, batch)
    low, high = ParamHead.for_model(model).bounds()
    used = np.stack([np.asarray(out["params"][k]) for k in model.param_spec], -1)
    np.testing.assert_allclose(used, np.clip(np.asarray(out["unsquashed_params"]), low, high))
    expected = run_physics(model, out["params"], batch["forcing"])
    np.testing.assert_allclose(np.asarray(out["streamflow"]), expected["streamflow"], rtol=1e-5, atol=1e-6)


def test_direct_route_gradient_matches_finite_difference():
    """Gradients reach the network weights through the VicBucket physics: the directional
    derivative along a random direction of all weights matches a central difference."""
    model = VicBucket()
    batch = _batch(model, seed=1)
    learner = pf.ParameterLearner(model, "ffn_a", SMALL["ffn_a"])
    loss_fn = pf.paraformer_loss(model)
    with jax.enable_x64(True):
        b64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, batch)
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), learner.init(KEY, b64)["params"])
        f = jax.jit(lambda p: loss_fn(learner.apply({"params": p}, b64), b64, None))
        grads = jax.jit(jax.grad(f))(params)
        direction = jax.tree.map(lambda x: jax.random.normal(KEY, x.shape, x.dtype), params)
        dot = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
        h = 1e-5
        shift = lambda s: jax.tree.map(lambda p, d: p + s * h * d, params, direction)  # noqa: E731
        fd = (float(f(shift(1.0))) - float(f(shift(-1.0)))) / (2 * h)
    assert abs(dot) > 1e-6
    # min/max/clip corners of the water balance (piecewise linear) make a central
    # difference that straddles a corner inexact, hence a few per cent
    np.testing.assert_allclose(dot, fd, rtol=5e-2)


@pytest.mark.parametrize("model", [ExpHydro(), HBV()], ids=lambda m: type(m).__name__)
def test_direct_route_is_generic_over_process_models(model):
    """The same learner trains through other process models: the loss falls under Adam."""
    import optax

    batch = _batch(model, seed=2)
    learner = pf.ParameterLearner(model, "ffn_a", SMALL["ffn_a"])
    loss_fn = pf.paraformer_loss(model)
    params = learner.init(KEY, batch)["params"]
    tx = optax.adam(1e-2)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(lambda p: loss_fn(learner.apply({"params": p}, batch), batch, None))(params)
        updates, state = tx.update(grads, state)
        return optax.apply_updates(params, updates), state, value

    values = []
    for _ in range(10):
        params, state, value = step(params, state)
        values.append(float(value))
    assert np.all(np.isfinite(values)) and values[-1] < values[0] - 1e-3


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_surrogate_route_freezes_surrogate_and_passes_gradients():
    from difhydro.data.batching import BasinData

    model = VicBucket()
    batch = _batch(model, n=6)
    data = BasinData(forcing=batch["forcing"], inputs=batch["inputs"], attributes=batch["attributes"],
                     targets={"streamflow": batch["target"]}, observed={"streamflow": jnp.ones((6, T), bool)}, static={},
                     valid_windows=jnp.arange(6 * (T - 40 + 1), dtype=jnp.int32), window=40, warmup=10,
                     basins=tuple("abcdef"), first_day="2000-01-01", input_names=("a", "b", "c"),
                     attribute_names=tuple("123456"))
    surrogate, info = pf.train_surrogate(model, data, steps=20, batch_size=8, hidden_size=8, learning_rate=2e-2, progress=False,
                                         validation_samples=8)
    assert info["history"][-5:].mean() < info["history"][:5].mean()  # per-batch losses are noisy
    assert info["model_runs"] == 21 * 8 and info["validation_nse"].shape == (8,)
    learner = pf.ParameterLearner(model, "ffn_a", SMALL["ffn_a"], surrogate=surrogate)
    variables = learner.init(KEY, batch)
    assert set(variables["params"]) == {"network"}  # the surrogate's weights are not trainable
    loss_fn = pf.paraformer_loss(model)
    grads = jax.grad(lambda p: loss_fn(learner.apply({"params": p}, batch), batch, None))(variables["params"])
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0
    out = learner.apply(variables, batch)
    assert out["streamflow"].shape == (6, T) and np.all(np.asarray(out["streamflow"]) >= 0)


# ---------------------------------------------------------------------------------------
# Helpers of the comparison
# ---------------------------------------------------------------------------------------


def test_neighbour_split_pairs_each_held_out_basin_with_a_near_gauged_one():
    rng = np.random.default_rng(0)
    coords = rng.uniform(size=(20, 2))
    gauged, held, donor = pf.neighbour_split(coords, 6)
    assert len(held) == 6 and len(gauged) == 14 and not set(gauged) & set(held)
    for h, d in zip(held, donor):
        dist = np.linalg.norm(coords[gauged] - coords[h], axis=1)
        assert d == gauged[np.argmin(dist)]
    with pytest.raises(ValueError, match="n_holdout"):
        pf.neighbour_split(coords, 20)


def test_parameter_r2_and_roughness():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    assert pf.parameter_r2(t, t) == 1.0
    assert pf.parameter_r2(np.full(4, 1.5), t) == 0.0
    coords = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert pf.roughness(t, coords, 3.0) == pytest.approx(1 / 3)
    assert pf.roughness(np.zeros(4), coords, 3.0) == 0.0


# ---------------------------------------------------------------------------------------
# The example, end to end (quick setting)
# ---------------------------------------------------------------------------------------


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_example_quick_learns(tmp_path, data_dir):
    example = load_example_script("paraformer")
    caravan = data_dir / "camels_caravan"
    if not caravan.exists():
        pytest.skip("Caravan subset not available")
    results = example.main(["--quick", "--out", str(tmp_path), "--data", str(caravan), "--no-progress"])
    twin = results["twin"]["methods"]
    direct = twin["ParaFormer_A (direct)"]
    assert direct["losses"][-1] < direct["losses"][0]  # loss falls
    held = np.nanmedian(direct["held_out"]["scores"]["nse"])
    baseline = np.nanmedian(twin["mean flow (history)"]["held_out"]["scores"]["nse"])
    assert held > baseline + 0.3
    assert (tmp_path / "results.md").read_text().count("ParaFormer_A") >= 2
    assert (tmp_path / "parameters_twin.png").stat().st_size > 0
