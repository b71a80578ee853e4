"""The Batch tab in headless Debian chromium (Playwright), on a page over the tiny shipped model."""

import pytest

from epee_demo.data.examples import EXAMPLE_NOTES
from tests.browser.test_page import browser, opened  # noqa: F401  (the browser fixture)
from tests.conftest import launched_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_app_url(tiny_shipped_model):
    with launched_demo({"organ-system": tiny_shipped_model}) as demo:
        yield demo.local_url


@pytest.fixture
def page(browser, tiny_app_url):  # noqa: F811
    page = opened(browser, tiny_app_url)
    yield page
    page.close()


def upload_and_run(page, path):
    page.locator("#batch_upload input[type=file]").first.set_input_files(str(path))
    page.locator("#batch_upload table").first.wait_for(timeout=30_000)  # the upload has arrived
    page.locator("#batch_run").first.click()


def test_upload_a_csv_of_notes_then_a_malformed_one(page, tmp_path):
    page.get_by_role("tab", name="Batch").click()
    page.get_by_text("At most 500 rows or images").first.wait_for(timeout=10_000)
    bad = tmp_path / "patient-smith.csv"
    bad.write_text("note\nhello\n")
    upload_and_run(page, bad)
    page.get_by_text("The CSV has no `text` column").first.wait_for(timeout=30_000)
    page.locator("#batch_upload button[aria-label='Clear']").first.click()

    good = tmp_path / "notes.csv"
    rows = "".join(f'"{" ".join(n.text.split())}",{n.expected_label}\n' for n in EXAMPLE_NOTES[:3])  # one line each
    good.write_text("text,label\n" + rows)
    upload_and_run(page, good)  # the server kept serving after the malformed file
    page.wait_for_function("document.querySelector('#batch_summary').innerText.includes('on 3 rows')",
                           timeout=60_000)
    assert "labelled rows" in page.locator("#batch_summary").inner_text()
    table = page.locator("#batch_table").first.inner_text()
    assert "line 2" in table and "line 4" in table
    page.locator("#batch_download a").first.wait_for(timeout=30_000)
