"""The per-layer trace: what a multi-exit model said at every exit, as plain arrays.

Everything downstream (exit rules, trade-off curves, figures, the page) reads an
``ExitTrace``; nothing downstream runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from epee_demo.rules import catalogue


@dataclass
class ExitTrace:
    """Per-layer outputs of a multi-exit model on N examples with L exits and C classes.

    Attributes:
        probs: float32 [N, L, C], softmax of each exit's logits.
        label_names: C class names.
        labels: int64 [N], gold class, -1 where unknown (a pasted note).
        state_cosine: float32 [N, L], cosine similarity of the pooled hidden states of
            layers i-1 and i (NaN at layer 1), read by the hidden-state saturation rule.
        exit_scores: the learned scorers' per-layer outputs per rule name, each float32 [N, L]
            (ConsistentEE's policy probability; JEI-DNN's gate g_l, which its rule turns into a_l).
    """

    probs: np.ndarray
    label_names: tuple[str, ...]
    labels: np.ndarray = None
    state_cosine: np.ndarray = None
    exit_scores: dict = field(default_factory=dict)

    def __post_init__(self):
        self.probs = np.asarray(self.probs, dtype=np.float32)
        if self.probs.ndim != 3 or self.probs.shape[2] != len(self.label_names):
            raise ValueError(
                f"probs must be [N, L, C] with C = {len(self.label_names)} label names; "
                f"got shape {self.probs.shape}"
            )
        n, num_layers, _ = self.probs.shape
        self.label_names = tuple(self.label_names)
        self.labels = (
            np.full(n, -1, dtype=np.int64) if self.labels is None
            else np.asarray(self.labels, dtype=np.int64)
        )
        self.state_cosine = (
            np.full((n, num_layers), np.nan, dtype=np.float32) if self.state_cosine is None
            else np.asarray(self.state_cosine, dtype=np.float32)
        )
        self.exit_scores = {k: np.asarray(v, dtype=np.float32) for k, v in self.exit_scores.items()}

    @property
    def num_examples(self) -> int:
        return self.probs.shape[0]

    @property
    def num_layers(self) -> int:
        return self.probs.shape[1]

    @property
    def predictions(self) -> np.ndarray:
        """Predicted class at every layer, int [N, L]."""
        return self.probs.argmax(axis=-1)

    @property
    def has_labels(self) -> bool:
        return bool(np.all(self.labels >= 0))

    def scores_for(self, rule: str) -> np.ndarray | None:
        """The per-layer score array a score-based rule reads, or None for other rules."""
        source = catalogue.RULES[rule].score_source
        if source == "state_cosine":
            return self.state_cosine
        if source == "exit_scores":
            if rule not in self.exit_scores:
                raise ValueError(f"this trace carries no scores for the learned rule {rule!r}")
            return self.exit_scores[rule]
        return None

    def available_rules(self) -> list[str]:
        """Rules this trace can evaluate (learned rules need their scores)."""
        return [
            name for name, spec in catalogue.RULES.items()
            if spec.score_source != "exit_scores" or name in self.exit_scores
        ]

    def subset(self, index) -> "ExitTrace":
        """The trace of the examples at ``index`` (an int array, slice or boolean mask)."""
        return ExitTrace(
            self.probs[index], self.label_names, self.labels[index], self.state_cosine[index],
            {k: v[index] for k, v in self.exit_scores.items()},
        )

    def save(self, path: str | Path) -> None:
        """Write the trace as a compressed .npz, every array in float32.

        float32, not float16: float16 rounds small probabilities to exactly 0 (which makes
        KL divergences infinite that are finite) and rounds scores onto thresholds (ties).
        """
        arrays = {
            "probs": self.probs.astype(np.float32),
            "label_names": np.array(self.label_names),
            "labels": self.labels,
            "state_cosine": self.state_cosine.astype(np.float32),
        }
        arrays.update({f"exit_scores.{k}": v.astype(np.float32) for k, v in self.exit_scores.items()})
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "ExitTrace":
        """Read a trace written by ``save`` (older float16 traces are read too, renormalized)."""
        with np.load(path, allow_pickle=False) as data:
            probs = data["probs"].astype(np.float32)
            probs /= probs.sum(axis=-1, keepdims=True)
            return cls(
                probs, tuple(str(x) for x in data["label_names"]), data["labels"],
                data["state_cosine"].astype(np.float32),
                {k.split(".", 1)[1]: data[k] for k in data.files if k.startswith("exit_scores.")},
            )
