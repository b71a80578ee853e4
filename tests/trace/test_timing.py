import math

import numpy as np
import pytest

from epee_demo.rules import catalogue
from epee_demo.trace.early_exit import predict_early_exit
from epee_demo.trace.timing import LayerClock, MeasuredTiming, measure_one, traced_and_timed
from tests.trace.test_early_exit import NUM_LAYERS, tiny_classifier, token_inputs


def positive_finite(x):
    return math.isfinite(x) and x > 0


def test_measure_one():
    classifier = tiny_classifier()
    example = token_inputs()[0]
    timing = measure_one(classifier, example, "fixed", repeats=3, layer=2)
    assert isinstance(timing, MeasuredTiming)
    assert timing.exit_layer == 2 and timing.num_layers == NUM_LAYERS
    assert positive_finite(timing.seconds_full) and positive_finite(timing.seconds_early)
    assert timing.label.startswith("Measured on CPU")
    epee = measure_one(classifier, example, repeats=1)
    assert epee.exit_layer == predict_early_exit(classifier, [example]).exit_layers[0]
    with pytest.raises(ValueError):
        measure_one(classifier, example, repeats=0)


def test_traced_and_timed_times_the_trace_pass_up_to_the_exit_and_whole():
    classifier = tiny_classifier()
    example = token_inputs()[0]
    batch = classifier.to_device(classifier.preprocessor([example]))
    trace, timing = traced_and_timed(classifier, batch, "epee", labels=[1], tau=0.3, patience=1)
    reference = classifier.trace([example], labels=[1])
    np.testing.assert_allclose(trace.probs, reference.probs, atol=1e-6)
    assert trace.labels.tolist() == [1]
    assert timing.exit_layer == predict_early_exit(classifier, [example], tau=0.3, patience=1).exit_layers[0]
    assert timing.exit_layer == catalogue.exit_layers(trace.probs, "epee", tau=0.3, patience=1)[0]
    assert positive_finite(timing.seconds_to_exit)
    assert timing.seconds_to_exit <= timing.seconds_to_last_head <= timing.seconds_trace
    assert timing.label.startswith("Measured on CPU") and "one run of this analysis's own pass" in timing.label
    assert f"up to layer {timing.exit_layer} of {NUM_LAYERS}, where epee exits" in timing.label


def test_the_time_to_an_exit_grows_with_its_layer():
    """Read after each exit head of the same pass: a later exit is never reached sooner."""
    classifier = tiny_classifier()
    batch = classifier.to_device(classifier.preprocessor([token_inputs()[0]]))
    times = [traced_and_timed(classifier, batch, "fixed", layer=layer)[1] for layer in range(1, NUM_LAYERS + 1)]
    assert [t.exit_layer for t in times] == list(range(1, NUM_LAYERS + 1))
    clock = LayerClock(classifier.device)
    classifier.trace_prepared(batch, after_layer=clock.mark)
    elapsed = clock.elapsed()
    assert len(elapsed) == NUM_LAYERS and np.all(np.diff(elapsed) >= 0) and elapsed[0] > 0
