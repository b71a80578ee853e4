"""Load test of the page: many concurrent sessions analyzing and moving sliders, with pass/fail per target.

Starts ``app.py`` (of ``--root``, default this checkout) in a process of its own on a free loopback
port (or drives ``--url``, loopback only), opens ``--clients`` sessions and has each make
``--requests`` calls one after another: an analysis first, then a mix of analyses and slider moves.
The sessions speak the page's protocol as the browser does (``page_client``: one POST for an event
that skips the queue, join and event stream for a queued one), all from one thread of this process,
so the load script costs the shared CPU little. Every reply is checked. It reports, per kind of
call, the count, errors and p50/p95/max latency; separately the slider moves sent while analyses
were waiting for the model; the load average before and after; the started app's resident memory
(RSS) before and after and its CPU time; and whether each target is met:

- no call fails; analysis p95 <= 2 s; slider p95 <= 150 ms round trip; RSS after the load < 1.5 GB.

    python scripts/load_test.py                       # the shipped models in assets/, 20 clients x 25 calls
    python scripts/load_test.py --root ../main        # another checkout's app.py, for a before/after
    python scripts/load_test.py --url http://127.0.0.1:7860 --out load.json

Exits 1 when a target is missed or a session did not finish. Timings are upper bounds on a machine
that runs other work: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from page_client import CallError, PageSession, page_config  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CONTROL_DEFAULTS = {"tau": 0.2, "patience": 3, "threshold": 0.9, "divergence_tau": 0.05, "measure": "js", "layer": 1}
TARGETS = {"analysis_p95_ms": 2000.0, "slider_p95_ms": 150.0, "rss_after_mb": 1536.0}


@dataclass
class Call:
    """One timed call: its kind, latency, how many analyses were in flight when it was sent, and any error."""

    kind: str
    seconds: float
    analyses_in_flight: int
    error: str = ""


@dataclass
class Recorder:
    """Every call, and the analyses in flight (one thread: no lock needed)."""

    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0


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


def start_app(assets: str | None, log_path: Path, root: Path = ROOT,
              extra_env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``root``'s ``app.py`` in a subprocess on a free loopback port; returns the process and its URL."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONPATH": str(root),
           **(extra_env or {})}
    if assets:
        env["EPEE_ASSETS_DIR"] = str(Path(assets).resolve())
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, str(root / "app.py")], cwd=root, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}"


def rss_mb(pid: int) -> float | None:
    """A process's resident memory in MB, from /proc (Linux; None elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
    return round(int(line.split()[1]) / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, all threads), from /proc (Linux; 0 elsewhere)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upload_image(path: Path, seed: int) -> Path:
    """A random 64x64 grayscale PNG to upload (the load test sends no real image)."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


async def uploaded(http: httpx.AsyncClient, url: str, image: Path) -> dict:
    """The image uploaded as the page's upload box does; the file data its events take."""
    with open(image, "rb") as handle:
        reply = await http.post(f"{url}/gradio_api/upload", files={"files": (image.name, handle, "image/png")})
    reply.raise_for_status()
    return {"path": reply.json()[0], "meta": {"_type": "gradio.FileData"}}


async def run_session(http: httpx.AsyncClient, url: str, config: dict, task: str, index: int, requests: int,
                      analyze_share: float, deadline: float, call_timeout: float, recorder: Recorder,
                      image: Path | None) -> None:
    """One client session: an analysis, then a mix of analyses and slider moves, each checked."""
    from epee_demo.data.examples import EXAMPLE_NOTES

    key = task.replace("-", "_")
    rng = np.random.default_rng(index)
    session = PageSession(http, url, config)
    upload = await uploaded(http, url, image) if image is not None else None
    for step in range(requests):
        if time.monotonic() > deadline:
            recorder.calls.append(Call("skipped", 0.0, 0, "load-test deadline reached"))
            return
        analyze = step == 0 or rng.random() < analyze_share
        if analyze:
            raw = upload if upload is not None else EXAMPLE_NOTES[int(rng.integers(len(EXAMPLE_NOTES)))].text
            payload, api_name, summary_at = (raw, "epee"), f"/analyze_{key}", 2  # trace state, notice, summary
        else:
            control = "tau" if rng.random() < 0.5 else "patience"
            values = {**CONTROL_DEFAULTS, "tau": round(float(rng.random()), 2), "patience": int(rng.integers(1, 4))}
            payload, api_name, summary_at = ("epee", *values.values()), f"/set_{control}_{key}", 1  # settings, summary
        waiting = recorder.in_flight
        recorder.in_flight += analyze
        started = time.perf_counter()
        error = ""
        try:
            outputs = await asyncio.wait_for(session.call(api_name, *payload), call_timeout)
            if "stops at" not in str(outputs[summary_at]):
                error = f"unexpected reply: {str(outputs[summary_at])[:120]!r}"
        except (CallError, httpx.HTTPError, asyncio.TimeoutError) as err:
            error = f"{type(err).__name__}: {err}"[:300]
        finally:
            recorder.in_flight -= analyze
        recorder.calls.append(Call("analyze" if analyze else "slider", time.perf_counter() - started, waiting, error))


async def drive(url: str, task: str, kind: str, args, recorder: Recorder, image: Path | None) -> int:
    """Every session at once; returns how many did not finish in time."""
    limits = httpx.Limits(max_connections=4 * args.clients, max_keepalive_connections=2 * args.clients)
    async with httpx.AsyncClient(timeout=args.call_timeout, limits=limits) as http:
        config = await page_config(http, url)
        deadline = time.monotonic() + args.time_limit
        sessions = [asyncio.create_task(run_session(
            http, url, config, task, i, args.requests, args.analyze_share, deadline, args.call_timeout, recorder,
            image)) for i in range(args.clients)]
        _, unfinished = await asyncio.wait(sessions, timeout=args.time_limit + args.call_timeout)
        for session in unfinished:
            session.cancel()
        return len(unfinished)


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


def verdicts(report: dict) -> dict[str, bool]:
    """Each target, met or not."""
    table = report["by_kind"]
    found = {
        "no call fails and every session finishes": report["errors"] == 0 and report["unfinished_sessions"] == 0,
        f"analysis p95 <= {TARGETS['analysis_p95_ms']:.0f} ms": (table["analyze"]["p95_ms"] or float("inf"))
        <= TARGETS["analysis_p95_ms"],
        f"slider p95 <= {TARGETS['slider_p95_ms']:.0f} ms": (table["slider"]["p95_ms"] or float("inf"))
        <= TARGETS["slider_p95_ms"],
    }
    if report["rss_after_mb"] is not None:
        found[f"RSS after the load < {TARGETS['rss_after_mb']:.0f} MB"] = report["rss_after_mb"] < TARGETS["rss_after_mb"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app to drive (loopback only); default: start app.py")
    parser.add_argument("--root", default=str(ROOT), help="checkout whose app.py to start (default: this one)")
    parser.add_argument("--assets", help="models folder for the started app (default: the checkout's assets/)")
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
        server, url = start_app(args.assets, work / "app.log", root=Path(args.root).resolve())
        print(f"starting {Path(args.root).resolve() / 'app.py'} at {url} (log: {work / 'app.log'}) ...",
              file=sys.stderr, flush=True)
    recorder = Recorder()
    try:
        wait_until_up(url, server, args.start_timeout)
        image = upload_image(work / "upload.png", 0) if kind == "image" else None
        rss_before = rss_mb(server.pid) if server is not None else None
        cpu_before = cpu_seconds(server.pid) if server is not None else 0.0
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        unfinished = asyncio.run(drive(url, args.task, kind, args, recorder, image))
        wall = time.monotonic() - started
        rss_after = rss_mb(server.pid) if server is not None else None
        server_cpu = cpu_seconds(server.pid) - cpu_before if server is not None else None
        load_after = os.getloadavg()[0]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    calls = recorder.calls
    table = summarize(calls, args.model_concurrency)
    failures = [c for c in calls if c.error]
    report = {
        "url": url, "root": str(Path(args.root).resolve()) if server is not None else None, "task": args.task,
        "clients": args.clients, "requests_per_client": args.requests, "analyze_share": args.analyze_share,
        "wall_s": round(wall, 1), "calls": len(calls), "errors": len(failures), "unfinished_sessions": unfinished,
        "by_kind": table, "rss_before_mb": rss_before, "rss_after_mb": rss_after,
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 1),
        "load_average_before": round(load_before, 2), "load_average_after": round(load_after, 2),
        "first_errors": sorted({c.error for c in failures})[:5],
    }
    report["targets"] = verdicts(report)
    print(format_table(table))
    print(f"{len(calls)} calls from {args.clients} sessions in {wall:.1f} s; {len(failures)} errors; "
          f"{unfinished} sessions unfinished; app RSS {rss_before} MB before, {rss_after} MB after; "
          f"app CPU {report['server_cpu_s']} s; load average {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} cores)")
    for error in report["first_errors"]:
        print(f"  error: {error}")
    for target, met in report["targets"].items():
        print(f"{'PASS' if met else 'FAIL'}  {target}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if not all(report["targets"].values()):
        print(f"app log kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
