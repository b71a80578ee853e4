"""Where one visitor's round trip goes: analyses and slider moves, one call at a time, against ``app.py``.

Starts ``app.py`` of ``--root`` (default: this checkout) on its shipped models in a process of its own
on loopback, with Gradio's profiler on (``GRADIO_PROFILING=1``), and from one session alternates
``--calls`` analyses of an example note with slider moves, each waited for. For each kind it prints:

- the round trip (p50/p95 ms) as the browser's protocol sees it (``page_client``: one POST for an
  event that skips the queue; join, then the event stream, for a queued one), and for a queued event
  when the server started it (``process_starts``);
- the server process's CPU time per call (from /proc: what the call costs the machine, whatever
  else runs on it) and, for queued events, the server's own phases (queue wait, the handler,
  Gradio's postprocessing of the outputs);
- with ``--gradio-client``, the same calls through ``gradio_client`` (its threads and 50 ms polling).

Run it on two checkouts back to back to compare them under the same machine load; the load average
is printed with the figures.

    python scripts/bench_round_trip.py [--root ../other-checkout] [--calls 20] [--gradio-client]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_test import cpu_seconds, start_app, wait_until_up  # noqa: E402
from page_client import PageSession, page_config  # noqa: E402

NOTE = ("Crushing chest pain radiating to the left arm, diaphoresis; ECG shows ST elevation in leads II, III and "
        "aVF. Troponin raised.")
ANALYZE, MOVE = "/analyze_organ_system", "/set_tau_organ_system"


def slider(step: int) -> tuple:
    return ("epee", round(0.05 * (step % 10), 2), 3, 0.9, 0.05, "js", 1)  # rule, tau, patience, threshold, ...


def percentiles(values) -> str:
    ms = 1000 * np.asarray(values, dtype=float)
    return f"p50 {np.percentile(ms, 50):6.1f} ms, p95 {np.percentile(ms, 95):6.1f} ms"


async def page_protocol(url: str, pid: int, calls: int) -> dict:
    """Every figure of one light-client session (see the module docstring), by kind."""
    async with httpx.AsyncClient(timeout=120) as http:
        session = PageSession(http, url, await page_config(http, url))
        await session.call(ANALYZE, NOTE, "epee")  # a trace in the session, the model warm
        for step in range(3):
            await session.call(MOVE, *slider(step))
        await http.post(f"{url}/gradio_api/profiling/clear")
        rows = {"analysis": [], "slider": []}
        cpu = {"analysis": 0.0, "slider": 0.0}
        reply_bytes = 0
        for step in range(calls):
            for kind, api, values in (("analysis", ANALYZE, (NOTE, "epee")), ("slider", MOVE, slider(step))):
                before = cpu_seconds(pid)
                outputs = await session.call(api, *values)
                cpu[kind] += cpu_seconds(pid) - before
                timing = session.last
                rows[kind].append((timing.done, timing.started))
                if kind == "slider":
                    reply_bytes = len(json.dumps(outputs))
        traces = (await http.get(f"{url}/gradio_api/profiling/traces")).json()
        queued = session.endpoints[MOVE].queued
    traces = traces if isinstance(traces, list) else traces.get("traces", [])
    phases = {}
    for kind, api in (("analysis", ANALYZE), ("slider", MOVE)):
        mine = [t for t in traces if f"/{t.get('fn_name')}" == api]
        if mine:
            phases[kind] = {name: round(float(np.median([t[f"{name}_ms"] for t in mine])), 1)
                            for name in ("queue_wait", "fn_call", "postprocess", "total")}
    return {"rows": rows, "cpu": cpu, "phases": phases, "reply_bytes": reply_bytes, "slider_queued": queued}


def with_gradio_client(url: str, calls: int) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict(NOTE, "epee", api_name=ANALYZE)
    times = {"analysis": [], "slider": []}
    for step in range(calls):
        for kind, api, values in (("analysis", ANALYZE, (NOTE, "epee")), ("slider", MOVE, slider(step))):
            started = time.perf_counter()
            client.predict(*values, api_name=api)
            times[kind].append(time.perf_counter() - started)
    client.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--calls", type=int, default=20, help="analyses and as many slider moves (default 20)")
    parser.add_argument("--gradio-client", action="store_true", help="also time the calls through gradio_client")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    work = Path(tempfile.mkdtemp(prefix="epee-round-trip-"))
    server, url = start_app(None, work / "app.log", root=root, extra_env={"GRADIO_PROFILING": "1"})
    try:
        wait_until_up(url, server, 300)
        found = asyncio.run(page_protocol(url, server.pid, args.calls))
        client_times = with_gradio_client(url, args.calls) if args.gradio_client else None
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"root {root}; slider moves {'queued' if found['slider_queued'] else 'skip the queue'}; "
          f"{args.calls} calls of each kind; load average {os.getloadavg()[0]:.1f}")
    for kind, rows in found["rows"].items():
        done = [d for d, _ in rows]
        started = [s for _, s in rows if s is not None]
        line = f"{kind:<9} round trip {percentiles(done)}"
        if started:
            line += f"; server started it at {percentiles(started)}"
        line += f"; server CPU {1000 * found['cpu'][kind] / len(rows):.1f} ms per call"
        print(line)
        if kind in found["phases"]:
            print(f"{'':<9} server phases (median ms): {found['phases'][kind]}")
        if client_times:
            print(f"{'':<9} through gradio_client: {percentiles(client_times[kind])}")
    print(f"slider reply {found['reply_bytes']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
