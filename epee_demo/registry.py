"""The models shipped in assets/: their checkpoints, cached traces and metrics, loaded on demand."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from epee_demo.exit_scorers import load_scorers
from epee_demo.model import CheckpointError, MultiExitClassifier, ModelSpec, load_checkpoint, read_spec
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
