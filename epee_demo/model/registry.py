"""The models shipped in assets/: their checkpoints, cached traces and metrics, loaded on demand."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from epee_demo.data import DATA_DIR_VARIABLE, data_dir
from epee_demo.errors import CheckpointError
from epee_demo.data.medmnist import ExampleImage, example_images, read_examples
from epee_demo.data.split_inputs import SplitInputs, read_split_inputs
from epee_demo.data.tasks import TASKS, Task
from epee_demo.data.text_examples import TextExample, read_text_examples
from epee_demo.model import folder as model_folder
from epee_demo.model.multi_exit import MultiExitClassifier, ModelSpec
from epee_demo.trace.exit_trace import ExitTrace

TEMPERATURE_PAGE_NOTE = (
    "**Temperature-scaled exits**: each exit's logits are divided by its own temperature ({temperatures}, "
    "layer 1 first), fitted on the validation split (Guo et al., ICML 2017). This keeps each exit's answer "
    "and changes only how sure it says it is, so the rules that read the probabilities (entropy, max "
    "probability, PCEE, F-PABEE) can stop at other layers than on the raw model; the rules are unchanged.")
ASSETS_DIR = Path(os.environ.get("EPEE_ASSETS_DIR", Path(__file__).resolve().parents[2] / "assets"))


@dataclass
class ShippedModel:
    """One task's shipped model folder; the classifier and traces load on first use."""

    task: Task
    folder: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def spec(self) -> ModelSpec:
        return model_folder.read_spec(self.folder)

    @property
    def page_note(self) -> str:
        """Shown above the input: the task's note, else a non-commercial notice when the model's licence asks
        for one; then, for a model whose exits were temperature-scaled, a sentence saying so."""
        note = self.task.page_note
        if not note and self.spec.extra.get("license", "").startswith("cc-by-nc"):
            note = ("**Non-commercial use only**: part of this model's training text is licensed CC BY-NC 4.0 "
                    "(its model card names the sources).")
        if temperatures := self.spec.extra.get(model_folder.TEMPERATURES_KEY):
            note += ("\n\n" if note else "") + TEMPERATURE_PAGE_NOTE.format(
                temperatures=", ".join(f"{t:.2f}" for t in temperatures["temperatures"]))
        return note

    @cached_property
    def metrics(self) -> dict:
        return model_folder.read_metrics(self.folder)

    @cached_property
    def classifier(self) -> MultiExitClassifier:
        """The model with its preprocessing, on CUDA when there is one."""
        with self._lock:
            return model_folder.load_classifier(self.folder)

    def check_files(self) -> None:
        """Stop now, not when the model is first chosen, when its config is corrupt or its weights are missing."""
        weights = model_folder.weights_path(self.folder)
        if self.spec and not weights.is_file():
            raise CheckpointError(f"checkpoint weights not found: {weights}")

    def trace(self, split: str) -> ExitTrace:
        """The cached per-layer trace of the ``val`` or ``test`` split (read once per process)."""
        key = (self.folder, split)
        if key not in _TRACES:
            _TRACES[key] = model_folder.read_trace(self.folder, split)
        return _TRACES[key]

    def example_images(self, more_per_class: int = 4) -> list[ExampleImage]:
        """Test-split images for the page, class by class in label order (ordinal grades read in order):
        those shipped in ``examples/`` beside the model first, then ``more_per_class`` others of each
        class from the data directory when one is configured."""
        shipped = read_examples(model_folder.examples_dir(self.folder), self.spec.label_names)
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
        return read_text_examples(model_folder.text_examples_path(self.folder))

    @cached_property
    def split_inputs(self) -> SplitInputs:
        """The shipped inputs of the split examples the page shows (``split_inputs.npz``; empty without one)."""
        return read_split_inputs(model_folder.split_inputs_path(self.folder))

    def card(self) -> str:
        """The model card's Markdown (its Hub metadata left out)."""
        return model_folder.read_card(self.folder)


_TRACES: dict[tuple[Path, str], ExitTrace] = {}


def shipped_models(assets_dir: Path | None = None) -> dict[str, ShippedModel]:
    """Every task with a model folder in assets/, by task name, in the order of ``TASKS``."""
    assets_dir = Path(assets_dir or ASSETS_DIR)
    return {
        name: ShippedModel(task, assets_dir / name)
        for name, task in TASKS.items()
        if model_folder.is_model_folder(assets_dir / name)
    }
