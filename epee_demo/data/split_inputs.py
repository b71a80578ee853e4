"""The inputs of the split examples the page shows, shipped beside a model (``split_inputs.npz``).

A cached trace holds probabilities and labels, not inputs. The overthinking gallery and the lesson
show a few test examples themselves (the note, the marked sentence, the image): the lesson's example
and at most ``SHIPPED_PER_CLASS`` overthinking examples per gold class (``shipped_indices``: the
datasets stay in the data directory; a model folder holds only a few examples of its test split, with
attribution). ``scripts/ship_split_inputs.py`` stores those inputs, texts (a marked task's in the marked syntax)
or uint8 images, with the dataset's source and licence; ``read_split_inputs`` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHIPPED_PER_CLASS = 2  # overthinking examples of each gold class whose input ships with a model


def shipped_indices(destructive: np.ndarray, labels: np.ndarray, always: int,
                    per_class: int = SHIPPED_PER_CLASS) -> list[int]:
    """The test examples whose inputs ship: ``always`` (the lesson's) and the first ``per_class``
    examples of each gold class among the ``destructive`` ones (bool [N], the gallery's rows)."""
    chosen = {int(always)}
    for label in np.unique(labels[destructive]):
        chosen.update(np.flatnonzero(destructive & (labels == label))[:per_class].tolist())
    return sorted(chosen)


@dataclass
class SplitInputs:
    """Shipped inputs by split and example index, and the attribution line for the page."""

    inputs: dict[str, dict[int, object]] = field(default_factory=dict)
    source: str = ""
    licence: str = ""

    def get(self, split: str, index: int):
        """Example ``index``'s input of ``split`` (a text or a uint8 image), or None when not shipped."""
        return self.inputs.get(split, {}).get(int(index))

    @property
    def attribution(self) -> str:
        return f"From {self.source}. Licence: {self.licence}." if self.source else ""


def write_split_inputs(path: str | Path, inputs: dict[str, dict[int, object]], source: str, licence: str) -> Path:
    """Store ``inputs`` (split -> index -> text or image; all texts or all images of one shape) in ``path``."""
    arrays = {"source": np.array(source), "licence": np.array(licence)}
    for split, by_index in inputs.items():
        indices = sorted(by_index)
        values = [by_index[i] for i in indices]
        arrays[f"{split}_index"] = np.array(indices, dtype=np.int64)
        arrays[f"{split}_input"] = (np.stack([np.asarray(v, dtype=np.uint8) for v in values]) if values and
                                    not isinstance(values[0], str) else np.array(values, dtype=str))
    np.savez_compressed(path, **arrays)
    return Path(path)


def read_split_inputs(path: str | Path) -> SplitInputs:
    """What ``write_split_inputs`` stored; empty when the file is missing."""
    path = Path(path)
    if not path.is_file():
        return SplitInputs()
    with np.load(path, allow_pickle=False) as data:
        inputs = {}
        for key in data.files:
            if key.endswith("_index"):
                split = key.removesuffix("_index")
                values = data[f"{split}_input"]
                inputs[split] = {int(i): (str(v) if values.dtype.kind == "U" else v.copy())
                                 for i, v in zip(data[key], values)}
        return SplitInputs(inputs, str(data["source"]), str(data["licence"]))
