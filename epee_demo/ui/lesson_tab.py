"""The "Lesson" tab: a guided walk through one test example, step by step, for a class.

The example and every step's figures come from the chosen model's test split as the page prepared
it for the explorer too (``ui/prepared.PreparedSplits``; the organ-system model when the page opens),
each lesson made once, the first time its model is chosen; the example itself
(its note, marked sentence or image) from the inputs shipped beside the model, and its button opens
it in Analyze.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd

from epee_demo.rules import catalogue
from epee_demo.analysis.one_example import analyze_example
from epee_demo.figures.layers import LAYER_TABLE_HEADERS, counter_figure, entropy_figure, layer_table
from epee_demo.figures.tradeoff import figure_frame, overthinking_figure, tradeoff_figure
from epee_demo.model.registry import ShippedModel
from epee_demo.analysis.whole_split import PreparedTrace, best_within_loss, evaluate_setting, speedup_text
from epee_demo.ui.analyze_tab import SESSION_SECONDS, ExampleSource
from epee_demo.ui.controls import default_settings
from epee_demo.ui.prepared import MadeOnce, PreparedSplit, PreparedSplits
from epee_demo.ui.shown_input import split_example_html

LESSON_MODEL = "organ-system"


EXAMPLE_TABLE_LABEL = "The same example as a table"
FIGURE_TABLE_LABEL = "The chart's data as a table"


@dataclass
class LessonStep:
    """One step of the lesson: a title, plain-language text, up to two figures and a table
    that carries the same data as text (the example's layers, or the figure's points)."""

    title: str
    text: str
    figures: tuple = ()
    table: pd.DataFrame | None = None
    table_label: str = EXAMPLE_TABLE_LABEL


def lesson_example(prep: PreparedTrace) -> int:
    """The example the lesson follows, chosen deterministically.

    The first example with destructive overthinking (right at some layer, wrong at the last)
    that EPEE at its default setting answers correctly; else the first with destructive
    overthinking; else example 0.
    """
    if not prep.has_labels:
        return 0
    destructive = prep.correct.any(axis=1) & ~prep.correct[:, -1]
    view = evaluate_setting(prep, "epee", **catalogue.RULES["epee"].params)
    rescued = destructive & (view.answers == prep.trace.labels)
    for candidates in (rescued, destructive):
        if candidates.any():
            return int(np.flatnonzero(candidates)[0])
    return 0


def _layers_list(layers) -> str:
    return ", ".join(str(int(i) + 1) for i in layers) or "none"


@dataclass
class Lesson:
    """The lesson over one model: the test example it follows (``index``) and its ``steps``."""

    index: int
    steps: list[LessonStep]


def build_lesson(model: ShippedModel, test: PreparedSplit) -> Lesson:
    """The lesson's steps over the model's prepared ``test`` split and its chosen example."""
    prep = test.prep
    index = lesson_example(prep)
    example = prep.trace.subset([index])
    num_layers = prep.num_layers
    settings = default_settings(num_layers)
    tau, patience = settings["epee"]["tau"], settings["epee"]["patience"]
    by_rule = {rule: analyze_example(example, settings, rule) for rule in ("entropy", "patience", "epee")}
    epee = by_rule["epee"]
    gold = epee.gold_label
    kind = "note" if model.spec.modality == "text" else "image"
    right_layers = np.flatnonzero(prep.correct[index]) if prep.has_labels else []
    entropy_exit, patience_exit = by_rule["entropy"].selected, by_rule["patience"].selected
    example_table = pd.DataFrame(layer_table(epee), columns=LAYER_TABLE_HEADERS)

    steps = [LessonStep(
        "What is an exit?",
        f"The model reads a {kind} through **{num_layers} layers**, one after another. After **every** layer a "
        "small classifier — an *exit* — gives its best guess of the answer. Early guesses are cheap; later "
        "ones cost more computation. An *exit rule* decides, layer by layer, whether the guess is good enough "
        f"to stop.\n\nWe follow **example {index}** of the test split ({model.task.title}). "
        + (f"Its known answer is **{gold}**. " if gold else "")
        + "The table shows the guess at each layer (✓ right, ✗ wrong).",
        table=example_table,
    )]
    steps.append(LessonStep(
        "Entropy: how unsure is the guess?",
        "Each exit gives a probability for every possible answer. **Normalized entropy** sums up how spread "
        "out those probabilities are: 0 means fully sure of one answer, 1 means no idea at all. The entropy "
        f"rule stops at the first layer where the entropy drops below a threshold **tau** (here {tau:g}, the "
        f"dashed line). For this example it stops at **layer {entropy_exit.exit_layer}** and answers "
        f"**{entropy_exit.label}**.",
        figures=(entropy_figure(by_rule["entropy"], tau),), table=example_table,
    ))
    steps.append(LessonStep(
        "Patience: does the guess stay the same?",
        "The patience rule (PABEE) ignores how sure each exit is and watches whether exits *agree*: the counter "
        "goes up by one each time a layer gives the same answer as the layer before, and drops to 0 when the "
        f"answer changes. It stops when the counter reaches **patience** (here {patience}). For this example it "
        f"stops at **layer {patience_exit.exit_layer}** and answers **{patience_exit.label}**.",
        figures=(counter_figure(by_rule["patience"], patience),), table=example_table,
    ))
    steps.append(LessonStep(
        "EPEE: whichever fires first",
        "EPEE combines both: it stops at the first layer where the entropy is below tau **or** the counter "
        f"reaches patience. Entropy alone would stop at layer {entropy_exit.exit_layer}, patience alone at layer "
        f"{patience_exit.exit_layer}; EPEE stops at **layer {epee.selected.exit_layer}** and answers "
        f"**{epee.selected.label}**. The full model, after all {num_layers} layers, answers "
        f"**{epee.final_label}**.",
        figures=(entropy_figure(epee, tau), counter_figure(epee, patience)), table=example_table,
    ))
    frontiers = test.frontiers
    view = evaluate_setting(prep, "epee", tau=tau, patience=patience)
    point = view.point
    budget = best_within_loss(frontiers["epee"], 0.01)
    budget_text = ("" if budget is None else
                   f" The fastest EPEE setting that loses at most 1 point of {point.metric_title} on this split is "
                   f"{frontiers['epee'].point(budget).label.split(': ')[1]} "
                   f"({frontiers['epee'].speedup[budget]:.2f}× faster, L / mean exit layer; "
                   f"{100 * frontiers['epee'].saved_fraction[budget]:.0f}% of layers saved).")
    trade_off = tradeoff_figure(frontiers, point)
    steps.append(LessonStep(
        "The trade-off over the whole test split",
        f"One example is an anecdote. Over all **{point.num_examples}** test examples, EPEE at tau={tau:g}, "
        f"patience={patience} stops on average after **{point.average_exit_layer:.2f} of {num_layers}** layers "
        f"({speedup_text(point.speedup, point.saved_fraction)}) with {point.metric_title} "
        f"**{100 * point.score:.1f}%**, against **{100 * point.full_score:.1f}%** for the full model.{budget_text} "
        f"Each line in the chart is one rule at all its settings: further right is faster, higher scores better "
        f"on {point.metric_title}. The *Trade-off explorer* "
        "tab lets you move the settings yourself.",
        figures=(trade_off,), table=figure_frame(trade_off), table_label=FIGURE_TABLE_LABEL,
    ))
    if prep.has_labels:
        destructive = test.overthinking.destructive_count
        overthinking_chart = overthinking_figure(test.overthinking)
        story = (f"Our example {index} is one of them: it was right at layer(s) {_layers_list(right_layers)}, "
                 f"and the full model ends on **{epee.final_label}** instead of **{gold}**. "
                 f"EPEE, stopping at layer {epee.selected.exit_layer}, answers **{epee.selected.label}**."
                 if epee.overthinks else
                 f"Our example {index} does not overthink: the full model ends on **{epee.final_label}**.")
        steps.append(LessonStep(
            "Overthinking: when more layers make it worse",
            f"More computation is not always better. In this test split, **{destructive}** examples are answered "
            "correctly by some layer and **wrongly by the last one** — the model *overthinks*. An early exit can "
            f"keep the right answer. {story}\n\nThe chart counts, per layer, the examples that are right there "
            "and wrong later. Remember: this is a research and teaching demo, never a basis for a clinical decision.",
            figures=(overthinking_chart,), table=figure_frame(overthinking_chart), table_label=FIGURE_TABLE_LABEL,
        ))
    return Lesson(index, steps)


def lesson_model(models: dict[str, ShippedModel]) -> ShippedModel:
    """The model the lesson follows: the organ-system model when shipped, else the first one."""
    return models.get(LESSON_MODEL) or next(iter(models.values()))


def _plot_label(fig) -> str:
    """A figure's title, as the accessible name of the plot that shows it."""
    return fig.layout.title.text if fig is not None and fig.layout.title.text else "Figure"


def step_outputs(steps: list[LessonStep], step: int) -> dict:
    """What the page shows at ``step`` (0-based), by name: the ``step``, its ``heading`` and ``text``,
    two figures (``plot_a``, ``plot_b``), the ``table``, and whether ``back`` and ``next`` can be pressed."""
    step = min(max(int(step), 0), len(steps) - 1)
    current = steps[step]
    figures = list(current.figures) + [None] * (2 - len(current.figures))
    return {
        "step": step,
        "heading": f"**Step {step + 1} of {len(steps)}** · {current.title}",
        "text": current.text,
        **{name: gr.update(value=fig, visible=fig is not None, label=_plot_label(fig))
           for name, fig in zip(("plot_a", "plot_b"), figures)},
        "table": gr.update(value=current.table, visible=current.table is not None, label=current.table_label),
        "back": gr.update(interactive=step > 0),
        "next": gr.update(interactive=step < len(steps) - 1),
    }


def build_lesson_tab(splits: PreparedSplits, selected: gr.State | None = None) -> ExampleSource:
    """Lay out the guided lesson over the page's prepared ``splits`` (of ``splits.models``) inside the
    current Blocks context (call it inside a ``gr.Tab``); with the page's ``selected`` model it follows
    that choice, starting over at step 1. Returns the ``ExampleSource`` of its "show this example
    layer by layer" button."""
    models = splits.models
    # each model's lesson, made once, the first time any session asks for it (two at once: one makes it)
    lessons: MadeOnce[str, Lesson] = MadeOnce(lambda name: build_lesson(models[name], splits[(name, "test")]))

    start = lesson_model(models).task.name
    first = step_outputs(lessons[start].steps, 0)
    shown = {"step": gr.State(0, time_to_live=SESSION_SECONDS)}
    model_state = gr.State(start, time_to_live=SESSION_SECONDS)
    shown["heading"] = gr.Markdown(first["heading"], elem_id="lesson_heading")
    with gr.Row():
        with gr.Column(scale=2):
            shown["text"] = gr.Markdown(first["text"], elem_id="lesson_text")
        with gr.Column(scale=1, min_width=240):
            example = gr.HTML(split_example_html(models[start], "test", lessons[start].index), elem_id="lesson_example")
            open_example = gr.Button("Show this example layer by layer (in Analyze)", elem_id="lesson_open_example")
    with gr.Row():
        shown["back"] = gr.Button("← Back", interactive=False, elem_id="lesson_back")
        shown["next"] = gr.Button("Next →", variant="primary", elem_id="lesson_next")
    with gr.Row():
        shown["plot_a"] = gr.Plot(label="Figure", visible=False, elem_id="lesson_plot_a")
        shown["plot_b"] = gr.Plot(label="Figure", visible=False, elem_id="lesson_plot_b")
    shown["table"] = gr.Dataframe(first["table"]["value"], interactive=False, label=first["table"]["label"],
                                  elem_id="lesson_table")
    outputs = list(shown.values())

    def at(name: str, step: int) -> dict:
        return {shown[key]: value for key, value in step_outputs(lessons[name].steps, step).items()}

    fast = dict(show_progress="hidden", concurrency_limit=None)
    shown["back"].click(lambda step, name: at(name, step - 1), [shown["step"], model_state], outputs,
                        api_name="lesson_back", **fast)
    shown["next"].click(lambda step, name: at(name, step + 1), [shown["step"], model_state], outputs,
                        api_name="lesson_next", **fast)
    if selected is not None:
        def on_selected(name) -> dict:
            return {model_state: name, example: split_example_html(models[name], "test", lessons[name].index), **at(name, 0)}

        selected.change(on_selected, selected, [model_state, example, *outputs], api_name=False, **fast)
    return ExampleSource(open_example, [], lambda name: ("test", lessons[name].index))
