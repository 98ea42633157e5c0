"""uvicorn's HTTP/1.1 protocol with the gateway's connection limits: :func:`guarded_protocol`.

uvicorn times out only idle keep-alive connections: a connection that opens and never
finishes its request head (no bytes, or half a header) is held until the client goes away,
and any number of them can be open. The protocol made here adds

- a **header timeout**: the request head must be complete ``header_timeout_s`` after the
  connection opened, or after the first byte of a next request on a kept-alive connection;
  otherwise the connection is closed (counted as ``header_timeouts``);
- a **connection limit**: a connection beyond ``max_connections`` gets ``503`` with
  ``Retry-After`` and is closed before its request is read (counted as ``rejected``);
- the **keep-alive timeout** ``keep_alive_timeout_s`` in seconds with a fraction;
- an **abort at shutdown** for a connection whose response is blocked on a client that does
  not read (uvicorn would wait for it, then cancel its task with a traceback);
- a **quiet malformed request**: a request whose head parsed but whose body did not (a broken
  chunked encoding) makes uvicorn answer 400 while the app is already handling the request,
  and the app's response then fails with a traceback; here the app sees the client as gone
  instead, and uvicorn's one warning line is all that is logged (counted as
  ``bad_requests``).

It also hands each request's transport to the app (:data:`TRANSPORT_EXTENSION`), so
``/events`` can measure and bound what a client has not received.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from solcache.web.limits import GatewayLimits
from solcache.web.send_backlog import TRANSPORT_EXTENSION

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["HttpCounters", "guarded_protocol"]

logger = logging.getLogger("solcache.web")

_BUSY_TEXT = b"too many connections\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)


@dataclass(slots=True)
class HttpCounters:
    """Connection counts of one gateway (the ``solcache_http_*`` metrics)."""

    #: Connections open now (rejected ones included until they are closed).
    open: int = 0
    #: Connections refused with 503 because ``max_connections`` were open.
    rejected: int = 0
    #: Connections closed because their request head was not complete in time.
    header_timeouts: int = 0
    #: Requests answered 400 (or cut off) because they did not parse.
    bad_requests: int = 0
    #: True from the first refusal until a connection is accepted again (one warning each).
    at_limit: bool = False


def guarded_protocol(limits: GatewayLimits, counters: HttpCounters) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass enforcing ``limits`` and counting into ``counters``; pass it
    as ``uvicorn.Config(http=...)``."""

    class GuardedH11Protocol(H11Protocol):
        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            # uvicorn declares whole seconds; its timer takes any float.
            self.timeout_keep_alive = limits.keep_alive_timeout_s  # type: ignore[assignment]
            self._app = self.app
            self.app = self._run_app
            self._head_timer: asyncio.TimerHandle | None = None
            self._awaiting_head = True
            self._refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            counters.open += 1
            if counters.open > limits.max_connections:
                self._refuse()
                return
            counters.at_limit = False
            self._start_head_timer()

        def _refuse(self) -> None:
            self._refused = True
            counters.rejected += 1
            if not counters.at_limit:
                counters.at_limit = True
                logger.warning(
                    "HTTP connection limit (%d) reached: refusing new connections with 503",
                    limits.max_connections,
                )
            self.transport.write(_BUSY)
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            counters.open -= 1
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._awaiting_head and self._head_timer is None:
                self._start_head_timer()  # the first byte of a next request
            super().data_received(data)

        def on_response_complete(self) -> None:
            # The next request's head is timed from its first byte (till then the
            # keep-alive timeout applies).
            self._awaiting_head = True
            super().on_response_complete()

        async def _run_app(
            self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
        ) -> None:
            self._awaiting_head = False
            self._stop_head_timer()
            if scope["type"] == "http":
                scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = {
                    "transport": self.transport
                }
            await self._app(scope, receive, send)

        def _start_head_timer(self) -> None:
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_timeout)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._awaiting_head and not self.transport.is_closing():
                counters.header_timeouts += 1
                logger.debug(
                    "closing a connection without a complete request head after %g s",
                    limits.header_timeout_s,
                )
                self.transport.close()

        def shutdown(self) -> None:
            super().shutdown()
            if self.flow is not None and self.flow.write_paused:
                # A response is blocked on a client that does not read: it can never end
                # cleanly, so do not let it hold the server's shutdown up.
                self.transport.abort()

        def send_400_response(self, msg: str) -> None:
            counters.bad_requests += 1
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                # The app is already handling this request: to it, the client is gone.
                cycle.disconnected = True
                cycle.message_event.set()
            try:
                super().send_400_response(msg)
            except h11.LocalProtocolError:  # a response is already under way: just hang up
                self.transport.close()

    return GuardedH11Protocol
