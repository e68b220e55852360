"""The causal temporal transformer (nn.TemporalTransformer, the `transformer` registry entry):
causality to the bit, the attention span, chunked == full attention, a NumPy reference of
one encoder layer, and a few training steps on the twin that lower the loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.data import fit_normalization, fulda_twin, make_basin_data
from difhydro.hybrid import build_model
from difhydro.nn import TemporalTransformer, TransformerEncoderLayer
from difhydro.physics import ExpHydro, hamon_pet
from difhydro.training import TrainConfig, Trainer


def _x(batch=2, time=40, features=5, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(batch, time, features)), jnp.float32)


@pytest.mark.parametrize("span, chunk", [(None, None), (7, None), (7, 5)], ids=["full", "span", "chunked"])
def test_changing_later_days_leaves_earlier_outputs_bit_identical(span, chunk):
    model = TemporalTransformer(d_model=16, num_heads=4, num_layers=2, dropout_rate=0.0, max_span=span,
                                chunk_size=chunk)
    x = _x()
    variables = model.init(jax.random.key(0), x)
    apply = jax.jit(model.apply)
    y = apply(variables, x)
    assert y.shape == (2, 40, 1)
    for t in (0, 17, 38):
        x2 = x.at[:, t + 1:].set(x[:, t + 1:] * -3.0 + 7.0)
        y2 = apply(variables, x2)
        np.testing.assert_array_equal(np.asarray(y2[:, :t + 1]), np.asarray(y[:, :t + 1]))
        assert not np.allclose(y2[:, t + 1:], y[:, t + 1:])  # later days do see the change


def test_max_span_bounds_the_receptive_field():
    """One layer with span 6: day t reads days t-5 ... t, nothing before."""
    model = TemporalTransformer(d_model=16, num_heads=2, num_layers=1, dropout_rate=0.0, max_span=6)
    x = _x(time=30)
    variables = model.init(jax.random.key(1), x)
    apply = jax.jit(model.apply)
    y = apply(variables, x)
    t = 20
    outside = apply(variables, x.at[:, t - 6].add(5.0))
    np.testing.assert_array_equal(np.asarray(outside[:, t]), np.asarray(y[:, t]))
    inside = apply(variables, x.at[:, t - 5].add(5.0))
    assert not np.allclose(inside[:, t], y[:, t])


@pytest.mark.parametrize("time, span, chunk, relative", [(40, 7, 5, False), (37, 12, 8, False), (30, 30, 30, False),
                                                           (25, 4, 1, False), (40, 7, 5, True), (37, 12, 8, True)])
def test_chunked_attention_equals_the_full_banded_attention(time, span, chunk, relative):
    x = _x(time=time, seed=3)
    mask = jnp.ones((2, time), bool).at[1, -6:].set(False)  # a padded tail
    full = TransformerEncoderLayer(num_heads=4, mlp_dim=32, causal=True, max_span=span, relative_position=relative)
    chunked = TransformerEncoderLayer(num_heads=4, mlp_dim=32, causal=True, max_span=span, chunk_size=chunk,
                                      relative_position=relative)
    x16 = jnp.concatenate([x, x[..., :3] * 0.5], -1)[..., :8]
    variables = full.init(jax.random.key(2), x16, mask)
    valid = np.asarray(mask)  # padded steps carry no meaning (a padded day may see no valid day)
    np.testing.assert_allclose(np.asarray(jax.jit(chunked.apply)(variables, x16, mask))[valid],
                               np.asarray(jax.jit(full.apply)(variables, x16, mask))[valid], rtol=1e-5, atol=1e-5)


def _layer_norm(x, p, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _gelu(x):  # flax's default, the tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def numpy_encoder_layer(x, p, heads, span, alibi=False):
    """Pre-norm causal layer with a span, written out: x [T, d] -> [T, d] (float64); with
    ``alibi`` each score of a key d days back is lowered by 2^(-8 h / heads) d (Press et al. 2022)."""
    time, d = x.shape
    hd = d // heads
    y = _layer_norm(x, p["norm_attention"])
    a = p["attention"]
    q = np.einsum("td,dhk->thk", y, a["query"]["kernel"]) + a["query"]["bias"]
    k = np.einsum("td,dhk->thk", y, a["key"]["kernel"]) + a["key"]["bias"]
    v = np.einsum("td,dhk->thk", y, a["value"]["kernel"]) + a["value"]["bias"]
    out = np.zeros((time, heads, hd))
    for t in range(time):
        for h in range(heads):
            keys = [j for j in range(time) if j <= t and t - j < span]
            scores = np.array([q[t, h] @ k[j, h] / math.sqrt(hd) for j in keys])
            if alibi:
                scores = scores - 2.0 ** (-8.0 * (h + 1) / heads) * np.array([t - j for j in keys])
            w = np.exp(scores - scores.max())
            w /= w.sum()
            out[t, h] = sum(wj * v[j, h] for wj, j in zip(w, keys))
    x = x + np.einsum("thk,hkd->td", out, a["out"]["kernel"]) + a["out"]["bias"]
    ff = p["feed_forward"]
    z = _gelu(_layer_norm(x, p["norm_ff"]) @ ff["Dense_0"]["kernel"] + ff["Dense_0"]["bias"])
    return x + z @ ff["Dense_1"]["kernel"] + ff["Dense_1"]["bias"]


@pytest.mark.parametrize("relative", [False, True])
def test_one_encoder_layer_matches_numpy(relative):
    x = _x(batch=1, time=12, features=8, seed=4)
    layer = TransformerEncoderLayer(num_heads=2, mlp_dim=16, causal=True, max_span=5, relative_position=relative)
    variables = layer.init(jax.random.key(5), x)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    expected = numpy_encoder_layer(np.asarray(x[0], np.float64), params, heads=2, span=5, alibi=relative)
    np.testing.assert_allclose(np.asarray(layer.apply(variables, x)[0]), expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("position", ["relative", "sinusoidal"])
def test_relative_positions_read_a_long_sequence_as_the_training_windows(position):
    """With ALiBi and a span S, day t of a long sequence depends only on its last
    layers x (S - 1) + 1 days: the same output as from a sequence starting later (what a model
    trained on windows meets when it predicts a 10-year period). Absolute positions break it."""
    model = TemporalTransformer(d_model=16, num_heads=4, num_layers=2, dropout_rate=0.0, max_span=6, position=position)
    x = _x(batch=1, time=60, features=3, seed=7)
    variables = model.init(jax.random.key(0), x)
    whole = np.asarray(model.apply(variables, x))[0, 30:]
    later = np.asarray(model.apply(variables, x[:, 20:]))[0, 10:]  # day 30 is day 10 here; 10 >= 2 x 5
    if position == "relative":
        np.testing.assert_allclose(later, whole, rtol=1e-5, atol=1e-6)
    else:
        assert np.abs(later - whole).max() > 1e-3


def test_dropout_only_when_not_deterministic():
    model = TemporalTransformer(d_model=16, num_heads=2, num_layers=1, dropout_rate=0.3)
    x = _x()
    variables = model.init(jax.random.key(0), x)
    a = model.apply(variables, x)
    np.testing.assert_array_equal(a, model.apply(variables, x))
    b = model.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b)


def test_bad_settings_raise():
    x = _x()
    with pytest.raises(ValueError, match="max_span"):
        TemporalTransformer(d_model=16, max_span=0).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="chunk_size"):
        TransformerEncoderLayer(num_heads=2, causal=True, chunk_size=4).init(jax.random.key(0), x[..., :4])
    with pytest.raises(ValueError, match="max_span needs causal"):
        TransformerEncoderLayer(num_heads=2, max_span=4).init(jax.random.key(0), x[..., :4])


def test_registry_transformer_streamflow_and_attributes():
    model = build_model("transformer", flow_mean=1.5, flow_std=2.0, hidden_size=16, heads=2, layers=1, dropout=0.0)
    rng = np.random.default_rng(6)
    batch = {"inputs": jnp.asarray(rng.normal(size=(3, 30, 4)), jnp.float32),
             "attributes": jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)}
    variables = model.init(jax.random.key(0), batch)
    q = model.apply(variables, batch)["streamflow"]
    assert q.shape == (3, 30) and float(q.min()) >= 0.0
    # the attributes reach the output (Kratzert et al.'s concatenation)
    other = model.apply(variables, {**batch, "attributes": batch["attributes"] + 1.0})["streamflow"]
    assert not np.allclose(q, other)
    # the head is the LSTM's: relu(offset + scale * y)
    y = TemporalTransformer(d_model=16, num_heads=2, num_layers=1, dropout_rate=0.0, position="relative").apply(
        {"params": variables["params"]["transformer"]},
        jnp.concatenate([batch["inputs"], jnp.broadcast_to(batch["attributes"][:, None], (3, 30, 5))], -1))
    np.testing.assert_allclose(q, np.maximum(1.5 + 2.0 * np.asarray(y[..., 0]), 0.0), rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_transformer_trains_on_the_twin():
    ds = fulda_twin(ExpHydro(), n_basins=4, seed=1, noise=0.05)
    ds["pet"] = (("basin", "time"), np.asarray(hamon_pet(ds["temperature"].values, ds["day_length"].values), np.float32))
    period = ("1980-01-01", "1981-12-31")
    inputs, attrs = ["precipitation", "temperature", "day_length"], [f"attribute_{k}" for k in range(5)]
    stats = fit_normalization(ds, inputs, attrs, period)
    data = make_basin_data(ds, stats, period, window=90, warmup=30, forcing=("precipitation", "temperature", "pet"))
    q = data.observations()
    model = build_model("transformer", flow_mean=float(np.nanmean(q)), flow_std=float(np.nanstd(q)),
                        hidden_size=16, heads=2, layers=1, dropout=0.0, max_span=30)
    trainer = Trainer(model, data, TrainConfig(epochs=1, steps_per_epoch=1, batch_size=8, learning_rate=3e-3,
                                               progress=False, seed=0))
    state = trainer.init_state()
    losses = []
    for _ in range(40):
        state, loss = trainer.train_step(state)
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-8:]) < 0.6 * np.mean(losses[:8]), (losses[:8], losses[-8:])


def test_a_saved_transformer_keeps_the_position_it_was_trained_with(tmp_path):
    """New runs save every option (the registry's defaults included); a model.json of a run
    that saved only the given options was trained with sinusoidal positions."""
    from difhydro.experiment.config import load_config
    from difhydro.experiment.models import SavedModel
    from difhydro.experiment.run import _options

    cfg = load_config({"name": "t", "models": {"transformer": {"hidden_size": 16, "max_span": 30}}})
    options = _options(cfg, "transformer")
    assert options["position"] == "relative" and options["hidden_size"] == 16 and options["heads"] == 4
    info = {"name": "transformer", "flow_mean": 0.0, "flow_std": 1.0}
    assert SavedModel(tmp_path, {**info, "options": options}).build().position == "relative"
    assert SavedModel(tmp_path, {**info, "options": {"hidden_size": 16}}).build().position == "sinusoidal"
