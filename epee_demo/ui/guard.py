"""What one visitor may send, checked before Gradio reads a request: an ASGI middleware.

Gradio caps an uploaded file (``max_file_size``) and the whole queue (``max_size``), and runs
at most ``concurrency_limit`` analyses at once; it has no cap on other request bodies, on
how many analyses one session may queue, or on how much one client uploads, and it answers
an unknown ``fn_index`` with a server error. ``RequestGuard`` adds those checks:

- a request body other than an upload is at most ``MAX_REQUEST_BYTES``;
- a session may have ``ANALYSES_PER_SESSION`` analyses queued or running, and all sessions
  together ``ANALYSES_WAITING`` (so the queue's other slots stay free for the other queued events);
- an upload is stored without its file name (which can hold a patient's name), and one larger than
  Gradio's cap on a file (``max_file_size``) is refused from its stated size, unread;
- one client address may upload ``MAX_UPLOAD_BYTES_PER_CLIENT`` bytes per retention period
  of the uploads (``UPLOAD_WINDOW_S``), so what it can hold on disk is bounded;
- a call must name an endpoint the page has, with enough input values, a file where a file
  goes, and no URL for a file (the demo never resolves nor fetches an address it is sent);
- the page (``/``), its config (``/config``) and its API description (``/gradio_api/info``) are
  served from bytes kept per root URL (``PageReplies``): Gradio rebuilds them on every request
  (a deep copy of the 0.6 MB config and a walk over it; the full API description re-encoded on
  the event loop), 0.1-0.2 s of CPU each, which a visitor fetching them in a loop turned into a
  stall of every other visitor. Those it has to build are built one at a time, each once however
  many ask for it meanwhile, in a thread of their own (Gradio encodes the API description on the
  event loop: built there, the first one stalled every other visitor for 0.2-1 s).

Refused analyses get Gradio's own validation reply (HTTP 422), which the page shows on the
input and ``gradio_client`` raises as a ``ValidationError`` with the message.

``skip_queue_unless_model`` takes every event that runs no model out of Gradio's queue: the
browser sends it as one POST (``/gradio_api/run/...``) and it never holds, nor waits for, a
queue slot. The guard checks those calls' shape too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import OrderedDict, defaultdict, deque
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header

from epee_demo.limits import (
    ANALYSES_PER_SESSION, ANALYSES_WAITING, MAX_NOTE_CHARS, MAX_REQUEST_BYTES, MAX_UPLOAD_BYTES,
    MAX_UPLOAD_BYTES_PER_CLIENT, UPLOAD_WINDOW_S,
)

MODEL_GROUP = "model"  # the concurrency_id of the events that run the model
logger = logging.getLogger(__name__)


async def _reply(send, status: int, body: dict, unread: bool = False) -> None:
    """Send ``body`` as JSON. ``unread``: the request's body is refused unread, and the connection is
    closed after the reply, so the server does not go on receiving and parsing what it refused."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if unread else [])})
    await send({"type": "http.response.body", "body": data})


_EXTENSION = re.compile(rb"\.[A-Za-z0-9]{1,5}$")  # the part of an upload's file name that is kept
MAX_PART_HEADERS = 16 * 1024  # bytes of one part's headers; a longer block ends the upload (no browser sends one)
MAX_UPLOAD_BODY = MAX_UPLOAD_BYTES + 64 * 1024  # an upload request: one file within Gradio's cap, its headers beside it


def _without_file_name(disposition: bytes) -> bytes:
    """A part's Content-Disposition value with its file name replaced by ``upload.<ext>``. It is read
    with the parser Gradio reads it with and written anew, so what Gradio reads is exactly that
    name, however the original was quoted, escaped or spaced; RFC 5987's ``filename*`` (which
    Gradio ignores) is dropped."""
    if b"filename" not in disposition.lower():
        return disposition
    kind, options = parse_options_header(disposition)
    rebuilt = kind or b"form-data"
    if b"name" in options:
        rebuilt += b'; name="' + options[b"name"].replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    if b"filename" in options:
        extension = _EXTENSION.search(options[b"filename"].replace(b"\\", b"/").rsplit(b"/", 1)[-1])
        rebuilt += b'; filename="upload' + (extension.group() if extension else b"") + b'"'
    return rebuilt


def _renamed_headers(block: bytes) -> bytes:
    """One part's header block (its lines end in CRLF, as Gradio's parser requires) with every
    Content-Disposition value rewritten by ``_without_file_name``."""
    lines = block.split(b"\r\n")
    for index, line in enumerate(lines):
        field, colon, value = line.partition(b":")
        if colon and field.lower() == b"content-disposition":
            lines[index] = b"Content-Disposition: " + _without_file_name(value.lstrip(b" "))
    return b"\r\n".join(lines)


def _renamed_parts(data: bytes, delimiter: bytes, final: bool) -> tuple[bytes, bytes, bool]:
    """``data`` with the file names in its complete part headers replaced; the tail to hold back
    until more arrives (an unfinished part header, or what may be the start of a delimiter); and
    whether a part's headers ran past ``MAX_PART_HEADERS``. Only the headers are searched: the
    file's bytes are skipped with ``bytes.find``. At the body's end (``final``) nothing is held: an
    unfinished part header there (or the closing delimiter) is passed on as sent."""
    pieces, done = [], 0
    position = data.find(delimiter)
    while position != -1:
        end = data.find(b"\r\n\r\n", position, position + MAX_PART_HEADERS)
        if end == -1:
            if final:
                position = len(data)
            elif len(data) - position >= MAX_PART_HEADERS:
                return b"", b"", True
            break
        pieces += [data[done:position], _renamed_headers(data[position:end + 4])]
        done = end + 4
        position = data.find(delimiter, done)
    else:
        position = len(data) if final else max(done, len(data) - len(delimiter) + 1)
    pieces.append(data[done:position])
    return b"".join(pieces), data[position:], False


def _without_file_names(receive, content_type: bytes):
    """``receive`` with every file name in the multipart body replaced by ``upload.<ext>``: Gradio
    stores an upload as ``<sha256 of the content>/<file name>`` and serves it under that path,
    and a file name can hold a patient's name. The boundary is read from the Content-Type header
    as Gradio's parser reads it; a body without one is passed on as sent (Gradio refuses it)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return receive
    delimiter = b"--" + boundary
    held, done, dropped = b"", False, False

    async def renaming():
        nonlocal held, done, dropped
        if dropped:
            return {"type": "http.disconnect"}
        if done:
            return await receive()
        message = await receive()
        if message["type"] != "http.request":
            return message
        final = not message.get("more_body", False)
        data, held, dropped = _renamed_parts(held + message.get("body", b""), delimiter, final)
        if dropped:  # the upload is dropped: Gradio sees the client leave
            return {"type": "http.disconnect"}
        done = final
        return {**message, "body": data}

    return renaming


def _refusal(message: str, parameter: str = "input") -> dict:
    """Gradio's validation reply: the page shows ``message`` on the input, the client raises it."""
    return {"detail": [{"__type__": "validate", "is_valid": False, "message": message,
                        "parameter_name": parameter}]}


class RequestGuard:
    """ASGI middleware (give it to Gradio as ``app_kwargs={"middleware": [Middleware(RequestGuard)]}``)."""

    def __init__(self, app):
        self.app = app
        self.uploads: dict[str, deque] = defaultdict(deque)  # client address -> (time, bytes) in the window
        self.told: dict[str, float] = {}  # client address -> when an upload of it was last refused and received
        self.lock = threading.Lock()
        self.page_replies = PageReplies(app)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if scope["method"] in ("GET", "HEAD") and path in PAGE_QUERIES:
            return await self.page_replies(scope, receive, send)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        stated = dict(scope["headers"]).get(b"content-length", b"")
        length = int(stated) if stated.isdigit() else None
        if path.endswith("/upload"):
            refusal, unread = self._upload_refusal(client, length)
            if refusal:
                return await _reply(send, 413, {"detail": refusal}, unread=unread)
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")  # the first, as Gradio reads it
            return await self.app(scope, _without_file_names(receive, content_type), send)
        too_large = length is not None and length > MAX_REQUEST_BYTES  # refused unread
        chunks, size, more = [], 0, True
        while more and not too_large:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            too_large = size > MAX_REQUEST_BYTES
        if too_large:
            return await _reply(send, 413, {"detail": (
                f"This request is larger than {MAX_REQUEST_BYTES // 1024} KB. A note is read only up to its "
                f"first {MAX_NOTE_CHARS:,} characters: please send a shorter one.")}, unread=True)
        body = b"".join(chunks)
        if path.endswith("/queue/join") or "/call/" in path or "/run/" in path:
            refused = self._call_refusal(scope["app"].get_blocks(), path, body, client)
            if refused:
                return await _reply(send, *refused)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    def _upload_refusal(self, client: str, length: int | None) -> tuple[str, bool]:
        """Why an upload is refused ('' if it is not), and whether it is refused unread. One the page
        may send (a file within the cap) that the client's window refuses is received and dropped the
        first time in a window, so that the page can show the message; after that, and for a larger
        one, nothing is received: reading 19 MB bodies only to drop them was most of what 40 parallel
        uploads cost the server's event loop."""
        if length is None:
            return "An upload must state its size (Content-Length).", True
        if length > MAX_UPLOAD_BODY:
            return f"An upload is at most {MAX_UPLOAD_BYTES // 2**20} MB.", True
        now = time.monotonic()
        with self.lock:
            held = self.uploads[client]
            while held and held[0][0] < now - UPLOAD_WINDOW_S:
                held.popleft()
            total = sum(size for _, size in held)
            if total + length > MAX_UPLOAD_BYTES_PER_CLIENT:
                told = self.told.get(client, -UPLOAD_WINDOW_S) > now - UPLOAD_WINDOW_S
                if not told:
                    self.told[client] = now
                return (f"You have uploaded {total / 2**20:.0f} MB in the last {UPLOAD_WINDOW_S // 60} minutes; "
                        f"the limit is {MAX_UPLOAD_BYTES_PER_CLIENT // 2**20} MB. Please try again later."), told
            held.append((now, length))
        return "", False

    @staticmethod
    def _call_refusal(blocks, path: str, body: bytes, client: str) -> tuple[int, dict] | None:
        """(status, reply) for a call to refuse, or None to let it through."""
        try:
            request = json.loads(body)
        except ValueError:
            return None  # Gradio answers malformed JSON itself, without echoing it
        if not isinstance(request, dict):
            return 422, {"detail": "The request must be a JSON object."}
        if "/call/" in path:
            name = path.rsplit("/call/", 1)[1].removeprefix("v2/")  # /call/NAME and /call/v2/NAME
            fn = next((f for f in blocks.fns.values() if f.api_name == name), None)
            key = f"address {client}"  # each /call/ request gets a session of its own
        elif "/run/" in path and request.get("fn_index") is None:  # /run/NAME without an index: Gradio finds NAME
            name = path.rsplit("/run/", 1)[1]
            fn = next((f for f in blocks.fns.values() if f.api_name == name), None)
            key = request.get("session_hash")
        else:
            index = request.get("fn_index")
            fn = blocks.fns.get(index) if isinstance(index, int) and not isinstance(index, bool) else None
            if fn is None:
                return 422, {"detail": "This page has no such endpoint (fn_index)."}
            key = request.get("session_hash")
        if fn is None:
            return None  # Gradio answers an unknown api_name itself
        refusal = "" if "/call/v2/" in path else _shape_refusal(fn, request.get("data"))  # v2: named values
        if refusal:
            return 422, {"detail": refusal}
        if fn.concurrency_id != MODEL_GROUP:
            return None
        waiting = _model_events(blocks._queue)
        mine = sum(1 for e in waiting if _event_key(e) == key)
        if mine >= ANALYSES_PER_SESSION:
            return 422, _refusal(
                f"You have analyses waiting or running: {mine} (at most {ANALYSES_PER_SESSION} at a time per "
                "visitor). Wait for the result, then press Analyze again.")
        if len(waiting) >= ANALYSES_WAITING:
            return 422, _refusal(
                f"The demo is busy: {len(waiting)} analyses are waiting. Please try again in a minute.")
        return None


# The GET paths served from kept bytes, each with the query parameters Gradio reads for it (every
# other parameter is ignored by Gradio, so it is by the key too).
PAGE_QUERIES = {"": ("page", "deep_link", "all_endpoints"), "/config": ("page", "deep_link"), "/gradio_api/info": ("page", "all_endpoints")}
# What Gradio reads of a request to build the root URL that it writes into these replies.
_ROOT_HEADERS = (b"host", b"x-forwarded-host", b"x-forwarded-proto", b"x-gradio-server")
KEPT_REPLIES = 16  # replies kept (about 0.7 MB each); one or two root URLs are all a deployment has
BUILDS_WAITING = 8  # different page replies that may wait to be built; past it a request is told to retry


class PageReplies:
    """The page, its config and its API description, built by Gradio once per root URL and query and
    then served as kept bytes. Gradio builds them anew on every request although they change only
    when the Blocks' config is replaced (the kept ones are dropped then). A reply Gradio has to build
    (a root URL or query not seen yet, a deep link) is built once however many ask for it meanwhile
    (20 visitors opening the page at once wait for one build), one build at a time, in a worker
    thread with an event loop of its own, so that Gradio's encoding of it never holds the server's
    loop; at most ``BUILDS_WAITING`` different ones wait to be built. Not used when the app has a
    login: a reply could then depend on the user."""

    def __init__(self, app):
        self.app = app
        self.kept: OrderedDict[tuple, tuple[int, list, bytes]] = OrderedDict()
        self.hits: dict[tuple, int] = {}  # how often each kept reply was served
        self.pending: dict[tuple, asyncio.Future] = {}  # key -> its build, while it waits or runs
        self.config = None  # the Blocks config the kept replies were built from
        self.building = asyncio.Lock()
        self.waiting = 0

    async def __call__(self, scope, receive, send):
        gradio_app = scope["app"]
        if getattr(gradio_app, "auth", None) is not None or getattr(gradio_app, "auth_dependency", None) is not None:
            return await self.app(scope, receive, send)
        config = gradio_app.get_blocks().config
        if config is not self.config:
            self.kept.clear()
            self.hits.clear()
            self.config = config
        key = _reply_key(scope, config)
        reply = self.kept.get(key) if key is not None else None
        if reply is not None:
            self.kept.move_to_end(key)
            self.hits[key] += 1
        elif key in self.pending:
            reply = await self._outcome(self.pending[key])
        elif self.waiting < BUILDS_WAITING:
            build = self._start_build(key, scope)
            try:
                reply = await asyncio.shield(build)
            except asyncio.CancelledError:  # this request went away: the build runs on, and its failure is logged
                build.add_done_callback(_log_failed_build)
                raise
        if reply is None:
            return await _reply(send, 503, {"detail": "The demo is busy: please reload the page in a moment."})
        status, headers, body = reply
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})

    def _start_build(self, key: tuple | None, scope) -> asyncio.Future:
        """The build of Gradio's reply for ``key`` (None: not kept), counted as waiting from now. It runs
        as a task of its own, awaited shielded, so a request that goes away (a closed tab) leaves the
        build and its turn running for the requests that wait on it (``pending[key]``)."""
        self.waiting += 1
        build = asyncio.ensure_future(self._build(key, scope))
        if key is not None:
            self.pending[key] = build
        return build

    async def _build(self, key: tuple | None, scope) -> tuple[int, list, bytes]:
        """Gradio's reply for ``key``, built after the builds before it (``_start_build``)."""
        try:
            async with self.building:
                reply = await asyncio.to_thread(_built_apart, self.app, {**scope, "method": "GET"})
            if key is not None and reply[0] == 200 and not any(k == b"set-cookie" for k, _ in reply[1]):
                self.kept[key], self.hits[key] = reply, 0
                while len(self.kept) > KEPT_REPLIES:  # the least served goes (the oldest of those)
                    least = min(self.kept, key=self.hits.__getitem__)
                    del self.kept[least], self.hits[least]
            return reply
        finally:
            self.waiting -= 1
            self.pending.pop(key, None)

    @staticmethod
    async def _outcome(build: asyncio.Future) -> tuple[int, list, bytes] | None:
        """The reply of another request's ``build``; None if it failed (this request is told to retry,
        the one that started it gets the error)."""
        try:
            return await asyncio.shield(build)
        except Exception:
            return None


def _log_failed_build(build: asyncio.Future) -> None:
    """Log (by its type only: no request data) the error of a page-reply build nobody is left to receive."""
    if not build.cancelled() and (error := build.exception()) is not None:
        logger.error("a page reply failed to build after its request went away: %s", type(error).__name__)


def _reply_key(scope, config: dict) -> tuple | None:
    """What a page reply depends on: the path, the query parameters Gradio reads (``all_endpoints`` as
    Gradio reads it: any non-empty value; ``page`` as Gradio reads it: an unknown page is the default
    one), and the root URL's parts. None for a deep link (a reply built from a visitor's saved state is
    never kept)."""
    path = scope["path"].rstrip("/")
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    if query.get("deep_link"):
        return None
    pages = config.get("page") or {}
    read = tuple(bool(query.get(name)) if name == "all_endpoints"
                 else (query.get(name) if query.get(name) in pages else None) if name == "page"
                 else query.get(name) for name in PAGE_QUERIES[path])
    headers = tuple((k, v) for k, v in scope["headers"] if k in _ROOT_HEADERS)
    return path, read, scope.get("scheme"), tuple(scope.get("server") or ()), scope.get("root_path", ""), headers


def _built_apart(app, scope) -> tuple[int, list, bytes]:
    """Gradio's reply to a GET request, collected on an event loop of this (worker) thread."""
    return asyncio.run(_built(app, scope))


async def _built(app, scope) -> tuple[int, list, bytes]:
    """Gradio's reply to a GET request, collected: (status, headers, body). Its receive is this
    loop's own: an empty body, then the client gone."""
    status, headers, body = 500, [], []
    sent_body = False

    async def receive():
        nonlocal sent_body
        if sent_body:
            return {"type": "http.disconnect"}
        sent_body = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def collect(message):
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, collect)
    return status, headers, b"".join(body)


def _shape_refusal(fn, data) -> str:
    """What is wrong with a call's input values, without repeating them ('' when nothing is).

    Gradio's own messages for these quote the values (and print them to the log); it also
    looks up the host of a file given as a URL before refusing it."""
    from gradio.components import File

    if not isinstance(data, list):
        return "The call's data must be a list of input values."
    if len(data) < len(fn.inputs):
        return f"This call didn't receive enough input values (needed: {len(fn.inputs)}, got: {len(data)})."
    for block, value in zip(fn.inputs, data):
        if isinstance(block, File) and value is not None and not (
                isinstance(value, dict) and isinstance(value.get("path"), str)):
            return "An image input must be an uploaded file."
        if isinstance(value, dict) and isinstance(value.get("path"), str) and "://" in value["path"]:
            return "The demo does not fetch files from addresses: upload the file itself."
    return ""


def _model_events(queue) -> list:
    """The analyses waiting in Gradio's queue or running. Not the queue's record of every event it
    holds: an event stays there a while after its result was sent, so a visitor who pressed Analyze
    again at once would be told their last one is still waiting (1 of 150 in a 20-client load)."""
    model_queue = queue.event_queue_per_concurrency_id.get(MODEL_GROUP)
    waiting = list(model_queue.queue) if model_queue is not None else []
    running = [e for job in list(queue.active_jobs) if job for e in job if e.concurrency_id == MODEL_GROUP]
    return waiting + running


def _event_key(event) -> str:
    """Whose analysis a queued event is: its session, or its client address for plain /call/ requests."""
    request = event.request
    if request is not None and "/call/" in request.url.path:
        return f"address {request.client.host if request.client else 'unknown'}"
    return event.session_hash


def skip_queue_unless_model(blocks) -> None:
    """Every event that runs no model skips Gradio's queue (``queue=False``): an event outside
    ``MODEL_GROUP`` declared with no concurrency limit (a slider, a rule choice, a check as a note is
    typed), which re-renders from what the session holds. Through the queue such an event costs two
    requests (join, then the event stream) and can find the queue full of analyses; without it, one
    POST. Events that run the model, those with a limit of their own (the exports), and those that set
    a ``gr.State`` another event listens to (the task selector's choice) stay queued: the browser fires
    a state's change events only from a queued event's reply. Call it once the Blocks are built."""
    from gradio import State

    watched = {block for fn in blocks.fns.values() for block, event in fn.targets if event == "change"}
    for fn in blocks.fns.values():
        sets_watched_state = any(isinstance(out, State) and out._id in watched for out in fn.outputs)
        if (fn.fn is not None and fn.concurrency_id != MODEL_GROUP and fn.concurrency_limit is None
                and not fn.types_generator and not fn.tracks_progress and not sets_watched_state):
            fn.queue = False
