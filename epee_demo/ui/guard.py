"""What one visitor may send, checked before Gradio reads a request: an ASGI middleware.

Gradio caps an uploaded file (``max_file_size``) and the whole queue (``max_size``), and runs
at most ``concurrency_limit`` analyses at once; it has no cap on other request bodies, on
how many analyses one session may queue, or on how much one client uploads, and it answers
an unknown ``fn_index`` with a server error. ``RequestGuard`` adds those checks:

- a request body other than an upload is at most ``MAX_REQUEST_BYTES``;
- a session may have ``ANALYSES_PER_SESSION`` analyses queued or running, and all sessions
  together ``ANALYSES_WAITING`` (so the queue's other slots stay free for the other queued events);
- an upload is stored without its file name (which can hold a patient's name);
- one client address may upload ``MAX_UPLOAD_BYTES_PER_CLIENT`` bytes per retention period
  of the uploads (``UPLOAD_WINDOW_S``), so what it can hold on disk is bounded;
- a call must name an endpoint the page has, with enough input values, a file where a file
  goes, and no URL for a file (the demo never resolves nor fetches an address it is sent).

Refused analyses get Gradio's own validation reply (HTTP 422), which the page shows on the
input and ``gradio_client`` raises as a ``ValidationError`` with the message.

``skip_queue_unless_model`` takes every event that runs no model out of Gradio's queue: the
browser sends it as one POST (``/gradio_api/run/...``) and it never holds, nor waits for, a
queue slot. The guard checks those calls' shape too.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque

from epee_demo.limits import (
    ANALYSES_PER_SESSION, ANALYSES_WAITING, MAX_NOTE_CHARS, MAX_REQUEST_BYTES, MAX_UPLOAD_BYTES_PER_CLIENT,
    UPLOAD_WINDOW_S,
)

MODEL_GROUP = "model"  # the concurrency_id of the events that run the model


async def _reply(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# A part's whole Content-Disposition line in a multipart upload (only complete lines match), and in
# it each file name (quoted, or RFC 5987's filename*=) and the extension that is kept.
_DISPOSITION = re.compile(rb"content-disposition:[^\r\n]*\r\n", re.IGNORECASE)
_FILE_NAME = re.compile(rb'filename\*?=("[^"\r\n]*"|[^;\r\n]*)', re.IGNORECASE)
_EXTENSION = re.compile(rb"\.[A-Za-z0-9]{1,5}$")
_HEADER_ROOM = 4096  # bytes held back from each chunk, so that no part header is split when renamed


def _renamed(line: re.Match) -> bytes:
    def name(match: re.Match) -> bytes:
        extension = _EXTENSION.search(match.group(1).strip(b'"').rsplit(b"'", 1)[-1])
        return b'filename="upload' + (extension.group() if extension else b"") + b'"'

    return _FILE_NAME.sub(name, line.group())


def _without_file_names(receive):
    """``receive`` with every file name in the multipart body replaced by ``upload.<ext>``: Gradio
    stores an upload as ``<sha256 of the content>/<file name>`` and serves it under that path,
    and a file name can hold a patient's name."""
    held, done = b"", False

    async def renaming():
        nonlocal held, done
        if done:
            return await receive()
        message = await receive()
        data = _DISPOSITION.sub(_renamed, held + message.get("body", b""))
        if message.get("more_body", False):
            held, data = data[-_HEADER_ROOM:], data[:-_HEADER_ROOM]
        else:
            done = True
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
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        client = (scope.get("client") or ("unknown", 0))[0]
        stated = dict(scope["headers"]).get(b"content-length", b"")
        length = int(stated) if stated.isdigit() else None
        if path.endswith("/upload"):
            refusal = self._upload_refusal(client, length)
            if refusal:
                return await _reply(send, 413, {"detail": refusal})
            return await self.app(scope, _without_file_names(receive), send)
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
                f"first {MAX_NOTE_CHARS:,} characters: please send a shorter one.")})
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

    def _upload_refusal(self, client: str, length: int | None) -> str:
        if length is None:
            return "An upload must state its size (Content-Length)."
        now = time.monotonic()
        with self.lock:
            held = self.uploads[client]
            while held and held[0][0] < now - UPLOAD_WINDOW_S:
                held.popleft()
            total = sum(size for _, size in held)
            if total + length > MAX_UPLOAD_BYTES_PER_CLIENT:
                return (f"You have uploaded {total / 2**20:.0f} MB in the last {UPLOAD_WINDOW_S // 60} minutes; "
                        f"the limit is {MAX_UPLOAD_BYTES_PER_CLIENT // 2**20} MB. Please try again later.")
            held.append((now, length))
        return ""

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
