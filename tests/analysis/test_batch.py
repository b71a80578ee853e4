import numpy as np
import pytest

from epee_demo.analysis.batch import LABELLED_HEADERS, ROW_HEADERS, analyze_batch, concatenate
from epee_demo.rules import catalogue
from epee_demo.trace.exit_trace import ExitTrace


def confident(layers_of_class):
    """A trace [N, L, 3] where each row's layers answer the given classes with probability 0.9."""
    probs = np.full((len(layers_of_class), len(layers_of_class[0]), 3), 0.05, dtype=np.float32)
    for n, classes in enumerate(layers_of_class):
        for layer, c in enumerate(classes):
            probs[n, layer, c] = 0.9
    return probs


def test_fixed_depth_rows_summary_and_csv():
    trace = ExitTrace(confident([[0, 1, 1, 1], [2, 2, 0, 0]]), ("a", "b", "c"), labels=[1, 2])
    result = analyze_batch(trace, ["line 2", "line 3"], "fixed", {"layer": 2})
    assert result.headers == ROW_HEADERS + LABELLED_HEADERS
    assert result.rows == [["line 2", 2, "b", 0.9, "b", "yes", "b", "yes"],
                           ["line 3", 2, "c", 0.9, "a", "no", "c", "yes"]]
    assert result.mean_exit == 2.0 and result.speedup == 2.0 and result.saved_fraction == 0.5
    assert result.accuracy == 1.0 and result.full_accuracy == 0.5 and result.agreement == 0.5
    assert "2.00×" in result.summary_markdown() and "50.0%" in result.summary_markdown()
    assert result.csv_text().splitlines()[2] == "line 3,2,c,0.9,a,no,c,yes"


def test_matches_the_catalogue_for_every_rule_without_labels():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.3, size=(20, 6)).astype(np.float32)
    trace = ExitTrace(probs, tuple("abcd"))
    for rule in trace.available_rules():
        params = catalogue.RULES[rule].params
        result = analyze_batch(trace, [str(i) for i in range(20)], rule, params)
        exits, answered = catalogue.exit_answers(probs, rule, scores=trace.scores_for(rule), **params)
        np.testing.assert_array_equal(result.exits, exits)
        np.testing.assert_array_equal(result.answers, answered.argmax(-1))
        assert result.accuracy is None and result.headers == ROW_HEADERS
        assert result.speedup == pytest.approx(6 / exits.mean())


def test_partly_labelled_rows_count_only_the_labelled_ones():
    trace = ExitTrace(confident([[0, 0], [1, 1], [2, 2]]), ("a", "b", "c"), labels=[0, -1, 1])
    result = analyze_batch(trace, ["x", "y", "z"], "fixed", {"layer": 2})
    assert result.accuracy == 0.5 and result.rows[1][-2:] == ["", ""]


def test_concatenate_keeps_the_order_and_the_names_must_match():
    probs = confident([[0, 1], [1, 1], [2, 0]])
    whole = ExitTrace(probs, ("a", "b", "c"), labels=[0, 1, 2])
    joined = concatenate([whole.subset(slice(0, 2)), whole.subset(slice(2, 3))])
    np.testing.assert_array_equal(joined.probs, whole.probs)
    np.testing.assert_array_equal(joined.labels, whole.labels)
    with pytest.raises(ValueError):
        analyze_batch(whole, ["only one"], "epee", {})
