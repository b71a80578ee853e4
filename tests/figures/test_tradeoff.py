import numpy as np
import pytest

from epee_demo.analysis import whole_split
from epee_demo.figures.tradeoff import (
    class_accuracy_figure, confusion_figure, exit_histogram_figure, figure_frame, figure_table, overthinking_figure,
    tradeoff_figure,
)
from tests.analysis.test_whole_split import hand_trace, random_trace


@pytest.fixture(scope="module")
def prepared():
    return whole_split.prepare(random_trace(n=300))


@pytest.fixture(scope="module")
def frontiers(prepared):
    return whole_split.all_frontiers(prepared)


def assert_labelled(fig):
    assert fig.layout.title.text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_tradeoff_figure_draws_frontiers_baselines_and_current_point(prepared, frontiers):
    rules = [r for r in frontiers if r != "fixed"]
    current = whole_split.operating_point(prepared, "epee", tau=0.1, patience=2)
    fig = tradeoff_figure(frontiers, current)
    assert_labelled(fig)
    assert len(fig.data) == len(rules) + 3  # frontiers, truncation line, full model, current setting
    names = [t.name for t in fig.data]
    assert names[-3:] == ["truncation (fixed depth)", "full model", "current setting"]
    assert list(fig.data[-1].x) == [current.speedup] and list(fig.data[-1].y) == [current.accuracy]
    epee = frontiers["epee"]
    np.testing.assert_allclose(fig.data[rules.index("epee")].x, epee.speedup[epee.pareto])
    assert list(fig.data[-2].x) == [1.0]

    with_grid = tradeoff_figure(frontiers, show_all=True, x="saved_fraction")
    assert len(with_grid.data) == 2 * len(rules) + 2
    assert len(with_grid.data[0].x) == len(frontiers[rules[0]].params)
    assert max(max(t.x) for t in with_grid.data) < 1.0  # saved fractions, not speed-ups

    only_epee = tradeoff_figure({"epee": epee})
    assert len(only_epee.data) == 1
    with pytest.raises(ValueError):
        tradeoff_figure(frontiers, x="latency")


def test_per_setting_figures(prepared):
    view = whole_split.evaluate_setting(prepared, "maxprob", threshold=0.8)
    hist = exit_histogram_figure(view.exit_counts, view.oracle_counts, "maxprob")
    assert len(hist.data) == 2 and list(hist.data[0].y) == view.exit_counts.tolist()
    assert len(exit_histogram_figure(view.exit_counts).data) == 1
    classes = class_accuracy_figure(view.class_accuracy, "maxprob")
    assert len(classes.data) == 2 and len(classes.data[1].y) == len(prepared.trace.label_names)
    np.testing.assert_allclose(classes.data[1].x, view.class_accuracy.early)
    confusion = confusion_figure(view.confusion, prepared.trace.label_names)
    assert len(confusion.data) == 1 and confusion.data[0].type == "heatmap"
    np.testing.assert_array_equal(np.array(confusion.data[0].z), view.confusion)
    changed = int(view.confusion.sum() - np.trace(view.confusion))
    assert f"({changed} changed)" in confusion.layout.title.text
    for fig in (hist, classes, confusion):
        assert_labelled(fig)


def test_overthinking_figure_by_hand():
    fig = overthinking_figure(whole_split.overthinking(hand_trace()))
    assert_labelled(fig)
    assert len(fig.data) == 2
    assert list(fig.data[0].y) == [1, 2, 0, 0] and list(fig.data[1].y) == [0, 0, 2, 0]
    assert "1 of 3 examples" in fig.layout.title.text


def test_figure_table_carries_the_plotted_values(prepared, frontiers):
    fig = tradeoff_figure(frontiers, whole_split.operating_point(prepared, "entropy", tau=0.2))
    headers, rows = figure_table(fig)
    assert headers == ["series", "speed-up (L / mean exit layer)", "accuracy", "note"]
    assert len(rows) == sum(len(t.x) for t in fig.data)
    assert rows[-1][0] == "current setting" and rows[-1][3] == "Entropy (DeeBERT): tau=0.2"
    frame = figure_frame(fig)
    assert list(frame.columns) == headers and frame.values.tolist() == rows

    view = whole_split.evaluate_setting(hand_trace(), "maxprob", threshold=0.75)
    headers, rows = figure_table(confusion_figure(view.confusion, ("x", "y", "z")))
    assert headers == ["series", "answer of the full model", "answer at the exit", "value"]
    assert len(rows) == 9 and ["", "z", "y", 1] in rows

    headers, rows = figure_table(class_accuracy_figure(view.class_accuracy, "maxprob"))
    assert headers[1:3] == ["gold class", "accuracy"]
    assert rows[0][:3] == ["full model", "x (1)", 1.0]


def test_frontier_lines_join_only_settings_that_exist(frontiers):
    """No step corner and no run-on past a rule's fastest setting: every vertex is a grid setting."""
    fig = tradeoff_figure(frontiers)
    rules = [r for r in frontiers if r != "fixed"]
    for rule, trace in zip(rules, fig.data):
        f = frontiers[rule]
        assert trace.line.shape in (None, "linear")
        settings = set(zip(np.round(f.speedup, 9), np.round(f.accuracy, 9)))
        drawn = set(zip(np.round(trace.x, 9), np.round(trace.y, 9)))
        assert drawn <= settings
        assert max(trace.x) == pytest.approx(f.speedup.max())  # the fastest setting, not speed-up L


def test_every_tradeoff_figure_is_valid_plotly(prepared, frontiers):
    """Built unvalidated for speed (``build_figure``): rebuilt with validation, each must pass."""
    import plotly.graph_objects as go

    view = whole_split.evaluate_setting(prepared, "epee", tau=0.1, patience=2)
    figures = [tradeoff_figure(frontiers, view.point, show_all=True),
               exit_histogram_figure(view.exit_counts, view.oracle_counts, "epee"),
               class_accuracy_figure(view.class_accuracy, "epee"),
               confusion_figure(view.confusion, prepared.trace.label_names),
               overthinking_figure(whole_split.overthinking(prepared))]
    for fig in figures:
        go.Figure(fig.to_dict())


def test_tradeoff_figure_plots_and_names_the_task_metric():
    prep = whole_split.prepare(random_trace(n=200, seed=5), "macro_f1")
    frontiers = whole_split.all_frontiers(prep)
    current = whole_split.operating_point(prep, "epee", tau=0.1, patience=2)
    fig = tradeoff_figure(frontiers, current)
    assert fig.layout.yaxis.title.text == "macro-F1" and fig.layout.title.text.startswith("Macro-F1 against")
    assert list(fig.data[-1].y) == [current.score] and current.score != current.accuracy
    epee = frontiers["epee"]
    line = fig.data[[r for r in frontiers if r != "fixed"].index("epee")]
    np.testing.assert_allclose(line.y, epee.score[epee.pareto])
    assert "macro-F1" in line.hovertemplate
    assert figure_table(fig)[0][2] == "macro-F1"
