"""The models shipped in assets/: their checkpoints, cached traces and metrics, loaded on demand."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from epee_demo.data import DATA_DIR_VARIABLE, data_dir
from epee_demo.data.medmnist import ExampleImage, example_images, read_examples
from epee_demo.data.text_examples import TextExample, read_text_examples
from epee_demo.exit_scorers import load_scorers
from epee_demo.model import CheckpointError, MultiExitClassifier, ModelSpec, load_checkpoint, read_spec
from epee_demo.task_metrics import METRICS
from epee_demo.tasks import TASKS, Task, preprocessor_for
from epee_demo.trace import ExitTrace

ASSETS_DIR = Path(os.environ.get("EPEE_ASSETS_DIR", Path(__file__).resolve().parent.parent / "assets"))


@dataclass
class ShippedModel:
    """One task's shipped model folder; the classifier and traces load on first use."""

    task: Task
    folder: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def spec(self) -> ModelSpec:
        return read_spec(self.folder)

    @cached_property
    def metrics(self) -> dict:
        path = self.folder / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @cached_property
    def classifier(self) -> MultiExitClassifier:
        """The model with its preprocessing, on CUDA when there is one."""
        with self._lock:
            model, spec = load_checkpoint(self.folder)
            return MultiExitClassifier(model, spec, preprocessor_for(spec), load_exit_scorers(self.folder, model))

    def trace(self, split: str) -> ExitTrace:
        """The cached per-layer trace of the ``val`` or ``test`` split."""
        return _load_trace(self.folder / f"trace_{split}.npz")

    def example_images(self, more_per_class: int = 4) -> list[ExampleImage]:
        """Test-split images for the page, class by class in label order (ordinal grades read in order):
        those shipped in ``examples/`` beside the model first, then ``more_per_class`` others of each
        class from the data directory when one is configured."""
        shipped = read_examples(self.folder / "examples", self.spec.label_names)
        if not self.task.medmnist:
            return shipped
        exclude = frozenset(e.index for e in shipped)
        more = example_images(more_per_class, self.task.medmnist, seed=1, exclude=exclude)
        return sorted(shipped + more, key=lambda example: example.label)  # stable: shipped first in each class

    def examples_note(self, examples: list[ExampleImage]) -> str:
        """One line for the page: where the example images come from and whether more could."""
        shipped = sum(e.shipped for e in examples)
        extra = len(examples) - shipped
        text = f"{shipped} test-split images ship with the model."
        if extra:
            return f"{text} {extra} more come from the configured data directory (`{DATA_DIR_VARIABLE}`)."
        wanted = f"`medmnist/{self.task.medmnist}.npz`"
        if data_dir() is not None:
            return f"{text} The data directory (`{DATA_DIR_VARIABLE}`) holds no {wanted}, so none come from it."
        return (f"{text} More examples could come from a configured data directory: set `{DATA_DIR_VARIABLE}` "
                f"to a folder holding {wanted}.")

    def example_texts(self) -> tuple[list[TextExample], str]:
        """A marked-text model's shipped test sentences and their attribution line (``examples.json``)."""
        return read_text_examples(self.folder / "examples.json")

    def depth_note(self) -> str:
        """What depth buys this model, from its shipped metrics (the test score of the first, best and
        last exit: accuracy, or the task's own metric when it has one), followed by the task's own
        explanation when it has one; "" without metrics."""
        metric = self.metrics.get("metric", "accuracy")
        accuracy = self.metrics.get(f"test_{metric}_per_layer")
        if not accuracy:
            return ""
        best = int(max(range(len(accuracy)), key=accuracy.__getitem__))
        spread = 100 * (max(accuracy) - min(accuracy))
        scored = "" if metric == "accuracy" else f", {METRICS[metric].title}"
        text = (f"**Depth on this model** (test split{scored}): layer 1 scores {accuracy[0]:.3f}, the best exit "
                f"{accuracy[best]:.3f} (layer {best + 1}), the last {accuracy[-1]:.3f}: the exits span "
                f"{spread:.1f} points.")
        return f"{text} {self.task.depth_note}".strip()

    def card(self) -> str:
        path = self.folder / "MODEL_CARD.md"
        return path.read_text() if path.exists() else ""


_TRACES: dict[Path, ExitTrace] = {}


def _load_trace(path: Path) -> ExitTrace:
    if path not in _TRACES:
        if not path.exists():
            raise CheckpointError(f"cached trace not found: {path}")
        try:
            _TRACES[path] = ExitTrace.load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"cached trace is corrupt: {path} ({err})") from err
    return _TRACES[path]


def load_exit_scorers(folder: Path, model) -> dict:
    """Learned exit rules shipped beside a checkpoint ({} when none were trained for it)."""
    return load_scorers(folder, model)


def shipped_models(assets_dir: Path | None = None) -> dict[str, ShippedModel]:
    """Every task with a model folder in assets/, by task name, in the order of ``TASKS``."""
    assets_dir = Path(assets_dir or ASSETS_DIR)
    return {
        name: ShippedModel(task, assets_dir / name)
        for name, task in TASKS.items()
        if (assets_dir / name / "model.json").exists()
    }
