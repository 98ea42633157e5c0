"""Direct reads: cache gets on an asyncio loop over a connection the loop reads itself.

Every test runs against real redis-server processes; the direct connection names itself
`solcache-direct`, so `CLIENT LIST` shows whether reads really took the direct path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from decimal import Decimal

import pytest

import solcache
from conftest import PASSWORD, RedisServer
from direct_path import direct_clients, until_direct
from solcache import PriceCache, PriceData, RedisPool, _core

pytestmark = pytest.mark.timeout(60)


async def test_reads_use_one_direct_connection_and_close_with_the_pool(
    redis_server: RedisServer,
) -> None:
    pool = await RedisPool.connect(redis_server.url)
    cache = PriceCache(pool)
    await cache.set(PriceData("SOL", "150.25"))
    await until_direct(redis_server, cache)
    redis_server.raw("CONFIG", "RESETSTAT")
    for _ in range(50):
        got = await cache.get("SOL")
        assert got is not None and got.price == Decimal("150.25")
    assert direct_clients(redis_server) == 1
    assert pool.metrics()["price_get"].count >= 50
    assert "cmdstat_get:calls=50," in redis_server.raw("INFO", "commandstats")
    await pool.close()
    assert direct_clients(redis_server) == 0


async def test_direct_reads_can_be_turned_off(redis_server: RedisServer) -> None:
    async with await RedisPool.connect(redis_server.url, direct_reads=False) as pool:
        assert pool.direct_reads is False
        cache = PriceCache(pool)
        for _ in range(20):
            await cache.get("SOL")
            await asyncio.sleep(0.005)
        assert direct_clients(redis_server) == 0


async def test_replies_stay_paired_with_requests_under_cancellation_and_mixing(
    redis_server: RedisServer,
) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        cache = PriceCache(pool)
        prices = {t: Decimal(f"{i + 1}.5") for i, t in enumerate(solcache.MVP_TOKENS)}
        await cache.set_many([PriceData(t, p) for t, p in prices.items()])
        await until_direct(redis_server, cache)
        rng = random.Random(7)
        cancelled = 0

        async def one(i: int) -> None:
            nonlocal cancelled
            token = rng.choice(solcache.MVP_TOKENS)
            if i % 5 == 0:
                # Cancelled after its request went out: the reply must still be consumed.
                call = cache.get(token)
                await asyncio.sleep(0)
                if call.cancel():
                    cancelled += 1
                    with pytest.raises(asyncio.CancelledError):
                        await call
                else:
                    early = await call
                    assert early is not None and early.token == token
            elif i % 5 == 1:
                many = await cache.get_many([token, "RAY", "USDC"])
                expected = {t: prices[t] for t in (token, "RAY", "USDC")}
                assert {t: p.price if p else None for t, p in many.items()} == expected
            else:
                got = await cache.get(token)
                assert got is not None and got.token == token and got.price == prices[token]

        await asyncio.gather(*(one(i) for i in range(2000)))
        assert cancelled > 0
        got = await cache.get("BONK")
        assert got is not None and got.price == prices["BONK"]


async def test_paused_server_times_out_then_recovers(fresh_redis: RedisServer) -> None:
    async with await RedisPool.connect(fresh_redis.url, response_timeout_ms=300) as pool:
        cache = PriceCache(pool)
        await cache.set(PriceData("SOL", "1"))
        await until_direct(fresh_redis, cache)
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        fresh_redis.pause()
        try:
            started = time.monotonic()
            reads = [asyncio.ensure_future(cache.get("SOL")) for _ in range(20)]
            await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            ticks_before_first_timeout = len(gaps)
            results = await asyncio.gather(*reads, return_exceptions=True)
            elapsed = time.monotonic() - started
        finally:
            fresh_redis.resume()
            tick.cancel()
        assert all(isinstance(r, solcache.TimeoutError) for r in results), results
        assert 0.25 < elapsed < 3.0
        # The loop kept running while the reads waited: the ticker ran before the first of
        # them gave up (a read that blocked the loop would time out before it got a turn).
        assert ticks_before_first_timeout >= 5, ticks_before_first_timeout
        assert pool.error_counts()["timeout"] >= 20
        await until_direct(fresh_redis, cache)  # a fresh direct connection replaces it
        got = await cache.get("SOL")
        assert got is not None and got.price == 1


async def test_restart_is_survived(fresh_redis: RedisServer) -> None:
    async with await RedisPool.connect(fresh_redis.url, connect_timeout_ms=300) as pool:
        cache = PriceCache(pool)
        await cache.set(PriceData("SOL", "1"))
        await until_direct(fresh_redis, cache)
        fresh_redis.kill()
        started = time.monotonic()
        with pytest.raises(solcache.ConnectionError):
            await cache.get("SOL")
        assert time.monotonic() - started < 3.0
        fresh_redis.start()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert await cache.get("SOL") is None  # no persistence: the key is gone
                break
            except solcache.ConnectionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        await cache.set(PriceData("SOL", "2"))
        await until_direct(fresh_redis, cache)
        got = await cache.get("SOL")
        assert got is not None and got.price == 2


async def test_bad_values_and_errors_on_the_direct_path(redis_server: RedisServer) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        cache = PriceCache(pool)
        await until_direct(redis_server, cache)
        redis_server.raw("SET", "price:SOL", b"{broken")
        with pytest.raises(solcache.SerializationError):
            await cache.get("SOL")
        redis_server.raw("HSET", "price:USDC", "a", "b")  # WRONGTYPE for GET
        with pytest.raises(solcache.ResponseError):
            await cache.get("USDC")
        # MGET answers nil for a key of another type, like for a missing one.
        assert (await cache.get_many(["USDC", "RAY"])) == {"USDC": None, "RAY": None}
        with pytest.raises(solcache.SerializationError):
            await cache.get_many(["RAY", "SOL"])
        counts = pool.error_counts()
        assert counts["serialization"] >= 2 and counts["response"] >= 1


@pytest.mark.parametrize("kind", ["unix", "acl", "db"])
async def test_unix_socket_acl_user_and_database(
    kind: str, redis_server: RedisServer, auth_redis: RedisServer
) -> None:
    server = auth_redis if kind == "acl" else redis_server
    url = {
        "unix": redis_server.unix_url,
        "acl": f"redis://alice:{PASSWORD}@127.0.0.1:{auth_redis.port}/0",
        "db": f"redis://127.0.0.1:{redis_server.port}/3",
    }[kind]
    async with await RedisPool.connect(url) as pool:
        cache = PriceCache(pool)
        await cache.set(PriceData("JitoSOL", "201.5"))
        await until_direct(server, cache, "JitoSOL")
        got = await cache.get("JitoSOL")
        assert got is not None and got.price == Decimal("201.5")
        if kind == "db":
            assert "db3:keys=1" in redis_server.raw("INFO", "keyspace")


@pytest.mark.parametrize("spin_us", [0, 1000])
async def test_reads_always_yield_to_other_tasks(redis_server: RedisServer, spin_us: int) -> None:
    """A reply found by polling still resolves on the next loop iteration: a tight loop of
    reads never starves the other tasks."""
    async with await RedisPool.connect(redis_server.url, direct_spin_us=spin_us) as pool:
        assert pool.direct_spin_us == spin_us
        cache = PriceCache(pool)
        await cache.set(PriceData("SOL", "3"))
        await until_direct(redis_server, cache)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        for _ in range(200):
            got = await cache.get("SOL")
            assert got is not None and got.price == 3
        tick.cancel()
        assert ticks - before >= 190


async def test_polling_is_on_by_default_with_one_budget(redis_server: RedisServer) -> None:
    assert solcache.Settings().direct_spin_us == _core.DEFAULT_DIRECT_SPIN_US == 100
    async with await RedisPool.connect(redis_server.url) as pool:
        assert pool.direct_spin_us == 100
    handle = await _core.open_pool(
        redis_server.url,
        max_size=2,
        min_idle=0,
        connect_timeout_ms=1000,
        response_timeout_ms=500,
        checkout_timeout_ms=500,
        health_check_interval_ms=1000,
        slow_threshold_ms=1.0,
    )
    raw_pool = _core.RedisPool(handle)
    assert raw_pool.direct_spin_us == 100  # the extension's own default is the same
    await raw_pool.close()


async def test_spin_budget_is_bounded(redis_server: RedisServer) -> None:
    with pytest.raises(solcache.InvalidInputError):
        await RedisPool.connect(redis_server.url, direct_spin_us=5000)


async def test_core_log_records_reach_logging_with_direct_reads_only(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="solcache")
    async with await RedisPool.connect(redis_server.url, slow_threshold_ms=0.001) as pool:
        cache = PriceCache(pool)
        await until_direct(redis_server, cache)  # logs price_get's first slow call
        caplog.clear()
        for _ in range(50):  # direct reads only: no call through the runtime
            await cache.get_many(["SOL"])
        warnings = [r.getMessage() for r in caplog.records if r.name == "solcache.pool"]
        assert any("slow Redis operation: price_get_many" in m for m in warnings), warnings
