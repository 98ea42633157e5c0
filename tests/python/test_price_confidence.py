"""The price service refuses prices whose confidence interval is too wide, against a real Redis
and through the Pyth source on a fake Hermes; and the setting that configures it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

import solcache
from fake_hermes import FakeFeed, FakeHermes
from solcache import PriceData, Settings
from solcache.services.price_service import PriceUpdateService
from solcache.sources import PYTH_FEED_IDS, PythPriceSource
from solcache.sources.base import PriceSnapshot, PriceSource

T0 = 1735689600


class FixedSource(PriceSource):
    """Hands out whatever prices the test put in ``prices``."""

    name = "fixed"

    def __init__(self, prices: list[PriceData]) -> None:
        self.prices = prices

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(p.token for p in self.prices)

    async def snapshot(self) -> PriceSnapshot:
        return PriceSnapshot(prices=tuple(self.prices))


def quote(token: str, price: str, confidence: str | None) -> PriceData:
    return PriceData(token, price, source="fixed", confidence=confidence)


async def ticked(service: PriceUpdateService, n: int) -> None:
    assert service.stats.ticks >= n
    await asyncio.sleep(0)


async def test_prices_wider_than_the_limit_are_refused_counted_and_reported(
    pool, redis_server, eventually
) -> None:
    source = FixedSource(
        [
            quote("SOL", "187.2345", "0.0712"),  # 0.04 %: fine
            quote("BONK", "0.0000234", "0.000001"),  # 4.3 %: refused
            quote("USDC", "1", None),  # no confidence: always fine
            quote("RAY", "2", "0.04"),  # exactly 2 %: fine (the limit is inclusive)
        ]
    )
    prices = solcache.PriceCache(pool)
    service = PriceUpdateService(
        source, prices, solcache.EventStream(pool), publish_hz=50, max_confidence_fraction=0.02
    )
    await service.start()
    try:
        await eventually(lambda: ticked(service, 3))
        st = service.stats
        assert st.refused == ("BONK",) and st.prices_refused >= 3
        assert st.degraded and st.reason == st.source_problem
        assert st.reason == (
            "BONK price refused: confidence ±0.000001 is 4.27% of 0.0000234 (limit 2.00%)"
        )
        got = await prices.get_many(["SOL", "BONK", "USDC", "RAY"])
        assert got["BONK"] is None
        assert got["SOL"] is not None and got["SOL"].confidence == Decimal("0.0712")
        assert got["USDC"] is not None and got["RAY"] is not None
        published = redis_server.raw("XRANGE", "stream:price-updates", "-", "+")
        assert published and not any("BONK" in str(fields) for _, fields in published)
        # Once the interval narrows, the price is written again and the problem clears.
        source.prices[1] = quote("BONK", "0.0000234", "0.0000001")
        await eventually(lambda: _written(prices, "BONK"))
        assert service.stats.refused == () and not service.stats.degraded
    finally:
        await service.stop()


async def _written(prices: solcache.PriceCache, token: str) -> None:
    assert await prices.get(token) is not None


async def test_without_a_limit_every_price_is_written(pool, eventually) -> None:
    source = FixedSource([quote("BONK", "0.0000234", "0.001")])  # 4273 %
    prices = solcache.PriceCache(pool)
    service = PriceUpdateService(source, prices, solcache.EventStream(pool), publish_hz=50)
    await service.start()
    try:
        await eventually(lambda: _written(prices, "BONK"))
        assert service.stats.prices_refused == 0 and not service.stats.degraded
    finally:
        await service.stop()


async def test_a_pyth_price_with_a_wide_confidence_is_refused(pool, eventually) -> None:
    feeds = {
        PYTH_FEED_IDS["SOL"]: FakeFeed(14523456789, -8, T0, conf=7012345),  # 0.05 %
        PYTH_FEED_IDS["RAY"]: FakeFeed(240123456, -8, T0, conf=24012345),  # 10 %
    }
    with FakeHermes(feeds, sse_updates_per_connection=None) as hermes:
        source = PythPriceSource(
            {"SOL": PYTH_FEED_IDS["SOL"], "RAY": PYTH_FEED_IDS["RAY"]},
            base_url=hermes.url,
            mode="stream",
        )
        prices = solcache.PriceCache(pool)
        service = PriceUpdateService(
            source, prices, solcache.EventStream(pool), publish_hz=20, max_confidence_fraction=0.02
        )
        await service.start()
        try:
            await eventually(lambda: _written(prices, "SOL"))
            await eventually(lambda: _refused(service, "RAY"))
            sol = await prices.get("SOL")
            assert sol is not None and sol.confidence is not None
            assert sol.confidence / sol.price < Decimal("0.001")
            assert await prices.get("RAY") is None
        finally:
            await service.stop()


async def _refused(service: PriceUpdateService, token: str) -> None:
    assert token in service.stats.refused, service.stats
    await asyncio.sleep(0)


def test_the_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_confidence_fraction == 0.02
    monkeypatch.setenv("SOLCACHE_MAX_CONFIDENCE_FRACTION", "0.005")
    assert Settings().max_confidence_fraction == 0.005
    for bad in ("-0.1", "nan", "inf", "abc"):
        monkeypatch.setenv("SOLCACHE_MAX_CONFIDENCE_FRACTION", bad)
        with pytest.raises(ValueError):
            Settings()
    for bad_limit in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_confidence_fraction"):
            PriceUpdateService(
                FixedSource([]),
                None,  # type: ignore[arg-type]
                None,  # type: ignore[arg-type]
                max_confidence_fraction=bad_limit,
            )


async def test_refused_prices_are_exported_as_a_counter(pool) -> None:
    from prometheus_client import generate_latest

    from solcache.prometheus import ServiceSnapshot, build_registry

    registry, _refresher = build_registry(
        pool, None, lambda: ServiceSnapshot(prices_refused_total=3)
    )
    text = generate_latest(registry).decode()
    assert "# TYPE solcache_prices_refused_total counter" in text
    assert "solcache_prices_refused_total 3.0" in text
