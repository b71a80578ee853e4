import numpy as np
import plotly.graph_objects as go
import pytest

from epee_demo.analysis.one_example import analyze_example
from epee_demo.figures import build_figure
from epee_demo.figures.layers import (
    LAYER_TABLE_HEADERS, RULE_TABLE_HEADERS, class_heatmap_figure_dicts, class_table, counter_figure, entropy_figure,
    layer_table, rule_table, summary_markdown,
)
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.ui.controls import default_settings


def heatmap(analysis):
    return build_figure(*class_heatmap_figure_dicts(analysis))


def analysis_of(gold=-1):
    probs = np.array([[[0.4, 0.3, 0.3], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05]]])
    return analyze_example(ExitTrace(probs, ("x", "y", "z"), labels=[gold]), default_settings(4), "epee")


def test_entropy_figure_has_curve_tau_line_and_exit_marker():
    analysis = analysis_of()
    fig = entropy_figure(analysis, tau=0.4)
    assert list(fig.data[0].x) == [1, 2, 3, 4]
    np.testing.assert_allclose(fig.data[0].y, analysis.entropy)
    shapes = fig.layout.shapes
    assert any(s.y0 == 0.4 and s.y1 == 0.4 for s in shapes)  # tau line
    assert any(s.x0 == analysis.selected.exit_layer for s in shapes)  # exit marker


def test_counter_figure_shows_counter_and_patience_line():
    analysis = analysis_of()
    fig = counter_figure(analysis, 2)
    assert list(fig.data[0].y) == analysis.patience_counter.tolist()
    assert any(s.y0 == 2 for s in fig.layout.shapes)


def test_tables_carry_the_chart_data_as_text():
    analysis = analysis_of(gold=0)
    rows = layer_table(analysis)
    assert len(rows) == 4 and all(len(r) == len(LAYER_TABLE_HEADERS) for r in rows)
    assert rows[0][1] == "x ✓" and rows[3][1] == "y ✗"
    assert "epee" in rows[analysis.selected.exit_layer - 1][-1]
    assert [r[5] for r in rows] == [int(c) for c in analysis.rule_counter]  # EPEE watches the PABEE counter
    rules = rule_table(analysis)
    assert all(len(r) == len(RULE_TABLE_HEADERS) for r in rules)
    text = summary_markdown(analysis)
    assert f"layer {analysis.selected.exit_layer} of 4" in text
    assert "Overthinking" in text


def test_summary_gives_the_nats_value_both_speed_up_forms_and_the_rule_note():
    probs = np.array([[[0.4, 0.3, 0.3], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05]]])
    settings = {**default_settings(4), "epee": {"tau": 0.9, "patience": 3}}
    text = summary_markdown(analyze_example(ExitTrace(probs, ("x", "y", "z")), settings, "epee"))
    assert f"tau 0.9 = {0.9 * np.log(3):.3g} nats" in text  # DeeBERT's unit for 3 classes
    assert "L / exit layer" in text and "saved fraction" in text
    pcee = analyze_example(ExitTrace(probs, ("x", "y", "z")), default_settings(4), "pcee")
    assert "mean distribution of its confident run" in summary_markdown(pcee)
    fpabee = analyze_example(ExitTrace(probs, ("x", "y", "z")), default_settings(4), "fpabee")
    assert "its released code differs" in summary_markdown(fpabee) and "nats of raw entropy" not in summary_markdown(fpabee)


def test_heatmap_shows_every_class_at_every_layer_with_exit_and_gold_marked():
    analysis = analysis_of(gold=1)
    fig = heatmap(analysis)
    np.testing.assert_allclose(fig.data[0].z, analysis.probs)  # [L, C]: every class, not only the top one
    assert list(fig.data[0].x) == ["x", "y", "z"] and list(fig.data[0].y) == [1, 2, 3, 4]
    exit_box, gold_box = fig.layout.shapes
    assert exit_box.y0 == analysis.selected.exit_layer - 0.5 and exit_box.y1 == analysis.selected.exit_layer + 0.5
    assert gold_box.x0 == 0.5 and gold_box.x1 == 1.5  # class "y"
    headers, rows = class_table(analysis)
    assert headers == ["layer", "x", "y (gold)", "z", "marks"]
    np.testing.assert_allclose([r[1:4] for r in rows], analysis.probs, atol=5e-4)
    assert [i + 1 for i, r in enumerate(rows) if r[-1]] == [analysis.selected.exit_layer]
    no_gold = heatmap(analysis_of())
    assert len(no_gold.layout.shapes) == 1


@pytest.mark.parametrize("rule", ["epee", "pcee", "maxprob", "fpabee"])
def test_every_layer_figure_is_valid_plotly(rule):
    """The figures are built unvalidated for speed (``build_figure``): rebuilt with validation, they must pass."""
    probs = np.array([[[0.4, 0.3, 0.3], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05]]])
    analysis = analyze_example(ExitTrace(probs, ("x", "y", "z"), labels=[2]), default_settings(4), rule)
    for fig in (entropy_figure(analysis, 0.3), counter_figure(analysis, 2), heatmap(analysis)):
        go.Figure(fig.to_dict())  # raises on any invalid property


def test_depth_note_reads_the_shipped_metrics(tmp_path):
    import json

    from epee_demo.data.tasks import TASKS
    from epee_demo.figures.layers import depth_markdown
    from epee_demo.model.registry import ShippedModel

    folder = tmp_path / "retina"
    folder.mkdir()
    model = ShippedModel(TASKS["retina"], folder)
    assert depth_markdown(model.metrics, model.task.depth_note) == ""
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy_per_layer": [0.41, 0.5, 0.555, 0.53]}))
    model = ShippedModel(TASKS["retina"], folder)
    note = depth_markdown(model.metrics, model.task.depth_note)
    assert note.startswith("**Depth on this model** (test split): layer 1 scores 0.410, the best exit 0.555 "
                           "(layer 3), the last 0.530: the exits span 14.5 points.")
    assert note.endswith(TASKS["retina"].depth_note)


@pytest.mark.parametrize("rule", ["epee", "pcee", "maxprob", "fpabee", "calm"])
@pytest.mark.parametrize("gold", [-1, 2])
def test_figure_json_is_what_plotly_writes_for_the_same_figure(rule, gold):
    """The Analyze tab sends ``figure_json`` of the figures' dicts, not plotly's ``to_json`` of the built
    figure: both must give the same JSON, NaN (CALM's layer 1) included."""
    import json

    from epee_demo.figures import build_figure, figure_json
    from epee_demo.figures.layers import class_heatmap_figure_dicts, counter_figure_dicts, entropy_figure_dicts

    probs = np.array([[[0.4, 0.3, 0.3], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05]]])
    cosine = np.array([[np.nan, 0.5, 0.97, 0.2]])
    analysis = analyze_example(ExitTrace(probs, ("x", "y", "z"), labels=[gold], state_cosine=cosine),
                               default_settings(4), rule)
    for data, layout in (entropy_figure_dicts(analysis, 0.3), counter_figure_dicts(analysis, 2),
                         class_heatmap_figure_dicts(analysis)):
        assert json.loads(figure_json(data, layout)) == json.loads(build_figure(data, layout).to_json())


def test_figure_json_writes_numpy_values_as_their_lists():
    import json

    from epee_demo.figures import figure_json

    arrays = json.loads(figure_json([dict(type="bar", y=np.arange(3), x=np.array([0.5, np.nan, 2.0]))], {}))
    lists = json.loads(figure_json([dict(type="bar", y=[0, 1, 2], x=[0.5, None, 2.0])], {}))
    assert arrays == lists and arrays["data"][0]["y"] == [0, 1, 2]
