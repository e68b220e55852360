"""The LSTM's initialisation: Flax's (default, unchanged) and PyTorch's / neuralhydrology's ("torch")."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from difhydro.experiment.config import ConfigError, load_config
from difhydro.hybrid import MODELS, build_model
from difhydro.hybrid.registry import LSTM_INITIALISATIONS
from difhydro.nn import LSTM
from difhydro.nn.initialisation import INITIALISATIONS, check_initialisation, torch_initialised, torch_parameters

H, F = 64, 5  # hidden size, inputs (3 forcings + 2 attributes in the registry models)
KEY = jax.random.key(0)


def _x(batch=2, time=4, features=F):
    return jnp.asarray(np.random.default_rng(0).normal(size=(batch, time, features)), jnp.float32)


def _batch(batch=2, time=6):
    rng = np.random.default_rng(1)
    flow = np.abs(rng.normal(1.0, 1.0, (batch, time))).astype(np.float32)
    return {"inputs": jnp.asarray(rng.normal(size=(batch, time, 3)), jnp.float32),
            "attributes": jnp.asarray(rng.normal(size=(batch, 2)), jnp.float32),
            "targets": {"streamflow": jnp.asarray(flow)}, "masks": {"streamflow": jnp.ones((batch, time), bool)}}


def _init(model, data):
    # compiled whole: much faster than the op-by-op first call of the mixtures' median
    return jax.jit(lambda b: model.init({"params": KEY, "dropout": jax.random.key(1)}, b)["params"])(data)


def _blocks(bias):
    """(forget block, the three other blocks) of a [4H] bias (gate order i, f, g, o)."""
    bias = np.asarray(bias)
    h = bias.shape[0] // 4
    return bias[h:2 * h], np.concatenate([bias[:h], bias[2 * h:]])


class _FlaxLSTMParams(nn.Module):
    """The parameters of the LSTM layer as written before the option: Flax's initialisers by hand."""

    @nn.compact
    def __call__(self, x):
        def forget(key, shape, dtype=jnp.float32):
            return jnp.zeros(shape, dtype).at[H:2 * H].set(3.0)

        self.param("input_kernel", nn.initializers.lecun_normal(), (x.shape[-1], 4 * H))
        self.param("recurrent_kernel", nn.initializers.orthogonal(), (H, 4 * H))
        self.param("bias", forget, (4 * H,))
        return nn.Dense(1, name="head")(jnp.zeros(x.shape[:-1] + (H,)))


# -- the default is Flax's, bit for bit -------------------------------------------------------------

def test_default_initialisation_is_flax_bit_for_bit():
    x = _x()
    expected = _FlaxLSTMParams().init(KEY, x)["params"]  # same paths, so the same keys per parameter
    for layer in (LSTM(H, output_size=1),):
        got = layer.init(KEY, x)["params"]
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, expected)
    # the registry's lstm: the same class and parameters with or without init: flax
    default, flax = build_model("lstm", hidden_size=H), build_model("lstm", hidden_size=H, init="flax")
    assert type(default) is type(flax) is MODELS["lstm"].build(0.0, 1.0, hidden_size=H).__class__
    assert type(default).__name__ == "RegionalLSTM"
    jax.tree_util.tree_map(np.testing.assert_array_equal, _init(default, _batch()), _init(flax, _batch()))


# -- "torch": the bounds and moments of torch's uniform draws -----------------------------------

def _check_torch_lstm(p, hidden=H):
    bound = 1.0 / math.sqrt(hidden)
    for name in ("input_kernel", "recurrent_kernel"):
        w = np.asarray(p[name])
        assert np.abs(w).max() <= bound, name
        # U(-b, b) has std b/sqrt(3); the relative standard error of a sample std is sqrt(0.2/n)
        # (<= 1.3 % here): LeCun normal (1/sqrt(F)) and orthogonal (1/sqrt(4H)) are 13 % or more away
        assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.06, (name, w.std())
        assert stats.kstest(w.ravel(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3, name
    forget, others = _blocks(p["bias"])
    assert np.all(np.abs(forget - 3.0) <= bound) and np.all(np.abs(others) <= 2 * bound)
    # b_ih + b_hh: triangular on +-2b, std b*sqrt(2/3) (one uniform would give b/sqrt(3), 29 % less)
    assert abs(others.std() / (bound * math.sqrt(2 / 3)) - 1) < 0.15, others.std()
    # the forget block: 3 + b_ih alone (neuralhydrology sets b_hh's forget block to 3), std b/sqrt(3);
    # with b_hh's uniform kept it would be 41 % wider (relative standard error here sqrt(0.2/H) = 6 %)
    assert abs(forget.std() / (bound / math.sqrt(3)) - 1) < 0.2, forget.std()
    assert abs(forget.mean() - 3.0) < 4 * bound / math.sqrt(3 * hidden)


def test_torch_layer_draws_uniform_weights_and_a_two_uniform_bias():
    p = torch_initialised(LSTM(H, output_size=1)).init(KEY, _x())["params"]
    _check_torch_lstm(p)
    head = np.concatenate([np.ravel(p["head"]["kernel"]), np.ravel(p["head"]["bias"])])
    assert np.abs(head).max() <= 1 / math.sqrt(H) and head.std() > 0  # nn.Linear: U(+-1/sqrt(fan_in))
    # the flax draws fail the same checks (the test can fail)
    with pytest.raises(AssertionError):
        _check_torch_lstm(LSTM(H, output_size=1).init(KEY, _x())["params"])


@pytest.mark.parametrize("options", [{}, {"head": "cmal"}, {"head": "gmm"}, {"autoregressive": True}],
                         ids=["regression", "cmal", "gmm", "autoregressive"])
def test_registry_lstm_torch_init_in_every_variant(options):
    batch = _batch()
    flax_model = build_model("lstm", hidden_size=H, dropout=0.0, **options)
    torch_model = build_model("lstm", hidden_size=H, dropout=0.0, init="torch", **options)
    params = _init(torch_model, batch)
    # same names, shapes and dtypes as flax's (the trainer's probe, eval_shape): checkpoints are interchangeable
    flax_shapes, shapes = (jax.eval_shape(lambda b, m=m: m.init({"params": KEY, "dropout": KEY}, b), batch)["params"]
                           for m in (flax_model, torch_model))
    assert jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), params) == \
        jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), flax_shapes) == \
        jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), shapes)
    _check_torch_lstm(params["lstm"])
    dense = [params["lstm"]["head"]] if "head" in params["lstm"] else list(params["distribution"].values())
    assert dense
    for layer in dense:  # every Dense: kernel and bias U(+-1/sqrt(fan_in))
        bound = 1 / math.sqrt(layer["kernel"].shape[0])
        assert all(np.abs(np.asarray(v)).max() <= bound and np.asarray(v).std() > 0 or v.size == 1
                   for v in layer.values())
    assert np.isfinite(np.asarray(jax.jit(torch_model.apply)({"params": params}, batch)["streamflow"])).all()


def test_torch_parameters_follow_the_key_and_refuse_a_parameter_without_rule():
    tree = {"lstm": {"input_kernel": jnp.zeros((3, 8)), "recurrent_kernel": jnp.zeros((2, 8)),
                     "bias": jnp.zeros(8), "head": {"kernel": jnp.zeros((2, 1)), "bias": jnp.zeros(1)}}}
    one, same, other = (torch_parameters(tree, jax.random.key(k), 3.0) for k in (1, 1, 2))
    jax.tree_util.tree_map(np.testing.assert_array_equal, one, same)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_less(0, np.abs(a - b).max()), one, other)
    # the LSTM's two kernels and its head are drawn independently (not one draw reused)
    assert not np.allclose(one["lstm"]["input_kernel"][:2], one["lstm"]["recurrent_kernel"])
    tree["embedding"] = {"table": jnp.zeros((4, 2))}
    with pytest.raises(ValueError, match="embedding/table"):
        torch_parameters(tree, KEY, 3.0)


def test_unknown_initialisation_is_one_clear_error():
    with pytest.raises(ValueError, match="initialisation: unknown initialisation 'xavier'"):
        check_initialisation("xavier")
    with pytest.raises(ValueError, match="models.lstm.init"):
        MODELS["lstm"].build(0.0, 1.0, init="xavier")
    with pytest.raises(ValueError, match="init.*choose from flax, torch"):
        build_model("lstm", init="xavier")
    assert LSTM_INITIALISATIONS == INITIALISATIONS


def test_config_accepts_and_refuses_models_lstm_init():
    base = {"name": "t", "evaluations": ["temporal"]}
    assert load_config({**base, "models": {"lstm": {"init": "torch"}}}).models["lstm"] == {"init": "torch"}
    for bad, words in (("xavier", "choose from flax, torch"), (3, "expected a string")):
        with pytest.raises(ConfigError) as err:
            load_config({**base, "models": {"lstm": {"init": bad}}})
        assert str(err.value).startswith("models.lstm.init") and words in str(err.value), str(err.value)


# -- against neuralhydrology's own CudaLSTM (torch) ------------------------------------------------

def _neuralhydrology(head: str):
    torch = pytest.importorskip("torch")
    pytest.importorskip("neuralhydrology")
    from neuralhydrology.modelzoo.cudalstm import CudaLSTM
    from neuralhydrology.utils.config import Config

    torch.manual_seed(0)
    cfg = Config({"model": "cudalstm", "hidden_size": H, "initial_forget_bias": 3, "output_dropout": 0.0,
                  "head": head, "n_distributions": 3, "dynamic_inputs": ["p", "t", "pet"],
                  "static_attributes": ["a", "b"], "target_variables": ["q"]})
    return {k: v.detach().numpy() for k, v in CudaLSTM(cfg).named_parameters()}


def _same_law(ours, theirs):
    return stats.ks_2samp(np.ravel(ours), np.ravel(theirs)).pvalue > 1e-3


@pytest.mark.parametrize("head", ["regression", "cmal"])
def test_torch_init_draws_as_neuralhydrology_cudalstm(head):
    nh = _neuralhydrology(head)
    ours = _init(build_model("lstm", hidden_size=H, dropout=0.0, init="torch", head=head), _batch())
    flax = _init(build_model("lstm", hidden_size=H, dropout=0.0, head=head), _batch())
    lstm, flax_lstm = ours["lstm"], flax["lstm"]
    assert nh["lstm.weight_ih_l0"].shape == lstm["input_kernel"].T.shape  # [4H, F] against [F, 4H]
    pairs = [(lstm["input_kernel"].T, nh["lstm.weight_ih_l0"], flax_lstm["input_kernel"].T),
             (lstm["recurrent_kernel"].T, nh["lstm.weight_hh_l0"], flax_lstm["recurrent_kernel"].T)]
    nh_bias = nh["lstm.bias_ih_l0"] + nh["lstm.bias_hh_l0"]  # the two biases enter only as their sum
    for ours_block, nh_block, flax_block in zip(_blocks(lstm["bias"]), _blocks(nh_bias), _blocks(flax_lstm["bias"])):
        pairs.append((ours_block, nh_block, flax_block))
    if head == "regression":
        pairs.append((lstm["head"]["kernel"], nh["head.net.0.weight"], flax_lstm["head"]["kernel"]))
    else:
        dist, flax_dist = ours["distribution"], flax["distribution"]
        pairs += [(dist["hidden"]["kernel"], nh["head.fc1.weight"], flax_dist["hidden"]["kernel"]),
                  (dist["hidden"]["bias"], nh["head.fc1.bias"], flax_dist["hidden"]["bias"]),
                  (dist["output"]["kernel"], nh["head.fc2.weight"], flax_dist["output"]["kernel"])]
    for i, (o, n, f) in enumerate(pairs):
        assert np.size(o) == np.size(n), i
        assert _same_law(o, n), i
        if np.size(n) >= 1000:  # moments: the relative standard error of a std is ~1.4 % at this size
            assert abs(np.std(o) / np.std(n) - 1) < 0.08 and abs(np.mean(o) - np.mean(n)) < 0.1 * np.std(n), i
        if np.size(n) >= 100:  # the flax draws are told apart: the comparison has power
            assert not _same_law(f, n), i
