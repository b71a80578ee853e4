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

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from epee_demo.data import data_dir
from epee_demo.data.ddi import CORPUS, NEGATIVES_PER_POSITIVE, _in_val, read_corpus
from epee_demo.model.multi_exit import read_spec
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
    traces = {split: ExitTrace.load(folder / f"trace_{split}.npz") for split in ("val", "test")}
    grid = np.linspace(0.0, negative_log_ratio(), GRID_STEPS + 1)
    val = traces["val"]
    scores = [micro_f1_positive(shifted(val, d).probs[:, -1].argmax(-1), val.labels, len(val.label_names))
              for d in grid]
    offset = float(grid[int(np.argmax(scores))])
    weights = load_file(folder / "weights.safetensors")
    heads = sorted(k for k in weights if k.startswith("heads.") and k.endswith(".out.bias"))
    for key in heads:
        weights[key][0] += offset
    save_file(weights, folder / "weights.safetensors")
    spec_path = folder / "model.json"
    spec_json = json.loads(spec_path.read_text())
    spec_json.setdefault("extra", {})["negative_logit_offset"] = {
        "offset": offset, "grid": [round(float(d), 4) for d in grid],
        "val_last_exit_micro_f1": [round(s, 4) for s in scores]}
    spec_path.write_text(json.dumps(spec_json, indent=2) + "\n")
    for split, trace in traces.items():
        traces[split] = shifted(trace, offset)
        traces[split].save(folder / f"trace_{split}.npz")
    task = TASKS["ddi"]
    refresh_trace_figures(read_spec(folder), task.load_dataset(), folder, traces, task.card_notes)
    print(f"offset {offset:.4f} (validation micro-F1 {max(scores):.4f}) added to {len(heads)} exit heads")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
