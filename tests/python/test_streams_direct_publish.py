"""A lone `EventStream.publish` on an asyncio loop goes out on that loop's direct connection
(the one cache reads use, `solcache-direct` in `CLIENT LIST`) and is resent only as the retry
policy in docs/streams.md says. Real redis-server processes throughout."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

import solcache
from conftest import RedisServer
from solcache import EventStream, PriceCache, PriceUpdate, RedisPool

pytestmark = pytest.mark.timeout(60)

STREAM = "stream:direct-publish"


def clients(server: RedisServer, name: str) -> list[str]:
    return [line for line in server.raw("CLIENT", "LIST").splitlines() if f"name={name} " in line]


async def until_direct(server: RedisServer, pool: RedisPool) -> None:
    """Read until the loop's direct connection is up (it opens in the background on first use)."""
    cache = PriceCache(pool)
    deadline = time.monotonic() + 5
    while not clients(server, "solcache-direct"):
        assert time.monotonic() < deadline, "no direct connection was opened"
        await cache.get("SOL")
        await asyncio.sleep(0.01)
    for _ in range(5):  # the install runs on the loop: let it land
        await cache.get("SOL")


def update(i: int) -> PriceUpdate:
    return PriceUpdate("SOL", Decimal(i))


async def test_lone_publishes_take_the_direct_connection(redis_server: RedisServer) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        events = EventStream(pool)
        await until_direct(redis_server, pool)
        ids = [await events.publish(update(i), STREAM) for i in range(30)]
        # Concurrent publishes on the same connection are batched, replies stay paired.
        ids += await asyncio.gather(*(events.publish(update(i), STREAM) for i in range(30, 60)))
        entries = redis_server.raw("XRANGE", STREAM, "-", "+")
        assert [e[0] for e in entries] == ids
        prices = [dict(zip(f[::2], f[1::2], strict=True))["data"] for _, f in entries]
        assert all(f'"price":"{i}"' in data for i, data in enumerate(prices)), prices[:3]
        direct = clients(redis_server, "solcache-direct")
        assert len(direct) == 1 and "cmd=xadd" in direct[0]
        assert not clients(redis_server, "solcache-publish"), "no publish connection was needed"
        assert pool.metrics()["stream_publish"].count >= 60


async def test_error_replies_and_bad_input_on_the_direct_path(redis_server: RedisServer) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        events = EventStream(pool)
        await until_direct(redis_server, pool)
        redis_server.raw("SET", "stream:not-a-stream", "x")
        with pytest.raises(solcache.ResponseError) as refused:
            await events.publish(update(1), "stream:not-a-stream")
        assert refused.value.code == "WRONGTYPE"
        with pytest.raises(solcache.InvalidInputError):
            await events.publish(update(1), "bad stream name")
        # The connection stayed in step: the next publish lands, on the same connection.
        entry_id = await events.publish(update(2), STREAM)
        assert redis_server.raw("XRANGE", STREAM, "-", "+")[-1][0] == entry_id
        assert len(clients(redis_server, "solcache-direct")) == 1
        assert not clients(redis_server, "solcache-publish")
        assert pool.error_counts()["response"] >= 1


async def test_a_publish_lost_with_a_used_connection_is_sent_once_more(
    redis_server: RedisServer,
) -> None:
    async with await RedisPool.connect(redis_server.url) as pool:
        events = EventStream(pool)
        await until_direct(redis_server, pool)
        await events.publish(update(0), STREAM)  # the connection has served calls
        redis_server.raw("CLIENT", "PAUSE", "5000", "WRITE")
        try:
            call = asyncio.ensure_future(events.publish(update(1), STREAM))
            # The XADD is on the wire, held by the pause: Redis has not applied it.
            deadline = time.monotonic() + 5
            while not any("flags=b" in c for c in clients(redis_server, "solcache-direct")):
                assert time.monotonic() < deadline, "the XADD never reached the server"
                await asyncio.sleep(0.01)
            direct_id = clients(redis_server, "solcache-direct")[0].split()[0].removeprefix("id=")
            redis_server.raw("CLIENT", "KILL", "ID", direct_id)
        finally:
            redis_server.raw("CLIENT", "UNPAUSE")
        entry_id = await asyncio.wait_for(call, 10)
        entries = redis_server.raw("XRANGE", STREAM, "-", "+")
        assert [e[0] for e in entries][-1] == entry_id
        assert len(entries) == 2, "the killed XADD was never applied; the resend was, once"
        assert len(clients(redis_server, "solcache-publish")) == 1, "resent on a new connection"


async def test_a_timed_out_publish_is_not_sent_again(fresh_redis: RedisServer) -> None:
    async with await RedisPool.connect(fresh_redis.url, response_timeout_ms=300) as pool:
        events = EventStream(pool)
        await until_direct(fresh_redis, pool)
        await events.publish(update(0), STREAM)
        fresh_redis.pause()
        try:
            with pytest.raises(solcache.TimeoutError):
                await events.publish(update(1), STREAM)
        finally:
            fresh_redis.resume()
        # The XADD waited in the socket and was applied once the server resumed: exactly once.
        deadline = time.monotonic() + 5
        while fresh_redis.raw("XLEN", STREAM) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await events.publish(update(2), STREAM)
        assert fresh_redis.raw("XLEN", STREAM) == 3
        assert pool.error_counts()["timeout"] >= 1


async def test_a_publish_behind_a_timed_out_read_times_out_and_is_not_sent_again(
    fresh_redis: RedisServer,
) -> None:
    """The read's timeout closes the connection 100 ms before the publish's own deadline: the
    server answered neither, so the publish raises TimeoutError too, and is never resent."""
    async with await RedisPool.connect(fresh_redis.url, response_timeout_ms=300) as pool:
        events, cache = EventStream(pool), PriceCache(pool)
        await until_direct(fresh_redis, pool)
        await events.publish(update(0), STREAM)
        fresh_redis.pause()
        try:
            read = asyncio.ensure_future(cache.get("SOL"))
            await asyncio.sleep(0.1)
            publish = asyncio.ensure_future(events.publish(update(1), STREAM))
            outcomes = await asyncio.gather(read, publish, return_exceptions=True)
        finally:
            fresh_redis.resume()
        assert all(isinstance(o, solcache.TimeoutError) for o in outcomes), outcomes
        deadline = time.monotonic() + 5
        while fresh_redis.raw("XLEN", STREAM) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await events.publish(update(2), STREAM)
        assert fresh_redis.raw("XLEN", STREAM) == 3, "the publish was applied once"


async def test_publishes_fall_back_while_the_direct_connection_is_down(
    fresh_redis: RedisServer,
) -> None:
    async with await RedisPool.connect(fresh_redis.url, connect_timeout_ms=300) as pool:
        events = EventStream(pool)
        await until_direct(fresh_redis, pool)
        await events.publish(update(0), STREAM)
        fresh_redis.kill()
        with pytest.raises(solcache.ConnectionError):
            await events.publish(update(1), STREAM)
        fresh_redis.start()
        deadline = time.monotonic() + 5
        while True:  # the first publishes take the runtime while the direct connection reopens
            try:
                first = await events.publish(update(2), STREAM)
                break
            except solcache.ConnectionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        assert clients(fresh_redis, "solcache-publish"), "the fallback is the publish connection"
        await until_direct(fresh_redis, pool)
        later = [await events.publish(update(i), STREAM) for i in range(3, 6)]
        assert [e[0] for e in fresh_redis.raw("XRANGE", STREAM, "-", "+")] == [first, *later]
        assert "cmd=xadd" in clients(fresh_redis, "solcache-direct")[0]


async def test_without_direct_reads_publishes_take_the_publish_connection(
    redis_server: RedisServer,
) -> None:
    async with await RedisPool.connect(redis_server.url, direct_reads=False) as pool:
        events = EventStream(pool)
        for i in range(5):
            await events.publish(update(i), STREAM)
        assert not clients(redis_server, "solcache-direct")
        assert len(clients(redis_server, "solcache-publish")) == 1
        assert redis_server.raw("XLEN", STREAM) == 5
