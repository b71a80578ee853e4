"""Set the negative class's logit offset of every exit head of a trained DDI folder on validation.

`epee-demo train --task ddi` trains on every positive pair and a seeded subsample of the negative
pairs of the training documents, so every exit learns a prior with too few negatives. This adds one
offset to the negative class's logit of every exit head (the bias of its last linear layer), chosen
on the validation trace: the offset, on a grid from 0 to log(negatives in the training documents /
negatives kept) (the full prior correction, Saerens et al., Neural Computation 2002), with the best
last-exit validation micro-F1. A head's bias moving by d multiplies that class's probability by
e^d before renormalizing, so the val/test traces are rewritten exactly from the old ones (the pooled
states, and so the CALM cosines, do not change); the figures of metrics.json and the card follow.
Run it once on a freshly trained folder:

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


def shifted(trace: ExitTrace, offset: float) -> ExitTrace:
    """The trace of the same model with ``offset`` added to the negative class's logit at every exit."""
    probs = trace.probs.astype(np.float64).copy()
    probs[..., 0] *= math.exp(offset)
    probs /= probs.sum(axis=-1, keepdims=True)
    return replace(trace, probs=probs.astype(np.float32))


def main(folder: Path) -> None:
    traces = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    grid = np.linspace(0.0, negative_log_ratio(), GRID_STEPS + 1)
    val = traces["val"]
    scores = [micro_f1_positive(shifted(val, d).probs[:, -1].argmax(-1), val.labels, len(val.label_names))
              for d in grid]
    offset = float(grid[int(np.argmax(scores))])
    weights = load_file(model_folder.weights_path(folder))
    heads = sorted(k for k in weights if k.startswith("heads.") and k.endswith(".out.bias"))
    for key in heads:
        weights[key][0] += offset
    save_file(weights, model_folder.weights_path(folder))
    spec = model_folder.read_spec(folder)
    spec.extra["negative_logit_offset"] = {
        "offset": offset, "grid": [round(float(d), 4) for d in grid],
        "val_last_exit_micro_f1": [round(s, 4) for s in scores]}
    model_folder.write_spec(spec, folder)
    for split, trace in traces.items():
        traces[split] = shifted(trace, offset)
        model_folder.write_trace(traces[split], folder, split)
    task = TASKS["ddi"]
    refresh_trace_figures(spec, task.load_dataset(), folder, traces, task.card_notes)
    print(f"offset {offset:.4f} (validation micro-F1 {max(scores):.4f}) added to {len(heads)} exit heads")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
