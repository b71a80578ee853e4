"""Set the negative class's logit offset of each exit head of a trained DDI folder on validation.

`epee-demo train --task ddi` trains on every positive pair and a seeded subsample of the negative
pairs of the training documents, so every exit learns a prior with too few negatives. This adds an
offset to the negative class's logit of each exit head (the bias of its last linear layer), chosen
for that exit on the validation trace: the offset, on a grid from -r to r with r = log(negatives in
the training documents / negatives kept) (r is the full prior correction, Saerens et al., Neural
Computation 2002; the grid is symmetric because a run continued from a corrected folder starts
from its offsets), with that exit's best validation micro-F1. A head's bias moving by d multiplies
that class's probability by e^d before renormalizing, so the val/test traces are rewritten exactly
from the old ones (the pooled states, and so the CALM cosines, do not change); the figures of
metrics.json and the card follow. Run it once on a freshly trained folder:

    EPEE_DATA_DIR=../shared/data python scripts/ddi_prior_correction.py assets/ddi
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from epee_demo.data import data_dir
from epee_demo.data.ddi import CORPUS, NEGATIVES_PER_POSITIVE, _in_val, read_corpus
from epee_demo.model import folder as model_folder
from epee_demo.analysis.task_metrics import micro_f1_positive
from epee_demo.data.tasks import TASKS
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.joint import refresh_trace_figures

GRID_STEPS = 10


def negative_log_ratio() -> float:
    """log(negative training-document pairs / negative pairs kept for training)."""
    train = [p for p in read_corpus(data_dir() / CORPUS)["train"] if not _in_val(p.document)]
    negatives = sum(p.label == "negative" for p in train)
    kept = min(negatives, int(NEGATIVES_PER_POSITIVE * (len(train) - negatives)))
    return math.log(negatives / kept)


def shifted(trace: ExitTrace, offsets: np.ndarray) -> ExitTrace:
    """The trace of the same model with ``offsets`` [L] added to the negative class's logit of each exit."""
    probs = trace.probs.astype(np.float64).copy()
    probs[..., 0] *= np.exp(np.broadcast_to(offsets, (trace.num_layers,)))
    probs /= probs.sum(axis=-1, keepdims=True)
    return replace(trace, probs=probs.astype(np.float32))


def main(folder: Path) -> None:
    traces = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    ratio = negative_log_ratio()
    grid = np.linspace(-ratio, ratio, 2 * GRID_STEPS + 1)
    val = traces["val"]
    scores = np.array([[micro_f1_positive(shifted(val, d).probs[:, i].argmax(-1), val.labels, len(val.label_names))
                        for d in grid] for i in range(val.num_layers)])  # [L, grid]
    offsets = grid[scores.argmax(axis=1)]
    weights = load_file(model_folder.weights_path(folder))
    for layer, offset in enumerate(offsets):
        weights[f"heads.{layer}.out.bias"][0] += float(offset)
    save_file(weights, model_folder.weights_path(folder))
    spec = model_folder.read_spec(folder)
    spec.extra["negative_logit_offset"] = {
        "offsets": [round(float(d), 4) for d in offsets], "grid": [round(float(d), 4) for d in grid],
        "val_micro_f1_per_exit": [[round(float(s), 4) for s in row] for row in scores]}
    model_folder.write_spec(spec, folder)
    for split, trace in traces.items():
        traces[split] = shifted(trace, offsets)
        model_folder.write_trace(traces[split], folder, split)
    task = TASKS["ddi"]
    refresh_trace_figures(spec, task.load_dataset(), folder, traces, task.card_notes)
    print("offsets per exit " + " ".join(f"{d:.3f}" for d in offsets) + " (validation micro-F1 per exit "
          + " ".join(f"{s:.4f}" for s in scores.max(axis=1)) + ")")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
