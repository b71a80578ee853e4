"""Ship the inputs of the test examples the page shows beside each model (``split_inputs.npz``).

The overthinking gallery lists the examples that some exit answers right and the last exit wrong;
the lesson follows one test example. Their test-split inputs are read
from the data directory (the dataset's own loader, so the order is the trace's: the labels are
checked example by example), stored in the folder, and the model card's section on them, with the
source and licence, is rewritten (``model.folder.split_inputs_section``; a card written later keeps
it). Run it again after a retrain changes the traces. Example:

    EPEE_DATA_DIR=../shared/data python scripts/ship_split_inputs.py assets/organ-system assets/ddi
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from epee_demo.analysis.whole_split import overthinking, prepare
from epee_demo.data.split_inputs import read_split_inputs, shipped_indices, write_split_inputs
from epee_demo.data.tasks import TASKS
from epee_demo.model import folder as model_folder
from epee_demo.training.joint import dataset_options_of
from epee_demo.ui.lesson_tab import lesson_example

SPLITS = ("test",)  # the validation split's inputs do not ship (the data directory's licence terms: test examples)


def shown_indices(trace) -> list[int]:
    """The test examples whose inputs ship: the lesson's, and a few of the gallery's per class."""
    prep = prepare(trace)
    destructive = overthinking(prep).destructive if prep.has_labels else np.zeros(prep.num_examples, bool)
    return shipped_indices(destructive, np.asarray(trace.labels), lesson_example(prep))


def ship(folder: Path, datasets: dict) -> dict[str, int]:
    task = TASKS[folder.name]
    options = dataset_options_of(model_folder.read_metrics(folder))  # the split the folder was trained on
    key = (task.load_dataset, json.dumps(options, sort_keys=True))
    if key not in datasets:
        datasets[key] = task.load_dataset(**options)
    dataset = datasets[key]
    inputs = {}
    for split in SPLITS:
        trace, data = model_folder.read_trace(folder, split), dataset.split(split)
        if list(trace.labels) != list(data.labels):
            raise SystemExit(f"{folder}: the {split} trace's labels differ from the dataset's: retrain or check the data")
        values = {}
        for i in shown_indices(trace):
            value = data.inputs[i]
            values[i] = task.marks.marked_from_masks(value) if task.marks is not None else value
        inputs[split] = values
    path = write_split_inputs(model_folder.split_inputs_path(folder), inputs, dataset.source, dataset.licence)
    model_folder.refresh_split_inputs_section(folder)
    return {split: len(values) for split, values in read_split_inputs(path).inputs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    datasets: dict = {}
    for folder in args.folders:
        count = ship(folder, datasets)
        size = model_folder.split_inputs_path(folder).stat().st_size
        print(f"{folder}: {count} inputs, {size / 1024:.1f} kB")


if __name__ == "__main__":
    main()
