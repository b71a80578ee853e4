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

Given two ``--root`` checkouts it starts both and alternates the calls between them, so both meet
the same machine load; the load average is printed with the figures.

    python scripts/bench_round_trip.py [--root ../main --root .] [--calls 20] [--gradio-client]
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


async def page_protocol(servers: list[tuple[str, int]], calls: int) -> list[dict]:
    """Every figure of one light-client session per server (see the module docstring), by kind. With
    several servers the calls alternate between them, step by step, so each meets the same load."""
    async with httpx.AsyncClient(timeout=120) as http:
        sessions = [PageSession(http, url, await page_config(http, url)) for url, _ in servers]
        for session in sessions:
            await session.call(ANALYZE, NOTE, "epee")  # a trace in the session, the model warm
            for step in range(3):
                await session.call(MOVE, *slider(step))
            await http.post(f"{session.url}/gradio_api/profiling/clear")
        found = [{"rows": {"analysis": [], "slider": []}, "cpu": {"analysis": 0.0, "slider": 0.0}, "reply_bytes": 0,
                  "slider_queued": session.endpoints[MOVE].queued} for session in sessions]
        for step in range(calls):
            for (_, pid), session, figures in zip(servers, sessions, found):
                for kind, api, values in (("analysis", ANALYZE, (NOTE, "epee")), ("slider", MOVE, slider(step))):
                    before = cpu_seconds(pid)
                    outputs = await session.call(api, *values)
                    figures["cpu"][kind] += cpu_seconds(pid) - before
                    figures["rows"][kind].append((session.last.done, session.last.started))
                    if kind == "slider":
                        figures["reply_bytes"] = len(json.dumps(outputs))
        for session, figures in zip(sessions, found):
            traces = (await http.get(f"{session.url}/gradio_api/profiling/traces")).json()
            traces = traces if isinstance(traces, list) else traces.get("traces", [])
            figures["phases"] = {}
            for kind, api in (("analysis", ANALYZE), ("slider", MOVE)):
                mine = [t for t in traces if f"/{t.get('fn_name')}" == api]
                if mine:
                    figures["phases"][kind] = {name: round(float(np.median([t[f"{name}_ms"] for t in mine])), 1)
                                               for name in ("queue_wait", "fn_call", "postprocess", "total")}
    return found


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
    parser.add_argument("--root", action="append",
                        help="checkout whose app.py to start (default: this one); give it twice to compare two, "
                             "their calls alternating")
    parser.add_argument("--calls", type=int, default=20, help="analyses and as many slider moves (default 20)")
    parser.add_argument("--gradio-client", action="store_true",
                        help="also time the calls through gradio_client (against the first root)")
    args = parser.parse_args(argv)
    roots = [Path(r).resolve() for r in (args.root or [Path(__file__).resolve().parent.parent])]
    work = Path(tempfile.mkdtemp(prefix="epee-round-trip-"))
    servers = [start_app(None, work / f"app{i}.log", root=root, extra_env={"GRADIO_PROFILING": "1"})
               for i, root in enumerate(roots)]
    try:
        for server, url in servers:
            wait_until_up(url, server, 300)
        load_before = os.getloadavg()[0]
        found = asyncio.run(page_protocol([(url, server.pid) for server, url in servers], args.calls))
        client_times = with_gradio_client(servers[0][1], args.calls) if args.gradio_client else None
        load_after = os.getloadavg()[0]
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait(timeout=60)
    print(f"{args.calls} calls of each kind per checkout; load average {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} cores)")
    for root, figures in zip(roots, found):
        print(f"{root}: slider moves {'queued' if figures['slider_queued'] else 'skip the queue'}; "
              f"slider reply {figures['reply_bytes']} bytes")
        for kind, rows in figures["rows"].items():
            done = [d for d, _ in rows]
            started = [s for _, s in rows if s is not None]
            line = f"  {kind:<9} round trip {percentiles(done)}"
            if started:
                line += f"; server started it at {percentiles(started)}"
            line += f"; server CPU {1000 * figures['cpu'][kind] / len(rows):.1f} ms per call"
            print(line)
            if kind in figures["phases"]:
                print(f"  {'':<9} server phases (median ms): {figures['phases'][kind]}")
            if client_times and root == roots[0]:
                print(f"  {'':<9} through gradio_client: {percentiles(client_times[kind])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
