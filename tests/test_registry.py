"""The shipped models in assets/: they load, reproduce their cached traces, and read the example notes."""

import numpy as np
import pytest

from epee_demo.examples import EXAMPLE_NOTES
from epee_demo.registry import shipped_models
from epee_demo.tasks import TASKS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def organ_system():
    return shipped_models()["organ-system"]


def test_both_tasks_are_shipped():
    assert set(shipped_models()) == {"organ-system", "pneumonia"}


def test_shipped_text_model_reads_the_example_notes(organ_system):
    trace = organ_system.classifier.trace([n.text for n in EXAMPLE_NOTES])
    final = [trace.label_names[c] for c in trace.predictions[:, -1]]
    assert final == [n.expected_label for n in EXAMPLE_NOTES]


def test_shipped_text_model_reproduces_its_cached_test_trace(organ_system):
    test = TASKS["organ-system"].load_dataset().test
    index = np.arange(0, len(test), 25)
    fresh = organ_system.classifier.trace([test.inputs[i] for i in index], [test.labels[i] for i in index])
    cached = organ_system.trace("test").subset(index)
    np.testing.assert_array_equal(fresh.labels, cached.labels)
    assert (fresh.predictions == cached.predictions).mean() > 0.99
    np.testing.assert_allclose(fresh.probs, cached.probs, atol=5e-3)  # the cache stores float16


def test_shipped_metrics_match_the_cached_trace(organ_system):
    trace = organ_system.trace("test")
    accuracy = (trace.predictions == trace.labels[:, None]).mean(axis=0)
    np.testing.assert_allclose(accuracy, organ_system.metrics["test_accuracy_per_layer"], atol=2e-3)
