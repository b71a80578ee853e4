"""PHEE pharmacovigilance events (Sun et al., EMNLP 2022) as two marked-text classification tasks.

Read from ``$EPEE_DATA_DIR/events/phee/{train,dev,test}.json`` (JSON lines: ``context`` and
``annotations[0].events``); the official train, dev (validation) and test splits.

- **Event type** (``load_phee_event_type``): one example per event, the sentence with its
  trigger marked ``[TRIGGER]…[/TRIGGER]``; adverse or potential therapeutic event. A trigger
  given both types by two events of one sentence is left out.
- **Argument role** (``load_phee_argument_role``): one example per distinct argument span, the
  sentence with that span marked ``[ARG]…[/ARG]``; ``ROLE_NAMES`` are the main arguments (subject,
  treatment, effect) and the sub-arguments with at least 150 training spans; rarer sub-arguments
  (duration 91, frequency 60, race 40) and the attributes (speculated, negated, severity) are left
  out. A span that is both a main argument and a sub-argument (a treatment that is just its drug)
  takes the sub-argument, the more specific role; a span given different roles by two events of one
  sentence is left out. Discontinuous spans are marked on their first fragment.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from epee_demo.data import LabelledDataset, Split, data_dir
from epee_demo.data.marked import MarkSchema, mark

FOLDER = Path("events") / "phee"
EVENT_TYPES = {"Adverse_event": "adverse event", "Potential_therapeutic_event": "potential therapeutic event"}
MAIN_ROLES = {"Subject": "subject", "Treatment": "treatment", "Effect": "effect"}
SUB_ROLES = {
    ("Subject", "Age"): "age", ("Subject", "Gender"): "gender", ("Subject", "Population"): "population",
    ("Subject", "Disorder"): "subject's disorder", ("Treatment", "Drug"): "drug",
    ("Treatment", "Dosage"): "dosage", ("Treatment", "Route"): "route",
    ("Treatment", "Disorder"): "indication (treated disorder)", ("Treatment", "Time_elapsed"): "time elapsed",
}
ROLE_NAMES = [*MAIN_ROLES.values(), *SUB_ROLES.values()]
ROLE_TRAIN_CAP = 600  # training spans kept per role (seeded), so that one epoch fits a shared CPU
ROLE_VAL_SIZE = 1500  # validation spans kept (a seeded sample of dev); test keeps every span

EVENT_SCHEMA = MarkSchema(
    {"TRIGGER": 1},
    "A 45-year-old woman developed severe hepatitis [TRIGGER]after[/TRIGGER] taking isoniazid.",
    "the word or phrase that signals the event",
)
ROLE_SCHEMA = MarkSchema(
    {"ARG": 1},
    "A 45-year-old woman developed severe hepatitis after taking [ARG]isoniazid[/ARG].",
    "the argument whose role is asked",
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


def role_examples(rows: list[dict]) -> list[tuple[str, str]]:
    """(sentence with one argument span marked, its role) per distinct span of a sentence."""
    examples = []
    for row in rows:
        roles: dict[tuple[int, int], set] = {}
        for event in row["annotations"][0]["events"]:
            found: dict[tuple[int, int], str] = {}
            for key, main in MAIN_ROLES.items():
                argument = event.get(key)
                if not isinstance(argument, dict):
                    continue
                for i in range(len(argument["text"])):
                    found.setdefault(_fragment(argument, i), main)
                for (parent, sub), name in SUB_ROLES.items():
                    if parent == key and isinstance(argument.get(sub), dict):
                        for i in range(len(argument[sub]["text"])):
                            found[_fragment(argument[sub], i)] = name  # the sub-argument is more specific
            for span, name in found.items():
                roles.setdefault(span, set()).add(name)
        for (start, end), names in sorted(roles.items()):
            if len(names) == 1:
                examples.append((mark(row["context"], [(start, end, "ARG")]), names.pop()))
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


def load_phee_argument_role(root: Path | None = None, seed: int = 0) -> LabelledDataset:
    """Role of a marked argument span; training capped at ``ROLE_TRAIN_CAP`` spans per role,
    validation a seeded sample of ``ROLE_VAL_SIZE`` dev spans, test every test span."""
    rows, rng = _rows(root), random.Random(seed)
    train, kept = role_examples(rows["train"]), Counter()
    rng.shuffle(train)
    capped = []
    for text, label in train:
        if kept[label] < ROLE_TRAIN_CAP:
            kept[label] += 1
            capped.append((text, label))
    val = role_examples(rows["dev"])
    val = [val[i] for i in sorted(rng.sample(range(len(val)), min(ROLE_VAL_SIZE, len(val))))]
    splits = [_split(capped, ROLE_NAMES), _split(val, ROLE_NAMES), _split(role_examples(rows["test"]), ROLE_NAMES)]
    return LabelledDataset("phee-argument-role", list(ROLE_NAMES), *splits, SOURCE, LICENCE)
