"""Hybrid models: gradients through the physics, composition, bad configuration."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from difhydro.data import fulda_twin
from difhydro.hybrid import PRNN, DifferentiableParameterLearning, HybridPRNN, RegionalLSTM, build_model
from difhydro.physics import HBV, ExpHydro, simulate, warm_up

from helpers import random_forcing


def _batch(n_basins=3, n_days=200, seed=0, extra=()):
    forcing = {k: jnp.asarray(v).T for k, v in random_forcing(n_days, n_basins, seed=seed).items()}
    for k in extra:
        forcing[k] = jnp.full((n_basins, n_days), 1.5)
    rng = np.random.default_rng(seed)
    return {
        "forcing": forcing,
        "inputs": jnp.asarray(rng.normal(size=(n_basins, n_days, 3)), jnp.float32),
        "attributes": jnp.asarray(rng.normal(size=(n_basins, 4)), jnp.float32),
    }


def test_prnn_equals_simulate_and_returns_states():
    batch = _batch()
    layer = PRNN(ExpHydro())
    raw = {k: jnp.linspace(-1, 1, 3) for k in ExpHydro.param_spec}
    out = layer.apply({}, batch["forcing"], raw)
    phys = {k: ExpHydro.param_spec[k].to_physical(v) for k, v in raw.items()}
    ref = simulate(ExpHydro(), phys, {k: v.T for k, v in batch["forcing"].items()})[1]
    np.testing.assert_allclose(out["streamflow"], ref["streamflow"].T, rtol=1e-6)
    assert out["snow_storage"].shape == (3, 200) and out["soil_storage"].shape == (3, 200)
    np.testing.assert_allclose(out["params"]["smax"], phys["smax"])


def test_gradients_reach_the_parameterization_network_through_the_physics():
    batch = _batch(n_basins=2, n_days=60)
    obs = jnp.asarray(np.random.default_rng(1).gamma(1.0, 1.0, (2, 60)), jnp.float32)
    model = DifferentiableParameterLearning(ExpHydro(), hidden_sizes=(4,))
    variables = model.init(jax.random.key(0), batch)
    state0 = {"snow_storage": jnp.full(2, 5.0), "soil_storage": jnp.full(2, 300.0)}

    def loss(v):
        # start from a filled bucket so every parameter matters within 60 days
        out = PRNN(ExpHydro()).apply({}, batch["forcing"], _raw_params(model, v, batch), state0)
        return jnp.mean((out["streamflow"] - obs) ** 2)

    grads = jax.grad(loss)(variables)
    leaves = jax.tree.leaves(grads["params"]["mlp"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.abs(g).max()) > 0 for g in leaves)  # every layer receives gradient
    # central finite differences on the first-layer kernel (float32, so a wide step)
    kernel = variables["params"]["mlp"]["hidden_0"]["kernel"]
    g = grads["params"]["mlp"]["hidden_0"]["kernel"]
    for idx in [(0, 0), (2, 1), (3, 3)]:
        h = 1e-2
        plus = jax.tree.map(lambda x: x, variables)
        plus["params"]["mlp"]["hidden_0"]["kernel"] = kernel.at[idx].add(h)
        minus = jax.tree.map(lambda x: x, variables)
        minus["params"]["mlp"]["hidden_0"]["kernel"] = kernel.at[idx].add(-h)
        fd = (loss(plus) - loss(minus)) / (2 * h)
        assert float(g[idx]) == pytest.approx(float(fd), rel=3e-2, abs=1e-4)


def _raw_params(model, variables, batch):
    """The MLP's raw outputs split per parameter (what the dPL model feeds its PRNN)."""
    from difhydro.hybrid import ParamHead
    from difhydro.nn import MLP

    mlp = MLP(tuple(model.hidden_sizes), len(ExpHydro.param_spec))
    flat = mlp.apply({"params": variables["params"]["mlp"]}, batch["attributes"])
    return ParamHead.for_model(ExpHydro()).split(flat)


def test_dpl_model_matches_its_pieces():
    batch = _batch(n_basins=2, n_days=60)
    model = DifferentiableParameterLearning(ExpHydro(), hidden_sizes=(4,))
    variables = model.init(jax.random.key(0), batch)
    out = model.apply(variables, batch)
    ref = PRNN(ExpHydro()).apply({}, batch["forcing"], _raw_params(model, variables, batch))
    np.testing.assert_allclose(out["streamflow"], ref["streamflow"], rtol=1e-6)


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_local_prnn_recovers_twin_parameters_within_a_few_percent():
    # one noise-free twin basin; a local PRNN (one learned parameter set) fitted with
    # L-BFGS on 8 years, the first two spinning the stores up
    ds = fulda_twin(ExpHydro(), n_basins=1, noise=0.0, seed=3)
    forcing = {k: jnp.asarray(ds[k].values) for k in ExpHydro().forcing_names}
    obs = jnp.asarray(ds["streamflow"].values)
    layer = PRNN(ExpHydro())
    params = layer.init(jax.random.key(0), forcing)

    def loss(p):
        return jnp.mean((layer.apply(p, forcing)["streamflow"][:, 730:] - obs[:, 730:]) ** 2)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    @jax.jit
    def step(p, s):
        v, g = value_and_grad(p, state=s)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=loss)
        return optax.apply_updates(p, u), s

    state = opt.init(params)
    for _ in range(100):  # converged by 100 with and without checkpointing (70 was the edge)
        params, state = step(params, state)
    got = {k: float(ExpHydro.param_spec[k].to_physical(v)) for k, v in params["params"].items()}
    for k in ExpHydro.param_spec:
        truth = float(ds[f"param_{k}"][0])
        assert got[k] == pytest.approx(truth, rel=0.03), (k, got[k], truth)


def test_hybrid_modes_shapes_and_residual_start():
    batch = _batch(extra=())
    for mode in ("local", "pseudo_regional", "regional"):
        model = HybridPRNN(mode=mode)
        variables = model.init(jax.random.key(1), batch)
        out = model.apply(variables, batch)
        assert out["streamflow"].shape == (3, 200) and out["physics_streamflow"].shape == (3, 200)
        if mode != "regional":
            # the learned head starts at zero correction: Q = Q*
            np.testing.assert_allclose(out["streamflow"], out["physics_streamflow"], atol=1e-6)
    # regional: per-basin head weights from the attributes, so basins differ in correction
    out = HybridPRNN(mode="regional").apply(variables, batch)
    corr = np.asarray(out["streamflow"] - out["physics_streamflow"])
    assert np.abs(corr).max() > 0


def test_hybrid_warmup_days_spin_the_prnn_up_without_gradients():
    """HybridPRNN(warmup_days=w): the first w days spin the PRNN's states up without
    gradients, as warm_up + simulate by hand (values and parameter gradients)."""
    w = 30
    batch = _batch(n_basins=2, n_days=80)
    forcing = {k: v.T for k, v in batch["forcing"].items()}  # time-first for the physics
    state0 = {"snow_storage": jnp.full(2, 5.0), "soil_storage": jnp.full(2, 600.0)}  # a full bucket drains
    spec = ExpHydro.param_spec

    def by_hand(raw):
        phys = {k: jnp.broadcast_to(spec[k].to_physical(raw[k]), (2,)) for k in spec}
        state_w = warm_up(ExpHydro(), phys, forcing, w, state0)
        return simulate(ExpHydro(), phys, {k: v[w:] for k, v in forcing.items()}, state_w)[1]["streamflow"].T

    def flow(model, variables, raw):
        return model.apply({"params": dict(variables["params"], prnn=raw)}, batch, initial_state=state0)

    model, plain = HybridPRNN(mode="pseudo_regional", warmup_days=w), HybridPRNN(mode="pseudo_regional")
    variables = jax.jit(model.init)(jax.random.key(5), batch)
    raw = variables["params"]["prnn"]

    @jax.jit
    def everything(raw):
        after = lambda m: lambda r: jnp.mean(flow(m, variables, r)["streamflow"][:, w:])  # noqa: E731
        return (flow(model, variables, raw), by_hand(raw), jax.grad(after(model))(raw),
                jax.grad(lambda r: jnp.mean(by_hand(r)))(raw), jax.grad(after(plain))(raw))

    out, expected_flow, got, expected, through = everything(raw)
    np.testing.assert_allclose(out["physics_streamflow"][:, w:], expected_flow, rtol=1e-6)
    # the untrained head (w2 = 0) passes Q* through, so Q after the spin-up is the by-hand flow
    np.testing.assert_allclose(out["streamflow"][:, w:], expected_flow, rtol=1e-6)
    for k in spec:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-9)
    # gradients through the spin-up differ: warmup_days=0 lets them flow
    assert max(abs(float(through[k] - expected[k])) / (abs(float(expected[k])) + 1e-9) for k in spec) > 1e-2


def test_head_is_causal_over_the_lag_window():
    batch = _batch(n_basins=1, n_days=60)
    model = HybridPRNN(mode="pseudo_regional", head="plain")
    variables = model.init(jax.random.key(2), batch)
    variables["params"]["head"]["w2"] = jnp.ones_like(variables["params"]["head"]["w2"])  # starts at 0
    base = model.apply(variables, batch)["streamflow"]
    changed = dict(batch, inputs=batch["inputs"].at[:, 40].add(5.0))
    out = model.apply(variables, changed)["streamflow"]
    diff = np.abs(np.asarray(out - base))[0]
    assert diff[:40].max() == 0 and diff[40:50].min() > 0 and diff[50:].max() == 0


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_dpl_lstm_with_dynamic_hbv_parameters_and_routing():
    batch = _batch(n_days=150, extra=("pet",))
    model = DifferentiableParameterLearning(
        HBV(n_components=4, use_betaet=True), network="lstm", hidden_sizes=(8,),
        dynamic_params=("beta", "betaet"), routing="gamma", warmup_days=50, warmup_gradient=False,
    )
    variables = model.init(jax.random.key(3), batch)
    out = model.apply(variables, batch)
    assert out["params"]["beta"].shape == (3, 150, 4) and out["params"]["fc"].shape == (3, 4)
    assert out["params"]["uh_shape"].shape == (3,)
    assert out["streamflow"].shape == (3, 150) and "runoff" in out
    g = jax.grad(lambda v: jnp.mean(model.apply(v, batch)["streamflow"][:, 50:]))(variables)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
    # warm-up without gradients: changing the forcing of the warm-up days must not reach
    # the loss through the gradient of the input
    def loss_of_forcing(p):
        b = dict(batch, forcing=dict(batch["forcing"], precipitation=p))
        return jnp.mean(model.apply(variables, b)["streamflow"][:, 50:])

    gp = jax.grad(loss_of_forcing)(batch["forcing"]["precipitation"])
    assert float(jnp.abs(gp[:, :50]).max()) == 0.0 and float(jnp.abs(gp[:, 50:]).max()) > 0



def test_dpl_lstm_input_layer_is_dense_relu_before_the_lstm():
    """``lstm_input_layer=True`` (dmg's LstmModel) = LSTM applied to ReLU(Dense(x))."""
    batch = _batch(n_days=60, extra=("pet",))
    model = DifferentiableParameterLearning(HBV(n_components=2), network="lstm", hidden_sizes=(6,),
                                            lstm_input_layer=True)
    variables = model.init(jax.random.key(4), batch)
    dense = variables["params"]["input_layer"]
    n_features = batch["inputs"].shape[-1] + batch["attributes"].shape[-1]
    assert dense["kernel"].shape == (n_features, 6)
    x = jnp.concatenate([batch["inputs"], jnp.broadcast_to(
        batch["attributes"][:, None], batch["inputs"].shape[:2] + batch["attributes"].shape[-1:])], -1)
    hidden = np.maximum(np.asarray(x) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"]), 0.0)
    plain = DifferentiableParameterLearning(HBV(n_components=2), network="lstm", hidden_sizes=(6,))
    reference = {"params": {k: v for k, v in variables["params"].items() if k != "input_layer"}}
    expected = plain.apply(reference, dict(batch, inputs=jnp.asarray(hidden), attributes=batch["attributes"][:, :0]))
    got = model.apply(variables, batch)
    np.testing.assert_allclose(np.asarray(got["streamflow"]), np.asarray(expected["streamflow"]), rtol=1e-5, atol=1e-6)

def test_bad_configuration_raises_clear_errors():
    batch = _batch()
    with pytest.raises(ValueError, match="unknown model"):
        build_model("transformer_xl")
    with pytest.raises(ValueError, match="needs forcing"):
        DifferentiableParameterLearning(HBV()).init(jax.random.key(0), batch)  # no 'pet'
    with pytest.raises(ValueError, match="attributes"):
        HybridPRNN(mode="regional").init(jax.random.key(0), {k: v for k, v in batch.items() if k != "attributes"})
    with pytest.raises(ValueError, match="mode"):
        HybridPRNN(mode="global").init(jax.random.key(0), batch)
    with pytest.raises(ValueError, match="dynamic_params"):
        DifferentiableParameterLearning(ExpHydro(), network="lstm", dynamic_params=("beta",)).init(jax.random.key(0), batch)
    lstm = RegionalLSTM(hidden_size=4)
    out = lstm.apply(lstm.init(jax.random.key(0), batch), batch)
    assert out["streamflow"].shape == (3, 200)


def test_run_physics_check_reaches_the_warm_up_days():
    """``check=False`` skips the value checks on the spin-up days too (and ``check=True`` makes them)."""
    from difhydro.hybrid import run_physics

    model = ExpHydro()
    forcing = {k: np.asarray(v, np.float32)[None] for k, v in random_forcing(60, seed=3).items()}
    forcing["precipitation"][0, 5] = -1.0  # inside the 20 spin-up days
    params = {k: jnp.full((1,), s.default, jnp.float32) for k, s in model.param_spec.items()}
    with pytest.raises(ValueError, match="precipitation"):
        run_physics(model, params, forcing, warmup_days=20, check=True)
    out = run_physics(model, params, forcing, warmup_days=20, check=False)
    assert out["streamflow"].shape == (1, 60)


def test_lstm_clip_in_training_false_gives_the_loss_the_linear_output():
    """Same weights: in training (dropout 0, not deterministic) the unclipped output is
    offset + scale · head, negative where the clipped one is 0, and its gradient reaches
    the weights there; predictions are clipped either way."""
    batch = _batch(n_basins=2, n_days=40)
    clipped = RegionalLSTM(hidden_size=4, dropout_rate=0.0, output_offset=-0.5, output_scale=2.0)
    linear = RegionalLSTM(hidden_size=4, dropout_rate=0.0, output_offset=-0.5, output_scale=2.0,
                          clip_in_training=False)
    variables = clipped.init(jax.random.key(0), batch)
    rngs = {"dropout": jax.random.key(1)}
    train_clip = clipped.apply(variables, batch, deterministic=False, rngs=rngs)["streamflow"]
    train_lin = linear.apply(variables, batch, deterministic=False, rngs=rngs)["streamflow"]
    np.testing.assert_allclose(np.asarray(train_clip), np.maximum(np.asarray(train_lin), 0.0), rtol=1e-6, atol=1e-7)
    assert (np.asarray(train_lin) < 0).any()  # offset -0.5: some days below zero flow
    np.testing.assert_array_equal(np.asarray(linear.apply(variables, batch)["streamflow"]),
                                  np.asarray(clipped.apply(variables, batch)["streamflow"]))

    negative = np.asarray(train_lin) < 0
    g_lin = jax.grad(lambda v: jnp.sum(jnp.where(negative, linear.apply(v, batch, deterministic=False, rngs=rngs)["streamflow"], 0.0)))(variables)
    g_clip = jax.grad(lambda v: jnp.sum(jnp.where(negative, clipped.apply(v, batch, deterministic=False, rngs=rngs)["streamflow"], 0.0)))(variables)
    norm = lambda g: float(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(g)))  # noqa: E731
    assert norm(g_clip) == 0.0 and norm(g_lin) > 0.0
