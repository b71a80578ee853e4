"""Per-layer views of one example: entropy with the tau line, the counter with the patience
line, and the tables that carry the same data in text form."""

from __future__ import annotations

import plotly.graph_objects as go

from epee_demo import policies
from epee_demo.analysis import ExampleAnalysis
from epee_demo.figures import PALETTE, RULE_COLOURS

_LAYOUT = dict(
    height=300, margin=dict(l=60, r=20, t=50, b=50), template="plotly_white",
    font=dict(size=13), legend=dict(orientation="h", y=-0.25),
)


def _mark_exit(fig: go.Figure, analysis: ExampleAnalysis) -> None:
    selected = analysis.selected
    fig.add_vline(
        x=selected.exit_layer, line_dash="dot", line_color=RULE_COLOURS[selected.rule],
        annotation_text=f"{policies.RULES[selected.rule].title.split(' (')[0]} exits",
        annotation_position="top left",
    )


def entropy_figure(analysis: ExampleAnalysis, tau: float | None) -> go.Figure:
    """Normalized entropy per layer, the tau line (if the rule has one) and the selected rule's exit."""
    layers = list(range(1, analysis.num_layers + 1))
    fig = go.Figure(go.Scatter(
        x=layers, y=analysis.entropy, mode="lines+markers", name="normalized entropy Hn",
        line=dict(color=PALETTE[0], width=3), marker=dict(size=9),
        customdata=list(zip(analysis.predicted, analysis.top_probability)),
        hovertemplate="layer %{x}<br>Hn %{y:.3f}<br>%{customdata[0]} (p=%{customdata[1]:.2f})<extra></extra>",
    ))
    if tau is not None:
        fig.add_hline(y=tau, line_dash="dash", line_color=PALETTE[5],
                      annotation_text=f"tau = {tau:.2f}", annotation_position="bottom right")
    _mark_exit(fig, analysis)
    fig.update_layout(title="Uncertainty at each exit (lower = more confident)", **_LAYOUT)
    fig.update_xaxes(title="layer", tickvals=layers)
    fig.update_yaxes(title="normalized entropy", range=[0, 1.05])
    return fig


def counter_figure(analysis: ExampleAnalysis, patience: int | None) -> go.Figure:
    """The counter the selected rule watches (PABEE's by default), its patience line and the exit."""
    layers = list(range(1, analysis.num_layers + 1))
    counter = analysis.rule_counter if analysis.rule_counter is not None else analysis.patience_counter
    name = analysis.rule_counter_name or "patience counter (same answer as previous layer)"
    fig = go.Figure(go.Bar(
        x=layers, y=counter, name=name, marker_color=PALETTE[2],
        text=analysis.predicted, textposition="inside", insidetextanchor="start",
        hovertemplate="layer %{x}<br>counter %{y}<br>%{text}<extra></extra>",
    ))
    if patience is not None:
        fig.add_hline(y=patience, line_dash="dash", line_color=PALETTE[5],
                      annotation_text=f"patience = {patience}", annotation_position="top right")
    _mark_exit(fig, analysis)
    fig.update_layout(title=name[0].upper() + name[1:], **_LAYOUT)
    fig.update_xaxes(title="layer", tickvals=layers)
    fig.update_yaxes(title="counter", range=[0, max(analysis.num_layers, (patience or 0) + 1)], dtick=1)
    return fig


LAYER_TABLE_HEADERS = ["layer", "prediction", "probability", "normalized entropy", "patience counter", "exits here"]


def layer_table(analysis: ExampleAnalysis) -> list[list]:
    """One row per layer: prediction, its probability, Hn, the PABEE counter, rules exiting there."""
    rows = []
    for index in range(analysis.num_layers):
        layer = index + 1
        exiting = ", ".join(name for name, e in analysis.exits.items() if e.exit_layer == layer and name != "fixed")
        prediction = analysis.predicted[index]
        if analysis.gold_label is not None:
            prediction += " ✓" if prediction == analysis.gold_label else " ✗"
        rows.append([
            layer, prediction, round(float(analysis.top_probability[index]), 3),
            round(float(analysis.entropy[index]), 3), int(analysis.patience_counter[index]), exiting,
        ])
    return rows


RULE_TABLE_HEADERS = ["rule", "setting", "exit layer", "answer", "probability", "same as full model"]


def _format_params(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def rule_table(analysis: ExampleAnalysis) -> list[list]:
    """One row per available rule: its setting, exit layer, answer and agreement with the last layer."""
    return [
        [policies.RULES[name].title, _format_params(e.params), e.exit_layer, e.label,
         round(e.probability, 3), "yes" if e.label == analysis.final_label else "no"]
        for name, e in analysis.exits.items() if name != "fixed"
    ]


def summary_markdown(analysis: ExampleAnalysis) -> str:
    """Plain-language answer: where the selected rule exits, its answer and the full model's."""
    e = analysis.selected
    total = analysis.num_layers
    saved = total - e.exit_layer
    lines = [
        f"**{policies.RULES[e.rule].title}** stops at **layer {e.exit_layer} of {total}** and answers "
        f"**{e.label}** (probability {e.probability:.2f}).",
        f"The full model (layer {total}) answers **{analysis.final_label}** "
        f"(probability {analysis.final_probability:.2f}).",
        f"Layers skipped: {saved} of {total} (ideal speed-up {total / e.exit_layer:.1f}×)."
        if saved else "No layer skipped: this input needed the whole model under this setting.",
    ]
    if e.label != analysis.final_label:
        lines.append("⚠️ The early answer differs from the full model's.")
    if analysis.gold_label is not None:
        lines.append(f"Known label: **{analysis.gold_label}**.")
        if analysis.overthinks:
            lines.append("🔁 Overthinking: a layer had it right, and the last layer got it wrong.")
    return "\n\n".join(lines)
