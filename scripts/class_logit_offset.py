"""Add one class's logit offset, chosen on validation, to every exit head of a trained folder.

The same mechanism as DDI's negative-class offset (`scripts/ddi_prior_correction.py`), on a grid
given here: `epee_demo.training.logit_offset` picks the offset with the best last-exit validation
score of the task's metric (the middle of a tied plateau), adds it to that class's bias in every
exit head, rewrites the val/test traces, records the choice in config.json; this script then
refreshes metrics.json and the model card. Run it once on a freshly trained folder, e.g.:

    EPEE_DATA_DIR=../shared/data python scripts/class_logit_offset.py /tmp/breast --task breast \\
        --label malignant --low -2 --high 2 --steps 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from epee_demo.data.tasks import TASKS
from epee_demo.model import folder as model_folder
from epee_demo.training.joint import refresh_folder_figures
from epee_demo.training.logit_offset import add_class_offset, record_key


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--label", required=True, help="the class whose logit moves (a label name)")
    parser.add_argument("--low", type=float, required=True)
    parser.add_argument("--high", type=float, required=True)
    parser.add_argument("--steps", type=int, required=True, help="grid intervals between low and high")
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    spec = model_folder.read_spec(args.folder)
    if record_key(args.label) in spec.extra:
        raise SystemExit(f"{args.folder} already has a {args.label} offset: run this once, on a fresh folder")
    if args.label not in spec.label_names:
        raise SystemExit(f"no class {args.label!r}; the classes are {', '.join(spec.label_names)}")
    grid = np.linspace(args.low, args.high, args.steps + 1)
    offsets, traces = add_class_offset(args.folder, spec.label_names.index(args.label), grid, task.metric)
    refresh_folder_figures(args.folder, traces, task.load_dataset, task.card_notes)
    record = model_folder.read_spec(args.folder).extra[record_key(args.label)]
    print(f"offset {offsets[-1]:.4f} added to {args.label} in every exit head; validation "
          f"{task.metric} of the last exit over the grid: {record[f'val_last_exit_{task.metric}']}")


if __name__ == "__main__":
    main()
