"""The trade-off explorer and the lesson through gradio_client, on the shipped models."""

import html
from pathlib import Path

import pytest
from gradio_client import Client

from epee_demo.model.registry import shipped_models
from epee_demo.analysis.whole_split import POINTS_CSV_HEADER, TRACE_CSV_HEADER
from epee_demo.ui.explorer_tab import OVERTHINKING_HEADERS, SETTING_VIEWS, setting_views
from epee_demo.ui.lesson_tab import build_lesson, lesson_example, step_outputs
from epee_demo.ui.prepared import prepare_split
from tests.browser.test_page import browser, page, unnamed_controls  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.slow

CONTROLS = {"tau": 0.2, "patience": 3, "threshold": 0.9, "divergence_tau": 0.05, "measure": "js", "layer": 6}


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def explore(client, endpoint, model="organ-system", split="test", rule="epee", **values):
    controls = {**CONTROLS, **values}
    return client.predict(model, split, rule, *controls.values(), api_name=f"/{endpoint}")


def current_point(tradeoff_plot) -> tuple:
    """(speed-up, accuracy) of the 'current setting' marker in the trade-off figure sent to the page."""
    import json

    figure = json.loads(tradeoff_plot["plot"])
    (marker,) = [t for t in figure["data"] if t.get("name") == "current setting"]
    return marker["x"][0], marker["y"][0]


def test_moving_tau_moves_the_operating_point(client):
    low = explore(client, "explore_set_tau", tau=0.01, patience=6)
    high = explore(client, "explore_set_tau", tau=0.6, patience=6)
    assert "tau=0.01" in low[0] and "tau=0.6" in high[0]
    assert current_point(high[1])[0] > current_point(low[1])[0]  # a looser threshold exits earlier
    assert low[3] != high[3]  # the exit histogram changed
    assert low[2]["headers"][0] == "series"  # the trade-off figure's data as a table


def test_switching_model_updates_slider_range_and_overthinking(app_url):
    client = Client(app_url, verbose=False)  # a session of its own: the slider ranges change in it
    out = explore(client, "explore_set_model", model="pneumonia")
    patience_update, layer_update = out[0], out[1]
    assert patience_update["maximum"] == 8 and layer_update["maximum"] == 8
    assert "of 8" in out[11]  # the operating-point summary, after the cleared example's 7 views
    assert out[-1]["headers"] == OVERTHINKING_HEADERS
    deepest = explore(client, "explore_set_patience", model="pneumonia", tau=0.0, patience=8)
    assert "patience=8" in deepest[0]  # the session's patience slider now reaches layer 8


def test_calibrate_returns_a_setting_and_test_views(client):
    report, split, *rest = client.predict("organ-system", "epee", *CONTROLS.values(), 0.05, "crc",
                                          api_name="/explore_calibrate")
    assert split == "test"
    assert "Chosen setting" in report and "**test**" in report
    tau_update, overthinking_plot, summary, tradeoff_plot = rest[0], rest[6], rest[8], rest[9]
    assert f"tau={tau_update['value']:g}" in summary and "test split" in summary
    assert "of 1324 examples" in overthinking_plot["plot"]  # the test split's overthinking
    assert current_point(tradeoff_plot)[0] > 1.0  # the chosen setting skips layers


def test_show_example_shows_its_input_and_layers(client):
    overthinking = prepare_split(shipped_models()["organ-system"].trace("test")).overthinking.destructive
    shipped, other = int(overthinking.nonzero()[0][0]), int((~overthinking).nonzero()[0][0])
    out = client.predict("organ-system", "test", "epee", *CONTROLS.values(), shipped,
                         api_name="/explore_show_example")
    index, shown, summary, entropy_plot, counter_plot, layers, rules = out
    assert index == shipped and f"Example {shipped}" in summary and "stops at **layer" in summary
    assert len(layers["data"]) == 6
    text = shipped_models()["organ-system"].split_inputs.get("test", shipped)
    assert html.escape(text) in shown and "Licence" in shown
    out = client.predict("organ-system", "test", "epee", *CONTROLS.values(), other, api_name="/explore_show_example")
    assert "does not ship with the model" in out[1] and len(out[5]["data"]) == 6  # its layers still shown


def test_open_example_fills_analyze_with_its_input_and_analyzes_it(app_url):
    client = Client(app_url, verbose=False)
    models = shipped_models()
    model = models["organ-system"]
    index = max(int(i) for i in prepare_split(model.trace("test")).overthinking.destructive.nonzero()[0]
                if model.split_inputs.get("test", i) is not None)  # the last gallery row whose input ships
    rules = ["epee"] * len(models)  # every Analyze view's rule dropdown
    note, notice, summary, *rest = client.predict("test", index, *rules, api_name="/explore_open_example")  # Tabs: no value
    assert note == model.split_inputs.get("test", index)
    gold = model.trace("test").label_names[model.trace("test").labels[index]]
    assert "stops at **layer" in summary and f"Known label: **{gold}**" in summary
    with pytest.raises(Exception, match="does not ship with this model"):
        client.predict("val", 0, *rules, api_name="/explore_open_example")  # no validation input ships
    with pytest.raises(Exception, match="between 0 and"):
        client.predict("test", 10**6, *rules, api_name="/explore_open_example")


@pytest.mark.parametrize("endpoint, header", [
    ("explore_export_trace", TRACE_CSV_HEADER), ("explore_export_points", POINTS_CSV_HEADER),
])
def test_csv_exports_have_their_header(client, endpoint, header):
    path = client.predict("organ-system", "val", api_name=f"/{endpoint}")
    first_line = Path(path).read_text(encoding="utf-8").splitlines()[0]
    assert first_line == ",".join(header)


def test_figure_export_is_a_standalone_html_page(client):
    path = explore(client, "explore_export_figure")
    text = Path(path).read_text(encoding="utf-8")
    assert path.endswith(".html") and "<html>" in text and "current setting" in text


def test_lesson_next_and_back(client):
    heading, text, *_ = client.predict(api_name="/lesson_next")
    assert heading.startswith("**Step 2 of")
    assert "entropy" in text.lower()
    heading, *_ = client.predict(api_name="/lesson_back")
    assert heading.startswith("**Step 1 of")


def test_the_lesson_opens_its_example_in_analyze(app_url):
    client = Client(app_url, verbose=False)
    model = shipped_models()["organ-system"]
    lesson = build_lesson(model, prepare_split(model.trace("test"), model.task.metric))
    note, *_ = client.predict(*["epee"] * len(shipped_models()), api_name="/lesson_open_example")
    assert note == model.split_inputs.get("test", lesson.index)


def test_lesson_example_overthinks_and_is_rescued():
    prep = prepare_split(shipped_models()["organ-system"].trace("test")).prep
    index = lesson_example(prep)
    assert prep.correct[index].any() and not prep.correct[index, -1]


def test_setting_views_overthinking_table_lists_the_destructive_examples():
    split = prepare_split(shipped_models()["pneumonia"].trace("val"))
    views = setting_views(split, "val", "entropy", {"tau": 0.3})
    assert set(views) == set(SETTING_VIEWS)
    assert len(views["examples"]) == split.overthinking.destructive_count
    summary = views["summary"]
    assert "L / mean exit layer" in summary and "saved fraction" in summary
    assert "tau 0.3 = 0.208 nats of raw entropy (tau × ln 2)" in summary  # DeeBERT's unit, 2 classes
    assert "PCEE-BERT's default" in setting_views(split, "val", "pcee", {"tau": 0.3, "patience": 2})["summary"]


@pytest.mark.browser
def test_selecting_an_overthinking_row_opens_that_example_in_the_browser(page):  # noqa: F811
    page.get_by_role("tab", name="Trade-off explorer").first.click()
    page.locator("#explore_point").first.wait_for(timeout=60_000)
    assert unnamed_controls(page) == []
    table = page.locator("#explore_overthinking_examples").first
    table.scroll_into_view_if_needed()
    second_example = prepare_split(shipped_models()["organ-system"].trace("test")).overthinking.destructive
    index = int(second_example.nonzero()[0][1])
    table.get_by_text(str(index), exact=True).first.click()
    page.wait_for_function(
        f"document.querySelector('#explore_example_summary').innerText.includes('Example {index} ')",
        timeout=30_000)
    assert page.locator("#explore_example_index input").first.input_value() == str(index)


def test_every_lesson_chart_has_a_table_and_a_name():
    model = shipped_models()["organ-system"]
    steps = build_lesson(model, prepare_split(model.trace("test"), model.task.metric)).steps
    for index, step in enumerate(steps):
        shown = step_outputs(steps, index)
        table = shown["table"]
        assert table["visible"] and len(table["value"]) > 0, step.title
        for plot, fig in zip((shown["plot_a"], shown["plot_b"]), step.figures):
            assert plot["label"] == fig.layout.title.text, step.title


@pytest.mark.parametrize("task, title", [("gad", "micro-F1 over the positive classes"), ("phee-event-type", "macro-F1")])
def test_relation_and_event_tasks_are_scored_by_their_own_metric(task, title):
    from epee_demo.analysis.task_metrics import per_layer

    model = shipped_models()[task]
    split = prepare_split(model.trace("test"), model.task.metric)
    views = setting_views(split, "test", "epee", {"tau": 0.2, "patience": 3})
    assert f"{title} **" in views["summary"] and "accuracy" in views["summary"]  # the metric first, accuracy beside it
    figure = views["tradeoff"]
    assert figure.layout.yaxis.title.text == title
    full = [t for t in figure.data if t.name == "full model"][0]
    assert full.y[0] == pytest.approx(per_layer(model.trace("test"), model.task.metric)[-1])
    epee = [row for row in model.metrics["test_rules_at_default"] if row["rule"] == "epee"][0]
    marker = [t for t in figure.data if t.name == "current setting"][0]
    assert marker.y[0] == pytest.approx(epee[model.task.metric], abs=1e-6)
    lesson = build_lesson(model, split)
    assert any(f"with {title} **" in step.text for step in lesson.steps)
