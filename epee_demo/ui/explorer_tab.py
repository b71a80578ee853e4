"""The "Trade-off explorer" tab: the task's metric (accuracy, or its own F1) against speed-up
over a whole split, live.

Every (model, split) is prepared once when the page is built (``prepare_splits``); a slider
move re-evaluates the chosen rule over the prepared trace and redraws the figures, without
any model call. Calibration, overthinking examples and exports read the same prepared data.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from epee_demo.rules import catalogue
from epee_demo.errors import InputError
from epee_demo.figures.layers import LAYER_TABLE_HEADERS, RULE_TABLE_HEADERS, tau_in_nats
from epee_demo.figures.tradeoff import (
    class_accuracy_figure, confusion_figure, exit_histogram_figure, figure_frame, overthinking_figure,
    tradeoff_figure,
)
from epee_demo.model.registry import ShippedModel
from epee_demo.analysis.whole_split import (
    Calibration, Frontier, Overthinking, PreparedTrace, SettingView, all_frontiers, calibrate,
    evaluate_setting, format_params, operating_points_csv, overthinking, prepare, speedup_text, trace_csv,
)
from epee_demo.ui.analyze_tab import render
from epee_demo.ui.controls import (
    CONTROLS, build_controls, checked_call, control_values, controls_of, default_settings,
    params_from_controls,
)

SPLITS = ("test", "val")

TRADEOFF_HELP = """**How to read it.** Each line is one exit rule: every point is a setting of that rule,
and only the best settings (none faster *and* more accurate) are drawn, joined point to point:
a line ends at its rule's fastest setting, and nothing between two points was measured. Further right = fewer
layers computed on average; higher = a better score on the task's metric (named on the
vertical axis: accuracy, or the F1 score a relation or event task is judged by). The dashed line simply stops every
example after a fixed number of layers; the black square is the full model. The ring is the
current setting of the sliders."""

HISTOGRAM_HELP = """**Where examples stop.** Bars count the examples that exit at each layer under the
current setting. The hatched bars show the *oracle* exit: the earliest layer from which the
model's answer no longer changes. Exiting before it can change the answer; exiting after it
spends layers for nothing."""

CLASS_HELP = """**Who pays for the speed.** Accuracy per diagnosis class at the current setting next to
the full model. A rule can keep the overall accuracy while one small class loses much more:
check the classes that matter to you."""

CONFUSION_HELP = """**What changed.** Rows: the full model's answer. Columns: the answer at the early exit.
Everything on the diagonal is unchanged; every count off the diagonal is an example whose
answer early exiting changed (for better or worse)."""

OVERTHINKING_HELP = """**Overthinking.** Some examples are answered correctly by an early layer and then
*wrongly* by the last one: more computation made the answer worse. An early exit can rescue
these. The table lists them; select a row (or type its number) to see that example layer by
layer. No raw texts or images are stored with the cached results, so only the index and the
labels are shown."""

CALIBRATE_HELP = """**Choosing a setting with a guarantee.** Pick how often you accept that the early
answer differs from the full model's answer (ε). The rule's speed setting is then chosen on the
*validation* split so that this disagreement stays at most ε (conformal risk control, or
Learn-then-Test at 90% confidence), and checked on the *test* split."""

OVERTHINKING_HEADERS = [
    "example", "gold", "first right at layer", "final answer", "oracle exit", "current rule exits at",
    "answer at that exit",
]


@dataclass
class PreparedSplit:
    """One model's split, ready for the explorer.

    Attributes:
        prep: the prepared trace (N examples, L layers).
        frontiers: rule -> ``Frontier`` of every rule the trace can evaluate.
        overthinking: destructive overthinking, or None without gold labels.
    """

    prep: PreparedTrace
    frontiers: dict[str, Frontier]
    overthinking: Overthinking | None


def prepare_split(trace, metric: str = "accuracy") -> PreparedSplit:
    """Prepare one trace scored by the task's ``metric``: what the rules read, every rule's frontier
    and the overthinking counts."""
    prep = prepare(trace, metric)
    return PreparedSplit(prep, all_frontiers(prep), overthinking(prep) if prep.has_labels else None)


def prepare_splits(models: dict[str, ShippedModel]) -> dict[tuple[str, str], PreparedSplit]:
    """Every (model name, split) of the shipped models, prepared once."""
    return {(name, split): prepare_split(model.trace(split), model.task.metric)
            for name, model in models.items() for split in SPLITS}


def quality_text(point, bold: bool = True) -> str:
    """The task metric of a point beside the full model's, then its accuracy when the metric is another
    (``macro-F1 **83.0%** (full model 83.8%), accuracy 95.1% (full model 95.4%), ``); "" without labels."""
    if point.accuracy != point.accuracy:
        return ""
    mark = "**" if bold else ""
    text = f"{point.metric_title} {mark}{100 * point.score:.1f}%{mark} (full model {100 * point.full_score:.1f}%), "
    if point.metric != "accuracy":
        text += f"accuracy {100 * point.accuracy:.1f}% (full model {100 * point.full_accuracy:.1f}%), "
    return text


def point_markdown(view: SettingView, split: str, label_names: tuple) -> str:
    """The current operating point in one short paragraph, with the rule's units and note."""
    point, oracle = view.point, view.vs_oracle
    accuracy = quality_text(point)
    spec = catalogue.RULES[point.rule]
    lines = [
        f"**{point.label}** on the {split} split ({point.num_examples} examples): {accuracy}"
        f"average exit layer **{point.average_exit_layer:.2f} of {point.num_layers}**, "
        f"{speedup_text(point.speedup, point.saved_fraction)}, "
        f"same answer as the full model for **{100 * point.agreement:.1f}%**. "
        f"Compared with the oracle exit: {oracle.earlier} exit earlier, {oracle.same} at it, {oracle.later} later."
    ]
    if "tau" in spec.params and spec.parameter("tau").control == "tau":
        lines.append(f"DeeBERT's unit: {tau_in_nats(point.params['tau'], len(label_names))}.")
    if spec.note:
        lines.append(spec.note)
    return "\n\n".join(lines)


def overthinking_table(split: PreparedSplit, view: SettingView) -> pd.DataFrame:
    """One row per example with destructive overthinking, with where the current rule exits."""
    if split.overthinking is None:
        return pd.DataFrame([], columns=OVERTHINKING_HEADERS)
    prep, names = split.prep, split.prep.trace.label_names
    rows = []
    for n in split.overthinking.destructive.nonzero()[0]:
        rows.append([
            int(n), names[prep.trace.labels[n]], int(prep.correct[n].argmax()) + 1,
            names[prep.full_predictions[n]], int(prep.oracle_exits[n]), int(view.exits[n]),
            names[view.answers[n]],
        ])
    return pd.DataFrame(rows, columns=OVERTHINKING_HEADERS)


def setting_views(split: PreparedSplit, split_name: str, rule: str, params: dict) -> tuple:
    """What a slider move redraws: summary, then (figure, table) for the trade-off, the exit
    histogram, per-class accuracy and the confusion against the full model, then the
    overthinking-examples table."""
    view = evaluate_setting(split.prep, rule, **params)
    figures = [
        tradeoff_figure(split.frontiers, view.point),
        exit_histogram_figure(view.exit_counts, view.oracle_counts, rule),
        class_accuracy_figure(view.class_accuracy, rule) if view.class_accuracy is not None else None,
        confusion_figure(view.confusion, split.prep.trace.label_names),
    ]
    pairs = [item for fig in figures for item in (fig, None if fig is None else figure_frame(fig))]
    return (point_markdown(view, split_name, split.prep.trace.label_names), *pairs, overthinking_table(split, view))


def calibration_markdown(calibration: Calibration) -> str:
    """The calibration's choice, its guarantee and how it does on test."""
    title = catalogue.RULES[calibration.rule].title
    if calibration.method == "crc":
        bound = (f"conformal risk control: expected disagreement with the full model ≤ ε = "
                 f"{calibration.epsilon:g} for a new example like the validation ones")
    else:
        bound = (f"Learn-then-Test: with probability ≥ {1 - calibration.delta:.0%}, the disagreement with "
                 f"the full model is ≤ ε = {calibration.epsilon:g}")
    if calibration.params is None:
        chosen = (f"No setting of {title} is certified at ε = {calibration.epsilon:g} on the validation "
                  "split, so the **full model** answers (every layer runs). Try a larger ε.")
    else:
        statistic = calibration.val_statistic[calibration.chosen]
        chosen = (f"Chosen setting of **{title}**: **{format_params(calibration.params)}** "
                  f"(scanning {calibration.knob}; validation disagreement "
                  f"{100 * calibration.val_risk[calibration.chosen]:.2f}%, "
                  f"{'adjusted risk' if calibration.method == 'crc' else 'p-value'} {statistic:.4f}).")
    lines = [chosen, "", f"Guarantee ({bound})."]
    for name, point in (("validation", calibration.val), ("test", calibration.test)):
        if point is not None:
            lines.append(
                f"- **{name}**: {quality_text(point, bold=False)}"
                f"{speedup_text(point.speedup, point.saved_fraction)}, disagreement with the full model {100 * (1 - point.agreement):.2f}%"
            )
    return "\n".join(lines)


def _export_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="epee-export-"))


def export_trace(split: PreparedSplit, name: str) -> str:
    """Write the per-layer trace CSV to a fresh temporary folder; returns its path."""
    path = _export_folder() / f"{name}_trace.csv"
    trace_csv(split.prep, path)
    return str(path)


def export_points(split: PreparedSplit, name: str) -> str:
    """Write every rule's grid of operating points (with the Pareto flag) as CSV; returns its path."""
    path = _export_folder() / f"{name}_operating_points.csv"
    operating_points_csv(split.frontiers, path)
    return str(path)


def export_tradeoff_html(split: PreparedSplit, name: str, rule: str, params: dict) -> str:
    """Write the trade-off figure at the current setting as a self-contained HTML page; returns its path."""
    view = evaluate_setting(split.prep, rule, **params)
    path = _export_folder() / f"{name}_tradeoff.html"
    tradeoff_figure(split.frontiers, view.point).write_html(path, include_plotlyjs=True, full_html=True)
    return str(path)


def _user_error(err: InputError):
    return gr.Error(str(err), print_exception=False)


def build_explorer_tab(models: dict[str, ShippedModel], selected: gr.State | None = None) -> None:
    """Lay out the trade-off explorer inside the current Blocks context and wire its events; with the
    page's ``selected`` model it follows that choice (and shows no model choice of its own)."""
    splits = prepare_splits(models)
    first = next(iter(models))
    num_layers = splits[(first, "test")].prep.num_layers
    rules = [r for r in catalogue.RULES if r in splits[(first, "test")].prep.rules and r != "fixed"]
    start = splits[(first, "test")]
    (start_summary, start_tradeoff, start_tradeoff_table, start_histogram, start_histogram_table, start_class,
     start_class_table, start_confusion, start_confusion_table, start_examples) = setting_views(
        start, "test", "epee", dict(catalogue.RULES["epee"].params))
    start_overthinking = overthinking_figure(start.overthinking) if start.overthinking is not None else None

    gr.Markdown("## Speed against the task's metric on a whole data split\nEvery number here comes from the model's "
                "cached answers at every layer, so moving a slider recomputes in milliseconds.")
    with gr.Row():
        with gr.Column(scale=1):
            model_choice = gr.Radio([(m.task.title, n) for n, m in models.items()], value=first, label="Model",
                                    elem_id="explore_model", visible=selected is None)
            split_choice = gr.Radio([("test split", "test"), ("validation split", "val")], value="test",
                                    label="Data split", elem_id="explore_split")
            rule = gr.Dropdown([(catalogue.RULES[r].title, r) for r in rules], value="epee", label="Exit rule",
                               elem_id="explore_rule")
        with gr.Column(scale=1):
            controls = build_controls(num_layers, None, "explore_")
    point_summary = gr.Markdown(start_summary, elem_id="explore_point")

    def figure_with_help(label: str, help_text: str, elem: str, fig, table_value):
        with gr.Row():
            with gr.Column(scale=3):
                plot = gr.Plot(fig, label=label, elem_id=f"explore_{elem}_plot")
            with gr.Column(scale=1):
                gr.Markdown(help_text)
        with gr.Accordion("Data as a table", open=False):
            table = gr.Dataframe(table_value, interactive=False, label=f"{label} (data)",
                                 elem_id=f"explore_{elem}_table")
        return plot, table

    tradeoff_plot, tradeoff_table = figure_with_help("Task metric against speed-up", TRADEOFF_HELP, "tradeoff",
                                                     start_tradeoff, start_tradeoff_table)
    histogram_plot, histogram_table = figure_with_help("Exit layers", HISTOGRAM_HELP, "histogram",
                                                       start_histogram, start_histogram_table)
    class_plot, class_table = figure_with_help("Accuracy per class", CLASS_HELP, "class",
                                               start_class, start_class_table)
    confusion_plot, confusion_table = figure_with_help("Early answer against the full model", CONFUSION_HELP,
                                                       "confusion", start_confusion, start_confusion_table)

    gr.Markdown("### Overthinking")
    with gr.Row():
        with gr.Column(scale=3):
            overthinking_plot = gr.Plot(start_overthinking, label="Overthinking per layer",
                                        elem_id="explore_overthinking_plot")
        with gr.Column(scale=1):
            gr.Markdown(OVERTHINKING_HELP)
    with gr.Accordion("Data as a table", open=False):
        overthinking_counts = gr.Dataframe(None if start_overthinking is None else figure_frame(start_overthinking),
                                           interactive=False, label="Overthinking per layer (data)",
                                           elem_id="explore_overthinking_counts")
    examples_table = gr.Dataframe(start_examples, headers=OVERTHINKING_HEADERS, interactive=False,
                                  label="Examples right at some layer and wrong at the last (select a row)",
                                  elem_id="explore_overthinking_examples")
    with gr.Row():
        example_index = gr.Number(label="Example index", precision=0, minimum=0, elem_id="explore_example_index")
        open_example = gr.Button("Show this example layer by layer", elem_id="explore_open_example")
    example_summary = gr.Markdown(elem_id="explore_example_summary")
    with gr.Row():
        example_entropy = gr.Plot(label="Normalized entropy per layer", elem_id="explore_example_entropy")
        example_counter = gr.Plot(label="Counter per layer", elem_id="explore_example_counter")
    example_layers = gr.Dataframe(headers=LAYER_TABLE_HEADERS, interactive=False,
                                  label="Per-layer prediction (text equivalent of the charts)",
                                  elem_id="explore_example_layers")
    example_rules = gr.Dataframe(headers=RULE_TABLE_HEADERS, interactive=False,
                                 label="Where every rule exits (other rules at their default setting)",
                                 elem_id="explore_example_rules")

    gr.Markdown("### Calibrate")
    with gr.Row():
        with gr.Column(scale=2):
            epsilon = gr.Slider(0.0, 0.1, value=0.01, step=0.005, label="ε: accepted disagreement with the full model",
                                elem_id="explore_epsilon")
            method = gr.Radio([("conformal risk control (CRC)", "crc"), ("Learn-then-Test (LTT)", "ltt")],
                              value="crc", label="Method", elem_id="explore_method")
            calibrate_button = gr.Button("Calibrate on validation, check on test", variant="primary",
                                         elem_id="explore_calibrate")
        with gr.Column(scale=1):
            gr.Markdown(CALIBRATE_HELP)
    calibration_report = gr.Markdown(elem_id="explore_calibration")

    gr.Markdown("### Export")
    with gr.Row():
        trace_button = gr.Button("Per-layer trace (CSV)", elem_id="explore_export_trace")
        points_button = gr.Button("Operating points (CSV)", elem_id="explore_export_points")
        figure_button = gr.Button("Trade-off figure (HTML)", elem_id="explore_export_figure")
    exported = gr.File(label="Download", interactive=False, elem_id="explore_download")

    setting_outputs = [point_summary, tradeoff_plot, tradeoff_table, histogram_plot, histogram_table,
                       class_plot, class_table, confusion_plot, confusion_table, examples_table]
    example_outputs = [example_summary, example_entropy, example_counter, example_layers, example_rules]
    setting_inputs = [model_choice, split_choice, rule, *controls.values()]

    most_layers = max(split.prep.num_layers for split in splits.values())

    def checked_split(model_name, split_name) -> PreparedSplit:
        if not isinstance(model_name, str) or not isinstance(split_name, str) or (model_name, split_name) not in splits:
            raise _user_error(InputError("Model and data split: choose one of those on the page."))
        return splits[(model_name, split_name)]

    def checked(model_name, split_name, rule_name, values, num_layers=None):
        """An event's model and split, and its rule and controls checked by ``checked_call``
        (the events take their inputs unprocessed, so no value sent is echoed or logged)."""
        split = checked_split(model_name, split_name)
        try:
            return split, checked_call(rule_name, dict(zip(CONTROLS, values)), rules,
                                       num_layers or split.prep.num_layers)[1]
        except InputError as err:
            raise _user_error(err) from None

    def current(model_name, split_name, rule_name, *values):
        split, values = checked(model_name, split_name, rule_name, values)
        return split, params_from_controls(rule_name, values)

    def on_control(model_name, split_name, rule_name, *values):
        split, params = current(model_name, split_name, rule_name, *values)
        try:
            return setting_views(split, split_name, rule_name, params)
        except InputError as err:
            raise _user_error(err) from None

    def on_rule(model_name, split_name, rule_name, *values):
        shown = controls_of(rule_name)
        updates = [gr.update(visible=c in shown) for c in CONTROLS]
        return (*updates, *on_control(model_name, split_name, rule_name, *values))

    def on_data(model_name, split_name, rule_name, *values):
        """A model or split change: slider ranges, every view, and no example open."""
        split, values = checked(model_name, split_name, rule_name, values, most_layers)  # clamped just below
        layers = split.prep.num_layers
        values["patience"] = min(int(values["patience"]), layers)
        values["layer"] = min(int(values["layer"]), layers)
        over_fig = overthinking_figure(split.overthinking) if split.overthinking is not None else None
        return (
            gr.update(maximum=layers, value=values["patience"]), gr.update(maximum=layers, value=values["layer"]),
            over_fig, None if over_fig is None else figure_frame(over_fig), None, "", None, None, None, None,
            *on_control(model_name, split_name, rule_name, *values.values()),
        )

    def show_example(model_name, split_name, rule_name, *args):
        *values, index = args
        split, params = current(model_name, split_name, rule_name, *values)
        if (isinstance(index, bool) or not isinstance(index, (int, float)) or not math.isfinite(index)
                or not 0 <= index < split.prep.num_examples):
            raise _user_error(InputError(
                f"Choose an example index between 0 and {split.prep.num_examples - 1}."))
        index = int(index)
        settings = {**default_settings(split.prep.num_layers), rule_name: params}
        views = render(split.prep.trace.subset([index]), settings, rule_name)
        header = (f"#### Example {index} of the {split_name} split ({models[model_name].task.title})\n"
                  "Raw texts and images are not kept with the cached results; only the labels are shown. "
                  "Views at the current setting of the sliders (press the button again after moving them).\n\n")
        return (index, header + views["summary"], views["entropy"], views["counter"], views["layers"], views["rules"])

    # Gradio injects the event data only into a named positional parameter (not after *args).
    def on_select(model_name, split_name, rule_name, tau_value, patience_value, threshold_value,
                  divergence_tau_value, measure_value, layer_value, evt: gr.SelectData):
        values = (tau_value, patience_value, threshold_value, divergence_tau_value, measure_value, layer_value)
        return show_example(model_name, split_name, rule_name, *values, evt.row_value[0])

    def on_calibrate(model_name, rule_name, *args):
        *values, eps, method_name = args
        val, params = current(model_name, "val", rule_name, *values)
        test = splits[(model_name, "test")]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or method_name not in ("crc", "ltt"):
            raise _user_error(InputError("ε must be a number and the method CRC or LTT."))
        try:
            calibration = calibrate(val.prep, rule_name, float(eps), test=test.prep, method=method_name, **params)
        except InputError as err:
            raise _user_error(err) from None
        chosen = calibration.params or params
        report = calibration_markdown(calibration)
        if calibration.params is None:
            report += "\n\nThe sliders are left where they were."
        shown = control_values(rule_name, chosen)
        updates = [gr.update(value=shown[c]) if c in shown else gr.update() for c in CONTROLS]
        over_fig = overthinking_figure(test.overthinking) if test.overthinking is not None else None
        return (report, "test", *updates, over_fig, None if over_fig is None else figure_frame(over_fig),
                *setting_views(test, "test", rule_name, chosen))

    def on_export_trace(model_name, split_name):
        return export_trace(checked_split(model_name, split_name), f"{model_name}_{split_name}")

    def on_export_points(model_name, split_name):
        return export_points(checked_split(model_name, split_name), f"{model_name}_{split_name}")

    def on_export_figure(model_name, split_name, rule_name, *values):
        split, params = current(model_name, split_name, rule_name, *values)
        return export_tradeoff_html(split, f"{model_name}_{split_name}", rule_name, params)

    fast = dict(show_progress="hidden", trigger_mode="always_last", concurrency_limit=None, preprocess=False)
    for name, control in controls.items():
        control.input(on_control, setting_inputs, setting_outputs, api_name=f"explore_set_{name}", **fast)
    rule.input(on_rule, setting_inputs, [*controls.values(), *setting_outputs], api_name="explore_set_rule", **fast)
    data_outputs = [controls["patience"], controls["layer"], overthinking_plot, overthinking_counts, example_index, *example_outputs,
                    *setting_outputs]
    model_choice.input(on_data, setting_inputs, data_outputs, api_name="explore_set_model", **fast)
    split_choice.input(on_data, setting_inputs, data_outputs, api_name="explore_set_split", **fast)
    if selected is not None:
        def on_selected(model_name, *rest) -> dict:
            return {model_choice: model_name, **dict(zip(data_outputs, on_data(model_name, *rest)))}

        selected.change(on_selected, [selected, *setting_inputs[1:]], [model_choice, *data_outputs], api_name=False,
                        **fast)
    open_example.click(show_example, [*setting_inputs, example_index], [example_index, *example_outputs],
                       api_name="explore_open_example", concurrency_limit=None, preprocess=False)
    examples_table.select(on_select, setting_inputs, [example_index, *example_outputs],
                          api_name="explore_select_example", concurrency_limit=None, preprocess=False)
    calibrate_button.click(on_calibrate, [model_choice, rule, *controls.values(), epsilon, method],
                           [calibration_report, split_choice, *controls.values(), overthinking_plot,
                            overthinking_counts, *setting_outputs],
                           api_name="explore_calibrate", concurrency_limit=None, preprocess=False)
    trace_button.click(on_export_trace, [model_choice, split_choice], exported, api_name="explore_export_trace",
                       preprocess=False)
    points_button.click(on_export_points, [model_choice, split_choice], exported, api_name="explore_export_points",
                        preprocess=False)
    figure_button.click(on_export_figure, setting_inputs, exported, api_name="explore_export_figure",
                        preprocess=False)
