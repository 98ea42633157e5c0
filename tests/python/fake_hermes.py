"""A fake Pyth Hermes server for tests: real HTTP on 127.0.0.1, payloads in the real v2 format.

It runs uvicorn in a thread of its own, so a test's event loop can block or misbehave without
stalling the server. Everything is controllable from the test: which feeds exist and their
prices, failures (429 and others) for the next N requests, how the SSE stream behaves. It
counts requests and connections and keeps the headers it saw.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["FakeFeed", "FakeHermes"]


@dataclass(frozen=True)
class FakeFeed:
    """One feed's current price, in Hermes' integer representation."""

    price: int
    expo: int
    publish_time: int
    conf: int = 1000

    def entry(self, feed_id: str, slot: int) -> dict[str, Any]:
        """This feed as an element of Hermes' ``parsed`` list."""
        price = {
            "price": str(self.price),
            "conf": str(self.conf),
            "expo": self.expo,
            "publish_time": self.publish_time,
        }
        return {
            "id": feed_id,
            "price": price,
            "ema_price": {**price, "price": str(self.price - 7)},
            "metadata": {
                "slot": slot,
                "proof_available_time": self.publish_time + 1,
                "prev_publish_time": self.publish_time - 1,
            },
        }


def _normalize(feed_id: str) -> str:
    return feed_id.strip().lower().removeprefix("0x")


class FakeHermes:
    """A controllable Hermes. Use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        feeds: Mapping[str, FakeFeed] | None = None,
        *,
        sse_updates_per_connection: int | None = 3,
        sse_interval_s: float = 0.03,
        sse_comments: bool = True,
        sse_error_event: bool = False,
        sse_silent: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._feeds = {_normalize(k): v for k, v in (feeds or {}).items()}
        #: Updates sent on each SSE connection before the server closes it (None: never closes).
        self.sse_updates_per_connection = sse_updates_per_connection
        self.sse_interval_s = sse_interval_s
        #: Send ``: No update available`` comments between updates.
        self.sse_comments = sse_comments
        #: Send one ``event: error`` per connection, as Hermes does when an update fails.
        self.sse_error_event = sse_error_event
        #: Accept SSE connections but never send anything (a half-open upstream).
        self.sse_silent = sse_silent
        #: A recorded Hermes response body, served verbatim by ``latest`` and as every SSE
        #: event (``data:`` without a space, as Hermes writes it) instead of the feeds.
        self.recorded: str | None = None
        #: Feeds whose publishers stopped: still re-sent in every update, but their price and
        #: publish_time no longer advance (what Hermes does for a feed nobody publishes).
        self._frozen: set[str] = set()
        self._fail: list[tuple[int, str | None]] = []
        self._slot = 1000
        self._stopping = threading.Event()
        # Counters and observations; read them from the test.
        self.requests = 0
        self.latest_requests = 0
        self.stream_connections = 0
        self.open_streams = 0
        self.failed_responses = 0
        self.request_times_s: list[float] = []
        self.headers_seen: list[dict[str, str]] = []
        self.queries_seen: list[str] = []
        self.sse_sent: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port = 0

    # --- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_feed(self, feed_id: str, feed: FakeFeed) -> None:
        with self._lock:
            self._feeds[_normalize(feed_id)] = feed

    def freeze_feed(self, feed_id: str) -> None:
        """Stop the feed's publishers: it keeps being sent, with the same publish_time."""
        with self._lock:
            self._frozen.add(_normalize(feed_id))

    def remove_feed(self, feed_id: str) -> None:
        with self._lock:
            self._feeds.pop(_normalize(feed_id), None)

    def feed(self, feed_id: str) -> FakeFeed:
        with self._lock:
            return self._feeds[_normalize(feed_id)]

    def fail_next(self, n: int, *, status: int = 429, retry_after: str | None = None) -> None:
        """Answer the next ``n`` requests (either endpoint) with ``status``."""
        with self._lock:
            self._fail.extend([(status, retry_after)] * n)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeHermes:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="fake-hermes", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Hermes did not start")
            time.sleep(0.01)
        self._sock = sock
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> FakeHermes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the app ---------------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/updates/price/latest", self._latest),
                Route("/v2/updates/price/stream", self._stream),
            ]
        )

    def _admit(self, request: Request) -> tuple[list[str] | None, Response | None]:
        """Count the request; return the ids to serve, or the error response to send."""
        with self._lock:
            self.requests += 1
            self.request_times_s.append(time.monotonic())
            self.headers_seen.append(dict(request.headers))
            self.queries_seen.append(request.url.query)
            if self._fail:
                status, retry_after = self._fail.pop(0)
                self.failed_responses += 1
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return None, PlainTextResponse(f"fake failure {status}", status, headers=headers)
            ids = [_normalize(i) for i in request.query_params.getlist("ids[]")]
            ignore = request.query_params.get("ignore_invalid_price_ids") == "true"
            unknown = [i for i in ids if i not in self._feeds]
        if not ids:
            return None, PlainTextResponse("Missing ids", 400)
        if unknown and not ignore:
            return None, PlainTextResponse(f"Price ids not found: {unknown}", 404)
        return [i for i in ids if i not in unknown], None

    def _payload(self, ids: list[str]) -> dict[str, Any]:
        with self._lock:
            self._slot += 1
            parsed = [self._feeds[i].entry(i, self._slot) for i in ids if i in self._feeds]
        binary = "504e4155" + "00" * 16 * len(parsed)  # "PNAU" magic, then filler
        return {"binary": {"encoding": "hex", "data": [binary]}, "parsed": parsed}

    async def _latest(self, request: Request) -> Response:
        ids, error = self._admit(request)
        with self._lock:
            self.latest_requests += 1
        if error is not None:
            return error
        assert ids is not None
        if self.recorded is not None:
            return Response(self.recorded, media_type="application/json")
        return JSONResponse(self._payload(ids))

    async def _stream(self, request: Request) -> Response:
        ids, error = self._admit(request)
        if error is not None:
            return error
        assert ids is not None
        with self._lock:
            self.stream_connections += 1
        return StreamingResponse(self._events(ids), media_type="text/event-stream")

    def _advance(self, ids: list[str]) -> None:
        """Move every streamed feed one tick: publish_time + 1 s, price + 1000 units."""
        with self._lock:
            for i in ids:
                f = self._feeds.get(i)
                if f is not None and i not in self._frozen:
                    self._feeds[i] = replace(
                        f, price=f.price + 1000, publish_time=f.publish_time + 1
                    )

    async def _events(self, ids: list[str]) -> AsyncIterator[str]:
        with self._lock:
            self.open_streams += 1
        try:
            if self.sse_silent:
                # `_stopping` is a threading.Event (set from the test's thread): poll it.
                while not self._stopping.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                return
            sent = 0
            while not self._stopping.is_set():
                limit = self.sse_updates_per_connection
                if limit is not None and sent >= limit:
                    return  # Hermes closes streams after 24 h; this fake after a few updates
                if self.sse_comments:
                    yield ": No update available\n\n"
                if self.sse_error_event and sent == 1:
                    yield "event: error\ndata: Error receiving update: fake\n\n"
                if self.recorded is not None:
                    yield f"data:{self.recorded}\n\n"
                    sent += 1
                    await asyncio.sleep(self.sse_interval_s)
                    continue
                self._advance(ids)
                payload = self._payload(ids)
                with self._lock:
                    self.sse_sent.append(payload)
                yield f"data: {json.dumps(payload)}\n\n"
                sent += 1
                await asyncio.sleep(self.sse_interval_s)
        finally:
            with self._lock:
                self.open_streams -= 1
