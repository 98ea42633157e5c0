"""``GET /events``: the Server-Sent Events endpoint, a raw ASGI app over :class:`EventHub`.

Each connection:

1. registers a client with the hub (its bounded queue starts receiving live messages),
2. sends ``retry:`` (the browser's reconnect delay) and, if the request carries a
   ``Last-Event-ID`` header (or a ``last_event_id`` query parameter) that is one of our
   composite ids, replays what the client missed up to the hub's position at registration:
   no gap and no duplicate, at most ``replay_limit`` messages (more missed than that, or
   missed entries already trimmed from the stream: a ``resync`` event with the reason tells
   the client to refetch its snapshots). An id that is not one of ours, or that is ahead of
   what its stream holds (a far-future id, or one from before the stream was deleted), is
   unknown: the client starts live, after a ``resync`` event with the reason ``unknown_id``,
3. writes whatever its queue holds, batching everything queued into one write, and a
   ``: ping`` comment after ``heartbeat_s`` without traffic so half-open connections fail.

A client that stops reading is disconnected by whichever bound it reaches first (see
:class:`solcache.web.limits.GatewayLimits`): more than ``sse_max_unsent_bytes`` written but
not yet received, the oldest byte it has not received older than ``sse_max_unsent_age_s``
(both measured by :class:`SendBacklog`; the connection's kernel send buffer is shrunk to
``sse_send_buffer_bytes`` so it cannot hide megabytes), or one write blocked for
``send_timeout_s``. Since the hub never awaits a client, a stalled client costs the others
nothing but the messages it keeps queued until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from solcache.web.client import Client
from solcache.web.hub import EventHub
from solcache.web.ids import STREAMS, parse_composite
from solcache.web.limits import GatewayLimits
from solcache.web.messages import resync
from solcache.web.send_backlog import SendBacklog, transport_of

__all__ = ["EventsEndpoint"]

logger = logging.getLogger("solcache.web")

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]
_PING = ": ping\n\n"
_REPLAY_CHUNK = 200


class _SendTimeout(Exception):
    """A write to the client did not complete within the send timeout."""


class _FellBehind(Exception):
    """The client has not received what was written to it: ``reason`` says which bound."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class EventsEndpoint:
    """The ``/events`` ASGI app; ``retry_ms`` is the reconnect delay suggested to browsers."""

    def __init__(
        self,
        hub: EventHub,
        *,
        heartbeat_s: float = 15.0,
        send_timeout_s: float = 5.0,
        retry_ms: int = 1000,
        limits: GatewayLimits | None = None,
    ) -> None:
        if not (0 < heartbeat_s < math.inf and 0 < send_timeout_s < math.inf):
            raise ValueError("heartbeat_s and send_timeout_s must be finite and > 0")
        if retry_ms < 1:
            raise ValueError("retry_ms must be at least 1")
        self._hub = hub
        self._heartbeat_s = heartbeat_s
        self._send_timeout_s = send_timeout_s
        self._retry_ms = retry_ms
        self._limits = limits if limits is not None else GatewayLimits()
        # How often a client with bytes in flight is checked against the unsent limits.
        self._check_interval_s = min(1.0, max(0.05, self._limits.sse_max_unsent_age_s / 4))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "GET":  # HEAD would hold a bodiless stream open forever
            await PlainTextResponse("use GET", 405, headers={"allow": "GET"})(scope, receive, send)
            return
        if self._hub.closing:
            unavailable = PlainTextResponse(
                "shutting down", status_code=503, headers={"retry-after": "1"}
            )
            await unavailable(scope, receive, send)
            return
        since, unknown = await self._resume_point(_last_event_id(scope))
        client, position = self._hub.connect(since)
        backlog = SendBacklog(transport_of(scope), self._limits.sse_send_buffer_bytes)
        watcher = asyncio.create_task(_close_on_disconnect(receive, client))
        try:
            await self._stream(send, client, since, position, unknown, backlog)
        except _SendTimeout:
            backlog.abort()
            self._hub.record_send_timeout()
            logger.info("SSE client stalled for %.1f s: disconnected", self._send_timeout_s)
        except _FellBehind as exc:
            backlog.abort()
            self._hub.record_fell_behind(exc.reason)
            logger.info("SSE client disconnected: %s", exc)
        except OSError as exc:  # the connection broke under us
            logger.debug("SSE client went away: %s", exc)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._hub.disconnect(client)

    async def _resume_point(self, last_event_id: str | None) -> tuple[tuple[str, ...] | None, bool]:
        """Where to resume from (None: live only), and whether ``last_event_id`` was unknown."""
        if not last_event_id:
            return None, False
        since = parse_composite(last_event_id)
        if since is None or not await self._hub.known(since):
            self._hub.record_unknown_id()
            return None, True
        return since, False

    async def _stream(
        self,
        send: Send,
        client: Client,
        since: tuple[str, ...] | None,
        position: tuple[str, ...] | None,
        unknown: bool,
        backlog: SendBacklog,
    ) -> None:
        await self._send(send, {"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await self._write(send, backlog, f"retry: {self._retry_ms}\n: connected\n\n")
        if unknown:
            await self._write(send, backlog, client.render([resync("unknown_id", STREAMS)]))
        if since is not None and position is not None:
            await self._replay(send, backlog, client, since, position)
        queue = client.queue
        while True:
            idle_s = time.monotonic() - backlog.last_write_monotonic_s
            wait_s = self._heartbeat_s - idle_s
            if backlog.pending:
                wait_s = min(wait_s, self._check_interval_s)
            await queue.wait(max(0.0, wait_s))
            self._check(backlog)
            messages = queue.take_all()
            if messages:
                text = client.render(messages)
                if text:
                    await self._write(send, backlog, text)
            elif queue.closed:
                break
            elif time.monotonic() - backlog.last_write_monotonic_s >= self._heartbeat_s:
                await self._write(send, backlog, _PING)
        await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})

    def _check(self, backlog: SendBacklog) -> None:
        """Raise :class:`_FellBehind` if the client is over an unsent limit."""
        if not backlog.pending:
            return
        unsent, age_s = backlog.measure()
        limits = self._limits
        if unsent > limits.sse_max_unsent_bytes:
            raise _FellBehind(
                "unsent_bytes",
                f"{unsent} bytes not received (limit {limits.sse_max_unsent_bytes})",
            )
        if age_s > limits.sse_max_unsent_age_s:
            raise _FellBehind(
                "unsent_age",
                f"nothing received for {age_s:.1f} s (limit {limits.sse_max_unsent_age_s:g} s)",
            )

    async def _replay(
        self,
        send: Send,
        backlog: SendBacklog,
        client: Client,
        since: tuple[str, ...],
        position: tuple[str, ...],
    ) -> None:
        replay = await self._hub.replay(since, position)
        messages = replay.messages
        for start in range(0, len(messages), _REPLAY_CHUNK):
            sent_before = client.sent
            text = client.render(messages[start : start + _REPLAY_CHUNK])
            client.replayed += client.sent - sent_before
            await self._write(send, backlog, text)
        client.catch_up_to(position)
        if replay.incomplete:
            reason = next(iter(replay.incomplete.values()))
            notice = resync(reason, list(replay.incomplete))
            await self._write(send, backlog, client.render([notice]))

    async def _write(self, send: Send, backlog: SendBacklog, text: str) -> None:
        body = text.encode()
        await self._send(send, {"type": "http.response.body", "body": body, "more_body": True})
        backlog.record(len(body))

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await send(message)
        except TimeoutError:
            raise _SendTimeout from None


async def _close_on_disconnect(receive: Receive, client: Client) -> None:
    """Wait for the client to hang up, then end its stream."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            client.queue.close()
            return


def _last_event_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"last-event-id":
            return bytes(value).decode("latin-1")
    values = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).get("last_event_id")
    return values[-1] if values else None
