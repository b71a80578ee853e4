"""Privacy of the launched page: nothing typed is kept on disk, no run history, state and uploads expire."""

import time
import urllib.error
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client

from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.ui import CACHE_DELETION, build_demo, launch_options
from tests.conftest import launched_demo

pytestmark = pytest.mark.integration  # starts the page or its server process

MARKER = "Zyxquorbian-7731"  # a word no file on this machine holds unless we wrote it


@pytest.fixture(scope="module")
def demo(tiny_shipped_model):
    with launched_demo({"organ-system": tiny_shipped_model}) as demo:
        yield demo


def files_changed_since(folder: Path, since: float) -> list[Path]:
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since]


def test_a_note_leaves_nothing_on_disk(demo):
    started = time.time() - 1
    client = Client(demo.local_url, verbose=False)
    note = f"{EXAMPLE_NOTES[0].text} {MARKER}"
    client.predict(note, api_name="/check_note_organ_system")
    assert "stops at" in client.predict(note, "epee", api_name="/analyze_organ_system")[1]
    client.predict("epee", 0.5, 3, 0.9, 0.05, "js", 1, api_name="/set_tau_organ_system")
    written = [p for folder in (Path(demo.GRADIO_CACHE), Path.cwd() / ".gradio", Path.cwd() / "flagged")
               for p in files_changed_since(folder, started)]
    assert not [p for p in written if MARKER.encode() in p.read_bytes()]
    assert not (Path.cwd() / ".gradio" / "flagged").exists()


def test_run_history_is_off(demo):
    assert demo.run_history is False
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{demo.local_url}gradio_api/runs", timeout=30)
    assert err.value.code == 404


def test_no_analytics_uploads_expire_and_session_state_expires(demo):
    assert demo.analytics_enabled is False
    assert demo.delete_cache == CACHE_DELETION and CACHE_DELETION[1] <= 3600
    states = [block for block in demo.blocks.values() if isinstance(block, gr.State)]
    assert states and all(s.time_to_live and s.time_to_live <= 3600 for s in states)
