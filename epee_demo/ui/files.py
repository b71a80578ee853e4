"""The one folder the running page writes into, swept on a schedule and removed at shutdown.

Gradio's cache (uploads, examples and files served to the page) lives in ``gradio/``; every
other temporary file of the process (``tempfile``'s default folder: exports, the example
images before Gradio caches them, the upload parser's spool files) in ``tmp/``. Gradio's
own ``delete_cache`` deletes the files it made, not their folders, and never looks at
``tmp/``: ``sweep`` deletes what is older than the age limit in ``tmp/`` and every folder
left empty, and shutdown removes the whole folder.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from gradio.utils import get_upload_folder, is_in_or_equal

from epee_demo.errors import InputError


class AppFolder:
    """A fresh folder under the system's temporary folder (or at ``root``), with ``gradio/`` and ``tmp/``."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="epee-demo-"))
        self.gradio, self.tmp = self.root / "gradio", self.root / "tmp"
        for folder in (self.gradio, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        atexit.register(self.remove)  # also when the page is built but never served

    def use_for_gradio(self) -> None:
        """Send Gradio's cache into the folder (Gradio reads it when Blocks and their app are made)."""
        os.environ["GRADIO_TEMP_DIR"] = str(self.gradio)

    def use_for_process(self) -> None:
        """Send Gradio's cache and every ``tempfile`` default of this process into the folder:
        for the server process only (``app.py``), not for a process that runs other work too."""
        self.use_for_gradio()
        tempfile.tempdir = str(self.tmp)

    def sweep(self, max_age: float) -> int:
        """Delete the files in ``tmp/`` and the empty folders anywhere that are older than ``max_age``
        seconds; returns the number of files deleted. Gradio's files are left to ``delete_cache``
        (it keeps the example files the page needs)."""
        cutoff, deleted = time.time() - max_age, 0
        for part in (self.tmp, self.gradio):
            for folder, _, files in os.walk(part, topdown=False):
                emptied = False  # a folder this sweep emptied goes too (deleting made it look new)
                for name in files if part == self.tmp else ():
                    path = Path(folder, name)
                    with contextlib.suppress(FileNotFoundError):
                        if path.lstat().st_mtime < cutoff:
                            path.unlink()
                            deleted += 1
                            emptied = True
                with contextlib.suppress(OSError):
                    if Path(folder) != part and (emptied or Path(folder).stat().st_mtime < cutoff):
                        Path(folder).rmdir()  # only when empty
        return deleted

    def remove(self) -> None:
        """Delete the folder; the process's defaults go back to the system's when they pointed here."""
        if tempfile.tempdir == str(self.tmp):
            tempfile.tempdir = None
        if os.environ.get("GRADIO_TEMP_DIR") == str(self.gradio):
            del os.environ["GRADIO_TEMP_DIR"]
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def swept(app, every: float, max_age: float):
    """The served app's lifespan (through Gradio's ``app_kwargs``): sweep the page's ``AppFolder``
    (``blocks.app_folder``) every ``every`` seconds, and remove it at shutdown."""
    folder: AppFolder = app.get_blocks().app_folder

    async def loop():
        while True:
            await asyncio.sleep(every)
            await asyncio.to_thread(folder.sweep, max_age)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        folder.remove()


def uploaded_path(upload, what: str = "an image") -> str:
    """The server path of a file uploaded to this app (a path string or Gradio's file data, as sent);
    anything outside the app's upload folder is refused, so a caller cannot name a server file.
    ``what`` names what was asked for, in the messages ("an image", "a CSV of notes or a zip of images")."""
    path = upload.get("path") if isinstance(upload, dict) else getattr(upload, "path", upload)
    if not isinstance(path, str) or not path:
        raise InputError(f"Please upload {what} (nothing was given).")
    if "://" in path or not is_in_or_equal(path, get_upload_folder()):
        raise InputError(f"The file must be {what} uploaded to this demo.")
    return path
