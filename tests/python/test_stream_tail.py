"""`EventStream.tail`: several streams on one kept connection, in arrival order, through a
Redis restart, against real redis-server processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import solcache
from conftest import RedisServer
from solcache import EventStream, PriceUpdate, StreamEntry, SystemStatus, Tail

STREAMS = ["tail:a", "tail:b", "tail:c"]


def tail_connections(server: RedisServer) -> int:
    """Connections named `solcache-tail` in CLIENT LIST."""
    listing = server.raw("CLIENT", "LIST")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    return sum(" name=solcache-tail " in line for line in text.splitlines())


async def until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def collect(tail: Tail, want: int, within_s: float = 15.0) -> list[StreamEntry]:
    """Entries until `want` arrived; errors (a restarting server) are retried after 50 ms."""
    got: list[StreamEntry] = []
    deadline = time.monotonic() + within_s
    while len(got) < want:
        assert time.monotonic() < deadline, f"got {len(got)} of {want}"
        try:
            got.extend(await tail.next_batch())
        except solcache.SolcacheError as e:
            assert restarting(e), e
            await asyncio.sleep(0.05)
    return got


def restarting(error: solcache.SolcacheError) -> bool:
    """What a server being killed and restarted answers: no connection, a timeout, or
    LOADING while it reads its AOF."""
    if isinstance(error, solcache.ResponseError):
        return error.code == "LOADING"
    return isinstance(error, solcache.ConnectionError | solcache.TimeoutError)


def prices(entries: list[StreamEntry]) -> list[int]:
    return [int(e.event.price) for e in entries]  # type: ignore[union-attr]


async def publish_spread(events: EventStream, numbers: range) -> None:
    """Publish `n` to STREAMS[n % 3], each in a millisecond of its own (cross-stream order is
    the ids' millisecond), retrying while the server restarts."""
    for n in numbers:
        deadline = time.monotonic() + 15
        while True:
            try:
                await events.publish(PriceUpdate("SOL", str(n)), STREAMS[n % 3])
                break
            except solcache.SolcacheError as e:
                assert restarting(e) and time.monotonic() < deadline, e
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.002)


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    with RedisServer("--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


async def test_three_streams_arrive_in_order_with_their_names(events: EventStream) -> None:
    async with events.tail(STREAMS, block_ms=200) as tail:
        await publish_spread(events, range(24))
        got: list[StreamEntry] = []
        async for entry in tail:
            got.append(entry)
            if len(got) == 24:
                break
    assert prices(got) == list(range(24))
    assert [e.stream for e in got] == [STREAMS[n % 3] for n in range(24)]
    assert tail.closed


async def test_a_restart_keeps_order_with_one_connection_and_no_gap_or_duplicate(
    aof_redis: RedisServer,
) -> None:
    async with await solcache.RedisPool.connect(aof_redis.url) as pool:
        events = solcache.EventStream(pool)
        tail = events.tail(STREAMS, ["$", "$", "$"], block_ms=100, count=50)
        await tail.open()
        await publish_spread(events, range(12))
        got = await collect(tail, 12)
        for _ in range(5):  # empty reads: still the one kept connection
            await tail.next_batch()
        assert tail_connections(aof_redis) == 1
        assert tail.connections_opened == 1

        aof_redis.kill()  # SIGKILL: the AOF brings the streams back, ids continue
        aof_redis.start()
        await publish_spread(events, range(12, 24))
        got += await collect(tail, 12)
        assert prices(got) == list(range(24))  # arrival order, nothing lost or repeated
        assert [e.stream for e in got] == [STREAMS[n % 3] for n in range(24)]
        assert await tail.next_batch() == []
        assert tail.connections_opened == 2, "one reconnect, no connection per call"
        assert tail_connections(aof_redis) == 1
        assert tail.positions == {s: got[-3 + i].id for i, s in enumerate(STREAMS)}
        await tail.close()
        await until(lambda: tail_connections(aof_redis) == 0)


async def test_the_iterator_rides_through_an_outage_and_says_so(aof_redis: RedisServer) -> None:
    async with await solcache.RedisPool.connect(aof_redis.url) as pool:
        events = solcache.EventStream(pool)
        got: list[StreamEntry] = []
        tail = events.tail(STREAMS, block_ms=100, retry_initial_s=0.02, retry_max_s=0.1)
        async with tail:

            async def consume() -> None:
                async for entry in tail:  # never raises through the outage
                    got.append(entry)
                    if len(got) == 12:
                        return

            consumer = asyncio.create_task(consume())
            await publish_spread(events, range(6))
            await until(lambda: len(got) == 6)
            aof_redis.kill()
            await until(lambda: tail.state == "retrying")
            assert tail.last_error is not None
            aof_redis.start()
            await publish_spread(events, range(6, 12))
            await asyncio.wait_for(consumer, 15)
            assert tail.state == "connected" and tail.last_error is None
            assert tail.outages == 1 and tail.retries >= 1
            assert tail.entries == 12
        assert tail.state == "stopped"
    assert prices(got) == list(range(12))


async def test_the_iterator_gives_up_after_give_up_after_s(fresh_redis: RedisServer) -> None:
    async with await solcache.RedisPool.connect(fresh_redis.url) as pool:
        events = solcache.EventStream(pool)
        tail = events.tail("tail:a", block_ms=50, retry_initial_s=0.02, give_up_after_s=0.3)
        await tail.open()
        fresh_redis.kill()
        started = time.monotonic()
        with pytest.raises((solcache.ConnectionError, solcache.TimeoutError)):
            async for _ in tail:
                pass
        assert 0.3 <= time.monotonic() - started < 10
        await tail.close()


async def test_an_empty_read_waits_about_block_ms(events: EventStream) -> None:
    async with events.tail("tail:idle", block_ms=300) as tail:
        started = time.monotonic()
        assert await tail.next_batch() == []
        waited_s = time.monotonic() - started
    assert 0.25 <= waited_s < 5.0, waited_s


async def test_cancelling_a_read_and_closing_release_the_connection(
    events: EventStream, redis_server: RedisServer
) -> None:
    tail = events.tail(STREAMS, block_ms=30_000)
    assert tail_connections(redis_server) == 0, "nothing opened before the first read"
    read = asyncio.create_task(tail.next_batch())
    await until(lambda: tail_connections(redis_server) == 1)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    await tail.close()
    await until(lambda: tail_connections(redis_server) == 0)
    with pytest.raises(solcache.ConnectionError):
        await tail.next_batch()
    assert [e async for e in tail] == []


async def test_bad_arguments_are_refused_before_redis_is_touched(
    events: EventStream, redis_server: RedisServer
) -> None:
    for streams, ids, kwargs in [
        ([], [], {}),
        (["a", "b"], ["$"], {}),
        (["a", "a"], "$", {}),
        (["bad name"], "$", {}),
        (["a"], "x-1", {}),
        (["a"], "$", {"count": 0}),
        (["a"], "$", {"block_ms": 0}),
    ]:
        with pytest.raises(solcache.InvalidInputError):
            events.tail(streams, ids, **kwargs)
    assert tail_connections(redis_server) == 0


async def test_the_gateway_reads_all_streams_through_one_tail_connection(
    pool: solcache.RedisPool,
    events: EventStream,
    redis_server: RedisServer,
    start_gateway: Callable[..., Awaitable[Any]],
) -> None:
    gw = await start_gateway(pool, block_ms=100)
    await until(lambda: gw.hub.position is not None)
    for i in range(3):
        await events.publish(PriceUpdate("SOL", str(i)))
        await events.publish(SystemStatus("tail-test", "healthy"))
    await until(lambda: gw.hub.totals().entries_read >= 6)
    await asyncio.sleep(0.5)  # several empty blocking reads more: still the same connection
    assert tail_connections(redis_server) == 1
    await gw.stop()  # the reader's tail closes with the gateway
    await until(lambda: tail_connections(redis_server) == 0)
