"""One class's logit offset, chosen on validation and added to every exit head of a trained folder.

A head's output bias moving by d for class c multiplies that class's probability by e^d before
renormalizing, so the val/test traces are rewritten exactly from the old ones (the pooled states,
and so the CALM cosines, do not change). The offsets are chosen by the task's metric on the
VALIDATION trace: one for every exit, chosen for the last exit, or (``per_exit=True``) one per exit,
each chosen for its own exit. The choice is recorded in ``config.json``
(``extra["<class>_logit_offset"]``: the offsets, the grid and the validation scores at each point),
and the figures of ``metrics.json`` and the model card follow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from epee_demo.analysis import task_metrics
from epee_demo.model import folder as model_folder
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.training.head_edit import OFFSET_RECORD_SUFFIX, editable_traces, trace_logits, write_head_edit


def shifted(trace: ExitTrace, class_index: int, offset) -> ExitTrace:
    """The trace of the same model with ``offset`` (one number, or one per exit [L]) added to class
    ``class_index``'s logit at every exit."""
    probs = trace.probs.astype(np.float64).copy()
    probs[..., class_index] *= np.exp(np.broadcast_to(np.asarray(offset, dtype=np.float64), (trace.num_layers,)))
    probs /= probs.sum(axis=-1, keepdims=True)
    return replace(trace, probs=probs.astype(np.float32))


def scores_at_offsets(trace: ExitTrace, class_index: int, grid, metric: str, layer: int) -> np.ndarray:
    """Exit ``layer``'s ``metric`` (a name in ``task_metrics.METRICS``) on ``trace`` at each offset of ``grid``."""
    logits = trace_logits(trace.probs[:, layer])
    moved = logits[None] + np.multiply.outer(np.asarray(grid, dtype=np.float64), np.eye(logits.shape[1])[class_index])[:, None]
    predictions = moved.argmax(axis=-1)  # [G, N]
    return np.asarray(task_metrics.METRICS[metric].compute(predictions, trace.labels, len(trace.label_names)))


def last_exit_scores(trace: ExitTrace, class_index: int, grid, metric: str) -> np.ndarray:
    """The last exit's ``metric`` on ``trace`` at each offset of ``grid`` (``scores_at_offsets`` of the last layer)."""
    return scores_at_offsets(trace, class_index, grid, metric, trace.num_layers - 1)


def chosen_offset(grid, scores) -> float:
    """The offset of the best score; where several grid points tie for it, the median of them
    (the middle of a plateau rather than its edge; a unique best is itself)."""
    grid, scores = np.asarray(grid, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    best = grid[np.isclose(scores, scores.max(), rtol=0.0, atol=1e-12)]
    return float(best[(len(best) - 1) // 2])


def _rounded(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def record_key(label_name: str) -> str:
    """The ``config.json`` extra key of an offset on ``label_name`` ("negative" -> "negative_logit_offset")."""
    return label_name.replace(" ", "_") + OFFSET_RECORD_SUFFIX


def add_class_offset(folder: Path, class_index: int, grid, metric: str = "accuracy",
                     per_exit: bool = False) -> tuple[np.ndarray, dict]:
    """Choose the offsets of class ``class_index`` on ``folder``'s validation trace (``scores_at_offsets``,
    ``chosen_offset``): one for every exit, chosen for the last, or one per exit, each chosen for its
    own exit; add them to that class's bias in the exit heads, rewrite both traces and record the
    choice in the config. Returns the offsets [L] and the rewritten traces by split; the caller
    refreshes the metrics and card (``training.joint.refresh_trace_figures``)."""
    folder = Path(folder)
    traces = editable_traces(folder, "add the offset")
    spec = model_folder.read_spec(folder)
    if model_folder.TEMPERATURES_KEY in spec.extra:
        raise ValueError(f"{folder} has temperature-scaled exits, fitted to the exits as they were: add the "
                         "offset before the temperature scaling (scripts/temperature_scale_exits.py)")
    grid = np.asarray(grid, dtype=np.float64)
    val = traces["val"]
    chosen_for = range(val.num_layers) if per_exit else [val.num_layers - 1]
    scores = np.stack([scores_at_offsets(val, class_index, grid, metric, layer) for layer in chosen_for])  # [L or 1, G]
    offsets = np.broadcast_to([chosen_offset(grid, row) for row in scores], (val.num_layers,)).copy()
    record = {"grid": _rounded(grid)}
    if per_exit:
        record.update(offsets=_rounded(offsets), **{f"val_{metric}_per_exit": [_rounded(row) for row in scores]})
    else:
        record.update(offset=float(offsets[-1]), **{f"val_last_exit_{metric}": _rounded(scores[0])})
    heads = [f"heads.{layer}.out.bias" for layer in range(val.num_layers)]

    def offset_bias(key: str, bias):  # key "heads.<layer>.out.bias"
        bias[class_index] += float(offsets[int(key.split(".")[1])])
        return bias

    traces = write_head_edit(folder, record_key(spec.label_names[class_index]), record, heads, offset_bias, traces,
                             lambda trace: shifted(trace, class_index, offsets))
    return offsets, traces
