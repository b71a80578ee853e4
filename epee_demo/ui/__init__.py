"""The Gradio page: thin wiring over the registry, the traces, the rules and the figures."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import sys

import gradio as gr
from starlette.middleware import Middleware

from epee_demo.analysis.backbone_table import backbone_table
from epee_demo.errors import CheckpointError
from epee_demo.limits import CACHE_DELETION, MAX_QUEUED_EVENTS, MAX_UPLOAD_BYTES
from epee_demo.model.multi_exit import share_cpu_cores
from epee_demo.model.registry import ASSETS_DIR, ShippedModel, shipped_models
from epee_demo.ui.analyze_tab import (
    ANALYZE_TAB, MODEL_CALLS_AT_ONCE, build_analyze_tab, open_in_analyze, open_when_chosen,
)
from epee_demo.ui.batch_tab import build_batch_tab
from epee_demo.ui.api import API_NAME, hide_internal, trace_endpoint
from epee_demo.ui.explorer_tab import build_explorer_tab
from epee_demo.ui.files import AppFolder, swept
from epee_demo.ui.guard import MODEL_GROUP, RequestGuard, skip_queue_unless_model
from epee_demo.ui.lesson_tab import build_lesson_tab
from epee_demo.ui.prepared import PreparedSplits
from epee_demo.ui.selector import build_selector
from epee_demo.ui.session_state import install_lazy_session_state

BANNER = (
    "⚠️ **Research and teaching only — not for diagnosis or any clinical decision.** "
    "Do not enter identifiable patient data: use synthetic or fully de-identified text and images."
)

INTRO = """# Early exit, layer by layer
A transformer with a classifier after **every** layer. Each exit rule decides, layer by layer,
whether the answer is good enough to stop computing. Move the sliders to see where each rule
stops, what it answers, and what the full model would have said."""

BACKBONES_NOTE = (
    "The EPEE paper (Zhan et al., arXiv 2503.02053) compares four backbones (BERT, ALBERT, GPT-2, ViT). "
    "Pretrained ALBERT and GPT-2 weights are not available offline, so the ALBERT and GPT-2-style models here "
    "are **trained from scratch** on the task's training split alone: compare them with the pretrained "
    "MiniLM-L6 on the same task."
)

CSS = """
#banner { background: #fff4d6; border: 2px solid #b36b00; border-radius: 8px; padding: 8px 14px; }
#banner p { color: #4a2f00; margin: 0; }
"""


# Optional packages Gradio looks for, where they are absent, with a search of sys.path each time:
# matplotlib it imports twice around every event (to switch its backend; 1.5% of the server's CPU under
# scripts/load_test.py, on the event loop), polars it looks up for every Dataframe output.
OPTIONAL_MODULES = ("matplotlib", "polars")


def mark_absent(names) -> None:
    """Each named module that is not installed is marked absent (a None in ``sys.modules``), so that
    importing it or finding its spec fails at once, without searching sys.path."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            sys.modules.setdefault(name, None)


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` (app.py and the tests): the page's style and privacy.

    No run history is kept in the browser, no traffic monitoring endpoint is served, and
    uploads are capped at ``MAX_UPLOAD_BYTES``; ``RequestGuard`` caps every other request and
    what one visitor may queue or upload, and the page's ``AppFolder`` is swept on the
    ``CACHE_DELETION`` schedule and removed at shutdown. Errors are shown with their message,
    never as a bare "Error".
    """
    return {"css": CSS, "run_history": False, "enable_monitoring": False, "max_file_size": MAX_UPLOAD_BYTES,
            "show_error": True, "app_kwargs": {"middleware": [Middleware(RequestGuard)], "lifespan": serving}}


@contextlib.asynccontextmanager
async def serving(app):
    """The served app's lifespan: what exists once the page is built and the server starts (the
    opening model, Gradio, the config: about 540,000 objects; a model chosen later is not frozen) is
    frozen out of the garbage collector's full passes (``gc.freeze``, after one last collection) until
    shutdown, and the page's ``AppFolder`` is swept (``files.swept``). Each full pass walked all of it on the event loop, stopping every visitor's
    call for 0.3-0.8 s every few seconds on a loaded machine; it now walks what serving made."""
    gc.collect()
    gc.freeze()
    try:
        async with swept(app, every=CACHE_DELETION[0], max_age=CACHE_DELETION[1]):
            yield
    finally:
        gc.unfreeze()


def build_demo(models: dict[str, ShippedModel] | None = None, folder: AppFolder | None = None) -> gr.Blocks:
    """The whole page over the shipped models (or the given ones), writing into ``folder`` (a fresh
    ``AppFolder`` by default; Gradio's cache goes there, other temporary files only when the
    caller made it the process's temporary folder, as ``app.py`` does)."""
    models = shipped_models() if models is None else models
    if not models:
        raise CheckpointError(f"no shipped model found in {ASSETS_DIR}: run `epee-demo train` first")
    for model in models.values():
        model.check_files()  # a broken folder stops start-up, though only the first model loads then
    share_cpu_cores(MODEL_CALLS_AT_ONCE)  # the concurrent analyses split the cores, none oversubscribes them
    folder = folder or AppFolder()
    folder.use_for_gradio()  # before the Blocks: Gradio reads its cache folder when they are made
    with gr.Blocks(title="EPEE demo: early-exit transformers in biomedicine", analytics_enabled=False,
                   delete_cache=CACHE_DELETION) as demo:
        gr.Markdown(BANNER, elem_id="banner")
        gr.Markdown(INTRO)
        selector = build_selector(models)
        first = next(iter(models))
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # every tab stays a visible tab, on two rows if need be
            with gr.Tab("Analyze", id=ANALYZE_TAB, elem_id=ANALYZE_TAB):
                views, analyze_views = {}, {}
                for name, model in models.items():  # one view per model, shown while it is selected
                    with gr.Column(visible=name == first, elem_id=f"analyze-{name}") as views[name]:
                        analyze_views[name] = build_analyze_tab(model, analyze_now=name == first)
                open_when_chosen(selector.selected, {n: v.opening for n, v in analyze_views.items()
                                                     if v.opening is not None})
            loadings = {name: view.loading for name, view in analyze_views.items()}
            splits = PreparedSplits(models)  # the explorer's and the lesson's, each (model, split) prepared once
            with gr.Tab("Trade-off explorer", id="tab-explorer"):
                gallery = build_explorer_tab(splits, selector.selected)
            open_in_analyze(gallery, tabs, selector.selected, models, loadings, "explore_open_example")
            with gr.Tab("Lesson", id="tab-lesson"):
                lesson = build_lesson_tab(splits, selector.selected)
            open_in_analyze(lesson, tabs, selector.selected, models, loadings, "lesson_open_example")
            with gr.Tab("Batch", id="tab-batch"):
                build_batch_tab(models, folder)
        selector.selected.change(lambda chosen: {view: gr.update(visible=name == chosen) for name, view in views.items()},
                                 selector.selected, list(views.values()), show_progress="hidden",
                                 concurrency_limit=None, api_name=False, preprocess=False)
        with gr.Accordion("Backbones side by side: every shipped model's exits on its test split", open=False):
            gr.Markdown(BACKBONES_NOTE + "\n\n" + backbone_table(m.folder for m in models.values()),
                        elem_id="backbone_table")
        gr.api(trace_endpoint(models), api_name=API_NAME, concurrency_limit=MODEL_CALLS_AT_ONCE,
               concurrency_id=MODEL_GROUP)
    hide_internal(demo)  # "Use via API" lists /trace alone
    skip_queue_unless_model(demo)  # slider, rule and check events: one POST each, never a queue slot
    # Gradio keeps a record of the last 10,000 events and, after every queued event, summarizes them all
    # in a pandas DataFrame for its monitoring page, which this page does not serve (enable_monitoring
    # is off): a cost per event that grows with the server's age. Keep one record and never summarize.
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(2**62))
    mark_absent(OPTIONAL_MODULES)
    install_lazy_session_state()  # a new session's state no longer builds all ~441 block configs (44 ms) at once
    demo.queue(max_size=MAX_QUEUED_EVENTS, api_open=False)  # no queued event is called past the queue and its limits
    demo.app_folder = folder
    return demo
