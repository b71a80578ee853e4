import math

import numpy as np
import pytest
import torch

from epee_demo.rules import learned_scorers
from epee_demo.model.folder import load_learned_exits
from epee_demo.model.multi_exit import ModelSpec, build_model
from tests.training.test_learned_exits import TINY_BERT


def test_gate_features_of_uniform_and_one_hot():
    uniform = learned_scorers.gate_features(np.full(4, 0.25))
    np.testing.assert_allclose(uniform, [0.25, 1.0, 0.0, 1.0], atol=1e-6)
    one_hot = learned_scorers.gate_features(np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(one_hot, [1.0, 0.0, 1.0, 0.0], atol=1e-6)


def test_gate_features_of_a_hand_worked_distribution():
    p = [0.5, 0.3, 0.2]
    entropy = -sum(x * math.log(x) for x in p) / math.log(3)
    q = [x * x / 0.38 for x in p]  # 0.25 + 0.09 + 0.04 = 0.38
    sharpened = -sum(x * math.log(x) for x in q) / math.log(3)
    features = learned_scorers.gate_features(np.array([[p, p[::-1]]]))  # [1, 2, 3]: shape kept, order irrelevant
    assert features.shape == (1, 2, 4)
    for row in features[0]:
        np.testing.assert_allclose(row, [0.5, entropy, 0.2, sharpened], rtol=1e-6)
    assert sharpened < entropy  # squaring sharpens


def test_layerwise_mlp_on_a_prefix_equals_the_first_columns():
    torch.manual_seed(0)
    network = learned_scorers.LayerwiseMLP(4, 5, 8)
    network.fit_standardization(torch.randn(50, 4, 5) * 3 + 1)
    x = torch.randn(7, 4, 5)
    full = network(x)
    for layers in range(1, 5):
        torch.testing.assert_close(network(x[:, :layers]), full[:, :layers])
    with pytest.raises(ValueError, match="expected features"):
        network(torch.randn(7, 5, 5))


def test_load_scorers_without_policies_is_empty(tmp_path):
    assert load_learned_exits(tmp_path, build_model(ModelSpec("text", dict(TINY_BERT), ["a", "b"], {}))) == {}
