"""The price update service against a real Redis: TTL'd writes, 10 Hz events, failures retried
with backoff and reported in its stats until they clear."""

from __future__ import annotations

import asyncio

import pytest

import solcache
from conftest import writes_refused
from solcache.services.price_service import PriceUpdateService
from solcache.sources import SimulatedPriceSource
from solcache.sources.base import PriceSnapshot, PriceSource, SourceError

pytestmark = pytest.mark.topologies


class FlakySource(PriceSource):
    """A simulated source that can be switched to failing, as an upstream outage would."""

    name = "flaky"

    def __init__(self) -> None:
        self.inner = SimulatedPriceSource(seed=1)
        self.failing = False

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.inner.tokens

    async def snapshot(self) -> PriceSnapshot:
        if self.failing:
            raise SourceError("upstream unreachable")
        return await self.inner.snapshot()


async def test_service_writes_publishes_and_reports_source_errors(
    pool, redis_server, eventually
) -> None:
    source = FlakySource()
    prices = solcache.PriceCache(pool)
    service = PriceUpdateService(source, prices, solcache.EventStream(pool), publish_hz=20)
    await service.start()
    try:
        await eventually(lambda: _ticks(service, 10))
        got = await prices.get_many(solcache.MVP_TOKENS)
        assert all(p is not None and p.source == "simulated" for p in got.values()), got
        assert all(0 < redis_server.raw("PTTL", f"price:{t}") <= 2000 for t in solcache.MVP_TOKENS)
        assert redis_server.raw("XLEN", "stream:price-updates") >= 5 * 10
        assert service.stats.errors == 0 and service.stats.last_write_monotonic_s is not None
        source.failing = True
        await eventually(lambda: _degraded(service, True))
        st = service.stats
        assert st.reason == st.source_problem == "source error: upstream unreachable"
        await eventually(lambda: _errors(service, 2))
        assert service.running  # a failing tick never ends the loop
        source.failing = False
        await eventually(lambda: _degraded(service, False))
        assert service.stats.source_problem == ""
    finally:
        await service.stop()
    assert not service.running
    # The service announces nothing itself (serve's health monitor does): no status events.
    assert redis_server.raw("XLEN", "stream:ui-events") == 0


async def test_refused_writes_are_retried_with_backoff_until_redis_takes_them(
    pool, redis_server, eventually
) -> None:
    prices = solcache.PriceCache(pool)
    service = PriceUpdateService(
        FlakySource(), prices, solcache.EventStream(pool), publish_hz=20, backoff_max_s=0.4
    )
    await service.start()
    try:
        await eventually(lambda: _ticks(service, 5))
        with writes_refused(redis_server):  # every write is refused: OOM
            await eventually(lambda: _degraded(service, True))
            st = service.stats
            assert st.reason.startswith("redis error") and "OOM" in st.write_error, st
            last_write = st.last_write_monotonic_s
            ticks, errors = st.ticks, st.errors
            await asyncio.sleep(1.0)
            st = service.stats
            assert st.last_write_monotonic_s == last_write  # nothing written meanwhile
            # Backed off (0.05 s doubling up to 0.4 s): far fewer than 20 tries in that second.
            assert 1 <= st.ticks - ticks <= 12 and st.errors - errors == st.ticks - ticks, st
            assert service.running
        await eventually(lambda: _degraded(service, False), within_s=10)
        assert service.stats.write_error == ""
        assert await prices.get("SOL") is not None
    finally:
        await service.stop()


async def _ticks(service: PriceUpdateService, n: int) -> None:
    assert service.stats.ticks >= n
    await asyncio.sleep(0)


async def _errors(service: PriceUpdateService, n: int) -> None:
    assert service.stats.errors >= n
    await asyncio.sleep(0)


async def _degraded(service: PriceUpdateService, want: bool) -> None:
    assert service.stats.degraded is want, service.stats
    await asyncio.sleep(0)
