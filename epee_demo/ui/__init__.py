"""The Gradio page: thin wiring over the registry, the traces, the rules and the figures."""

from __future__ import annotations

import gradio as gr

from epee_demo.registry import ShippedModel, shipped_models
from epee_demo.ui.analyze import build_analyze_tab

BANNER = (
    "⚠️ **Research and teaching only — not for diagnosis or any clinical decision.** "
    "Do not enter identifiable patient data: use synthetic or fully de-identified text and images."
)

INTRO = """# Early exit, layer by layer
A transformer with a classifier after **every** layer. Each exit rule decides, layer by layer,
whether the answer is good enough to stop computing. Move the sliders to see where each rule
stops, what it answers, and what the full model would have said."""

CSS = """
#banner { background: #fff4d6; border: 2px solid #b36b00; border-radius: 8px; padding: 8px 14px; }
#banner p { color: #4a2f00; margin: 0; }
"""


def build_demo(models: dict[str, ShippedModel] | None = None) -> gr.Blocks:
    """The whole page over the shipped models (or the given ones)."""
    models = shipped_models() if models is None else models
    if not models:
        raise FileNotFoundError("no shipped model found in assets/: run `epee-demo train` first")
    with gr.Blocks(title="EPEE demo: early-exit transformers in biomedicine", analytics_enabled=False) as demo:
        gr.Markdown(BANNER, elem_id="banner")
        gr.Markdown(INTRO)
        with gr.Tabs():
            for model in models.values():
                with gr.Tab(model.task.title, id=f"tab-{model.task.name}"):
                    build_analyze_tab(model)
    return demo
