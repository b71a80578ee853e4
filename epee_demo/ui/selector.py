"""The page's one selector of task and backbone, shared by Analyze, the trade-off explorer and the lesson.

Models are grouped into tasks by ``Task.group`` (a model alone in its task by default); a task with
several models offers a choice of backbone. ``selected`` holds the chosen model's name: the tabs
follow its changes, so a newly registered model appears without any edit here.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from epee_demo.model.registry import ShippedModel
from epee_demo.ui.analyze_tab import SESSION_SECONDS


def task_of(model: ShippedModel) -> str:
    """The page's task a model answers."""
    return model.task.group or model.task.name


def backbone_name(model: ShippedModel) -> str:
    """The model's backbone as the selector names it: the task's own name for it, else the spec's."""
    if model.task.backbone:
        return model.task.backbone
    base = model.spec.base
    return str(base.get("model_type", "custom")) if isinstance(base, dict) else str(base).rsplit("/", 1)[-1]


def task_groups(models: dict[str, ShippedModel]) -> dict[str, list[str]]:
    """Model names by task, both in the registry's order."""
    groups: dict[str, list[str]] = {}
    for name, model in models.items():
        groups.setdefault(task_of(model), []).append(name)
    return groups


def task_title(models: dict[str, ShippedModel], task: str, names: list[str]) -> str:
    """A task's title: that of the model named after the task, else of its first model."""
    return models[task if task in names else names[0]].task.title


@dataclass
class Selector:
    """The selector's components: ``task``, ``backbone`` and ``selected`` (the chosen model's name)."""

    task: gr.Dropdown
    backbone: gr.Radio
    selected: gr.State


def build_selector(models: dict[str, ShippedModel]) -> Selector:
    """Lay out the task and backbone choice (the first model chosen) and wire it to ``selected``."""
    groups = task_groups(models)
    first = next(iter(models))

    def backbones(task: str) -> list[tuple[str, str]]:
        return [(backbone_name(models[name]), name) for name in groups[task]]

    with gr.Row(elem_id="selector"):
        task = gr.Dropdown([(task_title(models, t, names), t) for t, names in groups.items()], value=task_of(models[first]),
                           label="Task", elem_id="task_choice", scale=2)
        backbone = gr.Radio(backbones(task_of(models[first])), value=first, label="Backbone", elem_id="backbone_choice",
                            visible=len(groups[task_of(models[first])]) > 1, scale=2)
    selected = gr.State(first, time_to_live=SESSION_SECONDS)

    def on_task(task_name) -> dict:
        if task_name not in groups:
            raise gr.Error("Task: choose one of those on the page.", print_exception=False)
        names = groups[task_name]
        return {backbone: gr.update(choices=backbones(task_name), value=names[0], visible=len(names) > 1),
                selected: names[0]}

    def on_backbone(name) -> dict:
        if name not in models:
            raise gr.Error("Backbone: choose one of those on the page.", print_exception=False)
        return {selected: name}

    fast = dict(show_progress="hidden", concurrency_limit=None, preprocess=False)
    task.input(on_task, task, [backbone, selected], api_name="select_task", **fast)
    backbone.input(on_backbone, backbone, selected, api_name="select_backbone", **fast)
    return Selector(task, backbone, selected)
