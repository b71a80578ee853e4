"""The EPEE paper's backbone x task table, read off the shipped folders' ``metrics.json``.

One row per model folder: its task, its backbone (pretrained or trained from scratch),
the test metric of every exit, the full model's (the last exit's) and EPEE's at its
default setting with the mean exit layer and speed-up, read through ``model.folder``. A folder's ``metrics.json`` names
its metric in ``"metric"`` (``"accuracy"`` when absent); the figures are then read from
``test_<metric>_per_layer`` and ``test_epee_default[<metric>]`` (or the ``epee`` row of ``test_rules_at_default``), so a folder reporting
micro-F1 (``"metric": "micro_f1_positive"``) takes its place beside the accuracy ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from epee_demo.analysis.task_metrics import METRICS
from epee_demo.model.backbones import DEFAULT_TEXT_BASE
from epee_demo.model.folder import read_metrics, read_spec
from epee_demo.model.multi_exit import ModelSpec

FAMILY_TITLES = {"albert": "ALBERT", "gpt2": "GPT-2-style decoder", "vit": "ViT", "deit": "DeiT", "bert": "BERT",
                 "dinov2": "DINOv2", "roberta": "RoBERTa", "electra": "ELECTRA"}


@dataclass(frozen=True)
class BackboneRow:
    """One model's figures on its task's test split; ``per_exit`` holds L values of ``metric``."""

    task: str
    backbone: str
    metric: str
    per_exit: tuple[float, ...]
    epee: float
    epee_params: dict
    average_exit: float

    @property
    def full_model(self) -> float:
        return self.per_exit[-1]

    @property
    def speedup(self) -> float:
        return len(self.per_exit) / self.average_exit


def backbone_title(spec: ModelSpec) -> str:
    """What a model's backbone is, in words: the pretrained checkpoint, or the family and size trained from scratch."""
    if isinstance(spec.base, str):
        name = "MiniLM-L6 (pretrained)" if spec.base == DEFAULT_TEXT_BASE else spec.base
        return f"{name}, LoRA rank {spec.lora['rank']}" if spec.lora else name
    config = spec.base
    family = config.get("model_type", "?")
    layers = config.get("num_hidden_layers", config.get("n_layer"))
    width = config.get("hidden_size", config.get("n_embd"))
    if family == "albert" and config.get("num_hidden_groups", 1) == 1:
        shape = f"1 shared layer applied {layers} times, {width} wide"
    else:
        shape = f"{layers} layers, {width} wide"
    if config.get("patch_stem") == "conv":
        shape += ", convolutional patch stem"
    if config.get("pooling") == "mean":
        shape += ", exits on the mean of the patch tokens"
    return f"{FAMILY_TITLES.get(family, family)} ({shape}), trained from scratch"


def backbone_row(folder: str | Path) -> BackboneRow | None:
    """The row of one model folder; None when it has no ``metrics.json``. ``KeyError`` names a figure it lacks."""
    folder = Path(folder)
    metrics = read_metrics(folder)
    if not metrics:
        return None
    metric = metrics.get("metric", "accuracy")
    per_exit_key = f"test_{metric}_per_layer"
    if per_exit_key not in metrics:
        raise KeyError(f"{folder.name}: metrics.json names the metric {metric!r} but holds no {per_exit_key!r}")
    epee = metrics["test_epee_default"]
    if metric not in epee:  # a task scored by its own metric keeps every rule's figures in test_rules_at_default
        epee = next(row for row in metrics["test_rules_at_default"] if row["rule"] == "epee")
    return BackboneRow(
        task=metrics.get("dataset", folder.name), backbone=backbone_title(read_spec(folder)), metric=metric,
        per_exit=tuple(float(x) for x in metrics[per_exit_key]), epee=float(epee[metric]),
        epee_params=dict(epee.get("params", {})), average_exit=float(epee["average_exit_layer"]),
    )


def backbone_rows(folders: Iterable[str | Path]) -> list[BackboneRow]:
    """The rows of every folder that has metrics, grouped by task in the order tasks first appear."""
    rows = [row for row in map(backbone_row, folders) if row is not None]
    first = {}
    for row in rows:
        first.setdefault(row.task, len(first))
    return sorted(rows, key=lambda row: first[row.task])  # stable: folder order within a task


def backbone_markdown(rows: list[BackboneRow]) -> str:
    """The table as Markdown: task, backbone, metric, every exit, full model, EPEE, mean exit, speed-up."""
    if not rows:
        return "No shipped model has metrics yet."
    depth = max(len(row.per_exit) for row in rows)
    header = (["task", "backbone", "metric", *(f"exit {i}" for i in range(1, depth + 1)), "full model",
               "EPEE at default", "mean exit layer", "speed-up (L / mean exit)"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        exits = [f"{x:.3f}" for x in row.per_exit] + [""] * (depth - len(row.per_exit))
        cells = [row.task, row.backbone, METRICS[row.metric].title if row.metric in METRICS else row.metric, *exits, f"{row.full_model:.3f}",
                 f"{row.epee:.3f}", f"{row.average_exit:.2f} of {len(row.per_exit)}", f"{row.speedup:.2f}×"]
        lines.append("| " + " | ".join(cells) + " |")
    settings = {json.dumps(row.epee_params, sort_keys=True) for row in rows}
    note = ("EPEE at its default setting (" + ", ".join(f"{k} {v}" for k, v in rows[0].epee_params.items()) + ")"
            if len(settings) == 1 else "EPEE at each model's default setting")
    return "\n".join(lines) + f"\n\nTest split; {note}; the full model is the last exit."


def backbone_table(folders: Iterable[str | Path]) -> str:
    """The backbone x task table of these model folders, as Markdown."""
    return backbone_markdown(backbone_rows(folders))
