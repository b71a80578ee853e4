"""The "Analyze" tab: one note or image, layer by layer, with live exit-rule sliders.

Analyze runs the model once and keeps the example's ``ExitTrace`` in session state;
every slider or rule change re-renders from that trace without touching the model.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from epee_demo import policies
from epee_demo.analysis import analyze_example
from epee_demo.timing import measure_one
from epee_demo.data.marked import MarkError, MarkSchema, highlight_segments
from epee_demo.data.medmnist import DATASETS
from epee_demo.examples import EXAMPLE_NOTES
from epee_demo.figures.layers import (
    LAYER_TABLE_HEADERS, RULE_TABLE_HEADERS, counter_figure, entropy_figure, layer_table,
    rule_table, summary_markdown,
)
from epee_demo.gpu import on_gpu
from epee_demo.images import load_image
from epee_demo.preprocess import InputError, clean_note
from epee_demo.privacy import identifier_warning
from epee_demo.registry import ShippedModel
from epee_demo.trace import ExitTrace
from epee_demo.limits import MAX_NOTE_CHARS
from epee_demo.ui.guard import MODEL_GROUP
from epee_demo.ui.controls import (
    CONTROLS, build_controls, checked_call, checked_rule, control_values, controls_of, default_settings,
    params_from_controls,
)

EMPTY_SUMMARY = "Pick an example, or paste a note or upload an image of your own, and press **Analyze**."
SESSION_SECONDS = 3600  # a session's trace and settings are forgotten an hour after their last change
MODEL_CALLS_AT_ONCE = 2  # analyses that run the model at the same time (slider moves never wait for them)


def render(trace: ExitTrace | None, settings: dict, rule: str):
    """Summary, entropy figure, counter figure, layer table and rule table for the current setting."""
    if trace is None:
        return (EMPTY_SUMMARY, None, None, pd.DataFrame(columns=LAYER_TABLE_HEADERS),
                pd.DataFrame(columns=RULE_TABLE_HEADERS))
    analysis = analyze_example(trace, settings, rule)
    params = settings[rule]
    tau = params.get("tau") if rule != "fpabee" else None
    line = params.get("patience", params.get("threshold"))  # the counter's patience or the score's threshold
    return (
        summary_markdown(analysis),
        entropy_figure(analysis, tau),
        counter_figure(analysis, line),
        pd.DataFrame(layer_table(analysis), columns=LAYER_TABLE_HEADERS),
        pd.DataFrame(rule_table(analysis), columns=RULE_TABLE_HEADERS),
    )


def truncation_notice(model: ShippedModel, text: str) -> str:
    """A visible notice when a note is longer than the model reads, else ''."""
    preprocessor = model.classifier.preprocessor
    tokens = preprocessor.token_count(text)
    if tokens <= preprocessor.max_length:
        return ""
    return (
        f"Truncated: this note is {tokens} tokens long; the model reads only the first "
        f"{preprocessor.max_length} tokens, so the rest was not analyzed."
    )


def timing_notice(model: ShippedModel, model_input, rule: str, params: dict | None) -> str:
    """This input's measured time, full model against real early exit under ``rule``."""
    timing = measure_one(model.classifier, model_input, rule, repeats=3, **(params or {}))
    return timing.label


def analyze_note(model: ShippedModel, note, rule: str = "epee", params: dict | None = None) -> tuple[ExitTrace, str]:
    """Run the model on a note: its one-example trace and the notices for the page
    (truncation, and the measured time of full model against early exit)."""
    text = clean_note(note)
    notices = [truncation_notice(model, text), timing_notice(model, text, rule, params)]
    return model.classifier.trace([text]), "\n\n".join(n for n in notices if n)


def _text_input(model: ShippedModel):
    """Note box, example notes and Analyze button; returns (inputs, button, run, extra outputs)."""
    note = gr.Textbox(label="Clinical note (synthetic or de-identified text only)", lines=8,
                      max_lines=20, placeholder="Paste a clinical note here…", elem_id="note",
                      max_length=MAX_NOTE_CHARS)
    warning = gr.Markdown(elem_id="identifier_warning")
    note.change(identifier_warning, note, warning, show_progress="hidden", trigger_mode="always_last",
                concurrency_limit=None, preprocess=False, api_name=f"check_note_{model.task.name.replace('-', '_')}")
    gr.Examples(
        examples=[[n.text] for n in EXAMPLE_NOTES], inputs=[note],
        example_labels=[n.title for n in EXAMPLE_NOTES], label="Example notes (written by us)",
    )
    button = gr.Button("Analyze", variant="primary", elem_id="analyze")

    def run(text, rule, params):
        return analyze_note(model, text, rule, params)

    return [note], button, run, []


def analyze_marked(model: ShippedModel, raw, rule: str = "epee", params: dict | None = None) -> tuple[ExitTrace, str]:
    """Run the model on a marked sentence (checked against the task's marks first: a ``MarkError``
    says what is wrong, with the syntax and an example): its trace and the page's notices."""
    text = model.task.marks.model_text(clean_note(raw))
    notices = [truncation_notice(model, text), timing_notice(model, text, rule, params)]
    return model.classifier.trace([text]), "\n\n".join(n for n in notices if n)


def mark_check(schema: MarkSchema, raw) -> tuple[list[tuple[str, str | None]], str]:
    """As a marked input is typed: its (segment, mark) pairs for highlighting and one line saying
    whether its marks fit the task (the error message with the syntax when they do not), followed by
    the identifier warning when the text looks like it holds one."""
    text = raw if isinstance(raw, str) else ""
    if not text.strip():
        return [], schema.help()
    try:
        schema.parse(text)
        status = "✓ The marks fit this task."
    except MarkError as err:
        status = f"⚠️ {err}"
    warning = identifier_warning(text)
    return highlight_segments(text, schema.counts), f"{status}\n\n{warning}".strip()


def _marked_input(model: ShippedModel):
    """Marked-sentence box, its live highlight and check, test-split examples and Analyze button."""
    schema = model.task.marks
    if model.task.page_note:
        gr.Markdown(model.task.page_note, elem_id="page_note")
    sentence = gr.Textbox(label=f"{model.task.input_label} (synthetic or de-identified text only)", lines=4,
                          max_lines=12, placeholder=schema.example, elem_id="note", max_length=MAX_NOTE_CHARS)
    highlight = gr.HighlightedText(label="Marked spans", elem_id="marked_spans", combine_adjacent=False)
    check = gr.Markdown(schema.help(), elem_id="mark_check")

    def on_change(raw):
        segments, message = mark_check(schema, raw)
        return {highlight: segments, check: message}

    sentence.change(on_change, sentence, [highlight, check], show_progress="hidden", trigger_mode="always_last",
                    concurrency_limit=None, preprocess=False,
                    api_name=f"check_marks_{model.task.name.replace('-', '_')}")
    examples, attribution = model.example_texts()
    if examples:
        gr.Examples(examples=[[e.text] for e in examples], inputs=[sentence],
                    example_labels=[f"{e.label_name} · test #{e.index}" for e in examples],
                    label="Test-split sentences")
        gr.Markdown(attribution, elem_id="examples_note")
    button = gr.Button("Analyze", variant="primary", elem_id="analyze")

    def run(text, rule, params):
        return analyze_marked(model, text, rule, params)

    return [sentence], button, run, []


def analyze_image(model: ShippedModel, source, label: int | None = None, rule: str = "epee",
                  params: dict | None = None):
    """Run the model on an uploaded image: its trace, the notices, and the model's view of it."""
    image = load_image(source)
    preprocessor = model.classifier.preprocessor
    trace = model.classifier.trace([image], labels=None if label is None else [label])
    notices = [preprocessor.conversion_notice(image),
               f"Image {image.size[0]}×{image.size[1]} ({image.mode}) → {preprocessor.size}×{preprocessor.size} "
               f"{preprocessor.color_name}.", timing_notice(model, image, rule, params)]
    notice = "\n\n".join(n for n in notices if n)
    return trace, notice, preprocessor.model_view(image)


def model_view_html(pixels: np.ndarray, size: int) -> str:
    """The model's ``size`` x ``size`` input, enlarged (uint8 [H, W] or [H, W, 3]), as an inline PNG with a caption.

    Inline, so nothing derived from an upload is written to disk, and no two sessions share
    a file: Gradio caches image outputs under a hash of their content and rewrites the file
    in place, so two sessions showing the same image at once could read it half-written.
    """
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    height, width = pixels.shape[:2]
    color = "grayscale" if pixels.ndim == 2 else "RGB"
    caption = f"What the model sees: the image as {size}×{size} {color} pixels, enlarged"
    return (f'<figure style="margin:0"><img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{caption}" style="image-rendering:pixelated"><figcaption>{caption}</figcaption></figure>')


def _image_input(model: ShippedModel):
    """Upload box, test-split examples (shipped, and more from the data directory) and the model's view."""
    upload = gr.File(label=f"{model.task.input_label or 'Image'} (PNG or JPEG, any size)", type="filepath",
                     elem_id="image_upload", file_types=["image"])
    examples = model.example_images()
    gold_by_name = {}
    if examples:
        folder = Path(tempfile.mkdtemp(prefix="epee-examples-"))
        paths = []
        for example in examples:
            path = folder / f"test-{example.index}.png"
            Image.fromarray(example.image).save(path)
            gold_by_name[path.name] = example.label
            paths.append([str(path)])
        gr.Examples(examples=paths, inputs=[upload], label=f"Test-split images ({DATASETS[model.task.medmnist].title})",
                    example_labels=[f"{e.label_name} · test #{e.index}" for e in examples])
    gr.Markdown(model.examples_note(examples) if examples else
                "No example images ship with this model. Upload an image of your own.", elem_id="examples_note")
    button = gr.Button("Analyze", variant="primary", elem_id="analyze")
    view = gr.HTML(label="What the model sees", elem_id="model_view")

    def run(upload, rule, params):
        path = upload.get("path") if isinstance(upload, dict) else upload  # unprocessed: Gradio's file data
        gold = gold_by_name.get(Path(path).name) if isinstance(path, str) else None
        trace, notice, pixels = analyze_image(model, path, gold, rule, params)
        return trace, notice, model_view_html(pixels, model.classifier.preprocessor.size)

    return [upload], button, run, [view]


def build_analyze_tab(model: ShippedModel) -> None:
    """Lay out one model's Analyze tab inside the current Blocks context and wire its events."""
    num_layers = model.classifier.num_layers
    rules = [r for r in policies.RULES if r in model.trace("test").available_rules() and r != "fixed"]

    depth_note = model.depth_note()
    if depth_note:
        gr.Markdown(depth_note, elem_id="depth_note")
    trace_state = gr.State(None, time_to_live=SESSION_SECONDS)
    settings_state = gr.State(default_settings(num_layers), time_to_live=SESSION_SECONDS)
    with gr.Row():
        with gr.Column(scale=2):
            build_input = (_marked_input if model.task.marks is not None else
                           _text_input if model.task.kind == "text" else _image_input)
            inputs, analyze, run_model, extra_outputs = build_input(model)
            run = on_gpu(run_model)  # the one call that runs the model: given a GPU on a Space
            notice = gr.Markdown(elem_id="notice")
        with gr.Column(scale=1):
            rule = gr.Dropdown(
                choices=[(policies.RULES[r].title, r) for r in rules], value="epee",
                label="Exit rule", elem_id="rule",
            )
            controls = build_controls(num_layers, len(model.classifier.label_names))
    summary = gr.Markdown(EMPTY_SUMMARY, elem_id="summary")
    with gr.Row():
        entropy_plot = gr.Plot(label="Normalized entropy per layer", elem_id="entropy_plot")
        counter_plot = gr.Plot(label="Counter per layer", elem_id="counter_plot")
    layers_table = gr.Dataframe(headers=LAYER_TABLE_HEADERS, interactive=False, elem_id="layer_table",
                                label="Per-layer prediction (text equivalent of the charts)")
    rules_table = gr.Dataframe(headers=RULE_TABLE_HEADERS, interactive=False, elem_id="rule_table",
                               label="Where every rule exits at its current setting")

    views = [summary, entropy_plot, counter_plot, layers_table, rules_table]

    def user_error(check, *args):
        """``check(*args)``, its ``InputError`` as a message for the page (no traceback in the log)."""
        try:
            return check(*args)
        except InputError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def on_analyze(*args):
        *raw, settings, rule_name = args
        user_error(checked_rule, rule_name, rules)
        try:
            trace, message, *extras = run(*raw, rule_name, settings[rule_name])
        except InputError as err:
            # a person's bad input: a message for them, no traceback in the server log
            raise gr.Error(str(err), print_exception=False) from None
        return (trace, message, *render(trace, settings, rule_name), *extras)

    def on_control(trace, settings, rule_name, *values):
        rule_name, values = user_error(checked_call, rule_name, dict(zip(CONTROLS, values)), rules, num_layers)
        settings = {**settings, rule_name: params_from_controls(rule_name, values)}
        return (settings, *render(trace, settings, rule_name))

    def on_rule(trace, settings, rule_name):
        user_error(checked_rule, rule_name, rules)
        shown = controls_of(rule_name)
        values = control_values(rule_name, settings[rule_name])
        updates = [gr.update(visible=c in shown, **({"value": values[c]} if c in values else {})) for c in CONTROLS]
        return (*updates, *render(trace, settings, rule_name))

    key = model.task.name.replace("-", "_")  # API endpoint suffix
    # preprocess=False everywhere: checked_call checks what the events receive, so Gradio's own checks
    # never repeat a value sent (a note in a slider's slot) in an error or in the server log.
    analyze.click(on_analyze, [*inputs, settings_state, rule], [trace_state, notice, *views, *extra_outputs],
                  concurrency_limit=MODEL_CALLS_AT_ONCE, concurrency_id=MODEL_GROUP, preprocess=False,
                  api_name=f"analyze_{key}")
    control_inputs = [trace_state, settings_state, rule, *controls.values()]
    for name, control in controls.items():
        control.input(on_control, control_inputs, [settings_state, *views], show_progress="hidden",
                      trigger_mode="always_last", concurrency_limit=None, preprocess=False,
                      api_name=f"set_{name}_{key}")
    rule.input(on_rule, [trace_state, settings_state, rule], [*controls.values(), *views],
               show_progress="hidden", concurrency_limit=None, preprocess=False, api_name=f"set_rule_{key}")
