"""A light client of the page, speaking Gradio's protocol as the browser does (for the load scripts).

The browser sends an event that skips the queue (``queue=False``) as one ``POST
/gradio_api/run/<endpoint>`` and reads the reply; a queued event as ``POST /gradio_api/queue/join``,
then reads the session's event stream (``GET /gradio_api/queue/data``, server-sent events) until
the event completes. State inputs go as null (the server holds them per session). This client does
the same over one ``httpx.AsyncClient``, so many sessions run in one process and one thread, cheaply:
``gradio_client`` keeps a thread per call and polls for messages every 50 ms, which on a small
machine costs the server CPU and adds its own wait to every figure.

    config = await page_config(http, url)
    session = PageSession(http, url, config)
    outputs = await session.call("/analyze_organ_system", note, "epee")  # every non-state input, in order
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

import httpx

API = "/gradio_api"


class CallError(Exception):
    """A call the page refused or failed: ``kind`` is ``refused`` (HTTP 4xx/5xx before it ran, e.g. a
    full queue or the guard's limit) or ``failed`` (it ran and raised); the message is the page's."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


async def page_config(http: httpx.AsyncClient, url: str) -> dict:
    """The page's config, as the browser reads it when the page opens."""
    reply = await http.get(f"{url}/config")
    reply.raise_for_status()
    return reply.json()


@dataclass
class Endpoint:
    """One event of the page: its index, whether it skips the queue, and which inputs are state."""

    fn_index: int
    api_name: str
    queued: bool
    state_inputs: list[bool]


def endpoints(config: dict) -> dict[str, Endpoint]:
    """Every named event of the page by ``/api_name``."""
    kinds = {c["id"]: c["type"] for c in config["components"]}
    return {f"/{d['api_name']}": Endpoint(d["id"], f"/{d['api_name']}", d.get("queue") is not False,
                                          [kinds.get(i) == "state" for i in d["inputs"]])
            for d in config["dependencies"] if d.get("api_name")}


@dataclass
class Timing:
    """Where one call's time went, in seconds from its start: the reply to the POST (for a queued
    event, the join), the event's start on the server (``process_starts``) and its last message."""

    posted: float = 0.0
    started: float | None = None
    done: float = 0.0


@dataclass
class PageSession:
    """One visitor: a session hash and the page's endpoints; ``call`` sends one event and waits for it."""

    http: httpx.AsyncClient
    url: str
    config: dict
    session_hash: str = field(default_factory=lambda: secrets.token_hex(6))
    last: Timing = field(default_factory=Timing)

    def __post_init__(self):
        self.endpoints = endpoints(self.config)

    def body(self, endpoint: Endpoint, values: tuple) -> dict:
        given = iter(values)
        data = [None if state else next(given) for state in endpoint.state_inputs]
        return {"data": data, "event_data": None, "fn_index": endpoint.fn_index, "trigger_id": None,
                "session_hash": self.session_hash}

    async def call(self, api_name: str, *values) -> list:
        """Send one event with ``values`` for its non-state inputs; its output values (``CallError`` if
        refused or failed). ``last`` holds where its time went."""
        endpoint = self.endpoints[api_name]
        start = time.perf_counter()
        self.last = timing = Timing()
        if not endpoint.queued:
            reply = await self.http.post(f"{self.url}{API}/run{api_name}", json=self.body(endpoint, values))
            timing.posted = timing.done = time.perf_counter() - start
            if reply.status_code != 200:
                raise CallError("failed" if reply.status_code == 500 else "refused", _message(reply))
            return reply.json()["data"]
        reply = await self.http.post(f"{self.url}{API}/queue/join", json=self.body(endpoint, values))
        timing.posted = time.perf_counter() - start
        if reply.status_code != 200:
            raise CallError("refused", _message(reply))
        event_id = reply.json()["event_id"]
        completed = None
        # read on to the server's close_stream, as the browser does: a stream dropped earlier makes the
        # server clean up the session's events, which could catch its next one
        async with self.http.stream("GET", f"{self.url}{API}/queue/data",
                                    params={"session_hash": self.session_hash}) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message["msg"] == "close_stream":
                    break
                if message.get("event_id") not in (None, event_id):
                    continue
                if message["msg"] == "process_starts":
                    timing.started = time.perf_counter() - start
                elif message["msg"] == "process_completed":
                    timing.done = time.perf_counter() - start
                    completed = message
                elif message["msg"] == "unexpected_error":
                    raise CallError("failed", str(message.get("message"))[:300])
        if completed is None:
            raise CallError("failed", "the event stream closed before the event completed")
        output = completed.get("output") or {}
        if not completed.get("success"):
            raise CallError("failed", str(output.get("error") or output)[:300])
        return output["data"]


def _message(reply: httpx.Response) -> str:
    """The page's reason for a refusal: Gradio's validation message or its ``detail``."""
    try:
        detail = reply.json().get("detail", reply.text)
    except ValueError:
        return f"HTTP {reply.status_code}"
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        detail = detail[0].get("message", detail)
    return f"HTTP {reply.status_code}: {str(detail)[:300]}"
