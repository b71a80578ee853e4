import numpy as np
import pytest

from epee_demo.analysis.one_example import analyze_example
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.ui.controls import default_settings


def one_example(classes, confidence, gold=-1, names=("a", "b", "c")):
    probs = []
    for c, p in zip(classes, confidence):
        row = np.full(len(names), (1 - p) / (len(names) - 1))
        row[c] = p
        probs.append(row)
    return ExitTrace(np.array([probs]), names, labels=[gold])


def test_analysis_reports_exits_counters_and_final_answer():
    trace = one_example([0, 0, 1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.5, 0.99])
    settings = default_settings(6)
    settings["epee"] = {"tau": 0.1, "patience": 2}
    analysis = analyze_example(trace, settings, "epee")
    assert analysis.selected.exit_layer == 5
    assert analysis.selected.label == "b"
    assert analysis.final_label == "b"
    assert analysis.patience_counter.tolist() == [0, 1, 0, 1, 2, 3]
    assert analysis.rule_counter.tolist() == [0, 1, 0, 1, 2, 3]
    assert analysis.exits["maxprob"].exit_layer == 6
    assert analysis.gold_label is None and not analysis.overthinks


def test_overthinking_needs_right_then_wrong():
    trace = one_example([0, 0, 1], [0.9, 0.9, 0.9], gold=0)
    settings = default_settings(3)
    settings["entropy"] = {"tau": 0.4}  # Hn of a 0.9/0.05/0.05 split is 0.36
    analysis = analyze_example(trace, settings, "entropy")
    assert analysis.overthinks
    assert analysis.exits["entropy"].exit_layer == 1


def test_pcee_counter_follows_its_tau():
    trace = one_example([0, 0, 0], [0.99, 0.99, 0.5])
    settings = default_settings(3)
    settings["pcee"] = {"tau": 0.2, "patience": 3}
    analysis = analyze_example(trace, settings, "pcee")
    assert analysis.rule_counter.tolist() == [1, 2, 0]
    assert analysis.selected.exit_layer == 3


def test_learned_rules_without_scores_are_not_offered():
    trace = one_example([0, 1], [0.6, 0.6])
    assert "jei" not in trace.available_rules()
    with pytest.raises(ValueError, match="not available"):
        analyze_example(trace, default_settings(2), "jei")


def test_memorized_layer_where_labels_are_known():
    analysis = analyze_example(one_example([1, 0, 0, 0], [0.9] * 4, gold=0), default_settings(4), "epee")
    assert analysis.memorized_layer == 2
    wrong_at_end = analyze_example(one_example([0, 0, 1], [0.9] * 3, gold=0), default_settings(3), "epee")
    assert wrong_at_end.memorized_layer == 4
    assert analyze_example(one_example([0, 1], [0.9] * 2), default_settings(2), "epee").memorized_layer is None


def test_jei_view_shows_the_sequential_exit_probability_a_l():
    trace = one_example([0, 1, 1, 1], [0.5, 0.5, 0.5, 0.5])
    trace = ExitTrace(trace.probs, trace.label_names, trace.labels,
                      exit_scores={"jei": np.array([[0.4, 0.45, 0.9, 0.9]]), "consistentee": np.zeros((1, 4))})
    analysis = analyze_example(trace, default_settings(4), "jei")
    np.testing.assert_allclose(analysis.rule_counter[:2], [0.4, 0.45 / 0.6])  # not the raw gates 0.4, 0.45
    assert analysis.selected.exit_layer == 2 and "a_l" in analysis.rule_counter_name


def test_pcee_answers_with_its_run_mean_in_the_view():
    # layers 2 and 3 confident, for b then a; their mean favours b (0.9 + 0.05 against 0.05 + 0.85)
    probs = np.array([[[0.34, 0.33, 0.33], [0.05, 0.9, 0.05], [0.85, 0.1, 0.05], [0.3, 0.4, 0.3]]])
    trace = ExitTrace(probs, ("a", "b", "c"), labels=[1])
    settings = {**default_settings(4), "pcee": {"tau": 0.7, "patience": 2}}
    analysis = analyze_example(trace, settings, "pcee")
    assert analysis.exits["pcee"].exit_layer == 3
    assert analysis.exits["pcee"].label == "b"  # the exit layer alone would answer a
    assert analysis.exits["pcee"].probability == pytest.approx(0.5)


def test_a_setting_change_reruns_only_that_rule(monkeypatch):
    """Rule runs are kept per trace and setting: a slider move reruns the one rule it sets, and the
    views equal those computed afresh."""
    from epee_demo.analysis.one_example import _run
    from epee_demo.rules import catalogue

    calls = []
    run_rule = catalogue.run_rule
    monkeypatch.setattr(catalogue, "run_rule", lambda probs, rule, **kw: calls.append(rule) or run_rule(probs, rule, **kw))
    trace = one_example([0, 0, 1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.5, 0.99])
    settings = default_settings(6)
    analyze_example(trace, settings, "epee")
    assert sorted(calls) == sorted(trace.available_rules())
    calls.clear()
    moved = {**settings, "epee": {"tau": 0.6, "patience": 2}}
    kept = analyze_example(trace, moved, "epee")
    assert calls == ["epee"]
    calls.clear()
    twin = one_example([0, 0, 1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.5, 0.99])  # equal values, another trace
    fresh = analyze_example(twin, moved, "epee")
    assert sorted(calls) == sorted(trace.available_rules())
    assert {r: (e.exit_layer, e.label) for r, e in kept.exits.items()} == {r: (e.exit_layer, e.label)
                                                                          for r, e in fresh.exits.items()}
    run = _run(trace, "epee", {"tau": 0.6, "patience": 2})
    with pytest.raises(ValueError):
        run["exits"][0] = 1  # kept runs are read-only
