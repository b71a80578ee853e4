"""Start-up time of the page: launch ``app.py`` and time until its ``/config`` first answers.

    python scripts/bench_startup.py [--port 7870] [--repeats 1]

Prints one line per launch (seconds from process start to the first answered ``/config``) and
the models the page was built over; the server is stopped after each launch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_to_config(port: int, limit: float = 600.0) -> float:
    """Seconds from launching app.py to its first answered /config."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - start < limit:
            if server.poll() is not None:
                raise SystemExit(f"app.py exited with {server.returncode}: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as reply:
                    if reply.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"no /config answer within {limit:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from epee_demo.model.registry import shipped_models

    print("models:", ", ".join(shipped_models()))
    for run in range(args.repeats):
        print(f"launch {run + 1}: /config answered {time_to_config(args.port):.1f} s after launch")


if __name__ == "__main__":
    main()
