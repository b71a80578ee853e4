"""The relation and event tasks end to end on a tiny random model: ``epee-demo train`` on a
synthetic DDI corpus, the folder it writes, and the page's marked-text input on that folder."""

import json

import pytest
from gradio_client import Client

from epee_demo.tools.cli import main
from epee_demo.data.marked import MarkError
from epee_demo.model.registry import ShippedModel
from epee_demo.data.tasks import TASKS
from epee_demo.model.folder import read_card, read_spec
from epee_demo.ui.analyze_tab import analyze_marked, mark_check
from tests.conftest import launched_demo, tiny_bert_base
from tests.data.test_relation_data import _corpus


@pytest.fixture(scope="module")
def ddi_folder(tmp_path_factory):
    """A DDI model trained for one epoch by ``epee-demo train`` around a tiny random BERT."""
    root = tmp_path_factory.mktemp("ddi")
    base = tiny_bert_base(root / "base", num_layers=3)
    _corpus(root / "data")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("EPEE_DATA_DIR", str(root / "data"))
    folder = root / "ddi"
    try:
        assert main(["train", "--task", "ddi", "--base", str(base), "--out", str(folder), "--quiet"]) == 0
    finally:
        monkeypatch.undo()
    return folder


def test_train_writes_the_task_metric_and_the_examples(ddi_folder):
    metrics = json.loads((ddi_folder / "metrics.json").read_text())
    assert metrics["metric"] == "micro_f1_positive" and metrics["split_sizes"]["test"] == 4
    assert len(metrics["test_micro_f1_positive_per_layer"]) == 3
    rules = {row["rule"]: row for row in metrics["test_rules_at_default"]}
    assert {"epee", "patience", "entropy"} <= set(rules) and "micro_f1_positive" in rules["epee"]
    card = read_card(ddi_folder)
    assert "Micro-F1 over the positive classes of every exit" in card and "Non-commercial use only" in card
    examples = json.loads((ddi_folder / "examples.json").read_text())
    assert "CC BY-NC 4.0" in examples["licence"] and examples["examples"]
    assert all(TASKS["ddi"].marks.parse(e["text"]) for e in examples["examples"])


def test_marked_input_is_checked_before_the_model_runs(ddi_folder):
    model = ShippedModel(TASKS["ddi"], ddi_folder)
    trace, _ = analyze_marked(model, "[DRUG]Aspirin[/DRUG] raises [DRUG]warfarin[/DRUG] levels.")
    assert trace.num_examples == 1 and trace.num_layers == 3
    with pytest.raises(MarkError, match="is never closed"):
        analyze_marked(model, "[DRUG]Aspirin raises warfarin levels.")
    segments, message = mark_check(TASKS["ddi"].marks, "[DRUG]a[/DRUG] and [DRUG]b[/DRUG]")
    assert segments == [("a", "DRUG"), (" and ", None), ("b", "DRUG")] and message.startswith("✓")
    segments, message = mark_check(TASKS["ddi"].marks, "[DRUG]a[/DRUG] and b")
    assert "2 needed" in message and TASKS["ddi"].marks.example in message


def test_page_shows_the_examples_and_keeps_serving_after_bad_marks(ddi_folder):
    with launched_demo({"ddi": ShippedModel(TASKS["ddi"], ddi_folder)}) as demo:
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception, match="too many \\[DRUG\\] marks"):
            client.predict(task="ddi", text="[DRUG]a[/DRUG] [DRUG]b[/DRUG] [DRUG]c[/DRUG]", api_name="/trace")
        reply = client.predict(task="ddi", text="[DRUG]Aspirin[/DRUG] with [DRUG]warfarin[/DRUG].", api_name="/trace")
        assert reply["label_names"] == read_spec(ddi_folder).label_names
        assert len(reply["predictions"]) == reply["num_layers"] and reply["rule"] == "epee"
        highlight, check = client.predict("[DRUG]a[/DRUG] [DRUG]b", api_name="/check_marks_ddi")
        assert "never closed" in check
