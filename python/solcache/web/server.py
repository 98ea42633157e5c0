"""Serving the gateway with uvicorn, with a shutdown that does not wait for open streams.

uvicorn's graceful shutdown waits for every open response to finish before it runs the app's
lifespan shutdown, and an event stream never finishes by itself. :class:`GatewayServer` ends
the streams first (each gets a clean end of response; browsers reconnect to the next
gateway), then shuts down as usual, and bounds the whole by ``graceful_timeout_s``.

It serves HTTP/1.1 with the protocol of :mod:`solcache.web.http_guard`, which enforces the
app's :class:`~solcache.web.limits.GatewayLimits` (header and keep-alive timeouts, the
connection limit) and lets ``/events`` bound what a client has not received. A client that
is not reading when the server stops has its connection aborted: its stream cannot end
cleanly, and waiting for it would hold the shutdown up.
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from solcache.web.http_guard import HttpCounters, guarded_protocol
from solcache.web.hub import EventHub
from solcache.web.limits import GatewayLimits

__all__ = ["GatewayServer"]


class GatewayServer(uvicorn.Server):
    """A ``uvicorn.Server`` for an app made by :func:`solcache.web.create_app`, with the
    limits the app was made with (``create_app(limits=...)``).

    Run it with ``await server.serve()``; stop it with ``server.should_exit = True`` (or a
    signal, unless ``install_signal_handlers`` is False: then the caller handles signals).
    """

    def __init__(
        self,
        app: Starlette,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        log_level: str = "warning",
        access_log: bool = False,
        graceful_timeout_s: float = 3.0,
        install_signal_handlers: bool = True,
    ) -> None:
        if not 0 < graceful_timeout_s < math.inf:
            raise ValueError("graceful_timeout_s must be finite and > 0")
        limits: GatewayLimits = app.state.limits
        counters: HttpCounters = app.state.http_counters
        config = uvicorn.Config(
            app,
            http=guarded_protocol(limits, counters),
            ws="none",  # no websocket routes: an upgrade request is plain HTTP
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=math.ceil(graceful_timeout_s),
        )
        super().__init__(config)
        self._hub: EventHub = app.state.hub
        self._signals = install_signal_handlers

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self._signals:
            yield
            return
        with super().capture_signals():
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End every event stream, then shut down as uvicorn does."""
        self._hub.close_clients()
        await super().shutdown(sockets)
