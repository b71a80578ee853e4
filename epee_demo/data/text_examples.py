"""Test-split sentences that ship beside a marked-text model (``examples.json``) for the page.

``epee-demo train`` writes them for a task with marks: ``EXAMPLES_PER_CLASS`` short test
sentences per class (seeded), in the marked syntax, with their gold label, test index, and the
dataset's source and licence. The page reads them with ``read_text_examples``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from epee_demo.data import LabelledDataset
from epee_demo.data.marked import MarkSchema

EXAMPLES_PER_CLASS = 3
MAX_EXAMPLE_CHARS = 320  # short sentences read better on the page


@dataclass(frozen=True)
class TextExample:
    """One shipped test sentence: its marked text, gold label name and index in the test split."""

    text: str
    label_name: str
    index: int


def choose_text_examples(dataset: LabelledDataset, schema: MarkSchema, per_class: int,
                         seed: int = 0) -> list[TextExample]:
    """Up to ``per_class`` short test sentences of each class, chosen at random (seeded), class by
    class in label order, each valid under ``schema``."""
    rng, chosen = random.Random(seed), []
    test = dataset.test
    for label, name in enumerate(dataset.label_names):
        indices = [i for i, y in enumerate(test.labels) if y == label and len(test.inputs[i]) <= MAX_EXAMPLE_CHARS]
        for index in sorted(rng.sample(indices, min(per_class, len(indices)))):
            text = schema.marked_from_masks(test.inputs[index])
            schema.parse(text)
            chosen.append(TextExample(text, name, index))
    return chosen


def write_text_examples(dataset: LabelledDataset, schema: MarkSchema, per_class: int, path: Path) -> Path:
    """Write the chosen examples with the dataset's source and licence to ``path`` (JSON)."""
    examples = choose_text_examples(dataset, schema, per_class)
    payload = {"source": dataset.source, "licence": dataset.licence, "split": "test",
               "examples": [{"text": e.text, "label": e.label_name, "test_index": e.index} for e in examples]}
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return Path(path)


def read_text_examples(path: Path) -> tuple[list[TextExample], str]:
    """The shipped examples and one line of attribution; ([], "") when the file is missing."""
    path = Path(path)
    if not path.exists():
        return [], ""
    payload = json.loads(path.read_text())
    examples = [TextExample(e["text"], e["label"], int(e["test_index"])) for e in payload["examples"]]
    return examples, f"Test-split sentences from {payload['source']}. Licence: {payload['licence']}."
