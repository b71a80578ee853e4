"""Trade-off views of a whole split: the task metric (accuracy, or the task's own F1) against
speed-up for every rule, where examples
exit, per-class accuracy, agreement with the full model and overthinking.

Figures take the results of ``epee_demo.analysis.whole_split`` and return ``plotly.graph_objects.Figure``;
``figure_table`` gives any of them as a table of rows (the same data in text form).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from epee_demo.rules import catalogue
from epee_demo.figures import PALETTE, TEMPLATE, build_figure
from epee_demo.analysis.whole_split import ClassAccuracy, Frontier, OperatingPoint, Overthinking, format_params

_LAYOUT = dict(
    template=TEMPLATE, font=dict(size=13), margin=dict(l=70, r=20, t=60, b=60),
    legend=dict(orientation="h", y=-0.2),
)
# Short bar charts: a lower legend and a deeper bottom margin, so the legend clears the x-axis title.
_SHORT = dict(height=340, margin=dict(l=70, r=20, t=60, b=100), legend=dict(orientation="h", y=-0.4))
_X_AXES = {"speedup": "speed-up (L / mean exit layer)", "saved_fraction": "saved fraction (1 − mean exit layer / L)"}


def _figure(traces: list[dict], title: str, xaxis: dict, yaxis: dict, **layout) -> go.Figure:
    """One figure built in a single call, from plain trace dicts (``build_figure``: no
    property-by-property validation, which costs tens of ms a figure)."""
    return build_figure(traces, dict(title=title, xaxis=xaxis, yaxis=yaxis, **{**_LAYOUT, **layout}))


def _short_title(rule: str) -> str:
    return catalogue.RULES[rule].title.split(" (")[0]


def _hover(points_text: str, metric: str) -> str:
    return "%{text}<br>" + metric + " %{y:.1%}<br>" + points_text + "<extra></extra>"


def tradeoff_figure(
    frontiers: Mapping[str, Frontier], current: OperatingPoint | None = None, *,
    x: str = "speedup", show_all: bool = False,
) -> go.Figure:
    """The task metric (accuracy, micro-F1 over the positive classes, macro-F1: the frontiers'
    ``metric``, named on the y-axis) against speed-up: each rule's Pareto frontier, the truncation
    baselines, the full model and the current setting.

    ``frontiers`` maps rule names to ``Frontier`` results (``fixed`` draws the truncation
    baselines and the full model). Traces: one frontier line per other rule (plus, with
    ``show_all``, one faint marker cloud of all its grid settings), then truncation line and
    full-model marker (if ``fixed`` is given), then the current setting (if given). Every line
    joins settings that exist, point to point, and ends at its rule's fastest and slowest setting.
    ``x`` is ``speedup`` or ``saved_fraction``.
    """
    if x not in _X_AXES:
        raise ValueError(f"x must be one of {sorted(_X_AXES)}; got {x!r}")
    traces = []
    x_hover = ("speed-up %{x:.2f}× (L / mean exit layer)" if x == "speedup"
               else "saved fraction %{x:.0%} (1 − mean exit layer / L)")
    metric = next(iter(frontiers.values())).metric_title if frontiers else "accuracy"
    hover = _hover(x_hover, metric)
    for rule, f in frontiers.items():
        if rule == "fixed":
            continue
        colour, symbol = catalogue.RULES[rule].colour, catalogue.RULES[rule].symbol
        if show_all:
            traces.append(dict(
                type="scatter", x=getattr(f, x), y=f.score, mode="markers",
                name=f"{_short_title(rule)}: all settings", legendgroup=rule, showlegend=False, opacity=0.25,
                marker=dict(color=colour, symbol=symbol, size=6),
                text=[format_params(p) for p in f.params], hovertemplate=hover,
            ))
        index = f.pareto
        traces.append(dict(
            type="scatter", x=getattr(f, x)[index], y=f.score[index], mode="lines+markers",
            name=_short_title(rule), legendgroup=rule, line=dict(color=colour, width=2, shape="linear"),  # straight from setting to setting: no step
            # corner where no setting is, and nothing past the fastest setting
            marker=dict(color=colour, symbol=symbol, size=8),
            text=[format_params(f.params[i]) for i in index], hovertemplate=hover,
        ))
    if "fixed" in frontiers:
        f = frontiers["fixed"]
        order = np.argsort(f.speedup)
        traces.append(dict(
            type="scatter", x=getattr(f, x)[order], y=f.score[order], mode="lines+markers",
            name="truncation (fixed depth)",
            line=dict(color=catalogue.RULES["fixed"].colour, width=1.5, dash="dash"),
            marker=dict(color=catalogue.RULES["fixed"].colour, size=6),
            text=[f"first {f.params[i]['layer']} layers" for i in order], hovertemplate=hover,
        ))
        full = int(np.argmin(f.speedup))
        traces.append(dict(
            type="scatter", x=[getattr(f, x)[full]], y=[f.score[full]], mode="markers", name="full model",
            marker=dict(color=catalogue.RULES["fixed"].colour, symbol="square", size=12),
            text=[f"all {f.num_layers} layers"], hovertemplate=hover,
        ))
    if current is not None:
        traces.append(dict(
            type="scatter", x=[getattr(current, x)], y=[current.score], mode="markers", name="current setting",
            marker=dict(color=catalogue.RULES[current.rule].colour, symbol="circle-open", size=22,
                        line=dict(width=4)),
            text=[current.label], hovertemplate=hover,
        ))
    return _figure(
        traces, f"{metric[0].upper()}{metric[1:]} against speed-up (higher and further right is better)",
        dict(title=_X_AXES[x], tickformat=".0%" if x == "saved_fraction" else None),
        dict(title=metric, tickformat=".0%"), height=480,
    )


def exit_histogram_figure(
    exit_counts: np.ndarray, oracle_counts: np.ndarray | None = None, rule: str | None = None,
) -> go.Figure:
    """Examples exiting at each layer (int [L]); beside them, with ``oracle_counts``, the oracle
    exits (earliest layer from which the answer no longer changes). One or two bar traces."""
    layers = list(range(1, len(exit_counts) + 1))
    name = f"{_short_title(rule)} exits" if rule else "rule exits"
    traces = [dict(
        type="bar", x=layers, y=exit_counts, name=name, marker=dict(color=catalogue.RULES[rule].colour if rule else PALETTE[0]),
        hovertemplate="layer %{x}<br>%{y} examples<extra></extra>",
    )]
    if oracle_counts is not None:
        traces.append(dict(
            type="bar", x=layers, y=oracle_counts, name="oracle exit (answer stable from here)",
            marker=dict(color=PALETTE[8], pattern=dict(shape="/")),
            hovertemplate="layer %{x}<br>%{y} examples<extra></extra>",
        ))
    return _figure(traces, "Where examples exit", dict(title="exit layer", tickvals=layers),
                   dict(title="examples"), barmode="group", **_SHORT)


def class_accuracy_figure(class_accuracy: ClassAccuracy, rule: str | None = None) -> go.Figure:
    """Accuracy per gold class at the rule's exits beside the full model's (two horizontal bar traces)."""
    names = [f"{n} ({s})" for n, s in zip(class_accuracy.label_names, class_accuracy.support)]
    traces = [
        dict(type="bar", x=values, y=names, orientation="h", name=name, marker=dict(color=colour),
               hovertemplate="%{y}<br>accuracy %{x:.1%}<extra></extra>")
        for values, name, colour in (
            (class_accuracy.full, "full model", catalogue.RULES["fixed"].colour),
            (class_accuracy.early, f"{_short_title(rule)} exits" if rule else "early exits",
             catalogue.RULES[rule].colour),
        )
    ]
    return _figure(
        traces, "Accuracy per class (examples in brackets)", dict(title="accuracy", tickformat=".0%", range=[0, 1]),
        dict(title="gold class", autorange="reversed", automargin=True), barmode="group",
        height=max(320, 40 * len(names) + 140),
    )


def confusion_figure(confusion: np.ndarray, label_names) -> go.Figure:
    """Heatmap of the full model's answer (rows) against the early answer (columns), one trace.

    Off-diagonal cells are the examples whose answer early exiting changed.
    """
    names = list(label_names)
    heatmap = dict(
        type="heatmap",
        z=confusion, x=names, y=names, colorscale="Cividis", texttemplate="%{z}",
        colorbar=dict(title="examples"),
        hovertemplate="full model: %{y}<br>early exit: %{x}<br>%{z} examples<extra></extra>",
    )
    changed = int(confusion.sum() - np.trace(confusion))
    return _figure(
        [heatmap], f"Early answer against the full model's ({changed} changed)",
        dict(title="answer at the exit", tickangle=-30, automargin=True),
        dict(title="answer of the full model", autorange="reversed", automargin=True),
        height=max(360, 36 * len(names) + 160),
    )


def overthinking_figure(overthinking: Overthinking) -> go.Figure:
    """Per layer: examples right there but wrong at a later layer, and examples that go from right
    to wrong at that layer (two bar traces)."""
    layers = list(range(1, overthinking.num_layers + 1))
    total = len(overthinking.destructive)
    traces = [
        dict(type="bar", x=layers, y=overthinking.right_then_wrong, name="right here, wrong at a later layer",
             marker=dict(color=PALETTE[5]), hovertemplate="layer %{x}<br>%{y} examples<extra></extra>"),
        dict(type="bar", x=layers, y=overthinking.lost_at, name="right at the layer before, wrong here",
             marker=dict(color=PALETTE[0], pattern=dict(shape="x")),
             hovertemplate="layer %{x}<br>%{y} examples<extra></extra>"),
    ]
    return _figure(
        traces, f"Overthinking: {overthinking.destructive_count} of {total} examples are right at some layer "
                "and wrong at the last",
        dict(title="layer", tickvals=layers), dict(title="examples"), barmode="group", **_SHORT,
    )


def _axis_title(axis) -> str:
    return axis.title.text if axis.title and axis.title.text else ""


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def figure_table(fig: go.Figure) -> tuple[list[str], list[list]]:
    """The data of a figure as (headers, rows), one row per plotted value.

    Bar and scatter traces give ``series, <x axis>, <y axis>, note`` (horizontal bars put the
    category first: ``series, <y axis>, <x axis>, note``); heatmaps give ``series, <y axis>,
    <x axis>, value``. ``note`` is the point's text (e.g. a rule's setting).
    """
    x_title, y_title = _axis_title(fig.layout.xaxis), _axis_title(fig.layout.yaxis)
    headers, rows = None, []
    for trace in fig.data:
        name = trace.name or ""
        if trace.type == "heatmap":
            headers = headers or ["series", y_title, x_title, "value"]
            for i, y in enumerate(trace.y):
                for j, x in enumerate(trace.x):
                    rows.append([name, y, x, _cell(trace.z[i][j])])
            continue
        horizontal = getattr(trace, "orientation", None) == "h"
        headers = headers or (["series", y_title, x_title, "note"] if horizontal
                              else ["series", x_title, y_title, "note"])
        texts = trace.text if trace.text is not None and not isinstance(trace.text, str) else [""] * len(trace.x)
        for x, y, text in zip(trace.x, trace.y, texts):
            first, second = (y, x) if horizontal else (x, y)
            rows.append([name, _cell(first), _cell(second), text])
    return headers or ["series", x_title, y_title, "note"], rows


def figure_frame(fig: go.Figure) -> pd.DataFrame:
    """``figure_table`` as a DataFrame: a chart's text equivalent, shown beside it on the page."""
    headers, rows = figure_table(fig)
    return pd.DataFrame(rows, columns=headers)
