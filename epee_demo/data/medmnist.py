"""MedMNIST v2 2D datasets at 28x28: PneumoniaMNIST, RetinaMNIST and BreastMNIST.

Read from ``$EPEE_DATA_DIR/medmnist/<name>.npz`` (keys ``{train,val,test}_images``
uint8 [N, 28, 28] (grayscale) or [N, 28, 28, 3] (RGB) and ``{train,val,test}_labels``
[N, 1]). All three splits are the complete official ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from epee_demo.data import DATA_DIR_VARIABLE, LabelledDataset, Split, data_dir

LICENCE = (
    "CC BY 4.0. Yang, J., Shi, R., Wei, D., Liu, Z., Zhao, L., Ke, B., Pfister, H. & Ni, B. "
    '"MedMNIST v2 — A large-scale lightweight benchmark for 2D and 3D biomedical image '
    'classification", Scientific Data 10, 41 (2023), https://doi.org/10.1038/s41597-022-01721-8'
)


@dataclass(frozen=True)
class MedMNISTInfo:
    """One MedMNIST dataset: its file stem, class names (in label order) and where it came from."""

    name: str
    title: str
    label_names: tuple[str, ...]
    source: str


DATASETS: dict[str, MedMNISTInfo] = {info.name: info for info in (
    MedMNISTInfo(
        "pneumoniamnist", "PneumoniaMNIST", ("normal", "pneumonia"),
        "PneumoniaMNIST from MedMNIST v2 (pediatric chest X-rays of Kermany et al., 2018, "
        "center-cropped and resized to 28x28 grayscale by the MedMNIST authors)",
    ),
    MedMNISTInfo(
        "retinamnist", "RetinaMNIST",
        ("grade 0 (no DR)", "grade 1 (mild NPDR)", "grade 2 (moderate NPDR)", "grade 3 (severe NPDR)",
         "grade 4 (proliferative DR)"),
        "RetinaMNIST from MedMNIST v2 (retinal fundus photographs of the DeepDRiD challenge, graded "
        "0-4 for diabetic retinopathy, center-cropped and resized to 28x28 RGB by the MedMNIST authors)",
    ),
    MedMNISTInfo(
        "breastmnist", "BreastMNIST", ("malignant", "normal or benign"),
        "BreastMNIST from MedMNIST v2 (breast ultrasound images of Al-Dhabyani et al., 2020, "
        "resized to 28x28 grayscale by the MedMNIST authors; normal and benign merged into one class)",
    ),
)}


def medmnist_path(name: str = "pneumoniamnist") -> Path:
    """Where ``<name>.npz`` must lie; FileNotFoundError naming ``EPEE_DATA_DIR`` if it is not there."""
    root = data_dir()
    if root is None:
        raise FileNotFoundError(
            f"{name} needs the data directory: set {DATA_DIR_VARIABLE} to a folder holding "
            f"medmnist/{name}.npz (for example {DATA_DIR_VARIABLE}=/work/shared/data)"
        )
    path = root / "medmnist" / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {DATA_DIR_VARIABLE}={root} has no medmnist/{name}.npz"
        )
    return path


def _split(data, split: str) -> Split:
    images = data[f"{split}_images"]
    labels = data[f"{split}_labels"].reshape(-1).astype(int)
    return Split(list(images), labels.tolist())


def load_medmnist(name: str = "pneumoniamnist") -> LabelledDataset:
    """The train/val/test splits of a MedMNIST 2D dataset; inputs are uint8 arrays [28, 28] or [28, 28, 3]."""
    info = DATASETS[name]
    with np.load(medmnist_path(name), allow_pickle=False) as data:
        splits = {split: _split(data, split) for split in ("train", "val", "test")}
    return LabelledDataset(name, list(info.label_names), splits["train"], splits["val"], splits["test"],
                           info.source, LICENCE)


@dataclass
class ExampleImage:
    """One test-split image for the page: ``image`` uint8 [28, 28] or [28, 28, 3], its gold ``label``,
    the label's name and its ``index`` in the test split."""

    image: np.ndarray
    label: int
    label_name: str
    index: int
    shipped: bool = False  # True: a PNG shipped beside the model; False: read from the data directory


def choose_examples(images, labels, label_names, per_class: int, seed: int = 0,
                    exclude: frozenset[int] = frozenset()) -> list[ExampleImage]:
    """``per_class`` images of each class (a fixed, seeded choice, in class order), none in ``exclude``."""
    labels = np.asarray(labels).reshape(-1).astype(int)
    rng = np.random.default_rng(seed)
    chosen = []
    for label, label_name in enumerate(label_names):
        candidates = np.array([i for i in np.flatnonzero(labels == label) if int(i) not in exclude], dtype=int)
        picked = rng.choice(candidates, size=min(per_class, len(candidates)), replace=False) if len(candidates) else []
        for index in sorted(int(i) for i in picked):
            chosen.append(ExampleImage(np.asarray(images[index]).copy(), label, label_name, index))
    return chosen


def example_images(per_class: int = 3, name: str = "pneumoniamnist", seed: int = 0,
                   exclude: frozenset[int] = frozenset()) -> list[ExampleImage]:
    """Test-split images from the data directory, ``per_class`` of each class, or [] without the data."""
    try:
        path = medmnist_path(name)
    except FileNotFoundError:
        return []
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["test_images"], data["test_labels"]
        return choose_examples(images, labels, DATASETS[name].label_names, per_class, seed, exclude)


EXAMPLES_FILE = "examples.json"
EXAMPLES_PER_CLASS = 4  # test-split images shipped beside each model (a few kB each)


def write_examples(examples: list[ExampleImage], folder: str | Path) -> Path:
    """Save examples as PNGs (``test-<index>.png``) in ``folder`` with ``examples.json``
    listing each file's gold label and test-split index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    listing = []
    for example in examples:
        name = f"test-{example.index:04d}.png"
        Image.fromarray(example.image).save(folder / name, optimize=True)
        listing.append({"file": name, "label": example.label, "index": example.index})
    (folder / EXAMPLES_FILE).write_text(json.dumps(listing, indent=1) + "\n")
    return folder


def read_examples(folder: str | Path, label_names) -> list[ExampleImage]:
    """The examples ``write_examples`` saved in ``folder`` ([] when there are none)."""
    folder = Path(folder)
    path = folder / EXAMPLES_FILE
    if not path.is_file():
        return []
    examples = []
    for entry in json.loads(path.read_text()):
        with Image.open(folder / entry["file"]) as image:
            pixels = np.asarray(image.convert(image.mode), dtype=np.uint8).copy()
        label = int(entry["label"])
        examples.append(ExampleImage(pixels, label, label_names[label], int(entry["index"]), shipped=True))
    return examples
