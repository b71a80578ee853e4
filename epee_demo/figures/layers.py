"""Per-layer views of one example: entropy with the tau line, the counter with the patience
line, and the tables that carry the same data in text form."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from epee_demo.rules import catalogue
from epee_demo.analysis.one_example import ExampleAnalysis
from epee_demo.analysis.task_metrics import METRICS
from epee_demo.figures import PALETTE, TEMPLATE, build_figure

_LAYOUT = dict(
    height=300, margin=dict(l=60, r=20, t=50, b=50), template=TEMPLATE,
    font=dict(size=13), legend=dict(orientation="h", y=-0.25),
)


def _guides(analysis: ExampleAnalysis, threshold: float | None, threshold_name: str) -> dict:
    """Layout shapes and labels: the selected rule's exit layer and a horizontal threshold line.

    Plain layout dicts rather than ``add_vline``/``add_hline``, which cost ~10 ms each and
    would put the slider handler near its 50 ms budget.
    """
    selected = analysis.selected
    colour = catalogue.RULES[selected.rule].colour
    shapes = [dict(type="line", xref="x", yref="paper", x0=selected.exit_layer, x1=selected.exit_layer,
                   y0=0, y1=1, line=dict(color=colour, dash="dot", width=2))]
    annotations = [dict(xref="x", yref="paper", x=selected.exit_layer, y=1, xanchor="right", yanchor="bottom",
                        showarrow=False, text=f"{catalogue.RULES[selected.rule].title.split(' (')[0]} exits")]
    if threshold is not None:
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=threshold, y1=threshold,
                           line=dict(color=PALETTE[5], dash="dash", width=2)))
        annotations.append(dict(xref="paper", yref="y", x=1, y=threshold, xanchor="right", yanchor="bottom",
                                showarrow=False, text=f"{threshold_name} = {threshold:g}",
                                bgcolor="rgba(255, 255, 255, 0.85)"))  # readable over bars and lines
    return dict(shapes=shapes, annotations=annotations)


def entropy_figure_dicts(analysis: ExampleAnalysis, tau: float | None) -> tuple[list[dict], dict]:
    """Normalized entropy per layer, the tau line (if the rule has one) and the selected rule's exit,
    as plain trace and layout dicts (``figure_json`` sends them as they are; ``entropy_figure`` builds them)."""
    layers = list(range(1, analysis.num_layers + 1))
    return (
        [dict(
            type="scatter", x=layers, y=analysis.entropy.tolist(), mode="lines+markers", name="normalized entropy Hn",
            line=dict(color=PALETTE[0], width=3), marker=dict(size=9),
            customdata=list(zip(analysis.predicted, analysis.top_probability.tolist())),
            hovertemplate="layer %{x}<br>Hn %{y:.3f}<br>%{customdata[0]} (p=%{customdata[1]:.2f})<extra></extra>",
        )],
        dict(title="Uncertainty at each exit (lower = more confident)",
                    xaxis=dict(title="layer", tickvals=layers),
                    yaxis=dict(title="normalized entropy", range=[0, 1.05]),
                    **_guides(analysis, tau, "tau"), **_LAYOUT),
    )


def entropy_figure(analysis: ExampleAnalysis, tau: float | None) -> go.Figure:
    """The figure of ``entropy_figure_dicts``."""
    return build_figure(*entropy_figure_dicts(analysis, tau))


def counter_figure_dicts(analysis: ExampleAnalysis, line: float | None) -> tuple[list[dict], dict]:
    """What the selected rule compares at each layer (its counter, or its score for the score-based
    rules; PABEE's counter for rules without either), the patience or threshold ``line`` and the exit,
    as plain trace and layout dicts."""
    layers = list(range(1, analysis.num_layers + 1))
    own = analysis.rule_counter is not None
    values = analysis.rule_counter if own else analysis.patience_counter
    name = analysis.rule_counter_name if own else "patience counter (same answer as previous layer)"
    score = own and "threshold" in catalogue.RULES[analysis.selected.rule].params
    axis = (dict(title="score", range=[0, 1.05]) if score
            else dict(title="counter", range=[0, max(analysis.num_layers, (line or 0) + 1)], dtick=1))
    return (
        [dict(
            type="bar", x=layers, y=np.asarray(values).tolist(), name=name, marker=dict(color=PALETTE[2]),
            text=analysis.predicted, textposition="inside", insidetextanchor="start",
            hovertemplate=f"layer %{{x}}<br>{'score %{y:.3f}' if score else 'counter %{y}'}<br>%{{text}}<extra></extra>",
        )],
        dict(title=name[0].upper() + name[1:], xaxis=dict(title="layer", tickvals=layers), yaxis=axis,
                    **_guides(analysis, line, "threshold" if score else "patience"), **_LAYOUT),
    )


def counter_figure(analysis: ExampleAnalysis, line: float | None) -> go.Figure:
    """The figure of ``counter_figure_dicts``."""
    return build_figure(*counter_figure_dicts(analysis, line))


def class_heatmap_figure_dicts(analysis: ExampleAnalysis) -> tuple[list[dict], dict]:
    """Layers × classes: every exit's probability for every class (what each exit believes, not only
    its top answer), the selected rule's exit layer boxed and the gold class (when known) marked, as
    plain trace and layout dicts."""
    layers = list(range(1, analysis.num_layers + 1))
    names = list(analysis.label_names)
    exit_layer = analysis.selected.exit_layer
    shapes = [dict(type="rect", xref="x", yref="y", x0=-0.5, x1=len(names) - 0.5, y0=exit_layer - 0.5,
                   y1=exit_layer + 0.5, line=dict(color=catalogue.RULES[analysis.selected.rule].colour, width=3))]
    annotations = [dict(xref="paper", yref="y", x=1, y=exit_layer, xanchor="left", showarrow=False,
                        text=f" {catalogue.RULES[analysis.selected.rule].title.split(' (')[0]} exits")]
    if analysis.gold_label is not None:
        gold = names.index(analysis.gold_label)
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=gold - 0.5, x1=gold + 0.5, y0=0, y1=1,
                           line=dict(color=PALETTE[7], width=2, dash="dot")))
        annotations.append(dict(xref="x", yref="paper", x=gold, y=1, yanchor="bottom", showarrow=False,
                                text="gold"))
    return (
        [dict(type="heatmap", z=analysis.probs.tolist(), x=names, y=layers, zmin=0, zmax=1,
              colorscale="Blues", reversescale=True, colorbar=dict(title="p", thickness=12),  # dark = likely
              hovertemplate="layer %{y}<br>%{x}<br>p = %{z:.3f}<extra></extra>")],
        dict(title="Every class at every exit (probability)", xaxis=dict(title="class", automargin=True, tickangle=-40),
             yaxis=dict(title="layer", tickvals=layers, autorange="reversed"), shapes=shapes,
             annotations=annotations, template=TEMPLATE, font=dict(size=13),
             margin=dict(l=60, r=90, t=50, b=50), height=260 + 22 * analysis.num_layers),
    )


def class_table(analysis: ExampleAnalysis) -> tuple[list[str], list[list]]:
    """The heatmap's data as a table: headers (layer, one column per class, marks) and one row per layer
    (probabilities to 3 places; the selected rule's exit and the gold class named in the marks column)."""
    headers = ["layer", *[f"{name} (gold)" if name == analysis.gold_label else name
                          for name in analysis.label_names], "marks"]
    rows = []
    for index in range(analysis.num_layers):
        layer = index + 1
        marks = f"{catalogue.RULES[analysis.selected.rule].title} exits here" if layer == analysis.selected.exit_layer else ""
        rows.append([layer, *[round(float(p), 3) for p in analysis.probs[index]], marks])
    return headers, rows


LAYER_TABLE_HEADERS = ["layer", "prediction", "probability", "normalized entropy", "patience counter",
                       "selected rule's counter or score", "exits here"]


def layer_table(analysis: ExampleAnalysis) -> list[list]:
    """One row per layer: prediction, its probability, Hn, the PABEE counter, what the selected rule
    compares there (its counter or score, e.g. JEI-DNN's a_l; empty when it has none), rules exiting there."""
    rows = []
    for index in range(analysis.num_layers):
        layer = index + 1
        exiting = ", ".join(name for name, e in analysis.exits.items() if e.exit_layer == layer and name != "fixed")
        prediction = analysis.predicted[index]
        if analysis.gold_label is not None:
            prediction += " ✓" if prediction == analysis.gold_label else " ✗"
        rows.append([
            layer, prediction, round(float(analysis.top_probability[index]), 3),
            round(float(analysis.entropy[index]), 3), int(analysis.patience_counter[index]),
            "" if analysis.rule_counter is None else round(float(analysis.rule_counter[index]), 3), exiting,
        ])
    return rows


RULE_TABLE_HEADERS = ["rule", "setting", "exit layer", "answer", "probability", "same as full model"]


def _format_params(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def rule_table(analysis: ExampleAnalysis) -> list[list]:
    """One row per available rule: its setting, exit layer, answer and agreement with the last layer."""
    return [
        [catalogue.RULES[name].title, _format_params(e.params), e.exit_layer, e.label,
         round(e.probability, 3), "yes" if e.label == analysis.final_label else "no"]
        for name, e in analysis.exits.items() if name != "fixed"
    ]


def tau_in_nats(tau: float, num_classes: int) -> str:
    """The raw-entropy threshold (DeeBERT's unit, nats) that a normalized tau stands for."""
    return f"tau {tau:g} = {tau * math.log(num_classes):.3g} nats of raw entropy (tau × ln {num_classes})"


def nats_factor(num_classes: int) -> str:
    """The tau slider's line: how its normalized tau becomes DeeBERT's threshold in nats."""
    return f"DeeBERT's threshold is raw entropy in nats: tau × ln {num_classes} = tau × {math.log(num_classes):.3f}"


def deebert_unit(rule: str, params: dict, num_classes: int) -> str:
    """The line saying what a rule's normalized tau is in DeeBERT's nats ('' for a rule without one)."""
    spec = catalogue.RULES[rule]
    if "tau" in spec.params and spec.parameter("tau").control == "tau":
        return f"DeeBERT's unit: {tau_in_nats(params['tau'], num_classes)}."
    return ""


def summary_markdown(analysis: ExampleAnalysis) -> str:
    """Plain-language answer: where the selected rule exits, its answer and the full model's."""
    e = analysis.selected
    total = analysis.num_layers
    saved = total - e.exit_layer
    lines = [
        f"**{catalogue.RULES[e.rule].title}** stops at **layer {e.exit_layer} of {total}** and answers "
        f"**{e.label}** (probability {e.probability:.2f}).",
        f"The full model (layer {total}) answers **{analysis.final_label}** "
        f"(probability {analysis.final_probability:.2f}).",
        f"Layers skipped: {saved} of {total} (ideal speed-up {total / e.exit_layer:.1f}× = L / exit layer; "
        f"saved fraction {100 * saved / total:.0f}% = 1 − exit layer / L)."
        if saved else "No layer skipped: this input needed the whole model under this setting.",
    ]
    if e.label != analysis.final_label:
        lines.append("Note: the early answer differs from the full model's.")
    spec = catalogue.RULES[e.rule]
    unit = deebert_unit(e.rule, e.params, len(analysis.label_names))
    if unit:
        lines.append(unit)
    if spec.note:
        lines.append(spec.note)
    if analysis.gold_label is not None:
        lines.append(f"Known label: **{analysis.gold_label}**.")
        memorized = analysis.memorized_layer
        lines.append(
            f"Memorized layer: **{memorized}** (from there on every exit is right)."
            if memorized <= analysis.num_layers else "Memorized layer: none (the last exit is wrong)."
        )
        if analysis.overthinks:
            lines.append("Overthinking: a layer had it right, and the last layer got it wrong.")
    return "\n\n".join(lines)


def depth_markdown(metrics: dict, task_note: str = "") -> str:
    """What depth buys a model, from its shipped ``metrics`` (the test score of the first, best and last
    exit: accuracy, or the task's own metric when it has one), followed by the task's own explanation
    ``task_note``; "" without metrics."""
    metric = metrics.get("metric", "accuracy")
    scores = metrics.get(f"test_{metric}_per_layer")
    if not scores:
        return ""
    best = int(max(range(len(scores)), key=scores.__getitem__))
    spread = 100 * (max(scores) - min(scores))
    scored = "" if metric == "accuracy" else f", {METRICS[metric].title}"
    text = (f"**Depth on this model** (test split{scored}): layer 1 scores {scores[0]:.3f}, the best exit "
            f"{scores[best]:.3f} (layer {best + 1}), the last {scores[-1]:.3f}: the exits span "
            f"{spread:.1f} points.")
    return f"{text} {task_note}".strip()
