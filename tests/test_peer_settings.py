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
