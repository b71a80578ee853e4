"""The one documented endpoint, /trace, through gradio_client against the launched page."""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from epee_demo.rules import catalogue
from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.ui.api import trace_endpoint
from tests.conftest import launched_demo

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def app(tiny_shipped_model, tiny_image_shipped_model):
    with launched_demo({"organ-system": tiny_shipped_model, "pneumonia": tiny_image_shipped_model}) as demo:
        yield demo


@pytest.fixture(scope="module")
def client(app):
    return Client(app.local_url, verbose=False)


def test_use_via_api_lists_trace_alone_with_named_parameters(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/trace"] and not api["unnamed_endpoints"]
    names = [p["parameter_name"] for p in api["named_endpoints"]["/trace"]["parameters"]]
    assert names[:4] == ["task", "text", "image", "rule"]
    assert not any(re.fullmatch(r"param_\d+", n) for n in names)


def test_the_rule_parameters_are_the_catalogues():
    parameters = set(inspect.signature(trace_endpoint({})).parameters)
    rule_params = {name for spec in catalogue.RULES.values() for name in spec.params}
    assert parameters == {"task", "text", "image", "rule", "timing_repeats"} | rule_params


def test_trace_of_a_note(client, tiny_shipped_model):
    reply = client.predict(task="organ-system", text=EXAMPLE_NOTES[0].text, api_name="/trace")
    reference = tiny_shipped_model.classifier.trace([EXAMPLE_NOTES[0].text])
    layers, classes = reference.probs.shape[1:]
    assert reply["num_layers"] == layers and len(reply["label_names"]) == classes
    np.testing.assert_allclose(reply["probabilities"], reference.probs[0], atol=1e-6)
    assert reply["predictions"] == [reference.label_names[c] for c in reference.probs[0].argmax(-1)]
    np.testing.assert_allclose(reply["normalized_entropy"], catalogue.normalized_entropy(reference.probs[0]), atol=1e-6)
    assert reply["patience_counter"] == catalogue.patience_counters(reference.probs)[0].tolist()
    assert reply["rule"] == "epee"
    for rule, entry in reply["rules"].items():  # every rule at its default setting
        assert entry["params"] == {**catalogue.RULES[rule].params, **({"layer": layers} if rule == "fixed" else {})}
        assert entry["exit_layer"] == int(catalogue.exit_layers(reference.probs, rule, scores=reference.scores_for(rule), **entry["params"])[0])
    timing = reply["timing"]
    assert timing["device"].startswith("CPU") and 0 < timing["to_exit_layer_ms"] <= timing["to_last_head_ms"] <= timing["trace_ms"]
    assert timing["exit_layer"] == reply["rules"]["epee"]["exit_layer"] and timing["runs"] == 1


def test_a_rule_and_its_parameters_by_name_and_timing_on_request(client, tiny_shipped_model):
    reply = client.predict(task="organ-system", text=EXAMPLE_NOTES[1].text, rule="patience", patience=0,
                           timing_repeats=3, api_name="/trace")
    assert reply["rule"] == "patience" and reply["rules"]["patience"]["params"] == {"patience": 0}
    assert reply["rules"]["patience"]["exit_layer"] == reply["num_layers"]  # patience 0 runs every layer
    assert reply["timing"]["median"]["repeats"] == 3 and reply["timing"]["median"]["full_model_ms"] > 0


def test_trace_of_an_uploaded_image(client, tmp_path):
    path = tmp_path / "xray.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)).save(path)
    reply = client.predict(task="pneumonia", image=handle_file(str(path)), rule="maxprob", threshold=0.6,
                           api_name="/trace")
    assert reply["rules"]["maxprob"]["params"] == {"threshold": 0.6}
    assert any("40×40" in n for n in reply["notices"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="nonsense", text="x"), "task: choose one of organ-system, pneumonia"),
    (dict(task="organ-system", text="Chest pain.", rule="nonsense"), "rule: choose one of"),
    (dict(task="organ-system", text="Chest pain.", rule="maxprob", patience=2), "patience: not a parameter of maxprob"),
    (dict(task="organ-system", text="Chest pain.", rule="epee", tau="high"), "tau: must be a finite number"),
    (dict(task="organ-system", text="Chest pain.", rule="epee", patience=1.5), "patience must be a whole number"),
    (dict(task="organ-system", text="Chest pain.", rule="fpabee", measure="euclid"), "unknown divergence"),
    (dict(task="organ-system", text="Chest pain.", timing_repeats=100), "timing_repeats: must be a whole number"),
    (dict(task="organ-system", text="   "), "Please paste a clinical note"),
    (dict(task="pneumonia", text="Chest pain."), "task pneumonia reads image"),
])
def test_bad_calls_get_a_message_and_the_server_keeps_serving(client, kwargs, message):
    with pytest.raises(Exception) as err:
        client.predict(**kwargs, api_name="/trace")
    assert message in str(err.value)
    assert client.predict(task="organ-system", text="Chest pain.", api_name="/trace")["rules"]


@pytest.mark.parametrize("image", [{"path": "/etc/hostname"}, "/etc/hostname", {"path": "http://example.com/x.png"}])
def test_a_server_path_or_an_address_is_refused_as_an_image(app, tiny_image_shipped_model, image):
    """gradio_client uploads a local file first; a raw call naming a server file or a URL is refused unread."""
    import gradio as gr

    with pytest.raises(gr.Error, match="uploaded to this demo"):
        trace_endpoint({"pneumonia": tiny_image_shipped_model})(task="pneumonia", image=image)


def test_the_readme_snippet_runs_against_the_launched_app(app, capsys):
    """The gradio_client example in the README, run as written (its URL pointed at this app)."""
    snippet = README.read_text().split("<!-- trace-api-snippet -->")[1].split("```python")[1].split("```")[0]
    exec(compile(snippet.replace("http://127.0.0.1:7860/", app.local_url), "README snippet", "exec"), {})
    printed = capsys.readouterr().out
    assert "EPEE (entropy or patience)" in printed and "exits at layer" in printed
