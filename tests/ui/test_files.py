"""The page's one temporary folder: swept on a schedule, removed at shutdown, used for everything."""

import os
import tempfile
import time
from pathlib import Path

from gradio_client import Client

from epee_demo.ui import build_demo, launch_options
from epee_demo.ui.files import AppFolder


def aged(path: Path, seconds: float) -> Path:
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def test_sweep_deletes_old_temporary_files_and_empty_folders_only(tmp_path):
    folder = AppFolder(tmp_path / "app")
    old_export = folder.tmp / "export-1" / "figure.html"
    old_export.parent.mkdir()
    old_export.write_text("old")
    aged(old_export, 1000)
    aged(old_export.parent, 1000)
    young = folder.tmp / "young.csv"
    young.write_text("new")
    cached = folder.gradio / "abc123" / "example.png"  # Gradio's: left to delete_cache (it keeps examples)
    cached.parent.mkdir()
    cached.write_bytes(b"png")
    aged(cached, 1000)
    empty = aged(Path(tempfile.mkdtemp(dir=folder.gradio)), 1000)
    assert folder.sweep(max_age=900) == 1
    assert not old_export.parent.exists() and young.exists() and cached.exists() and not empty.exists()
    folder.remove()
    assert not folder.root.exists()


def test_the_served_page_writes_only_into_its_folder_and_removes_it_at_shutdown(tiny_shipped_model):
    folder = AppFolder()
    folder.use_for_process()  # as app.py does
    demo = build_demo({"organ-system": tiny_shipped_model}, folder)
    assert Path(demo.GRADIO_CACHE) == folder.gradio and tempfile.gettempdir() == str(folder.tmp)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    try:
        client = Client(demo.local_url, verbose=False)
        exported = client.predict("organ-system", "test", "epee", 0.2, 3, 0.9, 0.05, "js", 1,
                                  api_name="/explore_export_figure")
        assert Path(exported).name.endswith("_tradeoff.html")
        assert any(folder.tmp.rglob("*_tradeoff.html"))  # the export itself, before Gradio caches a copy
    finally:
        demo.close()
    assert not folder.root.exists()
    assert tempfile.gettempdir() != str(folder.tmp) and os.environ.get("GRADIO_TEMP_DIR") != str(folder.gradio)
