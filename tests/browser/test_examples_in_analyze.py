"""The overthinking gallery and the lesson show an example itself, and open it in Analyze (Playwright, chromium)."""

import html

import pytest

from epee_demo.data.marked import highlight_segments
from epee_demo.model.registry import shipped_models
from epee_demo.ui.lesson_tab import build_lesson
from epee_demo.ui.prepared import prepare_split
from tests.browser.test_page import browser, choose, page  # noqa: F401  (the fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def shown_in_analyze(page, name: str, value, index: int, split: str) -> None:
    """Analyze is the tab shown, and ``name``'s view holds ``value`` and its analysis."""
    view = f"#analyze-{name}"
    page.locator(f"{view} #summary").first.wait_for(state="visible", timeout=30_000)
    if isinstance(value, str):
        page.wait_for_function(f"document.querySelector('{view} #note textarea')?.value === {value!r}", timeout=90_000)
    else:
        page.wait_for_function(
            f"document.querySelector('{view} #image_upload')?.innerText.includes('{name}-{split}-{index}\\n')",
            timeout=90_000)
    page.wait_for_function(f"document.querySelector('{view} #summary')?.innerText.includes('Known label')",
                           timeout=90_000)


@pytest.mark.parametrize("name", ["organ-system", "ddi", "pneumonia"])  # a note, a marked sentence, an image
def test_a_gallery_row_shows_the_example_and_the_button_opens_it_in_analyze(page, name):  # noqa: F811
    model = shipped_models()[name]
    if name != "organ-system":
        choose(page, "task_choice", model.task.title)
    page.wait_for_function(  # its first example analyzed (a visitor's analyses run one at a time)
        f"document.querySelector('#analyze-{name} #summary')?.innerText.includes('stops at')", timeout=90_000)
    index = int(prepare_split(model.trace("test")).overthinking.destructive.nonzero()[0][0])
    value = model.split_inputs.get("test", index)
    page.get_by_role("tab", name="Trade-off explorer").first.click()
    page.wait_for_function(  # the explorer follows the selector
        f"document.querySelector('#explore_point').innerText.includes('({model.trace('test').num_examples} examples)')",
        timeout=30_000)
    table = page.locator("#explore_overthinking_examples").first
    table.scroll_into_view_if_needed()
    table.get_by_text(str(index), exact=True).locator("visible=true").first.click()
    shown = page.locator("#explore_example_input").first
    page.wait_for_function(f"document.querySelector('#explore_example_input').innerText.includes('Example {index} ')",
                           timeout=30_000)
    if isinstance(value, str):
        if model.task.marks is not None:  # the marked spans highlighted, each mark named
            assert shown.locator("mark").count() == 2 and "DRUG" in shown.inner_text()
        else:
            assert value.splitlines()[0] in shown.inner_text()
    else:
        assert shown.locator("img").first.get_attribute("src").startswith("data:image/png;base64,")
    page.locator("#explore_open_example").first.click()
    shown_in_analyze(page, name, value, index, "test")
    if model.task.marks is not None:  # the sentence's marked spans are highlighted in Analyze too
        drug = next(segment for segment, tag in highlight_segments(value, model.task.marks.counts) if tag)
        page.wait_for_function(
            f"document.querySelector('#analyze-{name} #marked_spans')?.innerText.includes({drug.strip()!r})",
            timeout=30_000)


def test_the_lesson_shows_its_example_and_opens_it_in_analyze(page):  # noqa: F811
    model = shipped_models()["organ-system"]
    index = build_lesson(model, prepare_split(model.trace("test"), model.task.metric)).index
    value = model.split_inputs.get("test", index)
    page.get_by_role("tab", name="Lesson").first.click()
    example = page.locator("#lesson_example").first
    example.wait_for(state="visible", timeout=30_000)
    assert html.unescape(example.inner_html()).count(value) == 1
    page.locator("#lesson_open_example").first.click()
    shown_in_analyze(page, "organ-system", value, index, "test")
