"""Datasets: where they live and how they become (text or image, label) splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_VARIABLE = "EPEE_DATA_DIR"


def data_dir() -> Path | None:
    """The configured data directory (``$EPEE_DATA_DIR``), or None when it is unset or missing."""
    value = os.environ.get(DATA_DIR_VARIABLE)
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_dir() else None


@dataclass
class Split:
    """One split of a labelled dataset: ``inputs`` (texts or images) and int ``labels`` [N]."""

    inputs: list
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, count: int | None) -> "Split":
        """The first ``count`` examples (a quick run's cap), or the whole split when ``count`` is None."""
        return self if count is None else Split(self.inputs[:count], self.labels[:count])


@dataclass
class LabelledDataset:
    """Train, validation and test splits over ``label_names``, with where they came from."""

    name: str
    label_names: list[str]
    train: Split
    val: Split
    test: Split
    source: str
    licence: str

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]
