"""What one visitor may send (``RequestGuard``), attacked through the launched page on loopback.

Each attack is bounded (a few calls, seconds) and followed by a check that another visitor is
served and that nothing sent reached the server log.
"""

import asyncio
import socket
import threading
import time

import httpx
import pytest
from gradio_client import Client, handle_file

from epee_demo.data.examples import EXAMPLE_NOTES
from epee_demo.limits import ANALYSES_PER_SESSION, MAX_REQUEST_BYTES
from epee_demo.ui import build_demo, guard, launch_options
from tests.conftest import launched_demo

MARKER = "Qwxzyvorbian-5521"  # a word nobody writes: found in the log only if the server printed what we sent
SLIDER = ("epee", 0.3, 3, 0.9, 0.05, "js", 1)


@pytest.fixture(scope="module")
def app(tiny_shipped_model, tiny_image_shipped_model):
    with launched_demo({"organ-system": tiny_shipped_model, "pneumonia": tiny_image_shipped_model}) as demo:
        yield demo


@pytest.fixture(scope="module")
def victim(app):
    victim = Client(app.local_url, verbose=False)
    assert "stops at" in victim.predict(EXAMPLE_NOTES[0].text, "epee", api_name="/analyze_organ_system")[1]
    return victim


def served(victim) -> None:
    assert "stops at" in victim.predict(*SLIDER, api_name="/set_tau_organ_system")[0]
    assert "stops at" in victim.predict(EXAMPLE_NOTES[1].text, "epee", api_name="/analyze_organ_system")[1]


def fn_index(app, api_name: str) -> int:
    return next(i for i, fn in app.fns.items() if fn.api_name == api_name)


def join(app, api_name: str, data: list, session: str, **extra) -> httpx.Response:
    body = {"data": data, "fn_index": fn_index(app, api_name), "session_hash": session, **extra}
    return httpx.post(f"{app.local_url}gradio_api/queue/join", json=body, timeout=30)


def test_a_body_over_the_cap_is_refused_before_it_is_read(app, victim):
    note = "Chest pain. " * (MAX_REQUEST_BYTES // 12 + 10)
    reply = httpx.post(f"{app.local_url}gradio_api/call/analyze_organ_system", json={"data": [note, None, "epee"]},
                       timeout=30)
    assert reply.status_code == 413 and f"larger than {MAX_REQUEST_BYTES // 1024} KB" in reply.text
    assert reply.headers["connection"] == "close"  # the rest is not received: the server closes the connection
    served(victim)


@pytest.fixture
def slow_analyses(monkeypatch, tiny_shipped_model):
    """Each analysis holds the model 1 s (the tiny model takes milliseconds, so a burst of
    joins would otherwise never find one still waiting; at 0.3 s a client's eight submissions,
    which it sends one by one, could each find the others done on a loaded machine)."""
    classifier = tiny_shipped_model.classifier
    real = classifier.trace_prepared

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier, "trace_prepared", slow)


def test_one_session_may_queue_only_a_few_analyses_and_slider_moves_still_pass(app, victim, slow_analyses):
    replies = [join(app, "analyze_organ_system", [EXAMPLE_NOTES[0].text, None, "epee"], "attacker")
               for _ in range(12)]
    refused = [r for r in replies if r.status_code == 422]
    assert len(replies) - len(refused) >= ANALYSES_PER_SESSION and refused
    assert "You have analyses waiting or running" in refused[0].json()["detail"][0]["message"]
    started = time.perf_counter()
    served(victim)
    assert time.perf_counter() - started < 30


def test_the_client_shows_the_waiting_message(app, victim, slow_analyses):
    attacker = Client(app.local_url, verbose=False)
    jobs = [attacker.submit(EXAMPLE_NOTES[0].text, "epee", api_name="/analyze_organ_system") for _ in range(8)]
    errors = []
    for job in jobs:
        try:
            job.result(timeout=60)
        except Exception as err:  # noqa: BLE001 - collecting the refusals
            errors.append(str(err))
    assert errors and all("You have analyses waiting or running" in e for e in errors)
    served(victim)


def test_an_unknown_endpoint_gets_a_message_not_a_server_error(app, victim):
    for index in (10_000, -1, "0", None, True):
        reply = httpx.post(f"{app.local_url}gradio_api/queue/join",
                           json={"data": [], "fn_index": index, "session_hash": "s"}, timeout=30)
        assert reply.status_code == 422 and "no such endpoint" in reply.text
    served(victim)


def test_no_address_is_looked_up_for_a_file_given_as_a_url(app, victim, monkeypatch):
    looked_up = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        looked_up.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    for path in ("http://wt18-probe.invalid/x.png", "https://wt18-probe.invalid/x.png"):
        payload = {"path": path, "url": path, "meta": {"_type": "gradio.FileData"}}
        reply = join(app, "analyze_pneumonia", [payload, None, "epee"], "url-session")
        assert reply.status_code == 422 and "does not fetch files from addresses" in reply.text
    assert not [host for host in looked_up if "invalid" in str(host)]
    served(victim)


def test_uploads_per_client_are_bounded(app, victim, monkeypatch):
    monkeypatch.setattr(guard, "MAX_UPLOAD_BYTES_PER_CLIENT", 64 * 1024)
    blob = b"\0" * (40 * 1024)
    replies = [httpx.post(f"{app.local_url}gradio_api/upload", files={"files": ("x.png", blob, "image/png")},
                          timeout=30) for _ in range(3)]
    assert replies[0].status_code == 200 and [r.status_code for r in replies[1:]] == [413, 413]
    assert "the limit is" in replies[1].text and replies[1].headers.get("connection") != "close"  # received: the page shows why
    assert replies[2].headers["connection"] == "close"  # told once: the next ones are not received
    served(victim)


def test_an_upload_over_the_file_cap_is_refused_from_its_size(app, victim, monkeypatch):
    monkeypatch.setattr(guard, "MAX_UPLOAD_BODY", 64 * 1024)
    reply = httpx.post(f"{app.local_url}gradio_api/upload", files={"files": ("x.png", b"\0" * 80 * 1024, "image/png")},
                       timeout=30)
    assert reply.status_code == 413 and "An upload is at most" in reply.text and reply.headers["connection"] == "close"
    served(victim)


def test_a_part_header_past_the_cap_ends_the_upload_unstored(app, victim):
    stored_before = {p for p in app.app_folder.gradio.rglob("*") if p.is_file()}
    name = "Jane_Doe_" + "x" * guard.MAX_PART_HEADERS + ".png"
    with pytest.raises(httpx.HTTPError):
        reply = httpx.post(f"{app.local_url}gradio_api/upload", files={"files": (name, b"\0" * 1000, "image/png")},
                           timeout=30)
        reply.raise_for_status()
    assert {p for p in app.app_folder.gradio.rglob("*") if p.is_file()} == stored_before
    served(victim)


def test_malformed_calls_leave_no_user_text_in_the_log_or_the_reply(app, victim, capfd):
    bad = [
        ("analyze_organ_system", [f"note {MARKER}"]),  # too few inputs
        ("set_tau_organ_system", [None, None, "epee", f"note {MARKER}", 3, 0.9, 0.05, "js", 1]),  # note as tau
        ("set_tau_organ_system", [None, None, f"note {MARKER}", 0.2, 3, 0.9, 0.05, "js", 1]),  # note as rule
        ("set_rule_organ_system", [None, None, [f"{MARKER}"]]),
        ("analyze_organ_system", [f"note {MARKER}", None, [f"{MARKER}"]]),
        ("analyze_pneumonia", [f"note {MARKER}", None, "epee"]),  # a note where a file goes
        ("explore_set_tau", [f"{MARKER}", "test", "epee", 0.2, 3, 0.9, 0.05, "js", 1]),
        ("explore_calibrate", ["organ-system", "epee", 0.2, 3, 0.9, 0.05, "js", 1, 0.01, f"{MARKER}"]),
    ]
    replies = []
    for api_name, data in bad:
        start = httpx.post(f"{app.local_url}gradio_api/call/{api_name}", json={"data": data}, timeout=30)
        if start.status_code == 200:
            event = start.json()["event_id"]
            replies.append(httpx.get(f"{app.local_url}gradio_api/call/{api_name}/{event}", timeout=30).text)
        else:
            replies.append(start.text)
    served(victim)
    out, err = capfd.readouterr()
    assert all("error" in reply.lower() or "detail" in reply for reply in replies)
    assert not [r for r in replies if MARKER in r]
    assert MARKER not in out + err


def test_a_long_note_check_does_not_stall_other_visitors(app, victim):
    """80,000 characters of "1." took the identifier check 20 s and froze every other request;
    now it reads a capped prefix in linear time (generous bounds: this machine is shared)."""
    attacker = Client(app.local_url, verbose=False)
    took = []

    def attack():
        for _ in range(3):
            started = time.perf_counter()
            attacker.predict("1." * 40_000, api_name="/check_note_organ_system")
            took.append(time.perf_counter() - started)

    thread = threading.Thread(target=attack)
    thread.start()
    victim_took = []
    for _ in range(5):
        started = time.perf_counter()
        victim.predict(*SLIDER, api_name="/set_tau_organ_system")
        victim_took.append(time.perf_counter() - started)
    thread.join(timeout=60)
    assert len(took) == 3 and max(took) < 5 and max(victim_took) < 5


def test_an_upload_is_stored_under_its_content_hash_without_its_name(app, victim, tmp_path):
    from PIL import Image

    image = tmp_path / "Jane_Doe_1961-03-02.png"
    Image.new("L", (32, 32), 90).save(image)
    reply = httpx.post(f"{app.local_url}gradio_api/upload",
                       files={"files": (image.name, image.read_bytes(), "image/png")}, timeout=30)
    (stored,) = reply.json()
    assert "Jane" not in reply.text and stored.endswith("/upload.png")
    assert not [p for p in app.app_folder.root.rglob("*") if "Jane" in p.name]
    notice = Client(app.local_url, verbose=False).predict(handle_file(str(image)), "epee", api_name="/analyze_pneumonia")[0]
    assert "32×32" in notice and "Jane" not in notice


def test_a_missing_upload_gets_a_message_without_a_server_path(app, victim):
    missing = {"path": str(app.app_folder.gradio / ("0" * 8) / "upload.png"), "meta": {"_type": "gradio.FileData"}}
    start = httpx.post(f"{app.local_url}gradio_api/call/analyze_pneumonia", json={"data": [missing, None, "epee"]},
                       timeout=30)
    event = start.json()["event_id"]
    reply = httpx.get(f"{app.local_url}gradio_api/call/analyze_pneumonia/{event}", timeout=30).text
    assert "error" in reply and str(app.app_folder.root) not in reply and "/tmp" not in reply
    served(victim)


@pytest.mark.parametrize("path", ["/etc/hostname", "http://example.com/x.png"])
def test_a_server_file_is_never_read_as_an_upload(app, victim, path):
    named = {"path": path, "meta": {"_type": "gradio.FileData"}}
    start = httpx.post(f"{app.local_url}gradio_api/call/analyze_pneumonia", json={"data": [named, None, "epee"]},
                       timeout=30)
    if start.status_code == 200:  # the guard lets a local path through; Gradio or the analysis refuses it unread
        reply = httpx.get(f"{app.local_url}gradio_api/call/analyze_pneumonia/{start.json()['event_id']}",
                          timeout=30).text
        assert "event: error" in reply and "stops at" not in reply
    else:  # an address is refused by the guard before any lookup
        assert "does not fetch files from addresses" in start.text
    served(victim)


def test_no_direct_call_skips_the_queue_and_its_limits(app, victim):
    reply = httpx.post(f"{app.local_url}gradio_api/run/analyze_organ_system",
                       json={"data": [EXAMPLE_NOTES[0].text, None, "epee"]}, timeout=30)
    assert reply.status_code == 404 and "join the queue" in reply.text
    served(victim)


def run(app, api_name: str, data: list, session: str, **extra) -> httpx.Response:
    """An event sent as the browser sends one that skips the queue: one POST to /gradio_api/run/."""
    body = {"data": data, "fn_index": fn_index(app, api_name), "session_hash": session, "event_data": None,
            "trigger_id": None, **extra}
    return httpx.post(f"{app.local_url}gradio_api/run/{api_name}", json=body, timeout=30)


def analyzed_in(app, session: str) -> None:
    """An analysis in ``session`` through the queue, as the page sends it (join, then the event stream)."""
    assert join(app, "analyze_organ_system", [EXAMPLE_NOTES[0].text, None, "epee"], session).status_code == 200
    with httpx.stream("GET", f"{app.local_url}gradio_api/queue/data", params={"session_hash": session},
                      timeout=30) as stream:
        messages = [line for line in stream.iter_lines() if line.startswith("data:")]
    assert any('"process_completed"' in m and '"success":true' in m.replace(" ", "") for m in messages)


def test_only_the_events_that_run_a_model_or_have_a_limit_wait_in_the_queue(app):
    queued = {fn.api_name for fn in app.fns.values() if fn.queue}
    # the task choice sets the selected model, a state other events follow: the browser fires those only
    # after a queued event
    assert {"analyze_organ_system", "analyze_pneumonia", "trace", "explore_export_figure", "select_task"} <= queued
    assert not {"set_tau_organ_system", "set_rule_organ_system", "check_note_organ_system", "explore_set_tau",
                "batch_set_rule", "lesson_next"} & queued
    assert all(fn.queue for fn in app.fns.values() if fn.concurrency_id == guard.MODEL_GROUP)


def test_a_slider_move_is_one_post_served_from_the_session_while_the_queue_is_full(app, victim, monkeypatch):
    analyzed_in(app, "slider-session")
    monkeypatch.setattr(app._queue, "max_size", 0)  # every queued event is now refused as "Queue is full"
    refused = join(app, "analyze_organ_system", [EXAMPLE_NOTES[1].text, None, "epee"], "slider-session")
    assert refused.status_code == 503
    reply = run(app, "set_tau_organ_system", [None, None, "epee", 0.3, 3, 0.9, 0.05, "js", 1], "slider-session")
    assert reply.status_code == 200 and "stops at" in reply.json()["data"][1]
    fresh = run(app, "set_tau_organ_system", [None, None, "epee", 0.3, 3, 0.9, 0.05, "js", 1], "no-trace-session")
    assert fresh.status_code == 200 and "stops at" in fresh.json()["data"][1]  # a new session: the opening example


def test_calls_that_skip_the_queue_are_checked_too(app, victim, capfd):
    unknown = httpx.post(f"{app.local_url}gradio_api/run/predict",
                         json={"data": [], "fn_index": 10_000, "session_hash": "s"}, timeout=30)
    assert unknown.status_code == 422 and "no such endpoint" in unknown.text
    short = run(app, "set_tau_organ_system", [None, f"note {MARKER}"], "s")
    wrong = run(app, "set_tau_organ_system", [None, None, "epee", f"note {MARKER}", 3, 0.9, 0.05, "js", 1], "s")
    assert short.status_code == 422 and "enough input values" in short.text
    assert wrong.status_code == 500 and "tau" in wrong.text
    served(victim)
    out, err = capfd.readouterr()
    assert MARKER not in short.text + wrong.text + out + err


def test_the_page_and_its_config_are_built_once_per_root_url_and_answer_as_gradio_does(app, victim, monkeypatch):
    from gradio import route_utils

    built = []
    original = route_utils.update_root_in_config
    monkeypatch.setattr(route_utils, "update_root_in_config", lambda config, root: built.append(root) or original(config, root))
    host = {"x-forwarded-host": "page-cache.example"}
    configs = [httpx.get(f"{app.local_url}config", headers=host, params={"junk": str(i)}, timeout=30) for i in range(5)]
    pages = [httpx.get(app.local_url, headers=host, timeout=30) for _ in range(5)]
    assert built == ["http://page-cache.example"] * 2  # one build for /config, one for the page
    assert len({r.content for r in configs}) == 1 and len({r.content for r in pages}) == 1
    assert configs[0].json()["root"] == "http://page-cache.example" and "page-cache.example" in pages[0].text
    plain = httpx.get(f"{app.local_url}config", timeout=30).json()
    assert plain["root"] == app.local_url.rstrip("/")  # another root URL gets its own reply
    assert httpx.head(app.local_url, headers=host, timeout=30).status_code == 200
    info = [httpx.get(f"{app.local_url}gradio_api/info", params={"all_endpoints": "True"}, timeout=30) for _ in range(3)]
    assert len({r.content for r in info}) == 1 and "named_endpoints" in info[0].json()
    served(victim)


class FakeApp:
    """A stand-in for Gradio's app: counts the page replies it builds, each naming its Host."""

    def __init__(self, status: int = 200, headers: list | None = None, pause: float = 0.0):
        self.config = {"components": []}
        self.builds, self.building, self.most_at_once = 0, 0, 0
        self.status, self.headers, self.pause = status, headers or [], pause
        self.auth = self.auth_dependency = None

    def get_blocks(self):
        return self

    async def __call__(self, scope, receive, send):
        self.builds += 1
        self.building += 1
        self.most_at_once = max(self.most_at_once, self.building)
        await asyncio.sleep(self.pause)
        self.building -= 1
        host = dict(scope["headers"]).get(b"host", b"")
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"text/plain"), *self.headers]})
        await send({"type": "http.response.body", "body": b"built for " + host})


def fetch(replies, app, path: str = "/config", query: bytes = b"", host: bytes = b"a", method: str = "GET"):
    """One request through ``PageReplies``: (status, body)."""
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": [(b"host", host)],
             "scheme": "http", "server": ("127.0.0.1", 7860), "root_path": "", "app": app}
    asyncio.run(replies(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_page_replies_are_kept_per_root_url_and_the_queries_gradio_reads():
    app = FakeApp()
    replies = guard.PageReplies(app)
    assert fetch(replies, app) == (200, b"built for a")
    assert fetch(replies, app, query=b"x=1&__theme=dark") == (200, b"built for a")  # Gradio reads neither
    assert app.builds == 1
    assert fetch(replies, app, host=b"b") == (200, b"built for b") and app.builds == 2
    fetch(replies, app, "/gradio_api/info", b"all_endpoints=True")
    fetch(replies, app, "/gradio_api/info", b"all_endpoints=yes")  # any value is true to Gradio
    fetch(replies, app, "/gradio_api/info", b"all_endpoints=")
    assert app.builds == 4
    assert fetch(replies, app, "/", method="HEAD") == (200, b"") and fetch(replies, app, "/") == (200, b"built for a")
    assert app.builds == 5
    fetch(replies, app, query=b"deep_link=abc")
    fetch(replies, app, query=b"deep_link=abc")
    assert app.builds == 7  # a reply built from a visitor's saved state is never kept
    fetch(replies, app, "/", b"all_endpoints=1")  # the page embeds the API description it asks for
    assert app.builds == 8 and fetch(replies, app, "/") == (200, b"built for a") and app.builds == 8
    fetch(replies, app, query=b"page=nonesuch")  # an unknown page is the default one to Gradio
    assert app.builds == 8
    app.config = {"components": [1]}  # the Blocks' config replaced: every reply is built anew
    fetch(replies, app)
    assert app.builds == 9


def test_page_replies_keep_only_plain_successes_and_a_bounded_number():
    for app in (FakeApp(status=500), FakeApp(headers=[(b"set-cookie", b"session=1")])):
        replies = guard.PageReplies(app)
        fetch(replies, app)
        fetch(replies, app)
        assert app.builds == 2
    app = FakeApp()
    replies = guard.PageReplies(app)
    for host in range(guard.KEPT_REPLIES + 5):
        fetch(replies, app, host=str(host).encode())
    assert len(replies.kept) == guard.KEPT_REPLIES
    fetch(replies, app, host=b"0")  # the oldest went first
    assert app.builds == guard.KEPT_REPLIES + 6
    app = FakeApp()
    replies = guard.PageReplies(app)
    for _ in range(3):
        fetch(replies, app, host=b"real")
    for host in range(3 * guard.KEPT_REPLIES):  # a flood of one-off root URLs
        fetch(replies, app, host=str(host).encode())
    builds = app.builds
    assert fetch(replies, app, host=b"real") == (200, b"built for real") and app.builds == builds  # still kept


def test_page_replies_are_built_one_at_a_time_and_few_wait():
    app = FakeApp(pause=0.05)
    replies = guard.PageReplies(app)

    async def many():
        async def one(index):
            sent = []

            async def send(message):
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/config", "query_string": b"",
                     "headers": [(b"host", str(index).encode())], "scheme": "http", "server": None, "root_path": "",
                     "app": app}
            await replies(scope, None, send)
            return sent[0]["status"]

        return await asyncio.gather(*(one(i) for i in range(guard.BUILDS_WAITING + 4)))

    statuses = asyncio.run(many())
    assert app.most_at_once == 1
    assert statuses.count(200) == guard.BUILDS_WAITING and statuses.count(503) == 4


def test_requests_for_a_reply_being_built_wait_for_that_one_build():
    app = FakeApp(pause=0.1)
    replies = guard.PageReplies(app)

    async def many():
        async def one(host: bytes):
            sent = []

            async def send(message):
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/gradio_api/info", "query_string": b"all_endpoints=True",
                     "headers": [(b"host", host)], "scheme": "http", "server": None, "root_path": "", "app": app}
            await replies(scope, None, send)
            return sent[0]["status"], sent[1]["body"]

        return await asyncio.gather(*(one(b"a") for _ in range(3 * guard.BUILDS_WAITING)), one(b"b"))

    answers = asyncio.run(many())  # 20 visitors opening the page at once, and one of another root URL
    assert answers == [(200, b"built for a")] * (3 * guard.BUILDS_WAITING) + [(200, b"built for b")]
    assert app.builds == 2 and not replies.pending


def test_a_build_outlives_the_request_that_started_it_and_keeps_its_turn():
    app = FakeApp(pause=0.1)
    replies = guard.PageReplies(app)

    def request(host: bytes):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/config", "query_string": b"",
                 "headers": [(b"host", host)], "scheme": "http", "server": None, "root_path": "", "app": app}
        return replies(scope, None, send), sent

    async def first_goes_away():
        first, _ = request(b"a")
        started = asyncio.ensure_future(first)
        await asyncio.sleep(0.02)
        same, same_sent = request(b"a")
        other, _ = request(b"b")
        waiting = asyncio.gather(same, other)
        await asyncio.sleep(0.02)
        started.cancel()  # the first visitor closes the tab while its reply is built
        await waiting
        return same_sent

    same_sent = asyncio.run(first_goes_away())
    assert same_sent[0]["status"] == 200 and same_sent[1]["body"] == b"built for a"  # the one build, finished
    assert app.builds == 2 and app.most_at_once == 1 and not replies.pending and replies.waiting == 0


class FailingApp(FakeApp):
    """A stand-in for Gradio whose reply fails to build after ``pause`` seconds."""

    async def __call__(self, scope, receive, send):
        self.builds += 1
        await asyncio.sleep(self.pause)
        raise RuntimeError("the build failed")


def test_a_failed_build_reaches_its_starter_tells_the_waiters_to_retry_and_is_logged_once_orphaned(caplog):
    app = FailingApp(pause=0.05)
    replies = guard.PageReplies(app)

    def request():
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/config", "query_string": b"",
                 "headers": [(b"host", b"a")], "scheme": "http", "server": None, "root_path": "", "app": app}
        return replies(scope, None, send), sent

    async def starter_and_waiter():
        first, _ = request()
        started = asyncio.ensure_future(first)
        await asyncio.sleep(0.01)
        waiter, waiter_sent = request()
        outcomes = await asyncio.gather(started, waiter, return_exceptions=True)
        return outcomes, waiter_sent

    outcomes, waiter_sent = asyncio.run(starter_and_waiter())
    assert isinstance(outcomes[0], RuntimeError) and waiter_sent[0]["status"] == 503
    assert app.builds == 1 and replies.waiting == 0 and not replies.pending

    async def starter_goes_away():
        first, _ = request()
        started = asyncio.ensure_future(first)
        await asyncio.sleep(0.01)
        started.cancel()
        await asyncio.sleep(0.1)  # the build runs on and fails with nobody waiting

    with caplog.at_level("ERROR", logger="epee_demo.ui.guard"):
        asyncio.run(starter_goes_away())
    assert [r.getMessage() for r in caplog.records if r.name == "epee_demo.ui.guard"] == [
        "a page reply failed to build after its request went away: RuntimeError"]
    assert not any("never retrieved" in r.getMessage() for r in caplog.records)
    assert replies.waiting == 0 and not replies.pending


class BlockingApp(FakeApp):
    """A stand-in for Gradio whose reply is built by ``seconds`` of CPU that never yields to its
    event loop, as Gradio's encoding of the API description (``jsonable_encoder``) does."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        ends = time.thread_time() + self.seconds
        while time.thread_time() < ends:
            pass
        await super().__call__(scope, receive, send)


def test_a_reply_is_built_off_the_event_loop_that_serves_the_other_visitors():
    app = BlockingApp(seconds=0.5)
    replies = guard.PageReplies(app)

    async def build_while_ticking():
        sent, gaps, done = [], [], asyncio.Event()

        async def send(message):
            sent.append(message)

        async def tick():  # another visitor's light call, every 10 ms
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                gaps.append(time.perf_counter() - last)
                last = time.perf_counter()

        async def build():
            scope = {"type": "http", "method": "GET", "path": "/config", "query_string": b"",
                     "headers": [(b"host", b"a")], "scheme": "http", "server": None, "root_path": "", "app": app}
            await replies(scope, None, send)
            done.set()

        await asyncio.gather(tick(), build())
        return sent, gaps

    sent, gaps = asyncio.run(build_while_ticking())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"built for a" and app.builds == 1
    assert len(gaps) >= 5 and max(gaps) < 0.25  # on the loop, the build would hold it 0.5 s


DISPOSITIONS = [
    b'form-data; name="files"; filename="Jane_Doe.png"',
    b'form-data; name="files"; filename = "Jane_Doe.png"',  # spaced
    b'form-data; name="files"; filename="x\\"Jane_Doe.png"',  # an escaped quote
    b'form-data; name="files"; FILENAME=Jane_Doe.png',
    b'form-data; name="files"; filename="a;b"; filename="Jane_Doe.png"',  # two names: Gradio reads the last
    b'form-data; name="files"; filename*=UTF-8\'\'Jane%20Doe.png; filename="Jane_Doe.png"',
    b'form-data; name="files"; filename="C:\\\\Users\\\\Jane_Doe.png"',
    b'form-data; filename\t="Jane_Doe.png"; name="files"',
]


@pytest.mark.parametrize("disposition", DISPOSITIONS)
def test_an_upload_keeps_no_part_of_its_file_name_however_it_is_written(disposition):
    from python_multipart.multipart import parse_options_header

    body = (b"--BB\r\ncontent-disposition: " + disposition + b"\r\nContent-Type: image/png\r\n\r\n"
            + b"PNG-BYTES\r\n--BB--\r\n")
    renamed, held, dropped = guard._renamed_parts(body, b"--BB", final=True)
    (header,) = [line for line in renamed.split(b"\r\n") if line.lower().startswith(b"content-disposition")]
    options = parse_options_header(header.split(b":", 1)[1])[1]  # as Gradio's parser reads it
    assert options == {b"name": b"files", b"filename": b"upload.png"}
    assert b"Jane" not in renamed and b"PNG-BYTES\r\n--BB--\r\n" in renamed and held == b"" and not dropped


def test_an_upload_is_renamed_alike_however_its_body_is_split_and_its_bytes_are_kept():
    import os

    content = os.urandom(200_000) + b"--B content-disposition: filename=x"  # no delimiter: the data is untouched
    request = httpx.Request("POST", "http://x/upload", files={"files": ("Jane_Doe.png", content, "image/png"),
                                                                "more": ("Jane_Roe.jpeg", b"jpeg", "image/jpeg")})
    body, content_type = request.read(), request.headers["content-type"].encode()
    expected = body.replace(b'filename="Jane_Doe.png"', b'filename="upload.png"').replace(
        b'filename="Jane_Roe.jpeg"', b'filename="upload.jpeg"')
    for size in (1, 7, 100, 65536, len(body)):
        cut = len(body) if size > 100 else 400 - 400 % size  # small pieces through the first part's headers
        chunks = [body[i:i + size] for i in range(0, cut, size)] + ([body[cut:]] if cut < len(body) else [])

        async def received():
            given = iter(enumerate(chunks, 1))

            async def receive():
                index, chunk = next(given)
                return {"type": "http.request", "body": chunk, "more_body": index < len(chunks)}

            renaming, out = guard._without_file_names(receive, content_type), []
            while True:
                message = await renaming()
                out.append(message["body"])
                if not message["more_body"]:
                    return b"".join(out)

        assert asyncio.run(received()) == expected
