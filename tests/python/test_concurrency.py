"""Many concurrent callers on one pool get the right answers (no timing assertions)."""

from __future__ import annotations

import asyncio

from solcache import MVP_TOKENS, PriceCache, PriceData, RedisPool


async def test_200_concurrent_gets_on_20_connections(redis_server) -> None:
    async with await RedisPool.connect(redis_server.url, max_size=20) as pool:
        cache = PriceCache(pool, ttl_ms=60_000)
        expected = {t: PriceData(t, str(i + 1), source="test") for i, t in enumerate(MVP_TOKENS)}
        await cache.set_many(expected.values())
        tokens = [MVP_TOKENS[i % len(MVP_TOKENS)] for i in range(200)]
        results = await asyncio.gather(*(cache.get(t) for t in tokens))
        assert results == [expected[t] for t in tokens]
        health = await pool.health()
        assert health.connections <= 20 and health.waiting == 0


async def test_200_concurrent_sets_then_get_many(redis_server) -> None:
    async with await RedisPool.connect(redis_server.url, max_size=20) as pool:
        cache = PriceCache(pool, ttl_ms=60_000)
        prices = [PriceData(f"T{i}", str(i), source="test") for i in range(200)]
        await asyncio.gather(*(cache.set(p) for p in prices))
        got = await cache.get_many([p.token for p in prices])
        assert list(got.values()) == prices
