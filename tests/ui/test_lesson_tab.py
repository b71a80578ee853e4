"""The lesson's tab on tiny models: each model's lesson is made once, from the page's prepared splits."""

import gradio as gr

from epee_demo.ui import lesson_tab
from epee_demo.ui.prepared import PreparedSplits
from tests.ui.test_prepared import at_once, counting


def test_each_lesson_is_made_once_when_sessions_choose_its_model_at_once(
        tiny_shipped_model, tiny_image_shipped_model, monkeypatch):
    build_lesson = counting(lesson_tab.build_lesson, delay=0.2)
    monkeypatch.setattr(lesson_tab, "build_lesson", build_lesson)
    splits = PreparedSplits({"organ-system": tiny_shipped_model, "pneumonia": tiny_image_shipped_model})
    with gr.Blocks():
        source = lesson_tab.build_lesson_tab(splits)
    assert [args[0] for args in build_lesson.calls] == [tiny_shipped_model]  # the opening lesson, at build
    chosen = at_once(source.example_of, ["pneumonia"] * 6)  # six sessions open the lesson's pneumonia example
    assert [args[0] for args in build_lesson.calls] == [tiny_shipped_model, tiny_image_shipped_model]
    assert len(set(chosen)) == 1 and chosen[0][0] == "test"
    assert build_lesson.calls[1][1] is splits[("pneumonia", "test")]  # the split the explorer reads too
