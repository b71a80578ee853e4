import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from epee_demo.ui import shown_input
from epee_demo.ui.shown_input import image_html, input_html, png_bytes, png_file, text_html


def test_a_note_is_escaped_and_keeps_its_lines():
    shown = text_html("BP <180/110> & rising\nplan: admit")
    assert "BP &lt;180/110&gt; &amp; rising\nplan: admit" in shown and "pre-wrap" in shown
    assert "<mark" not in shown


def test_a_marked_sentence_has_its_marks_highlighted_and_named():
    shown = text_html("[DRUG]Aspirin[/DRUG] raises [DRUG]warfarin[/DRUG] levels.", {"DRUG": 2})
    assert shown.count("<mark") == 2 and "<mark title=\"DRUG\">Aspirin</mark><sub>DRUG</sub>" in shown
    assert "[DRUG]" not in shown and " raises " in shown


def test_an_image_is_enlarged_inline_with_its_caption():
    pixels = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    shown = image_html(pixels, "Example 3 <test>")
    assert 'width="168" height="168"' in shown and "Example 3 &lt;test&gt;" in shown
    assert shown.count("data:image/png;base64,") == 1
    assert "<figure" in input_html(pixels, "x") and "<div" in input_html("a note", "x")


def test_pngs_are_encoded_once_and_written_again_when_swept(tmp_path, monkeypatch):
    monkeypatch.setattr(shown_input.tempfile, "tempdir", str(tmp_path))
    pixels = np.full((28, 28, 3), 200, dtype=np.uint8)
    assert png_bytes(pixels) is png_bytes(pixels.copy())  # the same pixels: the cached encoding
    path = png_file(pixels, "retina-test-4.png")
    assert path.startswith(str(tmp_path)) and path.endswith("retina-test-4.png")
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), pixels)
    io.open(path, "wb").close()  # emptied
    assert png_file(pixels, "retina-test-4.png") == path and Image.open(path).size == (28, 28)
    os.remove(path)  # swept
    assert png_file(pixels, "retina-test-4.png") == path and Image.open(path).size == (28, 28)


def test_the_png_folder_goes_when_the_process_exits(tmp_path):
    code = ("import numpy as np; from epee_demo.ui.shown_input import png_file; "
            "print(png_file(np.zeros((2, 2), dtype=np.uint8), 'x.png'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.stdout.strip().startswith(str(tmp_path)) and not list(tmp_path.glob("epee-examples-*"))


def test_a_visitors_image_is_encoded_but_never_kept():
    pixels = np.random.default_rng(7).integers(0, 256, (28, 28), dtype=np.uint8)
    cached = len(shown_input._PNG)
    url = shown_input.inline_png(pixels)
    assert url.startswith("data:image/png;base64,") and len(shown_input._PNG) == cached
