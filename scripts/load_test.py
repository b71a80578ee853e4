"""Load test of the page: many concurrent gradio_client sessions analyzing and moving sliders.

Starts ``app.py`` on a free loopback port (or connects to ``--url``, loopback only), opens
``--clients`` sessions and has each do ``--requests`` calls: an analysis first, then a mix of
analyses and slider moves. Every reply is checked. It reports, per endpoint kind, the call
count, error count and p50/p95/max latency, separately the slider moves that were sent
while analyses were waiting for the model (a slider handler must never wait behind them), and
the started app's resident memory (RSS) before and after the load.

    python scripts/load_test.py                       # the shipped models in assets/
    python scripts/load_test.py --assets /tmp/models  # another models folder
    python scripts/load_test.py --url http://127.0.0.1:7860 --out load.json

Exits 1 when any call failed or did not finish in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from epee_demo.data.examples import EXAMPLE_NOTES  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CONTROL_DEFAULTS = {"tau": 0.2, "patience": 3, "threshold": 0.9, "divergence_tau": 0.05, "measure": "js", "layer": 1}


@dataclass
class Call:
    """One timed call: its kind, latency, how many analyses were in flight when it was sent, and any error."""

    kind: str
    seconds: float
    analyses_in_flight: int
    error: str = ""


@dataclass
class Recorder:
    """Thread-safe record of every call and of the analyses in flight."""

    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def analysis_started(self) -> int:
        with self.lock:
            self.in_flight += 1
            return self.in_flight - 1

    def analysis_ended(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def current(self) -> int:
        with self.lock:
            return self.in_flight


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{url}/config", timeout=5):
                return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


def start_app(assets: str | None, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``app.py`` in a subprocess on a free loopback port; returns the process and its URL."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    if assets:
        env["EPEE_ASSETS_DIR"] = str(Path(assets).resolve())
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}"


def rss_mb(pid: int) -> float | None:
    """A process's resident memory in MB, from /proc (Linux; None elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
    return round(int(line.split()[1]) / 1024, 1)


def upload_image(path: Path, seed: int) -> Path:
    """A random 64x64 grayscale PNG to upload (the load test sends no real image)."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def run_session(url: str, task: str, kind: str, index: int, requests: int, analyze_share: float,
                deadline: float, call_timeout: float, recorder: Recorder, image: Path | None) -> None:
    """One client session: an analysis, then a mix of analyses and slider moves, each checked."""
    from gradio_client import Client, handle_file

    key = task.replace("-", "_")
    rng = np.random.default_rng(index)
    try:
        client = Client(url, verbose=False)
    except Exception as err:  # noqa: BLE001 - a session that cannot connect is an error to report
        recorder.add(Call("connect", 0.0, 0, f"{type(err).__name__}: {err}"))
        return
    for step in range(requests):
        if time.monotonic() > deadline:
            recorder.add(Call("skipped", 0.0, 0, "load-test deadline reached"))
            return
        analyze = step == 0 or rng.random() < analyze_share
        if analyze:
            payload = (handle_file(str(image)), "epee") if kind == "image" else (
                EXAMPLE_NOTES[int(rng.integers(len(EXAMPLE_NOTES)))].text, "epee")  # the page's events take every value
            api_name, summary_at = f"/analyze_{key}", 1
        else:
            control = "tau" if rng.random() < 0.5 else "patience"
            values = {**CONTROL_DEFAULTS, "tau": round(float(rng.random()), 2),
                      "patience": int(rng.integers(1, 4))}
            payload, api_name, summary_at = ("epee", *values.values()), f"/set_{control}_{key}", 0
        waiting = recorder.analysis_started() if analyze else recorder.current()
        started = time.perf_counter()
        error = ""
        try:
            result = client.submit(*payload, api_name=api_name).result(timeout=call_timeout)
            if "stops at" not in str(result[summary_at]):
                error = f"unexpected reply: {str(result[summary_at])[:120]!r}"
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            error = f"{type(err).__name__}: {err}"[:300]
        finally:
            if analyze:
                recorder.analysis_ended()
        recorder.add(Call("analyze" if analyze else "slider", time.perf_counter() - started, waiting, error))
    client.close()


def summarize(calls: list[Call], model_concurrency: int) -> dict:
    """Per kind: count, errors and latency percentiles (ms); plus slider moves sent while analyses queued."""
    groups = {
        "analyze": [c for c in calls if c.kind == "analyze"],
        "slider": [c for c in calls if c.kind == "slider"],
        "slider while analyses queued": [c for c in calls if c.kind == "slider"
                                         and c.analyses_in_flight > model_concurrency],
    }
    table = {}
    for name, group in groups.items():
        ok = np.array([c.seconds for c in group if not c.error]) * 1000
        table[name] = {
            "count": len(group),
            "errors": sum(1 for c in group if c.error),
            "p50_ms": round(float(np.percentile(ok, 50)), 1) if ok.size else None,
            "p95_ms": round(float(np.percentile(ok, 95)), 1) if ok.size else None,
            "max_ms": round(float(ok.max()), 1) if ok.size else None,
        }
    return table


def format_table(table: dict) -> str:
    lines = [f"{'endpoint kind':<30}{'calls':>7}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"]
    for name, row in table.items():
        cells = [f"{row[k]:>10.1f}" if row[k] is not None else f"{'-':>10}" for k in ("p50_ms", "p95_ms", "max_ms")]
        lines.append(f"{name:<30}{row['count']:>7}{row['errors']:>8}{''.join(cells)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app to drive (loopback only); default: start app.py")
    parser.add_argument("--assets", help="models folder for the started app (default: assets/)")
    parser.add_argument("--task", default="organ-system", help="whose Analyze tab to drive (default: organ-system)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="calls per client")
    parser.add_argument("--analyze-share", type=float, default=0.3, help="share of calls after the first that analyze")
    parser.add_argument("--model-concurrency", type=int, default=2,
                        help="analyses the app runs at once (more in flight means some are queued)")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds for all sessions together")
    parser.add_argument("--call-timeout", type=float, default=120.0, help="seconds one call may take")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds for the app to start")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 200):
        parser.error("--clients must be 1..64 and --requests 1..200")

    from epee_demo.model.registry import shipped_models

    models = shipped_models()
    if args.task not in models:
        parser.error(f"--task must be one of {', '.join(models)}")
    kind = models[args.task].spec.modality
    work = Path(tempfile.mkdtemp(prefix="epee-load-"))
    server = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            parser.error("--url must be a loopback address (127.0.0.1 or localhost)")
        url = args.url.rstrip("/")
    else:
        server, url = start_app(args.assets, work / "app.log")
        print(f"starting app.py at {url} (log: {work / 'app.log'}) ...", file=sys.stderr, flush=True)
    try:
        wait_until_up(url, server, args.start_timeout)
        image = upload_image(work / "upload.png", 0) if kind == "image" else None
        recorder = Recorder()
        rss_before = rss_mb(server.pid) if server is not None else None
        started = time.monotonic()
        deadline = started + args.time_limit
        threads = [
            threading.Thread(target=run_session, daemon=True, args=(
                url, args.task, kind, i, args.requests, args.analyze_share, deadline, args.call_timeout,
                recorder, image))
            for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline + args.call_timeout - time.monotonic()))
        wall = time.monotonic() - started
        unfinished = sum(thread.is_alive() for thread in threads)
        rss_after = rss_mb(server.pid) if server is not None else None
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    with recorder.lock:
        calls = list(recorder.calls)
    table = summarize(calls, args.model_concurrency)
    failures = [c for c in calls if c.error]
    report = {
        "url": url, "task": args.task, "clients": args.clients, "requests_per_client": args.requests,
        "analyze_share": args.analyze_share, "wall_s": round(wall, 1), "calls": len(calls),
        "errors": len(failures), "unfinished_sessions": unfinished, "by_kind": table,
        "rss_before_mb": rss_before, "rss_after_mb": rss_after,
        "first_errors": sorted({c.error for c in failures})[:5],
    }
    print(format_table(table))
    print(f"{len(calls)} calls from {args.clients} sessions in {wall:.1f} s; {len(failures)} errors; "
          f"{unfinished} sessions unfinished; app RSS {rss_before} MB before, {rss_after} MB after")
    for error in report["first_errors"]:
        print(f"  error: {error}")
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if failures or unfinished:
        print(f"app log and upload kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
