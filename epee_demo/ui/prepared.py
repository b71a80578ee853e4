"""What the trade-off explorer and the lesson read of a model's split, made once for the whole page.

``PreparedSplits`` prepares a (model, split) the first time either tab asks for it, and both tabs
read that one preparation; ``MadeOnce`` is how: one value per key, made by the first caller while
any other caller of the same key waits on that key's lock alone (the lesson keeps its lessons the
same way).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

from epee_demo.analysis.whole_split import Frontier, Overthinking, PreparedTrace, all_frontiers, overthinking, prepare
from epee_demo.model.folder import SPLITS
from epee_demo.model.registry import ShippedModel

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class MadeOnce(Generic[Key, Value]):
    """``make(key)`` run at most once per key, the first time the key is asked for, its value kept.

    A value already made is read without any lock, so nobody waits on another key's making; two
    callers of one key at once take that key's lock, and the second gets the first one's value.
    A ``make`` that raises keeps nothing: the next caller tries again.
    """

    def __init__(self, make: Callable[[Key], Value]):
        self._make = make
        self._made: dict[Key, Value] = {}
        self._locks: dict[Key, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def __getitem__(self, key: Key) -> Value:
        if key in self._made:
            return self._made[key]
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._made:
                self._made[key] = self._make(key)
            return self._made[key]


@dataclass
class PreparedSplit:
    """One model's split, ready for the explorer and the lesson.

    Attributes:
        prep: the prepared trace (N examples, L layers), scored by the task's metric.
        frontiers: rule -> ``Frontier`` of every rule the trace can evaluate.
        overthinking: destructive overthinking, or None without gold labels.
    """

    prep: PreparedTrace
    frontiers: dict[str, Frontier]
    overthinking: Overthinking | None


def prepare_split(trace, metric: str = "accuracy") -> PreparedSplit:
    """Prepare one trace scored by the task's ``metric``: what the rules read, every rule's frontier
    and the overthinking counts."""
    prep = prepare(trace, metric)
    return PreparedSplit(prep, all_frontiers(prep), overthinking(prep) if prep.has_labels else None)


class PreparedSplits:
    """Every (model name, split) of the shipped models, each prepared the first time it is asked for
    (``splits[("organ-system", "test")]``), by the task's own metric."""

    def __init__(self, models: dict[str, ShippedModel]):
        self.models = models
        self._prepared: MadeOnce[tuple[str, str], PreparedSplit] = MadeOnce(self._prepare)

    def _prepare(self, key: tuple[str, str]) -> PreparedSplit:
        name, split = key
        model = self.models[name]
        return prepare_split(model.trace(split), model.task.metric)

    def __contains__(self, key) -> bool:
        return (isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, str) for part in key)
                and key[0] in self.models and key[1] in SPLITS)

    def __getitem__(self, key: tuple[str, str]) -> PreparedSplit:
        return self._prepared[key]
