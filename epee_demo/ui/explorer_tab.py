"""The "Trade-off explorer" tab: the task's metric (accuracy, or its own F1) against speed-up
over a whole split, live.

Every (model, split) is prepared once for the page, the first time this tab or the lesson shows
it (``ui/prepared.PreparedSplits``: only the first model's test split when the page is built, which
keeps start-up short); a slider
move re-evaluates the chosen rule over the prepared trace and redraws the figures, without
any model call. Calibration, overthinking examples and exports read the same prepared data.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from epee_demo.rules import catalogue
from epee_demo.errors import InputError
from epee_demo.figures.layers import LAYER_TABLE_HEADERS, RULE_TABLE_HEADERS, deebert_unit
from epee_demo.figures.tradeoff import (
    class_accuracy_figure, confusion_figure, exit_histogram_figure, figure_frame, overthinking_figure,
    tradeoff_figure,
)
from epee_demo.analysis.whole_split import (
    Calibration, SettingView, calibrate, evaluate_setting, format_params, operating_points_csv, speedup_text,
    trace_csv,
)
from epee_demo.ui.analyze_tab import OPENING_RULE, ExampleSource, render
from epee_demo.ui.controls import (
    CONTROLS, LAYER_CONTROLS, build_controls, checked_call, control_values, controls_of, default_settings,
    params_from_controls,
)
from epee_demo.ui.prepared import PreparedSplit, PreparedSplits
from epee_demo.ui.shown_input import split_example_html

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
these. The table lists them; select a row to see that example here (its layers from the cached
results and, on the test split, its note, sentence or image, which ship with the model), then press
the button to run it layer by layer in the Analyze tab."""

CALIBRATE_HELP = """**Choosing a setting with a guarantee.** Pick how often you accept that the early
answer differs from the full model's answer (ε). The rule's speed setting is then chosen on the
*validation* split so that this disagreement stays at most ε (conformal risk control, or
Learn-then-Test at 90% confidence), and checked on the *test* split."""

OVERTHINKING_HEADERS = [
    "example", "gold", "first right at layer", "final answer", "oracle exit", "current rule exits at",
    "answer at that exit",
]


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
    unit = deebert_unit(point.rule, point.params, len(label_names))
    if unit:
        lines.append(unit)
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


SETTING_VIEWS = ("summary", "tradeoff", "tradeoff_table", "histogram", "histogram_table", "class", "class_table",
                 "confusion", "confusion_table", "examples")


def setting_views(split: PreparedSplit, split_name: str, rule: str, params: dict) -> dict:
    """What a slider move redraws, by name (``SETTING_VIEWS``): the summary, each figure and its table
    (the trade-off, the exit histogram, per-class accuracy, the confusion against the full model), and
    the overthinking-examples table."""
    view = evaluate_setting(split.prep, rule, **params)
    figures = {
        "tradeoff": tradeoff_figure(split.frontiers, view.point),
        "histogram": exit_histogram_figure(view.exit_counts, view.oracle_counts, rule),
        "class": class_accuracy_figure(view.class_accuracy, rule) if view.class_accuracy is not None else None,
        "confusion": confusion_figure(view.confusion, split.prep.trace.label_names),
    }
    tables = {f"{name}_table": None if fig is None else figure_frame(fig) for name, fig in figures.items()}
    return {"summary": point_markdown(view, split_name, split.prep.trace.label_names), **figures, **tables,
            "examples": overthinking_table(split, view)}


def overthinking_views(split: PreparedSplit) -> dict:
    """The split's overthinking figure and its table, by name (``overthinking``, ``overthinking_counts``)."""
    fig = overthinking_figure(split.overthinking) if split.overthinking is not None else None
    return {"overthinking": fig, "overthinking_counts": None if fig is None else figure_frame(fig)}


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


def checked_index(split: PreparedSplit, index) -> int:
    """An example index of ``split`` as sent (a whole number in range), else an ``InputError``."""
    if (isinstance(index, bool) or not isinstance(index, (int, float)) or not math.isfinite(index)
            or not 0 <= index < split.prep.num_examples or index != int(index)):
        raise InputError(f"Choose an example index between 0 and {split.prep.num_examples - 1}.")
    return int(index)


def build_explorer_tab(splits: PreparedSplits, selected: gr.State | None = None) -> ExampleSource:
    """Lay out the trade-off explorer over the page's prepared ``splits`` (of ``splits.models``) inside
    the current Blocks context and wire its events; with the page's ``selected`` model it follows that
    choice (and shows no model choice of its own). Returns the ``ExampleSource`` of its "show this
    example layer by layer" button."""
    models = splits.models
    first = next(iter(models))
    start = splits[(first, "test")]
    num_layers = start.prep.num_layers
    rules = [r for r in catalogue.RULES if r in start.prep.rules and r != "fixed"]
    start_views = {**setting_views(start, "test", *OPENING_RULE), **overthinking_views(start)}

    gr.Markdown("## Speed against the task's metric on a whole data split\nEvery number here comes from the model's "
                "cached answers at every layer, so moving a slider recomputes in milliseconds.")
    with gr.Row():
        with gr.Column(scale=1):
            model_choice = gr.Radio([(m.task.title, n) for n, m in models.items()], value=first, label="Model",
                                    elem_id="explore_model", visible=selected is None)
            split_choice = gr.Radio([("test split", "test"), ("validation split", "val")], value="test",
                                    label="Data split", elem_id="explore_split")
            rule = gr.Dropdown([(catalogue.RULES[r].title, r) for r in rules], value=OPENING_RULE[0],
                               label="Exit rule", elem_id="explore_rule")
        with gr.Column(scale=1):
            controls = build_controls(num_layers, None, "explore_")
    shown = {"summary": gr.Markdown(start_views["summary"], elem_id="explore_point")}

    def figure_with_help(name: str, label: str, help_text: str) -> None:
        with gr.Row():
            with gr.Column(scale=3):
                shown[name] = gr.Plot(start_views[name], label=label, elem_id=f"explore_{name}_plot")
            with gr.Column(scale=1):
                gr.Markdown(help_text)
        with gr.Accordion("Data as a table", open=False):
            shown[f"{name}_table"] = gr.Dataframe(start_views[f"{name}_table"], interactive=False,
                                                  label=f"{label} (data)", elem_id=f"explore_{name}_table")

    figure_with_help("tradeoff", "Task metric against speed-up", TRADEOFF_HELP)
    figure_with_help("histogram", "Exit layers", HISTOGRAM_HELP)
    figure_with_help("class", "Accuracy per class", CLASS_HELP)
    figure_with_help("confusion", "Early answer against the full model", CONFUSION_HELP)

    gr.Markdown("### Overthinking")
    with gr.Row():
        with gr.Column(scale=3):
            shown["overthinking"] = gr.Plot(start_views["overthinking"], label="Overthinking per layer",
                                            elem_id="explore_overthinking_plot")
        with gr.Column(scale=1):
            gr.Markdown(OVERTHINKING_HELP)
    with gr.Accordion("Data as a table", open=False):
        shown["overthinking_counts"] = gr.Dataframe(start_views["overthinking_counts"], interactive=False,
                                                    label="Overthinking per layer (data)",
                                                    elem_id="explore_overthinking_counts")
    shown["examples"] = gr.Dataframe(start_views["examples"], headers=OVERTHINKING_HEADERS, interactive=False,
                                     label="Examples right at some layer and wrong at the last (select a row)",
                                     elem_id="explore_overthinking_examples")
    example = {}
    with gr.Row():
        example["index"] = gr.Number(label="Example index", precision=0, minimum=0, elem_id="explore_example_index")
        open_example = gr.Button("Show this example layer by layer (in Analyze)", elem_id="explore_open_example")
    example["input"] = gr.HTML(elem_id="explore_example_input")
    example["summary"] = gr.Markdown(elem_id="explore_example_summary")
    with gr.Row():
        example["entropy"] = gr.Plot(label="Normalized entropy per layer", elem_id="explore_example_entropy")
        example["counter"] = gr.Plot(label="Counter per layer", elem_id="explore_example_counter")
    example["layers"] = gr.Dataframe(headers=LAYER_TABLE_HEADERS, interactive=False,
                                     label="Per-layer prediction (text equivalent of the charts)",
                                     elem_id="explore_example_layers")
    example["rules"] = gr.Dataframe(headers=RULE_TABLE_HEADERS, interactive=False,
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

    setting_outputs = [shown[name] for name in SETTING_VIEWS]
    setting_inputs = [model_choice, split_choice, rule, *controls.values()]
    most_layers = max(model.trace("test").num_layers for model in models.values())

    def keyed(values: dict) -> dict:
        """Views by name -> updates keyed by component."""
        return {shown[name]: value for name, value in values.items()}

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

    def on_control(model_name, split_name, rule_name, *values) -> dict:
        split, params = current(model_name, split_name, rule_name, *values)
        try:
            return keyed(setting_views(split, split_name, rule_name, params))
        except InputError as err:
            raise _user_error(err) from None

    def on_rule(model_name, split_name, rule_name, *values) -> dict:
        visible = controls_of(rule_name)
        return {**{control: gr.update(visible=name in visible) for name, control in controls.items()},
                **on_control(model_name, split_name, rule_name, *values)}

    def on_data(model_name, split_name, rule_name, *values) -> dict:
        """A model or split change: the layer-valued sliders' ranges, every view, and no example open."""
        split, values = checked(model_name, split_name, rule_name, values, most_layers)  # clamped just below
        layers = split.prep.num_layers
        ranges = {}
        for name in LAYER_CONTROLS:
            values[name] = min(int(values[name]), layers)
            ranges[controls[name]] = gr.update(maximum=layers, value=values[name])
        cleared = {component: None for component in example.values()}
        return {**ranges, **cleared, **keyed(overthinking_views(split)),
                **on_control(model_name, split_name, rule_name, *values.values())}

    def show_example(model_name, split_name, rule_name, *args) -> dict:
        """One example of the split here, from the cached trace: its input (when shipped) and its views."""
        *values, index = args
        split, params = current(model_name, split_name, rule_name, *values)
        try:
            index = checked_index(split, index)
        except InputError as err:
            raise _user_error(err) from None
        settings = {**default_settings(split.prep.num_layers), rule_name: params}
        views = render(split.prep.trace.subset([index]), settings, rule_name)
        header = (f"#### Example {index} of the {split_name} split ({models[model_name].task.title})\n"
                  "From the cached results, at the current setting of the sliders (select the row again after "
                  "moving them); the button above runs it in Analyze.\n\n")
        return {example["index"]: index, example["input"]: split_example_html(models[model_name], split_name, index),
                example["summary"]: header + views["summary"],
                **{example[name]: views[name] for name in ("entropy", "counter", "layers", "rules")}}

    def on_select(evt: gr.SelectData, model_name, split_name, rule_name, *values) -> dict:
        return show_example(model_name, split_name, rule_name, *values, evt.row_value[0])

    def on_calibrate(model_name, rule_name, *args) -> dict:
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
        values_shown = control_values(rule_name, chosen)
        return {calibration_report: report, split_choice: "test",
                **{control: gr.update(value=values_shown[name]) for name, control in controls.items()
                   if name in values_shown},
                **keyed(overthinking_views(test)), **keyed(setting_views(test, "test", rule_name, chosen))}

    def on_export_trace(model_name, split_name):
        return export_trace(checked_split(model_name, split_name), f"{model_name}_{split_name}")

    def on_export_points(model_name, split_name):
        return export_points(checked_split(model_name, split_name), f"{model_name}_{split_name}")

    def on_export_figure(model_name, split_name, rule_name, *values):
        split, params = current(model_name, split_name, rule_name, *values)
        return export_tradeoff_html(split, f"{model_name}_{split_name}", rule_name, params)

    def example_of(model_name, split_name, index) -> tuple[str, int]:
        if (model_name, split_name) not in splits:
            raise InputError("Model and data split: choose one of those on the page.")
        return split_name, checked_index(splits[(model_name, split_name)], index)

    fast = dict(show_progress="hidden", trigger_mode="always_last", concurrency_limit=None, preprocess=False)
    for name, control in controls.items():
        control.input(on_control, setting_inputs, setting_outputs, api_name=f"explore_set_{name}", **fast)
    rule.input(on_rule, setting_inputs, [*controls.values(), *setting_outputs], api_name="explore_set_rule", **fast)
    data_outputs = [*(controls[name] for name in LAYER_CONTROLS), shown["overthinking"], shown["overthinking_counts"],
                    *example.values(), *setting_outputs]
    model_choice.input(on_data, setting_inputs, data_outputs, api_name="explore_set_model", **fast)
    split_choice.input(on_data, setting_inputs, data_outputs, api_name="explore_set_split", **fast)
    if selected is not None:
        def on_selected(model_name, *rest) -> dict:
            return {model_choice: model_name, **on_data(model_name, *rest)}

        selected.change(on_selected, [selected, *setting_inputs[1:]], [model_choice, *data_outputs], api_name=False,
                        **fast)
    example_outputs = list(example.values())
    open_example.click(show_example, [*setting_inputs, example["index"]], example_outputs,
                       api_name="explore_show_example", concurrency_limit=None, preprocess=False)
    shown["examples"].select(on_select, setting_inputs, example_outputs,
                             api_name="explore_select_example", concurrency_limit=None, preprocess=False)
    calibrate_button.click(on_calibrate, [model_choice, rule, *controls.values(), epsilon, method],
                           [calibration_report, split_choice, *controls.values(), shown["overthinking"],
                            shown["overthinking_counts"], *setting_outputs],
                           api_name="explore_calibrate", concurrency_limit=None, preprocess=False)
    trace_button.click(on_export_trace, [model_choice, split_choice], exported, api_name="explore_export_trace",
                       preprocess=False)
    points_button.click(on_export_points, [model_choice, split_choice], exported, api_name="explore_export_points",
                        preprocess=False)
    figure_button.click(on_export_figure, setting_inputs, exported, api_name="explore_export_figure",
                        preprocess=False)
    return ExampleSource(open_example, [split_choice, example["index"]], example_of)
