"""Set the negative class's logit offset of each exit head of a trained DDI folder on validation.

`epee-demo train --task ddi` trains on every positive pair and a seeded subsample of the negative
pairs of the training documents, so every exit learns a prior with too few negatives. This adds an
offset to the negative class's logit of each exit head (the bias of its last linear layer), chosen
for that exit on the validation trace: the offset, on a grid from -r to r with r = log(negatives in
the training documents / negatives kept) (r is the full prior correction, Saerens et al., Neural
Computation 2002; the grid is symmetric because a run continued from a corrected folder starts
from its offsets), with that exit's best validation micro-F1 (`epee_demo.training.logit_offset`
with one offset per exit, which rewrites the traces and records the choice); the figures of
metrics.json and the card follow. Run it once on a freshly trained folder:

    EPEE_DATA_DIR=../shared/data python scripts/ddi_prior_correction.py assets/ddi
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from epee_demo.analysis.task_metrics import NEGATIVE
from epee_demo.data import data_dir
from epee_demo.data.ddi import CORPUS, NEGATIVES_PER_POSITIVE, _in_val, negatives_kept, read_corpus
from epee_demo.data.tasks import TASKS
from epee_demo.model import folder as model_folder
from epee_demo.training.joint import dataset_options_of, refresh_folder_figures
from epee_demo.training.logit_offset import add_class_offset

GRID_STEPS = 10


def negative_log_ratio(negatives_per_positive: float = NEGATIVES_PER_POSITIVE) -> float:
    """log(negative training-document pairs / negative pairs kept for training)."""
    train = [p for p in read_corpus(data_dir() / CORPUS)["train"] if not _in_val(p.document)]
    negatives = sum(p.label == "negative" for p in train)
    return math.log(negatives / negatives_kept(negatives, len(train) - negatives, negatives_per_positive))


def main(folder: Path) -> None:
    task = TASKS["ddi"]
    options = dataset_options_of(model_folder.read_metrics(folder))  # the split the folder was trained on
    ratio = negative_log_ratio(options.get("negatives_per_positive", NEGATIVES_PER_POSITIVE))
    grid = np.linspace(-ratio, ratio, 2 * GRID_STEPS + 1)
    offsets, traces = add_class_offset(folder, NEGATIVE, grid, task.metric, per_exit=True)
    refresh_folder_figures(folder, traces, task.load_dataset, task.card_notes)
    print("offsets per exit " + " ".join(f"{d:.3f}" for d in offsets) + " added to the negative class")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
