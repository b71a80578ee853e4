"""The "Batch" tab: a CSV of notes or a zip of images through one shipped model, under one exit rule.

The model runs once per batch (in chunks of ``BATCH_CHUNK``, with a progress bar); the batch's
``ExitTrace`` stays in session state, and every rule or control change recomputes the table and
summary from it (``analysis.batch``) without running the model again. The results CSV is written
under the page's ``AppFolder``. Nothing uploaded (text, file or member names) is logged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from epee_demo.analysis.batch import ROW_HEADERS, analyze_batch, concatenate
from epee_demo.data.batch_input import read_batch
from epee_demo.errors import InputError
from epee_demo.limits import BATCH_CHUNK, BATCH_MAX_BYTES, BATCH_MAX_ROWS
from epee_demo.model.device import on_gpu
from epee_demo.model.registry import ShippedModel
from epee_demo.rules import catalogue
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.ui.analyze_tab import MODEL_CALLS_AT_ONCE, SESSION_SECONDS
from epee_demo.ui.controls import (
    CONTROLS, DEFAULT_RULE, build_controls, checked_call, checked_rule, control_values, controls_of, default_settings,
    params_from_controls,
)
from epee_demo.ui.files import AppFolder, uploaded_path
from epee_demo.ui.guard import MODEL_GROUP

LIMITS_NOTE = (
    f"**Batch analysis.** Upload a **CSV of notes** (UTF-8, a `text` column, optionally a `label` column of class "
    f"names) for a text model, or a **zip of images** (PNG, JPEG, …) for an image model, labelled (optionally) by a "
    "`labels.csv` in the zip (columns `file`, a path relative to its folder, and `label`, a class name or number) "
    "and/or by folders named after a class: the summary then gives the accuracy. At most "
    f"**{BATCH_MAX_ROWS} rows or images** and **{BATCH_MAX_BYTES // 2**20} MB** per file. The model runs once over "
    "the batch; changing the rule or its setting recomputes the table without running it again. Synthetic or "
    "de-identified data only."
)
EMPTY_SUMMARY = "Upload a file and press **Analyze batch**."
RESULTS_NAME = "batch-results.csv"


@dataclass
class Batch:
    """One analyzed batch: which model, its trace, and a name per row (``line N`` or the zip member)."""

    model: str
    trace: ExitTrace
    names: list[str]



def batch_rules(model: ShippedModel) -> list[str]:
    """The rules the batch tab offers for a model: those its traces can run, the fixed depth as a baseline."""
    return [r for r in catalogue.RULES if r in model.trace("test").available_rules()]


def trace_batch(model: ShippedModel, path: str, progress=None) -> Batch:
    """Read the uploaded batch and run the model over it once, ``BATCH_CHUNK`` inputs at a time;
    ``progress((done, total))`` is called before each chunk when given."""
    batch = read_batch(path, model.spec.modality, model.spec.label_names)
    classifier, total, parts = model.classifier, len(batch.inputs), []
    for start in range(0, total, BATCH_CHUNK):
        if progress is not None:
            progress((start, total), desc="Running the model", unit="rows")
        stop = min(start + BATCH_CHUNK, total)
        parts.append(classifier.trace(batch.inputs[start:stop], batch.labels[start:stop], batch_size=BATCH_CHUNK))
    return Batch(model.task.name, concatenate(parts), batch.names)


def batch_views(batch: Batch | None, rule: str, params: dict, folder: AppFolder) -> dict:
    """The tab's views for a batch at a setting, by name: summary, table and results CSV (a path
    under ``folder``)."""
    if batch is None:
        return dict(summary=EMPTY_SUMMARY, table=pd.DataFrame(columns=ROW_HEADERS), download=None)
    result = analyze_batch(batch.trace, batch.names, rule, params)
    out = folder.tmp / f"batch-{uuid.uuid4().hex}" / RESULTS_NAME
    out.parent.mkdir(parents=True)
    out.write_text(result.csv_text(), encoding="utf-8")
    return dict(summary=result.summary_markdown(), table=pd.DataFrame(result.rows, columns=result.headers),
                download=str(out))


def num_layers(model: ShippedModel) -> int:
    """The model's depth, read off its cached trace (the model itself loads on its first batch)."""
    return model.trace("test").num_layers


def _model(models: dict[str, ShippedModel], name) -> ShippedModel:
    if not isinstance(name, str) or name not in models:
        raise InputError(f"Model: choose one of {', '.join(models)}.")
    return models[name]


def _setting(model: ShippedModel, rule, values) -> tuple[str, dict]:
    rule, values = checked_call(rule, dict(zip(CONTROLS, values)), batch_rules(model), num_layers(model))
    return rule, params_from_controls(rule, values)


_trace_batch_on_gpu = on_gpu(trace_batch)  # the one call that runs the model: given a GPU on a Space


def on_run(models, folder, model_name, upload, rule, values, progress=None) -> dict:
    """Analyze batch: check the call, run the model over the upload, show the batch at the setting."""
    model = _model(models, model_name)
    rule, params = _setting(model, rule, values)
    batch = _trace_batch_on_gpu(model, uploaded_path(upload, "a CSV of notes or a zip of images"), progress)
    return {"batch": batch, **batch_views(batch, rule, params, folder)}


def on_setting(models, folder, batch: Batch | None, rule, values) -> dict:
    """A rule or control change: the views recomputed from the batch's trace (no model call)."""
    if batch is None:
        return batch_views(None, rule, {}, folder)
    rule, params = _setting(models[batch.model], rule, values)
    return batch_views(batch, rule, params, folder)


def _user_error(handler, *args, **kwargs):
    try:
        return handler(*args, **kwargs)
    except InputError as err:
        raise gr.Error(str(err), print_exception=False) from None


def build_batch_tab(models: dict[str, ShippedModel], folder: AppFolder) -> None:
    """Lay out the Batch tab inside the current Blocks context and wire its events."""
    first = next(iter(models.values()))
    gr.Markdown(LIMITS_NOTE, elem_id="batch_limits")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            model = gr.Dropdown(choices=[(m.task.title, name) for name, m in models.items()], value=first.task.name,
                                label="Model", elem_id="batch_model")
            upload = gr.File(type="filepath", file_types=[".csv", ".zip"], label="CSV of notes or zip of images",
                             elem_id="batch_upload")
            button = gr.Button("Analyze batch", variant="primary", elem_id="batch_run")
        with gr.Column(scale=1, min_width=260):
            rule = gr.Dropdown(choices=[(catalogue.RULES[r].title, r) for r in batch_rules(first)], value=DEFAULT_RULE,
                               label="Exit rule", elem_id="batch_rule")
            controls = build_controls(num_layers(first), None, elem_prefix="batch_")
    views = dict(summary=gr.Markdown(EMPTY_SUMMARY, elem_id="batch_summary"),
                 table=gr.Dataframe(pd.DataFrame(columns=ROW_HEADERS), interactive=False, elem_id="batch_table",
                                    label="Per row: exit layer, answer, agreement with the full model"),
                 download=gr.File(label="Results (CSV)", interactive=False, elem_id="batch_download"))
    state = gr.State(None, time_to_live=SESSION_SECONDS)
    keyed = {**views, "batch": state}

    def run(progress=gr.Progress(), *args):  # Gradio passes the progress bar first (a positional default)
        model_name, raw, rule_name, *values = args
        done = _user_error(on_run, models, folder, model_name, raw, rule_name, values, progress)
        return {keyed[name]: value for name, value in done.items()}

    def setting(batch, rule_name, *values):
        done = _user_error(on_setting, models, folder, batch, rule_name, values)
        return {views[name]: value for name, value in done.items()}

    def rule_changed(batch, model_name, rule_name, *values):
        chosen = _user_error(_model, models, model_name)
        _user_error(checked_rule, rule_name, batch_rules(chosen))
        defaults = control_values(rule_name, default_settings(num_layers(chosen))[rule_name])
        visible = controls_of(rule_name)
        updates = {control: gr.update(visible=name in visible, **({"value": defaults[name]} if name in defaults else {}))
                   for name, control in controls.items()}
        values = [defaults.get(name, value) for name, value in zip(CONTROLS, values)]
        return {**updates, **setting(batch, rule_name, *values)}

    def model_changed(model_name):
        """A new model: its rules, the sliders back at EPEE's defaults and ending at its last layer, no batch."""
        chosen = _user_error(_model, models, model_name)
        depth = num_layers(chosen)
        defaults = {**control_values(DEFAULT_RULE, catalogue.RULES[DEFAULT_RULE].params), "layer": depth}
        updates = {control: gr.update(visible=name in controls_of(DEFAULT_RULE), value=defaults.get(name, control.value),
                                      **({"maximum": depth} if catalogue.CONTROLS[name].maximum is None else {}))
                   for name, control in controls.items()}
        return {rule: gr.update(choices=[(catalogue.RULES[r].title, r) for r in batch_rules(chosen)], value=DEFAULT_RULE),
                **updates, state: None,
                **{views[name]: value for name, value in batch_views(None, DEFAULT_RULE, {}, folder).items()}}

    inputs = [rule, *controls.values()]
    button.click(run, [model, upload, *inputs], [state, *views.values()], concurrency_limit=MODEL_CALLS_AT_ONCE,
                 concurrency_id=MODEL_GROUP, api_name="batch", preprocess=False)
    for name, control in controls.items():
        control.input(setting, [state, *inputs], list(views.values()), show_progress="hidden",
                      trigger_mode="always_last", concurrency_limit=None, api_name=f"batch_set_{name}",
                      preprocess=False)
    rule.input(rule_changed, [state, model, *inputs], [*controls.values(), *views.values()], show_progress="hidden",
               concurrency_limit=None, api_name="batch_set_rule", preprocess=False)
    model.input(model_changed, model, [rule, *controls.values(), state, *views.values()], show_progress="hidden",
                concurrency_limit=None, api_name="batch_set_model", preprocess=False)
