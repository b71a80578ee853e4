"""The "Analyze" tab: one note or image, layer by layer, with live exit-rule sliders.

Analyze runs the model once and keeps the example's ``ExitTrace`` in session state;
every slider or rule change re-renders from that trace without touching the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
from gradio.components.plot import PlotData
from gradio.data_classes import GradioModel
from gradio.utils import is_prop_update

from epee_demo.rules import catalogue
from epee_demo.analysis.one_example import analyze_example
from epee_demo.trace.timing import traced_and_timed
from epee_demo.data.marked import MarkError, MarkSchema, highlight_segments
from epee_demo.data.medmnist import DATASETS
from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.data.entity_starts import EntityStartPreprocessor
from epee_demo.data.long_notes import head_tail_split, window_room
from epee_demo.figures import figure_json
from epee_demo.figures.layers import (
    LAYER_TABLE_HEADERS, RULE_TABLE_HEADERS, class_heatmap_figure_dicts, class_table, counter_figure_dicts,
    depth_markdown, entropy_figure_dicts, layer_table, rule_table, summary_markdown,
)
from epee_demo.model.device import on_gpu
from epee_demo.data.images import load_image
from epee_demo.data.preprocess import InputError, clean_note
from epee_demo.data.privacy import identifier_warning
from epee_demo.model.registry import ShippedModel
from epee_demo.trace.exit_trace import ExitTrace
from epee_demo.limits import MAX_NOTE_CHARS
from epee_demo.ui.files import uploaded_path
from epee_demo.ui.shown_input import inline_png, png_file
from epee_demo.ui.guard import MODEL_GROUP
from epee_demo.ui.controls import (
    CONTROLS, DEFAULT_RULE, build_controls, checked_call, checked_rule, control_values, controls_of,
    default_settings, params_from_controls,
)

EMPTY_SUMMARY = "Pick an example, or paste a note or upload an image of your own, and press **Analyze**."
SESSION_SECONDS = 3600  # a session's trace and settings are forgotten an hour after their last change
MODEL_CALLS_AT_ONCE = 2  # analyses that run the model at the same time (slider moves never wait for them)
ANALYZE_TAB = "tab-analyze"  # the Analyze tab's id, which other tabs open examples in
OPENING_RULE = (DEFAULT_RULE, catalogue.RULES[DEFAULT_RULE].params)  # the rule (and its defaults) the page opens with
OPENED_NOTE = ("This example was analyzed when the page was built or the task chosen: its time is the model's first "
               "run after loading. Press **Analyze** to run it again.")


def _table(headers: list[str], rows: list[list]) -> dict:
    """A table as ``gr.Dataframe`` takes it without pandas: the same reply as from a DataFrame, built
    and sent in 0.45 ms of CPU for the three tables of a slider move instead of 4.0 ms."""
    return {"headers": list(headers), "data": rows}


def _plot(figure_dicts: tuple[list[dict], dict]) -> PlotData:
    """A figure's plain trace and layout dicts as ``gr.Plot`` sends a figure (its JSON written straight
    from the dicts, ``figure_json``; ``gr.Plot`` passes a ``PlotData`` through unchanged)."""
    return PlotData(type="plotly", plot=figure_json(*figure_dicts))


def sent(outputs: dict) -> dict:
    """``outputs`` (component -> value) as Gradio sends them: each value through its component's own
    ``postprocess`` (an update's value too), states as they are. For the events declared
    ``postprocess=False``: Gradio would postprocess each output in a worker thread of its own, one hand-off
    per output (a slider move's 8 outputs: 3.6 ms of Gradio's CPU with plotly figures, 0.55 ms thus)."""
    done = {}
    for component, value in outputs.items():
        if component.stateful:
            done[component] = value
        elif is_prop_update(value):
            done[component] = {**value, "value": _dumped(component.postprocess(value["value"]))} if "value" in value else value
        else:
            done[component] = component.postprocess(value)
    return done


def _dumped(value):
    return value.model_dump() if isinstance(value, GradioModel) else value


def render(trace: ExitTrace | None, settings: dict, rule: str) -> dict:
    """Every per-layer view for the current setting, by name: summary, entropy figure,
    counter figure, layers × classes heatmap and its table, layer table and rule table
    (the figures as ``PlotData``, which ``gr.Plot`` sends as they are)."""
    if trace is None:
        return dict(summary=EMPTY_SUMMARY, entropy=None, counter=None, classes=None, class_table=None,
                    layers=_table(LAYER_TABLE_HEADERS, []), rules=_table(RULE_TABLE_HEADERS, []))
    analysis = analyze_example(trace, settings, rule)
    params = settings[rule]
    tau = params.get("tau") if rule != "fpabee" else None
    line = params.get("patience", params.get("threshold"))  # the counter's patience or the score's threshold
    class_headers, class_rows = class_table(analysis)
    return dict(
        summary=summary_markdown(analysis),
        entropy=_plot(entropy_figure_dicts(analysis, tau)),
        counter=_plot(counter_figure_dicts(analysis, line)),
        classes=_plot(class_heatmap_figure_dicts(analysis)),
        class_table=_table(class_headers, class_rows),
        layers=_table(LAYER_TABLE_HEADERS, layer_table(analysis)),
        rules=_table(RULE_TABLE_HEADERS, rule_table(analysis)),
    )


def truncation_notice(model: ShippedModel, text: str) -> str:
    """A visible notice when a note is longer than the model reads, else ''."""
    preprocessor = model.classifier.preprocessor
    if isinstance(preprocessor, EntityStartPreprocessor):
        return preprocessor.window_notice(text)
    tokens = preprocessor.token_count(text)
    if tokens <= preprocessor.max_length:
        return ""
    if preprocessor.long_notes == "head-tail":
        head, tail = head_tail_split(window_room(preprocessor.tokenizer, preprocessor.max_length))
        return (
            f"Long note: this note is {tokens} tokens long; the model reads {preprocessor.max_length} tokens: "
            f"its first {head} and its last {tail}, so the middle was not analyzed. (On long real "
            "abstracts, head and tail scored as well as reading every part and better than the first "
            f"{preprocessor.max_length} tokens alone; see the model card.)"
        )
    return (
        f"Truncated: this note is {tokens} tokens long; the model reads only the first "
        f"{preprocessor.max_length} tokens, so the rest was not analyzed."
    )


def traced(model: ShippedModel, model_input, rule: str, params: dict | None, label: int | None = None):
    """One input's trace and its ``AnalysisTiming``: the input is preprocessed once, and the model runs
    once (the trace pass, timed as it runs)."""
    classifier = model.classifier
    batch = classifier.to_device(classifier.preprocessor([model_input]))
    return traced_and_timed(classifier, batch, rule, None if label is None else [label], **(params or {}))


def text_input(model: ShippedModel, note) -> tuple[str, list[str]]:
    """A note as the model reads it, and the notices about it (truncation)."""
    text = clean_note(note)
    return text, [truncation_notice(model, text)]


def image_input(model: ShippedModel, source) -> tuple[np.ndarray, list[str]]:
    """An image as the model sees it (converted once: the trace and the model's view both use it),
    and the notices about it (colour conversion, size)."""
    image = load_image(source)
    preprocessor = model.classifier.preprocessor
    notices = [preprocessor.conversion_notice(image),
               f"Image {image.size[0]}×{image.size[1]} ({image.mode}) → {preprocessor.size}×{preprocessor.size} "
               f"{preprocessor.color_name}."]
    return preprocessor.pixels(image), notices



def marked_input(model: ShippedModel, raw) -> tuple[str, list[str]]:
    """A marked sentence as the model reads it (checked against the task's marks first: a ``MarkError``
    says what is wrong, with the syntax and an example), and the notices about it (truncation)."""
    text = model.task.marks.model_text(clean_note(raw))
    return text, [truncation_notice(model, text)]


INPUT_READERS = {"text": text_input, "image": image_input, "marked": marked_input}  # raw input -> model input, notices


def input_kind(model: ShippedModel) -> str:
    """Which input a model reads: ``marked`` (a sentence with the task's marks), ``text`` or ``image``."""
    return "marked" if model.task.marks is not None else model.spec.modality


def analyze_note(model: ShippedModel, note, rule: str = DEFAULT_RULE, params: dict | None = None,
                 label: int | None = None) -> tuple[ExitTrace, str]:
    """Run the model on a note (of gold class ``label`` when known): its one-example trace and the notices
    for the page (truncation, and the measured time of the trace pass, whole and up to the rule's exit)."""
    text, notices = text_input(model, note)
    trace, timing = traced(model, text, rule, params, label)
    return trace, "\n\n".join(n for n in [*notices, timing.label] if n)


@dataclass
class InputPanel:
    """One model's input side of the Analyze tab.

    ``run(raw input, rule, params)`` runs the model and returns the analysis's results by name:
    ``trace``, ``notice`` and one entry per component in ``outputs`` (name -> component);
    ``open(rule, params)`` is that result for the first example, which the input holds when the page
    opens (None when the model has no example); ``opened`` is that result at the opening rule when the
    panel was built to analyze it at once, else None; ``load(value, label, name, rule, params)`` is that
    result for a split example's input (a text, or a uint8 image) of gold class ``label``, named ``name``
    (``test-12``), with ``input``: the value the input component then holds.
    """

    input: gr.components.Component
    button: gr.Button
    run: Callable[..., dict]
    outputs: dict
    open: Callable[..., dict] | None
    opened: dict | None
    load: Callable[..., dict]


def _text_input(model: ShippedModel, analyze_now: bool) -> InputPanel:
    """Note box (holding the first example note, analyzed), example notes and Analyze button."""

    def run(text, rule, params, label=None) -> dict:
        trace, notice = analyze_note(model, text, rule, params, label)
        return {"trace": trace, "notice": notice}

    def load(text, label, name, rule, params) -> dict:
        return {"input": text, **run(text, rule, params, label)}

    opening = EXAMPLE_NOTES[0].text
    if model.page_note:
        gr.Markdown(model.page_note, elem_id="page_note")
    note = gr.Textbox(value=opening, label="Clinical note (synthetic or de-identified text only)", lines=8,
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
    def open_first(rule, params) -> dict:
        return run(opening, rule, params)

    return InputPanel(note, button, run, {}, open_first, open_first(*OPENING_RULE) if analyze_now else None, load)


def analyze_marked(model: ShippedModel, raw, rule: str = DEFAULT_RULE, params: dict | None = None,
                   label: int | None = None) -> tuple[ExitTrace, str]:
    """Run the model on a marked sentence (``marked_input``; of gold class ``label`` when known): its trace
    and the page's notices."""
    text, notices = marked_input(model, raw)
    trace, timing = traced(model, text, rule, params, label)
    return trace, "\n\n".join(n for n in [*notices, timing.label] if n)


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


def _marked_input(model: ShippedModel, analyze_now: bool) -> InputPanel:
    """Marked-sentence box (holding the first test-split example, analyzed), its live highlight and
    check, the test-split examples and Analyze button."""
    schema = model.task.marks
    if model.page_note:
        gr.Markdown(model.page_note, elem_id="page_note")
    examples, attribution = model.example_texts()
    opening = examples[0].text if examples else None
    sentence = gr.Textbox(value=opening, label=f"{model.task.input_label} (synthetic or de-identified text only)", lines=4,
                          max_lines=12, placeholder=schema.example, elem_id="note", max_length=MAX_NOTE_CHARS)
    segments, message = mark_check(schema, opening)  # the opening sentence's marks, highlighted at once
    highlight = gr.HighlightedText(segments, label="Marked spans", elem_id="marked_spans", combine_adjacent=False)
    check = gr.Markdown(message, elem_id="mark_check")

    def on_change(raw):
        segments, message = mark_check(schema, raw)
        return {highlight: segments, check: message}

    sentence.change(on_change, sentence, [highlight, check], show_progress="hidden", trigger_mode="always_last",
                    concurrency_limit=None, preprocess=False,
                    api_name=f"check_marks_{model.task.name.replace('-', '_')}")
    if examples:
        gr.Examples(examples=[[e.text] for e in examples], inputs=[sentence],
                    example_labels=[f"{e.label_name} · test #{e.index}" for e in examples],
                    label="Test-split sentences")
        gr.Markdown(attribution, elem_id="examples_note")
    button = gr.Button("Analyze", variant="primary", elem_id="analyze")

    def run(text, rule, params, label=None) -> dict:
        trace, notice = analyze_marked(model, text, rule, params, label)
        return {"trace": trace, "notice": notice}

    def load(text, label, name, rule, params) -> dict:
        return {"input": text, **run(text, rule, params, label)}

    def open_first(rule, params) -> dict:
        return run(opening, rule, params)

    if opening is None:
        return InputPanel(sentence, button, run, {}, None, None, load)
    return InputPanel(sentence, button, run, {}, open_first, open_first(*OPENING_RULE) if analyze_now else None, load)


def analyze_image(model: ShippedModel, source, label: int | None = None, rule: str = DEFAULT_RULE,
                  params: dict | None = None):
    """Run the model on an uploaded image: its trace, the notices, and the model's view of it."""
    pixels, notices = image_input(model, source)
    trace, timing = traced(model, pixels, rule, params, label)
    return trace, "\n\n".join(n for n in [*notices, timing.label] if n), model.classifier.preprocessor.model_view(pixels)


def model_view_html(pixels: np.ndarray, size: int) -> str:
    """The model's ``size`` x ``size`` input, enlarged (uint8 [H, W] or [H, W, 3]), as an inline PNG with a caption.

    Inline, so nothing derived from an upload is written to disk, and no two sessions share
    a file: Gradio caches image outputs under a hash of their content and rewrites the file
    in place, so two sessions showing the same image at once could read it half-written.
    """
    height, width = pixels.shape[:2]
    color = "grayscale" if pixels.ndim == 2 else "RGB"
    caption = f"What the model sees: the image as {size}×{size} {color} pixels, enlarged"
    return (f'<figure style="margin:0"><img src="{inline_png(pixels)}" width="{width}" height="{height}" '
            f'alt="{caption}" style="image-rendering:pixelated"><figcaption>{caption}</figcaption></figure>')


def _image_input(model: ShippedModel, analyze_now: bool) -> InputPanel:
    """Upload box (holding the first test-split example, analyzed), the examples (shipped, and more
    from the data directory) and the model's view."""
    examples = model.example_images()
    gold_by_name, paths = {}, []
    for example in examples:  # the PNGs are encoded once per process, not per page build
        path = png_file(example.image, f"{model.task.name}-test-{example.index}.png")
        gold_by_name[Path(path).name] = example.label
        paths.append([path])

    def analyzed(path: str, rule, params, label=None) -> dict:
        label = gold_by_name.get(Path(path).name) if label is None else label
        trace, notice, pixels = analyze_image(model, path, label, rule, params)
        return {"trace": trace, "notice": notice, "model_view": model_view_html(pixels, model.classifier.preprocessor.size)}

    def load(pixels, label, name, rule, params) -> dict:
        path = png_file(pixels, f"{model.task.name}-{name}.png")
        return {"input": path, **analyzed(path, rule, params, label)}

    def run(upload, rule, params) -> dict:
        # unprocessed: Gradio's file data as sent, so only a file of this app's upload folder is read
        return analyzed(uploaded_path(upload), rule, params)

    upload = gr.File(value=paths[0][0] if paths else None, type="filepath", elem_id="image_upload",
                     label=f"{model.task.input_label or 'Image'} (PNG or JPEG, any size)", file_types=["image"])
    if examples:
        gr.Examples(examples=paths, inputs=[upload], label=f"Test-split images ({DATASETS[model.task.medmnist].title})",
                    example_labels=[f"{e.label_name} · test #{e.index}" for e in examples])
    gr.Markdown(model.examples_note(examples) if examples else
                "No example images ship with this model. Upload an image of your own.", elem_id="examples_note")
    button = gr.Button("Analyze", variant="primary", elem_id="analyze")
    open_first = (lambda rule, params: analyzed(paths[0][0], rule, params)) if paths else None
    opened = open_first(*OPENING_RULE) if analyze_now and open_first else None
    view = gr.HTML(opened["model_view"] if opened else None, label="What the model sees", elem_id="model_view")
    return InputPanel(upload, button, run, {"model_view": view}, open_first, opened, load)


@dataclass
class Opening:
    """How a view analyzes its first example when first chosen: ``run(trace, settings, rule)`` returns
    the updates keyed by component (none once the view holds a trace), reading ``inputs``."""

    run: Callable[..., dict]
    inputs: list
    outputs: list


@dataclass
class Loading:
    """How another tab opens a split example in a view: ``run(value, label, name, settings, rule)`` fills
    the view's input with the example's input ``value`` (of gold class ``label``, named ``name``:
    ``test-12``) and returns its analysis as updates keyed by component; it reads ``inputs`` after
    those three."""

    run: Callable[..., dict]
    inputs: list
    outputs: list


@dataclass
class AnalyzeView:
    """What the page wires across views: ``opening`` (None when the model has no example) for
    ``open_when_chosen``, and ``loading`` for ``open_in_analyze``."""

    opening: Opening | None
    loading: Loading


def build_analyze_tab(model: ShippedModel, analyze_now: bool = True) -> AnalyzeView:
    """Lay out one model's Analyze view inside the current Blocks context and wire its events.

    With ``analyze_now`` the view opens with its first example analyzed (the model loads and runs when
    the page is built); else its ``opening`` does so (None without an example), for ``open_when_chosen``."""
    test_trace = model.trace("test")  # the cached trace: the view's layers and classes without loading the model
    num_layers = test_trace.num_layers
    rules = [r for r in catalogue.RULES if r in test_trace.available_rules() and r != "fixed"]

    depth_note = depth_markdown(model.metrics, model.task.depth_note)
    if depth_note:
        gr.Markdown(depth_note, elem_id="depth_note")
    settings = default_settings(num_layers)
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            panel = {"marked": _marked_input, "text": _text_input, "image": _image_input}[input_kind(model)](
                model, analyze_now)
            run = on_gpu(panel.run)  # the one call that runs the model: given a GPU on a Space
            opened = panel.opened or {"trace": None, "notice": None}
            notice = gr.Markdown(opened["notice"] and f"{OPENED_NOTE}\n\n{opened['notice']}", elem_id="notice")
        with gr.Column(scale=1, min_width=260):
            rule = gr.Dropdown(
                choices=[(catalogue.RULES[r].title, r) for r in rules], value=OPENING_RULE[0],
                label="Exit rule", elem_id="rule",
            )
            controls = build_controls(num_layers, len(test_trace.label_names))
    start = render(opened["trace"], settings, OPENING_RULE[0])  # every view filled on first sight
    views = dict(summary=gr.Markdown(start["summary"], elem_id="summary"))
    with gr.Row():
        views["entropy"] = gr.Plot(start["entropy"], label="Normalized entropy per layer", elem_id="entropy_plot",
                                   min_width=300)
        views["counter"] = gr.Plot(start["counter"], label="Counter per layer", elem_id="counter_plot", min_width=300)
    views["classes"] = gr.Plot(start["classes"], label="Every class at every layer", elem_id="class_heatmap")
    views["class_table"] = gr.Dataframe(start["class_table"], interactive=False, elem_id="class_table",
                                        label="Every class at every layer (text equivalent of the heatmap)")
    views["layers"] = gr.Dataframe(start["layers"], interactive=False, elem_id="layer_table",
                                   label="Per-layer prediction (text equivalent of the charts)")
    views["rules"] = gr.Dataframe(start["rules"], interactive=False, elem_id="rule_table",
                                  label="Where every rule exits at its current setting")
    results = {"trace": gr.State(opened["trace"], time_to_live=SESSION_SECONDS), "notice": notice}
    settings_state = gr.State(settings, time_to_live=SESSION_SECONDS)

    def shown(trace, settings_now, rule_name) -> dict:
        """Every view for this trace and setting, keyed by component."""
        return {views[name]: value for name, value in render(trace, settings_now, rule_name).items()}

    def user_error(check, *args):
        """``check(*args)``, its ``InputError`` as a message for the page (no traceback in the log)."""
        try:
            return check(*args)
        except InputError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def on_analyze(raw, settings_now, rule_name):
        user_error(checked_rule, rule_name, rules)
        # a person's bad input: a message for them, no traceback in the server log
        done = user_error(run, raw, rule_name, settings_now[rule_name])
        return sent({**{results[name]: value for name, value in done.items()},
                     **shown(done["trace"], settings_now, rule_name)})

    # The light events' handlers are coroutines: Gradio runs them on its event loop instead of handing each
    # call to a worker thread and back (their work, a millisecond or so, costs less than that hand-off).
    async def on_control(trace, settings_now, rule_name, *values):
        rule_name, values = user_error(checked_call, rule_name, dict(zip(CONTROLS, values)), rules, num_layers)
        settings_now = {**settings_now, rule_name: params_from_controls(rule_name, values)}
        return sent({settings_state: settings_now, **shown(trace, settings_now, rule_name)})

    async def on_rule(trace, settings_now, rule_name):
        user_error(checked_rule, rule_name, rules)
        visible = controls_of(rule_name)
        values = control_values(rule_name, settings_now[rule_name])
        updates = {control: gr.update(visible=name in visible, **({"value": values[name]} if name in values else {}))
                   for name, control in controls.items()}
        return sent({**updates, **shown(trace, settings_now, rule_name)})

    key = model.task.name.replace("-", "_")  # API endpoint suffix
    # preprocess=False everywhere: checked_call checks what the events receive, so Gradio's own checks
    # never repeat a value sent (a note in a slider's slot) in an error or in the server log. The view's
    # own events also skip Gradio's postprocessing (postprocess=False): their handlers return what is sent.
    results.update(panel.outputs)
    # the panel's own outputs after the views: an API reply gives the notice, then the summary, as before
    panel.button.click(on_analyze, [panel.input, settings_state, rule],
                       [results["trace"], notice, *views.values(), *panel.outputs.values()],
                       concurrency_limit=MODEL_CALLS_AT_ONCE, concurrency_id=MODEL_GROUP,
                       api_name=f"analyze_{key}", preprocess=False, postprocess=False)
    control_inputs = [results["trace"], settings_state, rule, *controls.values()]
    for name, control in controls.items():
        control.input(on_control, control_inputs, [settings_state, *views.values()], show_progress="hidden",
                      trigger_mode="always_last", concurrency_limit=None, api_name=f"set_{name}_{key}", preprocess=False,
                      postprocess=False)
    rule.input(on_rule, [results["trace"], settings_state, rule], [*controls.values(), *views.values()],
               show_progress="hidden", concurrency_limit=None, api_name=f"set_rule_{key}", preprocess=False,
               postprocess=False)
    outputs = [results["trace"], notice, *views.values(), *panel.outputs.values()]
    load = on_gpu(panel.load)

    def on_load(value, label, name, settings_now, rule_name) -> dict:
        """A split example's input in the view's input, analyzed at the view's current setting."""
        user_error(checked_rule, rule_name, rules)
        done = user_error(load, value, label, name, rule_name, settings_now[rule_name])
        return {panel.input: done.pop("input"), **{results[key]: value for key, value in done.items()},
                **shown(done["trace"], settings_now, rule_name)}

    loading = Loading(on_load, [settings_state, rule], [panel.input, *outputs])
    if panel.open is None:
        return AnalyzeView(None, loading)

    def on_chosen(trace, settings_now, rule_name) -> dict:
        """The first example analyzed, and noted as such, the first time this model is chosen; else nothing."""
        if trace is not None:
            return {}
        user_error(checked_rule, rule_name, rules)
        done = run_opening(rule_name, settings_now[rule_name])
        return {**{results[name]: value for name, value in done.items()},
                notice: f"{OPENED_NOTE}\n\n{done['notice']}", **shown(done["trace"], settings_now, rule_name)}

    run_opening = on_gpu(panel.open)
    return AnalyzeView(Opening(on_chosen, [results["trace"], settings_state, rule], outputs), loading)


def open_when_chosen(selected: gr.State, openings: dict[str, Opening]) -> None:
    """One event (a session runs one analysis at a time): when ``selected`` names a model whose view
    holds no analysis yet, that view analyzes its first example."""
    names = list(openings)
    if not names:
        return
    inputs = [selected, *(i for opening in openings.values() for i in opening.inputs)]
    outputs = list(dict.fromkeys(o for opening in openings.values() for o in opening.outputs))

    def on_selected(chosen, *values) -> dict:
        done = {}
        if chosen in openings:
            start = sum(len(openings[name].inputs) for name in names[:names.index(chosen)])
            done = openings[chosen].run(*values[start:start + len(openings[chosen].inputs)])
        return done or {outputs[0]: gr.skip()}  # Gradio wants one output named at least

    selected.change(on_selected, inputs, outputs, concurrency_limit=MODEL_CALLS_AT_ONCE, concurrency_id=MODEL_GROUP,
                    api_name=False, preprocess=False)


@dataclass
class ExampleSource:
    """A tab's way to open one split example in Analyze: pressing ``button`` opens the example that
    ``example_of(model name, *values of inputs)`` names, as (split, index) (an ``InputError`` when none)."""

    button: gr.Button
    inputs: list
    example_of: Callable[..., tuple[str, int]]


def open_in_analyze(source: ExampleSource, tabs: gr.Tabs, selected: gr.State, models: dict[str, ShippedModel],
                    loadings: dict[str, Loading], api_name: str) -> None:
    """Wire ``source.button`` (an ``ExampleSource`` of another tab): the split example it names opens in
    the selected model's Analyze view, its input (shipped in ``split_inputs.npz``) filled in and
    analyzed at the view's setting, and the Analyze tab is shown."""
    names = list(loadings)
    inputs = [selected, *source.inputs, *(i for loading in loadings.values() for i in loading.inputs)]
    outputs = [tabs, *dict.fromkeys(o for loading in loadings.values() for o in loading.outputs)]

    def on_open(chosen, *values) -> dict:
        given, rest = values[:len(source.inputs)], values[len(source.inputs):]
        if chosen not in loadings:
            raise gr.Error("Task: choose one of those on the page.", print_exception=False)
        model = models[chosen]
        try:
            split, index = source.example_of(chosen, *given)
        except InputError as err:
            raise gr.Error(str(err), print_exception=False) from None
        value = model.split_inputs.get(split, index)
        if value is None:
            raise gr.Error(f"The input of example {index} of the {split} split does not ship with this model: only "
                           "a few of the test split's overthinking examples per class and the lesson's do.", print_exception=False)
        labels = model.trace(split).labels
        label = int(labels[index]) if labels is not None and labels[index] >= 0 else None
        start = sum(len(loadings[name].inputs) for name in names[:names.index(chosen)])
        done = loadings[chosen].run(value, label, f"{split}-{index}", *rest[start:start + len(loadings[chosen].inputs)])
        return {tabs: gr.Tabs(selected=ANALYZE_TAB), **done}

    source.button.click(on_open, inputs, outputs, concurrency_limit=MODEL_CALLS_AT_ONCE, concurrency_id=MODEL_GROUP,
                        api_name=api_name, preprocess=False)
