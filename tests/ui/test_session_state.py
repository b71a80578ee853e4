"""The lazy per-session state: what Gradio's own gives, session by session, without building every config at once."""

import asyncio
import importlib.util
import sys

import gradio as gr
import gradio.blocks
import gradio.route_utils
import gradio.state_holder
import pytest
from gradio.state_holder import SessionState, StateHolder

from epee_demo.ui import OPTIONAL_MODULES, mark_absent
from epee_demo.ui.session_state import LazySessionState, install_lazy_session_state


def counter_page() -> tuple[gr.Blocks, gr.State, gr.Textbox, gr.Markdown]:
    """A click adds one to a per-session count and relabels the box (a component updated per session)."""
    with gr.Blocks() as demo:
        count = gr.State(0)
        box = gr.Textbox("not clicked", label="before")
        untouched = gr.Markdown("a block no event touches")
        button = gr.Button("add one")
        button.click(lambda n: (n + 1, gr.update(value=f"clicked {n + 1}", label=f"after {n + 1}")),
                     count, [count, box])
    return demo, count, box, untouched


def clicked(demo: gr.Blocks, state: SessionState, times: int) -> SessionState:
    for _ in range(times):
        asyncio.run(demo.process_api(0, [None], state=state))
    return state


@pytest.mark.parametrize("session_state", [SessionState, LazySessionState])
def test_two_sessions_keep_their_own_state_and_components(session_state):
    demo, count, box, _ = counter_page()
    first, second = clicked(demo, session_state(demo), 2), clicked(demo, session_state(demo), 1)
    assert (first[count._id], second[count._id]) == (2, 1)
    assert (first[box._id].label, second[box._id].label) == ("after 2", "after 1")
    assert first.config_values[box._id]["props"]["value"] == "clicked 2"
    assert second.config_values[box._id]["props"]["value"] == "clicked 1"
    assert box.label == "before" and session_state(demo)[count._id] == 0  # the page itself is unchanged


def test_the_lazy_state_builds_a_config_when_read_and_gives_gradios_own_values(monkeypatch):
    demo, count, box, untouched = counter_page()
    built, config_for_block = [], gradio.blocks.BlocksConfig.config_for_block
    monkeypatch.setattr(gradio.blocks.BlocksConfig, "config_for_block",
                        staticmethod(lambda block_id, *args: built.append(block_id) or config_for_block(block_id, *args)))
    lazy = LazySessionState(demo)
    assert built == [] and len(lazy.config_values) == len(demo.blocks)  # every block has its entry, none built
    clicked(demo, lazy, 3)
    assert box._id in built and untouched._id not in built
    eager = clicked(demo, SessionState(demo), 3)
    assert lazy[count._id] == eager[count._id] == 3
    assert list(lazy.config_values) == list(eager.config_values)  # same blocks, same order
    assert dict(lazy.config_values) == eager.config_values  # reading them all builds the rest, as Gradio's are
    assert list(lazy.components) == list(eager.components)  # what a deep link saves
    assert [c[:2] for c in lazy.state_components] == [c[:2] for c in eager.state_components]


def test_installed_gradio_builds_lazy_states_for_every_session(monkeypatch):
    for module in (gradio.state_holder, gradio.route_utils, gradio.blocks):
        monkeypatch.setattr(module, "SessionState", module.SessionState)  # restored after the test
    assert install_lazy_session_state()  # the release pinned for the Space (README's sdk_version)
    demo, count, _, _ = counter_page()
    holder = StateHolder()
    holder.set_blocks(demo)
    assert isinstance(holder["a"], LazySessionState) and holder["a"] is holder["a"]
    assert clicked(demo, holder["a"], 2)[count._id] == 2 and holder["b"][count._id] == 0


def test_another_gradio_release_keeps_gradios_own_state(monkeypatch):
    for module in (gradio.state_holder, gradio.route_utils, gradio.blocks):
        monkeypatch.setattr(module, "SessionState", SessionState)
    monkeypatch.setattr(gradio, "__version__", "6.40.0")
    assert not install_lazy_session_state()
    assert all(module.SessionState is SessionState for module in (gradio.state_holder, gradio.route_utils, gradio.blocks))


def test_an_entry_set_while_it_is_being_built_is_kept():
    demo, count, _, _ = counter_page()
    state = LazySessionState(demo)
    configs = state.config_values
    build = configs._config_for_block

    def slow_build(block_id, *args):  # the event loop sets the entry while a worker thread builds it
        config = build(block_id, *args)
        configs[block_id] = {"value": "set meanwhile"}
        return config

    configs._config_for_block = slow_build
    assert configs[count._id] == {"value": "set meanwhile"}


def test_optional_modules_not_installed_are_marked_absent_and_never_searched_for(monkeypatch):
    assert {"matplotlib", "polars"} <= set(OPTIONAL_MODULES)
    searched = []

    class RecordingFinder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            searched.append(name)

    names = ("polars", "epee_demo_no_such_module", "numpy")
    for name in names[:2]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        mark_absent(names)
        assert sys.modules["polars"] is None and sys.modules["epee_demo_no_such_module"] is None
        assert sys.modules["numpy"] is not None  # installed: left as it is
        monkeypatch.setattr(sys, "meta_path", [RecordingFinder(), *sys.meta_path])
        from gradio.components.dataframe import _is_polars_available
        assert _is_polars_available() is False
        with pytest.raises(ImportError):
            import polars  # noqa: F401
        assert searched == []
    finally:
        sys.modules.pop("epee_demo_no_such_module", None)
    assert importlib.util.find_spec("polars") is None
