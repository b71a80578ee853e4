"""The page through gradio_client: launch, analyze, move a slider, bad input keeps the server up."""

import pytest
from gradio_client import Client

from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.ui import build_demo

pytestmark = pytest.mark.integration  # starts the page or its server process


@pytest.fixture(scope="module")
def client(tiny_shipped_model):
    demo = build_demo({"organ-system": tiny_shipped_model})
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(demo.local_url, verbose=False)
    demo.close()


def analyze(client, text):
    return client.predict(text, "epee", api_name="/analyze_organ_system")


def test_analyze_returns_every_view(client):
    (notice, summary, entropy_plot, counter_plot, class_plot, class_rows, layer_rows,
     rule_rows) = analyze(client, EXAMPLE_NOTES[0].text)
    assert "stops at **layer" in summary and "one run of this analysis's own pass" in notice
    assert entropy_plot is not None and counter_plot is not None and class_plot is not None
    assert len(class_rows["data"]) == 4 and len(class_rows["headers"]) == 13 + 2  # layer, 13 classes, marks
    assert len(layer_rows["data"]) == 4
    assert {row[0] for row in rule_rows["data"]} >= {"EPEE (entropy or patience)", "Patience (PABEE)"}


def move(client, control, rule="epee", **values):
    """Send a control move: the endpoint takes the rule and every control's value."""
    controls = {"tau": 0.2, "patience": 3, "threshold": 0.9, "divergence_tau": 0.05, "measure": "js", "layer": 4}
    controls.update(values)
    return client.predict(rule, *controls.values(), api_name=f"/set_{control}_organ_system")


def test_slider_changes_the_views_without_rerunning(client):
    analyze(client, EXAMPLE_NOTES[1].text)
    low = move(client, "tau", tau=0.0, patience=4)
    high = move(client, "tau", tau=1.0, patience=4)
    assert "stops at **layer 1 of 4" in high[0]  # Hn < 1 always holds for a non-uniform softmax
    assert low[0] != high[0]
    assert low[5]["data"] != high[5]["data"]  # the layer table
    assert [r[:-1] for r in low[4]["data"]] == [r[:-1] for r in high[4]["data"]]  # probabilities: rule-free
    assert [r[-1] for r in low[4]["data"]] != [r[-1] for r in high[4]["data"]]  # but the exit mark moves


def test_patience_slider_moves_the_exit(client):
    analyze(client, EXAMPLE_NOTES[2].text)
    one = move(client, "patience", tau=0.0, patience=1)[0]
    four = move(client, "patience", tau=0.0, patience=4)[0]
    assert "layer 4 of 4" in four  # the counter cannot reach 4 within 4 layers
    assert "layer 2 of 4" in one or "layer 3 of 4" in one or "layer 4 of 4" in one
    zero = move(client, "patience", tau=0.5, patience=0)[0]
    assert "layer 4 of 4" in zero  # patience 0 runs every layer, whatever tau (as in the PABEE code)


@pytest.mark.parametrize("bad", ["", "   \n\t ", "\x00\x01binary"])
def test_bad_notes_get_a_message_and_the_server_keeps_serving(client, bad):
    with pytest.raises(Exception) as err:
        analyze(client, bad)
    assert "note" in str(err.value).lower() or "binary" in str(err.value).lower()
    assert "stops at" in analyze(client, EXAMPLE_NOTES[3].text)[1]


def test_very_long_note_is_truncated_with_a_notice(client):
    notice, summary, *_ = analyze(client, EXAMPLE_NOTES[0].text * 40)
    assert "reads only the first 64 tokens" in notice
    assert "stops at" in summary
