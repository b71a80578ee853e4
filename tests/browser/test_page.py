"""End to end in headless Debian chromium (Playwright): the real page on the shipped models."""

import re
import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def opened(browser, url: str):
    """A new page of ``browser`` at ``url``, 1280 px wide, once the page's banner shows."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(url)
    page.get_by_text("Research and teaching only").first.wait_for(timeout=60_000)
    return page


@pytest.fixture
def page(browser, app_url):
    page = opened(browser, app_url)
    yield page
    page.close()


def summary_text(page) -> str:
    return page.locator("#summary:visible").first.inner_text()


def choose(page, control: str, option: str):
    """Pick ``option`` in the page's task dropdown or backbone radio (``control``: its elem id)."""
    if control == "task_choice":
        page.locator("#task_choice input").first.click()
        page.get_by_role("option", name=option).first.click()
    else:
        page.locator(f"#{control}").get_by_label(option).check()


def pick_example_note(page, name="Chest pain, ST elevation"):
    """Click an example note until it fills the box (a click before the page has wired its events is lost)."""
    for _ in range(30):
        page.get_by_role("button", name=name).first.click()
        if page.locator("#note textarea").first.input_value():
            return
        page.wait_for_timeout(1_000)
    raise AssertionError(f"the example note {name!r} never filled the note box")


def test_analyze_an_example_note_and_move_the_tau_slider_with_the_keyboard(page):
    pick_example_note(page)
    page.locator("#analyze").first.click()
    page.wait_for_function("document.querySelector('#summary').innerText.includes('stops at')", timeout=60_000)
    assert re.search(r"stops at layer \d of 6", summary_text(page))
    # the chart is drawn a moment after the text
    page.locator("#entropy_plot .js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
    slider = page.locator("#tau input[type=range]").first
    slider.focus()
    # tau = 1 fires on entropy at the first layer (Hn < 1 on any prediction that is not uniform).
    slider.press("End")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('tau 1 =')", timeout=30_000)
    assert "stops at layer 1 of 6" in summary_text(page)
    # tau = 0 turns EPEE into pure PABEE: this note's answer is the same at every layer, so the
    # patience counter reaches 3 at layer 4.
    slider.press("Home")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('tau 0 =')", timeout=30_000)
    assert "stops at layer 4 of 6" in summary_text(page)


CONTROL_ROLES = {"textbox", "slider", "spinbutton", "combobox", "listbox", "checkbox", "radio", "button", "searchbox",
                 "tab"}
# What Gradio names a component given no label: as good as no name for a screen-reader user.
GENERIC_NAMES = {"textbox", "slider", "dropdown", "file", "number", "image", "dataframe", "plot", "html", "markdown"}


def unnamed_controls(page) -> list[str]:
    """Controls on the page that assistive technology would announce without a real name (Chromium's
    accessibility tree: the names it computes from labels, aria-label and aria-labelledby)."""
    session = page.context.new_cdp_session(page)
    nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    session.detach()
    return [
        f"{node['role']['value']} #{node.get('backendDOMNodeId')}"
        for node in nodes
        if not node.get("ignored") and node.get("role", {}).get("value") in CONTROL_ROLES
        and node.get("name", {}).get("value", "").strip().lower().removeprefix("range slider for ")
        .removeprefix("number input for ") in GENERIC_NAMES | {""}
    ]


def test_every_control_is_labelled_and_the_keyboard_moves_the_patience_slider(page):
    assert unnamed_controls(page) == []
    pick_example_note(page)
    page.locator("#analyze").first.click()
    page.wait_for_function("document.querySelector('#summary').innerText.includes('stops at')", timeout=60_000)
    assert page.get_by_label("Per-layer prediction (text equivalent of the charts)").first.is_visible()
    tau = page.locator("#tau input[type=range]").first
    tau.focus()
    tau.press("Home")  # tau = 0: pure patience, so the patience slider decides the exit
    page.wait_for_function("document.querySelector('#tau input[type=range]').value === '0'", timeout=30_000)
    page.wait_for_timeout(1_000)  # let the tau update land before reading the summary
    before = summary_text(page)
    patience = page.locator("#patience input[type=range]").first
    patience.focus()
    patience.press("ArrowRight")
    assert patience.input_value() == "4"
    page.wait_for_function(f"document.querySelector('#summary').innerText !== {before!r}", timeout=30_000)
    assert "stops at" in summary_text(page)
    assert unnamed_controls(page) == []  # the views that appeared are labelled too
    choose(page, "task_choice", "Chest X-ray: pneumonia or normal?")
    page.locator("#image_upload:visible").first.wait_for(timeout=30_000)
    assert unnamed_controls(page) == []


def test_a_note_with_identifiers_is_flagged_while_it_is_typed(page):
    note = page.locator("#note textarea").first
    note.fill("Seen in clinic. DOB 03/04/1961, MRN 00123456. Chest pain for two hours.")
    page.wait_for_function(
        "document.querySelector('#identifier_warning').innerText.includes('may contain identifying details')",
        timeout=30_000)
    warning = page.locator("#identifier_warning").first.inner_text()
    assert "03/04/1961" in warning and "MRN 00123456" in warning
    note.fill("Crushing chest pain with ST elevation in leads II, III and aVF.")
    page.wait_for_function("!document.querySelector('#identifier_warning').innerText.includes('identifying')",
                           timeout=30_000)


@pytest.mark.parametrize("tab, seen, warning", [
    ("Chest X-ray: pneumonia or normal?", "28×28 grayscale", None),
    ("Fundus photo: retinopathy grade?", "28×28 RGB", "Grayscale image, colour model"),
])
def test_an_uploaded_image_shows_what_the_model_sees(page, tmp_path, tab, seen, warning):
    import numpy as np
    from PIL import Image

    path = tmp_path / "xray.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)).save(path)
    choose(page, "task_choice", tab)
    upload = page.locator("#image_upload:visible").first
    assert "test-" in upload.inner_text()  # the task opens holding its first test-split example
    page.wait_for_function(  # ... analyzed when first chosen
        "[...document.querySelectorAll('#model_view img')].some(img => img.complete && img.naturalWidth > 0)",
        timeout=60_000)
    upload.get_by_role("button", name="Clear").click()
    page.locator("#image_upload:visible input[type=file]").first.set_input_files(str(path))
    page.locator("#analyze:visible").first.click()
    page.wait_for_function(  # the upload's analysis replaced the first example's
        "[...document.querySelectorAll('#notice')].some(n => n.offsetParent && n.innerText.includes('Image 400×300'))",
        timeout=60_000)
    image = page.locator("#model_view:visible img").first
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert seen in image.get_attribute("alt")
    notice = page.locator("#notice:visible").first.inner_text()
    assert (warning in notice) if warning else ("⚠️" not in notice)


def test_the_page_opens_analyzed_and_the_heatmap_follows_the_slider(page):
    assert "stops at" in summary_text(page)  # no Analyze pressed: the first example is analyzed already
    page.locator("#class_heatmap .js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
    table = page.locator("#class_table").first
    assert "Cardiovascular" in table.inner_text() and "exits here" in table.inner_text()
    before = table.inner_text()
    slider = page.locator("#tau input[type=range]").first
    slider.focus()
    # tau 1 fires on entropy at layer 1 (this note stops at layer 4 at the default tau, and at tau 0 too:
    # its answer is the same at every layer), so the exit mark moves up the table to layer 1
    slider.press("End")
    page.wait_for_function("document.querySelector('#summary').innerText.includes('tau 1 =')", timeout=30_000)
    assert "stops at layer 1 of 6" in summary_text(page)
    page.wait_for_function(f"document.querySelector('#class_table').innerText !== {before!r}", timeout=30_000)


def test_the_keyboard_alone_analyzes_a_new_note(page):
    note = page.locator("#note textarea").first
    note.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("Wheezing and shortness of breath at night; peak flow reduced, improves with salbutamol.")
    before = summary_text(page)
    page.keyboard.press("Tab")  # leaves the box; the Analyze button is reached and pressed from the keyboard
    page.locator("#analyze").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('#summary').innerText !== {before!r}", timeout=60_000)
    assert "stops at" in summary_text(page)


def test_the_page_is_usable_400_px_wide(browser, app_url):
    narrow = browser.new_page(viewport={"width": 400, "height": 900})
    try:
        narrow.goto(app_url)
        narrow.get_by_text("Research and teaching only").first.wait_for(timeout=60_000)
        narrow.locator("#class_heatmap .js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 400  # nothing runs off to the side
        for selector in ("#note textarea", "#analyze", "#rule", "#tau", "#summary", "#entropy_plot", "#class_heatmap"):
            box = narrow.locator(selector).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, selector
        # the opening analysis's notice, read before Analyze is pressed (its reply can land before a later read)
        assert "analyzed when the page was built" in narrow.locator("#notice").first.inner_text()
        narrow.locator("#analyze").first.click()
        narrow.wait_for_function("!document.querySelector('#notice').innerText.includes('analyzed when the page')",
                                 timeout=60_000)  # the new analysis replaced the opening one
    finally:
        narrow.close()


def test_the_selector_swaps_the_input_the_classes_and_the_backbone(page):
    page.locator("#note:visible textarea").first.wait_for(timeout=30_000)  # the banner can show before the tab
    assert page.locator("#note:visible textarea").count() == 1  # a clinical note task opens the page
    assert "Cardiovascular" in page.locator("#class_table:visible").first.inner_text()
    assert page.locator("#backbone_choice:visible").count() == 1  # three backbones answer it
    choose(page, "task_choice", "Chest X-ray: pneumonia or normal?")
    page.locator("#image_upload:visible").first.wait_for(timeout=30_000)
    assert page.locator("#note:visible").count() == 0 and page.locator("#backbone_choice:visible").count() == 0
    page.wait_for_function(  # analyzed the first time the task is chosen: its classes, its 8 layers
        "[...document.querySelectorAll('#summary')].some(s => s.offsetParent && s.innerText.includes('of 8'))",
        timeout=60_000)
    classes = page.locator("#class_table:visible").first.inner_text()
    assert "pneumonia" in classes and "Cardiovascular" not in classes
    assert page.locator("#patience:visible input[type=range]").first.get_attribute("max") == "8"
    choose(page, "task_choice", "Clinical note: which organ system?")
    page.locator("#note:visible textarea").first.wait_for(timeout=30_000)
    choose(page, "backbone_choice", "GPT-2-style decoder (trained from scratch)")
    page.locator("#analyze-organ-system-gpt2 #note textarea").first.wait_for(state="visible", timeout=30_000)
    assert page.locator("#analyze-organ-system #note").first.is_hidden()
    page.wait_for_function(
        "document.querySelector('#analyze-organ-system-gpt2 #summary').innerText.includes('stops at')",
        timeout=60_000)
