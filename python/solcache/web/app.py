"""The HTTP gateway: :func:`create_app` builds the Starlette app.

Routes (all GET, read-only):

- ``/``: the live dashboard (one self-contained HTML page).
- ``/events``: Server-Sent Events from ``stream:price-updates``, ``stream:trade-events`` and
  ``stream:ui-events`` plus ``pool_state`` snapshots (see :mod:`solcache.web.sse`).
- ``/api/status``, ``/api/prices``, ``/api/pools``: JSON (see :mod:`solcache.web.api`).
- ``/metrics``: Prometheus text; ``/healthz``: 200 when healthy (the ``health`` callable's
  verdict, or else Redis answering), 503 with the reason otherwise.

The app's lifespan starts the stream reader (and the pool poller, and the metrics refresher
when the app made its own registry) and stops them on shutdown. The pool, caches and event
stream belong to the caller, who opens them before and closes them after the app runs.
Serve it with :class:`solcache.web.GatewayServer`, which ends open event streams when it
shuts down (plain uvicorn waits for them until ``timeout_graceful_shutdown``) and enforces
the app's :class:`~solcache.web.limits.GatewayLimits`.

A known path with a trailing slash (``/api/status/``) redirects to the path without it; the
``Location`` is relative, never built from the request's ``Host`` header.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from solcache._core import PoolStateCache, PriceCache, RedisPool
from solcache.prometheus import MetricsRefresher, build_registry
from solcache.streams import EventStream
from solcache.web.api import Api
from solcache.web.http_guard import HttpCounters
from solcache.web.hub import EventHub
from solcache.web.limit_metrics import LimitsCollector
from solcache.web.limits import GatewayLimits
from solcache.web.metrics import GatewayCollector
from solcache.web.sse import EventsEndpoint
from solcache.web.status import StatusReporter

__all__ = ["create_app"]


def create_app(
    pool: RedisPool,
    events: EventStream,
    *,
    prices: PriceCache,
    pools: PoolStateCache,
    tokens: Sequence[str],
    pool_addresses: Sequence[str],
    pool_pairs: Mapping[str, str] | None = None,
    status: Callable[[], Mapping[str, object]] | None = None,
    health: Callable[[], tuple[bool, str]] | None = None,
    registry: CollectorRegistry | None = None,
    heartbeat_s: float = 15.0,
    client_queue_size: int = 256,
    send_timeout_s: float = 5.0,
    replay_limit: int = 1000,
    block_ms: int = 1000,
    pool_poll_interval_s: float = 0.1,
    read_timeout_s: float = 2.0,
    retry_ms: int = 1000,
    limits: GatewayLimits | None = None,
) -> Starlette:
    """Build the gateway over an open pool, its event stream and caches.

    ``tokens`` and ``pool_addresses`` are what ``/api/prices``, ``/api/pools`` and the
    dashboard show (pool states are polled every ``pool_poll_interval_s`` and streamed as
    ``pool_state`` events); ``pool_pairs`` names what each pool trades (``SOL/USDC``), for
    ``/api/pools`` and the dashboard. ``status`` returns the services' state for ``/api/status``
    (JSON-serializable values; others are shown with ``str``). ``health`` returns the
    services' verdict for ``/healthz``: ``(healthy, text)``; without it ``/healthz`` only
    checks that Redis answers. ``registry`` is what
    ``/metrics`` serves; the gateway registers its ``solcache_sse_*`` collector there while it
    runs. Without one the app makes its own (``solcache.prometheus.build_registry``) and runs
    its refresher with the app.

    Each ``/events`` client gets a queue of ``client_queue_size`` messages, a ``: ping``
    after ``heartbeat_s`` without traffic, is disconnected when a write blocks for
    ``send_timeout_s``, and on reconnect gets at most ``replay_limit`` missed events. The
    reader tails the streams with one ``XREAD BLOCK`` of up to ``block_ms`` on a connection
    of its own, so an event reaches the fan-out as soon as Redis has it; each other Redis
    call of the gateway gives up after ``read_timeout_s``. ``retry_ms`` is the
    reconnect delay suggested to browsers. ``limits`` bound what one connection may cost
    (default: ``GatewayLimits()``); the connection limits and the ``/events`` unsent limits
    are enforced when served by :class:`~solcache.web.GatewayServer`.
    """
    limits = limits if limits is not None else GatewayLimits()
    http_counters = HttpCounters()
    hub = EventHub(
        events,
        pools=pools,
        pool_addresses=pool_addresses,
        client_queue_size=client_queue_size,
        replay_limit=replay_limit,
        block_ms=block_ms,
        pool_poll_interval_s=pool_poll_interval_s,
        read_timeout_s=read_timeout_s,
    )
    own_refresher: MetricsRefresher | None = None
    if registry is None:
        registry, own_refresher = build_registry(pool, events)
    serving = registry
    reporter = StatusReporter(pool, events, hub, status, timeout_s=read_timeout_s)
    api = Api(
        prices=prices,
        pools=pools,
        tokens=tokens,
        pool_addresses=pool_addresses,
        reporter=reporter,
        health=health,
        pool_pairs=pool_pairs,
        registry=serving,
        read_timeout_s=read_timeout_s,
    )
    sse = EventsEndpoint(
        hub,
        heartbeat_s=heartbeat_s,
        send_timeout_s=send_timeout_s,
        retry_ms=retry_ms,
        limits=limits,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway_collector = GatewayCollector(hub)
        limits_collector = LimitsCollector(hub, http_counters)
        serving.register(gateway_collector)
        serving.register(limits_collector)
        await hub.start()
        if own_refresher is not None:
            await own_refresher.collector.refresh(read_timeout_s)  # the first scrape has it
            own_refresher.start()
        try:
            yield
        finally:
            if own_refresher is not None:
                await own_refresher.stop()
            await hub.stop()
            serving.unregister(limits_collector)
            serving.unregister(gateway_collector)

    routes = [
        Route("/", api.dashboard, methods=["GET"]),
        Route("/events", sse, methods=["GET"]),
        Route("/api/status", api.status, methods=["GET"]),
        Route("/api/prices", api.prices, methods=["GET"]),
        Route("/api/pools", api.pools, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False  # Starlette's redirect echoes the Host header
    app.router.default = _SlashRedirect({route.path for route in routes}, app.router.default)
    app.state.hub = hub
    app.state.limits = limits
    app.state.http_counters = http_counters
    app.state.registry = serving
    return app


class _SlashRedirect:
    """What the router does with an unknown path: a known path with trailing slashes gets a
    redirect to it with a relative ``Location`` (one of our own paths, so neither the Host
    header nor a ``//host`` path can steer it); anything else goes to ``fallback`` (404)."""

    def __init__(self, paths: set[str], fallback: ASGIApp) -> None:
        self._paths = paths
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            bare = path.rstrip("/")
            if bare != path and bare in self._paths:
                query = bytes(scope.get("query_string", b"")).decode("latin-1")
                location = f"{bare}?{query}" if query else bare
                await Response(status_code=307, headers={"location": location})(
                    scope, receive, send
                )
                return
        await self._fallback(scope, receive, send)
