import math

import pytest

from epee_demo.trace.early_exit import predict_early_exit
from epee_demo.trace.timing import MeasuredTiming, measure_one
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
