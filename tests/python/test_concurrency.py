"""Many concurrent callers on one pool get the right answers (no timing assertions), also
from several event loops in several threads."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from decimal import Decimal

from solcache import MVP_TOKENS, PriceCache, PriceData, RedisPool, _core


def _connections_received(server) -> int:
    """Connections the server has accepted so far (this query's own included)."""
    info = server.raw("INFO", "stats")
    return int(next(x for x in info.split() if x.startswith("total_connections_received:"))[27:])


async def test_200_concurrent_gets_on_20_connections(redis_server) -> None:
    # Pool connections only (no direct connection), so the server's count is the pool's.
    async with await RedisPool.connect(redis_server.url, max_size=20, direct_reads=False) as pool:
        cache = PriceCache(pool, ttl_ms=60_000)
        expected = {t: PriceData(t, str(i + 1), source="test") for i, t in enumerate(MVP_TOKENS)}
        await cache.set_many(expected.values())
        before_count = pool.counts()["connections"]
        before_received = _connections_received(redis_server)
        tokens = [MVP_TOKENS[i % len(MVP_TOKENS)] for i in range(200)]
        results = await asyncio.gather(*(cache.get(t) for t in tokens))
        assert results == [expected[t] for t in tokens]
        # What the server saw: 200 callers never made the pool open more than max_size
        # connections in all. Connects the callers started may still complete after they were
        # served: count until the server and the pool agree (each INFO query is a connection).
        deadline = time.monotonic() + 10
        for queries in range(1, 1000):
            opened = _connections_received(redis_server) - before_received - queries
            health = await pool.health()
            if health.connections == before_count + opened or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert health.connections == before_count + opened <= 20, (before_count, opened)
        assert health.waiting == 0 and health.in_use == 0
        # ... and they are all still open: the server lists them (besides the raw query).
        assert len(redis_server.raw("CLIENT", "LIST").splitlines()) - 1 == health.connections


async def test_200_concurrent_sets_then_get_many(redis_server) -> None:
    async with await RedisPool.connect(redis_server.url, max_size=20) as pool:
        cache = PriceCache(pool, ttl_ms=60_000)
        prices = [PriceData(f"T{i}", str(i), source="test") for i in range(200)]
        await asyncio.gather(*(cache.set(p) for p in prices))
        got = await cache.get_many([p.token for p in prices])
        assert list(got.values()) == prices


def _direct_clients(server) -> int:
    return sum("name=solcache-direct" in line for line in server.raw("CLIENT", "LIST").splitlines())


async def test_one_pool_on_two_loops_in_two_threads_and_a_loop_closed_mid_call(fresh_redis) -> None:
    """Another thread's loop reads through the same pool while this loop does; it is then
    closed with calls in flight. This loop and the pool go on, and nothing of the closed
    loop stays behind (its direct connection, queued results, calls in flight)."""
    prices = {t: Decimal(i + 1) for i, t in enumerate(MVP_TOKENS)}
    async with await RedisPool.connect(fresh_redis.url) as pool:
        cache = PriceCache(pool, ttl_ms=60_000)
        await cache.set_many([PriceData(t, p, source="test") for t, p in prices.items()])
        other_reads = 0
        failures: list[BaseException] = []

        def other_thread() -> None:
            loop = asyncio.new_event_loop()

            async def reader() -> None:
                nonlocal other_reads
                while True:
                    for token, expected in prices.items():
                        got = await cache.get(token)
                        assert got is not None and got.price == expected
                        other_reads += 1

            async def run() -> list[asyncio.Task[None]]:
                readers = [loop.create_task(reader()) for _ in range(10)]
                deadline = time.monotonic() + 20
                while other_reads < 3000 and not any(r.done() for r in readers):
                    assert time.monotonic() < deadline, f"only {other_reads} reads"
                    await asyncio.sleep(0.01)
                for r in readers:
                    if r.done():
                        r.result()  # a failed read fails the test
                return readers  # still running: their reads are in flight

            try:
                readers = loop.run_until_complete(run())
                assert not any(r.done() for r in readers)
            except BaseException as e:  # reported by the test's thread
                failures.append(e)
            finally:
                loop.close()

        thread = threading.Thread(target=other_thread)
        thread.start()
        mine = 0
        while thread.is_alive():
            got = await cache.get_many(list(prices))
            assert {t: p.price if p else None for t, p in got.items()} == prices
            mine += 1
            await asyncio.sleep(0)
        thread.join()
        assert not failures, failures
        assert mine > 0 and other_reads >= 3000
        for token, expected in prices.items():
            got = await cache.get(token)
            assert got is not None and got.price == expected
    gc.collect()
    deadline = time.monotonic() + 10
    while _direct_clients(fresh_redis) or _core._in_flight_calls():
        assert time.monotonic() < deadline, (_direct_clients(fresh_redis), _core._in_flight_calls())
        await asyncio.sleep(0.02)
        gc.collect()
