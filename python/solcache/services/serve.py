"""`solcache serve`: wire Redis, sources, services, the gateway and metrics; run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TextIO

from solcache._core import EVENT_TYPES, PoolStateCache, PriceCache, redact_url
from solcache.config import Settings
from solcache.exceptions import SolcacheError
from solcache.prometheus import ServiceSnapshot, build_registry
from solcache.redis_pool import RedisPool
from solcache.services.health import Freshness, HealthCheck, HealthMonitor, HealthReport
from solcache.services.listener import bind_listener
from solcache.services.pool_state_service import PoolStateUpdater
from solcache.services.price_service import PriceUpdateService
from solcache.services.private_redis import PrivateRedis, PrivateRedisError
from solcache.services.status_line import StatusLine
from solcache.services.supervisor import Supervised, Supervisor
from solcache.services.trade_simulator import TradeSimulator, simulated_desk
from solcache.sources import (
    PYTH_FEED_IDS,
    PythPriceSource,
    SimulatedPoolSource,
    SimulatedPriceSource,
)
from solcache.sources.base import PriceSource
from solcache.streams import EventStream
from solcache.subscriptions import SubscriptionManager
from solcache.web.app import create_app
from solcache.web.hub import EventHub
from solcache.web.limits import GatewayLimits
from solcache.web.server import GatewayServer

__all__ = ["serve"]

#: Consumer group the service itself uses to count consumed events (and prove delivery).
SERVE_GROUP = "solcache-serve"
#: How long the service's consumer blocks per read (its health is judged in these periods).
CONSUMER_BLOCK_MS = 100


def make_sources(settings: Settings) -> tuple[PriceSource, SimulatedPoolSource]:
    """The configured price source, and simulated pools that follow its prices."""
    pool_step_s = 1.0 / settings.pool_update_hz
    if settings.price_source == "pyth":
        key = settings.pyth_api_key.get_secret_value() if settings.pyth_api_key else None
        pyth = PythPriceSource(
            settings.pyth_feed_ids or PYTH_FEED_IDS,
            base_url=settings.pyth_base_url,
            api_key=key,
            mode=settings.pyth_mode,
        )
        return pyth, SimulatedPoolSource(seed=settings.simulation_seed, step_s=pool_step_s)
    simulated = SimulatedPriceSource(
        seed=settings.simulation_seed, step_s=1.0 / settings.publish_hz
    )
    pools = SimulatedPoolSource(
        seed=settings.simulation_seed,
        step_s=pool_step_s,
        reference_prices=lambda: simulated.last_prices,
    )
    return simulated, pools


async def serve(
    settings: Settings,
    *,
    duration_s: float | None = None,
    force_embedded: bool = False,
    status_line: bool = True,
    out: TextIO = sys.stderr,
) -> int:
    """Run until ``duration_s`` elapses or SIGINT/SIGTERM; returns the exit code.

    0 once stopped (by either signal or the duration); 2 when it cannot start (the HTTP port
    is taken, Redis is unusable), after one line on ``out`` and before anything was written
    to Redis; 1 when the HTTP server fails while running (every service is stopped first).
    """
    # The port first: a busy port must fail before anything touches Redis.
    try:
        listener = bind_listener(settings.http_host, settings.http_port)
    except OSError as e:
        print(
            f"solcache: cannot listen on {settings.http_host}:{settings.http_port}: "
            f"{e.strerror or e} (choose another with --port or SOLCACHE_HTTP_PORT)",
            file=out,
        )
        return 2
    with listener, _stop_on_signals() as stop:
        return await _serve_on(
            settings, listener, stop, duration_s, force_embedded, status_line, out
        )


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (both stop `serve` cleanly)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _serve_on(
    settings: Settings,
    listener: socket.socket,
    stop: asyncio.Event,
    duration_s: float | None,
    force_embedded: bool,
    status_line: bool,
    out: TextIO,
) -> int:
    sources = make_sources(settings)  # a bad source setting fails here, before Redis
    embedded: PrivateRedis | None = None
    url = settings.redis_url
    # No URL: a private server, never whatever happens to listen on 6379 (a shared Redis gets
    # only what it was explicitly pointed at).
    if force_embedded or url is None:
        embedded = PrivateRedis()
        try:
            embedded.start()
        except PrivateRedisError as e:
            embedded.close()
            print(f"solcache: {e}", file=out)
            print("solcache: --redis-url or SOLCACHE_REDIS_URL uses a Redis of yours", file=out)
            return 2
        url = embedded.unix_url
        print(
            f"solcache: started a private redis-server ({url}, nothing persisted; it stops on "
            "exit); --redis-url or SOLCACHE_REDIS_URL uses yours",
            file=out,
        )
    try:
        return await _run(settings, url, listener, sources, stop, duration_s, status_line, out)
    finally:
        if embedded is not None:
            embedded.close()
            print("solcache: private redis-server stopped", file=out)


async def _run(
    settings: Settings,
    url: str,
    listener: socket.socket,
    sources: tuple[PriceSource, SimulatedPoolSource],
    stop: asyncio.Event,
    duration_s: float | None,
    status_line: bool,
    out: TextIO,
) -> int:
    try:
        pool = await RedisPool.connect(url, settings=settings)
    except SolcacheError as e:
        print(
            f"solcache: cannot use Redis at {redact_url(url)}: {e}",
            file=out,
        )
        print(
            "solcache: check the URL (SOLCACHE_REDIS_URL / --redis-url) or run `solcache doctor`",
            file=out,
        )
        return 2
    async with pool:
        events = EventStream(pool, maxlen=settings.stream_maxlen)
        prices = PriceCache(pool, ttl_ms=settings.price_ttl_ms)
        pools = PoolStateCache(pool, ttl_ms=settings.pool_state_ttl_ms)
        source, pool_source = sources
        price_service = PriceUpdateService(
            source,
            prices,
            events,
            publish_hz=settings.publish_hz,
            max_confidence_fraction=settings.max_confidence_fraction or None,
        )
        pool_updater = PoolStateUpdater(pool_source, pools, update_hz=settings.pool_update_hz)
        # A simulated market also trades, so every event type flows (the demo's Events panel).
        desk = simulated_desk(source, pool_source, events, seed=settings.simulation_seed)
        desks = [desk] if desk is not None else []
        consumed = {"n": 0}

        async def count(_entry: object) -> None:
            consumed["n"] += 1

        # Backoff capped at 1 s: after an outage of any length the group reads again within
        # about a second of Redis coming back (a retry against a dead server costs nothing).
        port = int(listener.getsockname()[1])
        monitor: HealthMonitor | None = None

        async def consumer_state(state: str, error: str | None) -> None:
            # Published through the health monitor's status path (kept until Redis takes it).
            if monitor is not None:
                message = "reading again" if error is None else f"retrying: {error}"
                monitor.announce("consumer", state, message)

        manager = SubscriptionManager(
            events,
            SERVE_GROUP,
            serve_consumer_name(port),
            start_id="$",
            block_ms=CONSUMER_BLOCK_MS,
            backoff_max_s=1.0,
            on_state_change=consumer_state,
        )
        for stream in sorted({s for _, s in EVENT_TYPES.values()}):
            manager.on_stream(stream, count)

        def health() -> HealthReport:
            return monitor.report if monitor is not None else _STARTING

        def snapshot() -> ServiceSnapshot:
            st = price_service.stats
            report = health()
            failing = {check for check, _ in report.reasons}
            return ServiceSnapshot(
                events_published_total=st.events_published,
                events_consumed_total=consumed["n"],
                consumer_retrying=manager.state == "retrying",
                consumer_outages_total=manager.stats.outages,
                consumer_retries_total=manager.stats.retries,
                consumer_group_recreations_total=manager.stats.group_recreations,
                source_staleness_seconds=st.source_staleness_s,
                prices_refused_total=st.prices_refused,
                degraded=report.status == "degraded",
                health_checks={c: c in failing for c in (monitor.checks if monitor else ())},
                health_changes_total=report.changes,
                task_errors=task_errors(),
            )

        def status() -> Mapping[str, object]:
            st = price_service.stats
            return {
                "health": health().as_dict(),
                "price_service": {
                    "degraded": st.degraded,
                    "reason": st.reason,
                    "ticks": st.ticks,
                    "errors": st.errors,
                    "events_published": st.events_published,
                    "missing": list(st.missing),
                    "prices_refused": st.prices_refused,
                    "refused": list(st.refused),
                    "source": source.name,
                    "source_staleness_s": st.source_staleness_s,
                },
                "pool_updater": {
                    "ticks": pool_updater.ticks,
                    "errors": pool_updater.errors,
                    "last_error": pool_updater.last_error,
                },
                "consumer": {
                    "group": manager.group,
                    "name": manager.consumer,
                    "state": manager.state,
                    "errors": manager.stats.errors,
                    "outages": manager.stats.outages,
                    "group_recreations": manager.stats.group_recreations,
                    "last_error": manager.last_error,
                },
                "events_consumed": consumed["n"],
                **{d.component: d.status() for d in desks},
            }

        registry, refresher = build_registry(pool, events, snapshot)

        async def start_refresher() -> None:
            refresher.start()

        supervisor = Supervisor(
            [
                Supervised(
                    price_service.component,
                    price_service.start,
                    price_service.stop,
                    lambda: price_service.running,
                ),
                Supervised(
                    pool_updater.component,
                    pool_updater.start,
                    pool_updater.stop,
                    lambda: pool_updater.running,
                ),
                Supervised("consumer", manager.start, manager.stop, lambda: manager.running),
                Supervised(
                    "metrics-refresher",
                    start_refresher,
                    refresher.stop,
                    lambda: refresher.running,
                ),
                *(_supervised(d) for d in desks),
            ]
        )

        def task_errors() -> dict[str, int]:
            counts = {
                price_service.component: price_service.stats.errors,
                pool_updater.component: pool_updater.errors,
                "consumer": manager.stats.errors,
                "metrics-refresher": refresher.collector.refresh_errors,
                "health-monitor": monitor.errors if monitor is not None else 0,
                **{d.component: d.errors for d in desks},
            }
            for service in supervisor.services:  # failed starts, unexpected stops
                counts[service.name] = counts.get(service.name, 0) + service.errors
            return counts

        app = create_app(
            pool,
            events,
            prices=prices,
            pools=pools,
            tokens=source.tokens,
            pool_addresses=pool_source.addresses,
            pool_pairs=pool_source.pairs,
            status=status,
            health=lambda: (health().healthy, health().text()),
            registry=registry,
            limits=GatewayLimits.from_settings(settings),
        )
        hub: EventHub = app.state.hub
        # GatewayServer closes open /events streams on shutdown (plain uvicorn would wait for
        # every browser to go away); signals are handled here, not by uvicorn.
        server = GatewayServer(
            app, host=settings.http_host, port=settings.http_port, install_signal_handlers=False
        )
        monitor = HealthMonitor(
            events,
            _health_checks(settings, pool, price_service, pool_updater, manager, hub, supervisor),
            hold_s=settings.health_hold_s,
        )
        await monitor.starting(f"{source.name} source, {len(source.tokens)} tokens")
        code = 0
        server_task: asyncio.Task[None] | None = None
        started = time.monotonic()
        console = StatusLine(out, enabled=status_line)
        try:
            await supervisor.start()
            server_task = asyncio.create_task(_serve_http(server, listener), name="solcache-http")
            # uvicorn offers no "started" event to await: poll its flag (bounded by the startup).
            for _ in range(1500):
                if server.started or server_task.done():
                    break
                await asyncio.sleep(0.02)
            if not server.started:
                code = _http_failed(server_task, out)
            else:
                await monitor.start()
                host, port = settings.http_host, listener.getsockname()[1]
                print(
                    f"solcache: dashboard at http://{host}:{port}/  "
                    f"(metrics at /metrics); Ctrl-C stops",
                    file=out,
                )
            started = time.monotonic()
            while code == 0 and not stop.is_set():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                if server_task.done():  # the front door closed: serve would be deaf
                    code = _http_failed(server_task, out)
                    break
                # The line shows the reported health (the checks failing), not one service's.
                report = health()
                shown = dataclasses.replace(
                    price_service.stats,
                    degraded=report.status == "degraded",
                    reason=", ".join(check for check, _ in report.reasons),
                )
                console.update(time.monotonic() - started, shown, consumed["n"], pool.metrics())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            console.close()
            server.should_exit = True
            if server_task is not None:
                await asyncio.gather(server_task, return_exceptions=True)
            await supervisor.stop()  # every service, even if some fail to stop
            await monitor.stop()  # publishes `stopped`
        st = price_service.stats
        print(
            f"solcache: stopped after {time.monotonic() - started:.1f} s: {st.ticks} ticks, "
            f"{st.events_published} events published, {consumed['n']} consumed",
            file=out,
        )
        return code


#: Health before the monitor's first verdict.
_STARTING = HealthReport(status="starting", reasons=(), since_s=0.0, pending=None, changes=0)


def serve_consumer_name(port: int) -> str:
    """``<hostname>:<port>``: the consumer `serve` reads its group as.

    Only one process can listen on a host's port at a time, so no two running services share
    a name, and a restarted service takes over its predecessor's consumer (and its pending
    entries) instead of leaving one more dead consumer in the group.
    """
    return re.sub(r"[^A-Za-z0-9:._-]", "_", f"{socket.gethostname()}:{port}")[:128]


def _health_checks(
    settings: Settings,
    pool: RedisPool,
    price_service: PriceUpdateService,
    pool_updater: PoolStateUpdater,
    manager: SubscriptionManager,
    hub: EventHub,
    supervisor: Supervisor,
) -> dict[str, HealthCheck]:
    """The checks behind `serve`'s health; docs/monitoring.md ("Health") describes each."""
    missed = settings.health_max_missed_ticks

    async def redis() -> str | None:
        probe = await pool.health()
        return None if probe.reachable else f"unreachable: {probe.error}"

    async def price_source() -> str | None:
        return price_service.stats.source_problem or None

    async def gateway_reader() -> str | None:
        if not hub.running:
            return "not running"
        return f"failing: {hub.last_error}" if hub.last_error else None

    async def services() -> str | None:
        return "; ".join(supervisor.problems()) or None

    def price_error() -> str:
        st = price_service.stats
        return st.write_error or st.source_problem

    return {
        "redis": redis,
        "price_writes": Freshness(
            "no prices written",
            lambda: price_service.stats.last_write_monotonic_s,
            price_service.period_s,
            missed,
            price_error,
        ),
        "price_source": price_source,
        "pool_writes": Freshness(
            "no pool states written",
            lambda: pool_updater.last_write_monotonic_s,
            pool_updater.period_s,
            missed,
            lambda: pool_updater.last_error,
        ),
        "consumer": Freshness(
            f"no read by consumer {manager.group}/{manager.consumer}",
            lambda: manager.last_read_monotonic_s,
            CONSUMER_BLOCK_MS / 1000,
            missed,
            lambda: manager.last_error,
        ),
        "gateway_reader": gateway_reader,
        "services": services,
    }


async def _serve_http(server: GatewayServer, listener: socket.socket) -> None:
    """Run the HTTP server on the socket bound at start."""
    try:
        await server.serve(sockets=[listener])
    except SystemExit as e:  # uvicorn's way to say the app's startup failed
        raise RuntimeError(f"the HTTP server exited with code {e.code}") from None


def _http_failed(task: asyncio.Task[None], out: TextIO) -> int:
    error = task.exception() if task.done() and not task.cancelled() else None
    what = str(error) if error is not None else "ended" if task.done() else "not started in 30 s"
    print(f"solcache: the HTTP server stopped ({what}); stopping", file=out)
    return 1


def _supervised(desk: TradeSimulator) -> Supervised:
    return Supervised(desk.component, desk.start, desk.stop, lambda: desk.running)
