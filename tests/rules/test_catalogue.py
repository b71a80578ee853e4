import numpy as np
import pytest

from epee_demo.rules import catalogue
from epee_demo.rules.catalogue import exit_layers, normalized_entropy, patience_counters


def one_hotish(classes, confidence, num_classes=3):
    """[1, L, C] distributions putting ``confidence`` on the given class at each layer."""
    rows = []
    for c, p in zip(classes, confidence):
        row = np.full(num_classes, (1 - p) / (num_classes - 1))
        row[c] = p
        rows.append(row)
    return np.array([rows])


def random_probs(n=200, layers=6, classes=4, seed=0, sharpness=3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, layers, classes)) * rng.uniform(0.2, sharpness, size=(n, layers, 1))
    probs = np.exp(logits)
    return probs / probs.sum(-1, keepdims=True)


def test_normalized_entropy_bounds_and_values():
    uniform = np.full((1, 1, 4), 0.25)
    certain = np.array([[[1.0, 0, 0, 0]]])
    assert normalized_entropy(uniform)[0, 0] == pytest.approx(1.0)
    assert normalized_entropy(certain)[0, 0] == pytest.approx(0.0)
    # Two classes at 0.5/0.5 among 4: entropy ln 2 / ln 4 = 0.5.
    assert normalized_entropy(np.array([[[0.5, 0.5, 0, 0]]]))[0, 0] == pytest.approx(0.5)


def test_patience_counter_hand_worked():
    probs = one_hotish([0, 0, 1, 1, 1, 0], [0.5] * 6)
    assert patience_counters(probs)[0].tolist() == [0, 1, 0, 1, 2, 0]


def test_epee_exits_on_entropy_or_patience_hand_worked():
    # Predictions 0,0,1,1,1,1 with low confidence: patience 2 fires at layer 5 (counter 0,1,0,1,2).
    probs = one_hotish([0, 0, 1, 1, 1, 1], [0.4] * 6)
    assert exit_layers(probs, "epee", tau=0.1, patience=2)[0] == 5
    # A confident layer 3 fires the entropy part first.
    confident = one_hotish([0, 0, 1, 1, 1, 1], [0.4, 0.4, 0.99, 0.4, 0.4, 0.4])
    assert exit_layers(confident, "epee", tau=0.2, patience=2)[0] == 3
    assert exit_layers(confident, "entropy", tau=0.2)[0] == 3
    assert exit_layers(confident, "patience", patience=2)[0] == 5


def test_no_rule_fires_means_last_layer():
    probs = one_hotish([0, 1, 0, 1], [0.4] * 4)
    assert exit_layers(probs, "epee", tau=0.0, patience=3)[0] == 4
    assert exit_layers(probs, "maxprob", threshold=0.99)[0] == 4


def test_pcee_counts_consecutive_confident_layers():
    probs = one_hotish([0, 0, 0, 0, 0], [0.99, 0.4, 0.99, 0.99, 0.99])
    assert catalogue.rule_values(probs, "pcee", tau=0.3)[0].tolist() == [1, 0, 1, 2, 3]
    assert exit_layers(probs, "pcee", tau=0.3, patience=2)[0] == 4
    assert exit_layers(probs, "pcee", tau=0.3, patience=1)[0] == 1


def test_maxprob_threshold():
    probs = one_hotish([2, 2, 2], [0.5, 0.8, 0.95])
    assert exit_layers(probs, "maxprob", threshold=0.8)[0] == 2
    assert exit_layers(probs, "maxprob", threshold=0.9)[0] == 3


def test_divergences_hand_worked():
    p = np.array([0.5, 0.5])
    q = np.array([0.9, 0.1])
    kl = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    rkl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert catalogue.divergence(p, q, "kl") == pytest.approx(kl)
    assert catalogue.divergence(p, q, "reverse_kl") == pytest.approx(rkl)
    assert catalogue.divergence(p, q, "symmetric_kl") == pytest.approx(kl + rkl)
    m = (p + q) / 2
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert catalogue.divergence(p, q, "js") == pytest.approx(js)
    # Disjoint supports reach the JS maximum ln 2.
    assert catalogue.divergence(np.array([1.0, 0]), np.array([0, 1.0]), "js") == pytest.approx(np.log(2), abs=1e-6)
    with pytest.raises(ValueError, match="divergence measure"):
        catalogue.divergence(p, q, "hellinger")


def test_fpabee_counts_stable_layers():
    probs = one_hotish([0, 0, 0, 0, 0], [0.5, 0.9, 0.91, 0.92, 0.6], num_classes=2)
    counters = catalogue.rule_values(probs, "fpabee", tau=0.01, measure="js")
    assert counters[0].tolist() == [0, 0, 1, 2, 0]
    assert exit_layers(probs, "fpabee", tau=0.01, patience=2, measure="js")[0] == 4


def test_score_rules_use_scores_and_calm_reads_confidence_zero_at_layer_one():
    probs = random_probs(n=3, layers=4)
    cosine = np.array([[np.nan, 0.5, 0.97, 0.99], [np.nan, 0.99, 0.2, 0.2], [np.nan, 0.1, 0.1, 0.1]])
    assert exit_layers(probs, "calm", scores=cosine, threshold=0.95).tolist() == [3, 2, 4]
    assert exit_layers(probs, "calm", scores=cosine, threshold=0.05).tolist() == [2, 2, 2]
    assert exit_layers(probs, "calm", scores=cosine, threshold=0.0).tolist() == [1, 1, 1]
    gate = np.array([[0.6, 0.9, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.5, 0.5, 0.5]])
    assert exit_layers(probs, "jei", scores=gate, threshold=0.5).tolist() == [1, 4, 2]
    with pytest.raises(ValueError, match="needs a per-layer score"):
        exit_layers(probs, "consistentee")


def test_fixed_depth():
    probs = random_probs(n=5, layers=4)
    assert exit_layers(probs, "fixed", layer=2).tolist() == [2] * 5
    with pytest.raises(ValueError, match="fixed layer"):
        exit_layers(probs, "fixed", layer=5)


@pytest.mark.parametrize("rule", ["entropy", "patience", "epee", "pcee", "maxprob", "fpabee"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exit_layers_are_in_range(rule, seed):
    probs = random_probs(seed=seed)
    exits = exit_layers(probs, rule)
    assert exits.shape == (probs.shape[0],)
    assert exits.min() >= 1 and exits.max() <= probs.shape[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("patience", [1, 2, 3, 5])
def test_tau_zero_makes_epee_equal_pabee(seed, patience):
    probs = random_probs(seed=seed)
    np.testing.assert_array_equal(
        exit_layers(probs, "epee", tau=0.0, patience=patience), exit_layers(probs, "patience", patience=patience)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.1, 0.3, 0.6])
def test_patience_at_least_layers_makes_epee_equal_entropy(seed, tau):
    probs = random_probs(seed=seed)
    for patience in (probs.shape[1], probs.shape[1] + 3):
        np.testing.assert_array_equal(
            exit_layers(probs, "epee", tau=tau, patience=patience), exit_layers(probs, "entropy", tau=tau)
        )


def test_epee_is_the_earlier_of_its_two_parts():
    probs = random_probs(seed=4)
    both = exit_layers(probs, "epee", tau=0.3, patience=2)
    np.testing.assert_array_equal(
        both, np.minimum(exit_layers(probs, "entropy", tau=0.3), exit_layers(probs, "patience", patience=2))
    )


def test_bad_arguments_are_refused_clearly():
    probs = random_probs(n=2)
    with pytest.raises(ValueError, match="unknown exit rule"):
        exit_layers(probs, "magic")
    with pytest.raises(ValueError, match="takes no parameter"):
        exit_layers(probs, "entropy", patience=2)
    with pytest.raises(ValueError, match=r"\[N, L, C\]"):
        exit_layers(probs[0], "entropy")


def counters_by_definition(probs, grows) -> np.ndarray:
    """Counters written out from the definition, one example and one layer at a time:
    0 at layer 1, then +1 while ``grows(probs, n, i)`` holds, back to 0 when it does not."""
    out = np.zeros(probs.shape[:2], dtype=np.int64)
    for n in range(probs.shape[0]):
        for i in range(1, probs.shape[1]):
            out[n, i] = out[n, i - 1] + 1 if grows(probs, n, i) else 0
    return out


@pytest.mark.parametrize("counters, grows", [
    (patience_counters, lambda p, n, i: p[n, i].argmax() == p[n, i - 1].argmax()),
    (lambda p: catalogue.rule_values(p, "fpabee", tau=0.1, measure="kl"),
     lambda p, n, i: np.sum(p[n, i - 1] * np.log(p[n, i - 1] / p[n, i])) < 0.1),
], ids=["pabee", "fpabee"])
def test_counters_follow_their_definition(counters, grows):
    probs = random_probs(n=50, seed=5)
    np.testing.assert_array_equal(counters(probs), counters_by_definition(probs, grows))


def test_pcee_counter_follows_its_definition():
    probs = random_probs(n=50, seed=5)
    confident = normalized_entropy(probs) < 0.5
    expected = np.zeros(confident.shape, dtype=np.int64)
    for n in range(probs.shape[0]):
        run = 0
        for i in range(probs.shape[1]):
            run = run + 1 if confident[n, i] else 0
            expected[n, i] = run
    np.testing.assert_array_equal(catalogue.rule_values(probs, "pcee", tau=0.5), expected)


@pytest.mark.parametrize("rule", ["entropy", "patience", "epee", "pcee", "maxprob", "fpabee", "fixed", "jei"])
def test_layerwise_rule_with_examples_leaving_matches_exit_layers(rule):
    """Real early exit's loop: step the examples in flight, drop those that exited."""
    probs = random_probs(n=120, seed=6)
    scores = np.random.default_rng(6).uniform(size=probs.shape[:2])
    params = {"layer": 3} if rule == "fixed" else {}
    expected = exit_layers(probs, rule, scores=scores, **params)
    layerwise = catalogue.LayerwiseRule(rule, probs.shape[1], len(probs), **params)
    in_flight, exits = np.arange(len(probs)), np.full(len(probs), probs.shape[1])
    for layer in range(probs.shape[1] - 1):
        fires = layerwise.step(probs[in_flight, layer], scores[in_flight, layer])
        exits[in_flight[fires]] = layer + 1
        layerwise.keep(np.flatnonzero(~fires))
        in_flight = in_flight[~fires]
    np.testing.assert_array_equal(exits, expected)
