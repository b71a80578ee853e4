"""Bad input, through the launched page (gradio_client and raw HTTP) and the input functions.

Every bad note, image or API call gets a message meant for a person, and the server keeps
serving: each bad call is followed by a good one.
"""

import json
import struct
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.data.images import MAX_PIXELS, load_image
from epee_demo.data.preprocess import InputError, MAX_NOTE_CHARS, clean_note
from epee_demo.ui.analyze_tab import analyze_image, analyze_note
from tests.conftest import launched_demo

pytestmark = pytest.mark.integration  # starts the page or its server process

CONTROLS = {"tau": 0.2, "patience": 3, "threshold": 0.9, "divergence_tau": 0.05, "measure": "js", "layer": 1}


IMAGE_TASKS = ("pneumonia", "retina", "breast")  # grayscale, RGB, grayscale


@pytest.fixture(scope="module")
def app(tiny_shipped_model, tiny_image_shipped_model, tiny_rgb_shipped_model):
    from epee_demo.model.registry import ShippedModel
    from epee_demo.data.tasks import TASKS

    breast = ShippedModel(TASKS["breast"], tiny_image_shipped_model.folder)
    with launched_demo({"organ-system": tiny_shipped_model, "pneumonia": tiny_image_shipped_model,
                        "retina": tiny_rgb_shipped_model, "breast": breast}) as demo:
        yield demo


@pytest.fixture(scope="module")
def client(app):
    return Client(app.local_url, verbose=False)


def analyze_text(client, note):
    return client.predict(note, "epee", api_name="/analyze_organ_system")


def analyze_upload(client, path, task="pneumonia"):
    return client.predict(handle_file(str(path)), "epee", api_name=f"/analyze_{task}")


def still_serving(client, good_image, task="pneumonia"):
    """The server answers a good note and a good image after a bad call."""
    assert "stops at" in analyze_text(client, EXAMPLE_NOTES[0].text)[1]
    assert "stops at" in analyze_upload(client, good_image, task)[1]


def error_message(call) -> str:
    with pytest.raises(Exception) as err:
        call()
    return str(err.value)


# ---------------------------------------------------------------- image files


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_text_bomb(good_png: bytes) -> bytes:
    """A valid PNG with a zTXt chunk of 50 kB that inflates to 50 MB, right after the header."""
    text = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\0" * 50_000_000, 9))
    return good_png[:33] + text + good_png[33:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Good and bad image files by name."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    paths = {name: folder / name for name in (
        "good.png", "text.png", "empty.png", "truncated.png", "bomb.png", "too_many_pixels.png", "one_pixel.png",
        "sixteen_bit.png", "cmyk.jpg", "animated.gif", "rgba.png", "tiny.png", "text_bomb.png", "colour.png",
        "gray_as_rgb.jpg",
    )}
    Image.fromarray(noise).save(paths["good.png"])
    paths["text.png"].write_text("This is a clinical note saved with an image's name, not an image.\n")
    paths["empty.png"].write_bytes(b"")
    whole = paths["good.png"].read_bytes()
    paths["truncated.png"].write_bytes(whole[: len(whole) // 2])
    paths["text_bomb.png"].write_bytes(png_with_text_bomb(whole))
    paths["bomb.png"].write_bytes(png_header_only(30_000, 30_000))  # 900 megapixels claimed in ~100 bytes
    paths["too_many_pixels.png"].write_bytes(png_header_only(8_000, 6_000))  # 48 MP: past our own limit
    Image.new("L", (1, 1), 128).save(paths["one_pixel.png"])
    Image.new("L", (5, 40), 128).save(paths["tiny.png"])
    Image.fromarray((noise.astype(np.uint16) * 257).astype("<u2")).save(paths["sixteen_bit.png"])
    Image.new("CMYK", (64, 48), (10, 200, 30, 5)).save(paths["cmyk.jpg"])
    frames = [Image.fromarray(np.full((40, 40), value, dtype=np.uint8)) for value in (0, 120, 250)]
    frames[0].save(paths["animated.gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 4), dtype=np.uint8), "RGBA").save(paths["rgba.png"])
    Image.fromarray(rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)).save(paths["colour.png"])
    Image.fromarray(noise).convert("RGB").save(paths["gray_as_rgb.jpg"], quality=90)
    return paths


# ---------------------------------------------------------------- notes via the page

TEXT_FAILURES = [
    ("empty", "", "the box is empty"),
    ("whitespace", "  \n\t  ", "only spaces or invisible characters"),
    ("binary", "\x00\x01\x02PNG\x00\xff binary", "binary file, not a note"),
    ("control characters only", "\x07\x08\x1b\x7f\x9b", "only spaces or invisible characters"),
    ("number, not text", 12345, "A note must be text, not int"),
    ("list, not text", ["a note"], "A note must be text, not list"),
]


@pytest.mark.parametrize("name, note, message", TEXT_FAILURES, ids=[c[0] for c in TEXT_FAILURES])
def test_bad_notes_get_a_message(client, images, name, note, message):
    assert message in error_message(lambda: analyze_text(client, note))
    still_serving(client, images["good.png"])


TEXT_ACCEPTED = [
    ("a hundred thousand characters", "Chest pain radiating to the left arm. " * 2_700),
    ("control characters inside", "\x1b[31mChest pain\x1b[0m with\x07 ST elevation\x0c in leads II, III."),
    ("right to left", "ألم في الصدر مع ضيق في التنفس. כאב בחזה וקוצר נשימה. \u202eeton desrever"),
    ("emoji", "🫀💔 crushing chest pain 😰, sweating 💦, ECG 📈 shows ST elevation."),
]


@pytest.mark.parametrize("name, note", TEXT_ACCEPTED, ids=[c[0] for c in TEXT_ACCEPTED])
def test_odd_but_readable_notes_are_analyzed(client, name, note):
    notice, summary, *_ = analyze_text(client, note)
    assert "stops at **layer" in summary
    if name == "a hundred thousand characters":
        assert "reads only the first 64 tokens" in notice


def test_identifier_check_runs_on_any_text(client):
    assert "record number “MRN 00123456”" in client.predict("MRN 00123456", api_name="/check_note_organ_system")
    assert client.predict("\x00\x01" * 1000, api_name="/check_note_organ_system") == ""
    assert client.predict(EXAMPLE_NOTES[0].text, api_name="/check_note_organ_system") == ""


# ---------------------------------------------------------------- images via the page

IMAGE_FAILURES = [
    ("text.png", "not an image the demo can read"),
    ("empty.png", "The uploaded file is empty"),
    ("truncated.png", "damaged or truncated"),
    ("bomb.png", "far too large to analyze"),
    ("text_bomb.png", "more metadata than the demo reads safely"),
    ("too_many_pixels.png", f"the limit is {MAX_PIXELS // 1_000_000} megapixels"),
    ("one_pixel.png", "only 1x1 pixels"),
    ("tiny.png", "only 5x40 pixels"),
]


@pytest.mark.parametrize("task", IMAGE_TASKS)
@pytest.mark.parametrize("name, message", IMAGE_FAILURES, ids=[c[0] for c in IMAGE_FAILURES])
def test_bad_images_get_a_message(client, images, name, message, task):
    assert message in error_message(lambda: analyze_upload(client, images[name], task))
    still_serving(client, images["good.png"], task)


@pytest.mark.parametrize("task", IMAGE_TASKS)
@pytest.mark.parametrize("name, described", [
    ("sixteen_bit.png", "(I;16)"), ("cmyk.jpg", "(CMYK)"), ("animated.gif", "40×40"), ("rgba.png", "(RGBA)"),
])
def test_unusual_but_valid_images_are_analyzed(client, images, name, described, task):
    notice, summary, *_, view = analyze_upload(client, images[name], task)
    assert described in notice and "stops at **layer" in summary
    color = "RGB" if task == "retina" else "grayscale"
    assert '<img src="data:image/png;base64,' in view and f"28×28 {color}" in view


@pytest.mark.parametrize("task, name, warned", [
    ("pneumonia", "colour.png", "Colour image, grayscale model"),
    ("breast", "colour.png", "Colour image, grayscale model"),
    ("retina", "good.png", "Grayscale image, colour model"),
    ("retina", "sixteen_bit.png", "Grayscale image, colour model"),
    ("retina", "gray_as_rgb.jpg", "Grayscale image, colour model"),
    ("pneumonia", "good.png", None), ("pneumonia", "gray_as_rgb.jpg", None), ("retina", "colour.png", None),
])
def test_the_wrong_colour_for_a_model_is_converted_with_a_visible_notice(client, images, task, name, warned):
    notice, summary, *_ = analyze_upload(client, images[name], task)
    assert "stops at **layer" in summary
    if warned:
        assert notice.startswith(f"⚠️ **{warned}.**") and "as every input is" in notice
    else:
        assert "⚠️" not in notice


def test_an_upload_over_the_size_limit_is_refused(client, images, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(images["good.png"].read_bytes() + b"\0" * (21 * 1024 * 1024))
    assert "exceeds the maximum file size of 20971520 bytes" in error_message(lambda: analyze_upload(client, big))
    still_serving(client, images["good.png"])


def test_no_image_gets_a_message(client, images):
    assert "Please upload an image" in error_message(lambda: client.predict(None, "epee", api_name="/analyze_pneumonia"))
    still_serving(client, images["good.png"])


# ---------------------------------------------------------------- API calls with missing or wrong-typed arguments


def move(client, rule="epee", control="tau", **values):
    return client.predict(rule, *{**CONTROLS, **values}.values(), api_name=f"/set_{control}_organ_system")


TAU_RANGE, PATIENCE_RANGE = "tau: must be a number from 0 to 1.", "patience: must be a whole number from 0 to 4."
RULES = "Exit rule: choose one of epee, "


@pytest.mark.parametrize("call, message", [
    (lambda c: move(c, tau="high"), TAU_RANGE),
    (lambda c: move(c, tau=None), TAU_RANGE),
    (lambda c: move(c, tau=5.0), TAU_RANGE),
    (lambda c: move(c, tau=[0.2]), TAU_RANGE),
    (lambda c: move(c, patience=-1), PATIENCE_RANGE),
    (lambda c: move(c, patience=2.5), PATIENCE_RANGE),
    (lambda c: move(c, rule="nonsense"), RULES),
    (lambda c: move(c, rule=["epee"]), RULES),
    (lambda c: move(c, rule=None), RULES),
    (lambda c: move(c, rule="fpabee", control="measure", measure="euclid"), "divergence: choose one of kl, "),
    (lambda c: move(c, rule="fpabee", control="measure", measure=["js"]), "divergence: choose one of kl, "),
    (lambda c: c.predict(7, api_name="/set_rule_organ_system"), RULES),
    (lambda c: c.predict(None, api_name="/set_rule_organ_system"), RULES),
    (lambda c: c.predict(EXAMPLE_NOTES[0].text, ["epee"], api_name="/analyze_organ_system"), RULES),
    (lambda c: c.predict(None, "epee", api_name="/analyze_organ_system"), "the box is empty"),
], ids=["tau text", "tau missing", "tau too high", "tau list", "patience negative",
        "patience fraction", "unknown rule", "rule as a list",
        "rule null", "unknown divergence", "divergence as a list", "rule as a number", "rule null (rule event)",
        "analysis rule as a list", "note null"])
def test_bad_api_calls_get_a_message(client, images, call, message):
    assert message in error_message(lambda: call(client))
    still_serving(client, images["good.png"])


def raw_call(url: str, api_name: str, body: bytes) -> str:
    """POST to the plain HTTP API and return the event stream (or the HTTP error) as text."""
    request = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            event_id = json.loads(reply.read())["event_id"]
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}: {err.read().decode()}"
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=120) as reply:
        return reply.read().decode()


@pytest.mark.parametrize("api_name, body, message", [
    ("analyze_organ_system", json.dumps({"data": []}), "didn't receive enough input values (needed: 3, got: 0)"),
    ("set_tau_organ_system", json.dumps({"data": ["epee"]}), "didn't receive enough input values (needed: 9, got: 1)"),
    ("analyze_organ_system", json.dumps({}), "HTTP 422"),
    ("analyze_organ_system", "not json", "JSON decode error"),
], ids=["no arguments", "too few slider arguments", "no data field", "not JSON"])
def test_raw_http_calls_with_missing_arguments_get_a_message(app, client, images, api_name, body, message):
    assert message in raw_call(app.local_url, api_name, body.encode())
    still_serving(client, images["good.png"])


def slider_body(**values) -> str:
    """A raw slider call (trace and settings state, rule, the six controls) as JSON; NaN allowed."""
    return json.dumps({"data": [None, None, *{"rule": "epee", **CONTROLS, **values}.values()]})


@pytest.mark.parametrize("api_name, body, message", [
    ("set_tau_organ_system", slider_body(tau=float("nan")), "tau: must be a number from 0 to 1."),
    ("set_tau_organ_system", slider_body(patience=float("nan")), "patience: must be a whole number from 0 to 4."),
    ("set_tau_organ_system", slider_body(threshold=float("inf")), "threshold: must be a number from 0 to 1."),
    ("set_tau_organ_system", slider_body(divergence_tau=float("nan")), "divergence_tau: must be a number from 0 to 0.7"),
    ("set_tau_organ_system", slider_body(layer=float("nan")), "layer: must be a whole number from 1 to 4."),
    ("check_note_organ_system", json.dumps({"data": ["See www.example.org/\ud800 for images"]}), "web address"),
    ("analyze_organ_system", json.dumps({"data": ["Chest pain \ud800 with ST elevation.", None, "epee"]}),
     "stops at"),
], ids=["tau NaN", "patience NaN", "threshold infinite", "divergence tau NaN", "layer NaN",
        "surrogate in the identifier check", "surrogate in a note"])
def test_raw_http_calls_with_odd_values_get_a_message(app, client, images, api_name, body, message):
    reply = raw_call(app.local_url, api_name, body.encode())
    assert message in reply and "\\ud800" not in reply
    still_serving(client, images["good.png"])


# ---------------------------------------------------------------- the input functions directly


@pytest.mark.parametrize("raw, message", [
    (None, "the box is empty"),
    ("", "the box is empty"),
    (b"\xff\xfe\x00\x00garbage", "not UTF-8"),
    (b"", "the box is empty"),
    ("\x00binary", "binary file"),
    ("\u200b\u200e\u202e", "only spaces or invisible characters"),
    (["a note"], "must be text, not list"),
])
def test_clean_note_refuses_with_a_message(raw, message):
    with pytest.raises(InputError, match=message):
        clean_note(raw)


def test_clean_note_keeps_readable_text_and_cuts_a_megabyte():
    assert clean_note("  \x1b[1mfever\x07 and 🫀 pain\u202e  ") == "[1mfever and 🫀 pain"
    assert clean_note("نوبة قلبية".encode()) == "نوبة قلبية"
    assert len(clean_note("x" * 1_000_000)) == MAX_NOTE_CHARS


@pytest.mark.parametrize("name, message", IMAGE_FAILURES + [("missing.png", "No image file")],
                         ids=[c[0] for c in IMAGE_FAILURES] + ["missing.png"])
def test_load_image_refuses_with_a_message(images, tmp_path, name, message):
    path = images.get(name, tmp_path / name)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        load_image(path)
    if path.exists():
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            load_image(path.read_bytes())  # the same file as bytes


@pytest.mark.parametrize("source, message", [
    (None, "Please upload an image"),
    (b"", "The uploaded file is empty"),
    (3.5, "not float"),
    (np.zeros((10, 10, 2), dtype=np.uint8), "got shape"),
    (np.zeros((10, 10), dtype=np.float64), "got float64"),
])
def test_load_image_refuses_odd_sources(source, message):
    with pytest.raises(InputError, match=message):
        load_image(source)


def test_the_analyze_functions_pass_input_errors_on(tiny_shipped_model, tiny_image_shipped_model, images):
    with pytest.raises(InputError, match="binary file"):
        analyze_note(tiny_shipped_model, "\x00\x00")
    with pytest.raises(InputError, match="damaged or truncated"):
        analyze_image(tiny_image_shipped_model, str(images["truncated.png"]))
    trace, notice, view = analyze_image(tiny_image_shipped_model, str(images["cmyk.jpg"]))
    assert trace.probs.shape == (1, 3, 2) and "(CMYK)" in notice and view.shape == (224, 224)
