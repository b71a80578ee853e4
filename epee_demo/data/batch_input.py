"""An uploaded batch, checked and read: a CSV of notes (``text``, optional ``label``) or a zip of images
(labelled by a ``labels.csv`` inside it with ``file`` and ``label`` columns, and/or by class-named folders).

Every problem is an ``InputError`` that names the row (the CSV's line number, header = line 1)
or the member of the zip; nothing read is logged.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from epee_demo.data.images import load_image
from epee_demo.data.preprocess import clean_note
from epee_demo.errors import InputError
from epee_demo.limits import BATCH_MAX_BYTES, BATCH_MAX_INFLATED_BYTES, BATCH_MAX_ROWS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
LABELS_FILE = "labels.csv"  # in a zip of images: file (relative to its folder), label


@dataclass
class BatchInput:
    """The inputs of a batch in upload order, a name for each row (``line N`` or the zip member),
    and the gold class indices (-1 where unlabelled; all -1 without a label column)."""

    inputs: list
    names: list[str]
    labels: np.ndarray


def _checked_size(data: bytes) -> bytes:
    if not data:
        raise InputError("The uploaded file is empty.")
    if len(data) > BATCH_MAX_BYTES:
        raise InputError(f"The file is {len(data) / 2**20:.1f} MB; a batch may be at most "
                         f"{BATCH_MAX_BYTES // 2**20} MB.")
    return data


def _label_index(value: str, label_names, where: str) -> int:
    value = value.strip()
    if not value:
        return -1
    if value not in label_names:
        raise InputError(f"{where}: the label is not one of the model's classes ({', '.join(label_names)}).")
    return list(label_names).index(value)


def read_notes_csv(data: bytes, label_names) -> BatchInput:
    """Notes from CSV bytes (UTF-8, a ``text`` column, an optional ``label`` column of class names)."""
    data = _checked_size(data)
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"The CSV is not UTF-8 text (the first bad byte is at position {err.start}). "
                         "Save it as UTF-8 and upload it again.") from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as err:
        raise InputError(f"The CSV's header cannot be read ({err}).") from None
    if "text" not in header:
        raise InputError("The CSV has no `text` column: its first line must name the columns, one of them `text` "
                         "(and optionally `label`).")
    reader.fieldnames = header
    inputs, names, labels = [], [], []
    try:
        line = reader.line_num + 1  # where the next record starts (a quoted note may span several lines)
        for record in reader:
            if len(inputs) == BATCH_MAX_ROWS:
                raise InputError(f"The CSV has more than {BATCH_MAX_ROWS} rows; a batch may have at most "
                                 f"{BATCH_MAX_ROWS}. Split it into smaller files.")
            if None in record:
                raise InputError(f"Line {line}: more values than the header has columns "
                                 "(quote a note that holds commas).")
            try:
                inputs.append(clean_note(record.get("text")))
            except InputError as err:
                raise InputError(f"Line {line}: {err}") from None
            labels.append(_label_index(record.get("label") or "", label_names, f"Line {line}"))
            names.append(f"line {line}")
            line = reader.line_num + 1
    except csv.Error as err:
        raise InputError(f"Line {reader.line_num}: the CSV cannot be read ({err}).") from None
    if not inputs:
        raise InputError("The CSV has a header but no rows.")
    return BatchInput(inputs, names, np.array(labels, dtype=np.int64))


def _zip_label(value: str, label_names, where: str) -> int:
    """A zip image's label: a class name (any case) or class number 0..C-1; -1 when empty."""
    value = value.strip()
    if not value:
        return -1
    lowered = [name.lower() for name in label_names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    if value.isascii() and value.isdigit() and int(value) < len(label_names):
        return int(value)
    raise InputError(f"{where}: the label is neither one of the model's classes ({', '.join(label_names)}) nor a "
                     f"class number from 0 to {len(label_names) - 1}.")


def _folder_label(member: str, label_names) -> int:
    """The class an image's folder names (its name a class name, any case, or number), else -1."""
    parent = PurePosixPath(member).parent.name
    try:
        return _zip_label(parent, label_names, "") if parent else -1
    except InputError:
        return -1  # a folder that names no class only groups images


def _labels_csv(archive: zipfile.ZipFile, member: zipfile.ZipInfo, images: set[str], label_names) -> dict[str, tuple[int, int]]:
    """The zip's ``labels.csv``: image member -> (label, line), each problem an ``InputError`` naming the line."""
    try:
        content = archive.read(member).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{member.filename}: not UTF-8 text. Save it as UTF-8 and zip it again.") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError):
        raise InputError(f"{member.filename}: this member of the zip cannot be read.") from None
    folder = PurePosixPath(member.filename).parent
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as err:
        raise InputError(f"{member.filename}: its header cannot be read ({err}).") from None
    if "file" not in header or "label" not in header:
        raise InputError(f"{member.filename}: its first line must name a `file` and a `label` column.")
    reader.fieldnames = header
    labels: dict[str, tuple[int, int]] = {}
    try:
        line = reader.line_num + 1
        for record in reader:
            where = f"{member.filename}, line {line}"
            if None in record:
                raise InputError(f"{where}: more values than the header has columns.")
            name = str(folder / (record.get("file") or "").strip().removeprefix("./")).removeprefix("./")
            if name not in images:
                raise InputError(f"{where}: names no image of the zip (a `file` is a path relative to the folder "
                                 f"holding {LABELS_FILE}).")
            if name in labels:
                raise InputError(f"{where}: labels the same image as line {labels[name][1]}.")
            labels[name] = (_zip_label(record.get("label") or "", label_names, where), line)
            line = reader.line_num + 1
    except csv.Error as err:
        raise InputError(f"{member.filename}, line {reader.line_num}: it cannot be read ({err}).") from None
    return labels


def read_image_zip(data: bytes, label_names=()) -> BatchInput:
    """Images from zip bytes (PNG, JPEG, ... anywhere in it; folders and other files are skipped),
    decoded and checked as one upload each, in the zip's order.

    An image is labelled (a class name, any case, or class number of ``label_names``) by the zip's
    ``labels.csv`` (columns ``file``, a path relative to the folder holding it, and ``label``) and/or by
    its folder when that folder is named after a class; the two must agree."""
    data = _checked_size(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InputError("The file is not a zip archive. Upload a .zip of images or a .csv of notes.") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()
                   and PurePosixPath(m.filename).suffix.lower() in IMAGE_SUFFIXES
                   and not PurePosixPath(m.filename).name.startswith(".")]
        if not members:
            raise InputError(f"The zip holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        if len(members) > BATCH_MAX_ROWS:
            raise InputError(f"The zip holds {len(members)} images; a batch may have at most {BATCH_MAX_ROWS}.")
        if sum(m.file_size for m in members) > BATCH_MAX_INFLATED_BYTES:
            raise InputError(f"The zip's images take more than {BATCH_MAX_INFLATED_BYTES // 2**20} MB unpacked.")
        listed = [m for m in archive.infolist() if PurePosixPath(m.filename).name.lower() == LABELS_FILE]
        if len(listed) > 1:
            raise InputError(f"The zip holds {len(listed)} files named {LABELS_FILE}; it may hold one.")
        if listed and listed[0].file_size > BATCH_MAX_BYTES:
            raise InputError(f"{listed[0].filename}: more than {BATCH_MAX_BYTES // 2**20} MB unpacked.")
        given = _labels_csv(archive, listed[0], {m.filename for m in members}, label_names) if listed else {}
        inputs, names, labels = [], [], []
        for member in members:
            try:
                inputs.append(load_image(archive.read(member)))
            except InputError as err:
                raise InputError(f"{member.filename}: {err}") from None
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError):  # a damaged or encrypted member
                raise InputError(f"{member.filename}: this member of the zip cannot be read.") from None
            names.append(member.filename)
            folder_label = _folder_label(member.filename, label_names)
            label, line = given.get(member.filename, (-1, 0))
            if label >= 0 and folder_label >= 0 and label != folder_label:
                raise InputError(f"{member.filename}: {LABELS_FILE} (line {line}) and its folder give it different labels.")
            labels.append(max(label, folder_label))
    return BatchInput(inputs, names, np.array(labels, dtype=np.int64))


def read_batch(path: str | Path, modality: str, label_names) -> BatchInput:
    """The batch in an uploaded file: notes for a text model, images for an image model."""
    path = Path(path)
    if not path.is_file():
        raise InputError("No uploaded file was found: it may have expired. Please upload it again.")
    if path.stat().st_size > BATCH_MAX_BYTES:
        raise InputError(f"The file is {path.stat().st_size / 2**20:.1f} MB; a batch may be at most "
                         f"{BATCH_MAX_BYTES // 2**20} MB.")
    data = path.read_bytes()
    if modality == "text":
        return read_notes_csv(data, label_names)
    return read_image_zip(data, label_names)
