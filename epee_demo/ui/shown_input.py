"""An input shown as it is outside the Analyze tab (the lesson, the overthinking gallery), as HTML,
and the shipped example images as PNG, encoded once per process (a visitor's upload is encoded
each time and never kept)."""

from __future__ import annotations

import atexit
import base64
import hashlib
import html
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from epee_demo.data.marked import highlight_segments

SHOWN_IMAGE_PIXELS = 168  # an image is enlarged to about this many pixels a side (nearest neighbour)
_PNG: dict[str, bytes] = {}  # sha256 of a shipped example's pixels and shape -> its PNG
_PNG_FOLDER: dict[str, Path] = {}  # tempfile's folder -> the PNG files' folder in it


def _key(pixels: np.ndarray) -> str:
    return hashlib.sha256(repr(pixels.shape).encode() + np.ascontiguousarray(pixels).tobytes()).hexdigest()


def encode_png(pixels: np.ndarray) -> bytes:
    """``pixels`` (uint8 [H, W] or [H, W, 3]) as a PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(pixels: np.ndarray) -> bytes:
    """A shipped example's ``pixels`` as a PNG, encoded the first time it is asked for (only shipped
    examples come here: the cache is as small as the shipped folders)."""
    key = _key(pixels)
    if key not in _PNG:
        _PNG[key] = encode_png(pixels)
    return _PNG[key]


def png_file(pixels: np.ndarray, name: str) -> str:
    """The path of ``name`` (``test-12.png``) holding ``pixels`` as a PNG, in a folder of this process's
    temporary folder, removed when the process exits; written again when it has gone (the page's sweep
    deletes old files)."""
    root = tempfile.gettempdir()
    folder = _PNG_FOLDER.get(root)
    if folder is None or not folder.is_dir():
        folder = _PNG_FOLDER[root] = Path(tempfile.mkdtemp(prefix="epee-examples-"))
        atexit.register(shutil.rmtree, folder, True)  # a process whose temporary folder is the system's
    path = folder / name
    data = png_bytes(pixels)
    if not path.is_file() or path.stat().st_size != len(data):
        partial = folder / f".{name}.{os.getpid()}.{id(data)}.part"  # written whole, then moved into place:
        partial.write_bytes(data)                                       # a reader never sees half a file
        os.replace(partial, path)
    return str(path)


def inline_png(pixels: np.ndarray) -> str:
    """A data URL of ``pixels`` (a visitor's image) as a PNG: nothing is written to disk or kept."""
    return "data:image/png;base64," + base64.b64encode(encode_png(pixels)).decode("ascii")


def image_html(pixels: np.ndarray, caption: str, display_size: int = SHOWN_IMAGE_PIXELS) -> str:
    """An image enlarged (whole multiples, nearest neighbour) with its caption."""
    scale = max(1, display_size // max(pixels.shape[:2]))
    height, width = pixels.shape[0] * scale, pixels.shape[1] * scale
    caption = html.escape(caption)
    return (f'<figure style="margin:0"><img src="{inline_png(pixels)}" width="{width}" height="{height}" '
            f'alt="{caption}" style="image-rendering:pixelated"><figcaption>{caption}</figcaption></figure>')


def text_html(text: str, tags=None) -> str:
    """A note as written (line breaks kept), or a marked sentence with its marked spans highlighted
    and each mark named (``tags``: the task's mark names)."""
    if tags:
        parts = [html.escape(segment) if tag is None else
                 f'<mark title="{html.escape(tag)}">{html.escape(segment)}</mark><sub>{html.escape(tag)}</sub>'
                 for segment, tag in highlight_segments(text, tags)]
    else:
        parts = [html.escape(text)]
    return ('<div class="shown-input" style="white-space:pre-wrap;border:1px solid #8886;border-radius:6px;'
            f'padding:8px 12px">{"".join(parts)}</div>')


def input_html(value, caption: str, tags=None) -> str:
    """An example's input for the page: an image, a note, or a marked sentence (``tags`` given),
    under ``caption``."""
    if isinstance(value, np.ndarray):
        return image_html(value, caption)
    return f"<p><strong>{html.escape(caption)}</strong></p>{text_html(value, tags)}"


def split_example_html(model, split: str, index: int) -> str:
    """Example ``index`` of ``split`` of a ``ShippedModel`` as the gallery and the lesson show it: its
    input with its gold label and attribution when it ships with the model, else why it does not."""
    trace = model.trace(split)
    has_gold = trace.labels is not None and trace.labels[index] >= 0
    caption = f"Example {index} of the {split} split" + (f" (gold: {trace.label_names[trace.labels[index]]})"
                                                         if has_gold else "")
    value = model.split_inputs.get(split, index)
    if value is None:
        return (f"<p>{html.escape(caption)}: its input does not ship with the model; only a few "
                "of the test split's overthinking examples per class (and the lesson's example) do: the datasets "
                "stay in the data directory.</p>")
    tags = model.task.marks.counts if model.task.marks is not None else None
    return input_html(value, caption, tags) + f"<p><small>{html.escape(model.split_inputs.attribution)}</small></p>"
