"""Task metrics: micro-F1 over the positive classes, macro-F1, and every rule at its default."""

import numpy as np
import pytest

from epee_demo.rules import catalogue
from epee_demo.analysis.task_metrics import macro_f1, micro_f1_positive, per_layer, rules_at_default
from epee_demo.trace.exit_trace import ExitTrace


def test_micro_f1_pools_the_positive_classes():
    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    predictions = np.array([1, 0, 1, 2, 2, 0, 3])
    # positives predicted: 1, 1, 2, 2, 3 (5); gold positives: 5; true positives: 1, 2, 3 (3)
    assert micro_f1_positive(predictions, labels, 4) == pytest.approx(2 * 3 / (5 + 5))
    assert micro_f1_positive(np.zeros(7, int), labels, 4) == 0.0  # nothing predicted positive
    binary = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])  # the F1 of class 1 (GAD)
    assert micro_f1_positive(*binary, 2) == pytest.approx(0.5)


def test_macro_f1_averages_the_classes_present():
    labels = np.array([0, 0, 1, 1])
    predictions = np.array([0, 1, 1, 1])
    f1 = [2 * 1 / (1 + 2), 2 * 2 / (3 + 2)]
    assert macro_f1(predictions, labels, 3) == pytest.approx(np.mean(f1))  # class 2 is absent


def _trace(seed=0, n=40, layers=4, classes=5):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.4), size=(n, layers)).astype(np.float32)
    return ExitTrace(probs, tuple(f"c{i}" for i in range(classes)), rng.integers(0, classes, n))


def test_per_layer_and_rules_at_default_agree_with_the_rules():
    trace = _trace()
    scores = per_layer(trace, "micro_f1_positive")
    assert scores[-1] == pytest.approx(micro_f1_positive(trace.probs[:, -1].argmax(-1), trace.labels, 5))
    rows = {row["rule"]: row for row in rules_at_default(trace, ("accuracy", "micro_f1_positive"))}
    assert "fixed" not in rows and "epee" in rows and "consistentee" not in rows  # no learned scores here
    exits, answers = catalogue.exit_answers(trace.probs, "epee", **catalogue.RULES["epee"].params)
    assert rows["epee"]["average_exit_layer"] == pytest.approx(exits.mean())
    assert rows["epee"]["speedup"] == pytest.approx(4 / exits.mean())
    assert rows["epee"]["micro_f1_positive"] == pytest.approx(
        micro_f1_positive(answers.argmax(-1), trace.labels, 5))


@pytest.mark.parametrize("metric", [macro_f1, micro_f1_positive])
def test_metrics_over_settings_equal_each_setting_scored_alone(metric):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 30)
    predictions = rng.integers(0, 4, (2, 5, 30))  # two leading axes of settings
    scores = metric(predictions, labels, 4)
    assert scores.shape == (2, 5)
    for i, j in np.ndindex(2, 5):
        assert scores[i, j] == pytest.approx(metric(predictions[i, j], labels, 4))
    assert isinstance(metric(predictions[0, 0], labels, 4), float)


def test_metrics_over_settings_by_hand():
    labels = np.array([0, 1, 2])
    settings = np.array([[0, 1, 2], [0, 2, 2], [0, 0, 0]])
    np.testing.assert_allclose(macro_f1(settings, labels, 3), [1.0, (1 + 0 + 2 / 3) / 3, (0.5 + 0 + 0) / 3])
    np.testing.assert_allclose(micro_f1_positive(settings, labels, 3), [1.0, 0.5, 0.0])
