"""The Batch tab's handlers on a tiny shipped model: one model run per batch, rule changes from its trace."""

import numpy as np
import pytest

from epee_demo.analysis.batch import analyze_batch
from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.errors import InputError
from epee_demo.model.multi_exit import MultiExitClassifier
from epee_demo.rules import catalogue
from epee_demo.ui import batch_tab
from epee_demo.ui.controls import CONTROLS, _start_value, control_values, default_settings
from epee_demo.ui.files import AppFolder


@pytest.fixture
def folder(tmp_path):
    app_folder = AppFolder(tmp_path / "app")
    yield app_folder
    app_folder.remove()


@pytest.fixture
def upload(tmp_path, monkeypatch):
    """Writes bytes into the app's upload folder (as Gradio stores an upload) and gives its file data."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))

    def write(data: bytes, name="upload.csv") -> dict:
        path = tmp_path / "gradio" / "abc123" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {"path": str(path), "meta": {"_type": "gradio.FileData"}}

    return write


def values(rule, num_layers, **params) -> list:
    """Control values in ``CONTROLS`` order: the page's start values, showing ``rule`` at its defaults and ``params``."""
    shown = {name: _start_value(name, num_layers) for name in CONTROLS}
    shown.update(control_values(rule, {**default_settings(num_layers)[rule], **params}))
    return [shown[name] for name in CONTROLS]


def notes_csv() -> bytes:
    rows = "".join(f'"{n.text}",{n.expected_label}\n' for n in EXAMPLE_NOTES)
    return ("text,label\n" + rows).encode()


def test_a_batch_runs_the_model_once_in_chunks_and_rules_recompute_from_its_trace(
        tiny_shipped_model, folder, upload, monkeypatch):
    models = {"organ-system": tiny_shipped_model}
    layers = tiny_shipped_model.classifier.num_layers
    monkeypatch.setattr(batch_tab, "BATCH_CHUNK", 2)
    calls = []
    done = batch_tab.on_run(models, folder, "organ-system", upload(notes_csv()), "epee", values("epee", layers),
                            progress=lambda step, **kw: calls.append(step))
    n = len(EXAMPLE_NOTES)
    assert calls == [(start, n) for start in range(0, n, 2)]
    batch = done["batch"]
    whole = tiny_shipped_model.classifier.trace([e.text for e in EXAMPLE_NOTES])
    np.testing.assert_allclose(batch.trace.probs, whole.probs, atol=1e-5)
    starts = np.cumsum([2] + [e.text.count("\n") + 1 for e in EXAMPLE_NOTES[:-1]])  # a note may span lines
    assert batch.names == [f"line {start}" for start in starts]
    assert len(done["table"]) == n and "labelled rows" in done["summary"]
    saved = batch_tab.Path(done["download"])
    assert batch_tab.Path(folder.tmp) in saved.parents
    assert saved.read_text() == analyze_batch(batch.trace, batch.names, "epee", {"tau": 0.2, "patience": 2}).csv_text()

    def no_model(*args, **kwargs):
        raise AssertionError("a rule change must not run the model")

    monkeypatch.setattr(MultiExitClassifier, "trace", no_model)
    changed = batch_tab.on_setting(models, folder, batch, "fixed", values("fixed", layers, layer=1))
    assert set(changed["table"]["exit layer"]) == {1}
    assert f"speed-up **{layers:.2f}×**" in changed["summary"]


@pytest.mark.parametrize("content, message", [
    (b"note\nhello\n", "no `text` column"),
    (b"text,label\nhello,not-a-class\n", "Line 2: the label is not one of"),
    (b"\xff\xfe t e x t", "not UTF-8"),
])
def test_malformed_uploads_get_a_message(tiny_shipped_model, folder, upload, content, message):
    models = {"organ-system": tiny_shipped_model}
    with pytest.raises(InputError, match=message):
        batch_tab.on_run(models, folder, "organ-system", upload(content), "epee", values("epee", 4))


def test_only_uploaded_files_known_models_and_checked_settings(tiny_shipped_model, folder, upload, tmp_path):
    models = {"organ-system": tiny_shipped_model}
    outside = tmp_path / "server.csv"
    outside.write_bytes(b"text\nhello\n")
    with pytest.raises(InputError, match="uploaded to this demo"):
        batch_tab.on_run(models, folder, "organ-system", {"path": str(outside)}, "epee", values("epee", 4))
    with pytest.raises(InputError, match="Model: choose one of"):
        batch_tab.on_run(models, folder, "no-such", upload(b"text\nhi\n"), "epee", values("epee", 4))
    with pytest.raises(InputError, match="tau"):
        batch_tab.on_run(models, folder, "organ-system", upload(b"text\nhi\n"), "epee", [5.0, *values("epee", 4)[1:]])
    assert batch_tab.on_setting(models, folder, None, "epee", values("epee", 4))["download"] is None


def test_the_tab_builds_on_the_page(tiny_shipped_model, folder):
    from epee_demo.ui import build_demo

    demo = build_demo({"organ-system": tiny_shipped_model}, folder)
    assert {"batch", "batch_set_rule", "batch_set_model", "batch_set_tau"} <= {f.api_name for f in demo.fns.values()}
    assert batch_tab.LIMITS_NOTE.count("500") == 1


def test_a_zip_of_images_on_an_image_model_and_a_broken_member(tiny_image_shipped_model, folder, upload):
    import io
    import zipfile

    from PIL import Image

    models = {"pneumonia": tiny_image_shipped_model}
    layers = tiny_image_shipped_model.classifier.num_layers
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            image = io.BytesIO()
            Image.fromarray(np.full((32, 40), 60 * i, dtype=np.uint8)).save(image, format="PNG")
            archive.writestr(f"scans/{i}.png", image.getvalue())
    done = batch_tab.on_run(models, folder, "pneumonia", upload(buffer.getvalue(), "upload.zip"), "maxprob",
                            values("maxprob", layers))
    assert list(done["table"]["row"]) == ["scans/0.png", "scans/1.png", "scans/2.png"]
    assert "No row has a label" in done["summary"]
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("scans/broken.png", b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InputError, match="scans/broken.png: "):
        batch_tab.on_run(models, folder, "pneumonia", upload(buffer.getvalue(), "upload.zip"), "maxprob",
                         values("maxprob", layers))
    with pytest.raises(InputError, match="not a zip"):
        batch_tab.on_run(models, folder, "pneumonia", upload(b"text\nhello\n"), "maxprob", values("maxprob", layers))


def test_a_labelled_zip_gets_its_accuracy(tiny_image_shipped_model, folder, upload):
    import io
    import zipfile

    from PIL import Image

    models = {"pneumonia": tiny_image_shipped_model}
    layers = tiny_image_shipped_model.classifier.num_layers
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, member in enumerate(["normal/a.png", "pneumonia/b.png", "scans/c.png", "scans/d.png"]):
            image = io.BytesIO()
            Image.fromarray(np.full((28, 28), 50 * i, dtype=np.uint8)).save(image, format="PNG")
            archive.writestr(member, image.getvalue())
        archive.writestr("scans/labels.csv", "file,label\nc.png,pneumonia\n")
    done = batch_tab.on_run(models, folder, "pneumonia", upload(buffer.getvalue(), "upload.zip"), "maxprob",
                            values("maxprob", layers))
    table = done["table"]
    assert list(table["label"]) == ["normal", "pneumonia", "pneumonia", ""]
    assert "Accuracy on the 3 labelled rows" in done["summary"]
