"""The Gradio page: thin wiring over the registry, the traces, the rules and the figures."""

from __future__ import annotations

from functools import partial

import gradio as gr
from starlette.middleware import Middleware

from epee_demo.limits import CACHE_DELETION, MAX_QUEUED_EVENTS, MAX_UPLOAD_BYTES
from epee_demo.model import CheckpointError, share_cpu_cores
from epee_demo.registry import ASSETS_DIR, ShippedModel, shipped_models
from epee_demo.ui.analyze import MODEL_CALLS_AT_ONCE, build_analyze_tab
from epee_demo.ui.explorer import build_explorer_tab
from epee_demo.ui.files import AppFolder, swept
from epee_demo.ui.guard import RequestGuard
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


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` (app.py and the tests): the page's style and privacy.

    No run history is kept in the browser, no traffic monitoring endpoint is served, and
    uploads are capped at ``MAX_UPLOAD_BYTES``; ``RequestGuard`` caps every other request and
    what one visitor may queue or upload, and the page's ``AppFolder`` is swept on the
    ``CACHE_DELETION`` schedule and removed at shutdown. Errors are shown with their message,
    never as a bare "Error".
    """
    return {"css": CSS, "run_history": False, "enable_monitoring": False, "max_file_size": MAX_UPLOAD_BYTES,
            "show_error": True, "app_kwargs": {"middleware": [Middleware(RequestGuard)],
                                               "lifespan": partial(swept, every=CACHE_DELETION[0],
                                                                   max_age=CACHE_DELETION[1])}}


def build_demo(models: dict[str, ShippedModel] | None = None, folder: AppFolder | None = None) -> gr.Blocks:
    """The whole page over the shipped models (or the given ones), writing into ``folder`` (a fresh
    ``AppFolder`` by default; Gradio's cache goes there, other temporary files only when the
    caller made it the process's temporary folder, as ``app.py`` does)."""
    models = shipped_models() if models is None else models
    if not models:
        raise CheckpointError(f"no shipped model found in {ASSETS_DIR}: run `epee-demo train` first")
    share_cpu_cores(MODEL_CALLS_AT_ONCE)  # the concurrent analyses split the cores, none oversubscribes them
    folder = folder or AppFolder()
    folder.use_for_gradio()  # before the Blocks: Gradio reads its cache folder when they are made
    with gr.Blocks(title="EPEE demo: early-exit transformers in biomedicine", analytics_enabled=False,
                   delete_cache=CACHE_DELETION) as demo:
        gr.Markdown(BANNER, elem_id="banner")
        gr.Markdown(INTRO)
        with gr.Tabs():
            for model in models.values():
                if model.task.marks is None:
                    with gr.Tab(model.task.title, id=f"tab-{model.task.name}"):
                        build_analyze_tab(model)
            with gr.Tab("Trade-off explorer", id="tab-explorer"):
                build_explorer_tab(models)
            with gr.Tab("Lesson", id="tab-lesson"):
                build_lesson_tab(models)
            marked = [model for model in models.values() if model.task.marks is not None]
            if marked:  # the marked-sentence tasks share one tab, last, so the explorer and lesson stay in view
                with gr.Tab("Relations and events", id="tab-marked"), gr.Tabs():
                    for model in marked:
                        with gr.Tab(model.task.title, id=f"tab-{model.task.name}"):
                            build_analyze_tab(model)
    demo.queue(max_size=MAX_QUEUED_EVENTS, api_open=False)  # no direct REST call skips the queue and its limits
    demo.app_folder = folder
    return demo
