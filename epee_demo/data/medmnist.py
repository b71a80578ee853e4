"""PneumoniaMNIST (MedMNIST v2): 28x28 grayscale chest X-rays, normal vs pneumonia.

Read from ``$EPEE_DATA_DIR/medmnist/<name>.npz`` (keys ``{train,val,test}_images``
uint8 [N, 28, 28] and ``{train,val,test}_labels`` [N, 1]). The validation and test
splits are the official ones; the training split in the shared data directory lacks
826 of the official 1,214 normal images, so training weights the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epee_demo.data import DATA_DIR_VARIABLE, LabelledDataset, Split, data_dir

LABEL_NAMES = ["normal", "pneumonia"]

SOURCE = (
    "PneumoniaMNIST from MedMNIST v2 (pediatric chest X-rays of Kermany et al., 2018, "
    "center-cropped and resized to 28x28 by the MedMNIST authors)"
)
LICENCE = (
    "CC BY 4.0. Yang, J., Shi, R., Wei, D., Liu, Z., Zhao, L., Ke, B., Pfister, H. & Ni, B. "
    '"MedMNIST v2 — A large-scale lightweight benchmark for 2D and 3D biomedical image '
    'classification", Scientific Data 10, 41 (2023), https://doi.org/10.1038/s41597-022-01721-8'
)
REDUCED_TRAIN_NOTE = (
    "The training split used here has 3,882 images, short of the official 4,708: it lacks "
    "826 of the 1,214 normal images (388 normal, 3,494 pneumonia remain), so every exit was "
    "trained with inverse-frequency class weights. Validation (524) and test (624) are the "
    "complete official splits, and all test figures are on the official test split."
)


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
    """The train/val/test splits of a MedMNIST 2D dataset; inputs are uint8 arrays [28, 28]."""
    with np.load(medmnist_path(name), allow_pickle=False) as data:
        splits = {split: _split(data, split) for split in ("train", "val", "test")}
    return LabelledDataset(name, list(LABEL_NAMES), splits["train"], splits["val"], splits["test"],
                           SOURCE, LICENCE)


@dataclass
class ExampleImage:
    """One test-split image for the page: ``image`` uint8 [28, 28], its gold ``label`` and name."""

    image: np.ndarray
    label: int
    label_name: str
    index: int


def example_images(per_class: int = 3, name: str = "pneumoniamnist", seed: int = 0) -> list[ExampleImage]:
    """A few test-split images, ``per_class`` of each class (fixed choice), or [] without the data."""
    try:
        path = medmnist_path(name)
    except FileNotFoundError:
        return []
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["test_images"], data["test_labels"].reshape(-1).astype(int)
    rng = np.random.default_rng(seed)
    chosen = []
    for label, label_name in enumerate(LABEL_NAMES):
        candidates = np.flatnonzero(labels == label)
        for index in sorted(rng.choice(candidates, size=min(per_class, len(candidates)), replace=False)):
            chosen.append(ExampleImage(images[index].copy(), label, label_name, int(index)))
    return chosen
