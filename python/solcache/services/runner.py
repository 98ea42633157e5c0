"""`solcache serve`: wire Redis, sources, services, the gateway and metrics; run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from solcache._core import EVENT_TYPES, PoolStateCache, PriceCache, redact_url
from solcache.config import DEFAULT_REDIS_URL, Settings
from solcache.exceptions import SolcacheError
from solcache.pool import RedisPool
from solcache.prometheus import ServiceSnapshot, build_registry
from solcache.services.embedded_redis import EmbeddedRedis, EmbeddedRedisError, something_listens
from solcache.services.pool_service import PoolStateUpdater
from solcache.services.price_service import PriceUpdateService
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
from solcache.web.server import GatewayServer

__all__ = ["serve"]

#: Consumer group the service itself uses to count consumed events (and prove delivery).
SERVE_GROUP = "solcache-serve"


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
    """Run until ``duration_s`` elapses or SIGINT/SIGTERM; returns the exit code."""
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if force_embedded or (url is None and not something_listens("127.0.0.1", 6379)):
        embedded = EmbeddedRedis()
        try:
            url = embedded.start()
        except EmbeddedRedisError as e:
            print(f"solcache: {e}", file=out)
            return 2
        print(
            f"solcache: no Redis configured: started a private redis-server ({url}, "
            "nothing persisted); it stops on exit",
            file=out,
        )
    elif url is None:
        url = DEFAULT_REDIS_URL
        print(f"solcache: using the Redis listening at {url}", file=out)
    try:
        return await _run(settings, url, duration_s, status_line, out)
    finally:
        if embedded is not None:
            embedded.stop()
            print("solcache: private redis-server stopped", file=out)


async def _run(
    settings: Settings, url: str, duration_s: float | None, status_line: bool, out: TextIO
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
        source, pool_source = make_sources(settings)
        price_service = PriceUpdateService(source, prices, events, publish_hz=settings.publish_hz)
        pool_updater = PoolStateUpdater(pool_source, pools, update_hz=settings.pool_update_hz)
        consumed = {"n": 0}

        async def count(_entry: object) -> None:
            consumed["n"] += 1

        # Backoff capped at 1 s: after an outage of any length the group reads again within
        # about a second of Redis coming back (a retry against a dead server costs nothing).
        manager = SubscriptionManager(events, SERVE_GROUP, start_id="$", backoff_max_s=1.0)
        for stream in sorted({s for _, s in EVENT_TYPES.values()}):
            manager.on_stream(stream, count)

        def snapshot() -> ServiceSnapshot:
            st = price_service.stats
            return ServiceSnapshot(
                events_published_total=st.events_published,
                events_consumed_total=consumed["n"],
                source_staleness_seconds=st.source_staleness_s,
                degraded=st.degraded,
            )

        def status() -> Mapping[str, object]:
            st = price_service.stats
            return {
                "price_service": {
                    "degraded": st.degraded,
                    "reason": st.reason,
                    "ticks": st.ticks,
                    "events_published": st.events_published,
                    "missing": list(st.missing),
                    "source": source.name,
                    "source_staleness_s": st.source_staleness_s,
                },
                "pool_updater": {
                    "ticks": pool_updater.ticks,
                    "errors": pool_updater.errors,
                    "last_error": pool_updater.last_error,
                },
                "events_consumed": consumed["n"],
            }

        registry, refresher = build_registry(pool, events, snapshot)
        app = create_app(
            pool,
            events,
            prices=prices,
            pools=pools,
            tokens=source.tokens,
            pool_addresses=pool_source.addresses,
            status=status,
            registry=registry,
        )
        # GatewayServer closes open /events streams on shutdown (plain uvicorn would wait for
        # every browser to go away); signals are handled here, not by uvicorn.
        server = GatewayServer(
            app, host=settings.http_host, port=settings.http_port, install_signal_handlers=False
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)

        await price_service.start()
        await pool_updater.start()
        await manager.start()
        refresher.start()
        server_task = asyncio.create_task(server.serve(), name="solcache-http")
        # uvicorn offers no "started" event to await: poll its flag (bounded by the startup).
        for _ in range(500):
            if server.started or server_task.done():
                break
            await asyncio.sleep(0.02)
        if not server.started:
            print(
                f"solcache: no HTTP server on {settings.http_host}:{settings.http_port} "
                "(port in use?)",
                file=out,
            )
            stop.set()
        else:
            print(
                f"solcache: dashboard at http://{settings.http_host}:{settings.http_port}/  "
                f"(metrics at /metrics); Ctrl-C stops",
                file=out,
            )
        started = time.monotonic()
        try:
            while not stop.is_set():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                if status_line:
                    print(
                        "\r"
                        + _status_line(
                            time.monotonic() - started, price_service, consumed["n"], pool
                        ),
                        end="",
                        file=out,
                        flush=True,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            if status_line:
                print(file=out)
            server.should_exit = True
            await asyncio.gather(server_task, return_exceptions=True)
            await refresher.stop()
            await manager.stop()
            await pool_updater.stop()
            await price_service.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        st = price_service.stats
        print(
            f"solcache: stopped after {time.monotonic() - started:.1f} s: {st.ticks} ticks, "
            f"{st.events_published} events published, {consumed['n']} consumed",
            file=out,
        )
        return 0


def _status_line(
    elapsed_s: float, service: PriceUpdateService, consumed: int, pool: RedisPool
) -> str:
    st = service.stats
    get = pool.metrics().get("price_set_many")
    p99 = f"{get.p99_us / 1000:.2f} ms" if get is not None else "-"
    state = f"DEGRADED ({st.reason})" if st.degraded else "healthy"
    rate = st.ticks / elapsed_s if elapsed_s > 0 else 0.0
    return (
        f"[{elapsed_s:6.1f} s] {state} · {rate:4.1f} Hz · published {st.events_published} · "
        f"consumed {consumed} · write p99 {p99}   "
    )
