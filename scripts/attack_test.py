"""Hostile-visitor test of the page: bounded attacks on loopback, with another visitor's view of each.

Starts ``app.py`` (from ``--root``, default this checkout) on a free loopback port with a
temporary folder of its own as ``TMPDIR``, then runs each attack for at most a few seconds and a
fixed number of calls while one other visitor ("the victim") keeps analyzing notes and moving a
slider. For each attack it reports the victim's analysis and slider p95 latency and refusals,
what the attacker saw, the CPU seconds the server and the attacking process spent during it
(both share this machine's cores; a remote attacker's would not), and the server's resident
memory (RSS) before and after. It also counts what the server wrote into the log (a marker word
sent in malformed calls) and leaves on disk. The attackers that send many requests speak HTTP
from one thread (httpx, asyncio), as a hostile client needs no client library.

    python scripts/attack_test.py                     # every attack, the shipped models in assets/
    python scripts/attack_test.py --only flood,regex  # some of them
    python scripts/attack_test.py --out attacks.json

Nothing is sent anywhere but 127.0.0.1. Exits 1 when a target is missed: the victim's analysis
p95 under 2 s and slider p95 under 300 ms with no refusal during any attack, RSS after the
20-client load under 1.5 GB, no marker in the log and nothing left in the temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MARKER = "Qwxzyvorbian-5521"  # a word no file on this machine holds unless we sent it
NOTE = ("Crushing chest pain radiating to the left arm, diaphoresis; ECG shows ST elevation in leads "
        "II, III and aVF. Troponin raised.")
SLIDER = ("epee", 0.3, 3, 0.9, 0.05, "js", 1)  # rule, tau, patience, threshold, divergence tau, measure, layer
ANALYZE, MOVE, CHECK = "/analyze_organ_system", "/set_tau_organ_system", "/check_note_organ_system"
TARGETS = {"analysis_p95_s": 2.0, "slider_p95_s": 0.3, "rss_after_load_mb": 1536}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def start_app(root: Path, assets: str | None, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    tmp = work / "tmp"
    tmp.mkdir()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "TMPDIR": str(tmp),
           "PYTHONPATH": str(root)}
    env.pop("GRADIO_TEMP_DIR", None)
    if assets:
        env["EPEE_ASSETS_DIR"] = str(Path(assets).resolve())
    log = open(work / "app.log", "w")
    server = subprocess.Popen([sys.executable, str(root / "app.py")], cwd=work, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with code {server.returncode}; see {work / 'app.log'}")
        try:
            with urllib.request.urlopen(f"{url}/config", timeout=5):
                return server, url
        except OSError:
            time.sleep(1.0)
    raise TimeoutError("the app did not start within 300 s")


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def timed(call) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        call()
        return time.perf_counter() - started, ""
    except Exception as err:  # noqa: BLE001 - every failure is counted
        return time.perf_counter() - started, f"{type(err).__name__}: {err}"[:200]


async def _victim_calls(url: str, ready, stop) -> list:
    import httpx

    from page_client import PageSession, page_config

    async def timed_call(session, *values) -> tuple[float, str]:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(session.call(*values), 60)
            return time.perf_counter() - started, ""
        except Exception as err:  # noqa: BLE001 - every failure is counted
            return time.perf_counter() - started, f"{type(err).__name__}: {err}"[:200]

    async with httpx.AsyncClient(timeout=60) as http:
        victim = PageSession(http, url, await page_config(http, url))
        await victim.call(ANALYZE, NOTE, "epee")  # warm: a trace in the session
        ready.set()
        calls = []
        while not stop.is_set():
            calls.append(("analysis", *await timed_call(victim, ANALYZE, NOTE, "epee")))
            for _ in range(3):
                if stop.is_set():
                    break
                calls.append(("slider", *await timed_call(victim, MOVE, *SLIDER)))
                await asyncio.sleep(0.1)
    return calls


def victim_loop(url: str, ready, stop, out) -> None:
    """Another visitor, in a process of its own (so the attacker's threads cannot slow its client),
    speaking the page's protocol as the browser does (``page_client``): analyzes a note, then moves
    the tau slider three times, again and again until ``stop`` is set."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    out.put(asyncio.run(_victim_calls(url, ready, stop)))


def during(url: str, attack, server_pid: int) -> dict:
    """Run ``attack()`` while a victim works; the victim's figures, the attack's own, and the CPU
    seconds the server and this (attacking) process spent during the attack."""
    context = multiprocessing.get_context("spawn")
    ready, stop, out = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=victim_loop, args=(url, ready, stop, out), daemon=True)
    process.start()
    if not ready.wait(timeout=180):
        raise TimeoutError("the victim could not start")
    time.sleep(0.5)
    server_cpu, attacker_cpu, started = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    load_before = round(os.getloadavg()[0], 1)
    attacker = attack()
    stop.set()
    row = {"attacker": attacker, "seconds": round(time.perf_counter() - started, 1),
           "load_average_1min": [load_before, round(os.getloadavg()[0], 1)],
           "server_cpu_s": round(cpu_seconds(server_pid) - server_cpu, 2),
           "attacker_cpu_s": round(time.process_time() - attacker_cpu, 2)}
    calls = out.get(timeout=180)
    process.join(timeout=30)
    for kind in ("analysis", "slider"):
        ok = [s for k, s, e in calls if k == kind and not e]
        errors = [e for k, s, e in calls if k == kind and e]
        row[f"victim_{kind}_calls"] = len(ok) + len(errors)
        row[f"victim_{kind}_p95_s"] = round(float(np.percentile(ok, 95)), 3) if ok else None
        row[f"victim_{kind}_refused"] = len(errors)
        if errors:
            row[f"victim_{kind}_first_error"] = errors[0]
    return row


def no_attack(seconds: float) -> dict:
    """The baseline: the victim alone for ``seconds``."""
    time.sleep(seconds)
    return {}


def attack_regex(url: str, seconds: float) -> dict:
    """Identifier check on "1." * 40,000 (80,000 characters), 5 calls one after another."""
    attacker = client(url)
    times, errors = [], []
    deadline = time.monotonic() + seconds
    for _ in range(5):
        if time.monotonic() > deadline:
            break
        took, error = timed(lambda: attacker.predict("1." * 40_000, api_name=CHECK))
        times.append(round(took, 2))
        errors += [error] if error else []
    return {"calls": len(times), "seconds_each": times, "errors": len(errors)}


def attack_flood(url: str, seconds: float) -> dict:
    """Analyses from one session as fast as the server takes them, 230 at a time, kept topped up for
    ``seconds`` (at most 1,000 sent): raw joins of the queue, as a hostile client needs no client
    library (and ``gradio_client``'s thread per call would load this machine's cores, not a remote
    attacker's)."""
    import httpx

    with httpx.Client(timeout=30) as http:
        config = http.get(f"{url}/config").json()
        index = next(d["id"] for d in config["dependencies"] if f"/{d.get('api_name')}" == ANALYZE)
        body = {"data": [NOTE, None, "epee"], "fn_index": index, "session_hash": "flood-attacker",
                "event_data": None, "trigger_id": None}
        codes: dict[int, int] = {}
        sent = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and sent < 1000:
            for _ in range(min(230, 1000 - sent)):
                code = http.post(f"{url}/gradio_api/queue/join", json=body).status_code
                codes[code] = codes.get(code, 0) + 1
                sent += 1
            time.sleep(0.2)
    return {"sent": sent, "accepted": codes.get(200, 0), "refused_or_limited": sent - codes.get(200, 0)}


async def _connect(http, url: str) -> dict:
    """What a client does as it connects: the page's config and its full API description (as the
    "Use via API" view reads it); the config."""
    config = (await http.get(f"{url}/config")).json()
    (await http.get(f"{url}/gradio_api/info", params={"all_endpoints": "True"})).raise_for_status()
    return config


def _analysis_index(config: dict) -> int:
    return next(d["id"] for d in config["dependencies"] if f"/{d.get('api_name')}" == ANALYZE)


def attack_big_notes(url: str, seconds: float, clients: int = 20, megabytes: int = 10) -> dict:
    """``clients`` sessions connect and each send an analysis of a ``megabytes`` MB note, in parallel."""
    import httpx

    note = (NOTE + " ") * (megabytes * 1_000_000 // (len(NOTE) + 1))

    async def one(http, index: int) -> int:
        config = await _connect(http, url)
        body = json.dumps({"data": [note, None, "epee"], "fn_index": _analysis_index(config),
                           "session_hash": f"big-note-{index}", "event_data": None, "trigger_id": None})
        try:
            reply = await http.post(f"{url}/gradio_api/queue/join", content=body,
                                    headers={"content-type": "application/json"})
        except httpx.HTTPError:  # refused unread: the server closes the connection while the note is sent
            return 0
        return reply.status_code

    async def run() -> list:
        async with httpx.AsyncClient(timeout=seconds + 60) as http:
            return await asyncio.wait_for(asyncio.gather(*(one(http, i) for i in range(clients))), seconds + 120)

    codes = asyncio.run(run())
    return {"sessions": clients, "accepted": codes.count(200), "refused_413": codes.count(413),
            "connection_closed": codes.count(0)}


def attack_page_fetch(url: str, seconds: float, clients: int = 20, rounds: int = 10) -> dict:
    """``clients`` connections each fetch the page, its config and its full API description
    ``rounds`` times (at most ``seconds``): what a visitor reloading the page in a loop sends."""
    import httpx

    paths = ("/", "/config", "/gradio_api/info?all_endpoints=True")
    deadline = time.monotonic() + seconds

    async def one(http) -> list:
        codes = []
        for _ in range(rounds):
            if time.monotonic() > deadline:
                break
            for path in paths:
                codes.append((await http.get(f"{url}{path}")).status_code)
        return codes

    async def run() -> list:
        async with httpx.AsyncClient(timeout=seconds + 60) as http:
            return await asyncio.gather(*(one(http) for _ in range(clients)))

    codes = [code for codes in asyncio.run(run()) for code in codes]
    return {"requests": len(codes), "answered_200": codes.count(200)}


def attack_uploads(url: str, seconds: float, work: Path, count: int = 40, megabytes: int = 19) -> dict:
    """``count`` parallel uploads of a ``megabytes`` MB file named like a patient, not an image."""
    import httpx

    name = "Jane_Doe_1961-03-02.txt"
    blob = np.random.default_rng(0).integers(0, 256, megabytes * 1_000_000, dtype=np.uint8).tobytes()

    async def one(http) -> tuple[int, str]:
        try:
            reply = await http.post(f"{url}/gradio_api/upload", files={"files": (name, blob, "text/plain")})
        except httpx.HTTPError as err:  # a refused upload's connection may close while it is sent
            return 0, type(err).__name__
        return reply.status_code, reply.text[:200]

    async def run() -> list:
        async with httpx.AsyncClient(timeout=seconds + 60) as http:
            return await asyncio.gather(*(one(http) for _ in range(count)))

    results = asyncio.run(run())
    stored = [r for code, r in results if code == 200]
    return {"uploads": count, "stored": len(stored), "refused_413": sum(code == 413 for code, _ in results),
            "connection_closed": sum(code == 0 for code, _ in results), "name_kept": sum("Jane_Doe" in r for r in stored)}


def attack_big_images(url: str, seconds: float, work: Path, count: int = 4) -> dict:
    """``count`` analyses, one after another, of a 6,000 x 6,000 grayscale PNG (36 megapixels)."""
    from gradio_client import handle_file
    from PIL import Image

    path = work / "big.png"
    gradient = np.tile(np.arange(6000, dtype=np.uint32) % 256, (6000, 1)).astype(np.uint8)
    Image.fromarray(gradient).save(path)
    attacker = client(url)
    times, errors = [], []
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        took, error = timed(lambda: attacker.predict(handle_file(str(path)), "epee", api_name="/analyze_pneumonia"))
        times.append(round(took, 2))
        errors += [error] if error else []
    return {"analyses": len(times), "seconds_each": times, "errors": len(errors),
            "first_error": errors[0] if errors else ""}


def twenty_clients(url: str, clients: int = 20, requests: int = 10) -> dict:
    """The ordinary load: ``clients`` sessions, each an analysis then a mix of slider moves and analyses."""
    def one(index):
        rng = np.random.default_rng(index)
        c = client(url)
        errors = 0
        for step in range(requests):
            if step == 0 or rng.random() < 0.3:
                _, error = timed(lambda: c.predict(NOTE, "epee", api_name=ANALYZE))
            else:
                _, error = timed(lambda: c.predict(*SLIDER, api_name=MOVE))
            errors += bool(error)
        return errors

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        errors = sum(pool.map(one, range(clients)))
    return {"sessions": clients, "calls": clients * requests, "errors": errors}


def leaks_to_log(url: str) -> dict:
    """Malformed calls carrying the marker: too few inputs, the note in a slider's slot, a surrogate."""
    import httpx

    bodies = [
        (ANALYZE, {"data": [f"note {MARKER}"]}),
        (MOVE, {"data": ["epee", f"note {MARKER}", 3, 0.9, 0.05, "js", 1]}),
        (MOVE, {"data": [f"note {MARKER}", 0.2, 3, 0.9, 0.05, "js", 1]}),
        (MOVE, {"data": [f"{MARKER}"]}),
        (ANALYZE, {"data": [f"note {MARKER}", ["epee"]]}),
        (CHECK, {"data": [[f"{MARKER}"]]}),
    ]
    replies = []
    for api, body in bodies:
        try:
            start = httpx.post(f"{url}/gradio_api/call{api}", json=body, timeout=30)
            event = start.json().get("event_id") if start.status_code == 200 else None
            text = httpx.get(f"{url}/gradio_api/call{api}/{event}", timeout=30).text if event else start.text
        except Exception as err:  # noqa: BLE001
            text = f"{type(err).__name__}"
        replies.append(text)
    return {"malformed_calls": len(bodies), "marker_in_replies": sum(MARKER in r for r in replies)}


def exports(url: str, count: int = 11) -> dict:
    c = client(url)
    errors = 0
    for _ in range(count):
        _, error = timed(lambda: c.predict("organ-system", "test", "epee", 0.2, 3, 0.9, 0.05, "js", 1,
                                           api_name="/explore_export_figure"))
        errors += bool(error)
    return {"exports": count, "errors": errors}


def folder_size(folder: Path) -> tuple[int, float]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), round(sum(p.stat().st_size for p in files) / 1e6, 1)


ATTACKS = ("baseline", "regex", "flood", "big_notes", "page_fetch", "uploads", "big_images")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(ROOT), help="checkout whose app.py to start (default: this one)")
    parser.add_argument("--assets", help="models folder (default: the checkout's assets/)")
    parser.add_argument("--only", default=",".join(ATTACKS), help=f"attacks to run, of {','.join(ATTACKS)}")
    parser.add_argument("--seconds", type=float, default=15.0, help="longest time one attack runs")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args(argv)
    chosen = [a for a in args.only.split(",") if a]
    if any(a not in ATTACKS for a in chosen) or not 1 <= args.seconds <= 60:  # --only "" runs the checks alone
        parser.error(f"--only takes {','.join(ATTACKS)}; --seconds 1..60")
    root = Path(args.root).resolve()
    work = Path(tempfile.mkdtemp(prefix="epee-attack-"))
    server, url = start_app(root, args.assets or str(root / "assets"), work)
    print(f"app at {url}, log {work / 'app.log'}", file=sys.stderr, flush=True)
    report: dict = {"rss_at_start_mb": rss_mb(server.pid), "load_average_at_start": os.getloadavg(), "attacks": {}}
    try:
        report["rss_idle_mb"] = rss_mb(server.pid)
        for name in chosen:
            before = rss_mb(server.pid)
            attack = {
                "baseline": lambda: no_attack(min(args.seconds, 10.0)),
                "regex": lambda: attack_regex(url, args.seconds),
                "flood": lambda: attack_flood(url, args.seconds),
                "big_notes": lambda: attack_big_notes(url, args.seconds),
                "page_fetch": lambda: attack_page_fetch(url, args.seconds),
                "uploads": lambda: attack_uploads(url, args.seconds, work),
                "big_images": lambda: attack_big_images(url, args.seconds, work),
            }[name]
            row = during(url, attack, server.pid)
            row.update(rss_before_mb=before, rss_after_mb=rss_mb(server.pid))
            report["attacks"][name] = row
            print(name, json.dumps(row), file=sys.stderr, flush=True)
            time.sleep(2)
        before = rss_mb(server.pid)
        report["load_20_clients"] = {**twenty_clients(url), "rss_before_mb": before, "rss_after_mb": rss_mb(server.pid)}
        report["log_leak"] = leaks_to_log(url)
        report["exports"] = exports(url)
        report["tmp_while_running"] = dict(zip(("files", "mb"), folder_size(work / "tmp")))
    finally:
        server.terminate()
        server.wait(timeout=60)
    log = (work / "app.log").read_text(errors="replace")
    report["log_leak"] = {**report.get("log_leak", {}), "marker_in_log": log.count(MARKER),
                          "paths_in_log": log.count(str(root)) + log.count(str(work))}
    report["tmp_after_shutdown"] = dict(zip(("files", "mb"), folder_size(work / "tmp")))
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    missed = [name for name, row in report["attacks"].items() if name != "baseline"
              if row["victim_analysis_refused"] or row["victim_slider_refused"]
              or (row["victim_analysis_p95_s"] or 0) > TARGETS["analysis_p95_s"]
              or (row["victim_slider_p95_s"] or 0) > TARGETS["slider_p95_s"]]
    if report["load_20_clients"]["rss_after_mb"] > TARGETS["rss_after_load_mb"]:
        missed.append("memory after the 20-client load")
    if report["log_leak"]["marker_in_log"]:
        missed.append("user text in the log")
    if report["tmp_after_shutdown"]["files"]:
        missed.append("files left in the temporary folder")
    print("targets missed: " + (", ".join(missed) if missed else "none"))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
