"""PHEE pharmacovigilance events (Sun et al., EMNLP 2022): the event type of a marked trigger.

Read from ``$EPEE_DATA_DIR/events/phee/{train,dev,test}.json`` (JSON lines: ``context`` and
``annotations[0].events``); the official train, dev (validation) and test splits. One example
per event, the sentence with its trigger marked ``[TRIGGER]…[/TRIGGER]``; adverse or potential
therapeutic event. A trigger given both types by two events of one sentence is left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from epee_demo.data import LabelledDataset, Split, data_dir
from epee_demo.data.marked import MarkSchema, mark

FOLDER = Path("events") / "phee"
EVENT_TYPES = {"Adverse_event": "adverse event", "Potential_therapeutic_event": "potential therapeutic event"}
EVENT_SCHEMA = MarkSchema(
    {"TRIGGER": 1},
    "A 45-year-old woman developed severe hepatitis [TRIGGER]after[/TRIGGER] taking isoniazid.",
    "the word or phrase that signals the event",
)
SOURCE = ("PHEE v1 (Sun, Li, Tian, Sun, Wang, Cohen, Kohane and Zhao, \"PHEE: A Dataset for Pharmacovigilance "
          "Event Extraction from Text\", EMNLP 2022): sentences from published case reports")
LICENCE = "MIT (the PHEE repository's licence; credit Sun et al. 2022)"


def read_split(path: Path) -> list[dict]:
    """The sentences of one PHEE split file (JSON lines)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _fragment(argument: dict, index: int) -> tuple[int, int]:
    """The first fragment of an argument's ``index``-th mention, as (start, end)."""
    return argument["start"][index][0], argument["start"][index][0] + len(argument["text"][index][0])


def event_examples(rows: list[dict]) -> list[tuple[str, str]]:
    """(sentence with the trigger marked, event type) per event; a trigger given two types is left out."""
    examples = []
    for row in rows:
        types: dict[tuple[int, int], set] = {}
        for event in row["annotations"][0]["events"]:
            if event["event_type"] in EVENT_TYPES:
                types.setdefault(_fragment(event["Trigger"], 0), set()).add(EVENT_TYPES[event["event_type"]])
        for (start, end), names in types.items():
            if len(names) == 1:
                examples.append((mark(row["context"], [(start, end, "TRIGGER")]), names.pop()))
    return examples


def _split(examples: list[tuple[str, str]], names: list[str]) -> Split:
    return Split([text for text, _ in examples], [names.index(label) for _, label in examples])


def _rows(root: Path | None) -> dict[str, list[dict]]:
    root = Path(root) if root is not None else data_dir()
    if root is None or not (root / FOLDER / "train.json").exists():
        raise FileNotFoundError(f"PHEE is not at {FOLDER} under the data directory (EPEE_DATA_DIR)")
    return {split: read_split(root / FOLDER / f"{split}.json") for split in ("train", "dev", "test")}


def load_phee_event_type(root: Path | None = None) -> LabelledDataset:
    """Event type of a marked trigger: official train, dev (as validation) and test."""
    rows, names = _rows(root), list(EVENT_TYPES.values())
    splits = [_split(event_examples(rows[s]), names) for s in ("train", "dev", "test")]
    return LabelledDataset("phee-event-type", names, *splits, SOURCE, LICENCE)
