"""The price update service against a real Redis: TTL'd writes, 10 Hz events, status changes."""

from __future__ import annotations

import asyncio

import solcache
from solcache.services.price_service import PriceUpdateService
from solcache.sources import SimulatedPriceSource
from solcache.sources.base import PriceSnapshot, PriceSource, SourceError


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


def statuses(server) -> list[str]:
    entries = server.raw("XRANGE", "stream:ui-events", "-", "+")
    found = []
    for _id, fields in entries:
        data = dict(zip(fields[::2], fields[1::2], strict=True))["data"]
        found.append(solcache.TradingEvent.from_json("system_status", data).status)
    return found


async def test_service_writes_publishes_and_reports_degraded(
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
        source.failing = True
        await eventually(lambda: _degraded(service, True))
        source.failing = False
        await eventually(lambda: _degraded(service, False))
    finally:
        await service.stop()
    assert statuses(redis_server) == ["starting", "healthy", "degraded", "healthy", "stopped"]
    assert "upstream unreachable" in str(redis_server.raw("XRANGE", "stream:ui-events", "-", "+"))


async def _ticks(service: PriceUpdateService, n: int) -> None:
    assert service.stats.ticks >= n
    await asyncio.sleep(0)


async def _degraded(service: PriceUpdateService, want: bool) -> None:
    assert service.stats.degraded is want, service.stats
    await asyncio.sleep(0)
