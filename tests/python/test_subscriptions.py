"""Consumer groups end to end against a real redis-server: ordering and latency at 10 Hz, fan-out
and load sharing, redelivery after a crash, dead-letter, bad entries, graceful stop, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from conftest import writes_refused
from solcache import (
    STREAM_DEAD_LETTER,
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    EventStream,
    InvalidInputError,
    PositionUpdate,
    PriceUpdate,
    RedisPool,
    StreamEntry,
    Subscription,
    TradeExecuted,
    TradingEvent,
)
from solcache.subscriptions import ManagerStats, SubscriptionManager

pytestmark = [pytest.mark.timeout(60), pytest.mark.topologies]

TS = datetime(2026, 11, 26, 15, 0, 0, 123000, tzinfo=UTC)
FAST_CLAIM = {"claim_min_idle_ms": 200, "claim_interval_ms": 100}


def prices(n: int, start: int = 0, token: str = "SOL") -> list[PriceUpdate]:
    return [PriceUpdate(token, str(i), TS) for i in range(start, start + n)]


def fields(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def pending_count(server, stream: str, group: str) -> int:
    """XPENDING summary: entries delivered to the group and not acknowledged."""
    return int(server.raw("XPENDING", stream, group)[0])


def consumer_names(server, stream: str, group: str) -> list[str]:
    """XINFO CONSUMERS: the group's consumer names, sorted."""
    return sorted(fields(row)["name"] for row in server.raw("XINFO", "CONSUMERS", stream, group))


def pending_ids(server, stream: str, group: str, consumer: str | None = None) -> set[str]:
    args = [stream, group, "-", "+", 10_000] + ([consumer] if consumer else [])
    return {row[0] for row in server.raw("XPENDING", *args)}


async def collect(sub: Subscription, n: int, within_s: float = 10.0) -> list[StreamEntry]:
    """Read (and acknowledge) batches until `n` entries arrived."""
    got: list[StreamEntry] = []

    async def run() -> None:
        while len(got) < n:
            batch = await sub.next_batch()
            got.extend(batch)
            sub.ack(*batch)

    await asyncio.wait_for(run(), within_s)
    return got


async def wait_until(check, within_s: float = 10.0, every_s: float = 0.02) -> None:
    """Poll `check()` (sync) until it is true; fail with its last value after `within_s`."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(every_s)


def percentile(samples: Iterable[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- 10 Hz for 10 s ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_10hz_for_10s_all_in_order_with_latency(events: EventStream, redis_server, capsys):
    s, group = STREAM_PRICE_UPDATES, "ui"
    await events.ensure_group(s, group, "$")
    sub = events.subscribe(s, group, "ui-1")
    published_at: dict[int, float] = {}
    received: list[int] = []
    latencies_ms: list[float] = []

    async def consume() -> None:
        async for entry in sub:
            now = time.perf_counter()
            assert isinstance(entry.event, PriceUpdate) and entry.deliveries == 1
            n = int(entry.event.price)
            latencies_ms.append((now - published_at[n]) * 1000)
            received.append(n)
            if len(received) == 100:
                sub.ack(entry)  # leaving the loop skips the iterator's ack of the last entry
                break
        await sub.close()

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    for n in range(100):
        await asyncio.sleep(max(0.0, start + n * 0.1 - time.perf_counter()))
        published_at[n] = time.perf_counter()
        await events.publish(PriceUpdate("SOL", n))
    await asyncio.wait_for(consumer, 10)

    assert received == list(range(100))
    assert max(latencies_ms) < 1000
    assert pending_count(redis_server, s, group) == 0
    assert sub.stats.delivered == 100 and sub.stats.acked == 100
    with capsys.disabled():
        print(
            f"\n10 Hz x 100 events, publish->handler latency: "
            f"p50 {percentile(latencies_ms, 0.5):.2f} ms, "
            f"p99 {percentile(latencies_ms, 0.99):.2f} ms, max {max(latencies_ms):.2f} ms"
        )


# --- groups and consumers ------------------------------------------------------------------------


async def test_the_iterator_reads_the_next_batch_ahead_and_a_closed_one_leaves_it_pending(
    events: EventStream, redis_server, topology
) -> None:
    """While the loop body handles a batch, the next one is already read (delivered to this
    consumer), and after a full one the one after it is on its way too; closing leaves what was
    read ahead pending for this consumer, not counted as delivered, and the consumer gets it
    first when it comes back. ``next_batch()`` never reads ahead."""
    s, group = STREAM_PRICE_UPDATES, "ahead"
    ids = await events.publish_many(prices(30))
    await events.ensure_group(s, group, "0")
    # With the first batch in hand, the second was read with it. On one server's connection
    # read as bytes, the read of the third was written too, before the second (full) was
    # decoded; Cluster and Sentinel reads go through the pool.
    ahead = 30 if topology == "standalone" else 20
    sub = events.subscribe(s, group, "c", count=10)
    async with sub:
        async for entry in sub:
            if entry.id == ids[0]:
                await wait_until(lambda: len(pending_ids(redis_server, s, group, "c")) == ahead)
                # On the subscription's own connection, named for what it does (a cluster
                # client's node connections carry no name).
                clients = redis_server.node_of(s).raw("CLIENT", "LIST").splitlines()
                name = "" if topology == "cluster" else "solcache-group"
                ours = [line for line in clients if f" name={name} " in line]
                assert any(" cmd=xreadgroup " in line for line in ours)
                if topology != "cluster":
                    assert all(" cmd=xreadgroup " in line for line in ours)
            if entry.id == ids[14]:
                await wait_until(lambda: len(pending_ids(redis_server, s, group, "c")) >= 20)
                break
    # Handled 0..14 (the break acks the last one); 20..29 were read ahead and never handed out.
    assert pending_ids(redis_server, s, group, "c") == set(ids[15:])
    assert (sub.stats.delivered, sub.stats.acked) == (20, 15)

    again = events.subscribe(s, group, "c", count=10)
    first = await again.next_batch()
    assert [e.id for e in first] == ids[15:25]  # its own pending entries first
    assert pending_ids(redis_server, s, group, "c") == set(ids[15:])  # no read ahead here
    again.ack(*first)
    rest = await again.next_batch()
    again.ack(*rest)
    await again.close()
    assert [e.id for e in rest] == ids[25:]
    assert pending_count(redis_server, s, group) == 0


async def test_two_groups_each_receive_every_event(events: EventStream, redis_server) -> None:
    s = STREAM_PRICE_UPDATES
    for g in ("risk", "ui"):
        assert await events.ensure_group(s, g, "$")
    ids = await events.publish_many(prices(50))
    for g in ("risk", "ui"):
        sub = events.subscribe(s, g, f"{g}-1", count=20)
        got = await collect(sub, 50)
        await sub.close()
        assert [e.id for e in got] == ids
        assert [e.event for e in got] == prices(50)
        assert pending_count(redis_server, s, g) == 0


async def test_two_consumers_in_a_group_split_without_duplicates_or_gaps(
    events: EventStream, redis_server
) -> None:
    s, group, total = STREAM_PRICE_UPDATES, "workers", 60
    await events.ensure_group(s, group, "$")
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def work(name: str) -> None:
        sub = events.subscribe(s, group, name, count=5, block_ms=50)
        while sum(map(len, seen.values())) < total:
            batch = await sub.next_batch()
            seen[name].extend(e.id for e in batch)
            sub.ack(*batch)
            await asyncio.sleep(0.005)  # some work: the other consumer gets its turn
        await sub.close()

    workers = asyncio.gather(work("a"), work("b"))
    await asyncio.sleep(0.1)  # both are waiting in XREADGROUP BLOCK
    ids: list[str] = []
    for start in range(0, total, 3):
        ids += await events.publish_many(prices(3, start))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(workers, 15)

    a, b = set(seen["a"]), set(seen["b"])
    assert len(a) == len(seen["a"]) and len(b) == len(seen["b"])  # no duplicates
    assert a & b == set()
    assert a | b == set(ids)  # no gaps
    assert a and b, "both consumers got a share"
    assert pending_count(redis_server, s, group) == 0


# --- crash recovery and dead-letter --------------------------------------------------------------


async def test_killed_consumer_batch_is_redelivered_to_another(
    events: EventStream, redis_server
) -> None:
    s, group = STREAM_TRADE_EVENTS, "settlement"
    await events.ensure_group(s, group, "$")
    trades = [TradeExecuted(f"t{i}", "buy", "SOL/USDC", i + 1, "187.5", TS) for i in range(30)]
    ids = await events.publish_many(trades)

    doomed_pool = await RedisPool.connect(redis_server.url)
    doomed = EventStream(doomed_pool).subscribe(s, group, "doomed", count=10)
    batch = await doomed.next_batch()
    assert [e.id for e in batch] == ids[:10]
    # killed mid-batch: no ack, no close(); its connections go away
    await doomed_pool.close()
    del doomed, batch
    assert pending_ids(redis_server, s, group, "doomed") == set(ids[:10])

    survivor = events.subscribe(s, group, "survivor", count=100, **FAST_CLAIM)
    got: dict[str, StreamEntry] = {}

    async def run() -> None:
        while set(got) != set(ids):
            batch = await survivor.next_batch()
            for e in batch:
                got.setdefault(e.id, e)
            survivor.ack(*batch)

    await asyncio.wait_for(run(), 10)
    await survivor.close()
    for entry_id in ids[:10]:
        assert got[entry_id].deliveries >= 2
        assert got[entry_id].event == trades[ids.index(entry_id)]
    for entry_id in ids[10:]:
        assert got[entry_id].deliveries == 1
    assert survivor.stats.redelivered >= 10
    assert pending_count(redis_server, s, group) == 0  # nothing lost, all acknowledged


async def test_poison_entry_is_dead_lettered_after_max_deliveries(
    events: EventStream, redis_server, caplog
) -> None:
    s, group = STREAM_PRICE_UPDATES, "risk"
    handled: list[str] = []

    async def handler(event: PriceUpdate) -> None:
        if event.token == "BONK":
            raise RuntimeError("poison: cannot price BONK")
        handled.append(str(event.price))

    batch = [*prices(5), PriceUpdate("BONK", "0.00002", TS), *prices(5, 5)]
    ids = await events.publish_many(batch)
    poison_id = ids[5]
    manager = SubscriptionManager(
        events, group, "risk-1", start_id="0", block_ms=50, max_deliveries=3, **FAST_CLAIM
    )
    manager.on(PriceUpdate, handler)
    async with manager:
        await wait_until(lambda: redis_server.raw("XLEN", STREAM_DEAD_LETTER) == 1)
        await wait_until(lambda: pending_count(redis_server, s, group) == 0)
        await wait_until(lambda: manager.stats.handled == 10)
        core = manager.subscription_stats
        assert core is not None and core.dead_lettered == 1 and core.bad_entries == 0

    ((_, flat),) = redis_server.raw("XRANGE", STREAM_DEAD_LETTER, "-", "+")
    dead = fields(flat)
    assert set(dead) == {
        "source_stream", "source_id", "group", "consumer", "reason", "deliveries", "type", "data"
    }  # fmt: skip
    assert (dead["source_stream"], dead["source_id"]) == (s, poison_id)
    assert (dead["group"], dead["consumer"]) == (group, "risk-1")
    assert int(dead["deliveries"]) > 3 and "max_deliveries" in dead["reason"]
    assert (dead["type"], dead["data"]) == ("price_update", batch[5].to_json())

    assert sorted(handled, key=int) == [str(i) for i in range(10)]  # each good one exactly once
    stats = manager.stats
    assert stats.failed >= 3 and stats.handled == 10 and stats.redelivered >= 2
    assert stats.errors == 0
    failures = [r for r in caplog.records if r.name == "solcache" and "poison" in r.getMessage()]
    assert failures and all(r.levelno == logging.ERROR for r in failures)


async def test_bad_entries_are_dead_lettered_and_the_loop_goes_on(
    events: EventStream, redis_server
) -> None:
    s, group = "stream:ingest", "g"
    await events.ensure_group(s, group, "$")
    first = await events.publish(PriceUpdate("SOL", 1, TS), s)
    bad_ids = [
        redis_server.raw("XADD", s, "*", "type", "price_update"),
        redis_server.raw("XADD", s, "*", "data", PriceUpdate("SOL", 9, TS).to_json()),
        redis_server.raw("XADD", s, "*", "type", "price_update", "data", "{not json"),
        redis_server.raw("XADD", s, "*", "type", "liquidation", "data", "{}"),
    ]
    second = await events.publish(PriceUpdate("SOL", 2, TS), s)

    sub = events.subscribe(s, group, "c1")
    got = await collect(sub, 2)
    assert [e.id for e in got] == [first, second]
    assert sub.stats.bad_entries == 4 and sub.stats.dead_lettered == 4
    third = await events.publish(PriceUpdate("SOL", 3, TS), s)
    assert [e.id for e in await collect(sub, 1)] == [third]  # still delivering
    await sub.close()
    assert pending_count(redis_server, s, group) == 0

    dead = {
        f["source_id"]: f
        for f in (
            fields(flat) for _, flat in redis_server.raw("XRANGE", STREAM_DEAD_LETTER, "-", "+")
        )
    }
    assert set(dead) == set(bad_ids)
    reasons = [dead[i]["reason"] for i in bad_ids]
    assert "data" in reasons[0]
    assert "type" in reasons[1]
    assert "price_update" in reasons[2]
    assert "unknown event type" in reasons[3] and "liquidation" in reasons[3]
    assert all("undecodable" in r for r in reasons)
    assert all(dead[i]["source_stream"] == s and dead[i]["group"] == group for i in bad_ids)
    assert dead[bad_ids[2]]["data"] == "{not json"


# --- the subscription manager --------------------------------------------------------------------


async def test_manager_dispatches_by_type_name_class_and_stream(
    events: EventStream, redis_server
) -> None:
    trades: list[TradeExecuted] = []
    by_name: list[TradingEvent] = []
    entries: list[StreamEntry] = []

    async def on_trade(event: TradeExecuted) -> None:
        trades.append(event)

    async def on_position(event: TradingEvent) -> None:
        by_name.append(event)

    async def on_price_entry(entry: StreamEntry) -> None:
        entries.append(entry)

    manager = SubscriptionManager(events, "app", "app-1", block_ms=50)
    manager.on(TradeExecuted, on_trade)
    manager.on("position_update", on_position)
    manager.on_stream(STREAM_PRICE_UPDATES, on_price_entry)
    assert manager.streams == [STREAM_TRADE_EVENTS, STREAM_PRICE_UPDATES]
    async with manager:
        assert manager.running
        trade = TradeExecuted("t1", "buy", "SOL/USDC", 1, 187, TS)
        position = PositionUpdate("SOL", 1, 0, TS)
        ids = await events.publish_many([trade, position, *prices(3)])
        await wait_until(lambda: len(trades) == 1 and len(by_name) == 1 and len(entries) == 3)
    assert not manager.running
    assert trades == [trade] and by_name == [position]
    assert [e.id for e in entries] == ids[2:] and [e.event for e in entries] == prices(3)
    assert all(e.stream == STREAM_PRICE_UPDATES and e.deliveries == 1 for e in entries)
    stats = manager.stats
    assert isinstance(stats, ManagerStats)
    assert (stats.handled, stats.failed, stats.errors, stats.ignored) == (5, 0, 0, 0)
    assert stats.batches >= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.handled = 0  # type: ignore[misc]
    for stream in (STREAM_TRADE_EVENTS, STREAM_PRICE_UPDATES):
        assert pending_count(redis_server, stream, "app") == 0


async def test_manager_acks_unhandled_types_and_runs_every_handler(events: EventStream) -> None:
    calls: Counter[str] = Counter()

    async def first(event: TradeExecuted) -> None:
        calls["first"] += 1

    async def second(event: TradeExecuted) -> None:
        await asyncio.sleep(0.01)
        calls["second"] += 1

    manager = SubscriptionManager(events, "trades", "t-1", block_ms=50)
    manager.on(TradeExecuted, first)
    manager.on("trade_executed", second)
    async with manager:
        await events.publish(PositionUpdate("SOL", 1, 0, TS))  # same stream, no handler
        await events.publish(TradeExecuted("t1", "sell", "SOL/USDC", 1, 187, TS))
        await wait_until(lambda: manager.stats.handled == 1 and manager.stats.ignored == 1)
    assert calls == {"first": 1, "second": 1}
    info = await events.info(STREAM_TRADE_EVENTS)
    assert [g.pending for g in info.groups] == [0]


async def test_manager_handler_timeout_is_a_failure_then_retried(
    events: EventStream, redis_server
) -> None:
    attempts: list[int] = []

    async def slow_once(entry: StreamEntry) -> None:
        attempts.append(entry.deliveries)
        if len(attempts) == 1:
            await asyncio.sleep(30)

    manager = SubscriptionManager(
        events, "g", "c", block_ms=50, handler_timeout_s=0.2, **FAST_CLAIM
    )
    manager.on_stream(STREAM_PRICE_UPDATES, slow_once)
    async with manager:
        await events.publish(PriceUpdate("SOL", 1, TS))
        await wait_until(lambda: manager.stats.handled == 1)
    assert attempts[0] == 1 and attempts[-1] >= 2
    assert manager.stats.failed == 1 and manager.stats.redelivered >= 1
    assert pending_count(redis_server, STREAM_PRICE_UPDATES, "g") == 0


async def test_manager_registration_errors(events: EventStream) -> None:
    async def handler(event: TradingEvent) -> None:
        pass

    manager = SubscriptionManager(events, "g", "c", block_ms=50)
    with pytest.raises(RuntimeError):
        await manager.start()  # nothing registered
    with pytest.raises(InvalidInputError):
        manager.on("liquidation", handler)
    with pytest.raises(InvalidInputError):
        manager.on(TradingEvent, handler)
    for bad in [
        {"backoff_initial_s": 0},
        {"backoff_max_s": float("inf")},
        {"handler_timeout_s": -1.0},
        {"backoff_initial_s": 2.0, "backoff_max_s": 1.0},
        {"count": 0},
    ]:
        with pytest.raises(InvalidInputError):
            SubscriptionManager(events, "g", "c", **bad)  # type: ignore[arg-type]
    manager.on(PriceUpdate, handler)
    async with manager:
        with pytest.raises(RuntimeError):
            manager.on(PositionUpdate, handler)
        with pytest.raises(RuntimeError):
            await manager.start()
    bad_group = SubscriptionManager(events, "bad group", "c")
    bad_group.on(PriceUpdate, handler)
    with pytest.raises(InvalidInputError):
        await bad_group.start()


async def test_manager_stop_timeout_cancels_a_stuck_handler(
    events: EventStream, redis_server
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(event: PriceUpdate) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    manager = SubscriptionManager(events, "g", "stuck-1", block_ms=50)
    manager.on(PriceUpdate, stuck)
    await manager.start()
    entry_id = await events.publish(PriceUpdate("SOL", 1, TS))
    await asyncio.wait_for(started.wait(), 10)
    await manager.stop(timeout_s=0.3)
    assert not manager.running and cancelled.is_set()
    # not handled, so not acknowledged: it will be delivered again, and the consumer holding it
    # stays in the group so it can be claimed
    assert pending_ids(redis_server, STREAM_PRICE_UPDATES, "g", "stuck-1") == {entry_id}
    assert manager.stats.handled == 0
    assert consumer_names(redis_server, STREAM_PRICE_UPDATES, "g") == ["stuck-1"]


async def test_graceful_stop_acks_what_was_handled_and_restart_resumes(
    events: EventStream, redis_server
) -> None:
    s, group, consumer, total = STREAM_PRICE_UPDATES, "g", "worker-1", 300
    handled: list[str] = []

    async def handler(entry: StreamEntry) -> None:
        await asyncio.sleep(0.001)
        handled.append(entry.id)

    def make_manager() -> SubscriptionManager:
        m = SubscriptionManager(events, group, consumer, start_id="0", count=10, block_ms=50)
        m.on_stream(s, handler)
        return m

    published: list[str] = []

    async def publisher() -> None:
        for start in range(0, total, 5):
            published.extend(await events.publish_many(prices(5, start)))
            await asyncio.sleep(0.005)

    pub = asyncio.create_task(publisher())
    first = make_manager()
    await first.start()
    await wait_until(lambda: len(handled) >= 50)
    await first.stop()  # while events keep flowing
    first_run = list(handled)
    assert first.stats.handled == len(first_run)
    assert not pending_ids(redis_server, s, group, consumer) & set(first_run)

    await asyncio.wait_for(pub, 20)
    second = make_manager()
    async with second:
        await wait_until(lambda: set(handled) >= set(published))
    assert len(published) == total
    assert set(handled) == set(published)
    assert [i for i, n in Counter(handled).items() if n > 1] == []  # handled-and-acked: once
    assert pending_count(redis_server, s, group) == 0
    # having acked everything, the consumer left the group on stop (no dead consumers pile up)
    assert consumer_names(redis_server, s, group) == []


async def test_remove_consumer_on_stop_can_be_turned_off(events: EventStream, redis_server) -> None:
    manager = SubscriptionManager(
        events, "g", "stays-1", block_ms=50, remove_consumer_on_stop=False
    )

    async def handle(_event: PriceUpdate) -> None:
        pass

    manager.on(PriceUpdate, handle)
    async with manager:
        await events.publish(PriceUpdate("SOL", 1, TS))
        await wait_until(lambda: manager.stats.handled == 1)
    assert consumer_names(redis_server, STREAM_PRICE_UPDATES, "g") == ["stays-1"]


@pytest.mark.only_on("standalone", reason="stops and starts the server")
async def test_manager_survives_a_redis_restart(fresh_redis, eventually) -> None:
    timeouts = {"connect_timeout_ms": 300, "response_timeout_ms": 300, "checkout_timeout_ms": 300}
    async with await RedisPool.connect(fresh_redis.url, **timeouts) as pool:
        events = EventStream(pool)
        got: list[int] = []

        async def handler(event: PriceUpdate) -> None:
            got.append(int(event.price))

        # start_id "0": the server comes back empty, and the group re-created by the manager
        # must also see entries published before it was re-created
        manager = SubscriptionManager(
            events,
            "g",
            "c",
            start_id="0",
            block_ms=50,
            backoff_initial_s=0.05,
            backoff_max_s=0.4,
        )
        manager.on(PriceUpdate, handler)
        async with manager:
            await events.publish_many(prices(5))
            await wait_until(lambda: set(got) >= set(range(5)))

            fresh_redis.stop()
            await wait_until(lambda: manager.stats.errors >= 2)
            await asyncio.sleep(1.0)
            # backoff, not a spin: 0.05 + 0.1 + 0.2 + 0.4 + 0.4 … leaves room for ~6 tries/s
            assert 2 <= manager.stats.errors <= 20
            assert manager.running
            fresh_redis.start()  # same port, no data

            async def publish_after_restart() -> None:
                await events.publish_many(prices(5, 100))

            await eventually(publish_after_restart)
            await wait_until(lambda: set(got) >= set(range(100, 105)), within_s=15)
            assert manager.running
        assert manager.stats.errors >= 2


async def test_manager_recreates_a_lost_group(events: EventStream, redis_server) -> None:
    got: list[int] = []

    async def handler(event: PriceUpdate) -> None:
        got.append(int(event.price))

    manager = SubscriptionManager(
        events, "g", "c", start_id="0", block_ms=50, backoff_initial_s=0.02, backoff_max_s=0.1
    )
    manager.on(PriceUpdate, handler)
    async with manager:
        await events.publish_many(prices(3))
        await wait_until(lambda: sorted(got) == [0, 1, 2])
        redis_server.raw("XGROUP", "DESTROY", STREAM_PRICE_UPDATES, "g")  # an operator's mistake
        await events.publish_many(prices(3, 3))
        await wait_until(lambda: set(got) >= set(range(6)))
        redis_server.raw("DEL", STREAM_PRICE_UPDATES)  # the stream too
        await events.publish_many(prices(3, 6))
        await wait_until(lambda: set(got) >= set(range(9)))
        assert manager.running
    assert manager.stats.errors >= 2  # NOGROUP (or UNBLOCKED), retried after re-creating the group
    assert pending_count(redis_server, STREAM_PRICE_UPDATES, "g") == 0


async def test_manager_retries_any_error_until_it_clears(
    events: EventStream, redis_server, caplog
) -> None:
    got: list[int] = []

    async def handler(event: PriceUpdate) -> None:
        got.append(int(event.price))

    manager = SubscriptionManager(
        events, "g", "c", start_id="0", block_ms=50, backoff_initial_s=0.02, backoff_max_s=0.2
    )
    manager.on(PriceUpdate, handler)
    async with manager:
        await wait_until(lambda: manager.last_read_monotonic_s is not None)
        assert manager.state == "connected"
        redis_server.raw("DEL", STREAM_PRICE_UPDATES)
        redis_server.raw("SET", STREAM_PRICE_UPDATES, "not a stream")  # WRONGTYPE from now on
        await wait_until(lambda: manager.stats.errors >= 3)
        assert manager.running and manager.state == "retrying"
        assert manager.last_error is not None and "WRONGTYPE" in manager.last_error
        last_read = manager.last_read_monotonic_s
        redis_server.raw("DEL", STREAM_PRICE_UPDATES)  # fixed: the group is re-created
        await events.publish_many(prices(3))
        await wait_until(lambda: sorted(got) == [0, 1, 2])
        assert manager.state == "connected" and manager.last_error is None
        assert manager.last_read_monotonic_s is not None and last_read is not None
        assert manager.last_read_monotonic_s > last_read
    assert manager.state == "stopped"
    # logged once per distinct error, without a traceback (it is a Redis error reply)
    warnings = [r for r in caplog.records if "WRONGTYPE" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert warnings[0].exc_info is None


async def test_manager_recreates_its_group_once_a_refusing_server_takes_writes(
    events: EventStream, redis_server
) -> None:
    got: list[int] = []

    async def handler(event: PriceUpdate) -> None:
        got.append(int(event.price))

    manager = SubscriptionManager(
        events, "g", "c", start_id="0", block_ms=50, backoff_initial_s=0.02, backoff_max_s=0.2
    )
    manager.on(PriceUpdate, handler)
    async with manager:
        with writes_refused(redis_server):
            redis_server.raw("DEL", STREAM_PRICE_UPDATES)  # group lost; XGROUP CREATE: OOM
            await wait_until(lambda: manager.last_error is not None and "OOM" in manager.last_error)
            errors = manager.stats.errors
            await wait_until(lambda: manager.stats.errors >= errors + 3)  # still retrying
            assert manager.running
        await events.publish_many(prices(3))
        await wait_until(lambda: sorted(got) == [0, 1, 2])
        assert manager.state == "connected"
    assert pending_count(redis_server, STREAM_PRICE_UPDATES, "g") == 0
