import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from epee_demo.rules import catalogue
from epee_demo.model.backbones import backbone_for
from epee_demo.trace.early_exit import (
    OnlineExitRule, predict_early_exit, resolve_dtype, run_early_exit, run_full, with_dtype,
)
from epee_demo.model.multi_exit import ModelSpec, MultiExitClassifier, MultiExitModel
from tests.conftest import TokenPreprocessor

NUM_LAYERS = 6
NUM_LABELS = 3


def layer_weights(first_layer, count):
    """A per-layer factor, so a scorer called on the wrong layers gives other scores."""
    return torch.linspace(0.5, 1.0, NUM_LAYERS)[first_layer:first_layer + count]


def consistentee_scorer(pooled, probs, first_layer=0):
    assert pooled.dim() == 3 and probs.dim() == 3 and pooled.shape[:2] == probs.shape[:2]
    return torch.sigmoid(pooled[..., :4].sum(-1)) * layer_weights(first_layer, pooled.shape[1])


def jei_scorer(pooled, probs, first_layer=0):
    assert pooled.dim() == 3 and probs.dim() == 3 and pooled.shape[:2] == probs.shape[:2]
    return probs.max(-1).values * torch.sigmoid(pooled[..., 0]) * layer_weights(first_layer, pooled.shape[1])


def tiny_classifier() -> MultiExitClassifier:
    """A random 6-layer BERT with random, peaked exit heads and two fake learned scorers."""
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
                        intermediate_size=64, vocab_size=100, initializer_range=0.1)
    model = MultiExitModel(backbone_for(BertModel(config)), NUM_LABELS)
    with torch.no_grad():
        for head in model.heads:  # peaked, varied exit distributions
            head.out.weight.mul_(6.0)
    spec = ModelSpec(modality="text", base=config.to_dict(), label_names=["a", "b", "c"], preprocess={})
    return MultiExitClassifier(model.eval(), spec, TokenPreprocessor(),
                               {"consistentee": consistentee_scorer, "jei": jei_scorer})


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier()


def token_inputs():
    rng = np.random.default_rng(1)
    return [list(rng.integers(1, 100, size=rng.integers(3, 20))) for _ in range(30)]


@pytest.fixture(scope="module")
def inputs():
    return token_inputs()


@pytest.fixture(scope="module")
def trace(classifier, inputs):
    return classifier.trace(inputs, batch_size=8)


def between(values, quantile):
    """A threshold in a wide gap between observed values near ``quantile`` (robust to float noise)."""
    v = np.unique(np.asarray(values)[np.isfinite(values)])
    k = int(quantile * (len(v) - 1))
    lo, hi = max(0, k - len(v) // 4), min(len(v) - 1, k + len(v) // 4)
    j = max(range(lo, hi), key=lambda j: v[j + 1] - v[j])
    assert v[j + 1] - v[j] > 1e-5
    return float((v[j] + v[j + 1]) / 2)


def rule_params(trace):
    """Parameters for every rule under which the test model's exits spread over the layers."""
    entropy = catalogue.normalized_entropy(trace.probs)[:, :-1]
    divergences = catalogue.layer_divergences(trace.probs, "js")[:, 1:-1]
    return {
        "epee": {"tau": between(entropy, 0.2), "patience": 2},
        "entropy": {"tau": between(entropy, 0.4)},
        "patience": {"patience": 1},
        "pcee": {"tau": between(entropy, 0.6), "patience": 2},
        "maxprob": {"threshold": between(trace.probs.max(-1)[:, :-1], 0.6)},
        "fpabee": {"tau": between(divergences, 0.5), "patience": 1, "measure": "js"},
        "calm": {"threshold": between(trace.state_cosine[:, 1], 0.5)},
        "consistentee": {"threshold": between(trace.exit_scores["consistentee"][:, 0], 0.5)},
        "jei": {"threshold": between(trace.exit_scores["jei"][:, 0], 0.5)},
        "fixed": {"layer": 3},
    }


def test_every_rule_is_covered(trace):
    assert set(rule_params(trace)) == set(catalogue.RULES)


@pytest.mark.parametrize("rule", sorted(catalogue.RULES))
@pytest.mark.parametrize("batch_size", [1, 7])
def test_early_exit_matches_trace(classifier, inputs, trace, rule, batch_size):
    params = rule_params(trace)[rule]
    expected_layers, expected_probs = catalogue.exit_answers(trace.probs, rule, scores=trace.scores_for(rule), **params)
    if rule != "fixed":
        assert len(np.unique(expected_layers)) > 1, "parameters should spread exits over layers"
    result = predict_early_exit(classifier, inputs, rule, batch_size=batch_size, **params)
    np.testing.assert_array_equal(result.exit_layers, expected_layers)
    np.testing.assert_array_equal(result.predictions, expected_probs.argmax(axis=-1))
    np.testing.assert_allclose(result.probs, expected_probs, atol=1e-5)
    assert result.seconds > 0


def test_layers_and_heads_past_the_exit_never_run(classifier, inputs, trace, monkeypatch):
    params = rule_params(trace)["calm"]
    expected = catalogue.exit_layers(trace.probs, "calm", scores=trace.scores_for("calm"), **params)
    backbone = classifier.model.backbone
    layer_rows, head_rows = [], []
    original_run_layer = backbone.run_layer

    def counting_run_layer(index, hidden, ctx):
        layer_rows.append((index, hidden.shape[0]))
        return original_run_layer(index, hidden, ctx)

    monkeypatch.setattr(backbone, "run_layer", counting_run_layer)
    hooks = [head.register_forward_hook(lambda m, a, out, i=i: head_rows.append((i, out.shape[0])))
             for i, head in enumerate(classifier.model.heads)]
    try:
        for example, exit_layer in zip(inputs, expected):
            layer_rows.clear(), head_rows.clear()
            predict_early_exit(classifier, [example], "calm", **params)
            assert layer_rows == [(i, 1) for i in range(exit_layer)]
            assert head_rows == [(i, 1) for i in range(exit_layer)]
        layer_rows.clear(), head_rows.clear()
        predict_early_exit(classifier, inputs, "calm", batch_size=len(inputs), **params)
    finally:
        for hook in hooks:
            hook.remove()
    # In one batch, layer i runs only on the examples that have not exited before it.
    in_flight = [(i, int((expected > i).sum())) for i in range(NUM_LAYERS) if (expected > i).any()]
    assert layer_rows == in_flight
    assert head_rows == in_flight
    assert in_flight[0][1] > in_flight[-1][1]


def test_run_full_matches_last_exit(classifier, inputs, trace):
    batch = classifier.preprocessor(inputs[:8])
    np.testing.assert_allclose(run_full(classifier.model, batch), trace.probs[:8, -1], atol=1e-5)
    np.testing.assert_allclose(run_full(classifier.model, batch, all_heads=True), trace.probs[:8, -1], atol=1e-5)


def test_online_rule_refuses_bad_settings(classifier):
    with pytest.raises(ValueError, match="needs its exit scorer"):
        OnlineExitRule("jei", NUM_LAYERS)
    with pytest.raises(ValueError, match="fixed layer"):
        OnlineExitRule("fixed", NUM_LAYERS, layer=NUM_LAYERS + 1)
    with pytest.raises(ValueError, match="takes no parameter"):
        OnlineExitRule("entropy", NUM_LAYERS, patience=2)
    with pytest.raises(ValueError, match="unknown exit rule"):
        OnlineExitRule("oracle", NUM_LAYERS)


def test_fixed_rule_exits_at_its_layer(classifier, inputs):
    batch = classifier.preprocessor(inputs[:5])
    layers, probs = run_early_exit(classifier.model, batch, OnlineExitRule("fixed", NUM_LAYERS, layer=NUM_LAYERS))
    assert list(layers) == [NUM_LAYERS] * 5
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_dtypes():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert resolve_dtype("auto", "cuda") == torch.float16
    with pytest.raises(ValueError, match="CUDA"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int8", "cpu")


def test_bfloat16_copy_runs_and_leaves_original(classifier, inputs, trace):
    half = with_dtype(classifier, torch.bfloat16)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert next(classifier.model.parameters()).dtype == torch.float32
    assert with_dtype(classifier, torch.float32) is classifier
    result = predict_early_exit(half, inputs, "fixed", batch_size=4, layer=NUM_LAYERS)
    assert result.probs.dtype == np.float32
    np.testing.assert_allclose(result.probs, trace.probs[:, -1], atol=0.1)


@pytest.mark.parametrize("rule, params, layer", [
    ("epee", {"tau": 1.0, "patience": 0}, None),  # patience 0: every layer, the entropy test not consulted
    ("calm", {"threshold": 0.0}, 1),  # layer 1's confidence is 0, which a threshold of 0 accepts
    ("consistentee", {"threshold": 1.0}, None),  # a probability is never strictly above 1
])
def test_early_exit_at_the_ends_of_the_ranges(classifier, inputs, trace, rule, params, layer):
    result = predict_early_exit(classifier, inputs, rule, batch_size=4, **params)
    np.testing.assert_array_equal(result.exit_layers, catalogue.exit_layers(trace.probs, rule, scores=trace.scores_for(rule), **params))
    assert (result.exit_layers == (layer or classifier.num_layers)).all()


class EntityStartTokens(TokenPreprocessor):
    """Token-id inputs whose exits read two positions of each (the 2nd and the last token)."""

    def __call__(self, sequences):
        batch = super().__call__(sequences)
        batch["entity_starts"] = torch.tensor([[1, len(s) - 1] for s in sequences])
        return batch


@pytest.mark.parametrize("batch_size", [1, 7])
def test_early_exit_of_an_entity_start_model_matches_its_trace(inputs, batch_size):
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
                        intermediate_size=64, vocab_size=100, initializer_range=0.1)
    backbone = backbone_for(BertModel(config))
    backbone.entity_starts = 2
    model = MultiExitModel(backbone, NUM_LABELS, head_width=16).eval()
    with torch.no_grad():
        for head in model.heads:
            head.out.weight.mul_(6.0)
    spec = ModelSpec(modality="text", base=config.to_dict(), label_names=["a", "b", "c"], preprocess={})
    classifier = MultiExitClassifier(model, spec, EntityStartTokens())
    trace = classifier.trace(inputs, batch_size=8)
    params = {"tau": between(catalogue.normalized_entropy(trace.probs)[:, :-1], 0.2), "patience": 2}
    expected_layers, expected_probs = catalogue.exit_answers(trace.probs, "epee", **params)
    assert len(np.unique(expected_layers)) > 1
    result = predict_early_exit(classifier, inputs, "epee", batch_size=batch_size, **params)
    np.testing.assert_array_equal(result.exit_layers, expected_layers)
    np.testing.assert_allclose(result.probs, expected_probs, atol=1e-5)
