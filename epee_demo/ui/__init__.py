"""The Gradio page: thin wiring over the registry, the traces, the rules and the figures."""

from __future__ import annotations

import gradio as gr

from epee_demo.model import CheckpointError, share_cpu_cores
from epee_demo.registry import ASSETS_DIR, ShippedModel, shipped_models
from epee_demo.ui.analyze import MODEL_CALLS_AT_ONCE, build_analyze_tab
from epee_demo.ui.explorer import build_explorer_tab
from epee_demo.ui.lesson import build_lesson_tab

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

# Uploaded files are deleted from the server every 5 minutes once older than 15 minutes.
CACHE_DELETION = (300, 900)
MAX_UPLOAD = "20mb"
# Calls waiting in the queue at most; past it a caller is told the queue is full. (Analyses run
# 2 at a time, slider moves without a limit, so slider moves never wait behind analyses.)
MAX_QUEUED_EVENTS = 200


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` (app.py and the tests): the page's style and privacy.

    No run history is kept in the browser, no traffic monitoring endpoint is served, and
    uploads are capped at ``MAX_UPLOAD``. Errors are shown with their message (a wrong-typed
    API argument names the control and the value), never as a bare "Error".
    """
    return {"css": CSS, "run_history": False, "enable_monitoring": False, "max_file_size": MAX_UPLOAD,
            "show_error": True}


def build_demo(models: dict[str, ShippedModel] | None = None) -> gr.Blocks:
    """The whole page over the shipped models (or the given ones)."""
    models = shipped_models() if models is None else models
    if not models:
        raise CheckpointError(f"no shipped model found in {ASSETS_DIR}: run `epee-demo train` first")
    share_cpu_cores(MODEL_CALLS_AT_ONCE)  # the concurrent analyses split the cores, none oversubscribes them
    with gr.Blocks(title="EPEE demo: early-exit transformers in biomedicine", analytics_enabled=False,
                   delete_cache=CACHE_DELETION) as demo:
        gr.Markdown(BANNER, elem_id="banner")
        gr.Markdown(INTRO)
        with gr.Tabs():
            for model in models.values():
                with gr.Tab(model.task.title, id=f"tab-{model.task.name}"):
                    build_analyze_tab(model)
            with gr.Tab("Trade-off explorer", id="tab-explorer"):
                build_explorer_tab(models)
            with gr.Tab("Lesson", id="tab-lesson"):
                build_lesson_tab(models)
    demo.queue(max_size=MAX_QUEUED_EVENTS)
    return demo
