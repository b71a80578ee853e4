"""A batch of inputs under one exit rule: per row its exit, answer and agreement with the full model,
and a summary. Pure NumPy over the batch's ``ExitTrace`` (the page runs the model once per batch,
and every rule change recomputes from the trace)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from epee_demo.analysis.whole_split import format_params, speedup_text
from epee_demo.rules import catalogue
from epee_demo.trace.exit_trace import ExitTrace

ROW_HEADERS = ["row", "exit layer", "answer", "probability", "full-model answer", "agrees with full model"]
LABELLED_HEADERS = ["label", "correct"]


def concatenate(traces: list[ExitTrace]) -> ExitTrace:
    """One trace of the examples of ``traces`` in order (the chunks of a batch, same model)."""
    first = traces[0]
    return ExitTrace(
        np.concatenate([t.probs for t in traces]), first.label_names, np.concatenate([t.labels for t in traces]),
        np.concatenate([t.state_cosine for t in traces]),
        {name: np.concatenate([t.exit_scores[name] for t in traces]) for name in first.exit_scores},
    )


@dataclass
class BatchResult:
    """One rule setting over a batch of N rows.

    Attributes:
        headers, rows: the per-row table (``ROW_HEADERS``, and ``LABELLED_HEADERS`` when any row is labelled).
        exits: int [N], 1-based exit layer; answers, full_answers: int [N] class indices.
        num_layers: L; labelled: bool [N], rows with a gold label.
        accuracy, full_accuracy: on the labelled rows (None when none is).
    """

    rule: str
    params: dict
    headers: list[str]
    rows: list[list]
    exits: np.ndarray
    answers: np.ndarray
    full_answers: np.ndarray
    num_layers: int
    labelled: np.ndarray
    accuracy: float | None
    full_accuracy: float | None

    @property
    def mean_exit(self) -> float:
        return float(self.exits.mean())

    @property
    def speedup(self) -> float:
        """L / mean exit layer."""
        return self.num_layers / self.mean_exit

    @property
    def saved_fraction(self) -> float:
        """1 - mean exit layer / L."""
        return 1.0 - self.mean_exit / self.num_layers

    @property
    def agreement(self) -> float:
        """Fraction of rows answered as the full model (the last exit) answers them."""
        return float((self.answers == self.full_answers).mean())

    def summary_markdown(self) -> str:
        n = len(self.exits)
        lines = [
            f"**{catalogue.RULES[self.rule].title}** ({format_params(self.params)}) on **{n}** rows: "
            f"mean exit layer **{self.mean_exit:.2f}** of {self.num_layers}; {speedup_text(self.speedup, self.saved_fraction)}.",
            f"Agrees with the full model on **{100 * self.agreement:.1f}%** of rows.",
        ]
        if self.accuracy is None:
            lines.append("No row has a label, so no accuracy is computed (add a `label` column of class names).")
        else:
            lines.append(f"Accuracy on the {int(self.labelled.sum())} labelled rows: **{self.accuracy:.3f}** "
                         f"(full model: {self.full_accuracy:.3f}).")
        return "\n\n".join(lines)

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.headers)
        writer.writerows(self.rows)
        return buffer.getvalue()


def analyze_batch(trace: ExitTrace, names: list[str], rule: str, params: dict) -> BatchResult:
    """Every row of a batch trace under ``rule`` at ``params`` (missing parameters take the defaults);
    ``names`` says which input each row is (``line 2``, a zip member)."""
    if len(names) != trace.num_examples:
        raise ValueError(f"{len(names)} row names for a trace of {trace.num_examples} examples")
    params = {**catalogue.RULES[rule].params, **params}
    exits, answered = catalogue.exit_answers(trace.probs, rule, scores=trace.scores_for(rule), **params)
    answers = answered.argmax(axis=-1)
    full_answers = trace.probs[:, -1].argmax(axis=-1)
    labelled = trace.labels >= 0
    names_of = trace.label_names
    headers = list(ROW_HEADERS) + (LABELLED_HEADERS if labelled.any() else [])
    rows = []
    for i, name in enumerate(names):
        row = [name, int(exits[i]), names_of[answers[i]], round(float(answered[i].max()), 4),
               names_of[full_answers[i]], "yes" if answers[i] == full_answers[i] else "no"]
        if labelled.any():
            gold = int(trace.labels[i])
            row += [names_of[gold], "yes" if answers[i] == gold else "no"] if gold >= 0 else ["", ""]
        rows.append(row)
    accuracy = full_accuracy = None
    if labelled.any():
        gold = trace.labels[labelled]
        accuracy = float((answers[labelled] == gold).mean())
        full_accuracy = float((full_answers[labelled] == gold).mean())
    return BatchResult(rule, params, headers, rows, np.asarray(exits), answers, full_answers, trace.num_layers,
                       labelled, accuracy, full_accuracy)
