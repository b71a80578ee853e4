"""One class's logit offset, chosen on validation and added to every exit head of a trained folder.

A head's output bias moving by d for class c multiplies that class's probability by e^d before
renormalizing, so the val/test traces are rewritten exactly from the old ones (the pooled states,
and so the CALM cosines, do not change). Every exit gets the same offset, chosen for the last exit
by the task's metric on the VALIDATION trace. The choice is recorded in ``config.json``
(``extra["<class>_logit_offset"]``: the offset, the grid and the validation score at each point),
and the figures of ``metrics.json`` and the model card follow.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from epee_demo.analysis import task_metrics
from epee_demo.model import folder as model_folder
from epee_demo.trace.exit_trace import ExitTrace


def shifted(trace: ExitTrace, class_index: int, offset: float) -> ExitTrace:
    """The trace of the same model with ``offset`` added to class ``class_index``'s logit at every exit."""
    probs = trace.probs.astype(np.float64).copy()
    probs[..., class_index] *= math.exp(offset)
    probs /= probs.sum(axis=-1, keepdims=True)
    return replace(trace, probs=probs.astype(np.float32))


def last_exit_scores(trace: ExitTrace, class_index: int, grid, metric: str) -> np.ndarray:
    """The last exit's ``metric`` (a name in ``task_metrics.METRICS``) on ``trace`` at each offset of ``grid``."""
    logits = np.log(np.maximum(trace.probs[:, -1].astype(np.float64), np.finfo(np.float64).tiny))
    moved = logits[None] + np.multiply.outer(np.asarray(grid, dtype=np.float64), np.eye(logits.shape[1])[class_index])[:, None]
    predictions = moved.argmax(axis=-1)  # [G, N]
    return np.asarray(task_metrics.METRICS[metric].compute(predictions, trace.labels, len(trace.label_names)))


def chosen_offset(grid, scores) -> float:
    """The offset of the best score; where several grid points tie for it, the median of them
    (the middle of a plateau rather than its edge; a unique best is itself)."""
    grid, scores = np.asarray(grid, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    best = grid[np.isclose(scores, scores.max(), rtol=0.0, atol=1e-12)]
    return float(best[(len(best) - 1) // 2])


def record_key(label_name: str) -> str:
    """The ``config.json`` extra key of an offset on ``label_name`` ("negative" -> "negative_logit_offset")."""
    return f"{label_name.replace(' ', '_')}_logit_offset"


def add_class_offset(folder: Path, class_index: int, grid, metric: str = "accuracy") -> tuple[float, dict]:
    """Choose the offset of class ``class_index`` on ``folder``'s validation trace (``last_exit_scores``,
    ``chosen_offset``), add it to that class's bias in every exit head, rewrite both traces and record
    the choice in the config. Returns the offset and the rewritten traces by split; the caller
    refreshes the metrics and card (``training.joint.refresh_trace_figures``)."""
    folder = Path(folder)
    traces = {split: model_folder.read_trace(folder, split) for split in model_folder.SPLITS}
    grid = np.asarray(grid, dtype=np.float64)
    scores = last_exit_scores(traces["val"], class_index, grid, metric)
    offset = chosen_offset(grid, scores)
    weights = load_file(model_folder.weights_path(folder))
    heads = sorted(k for k in weights if k.startswith("heads.") and k.endswith(".out.bias"))
    if not heads:
        raise ValueError(f"{folder} has no exit head biases (heads.*.out.bias)")
    for key in heads:
        weights[key][class_index] += offset
    save_file(weights, model_folder.weights_path(folder))
    spec = model_folder.read_spec(folder)
    spec.extra[record_key(spec.label_names[class_index])] = {
        "offset": offset, "grid": [round(float(d), 4) for d in grid],
        f"val_last_exit_{metric}": [round(float(s), 4) for s in scores]}
    model_folder.write_spec(spec, folder)
    for split, trace in traces.items():
        traces[split] = shifted(trace, class_index, offset)
        model_folder.write_trace(traces[split], folder, split)
    return offset, traces
