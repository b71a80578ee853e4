"""EPEE demo: early-exit transformers in biomedicine (Gradio app; also the Hugging Face Space entry).

``python app.py`` serves the page on the models in ``assets/`` (or ``$EPEE_ASSETS_DIR``).
A missing or corrupt model file stops it with one line that names the file. A SIGTERM (how
a Space or a process manager stops it) shuts the server down like Ctrl-C does, so the page's
temporary folder is removed.
"""

import os
import signal
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import epee_demo.model.device  # noqa: E402,F401  (imports `spaces` on a Space before torch, as ZeroGPU requires)
from epee_demo.errors import CheckpointError  # noqa: E402
from epee_demo.ui import build_demo, launch_options  # noqa: E402
from epee_demo.ui.files import AppFolder  # noqa: E402

folder = AppFolder()
folder.use_for_process()  # everything this server writes goes there (swept, removed at shutdown)
try:
    demo = build_demo(folder=folder)
except CheckpointError as err:
    sys.exit(f"epee-demo cannot start: {err}")

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # raise KeyboardInterrupt: Gradio closes the server
    demo.launch(**launch_options())
