"""The neuralhydrology peer gets the network the config's ``lstm`` model gets (no torch needed)."""

import pytest

from difhydro.experiment.config import load_config
from difhydro.experiment.run import peer_network


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"hidden_size": 256, "dropout": 0.0}, {"hidden_size": 256, "dropout": 0.0}),  # was 0.4
        ({"hidden_size": 64, "dropout": 0.0}, {"hidden_size": 64, "dropout": 0.0}),  # was 0.1
        ({"hidden_size": 64, "dropout": 0.25}, {"hidden_size": 64, "dropout": 0.25}),
        ({"hidden_size": 64}, {"hidden_size": 64, "dropout": 0.1}),  # the registry's default for small LSTMs
        ({}, {"hidden_size": 256, "dropout": 0.4}),
        ({"hidden_size": 64, "head": "cmal", "components": 5, "training": {"loss": "nll"}},
         {"hidden_size": 64, "dropout": 0.1, "head": "cmal", "n_distributions": 5}),  # NH's own cmal head
    ],
)
def test_peer_network_matches_the_lstm_options(options, expected):
    cfg = load_config({"models": {"lstm": options}, "peers": {"neuralhydrology": True}})
    assert peer_network(cfg) == {"head": "regression", "n_distributions": 3, **expected}


def test_the_peer_follows_the_lstm_learning_rate_schedule():
    """The peer trained at a constant rate while difhydro's LSTM decayed its rate (cosine),
    the main cause of the CMAL gap (docs/forecasting.md); now each update's rate is passed."""
    import math

    from difhydro.experiment.neuralhydrology import nh_learning_rate
    from difhydro.training import TrainConfig

    tc = TrainConfig(epochs=2, steps_per_epoch=3, learning_rate=0.01, schedule="cosine")
    rates = tc.learning_rates()
    expected = [0.01 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / 6))) for i in range(6)]
    assert list(rates) == list(range(6))
    assert [rates[i] for i in range(6)] == pytest.approx(expected, rel=1e-6)
    assert TrainConfig(epochs=2, steps_per_epoch=3, learning_rate=0.01, schedule="constant").learning_rates() == 0.01
    assert nh_learning_rate(0.01, 6) == 0.01
    nh = nh_learning_rate(rates, 6)
    assert nh[0] == rates[0] and nh[1] == rates[0] and nh[6] == rates[5]
    with pytest.raises(ValueError, match=r"no rate for update\(s\) \[5\]"):
        nh_learning_rate({i: 0.01 for i in range(5)}, 6)


def test_neuralhydrology_reads_the_rate_of_each_update(tmp_path):
    """NH's own reading of :func:`nh_learning_rate`: Config from the YAML the peer writes, then
    BaseTrainer's rule (the rate of epoch e is learning_rate[e] when that key exists; one
    update per epoch)."""
    import math

    pytest.importorskip("neuralhydrology")
    from difhydro.experiment.neuralhydrology import nh_learning_rate
    from difhydro.training import TrainConfig

    nh = nh_learning_rate(TrainConfig(epochs=2, steps_per_epoch=3, learning_rate=0.01, schedule="cosine")
                          .learning_rates(), 6)
    expected = [0.01 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / 6))) for i in range(6)]
    from neuralhydrology.utils.config import Config
    from ruamel.yaml import YAML

    path = tmp_path / "c.yml"
    with path.open("w") as fp:
        YAML().dump({"learning_rate": nh, "experiment_name": "x"}, fp)
    table = Config(path).learning_rate
    lr, seen = table[0], []
    for epoch in range(1, 7):
        lr = table.get(epoch, lr)
        seen.append(lr)
    assert seen == pytest.approx(expected, rel=1e-6)
