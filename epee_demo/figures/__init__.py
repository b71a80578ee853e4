"""Figures: plotly figures built from plain arrays (the caller runs the model and the rules).

Colours come from the Okabe-Ito palette, which stays distinguishable under the
common forms of colour blindness.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
    "#999999",  # grey
)

# Each rule's colour and symbol live in its catalogue entry (``epee_demo.rules.catalogue.RULES``).

_GRID = "#E5E8EE"
# A light white-background template. Passing ``template="plotly_white"`` costs ~15-25 ms per
# figure (plotly validates the whole template); this one costs ~2 ms, which matters on sliders.
TEMPLATE = go.layout.Template(layout=dict(
    colorway=list(PALETTE), plot_bgcolor="white", paper_bgcolor="white",
    xaxis=dict(gridcolor=_GRID, zerolinecolor=_GRID, linecolor="#B0B5BD", showline=True, ticks="outside"),
    yaxis=dict(gridcolor=_GRID, zerolinecolor=_GRID, linecolor="#B0B5BD", showline=True, ticks="outside"),
    hoverlabel=dict(font_size=13),
))


def build_figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace and layout dicts, built without plotly's property-by-property
    validation (``_validate=False``: about 5 ms instead of 20-40 ms a figure on this machine, and a
    slider move redraws several). The tests rebuild every figure the page draws with validation on,
    so a wrong property still fails there."""
    return go.Figure(data=_titles_as_dicts(data), layout=_titles_as_dicts(layout), _validate=False)


def _titles_as_dicts(value):
    """``title="…"`` as ``title={"text": "…"}`` at any depth (the one shorthand validation would
    otherwise expand: layout, axis and colour-bar titles)."""
    if isinstance(value, dict):
        return {key: {"text": item} if key == "title" and isinstance(item, str) else _titles_as_dicts(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_titles_as_dicts(item) for item in value]
    return value


def figure_json(data: list[dict], layout: dict) -> str:
    """The JSON plotly.js reads for the figure of plain trace and layout dicts, equal to
    ``build_figure(data, layout).to_json()`` without building the figure (plotly's own writer with its
    validation off: about 0.2 ms instead of 2 ms; the Analyze tab sends three figures per slider move
    and per analysis)."""
    return pio.to_json({"data": _titles_as_dicts(data), "layout": _titles_as_dicts(layout)}, validate=False)
