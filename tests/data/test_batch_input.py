import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from epee_demo.data.batch_input import read_batch, read_image_zip, read_notes_csv
from epee_demo.errors import InputError
from epee_demo.limits import BATCH_MAX_BYTES, BATCH_MAX_ROWS

CLASSES = ("cardiac", "renal")


def png(value=128, size=16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def zipped(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_notes_with_and_without_labels():
    batch = read_notes_csv('text,label\n"chest pain, ST elevation",cardiac\nraised creatinine,\n'.encode(), CLASSES)
    assert batch.inputs == ["chest pain, ST elevation", "raised creatinine"]
    assert batch.names == ["line 2", "line 3"]
    assert batch.labels.tolist() == [0, -1]
    assert read_notes_csv("\ufeffText\nhello\n".encode(), CLASSES).labels.tolist() == [-1]  # BOM, any case


@pytest.mark.parametrize("content, message", [
    (b"note,label\nx,cardiac\n", "no `text` column"),
    ("text\nok\n\u00e9t\u00e9\n".encode("latin-1"), "not UTF-8"),
    (b"text,label\nok,cardiac\nfine,hepatic\n", "Line 3: the label is not one of the model's classes"),
    (b"text\nok\n   \n", "Line 3"),
    (b"text\nok,extra\n", "Line 2: more values"),
    (b"text\n", "no rows"),
    (b"", "empty"),
])
def test_malformed_csv_names_the_problem_and_the_line(content, message):
    with pytest.raises(InputError, match=message):
        read_notes_csv(content, CLASSES)


def test_too_many_rows_or_bytes():
    with pytest.raises(InputError, match=f"at most {BATCH_MAX_ROWS}"):
        read_notes_csv(("text\n" + "a\n" * (BATCH_MAX_ROWS + 1)).encode(), CLASSES)
    assert len(read_notes_csv(("text\n" + "a\n" * BATCH_MAX_ROWS).encode(), CLASSES).inputs) == BATCH_MAX_ROWS
    with pytest.raises(InputError, match="at most"):
        read_notes_csv(b"text\n" + b"a" * BATCH_MAX_BYTES, CLASSES)


def test_images_from_a_zip_in_order_skipping_other_files():
    batch = read_image_zip(zipped({"b/one.png": png(10), "readme.txt": b"x", "a/two.PNG": png(200),
                                   "__MACOSX/._one.png": b"junk"}))
    assert batch.names == ["b/one.png", "a/two.PNG"]
    assert np.asarray(batch.inputs[0]).max() == 10 and (batch.labels == -1).all()


@pytest.mark.parametrize("content, message", [
    (b"not a zip at all", "not a zip"),
    (zipped({"notes.txt": b"x"}), "holds no images"),
    (zipped({"ok.png": png(), "scans/broken.png": b"\x89PNG\r\n\x1a\n garbage"}), "scans/broken.png: "),
])
def test_malformed_zip_names_the_file(content, message):
    with pytest.raises(InputError, match=message):
        read_image_zip(content)


def test_read_batch_by_modality(tmp_path):
    notes = tmp_path / "upload.csv"
    notes.write_bytes(b"text\nhello\n")
    assert read_batch(notes, "text", CLASSES).inputs == ["hello"]
    with pytest.raises(InputError, match="not a zip"):
        read_batch(notes, "image", CLASSES)
    with pytest.raises(InputError, match="expired"):
        read_batch(tmp_path / "gone.csv", "text", CLASSES)


ZIP_CLASSES = ("normal", "pneumonia")


def test_zip_images_take_labels_from_labels_csv_and_class_folders():
    batch = read_image_zip(zipped({
        "scans/labels.csv": "file,label\none.png,Pneumonia\n./two.png,0\nthree.png,\n",
        "scans/one.png": png(1), "scans/two.png": png(2), "scans/three.png": png(3),
        "normal/four.png": png(4), "1/five.png": png(5), "other/six.png": png(6),
        "pneumonia/seven.png": png(7),
    }), ZIP_CLASSES)
    assert batch.names == ["scans/one.png", "scans/two.png", "scans/three.png", "normal/four.png", "1/five.png",
                           "other/six.png", "pneumonia/seven.png"]
    assert batch.labels.tolist() == [1, 0, -1, 0, 1, -1, 1]
    agreeing = read_image_zip(zipped({"labels.csv": "File,Label\nnormal/a.png,normal\n", "normal/a.png": png()}),
                              ZIP_CLASSES)
    assert agreeing.labels.tolist() == [0]


@pytest.mark.parametrize("members, message", [
    ({"labels.csv": "name,class\na.png,normal\n", "a.png": png()}, "labels.csv: its first line must name a `file`"),
    ({"labels.csv": "file,label\na.png,normal\nb.png,normal\n", "a.png": png()}, "labels.csv, line 3: names no image"),
    ({"labels.csv": "file,label\na.png,normal\na.png,normal\n", "a.png": png()},
     "labels.csv, line 3: labels the same image as line 2"),
    ({"labels.csv": "file,label\na.png,cardiac\n", "a.png": png()}, "labels.csv, line 2: the label is neither"),
    ({"labels.csv": "file,label\na.png,7\n", "a.png": png()}, "class number from 0 to 1"),
    ({"labels.csv": "file,label\na.png,\u00b2\n", "a.png": png()}, "class number from 0 to 1"),  # a digit int() refuses
    ({"labels.csv": "file,label\na.png,normal,extra\n", "a.png": png()}, "line 2: more values"),
    ({"labels.csv": "file,label\n\u00e9.png,normal\n".encode("latin-1"), "a.png": png()}, "labels.csv: not UTF-8"),
    ({"labels.csv": "file,label\npneumonia/a.png,normal\n", "pneumonia/a.png": png()},
     "pneumonia/a.png: labels.csv \\(line 2\\) and its folder give it different labels"),
    ({"labels.csv": "file,label\n", "x/labels.csv": "file,label\n", "a.png": png()}, "2 files named labels.csv"),
])
def test_malformed_zip_labels_name_the_line_or_the_image(members, message):
    with pytest.raises(InputError, match=message):
        read_image_zip(zipped(members), ZIP_CLASSES)
