"""Consumers through Redis outages, against real redis-server processes that the tests kill
and restart: the iterator never raises, says what it is doing, and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import pytest

from conftest import RedisServer
from solcache import (
    STREAM_PRICE_UPDATES,
    ConnectionError,
    EventStream,
    PriceUpdate,
    RedisPool,
    ResponseError,
    Subscription,
)
from solcache.backoff import Backoff
from solcache.services.private_redis import free_port
from solcache.subscriptions import SubscriptionManager

TS = datetime(2026, 1, 1, tzinfo=UTC)
FAST = {"block_ms": 50, "retry_initial_s": 0.02, "retry_max_s": 0.2}


def price(n: int) -> PriceUpdate:
    return PriceUpdate("SOL", str(n), TS)


async def wait_until(check, within_s: float = 20.0, every_s: float = 0.01) -> None:
    """Poll `check()` until it is true; fail after `within_s` (generous: a loaded machine)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(every_s)


async def publish_retrying(events: EventStream, n: int, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            await events.publish(price(n))
            return
        except (ConnectionError, TimeoutError, ResponseError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class Consumer:
    """`async for` over a subscription in a task, recording prices and every state it saw."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.got: set[int] = set()
        self.states: list[str] = [sub.state]
        self.task = asyncio.create_task(self._consume())
        self.watcher = asyncio.create_task(self._watch())

    async def _consume(self) -> None:
        async with self.sub:
            async for entry in self.sub:
                assert isinstance(entry.event, PriceUpdate)
                self.got.add(int(entry.event.price))

    async def _watch(self) -> None:
        while True:
            if self.sub.state != self.states[-1]:
                self.states.append(self.sub.state)
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.watcher.cancel()
        assert not self.task.done(), self.task  # the loop never ended (nor raised)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_iterator_rides_through_kill_and_restart_with_aof() -> None:
    # fsync always: every XADD and XACK Redis answered survives the SIGKILL.
    with RedisServer("--appendonly", "yes", "--appendfsync", "always") as server:
        async with await RedisPool.connect(server.url) as pool:
            events = EventStream(pool)
            sub = events.subscribe(STREAM_PRICE_UPDATES, "g", "c", start_id="0", **FAST)
            consumer = Consumer(sub)
            published: list[int] = []

            async def publisher() -> None:  # 10 Hz, each event retried until Redis takes it
                n = 0
                while True:
                    await publish_retrying(events, n)
                    published.append(n)
                    n += 1
                    await asyncio.sleep(0.1)

            pub = asyncio.create_task(publisher())
            try:
                await wait_until(lambda: len(consumer.got) >= 5)
                server.kill()
                await wait_until(lambda: sub.state == "retrying")
                assert sub.last_error is not None
                await asyncio.sleep(0.5)  # down for a while: several retries
                server.start()  # same dir: the AOF is loaded
                await wait_until(lambda: sub.state == "connected")
                count = len(published)
                await wait_until(lambda: len(published) >= count + 10)
            finally:
                pub.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pub
            await wait_until(lambda: consumer.got >= set(published))
            await consumer.stop()
            assert consumer.states[:3] == ["connected", "retrying", "connected"], consumer.states
            stats = sub.stats
            assert stats.outages >= 1 and stats.retries >= 2, stats
            assert stats.group_recreations == 0, stats  # the AOF kept the group


async def test_iterator_recreates_its_group_after_a_restart_without_persistence(
    fresh_redis: RedisServer,
) -> None:
    async with await RedisPool.connect(fresh_redis.url) as pool:
        events = EventStream(pool)
        sub = events.subscribe(STREAM_PRICE_UPDATES, "g", "c", start_id="0", **FAST)
        consumer = Consumer(sub)
        for n in range(3):
            await events.publish(price(n))
        await wait_until(lambda: consumer.got == {0, 1, 2})
        fresh_redis.restart()  # stream and group are gone
        for n in range(3, 6):
            await publish_retrying(events, n)
        # Start id 0: the re-created group delivers what the new stream holds.
        await wait_until(lambda: consumer.got == set(range(6)))
        await wait_until(lambda: sub.state == "connected")
        await consumer.stop()
        stats = sub.stats
        assert stats.group_recreations == 1 and stats.outages >= 1, stats
        groups = fresh_redis.raw("XINFO", "GROUPS", STREAM_PRICE_UPDATES)
        assert [dict(zip(g[::2], g[1::2], strict=True))["name"] for g in groups] == ["g"]


@pytest.mark.parametrize(("start_id", "want"), [("$", [4]), ("0", [2, 3, 4])])
async def test_the_start_id_decides_what_a_recreated_group_replays(
    events: EventStream, redis_server: RedisServer, start_id: str, want: list[int]
) -> None:
    sub = events.subscribe(STREAM_PRICE_UPDATES, "g", "c", start_id=start_id, **FAST)
    assert await sub.next_batch() == []  # creates the group
    await events.publish_many([price(0), price(1)])
    first = await sub.next_batch()
    assert [int(e.event.price) for e in first] == [0, 1]
    sub.ack(*first)
    assert await sub.next_batch() == []  # the acknowledgements go out
    redis_server.raw("XGROUP", "DESTROY", STREAM_PRICE_UPDATES, "g")
    await events.publish_many([price(2), price(3)])  # nobody reads these before the loss is seen
    assert await sub.next_batch() == []  # NOGROUP: the group is created again
    assert sub.stats.group_recreations == 1
    await events.publish(price(4))
    got: list[int] = []
    deadline = time.monotonic() + 10
    while len(got) < len(want) and time.monotonic() < deadline:
        batch = await sub.next_batch()
        got.extend(int(e.event.price) for e in batch)
        sub.ack(*batch)
    await sub.close()
    # Never the acknowledged 0 and 1, whatever the start id.
    assert got == want


async def test_give_up_after_raises_the_last_error_once_an_outage_lasts_that_long(
    fresh_redis: RedisServer,
) -> None:
    async with await RedisPool.connect(fresh_redis.url) as pool:
        sub = EventStream(pool).subscribe(
            STREAM_PRICE_UPDATES, "g", "c", give_up_after_s=0.5, **FAST
        )
        assert await sub.next_batch() == []
        fresh_redis.kill()
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            async for _ in sub:
                pass
        assert time.monotonic() - started >= 0.5
        assert sub.stats.outages == 1
        await sub.close()
        assert sub.state == "stopped"


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "1"])
async def test_retry_settings_are_checked_before_redis_is_touched(
    events: EventStream, bad: object
) -> None:
    for name in ("retry_initial_s", "retry_max_s", "give_up_after_s"):
        with pytest.raises(ValueError, match=name):
            events.subscribe(STREAM_PRICE_UPDATES, "g", "c", **{name: bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        events.subscribe(STREAM_PRICE_UPDATES, "g", "c", start_id="latest")


async def test_the_manager_reports_retrying_and_connected_and_counts_outages(
    fresh_redis: RedisServer,
) -> None:
    async with await RedisPool.connect(fresh_redis.url) as pool:
        events = EventStream(pool)
        got: set[int] = set()
        changes: list[tuple[str, str | None]] = []

        async def handler(event: PriceUpdate) -> None:
            got.add(int(event.price))

        async def on_state(state: str, error: str | None) -> None:
            changes.append((state, error))

        manager = SubscriptionManager(
            events,
            "g",
            "c",
            start_id="0",
            block_ms=50,
            backoff_initial_s=0.02,
            backoff_max_s=0.2,
            on_state_change=on_state,
        )
        manager.on(PriceUpdate, handler)
        async with manager:
            await events.publish(price(0))
            await wait_until(lambda: got == {0})
            assert manager.state == "connected"
            fresh_redis.restart()
            await publish_retrying(events, 1)
            await wait_until(lambda: got == {0, 1})
            await wait_until(lambda: manager.state == "connected")
            stats = manager.stats
            assert stats.outages >= 1 and stats.group_recreations == 1, stats
            assert stats.retries >= 1 and stats.errors >= stats.retries, stats
        assert [state for state, _ in changes] == ["retrying", "connected"], changes
        assert changes[0][1] and changes[1][1] is None


async def test_response_errors_carry_the_redis_error_code(fresh_redis: RedisServer) -> None:
    async with await RedisPool.connect(fresh_redis.url) as pool:
        events = EventStream(pool)
        fresh_redis.raw("SET", "not-a-stream", "x")
        with pytest.raises(ResponseError) as wrongtype:
            await events.publish(price(0), stream="not-a-stream")
        assert wrongtype.value.code == "WRONGTYPE"

        fresh_redis.raw("CONFIG", "SET", "maxmemory", "1")
        with pytest.raises(ResponseError) as oom:
            await events.publish(price(0))
        assert oom.value.code == "OOM"
        # A group lost while the server refuses to create it again: after give_up_after_s the
        # subscription raises what it last read, NOGROUP.
        fresh_redis.raw("CONFIG", "SET", "maxmemory", "0")
        sub = events.subscribe(STREAM_PRICE_UPDATES, "g", "c", give_up_after_s=0.3, **FAST)
        assert await sub.next_batch() == []
        fresh_redis.raw("CONFIG", "SET", "maxmemory", "1")
        fresh_redis.raw("DEL", STREAM_PRICE_UPDATES)
        with pytest.raises(ResponseError) as nogroup:
            async for _ in sub:
                pass
        assert nogroup.value.code == "NOGROUP"
        assert sub.last_error is not None and "OOM" in sub.last_error  # why it stayed lost
        fresh_redis.raw("CONFIG", "SET", "maxmemory", "0")

        fresh_redis.raw("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that is not there
        with pytest.raises(ResponseError) as readonly:
            await events.publish(price(0))
        assert readonly.value.code == "READONLY"
        fresh_redis.raw("REPLICAOF", "NO", "ONE")


def test_response_error_code_defaults_to_none() -> None:
    assert ResponseError("unexpected reply").code is None
    assert ResponseError("BUSYGROUP Consumer Group name already exists", "BUSYGROUP").code == (
        "BUSYGROUP"
    )


def test_one_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next_delay_s() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.next_delay_s() == 0.5
    jittery = Backoff(1.0, 1.0, jitter=0.1, seed=3)
    delays = [jittery.next_delay_s() for _ in range(200)]
    assert all(0.9 <= d <= 1.1 for d in delays) and len(set(delays)) > 100
    same = Backoff(1.0, 1.0, jitter=0.1, seed=3)
    assert [same.next_delay_s() for _ in range(200)] == delays
    for args in [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)]:
        with pytest.raises(ValueError):
            Backoff(*args)
