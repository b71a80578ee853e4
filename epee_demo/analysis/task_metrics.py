"""A task's headline metric per exit and for every exit rule at its default setting: pure NumPy.

Relation extraction scores micro-F1 over the positive classes (class 0 is "no relation"),
as the DDI 2013 evaluation and BLURB do (for a binary task such as GAD it is the F1 of the
positive class); the event tasks score macro-F1 over every class beside accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from epee_demo.rules import catalogue
from epee_demo.trace.exit_trace import ExitTrace

NEGATIVE = 0  # the "no relation" class of a relation task


def _counts(predictions, labels, num_classes: int):
    """True positives and predicted counts per class, int [..., C] each, and gold counts int [C],
    for predictions int [..., N] (any leading axes: settings) against labels int [N]."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    lead, n = predictions.shape[:-1], predictions.shape[-1]
    flat = predictions.reshape(-1, n)
    rows = np.arange(flat.shape[0])[:, None] * num_classes
    size = flat.shape[0] * num_classes
    tp = np.bincount((rows + labels)[flat == labels], minlength=size)
    predicted = np.bincount((rows + flat).ravel(), minlength=size)
    shape = (*lead, num_classes)
    return tp.reshape(shape), predicted.reshape(shape), np.bincount(labels, minlength=num_classes)


def _f1(tp, predicted, gold) -> np.ndarray:
    """F1 from counts (0 where a class is neither predicted nor gold)."""
    denominator = np.asarray(predicted + gold, dtype=np.float64)
    return np.divide(2.0 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def _value(score):
    """A float for one set of predictions, an array [...] for predictions with leading axes."""
    return float(score) if np.ndim(score) == 0 else np.asarray(score, dtype=np.float64)


def micro_f1_positive(predictions, labels, num_classes: int):
    """Micro-F1 over every class but ``NEGATIVE``: the pooled true positives, predictions and gold
    examples of the positive classes (a negative predicted as positive counts against precision).
    Predictions int [N] give a float; int [..., N] (settings on leading axes) an array [...]."""
    tp, predicted, gold = _counts(predictions, labels, num_classes)
    keep = np.arange(num_classes) != NEGATIVE
    return _value(_f1(tp[..., keep].sum(axis=-1), predicted[..., keep].sum(axis=-1), gold[keep].sum()))


def macro_f1(predictions, labels, num_classes: int):
    """Unweighted mean of the per-class F1 over the classes present in the gold labels
    (predictions int [N] or int [..., N], as ``micro_f1_positive``)."""
    tp, predicted, gold = _counts(predictions, labels, num_classes)
    return _value(_f1(tp, predicted, gold)[..., gold > 0].mean(axis=-1))


def accuracy(predictions, labels, num_classes: int):
    """Share of predictions equal to the gold label (predictions int [N] or int [..., N])."""
    return _value((np.asarray(predictions) == np.asarray(labels)).mean(axis=-1))


@dataclass(frozen=True)
class Metric:
    """A named metric of (predictions [N], labels [N], number of classes) -> float; predictions
    [..., N] (many settings at once) give an array [...]."""

    name: str
    title: str
    compute: Callable


METRICS = {
    "accuracy": Metric("accuracy", "accuracy", accuracy),
    "micro_f1_positive": Metric("micro_f1_positive", "micro-F1 over the positive classes", micro_f1_positive),
    "macro_f1": Metric("macro_f1", "macro-F1", macro_f1),
}


def per_layer(trace: ExitTrace, metric: str) -> list[float]:
    """``metric`` of every exit on a labelled trace, a list of L floats."""
    compute, classes = METRICS[metric].compute, len(trace.label_names)
    return [compute(trace.predictions[:, i], trace.labels, classes) for i in range(trace.num_layers)]


def rules_at_default(trace: ExitTrace, metrics: tuple[str, ...]) -> list[dict]:
    """Every rule the trace can evaluate (fixed depth aside) at its default setting: each metric of
    its answers, its mean exit layer and its ideal speed-up (L / mean exit layer)."""
    rows, classes = [], len(trace.label_names)
    for rule in trace.available_rules():
        if rule == "fixed":
            continue
        params = dict(catalogue.RULES[rule].params)
        exits, answers = catalogue.exit_answers(trace.probs, rule, scores=trace.scores_for(rule), **params)
        predictions = answers.argmax(axis=-1)
        mean_exit = float(exits.mean())
        rows.append({
            "rule": rule, "params": params,
            **{name: METRICS[name].compute(predictions, trace.labels, classes) for name in metrics},
            "average_exit_layer": mean_exit, "speedup": trace.num_layers / mean_exit,
        })
    return rows
