"""Multi-exit transformer: a backbone with a classifier after every layer.

``MultiExitModel`` is the torch module (used by training and inference), with the Hub's
``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` (``huggingface_hub.ModelHubMixin``;
the folder it reads and writes is ``epee_demo.model.folder``'s); ``MultiExitClassifier`` bundles it
with its preprocessor and label names and turns raw inputs into an ``ExitTrace``. LoRA
adapters are injected with peft for training and merged with peft at load.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from peft import LoraConfig, inject_adapter_in_model
from huggingface_hub import ModelCard, ModelHubMixin
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from epee_demo.model.backbones import Backbone, EncoderBackbone, load_backbone
from epee_demo.trace.exit_trace import ExitTrace

def default_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def share_cpu_cores(calls_at_once: int) -> int:
    """Give each of ``calls_at_once`` concurrent model calls an equal share of the CPU cores.

    torch keeps one intra-op thread team per calling thread. A server calls the model
    from several worker threads, and teams that together want more threads than there
    are cores slow every call down (a ViT at batch 1 on 2 cores: 3-4x slower in a worker
    thread than in the main thread with 2 threads; equal with 1). Sets torch's thread
    count for the whole process and returns it.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, calls_at_once))
    torch.set_num_threads(threads)
    return threads


LORA_ADAPTER = "default"  # peft's adapter name; the weights file leaves it out, as peft's own files do
_ADAPTER_PARAM = re.compile(rf"\.(lora_[AB])\.{LORA_ADAPTER}\.")
_ADAPTER_KEY = re.compile(r"\.(lora_[AB])\.(?=weight$)")


def lora_config(lora: dict) -> LoraConfig:
    """peft's ``LoraConfig`` of a spec's ``{"rank", "alpha", "targets"}``: update ``alpha / rank * B @ A``
    on every layer whose name ends in one of ``targets``, no dropout, biases frozen."""
    return LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], target_modules=list(lora["targets"]),
                      lora_dropout=0.0, bias="none")


def add_lora(module: nn.Module, lora: dict) -> nn.Module:
    """Inject peft LoRA adapters into ``module`` in place (peft freezes the layers they adapt).

    Raises ``ValueError`` naming the targets when no layer of ``module`` matches them.
    """
    try:
        return inject_adapter_in_model(lora_config(lora), module, adapter_name=LORA_ADAPTER)
    except ValueError as err:
        if "not found" not in str(err):
            raise
        raise ValueError(f"no layer named any of {list(lora['targets'])} to adapt with LoRA ({err})") from err


def merge_lora(module: nn.Module) -> None:
    """Fold every peft LoRA layer in ``module`` into its base layer (peft's ``merge``) and put the
    plain base layer back in its place, as peft's ``merge_and_unload`` does."""
    for name, layer in list(module.named_modules()):
        if isinstance(layer, BaseTunerLayer):
            layer.merge()
            parent, _, child = name.rpartition(".")
            setattr(module.get_submodule(parent), child, layer.get_base_layer())
    for part in module.modules():
        if "peft_config" in vars(part):
            del part.peft_config


def weights_key(param_name: str) -> str:
    """The key of a parameter in the weights file: peft's saved name of an adapter
    (``...query.lora_A.weight``), the parameter name otherwise."""
    return _ADAPTER_PARAM.sub(r".\1.", param_name)


def param_name(key: str) -> str:
    """The model's parameter name of a weights-file key (inverse of ``weights_key``)."""
    return _ADAPTER_KEY.sub(rf".\1.{LORA_ADAPTER}.", key)


class ExitHead(nn.Module):
    """Classifier on one layer's pooled state: LayerNorm, dense + tanh (``width`` wide, default the
    pooled state's width), dropout, linear."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1, width: int | None = None):
        super().__init__()
        width = width or hidden_size
        self.norm = nn.LayerNorm(hidden_size)
        self.dense = nn.Linear(hidden_size, width)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, num_labels)

    def forward(self, pooled):
        return self.out(self.dropout(torch.tanh(self.dense(self.norm(pooled)))))


@dataclass
class ExitOutput:
    """Outputs of every exit for a batch of B examples, L exits, C classes, width H.

    logits: [B, L, C]; pooled: [B, L, H], the pooled hidden state each head read.
    """

    logits: torch.Tensor
    pooled: torch.Tensor


class MultiExitModel(nn.Module, ModelHubMixin, library_name="epee-demo", license="cc-by-4.0",
                     tags=["early-exit", "multi-exit"]):
    """A backbone with an ``ExitHead`` after each of its layers.

    ``MultiExitModel.from_pretrained(folder_or_hub_id)`` loads a shipped model folder (a Hub id
    online, through ``snapshot_download``); ``save_pretrained(folder)`` and ``push_to_hub(repo_id)``
    write one (``epee_demo.model.folder``). ``spec`` is the ``ModelSpec`` it was built from (None for a
    model made by hand), ``folder`` the local folder it was loaded from (else None).
    """

    spec: "ModelSpec | None" = None
    folder: Path | None = None

    def __init__(self, backbone: Backbone, num_labels: int, head_dropout: float = 0.1, head_width: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(
            ExitHead(backbone.pooled_size, num_labels, head_dropout, head_width) for _ in range(backbone.num_layers)
        )

    # The folder module reads and writes model folders and imports this one, hence the imports inside.
    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download: bool = False,
                         local_files_only: bool = False, token=None, device=None, **init_values) -> "MultiExitModel":
        """The mixin's hook: ``init_values`` are config.json's entries that match ``__init__``'s
        parameters; the whole spec is read from the folder instead."""
        from epee_demo.model import folder as model_folder

        path = model_folder.resolve(model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                                    local_files_only=local_files_only, token=token)
        return model_folder.load_checkpoint(path, device)[0]

    def _save_pretrained(self, save_directory: Path) -> None:
        from epee_demo.model import folder as model_folder

        model_folder.save_pretrained_files(self, Path(save_directory))

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        """The card ``save_pretrained`` writes when the folder has none: the Hub metadata and the title."""
        from epee_demo.model import folder as model_folder

        title = self.spec.title or "Multi-exit model"
        body = f"# {title}\n\nMulti-exit transformer (a classifier after every layer), saved by epee-demo.\n"
        return ModelCard(model_folder.card_text(self.spec, body))

    def classifier(self) -> "MultiExitClassifier":
        """This model with its spec's preprocessing and the learned exits shipped in its folder."""
        from epee_demo.model import folder as model_folder
        from epee_demo.data.tasks import preprocessor_for

        scorers = model_folder.load_learned_exits(self.folder, self) if self.folder else {}
        return MultiExitClassifier(self, self.spec, preprocessor_for(self.spec), scorers)

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    def forward(self, inputs: dict, after_layer: Callable[[int], None] | None = None) -> ExitOutput:
        """Run every layer and every exit head; ``after_layer(index)``, when given, is called once
        layer ``index``'s exit head has run (the page's timing reads the clock there)."""
        hidden, ctx = self.backbone.embed(inputs)
        logits, pooled = [], []
        for index, head in enumerate(self.heads):
            hidden = self.backbone.run_layer(index, hidden, ctx)
            vector = self.backbone.pool(hidden, ctx)
            pooled.append(vector)
            logits.append(head(vector))
            if after_layer is not None:
                after_layer(index)
        return ExitOutput(torch.stack(logits, 1), torch.stack(pooled, 1))


def per_exit_losses(logits: torch.Tensor, labels: torch.Tensor, class_weights=None,
                    label_smoothing: float = 0.0) -> torch.Tensor:
    """The cross-entropy of every exit, [L], for logits [B, L, C] (with ``label_smoothing``, torch's:
    the target mixes the one-hot label with the uniform distribution)."""
    return torch.stack([
        nn.functional.cross_entropy(logits[:, i], labels, weight=class_weights, label_smoothing=label_smoothing)
        for i in range(logits.shape[1])
    ])


def depth_weighted(per_exit: torch.Tensor) -> torch.Tensor:
    """sum_i i * loss_i / sum_i i over the L per-exit losses [L]."""
    weights = torch.arange(1, per_exit.shape[0] + 1, dtype=per_exit.dtype, device=per_exit.device)
    return (weights * per_exit).sum() / weights.sum()


def joint_exit_loss(logits: torch.Tensor, labels: torch.Tensor, class_weights=None) -> torch.Tensor:
    """The EPEE/PABEE training loss: sum_i i * CE_i / sum_i i over all L exits. logits [B, L, C]."""
    return depth_weighted(per_exit_losses(logits, labels, class_weights))


@dataclass
class ModelSpec:
    """What a model folder's ``config.json`` records: enough to rebuild the model and its preprocessing.

    ``modality`` is "text" or "image". ``base`` is a checkpoint reference (``package:...``, path or hub id) or, for a
    model trained from scratch, a Hugging Face config dict. ``lora`` is None or
    ``{"rank", "alpha", "targets"}``. ``preprocess`` holds the input settings
    (``max_length`` for text; size, channels, mean and std for images; for a relation model read at
    its entity start markers, ``entity_starts``, the tags of the marks pooled, and ``context``).
    ``head_width`` is the exit heads' dense width (None: the pooled state's).
    """

    modality: str
    base: str | dict
    label_names: list[str]
    preprocess: dict
    lora: dict | None = None
    head_dropout: float = 0.1
    title: str = ""
    extra: dict = field(default_factory=dict)
    head_width: int | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def build_model(spec: ModelSpec) -> MultiExitModel:
    """Build the (untrained-heads) model a spec describes; LoRA adapters included."""
    backbone = load_backbone(spec.base)
    if spec.preprocess.get("entity_starts"):
        if type(backbone) is not EncoderBackbone:
            raise ValueError(f"entity-start pooling needs a BERT-family encoder, not {type(backbone).__name__}")
        backbone.entity_starts = len(spec.preprocess["entity_starts"])
    if spec.lora:
        add_lora(backbone, {**spec.lora, "targets": backbone.lora_targets(spec.lora["targets"])})
    model = MultiExitModel(backbone, spec.num_labels, spec.head_dropout, spec.head_width)
    model.spec = spec
    return model


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that training changed (those with ``requires_grad``), by ``weights_key``."""
    return {weights_key(name): p.detach() for name, p in model.named_parameters() if p.requires_grad}


def state_cosine(pooled: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of consecutive layers' pooled states: [B, L, H] -> [B, L], NaN at layer 1."""
    cos = nn.functional.cosine_similarity(pooled[:, 1:].float(), pooled[:, :-1].float(), dim=-1)
    first = torch.full_like(cos[:, :1], float("nan"))
    return torch.cat([first, cos], dim=1)


class MultiExitClassifier:
    """A trained multi-exit model with its preprocessing: raw inputs in, ``ExitTrace`` out.

    ``preprocessor`` turns a list of raw inputs into a dict of tensors; ``exit_scorers``
    maps a learned rule's name to a callable (pooled [B, k, H], probs [B, k, C],
    first_layer=0) -> exit probability [B, k] of layers ``first_layer .. first_layer + k - 1``.
    """

    def __init__(self, model: MultiExitModel, spec: ModelSpec, preprocessor, exit_scorers=None):
        self.model = model
        self.spec = spec
        self.preprocessor = preprocessor
        self.exit_scorers = dict(exit_scorers or {})

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.spec.label_names)

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    @torch.inference_mode()
    def trace(self, inputs: Sequence, labels=None, batch_size: int = 32) -> ExitTrace:
        """Run every exit on ``inputs`` (raw texts or images) and collect the per-layer trace."""
        inputs = list(inputs)
        # Texts run in order of length (less padding); the trace keeps the input order.
        order = (np.argsort([len(x) for x in inputs], kind="stable") if inputs and isinstance(inputs[0], str)
                 else np.arange(len(inputs)))
        parts = [self.trace_prepared(self.to_device(self.preprocessor([inputs[i] for i in order[start:start + batch_size]])))
                 for start in range(0, len(inputs), batch_size)]
        restore = np.argsort(order)
        return ExitTrace(
            np.concatenate([p.probs for p in parts])[restore], self.label_names, labels,
            np.concatenate([p.state_cosine for p in parts])[restore],
            {name: np.concatenate([p.exit_scores[name] for p in parts])[restore] for name in self.exit_scorers},
        )

    @torch.inference_mode()
    def trace_prepared(self, batch: dict, labels=None, after_layer: Callable[[int], None] | None = None) -> ExitTrace:
        """The per-layer trace of one device-ready batch (the preprocessor's output): one pass of
        every layer and exit head (``after_layer``: see ``MultiExitModel.forward``)."""
        out = self.model(batch, after_layer)
        probs = torch.softmax(out.logits.float(), dim=-1)
        scores = {name: scorer(out.pooled.float(), probs).cpu().numpy() for name, scorer in self.exit_scorers.items()}
        return ExitTrace(probs.cpu().numpy(), self.label_names, labels, state_cosine(out.pooled).cpu().numpy(), scores)
