"""Tests of difhydro.nn: shapes, causality, LSTM against numpy, masks, dtypes, gradients."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.contrib.paraformer import ParaFormerA, ParaFormerZ
from difhydro.nn import (
    CNNLSTM,
    LSTM,
    MLP,
    CausalConv1D,
    CausalConvHead,
    CrossAttentionBlock,
    PositionalEncoding,
    TransformerEncoder,
    TransformerEncoderLayer,
    key_padding_mask,
    sinusoidal_encoding,
)

BATCH, TIME, FEATURES = 3, 24, 4
KEY = jax.random.key(0)


def _normal(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _init(module: nn.Module, *args, seed: int = 0):
    """Random variables of the right tree and shapes, without compiling ``module.init``.

    Kernels ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2), LayerNorm scales ~ 1 + N(0, 0.1^2):
    generic non-zero values (compiling every initialiser would dominate the test time;
    the initialisers themselves are tested where they matter, e.g. the forget bias).
    """
    shapes = jax.eval_shape(module.init, KEY, *args)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        if "scale" in name and len(leaf.shape) == 1:
            value = 1.0 + 0.1 * rng.normal(size=leaf.shape)
        elif len(leaf.shape) == 1:
            value = 0.1 * rng.normal(size=leaf.shape)
        else:
            value = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, w_in, w_rec, b, h0, c0):
    """Reference LSTM in numpy, gate blocks (input, forget, cell, output).

    x [batch, time, features]; returns h [batch, time, H], (h_T, c_T).
    """
    x, w_in, w_rec, b = (np.asarray(a, np.float64) for a in (x, w_in, w_rec, b))
    h, c = np.asarray(h0, np.float64), np.asarray(c0, np.float64)
    hidden = w_rec.shape[0]
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ w_in + h @ w_rec + b
        i = _sigmoid(z[:, :hidden])
        f = _sigmoid(z[:, hidden : 2 * hidden])
        g = np.tanh(z[:, 2 * hidden : 3 * hidden])
        o = _sigmoid(z[:, 3 * hidden :])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1), (h, c)


# ---------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------

SEQ = _normal(1, (BATCH, TIME, FEATURES))
LAYERED = _normal(2, (BATCH, TIME, 5, 2))  # [batch, time, soil layers, features]

SHAPE_CASES = [
    (LSTM(8), SEQ, (BATCH, TIME, 8)),
    (LSTM(8, output_size=2), SEQ, (BATCH, TIME, 2)),
    (LSTM(8, output_size=2, return_sequences=False), SEQ, (BATCH, 2)),
    (CausalConv1D(6), SEQ, (BATCH, TIME, 6)),
    (CausalConvHead(), SEQ, (BATCH, TIME, 1)),
    (CNNLSTM(8, conv_features=(6, 5)), SEQ, (BATCH, TIME, 8)),
    (CNNLSTM(8, conv_axis="layer", output_size=5), LAYERED, (BATCH, TIME, 5)),
    (CNNLSTM(8, conv_axis="layer", return_sequences=False), LAYERED[..., 0], (BATCH, 8)),
    (MLP((16, 16), 3), SEQ, (BATCH, TIME, 3)),
    (MLP((), 3), SEQ[:, 0], (BATCH, 3)),
    (PositionalEncoding(), SEQ, (BATCH, TIME, FEATURES)),
    (TransformerEncoder(num_heads=2, mlp_dim=8), SEQ, (BATCH, TIME, FEATURES)),
    (ParaFormerZ(5, d_model=16, num_layers=1, num_heads=2, mlp_dim=16), SEQ, (BATCH, 5)),
    (ParaFormerA(5, d_model=16, num_layers=1, num_heads=2, mlp_dim=16), SEQ[:, 0],
     (BATCH, 5)),
]


@pytest.mark.parametrize("module,x,shape", SHAPE_CASES, ids=lambda c: type(c).__name__)
def test_output_shapes(module, x, shape):
    y = module.apply(_init(module, x), x)
    assert y.shape == shape
    assert y.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(y)))


# ---------------------------------------------------------------------------------------
# Causal convolution
# ---------------------------------------------------------------------------------------


def test_causal_conv_matches_numpy_lagged_sum():
    conv = CausalConv1D(2, kernel_size=4, dilation=2)
    variables = _init(conv, SEQ)
    kernel = np.asarray(variables["params"]["conv"]["kernel"])  # [K, C_in, C_out]
    bias = np.asarray(variables["params"]["conv"]["bias"]) + 0.3
    variables = {"params": {"conv": {"kernel": kernel, "bias": bias}}}
    y = np.asarray(conv.apply(variables, SEQ))
    x = np.asarray(SEQ, np.float64)
    expected = np.broadcast_to(bias, (BATCH, TIME, 2)).astype(np.float64).copy()
    # Tap k (flax kernel index) reads x at lag (K-1-k)*dilation.
    for k in range(4):
        lag = (3 - k) * 2
        shifted = np.zeros_like(x)
        shifted[:, lag:] = x[:, : TIME - lag]
        expected += shifted @ kernel[k]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module", [CausalConv1D(3), CausalConvHead(hidden_features=6)])
def test_causal_window_is_ten_days(module):
    variables = _init(module, SEQ)
    apply = jax.jit(module.apply)
    base = np.asarray(apply(variables, SEQ))
    t = 15
    # Any change after day t leaves day t (and every earlier day) unchanged.
    future = SEQ.at[:, t + 1 :].add(_normal(5, (BATCH, TIME - t - 1, FEATURES)))
    np.testing.assert_array_equal(np.asarray(apply(variables, future))[:, : t + 1],
                                  base[:, : t + 1])
    # A change on any day of the window t-9..t changes day t.
    for lag in range(10):
        bumped = np.asarray(apply(variables, SEQ.at[:, t - lag].add(1.0)))
        assert np.max(np.abs(bumped[:, t] - base[:, t])) > 1e-4, lag
    # A change 10 days back is outside the window.
    outside = np.asarray(apply(variables, SEQ.at[:, t - 10].add(1.0)))
    np.testing.assert_array_equal(outside[:, t], base[:, t])


def test_cnn_lstm_over_time_is_causal():
    model = CNNLSTM(6, conv_features=(4,), kernel_size=3)
    variables = _init(model, SEQ)
    base = model.apply(variables, SEQ)
    changed = model.apply(variables, SEQ.at[:, 10:].set(5.0))
    np.testing.assert_array_equal(np.asarray(changed)[:, :10], np.asarray(base)[:, :10])
    assert np.max(np.abs(np.asarray(changed - base)[:, 10:])) > 1e-3


def test_cnn_lstm_layer_conv_mixes_layers_not_days():
    model = CNNLSTM(6, conv_features=(4,), kernel_size=3, conv_axis="layer")
    variables = _init(model, LAYERED)
    base = np.asarray(model.apply(variables, LAYERED))
    # Changing the deepest layer from day 10 on changes nothing before day 10.
    changed = np.asarray(model.apply(variables, LAYERED.at[:, 10:, -1].add(1.0)))
    np.testing.assert_array_equal(changed[:, :10], base[:, :10])
    assert np.max(np.abs(changed[:, 10:] - base[:, 10:])) > 1e-4


# ---------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------


def test_lstm_matches_numpy_equations():
    hidden = 7
    model = LSTM(hidden)
    variables = _init(model, SEQ)
    params = {
        "input_kernel": 0.5 * _normal(10, (FEATURES, 4 * hidden)),
        "recurrent_kernel": 0.5 * _normal(11, (hidden, 4 * hidden)),
        "bias": 0.3 * _normal(12, (4 * hidden,)),
    }
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, variables["params"])
    h0, c0 = 0.5 * _normal(13, (BATCH, hidden)), _normal(14, (BATCH, hidden))
    y, (h_t, c_t) = model.apply(
        {"params": params}, SEQ, initial_state=(h0, c0), return_state=True
    )
    expected, (h_ref, c_ref) = numpy_lstm(SEQ, *params.values(), h0, c0)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h_t), h_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(c_t), c_ref, rtol=1e-5, atol=1e-5)


def test_lstm_head_on_last_step():
    hidden = 5
    model = LSTM(hidden, output_size=2, return_sequences=False)
    variables = _init(model, SEQ)
    p = variables["params"]
    y = np.asarray(model.apply(variables, SEQ))
    hs, _ = numpy_lstm(SEQ, p["input_kernel"], p["recurrent_kernel"], p["bias"],
                       np.zeros((BATCH, hidden)), np.zeros((BATCH, hidden)))
    expected = hs[:, -1] @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("forget_bias", [3.0, 1.5])
def test_forget_gate_bias_initialisation(forget_bias):
    hidden = 6
    variables = LSTM(hidden, initial_forget_bias=forget_bias).init(KEY, SEQ)
    bias = np.asarray(variables["params"]["bias"])
    np.testing.assert_array_equal(bias[hidden : 2 * hidden], forget_bias)
    np.testing.assert_array_equal(np.delete(bias, np.s_[hidden : 2 * hidden]), 0.0)


def test_lstm_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        x = jnp.asarray(np.asarray(SEQ[:, :10]), jnp.float64)
        model = LSTM(4, output_size=1, dtype=jnp.float64, param_dtype=jnp.float64)
        params = _init(model, x)["params"]

        def loss(p):
            return jnp.sum(model.apply({"params": p}, x) ** 2)

        loss = jax.jit(loss)
        grads = jax.jit(jax.grad(loss))(params)
        direction = jax.tree.map(lambda a: jnp.asarray(
            np.random.default_rng(0).normal(size=a.shape), jnp.float64), params)
        eps = 1e-6
        shifted = [jax.tree.map(lambda a, d, s=s: a + s * eps * d, params, direction)
                   for s in (1.0, -1.0)]
        fd = (loss(shifted[0]) - loss(shifted[1])) / (2 * eps)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads),
                                                      jax.tree.leaves(direction)))
        np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-6)


def _plain_lstm(x, kernel, recurrent, bias, h0, c0):
    """Textbook LSTM with ``lax.scan`` and autodiff (no custom reverse pass)."""
    def step(carry, x_t):
        h, c = carry
        i, f, g, o = jnp.split(x_t @ kernel + h @ recurrent + bias, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    (h, c), hs = jax.lax.scan(step, (h0, c0), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(hs, 0, 1), h, c


def test_lstm_reverse_pass_matches_autodiff_of_plain_scan():
    """Cotangents of inputs, all weights and the initial state (the hand-written reverse
    pass of ``lstm_scan``) equal autodiff of a plain scan, with the final state used too."""
    with jax.enable_x64(True):
        hidden = 5
        x = jnp.asarray(np.asarray(SEQ[:, :12]), jnp.float64)
        model = LSTM(hidden, dtype=jnp.float64, param_dtype=jnp.float64)
        params = _init(model, x)["params"]
        params = jax.tree.map(lambda a: a + 0.3 * jnp.asarray(
            np.random.default_rng(a.size).normal(size=a.shape)), params)
        h0 = 0.4 * jnp.asarray(_normal(20, (BATCH, hidden)), jnp.float64)
        c0 = jnp.asarray(_normal(21, (BATCH, hidden)), jnp.float64)
        weights = jnp.asarray(_normal(22, (BATCH, 12, hidden)), jnp.float64)

        def loss_difhydro(x, p, h0, c0):
            hs, (h, c) = model.apply({"params": p}, x, initial_state=(h0, c0), return_state=True)
            return jnp.sum(weights * hs**2) + jnp.sum(h * c)

        def loss_plain(x, p, h0, c0):
            hs, h, c = _plain_lstm(x, p["input_kernel"], p["recurrent_kernel"], p["bias"], h0, c0)
            return jnp.sum(weights * hs**2) + jnp.sum(h * c)

        got = jax.grad(loss_difhydro, argnums=(0, 1, 2, 3))(x, params, h0, c0)
        want = jax.grad(loss_plain, argnums=(0, 1, 2, 3))(x, params, h0, c0)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)
        assert float(jnp.max(jnp.abs(got[0]))) > 1e-3  # the input cotangent is not trivially zero


def test_lstm_bfloat16_reverse_pass_close_to_float32():
    variables = _init(LSTM(8, output_size=1), SEQ)

    def grads(dtype):
        model = LSTM(8, output_size=1, dtype=dtype)
        return jax.grad(lambda p: jnp.sum(model.apply({"params": p}, SEQ).astype(jnp.float32) ** 2))(
            variables["params"])

    for g16, g32 in zip(jax.tree.leaves(grads(jnp.bfloat16)), jax.tree.leaves(grads(jnp.float32))):
        assert g16.dtype == jnp.float32
        scale = float(jnp.max(jnp.abs(g32)))
        assert float(jnp.max(jnp.abs(g16 - g32))) < 0.05 * scale


# ---------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------


def test_lstm_dropout_only_when_not_deterministic():
    rate = 0.5
    model = LSTM(16, dropout_rate=rate)
    variables = _init(model, SEQ)
    apply = jax.jit(model.apply, static_argnames="deterministic")
    clean = np.asarray(jax.jit(LSTM(16).apply)(variables, SEQ))
    evaluated = np.asarray(apply(variables, SEQ, deterministic=True))
    np.testing.assert_array_equal(evaluated, clean)
    trained = np.asarray(apply(variables, SEQ, deterministic=False,
                               rngs={"dropout": jax.random.key(7)}))
    dropped = trained == 0.0
    assert 0.4 < dropped.mean() < 0.6
    np.testing.assert_allclose(trained[~dropped], clean[~dropped] / (1 - rate), rtol=1e-6)
    other = np.asarray(apply(variables, SEQ, deterministic=False,
                             rngs={"dropout": jax.random.key(8)}))
    assert not np.array_equal(other, trained)


@pytest.mark.parametrize(
    "module,x",
    [
        (MLP((32,), 2, dropout_rate=0.3), SEQ),
        (TransformerEncoder(num_layers=1, num_heads=2, mlp_dim=8, dropout_rate=0.3), SEQ),
        (CNNLSTM(8, dropout_rate=0.3), SEQ),
    ],
    ids=lambda c: type(c).__name__,
)
def test_dropout_switch(module, x):
    variables = _init(module, x)
    a = module.apply(variables, x, deterministic=True)
    b = module.apply(variables, x, deterministic=True)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = module.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert np.max(np.abs(np.asarray(c - a))) > 1e-3


# ---------------------------------------------------------------------------------------
# Attention and positional encoding
# ---------------------------------------------------------------------------------------


def _lengths_mask(lengths, time):
    return jnp.arange(time)[None, :] < jnp.asarray(lengths)[:, None]


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_padding_invariance(norm_first):
    mask = _lengths_mask([TIME, 17, 9], TIME)
    x = _normal(20, (BATCH, TIME, 8))
    encoder = TransformerEncoder(num_layers=2 if norm_first else 1, num_heads=2, mlp_dim=16,
                                 norm_first=norm_first)
    variables = _init(encoder, x, mask)
    apply = jax.jit(encoder.apply)
    base = np.asarray(apply(variables, x, mask))
    valid = np.asarray(mask)
    # Padded steps replaced by other numbers, or by NaN: valid outputs unchanged.
    for fill in (_normal(21, x.shape) * 10.0, jnp.full(x.shape, jnp.nan)):
        padded = jnp.where(mask[..., None], x, fill)
        out = np.asarray(apply(variables, padded, mask))
        np.testing.assert_allclose(out[valid], base[valid], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(out[~valid], 0.0)
    # A change on a valid step does change the other valid steps (the test can fail).
    # (a random vector: LayerNorm would cancel a constant shift of one step)
    moved = np.asarray(apply(variables, x.at[2, 0].add(_normal(23, (8,))), mask))
    assert np.max(np.abs(moved[2, 1:9] - base[2, 1:9])) > 1e-3
    # Without the mask the padded steps would matter.
    unmasked = np.asarray(apply(variables, jnp.where(mask[..., None], x, 5.0), None))
    assert np.max(np.abs(unmasked[2, :9] - base[2, :9])) > 1e-3


def test_encoder_layer_causal_mask():
    x = _normal(22, (BATCH, TIME, 8))
    layer = TransformerEncoderLayer(num_heads=2, mlp_dim=16, causal=True)
    variables = _init(layer, x)
    base = np.asarray(layer.apply(variables, x))
    changed = np.asarray(layer.apply(variables, x.at[:, 12:].add(1.0)))
    np.testing.assert_allclose(changed[:, :12], base[:, :12], rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(changed[:, 12:] - base[:, 12:])) > 1e-3


def test_causal_mask_with_a_span_is_a_band():
    """max_span = 3: day t sees days t-2, t-1, t; padded keys stay hidden."""
    mask = np.asarray(key_padding_mask(jnp.array([[True] * 4 + [False]]), causal_length=5, max_span=3))[0, 0]
    expected = np.array([[1, 0, 0, 0, 0],
                         [1, 1, 0, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 0],
                         [0, 0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(mask, expected)
    full = np.asarray(key_padding_mask(None, causal_length=4))[0, 0]
    np.testing.assert_array_equal(full, np.tril(np.ones((4, 4), bool)))


@pytest.mark.parametrize("norm_first", [True, False])
def test_cross_attention_key_mask_invariance(norm_first):
    queries = _normal(30, (BATCH, 5, 8))
    context = _normal(31, (BATCH, TIME, 6))
    key_mask = _lengths_mask([TIME, 11, 3], TIME)
    block = CrossAttentionBlock(num_heads=2, mlp_dim=16, norm_first=norm_first)
    variables = _init(block, queries, context, key_mask)
    apply = jax.jit(block.apply)
    base = np.asarray(apply(variables, queries, context, key_mask))
    assert base.shape == (BATCH, 5, 8)
    padded = jnp.where(key_mask[..., None], context, jnp.nan)
    np.testing.assert_allclose(np.asarray(apply(variables, queries, padded, key_mask)),
                               base, rtol=1e-6, atol=1e-6)
    moved = np.asarray(apply(variables, queries, context.at[2, 1].add(_normal(32, (6,))),
                            key_mask))
    assert np.max(np.abs(moved[2] - base[2])) > 1e-3
    unmasked = np.asarray(apply(variables, queries, context, None))
    assert np.max(np.abs(unmasked[2] - base[2])) > 1e-3


def test_paraformers_ignore_padding_and_missing_attributes():
    x = _normal(40, (BATCH, TIME, FEATURES))
    mask = _lengths_mask([TIME, 15, 6], TIME)
    model_z = ParaFormerZ(4, d_model=16, num_layers=1, num_heads=2, mlp_dim=16)
    vz = _init(model_z, x, mask)
    apply_z = jax.jit(model_z.apply)
    base = np.asarray(apply_z(vz, x, mask))
    padded = jnp.where(mask[..., None], x, jnp.nan)
    np.testing.assert_allclose(np.asarray(apply_z(vz, padded, mask)), base,
                               rtol=1e-5, atol=1e-6)

    attributes = _normal(41, (BATCH, 7))
    model_a = ParaFormerA(4, d_model=16, num_layers=1, num_heads=2, mlp_dim=16)
    va = _init(model_a, attributes)
    apply_a = jax.jit(model_a.apply)
    missing = attributes.at[1, 3].set(jnp.nan)
    out = np.asarray(apply_a(va, missing))
    assert np.all(np.isfinite(out))
    # A NaN attribute acts as "absent": its value no longer matters.
    other = np.asarray(apply_a(va, attributes.at[1, 3].set(100.0)))
    assert np.max(np.abs(other[1] - out[1])) > 1e-4
    np.testing.assert_allclose(out[[0, 2]], other[[0, 2]], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoidal_encoding_closed_form(d_model):
    length = 50
    pe = np.asarray(sinusoidal_encoding(length, d_model))
    expected = np.zeros((length, d_model))
    for p in range(length):
        for j in range(d_model):
            i2 = j - j % 2  # 2i
            angle = p / 10000.0 ** (i2 / d_model)
            expected[p, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    np.testing.assert_allclose(pe, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pe[0], [0.0, 1.0] * (d_model // 2) + [0.0] * (d_model % 2))
    np.testing.assert_allclose(pe[1, :2], [np.sin(1.0), np.cos(1.0)], rtol=1e-6)


def test_positional_encoding_module_adds_encoding():
    x = _normal(50, (2, 30, 8))
    module = PositionalEncoding()
    y = module.apply(_init(module, x), x)
    np.testing.assert_allclose(np.asarray(y - x), np.asarray(sinusoidal_encoding(30, 8))[None]
                               .repeat(2, 0), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------
# jit, vmap, dtypes, gradients
# ---------------------------------------------------------------------------------------


def test_jit_and_vmap():
    model = LSTM(8, output_size=1)
    variables = _init(model, SEQ)
    apply = jax.jit(model.apply)
    jitted = np.asarray(apply(variables, SEQ))
    p = variables["params"]
    hs, _ = numpy_lstm(SEQ, p["input_kernel"], p["recurrent_kernel"], p["bias"],
                       np.zeros((BATCH, 8)), np.zeros((BATCH, 8)))
    expected = hs @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])
    np.testing.assert_allclose(jitted, expected, rtol=1e-5, atol=1e-5)
    # vmap over an extra leading axis of inputs (e.g. ensembles of forcing scenarios).
    stacked = jnp.stack([SEQ, 2.0 * SEQ])
    mapped = np.asarray(jax.vmap(lambda x: model.apply(variables, x))(stacked))
    np.testing.assert_allclose(mapped[0], jitted, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mapped[1], np.asarray(apply(variables, 2.0 * SEQ)),
                               rtol=1e-5, atol=1e-6)
    # vmap over parameter sets: an ensemble of independently initialised networks.
    keys = jax.random.split(KEY, 3)
    ensemble = jax.jit(jax.vmap(lambda k: model.init(k, SEQ)))(keys)
    outs = np.asarray(jax.jit(jax.vmap(lambda v: model.apply(v, SEQ)))(ensemble))
    assert outs.shape == (3, BATCH, TIME, 1)
    one = jax.tree.map(lambda a: a[1], ensemble)
    np.testing.assert_allclose(outs[1], np.asarray(apply(one, SEQ)), rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(outs[1] - outs[0])) > 1e-3  # members differ


BF16_CASES = [
    (lambda dt: LSTM(16, output_size=2, dtype=dt), SEQ, 0.05),
    (lambda dt: CNNLSTM(16, dtype=dt), SEQ, 0.05),
    (lambda dt: CausalConvHead(dtype=dt), SEQ, 0.05),
    (lambda dt: MLP((32, 32), 2, dtype=dt), SEQ, 0.05),
    (lambda dt: TransformerEncoder(num_layers=1, num_heads=2, mlp_dim=16, dtype=dt), SEQ, 0.1),
]


@pytest.mark.parametrize("make,x,tol", BF16_CASES, ids=range(len(BF16_CASES)))
def test_bfloat16_close_to_float32(make, x, tol):
    reference, fast = make(jnp.float32), make(jnp.bfloat16)
    variables = _init(reference, x)
    y32 = np.asarray(reference.apply(variables, x))
    y16 = fast.apply(variables, x)
    assert y16.dtype == jnp.bfloat16
    y16 = np.asarray(y16.astype(jnp.float32))
    assert np.all(np.isfinite(y16))
    scale = max(1.0, float(np.max(np.abs(y32))))
    assert np.max(np.abs(y16 - y32)) < tol * scale
    assert not np.array_equal(y16, y32)  # the bfloat16 path was really taken


GRAD_CASES = [
    (LSTM(8, output_size=1, dropout_rate=0.2), (SEQ,)),
    (CNNLSTM(8, conv_axis="layer", output_size=1), (LAYERED,)),
    (CausalConvHead(), (SEQ,)),
    (MLP((8,), 1, dropout_rate=0.2), (SEQ,)),
    (ParaFormerZ(3, d_model=8, num_layers=1, num_heads=2, mlp_dim=8),
     (jnp.where(_lengths_mask([TIME, 12, 5], TIME)[..., None], SEQ, jnp.nan),
      _lengths_mask([TIME, 12, 5], TIME))),
    (ParaFormerA(3, d_model=8, num_layers=1, num_heads=2, mlp_dim=8),
     (SEQ[:, 0].at[0, 1].set(jnp.nan),)),
]


@pytest.mark.parametrize("module,args", GRAD_CASES, ids=lambda c: type(c).__name__)
def test_gradients_finite_and_nonzero(module, args):
    variables = _init(module, *args)

    def loss(params):
        y = module.apply({"params": params}, *args, deterministic=False,
                         rngs={"dropout": jax.random.key(3)}) if _takes_dropout(module) \
            else module.apply({"params": params}, *args)
        return jnp.mean(y**2)

    grads = jax.jit(jax.grad(loss))(variables["params"])
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0.0


def _takes_dropout(module: nn.Module) -> bool:
    return not isinstance(module, CausalConvHead)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module,x,match",
    [
        (LSTM(4), SEQ[0], "inputs"),
        (LSTM(4, dropout_rate=1.0), SEQ, "dropout_rate"),
        (CNNLSTM(4, conv_axis="depth"), SEQ, "conv_axis"),
        (CNNLSTM(4, conv_axis="layer"), SEQ[..., 0], "inputs"),
        (CausalConv1D(2, kernel_size=0), SEQ, "kernel_size"),
        (TransformerEncoder(num_heads=3), SEQ, "num_heads"),
        (ParaFormerA(2), SEQ, "attributes"),
    ],
)
def test_bad_input_raises(module, x, match):
    with pytest.raises(ValueError, match=match):
        module.init(KEY, x)


def test_bad_mask_shape_raises():
    encoder = TransformerEncoder(num_heads=2)
    with pytest.raises(ValueError, match="mask"):
        encoder.init(KEY, SEQ, jnp.ones((BATCH, TIME + 1), bool))
