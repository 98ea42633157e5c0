"""EventStream against a real redis-server: publish, trimming, tailing, bad entries, groups, info,
input validation."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import solcache
from solcache import (
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    STREAM_UI_EVENTS,
    EventStream,
    InvalidInputError,
    PositionUpdate,
    PriceUpdate,
    SystemStatus,
    TradeExecuted,
    TradingEvent,
)

pytestmark = pytest.mark.topologies

ID = re.compile(r"^\d+-\d+$")
TS = datetime(2026, 11, 26, 15, 0, 0, 123000, tzinfo=UTC)


def fields(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def xrange(server, stream: str) -> list[tuple[str, dict[str, str]]]:
    return [(entry_id, fields(flat)) for entry_id, flat in server.raw("XRANGE", stream, "-", "+")]


def prices(n: int, start: int = 0) -> list[PriceUpdate]:
    return [PriceUpdate("SOL", str(i), TS) for i in range(start, start + n)]


def id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


# --- publishing --------------------------------------------------------------------------------


async def test_publish_writes_type_and_data(events: EventStream, redis_server) -> None:
    sample: list[TradingEvent] = [
        PriceUpdate("SOL", "187.2345", TS),
        TradeExecuted("t1", "buy", "SOL/USDC", "12.5", "187.2345", TS),
        PositionUpdate("SOL", "-3.25", "-41.07", TS),
        SystemStatus("price-service", "degraded", "pyth stale", TS),
    ]
    ids = [await events.publish(e) for e in sample]
    assert all(ID.match(i) for i in ids)
    for event, entry_id in zip(sample, ids, strict=True):
        stream_entries = xrange(redis_server, event.default_stream)
        assert (entry_id, {"type": event.type, "data": event.to_json()}) in stream_entries
    assert redis_server.raw("XLEN", STREAM_PRICE_UPDATES) == 1
    assert redis_server.raw("XLEN", STREAM_TRADE_EVENTS) == 2
    assert redis_server.raw("XLEN", STREAM_UI_EVENTS) == 1
    # the raw entry has exactly the two documented fields, in order
    (_, flat), *_ = redis_server.raw("XRANGE", STREAM_PRICE_UPDATES, "-", "+")
    assert flat[::2] == ["type", "data"]


async def test_publish_to_explicit_stream(events: EventStream, redis_server) -> None:
    event = PriceUpdate("BONK", "0.0000213", TS)
    entry_id = await events.publish(event, "stream:custom")
    assert xrange(redis_server, "stream:custom") == [
        (entry_id, {"type": "price_update", "data": event.to_json()})
    ]
    assert redis_server.raw("EXISTS", STREAM_PRICE_UPDATES) == 0


async def test_publish_many_is_one_call_with_ids_in_order(
    events: EventStream, pool, redis_server
) -> None:
    batch = prices(50)
    before = pool.metrics().get("stream_publish_many")
    ids = await events.publish_many(batch)
    after = pool.metrics()["stream_publish_many"]
    assert after.count == (before.count if before else 0) + 1
    assert len(ids) == 50 and all(ID.match(i) for i in ids)
    assert ids == sorted(ids, key=id_key) and len(set(ids)) == 50
    assert xrange(redis_server, STREAM_PRICE_UPDATES) == [
        (i, {"type": "price_update", "data": e.to_json()}) for i, e in zip(ids, batch, strict=True)
    ]
    assert await events.publish_many([]) == []


def publish_connections(server: Any) -> list[str]:
    """The ids of the `solcache-publish` connections in CLIENT LIST."""
    lines = server.raw("CLIENT", "LIST").splitlines()
    return [line.split()[0] for line in lines if " name=solcache-publish " in line]


@pytest.mark.only_on("standalone", reason="publish connections are a single server's")
async def test_publishing_keeps_one_connection_and_replaces_a_killed_one(
    events: EventStream, redis_server
) -> None:
    await events.publish(PriceUpdate("SOL", 1, TS))
    first = await events.publish_many(prices(3))
    kept = publish_connections(redis_server)
    assert len(kept) == 1
    redis_server.raw("CLIENT", "KILL", "ID", kept[0].removeprefix("id="))
    # The idle connection was killed: the batch is written once, on a new connection.
    second = await events.publish_many(prices(3))
    held = [x[0] for x in xrange(redis_server, STREAM_PRICE_UPDATES)]
    assert len(held) == 7 and held[1:] == first + second
    replaced = publish_connections(redis_server)
    assert len(replaced) == 1 and replaced != kept


async def test_publish_many_routes_each_event(events: EventStream, redis_server) -> None:
    mixed: list[TradingEvent] = [
        PriceUpdate("SOL", 1, TS),
        SystemStatus("web", "healthy", "", TS),
        TradeExecuted("t1", "sell", "SOL/USDC", 1, 2, TS),
    ]
    ids = await events.publish_many(mixed)
    assert [x[0] for x in xrange(redis_server, STREAM_PRICE_UPDATES)] == [ids[0]]
    assert [x[0] for x in xrange(redis_server, STREAM_UI_EVENTS)] == [ids[1]]
    assert [x[0] for x in xrange(redis_server, STREAM_TRADE_EVENTS)] == [ids[2]]
    overridden = await events.publish_many(mixed, "stream:all")
    assert [x[0] for x in xrange(redis_server, "stream:all")] == overridden


# --- trimming ----------------------------------------------------------------------------------


async def publish_n(events: EventStream, n: int, chunk: int = 1000) -> None:
    for start in range(0, n, chunk):
        await events.publish_many(prices(min(chunk, n - start), start))


async def test_approximate_trimming_keeps_length_and_memory_bounded(
    events: EventStream, redis_server
) -> None:
    assert events.maxlen(STREAM_PRICE_UPDATES) == solcache.DEFAULT_MAXLEN == 10_000
    await publish_n(events, 15_000)
    length = redis_server.raw("XLEN", STREAM_PRICE_UPDATES)
    assert 10_000 <= length <= 10_000 + 200, length  # MAXLEN ~ trims whole radix-tree nodes
    memory_15k = redis_server.raw("MEMORY", "USAGE", STREAM_PRICE_UPDATES, "SAMPLES", "0")

    await publish_n(events, 15_000)
    length = redis_server.raw("XLEN", STREAM_PRICE_UPDATES)
    assert 10_000 <= length <= 10_000 + 200, length
    memory_30k = redis_server.raw("MEMORY", "USAGE", STREAM_PRICE_UPDATES, "SAMPLES", "0")
    assert memory_30k <= 1.3 * memory_15k, (memory_15k, memory_30k)
    # the newest entries survive trimming
    info = await events.info(STREAM_PRICE_UPDATES)
    (last_id, last), *_ = redis_server.raw("XREVRANGE", STREAM_PRICE_UPDATES, "+", "-", "COUNT", 1)
    assert info.last_id == last_id
    assert fields(last)["data"] == PriceUpdate("SOL", "14999", TS).to_json()


async def test_maxlen_per_stream(pool, redis_server) -> None:
    events = EventStream(pool, maxlen=500, maxlen_per_stream={STREAM_UI_EVENTS: 50})
    assert events.maxlen(STREAM_UI_EVENTS) == 50
    assert events.maxlen(STREAM_PRICE_UPDATES) == 500
    assert events.maxlen("stream:anything") == 500
    await events.publish_many([SystemStatus("web", "healthy", str(i), TS) for i in range(400)])
    await events.publish_many(prices(1200))
    ui_len = redis_server.raw("XLEN", STREAM_UI_EVENTS)
    price_len = redis_server.raw("XLEN", STREAM_PRICE_UPDATES)
    assert 50 <= ui_len <= 50 + 200, ui_len
    assert 500 <= price_len <= 500 + 200, price_len


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maxlen": 0},
        {"maxlen_per_stream": {STREAM_UI_EVENTS: 0}},
        {"maxlen_per_stream": {"a b": 5}},
    ],
)
async def test_bad_maxlen_rejected(pool, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        EventStream(pool, **kwargs)


# --- tailing with read -------------------------------------------------------------------------


async def test_read_tails_and_resumes(events: EventStream) -> None:
    batch = prices(5)
    ids = await events.publish_many(batch)
    first = await events.read(STREAM_PRICE_UPDATES, "0", count=3, block_ms=0)
    assert [e.id for e in first] == ids[:3]
    assert [e.event for e in first] == batch[:3]
    for e in first:
        assert (e.stream, e.error, e.deliveries) == (STREAM_PRICE_UPDATES, None, 1)
        assert isinstance(e.event, PriceUpdate)
    rest = await events.read(STREAM_PRICE_UPDATES, first[-1].id, count=3, block_ms=0)
    assert [e.id for e in rest] == ids[3:]
    assert [e.event for e in rest] == batch[3:]
    assert await events.read(STREAM_PRICE_UPDATES, rest[-1].id, count=3, block_ms=50) == []
    later = await events.publish(PriceUpdate("SOL", 99, TS))
    resumed = await events.read(STREAM_PRICE_UPDATES, rest[-1].id, count=10)
    assert [e.id for e in resumed] == [later]
    assert "StreamEntry(" in repr(resumed[0]) and later in repr(resumed[0])


async def test_entries_share_their_stream_name_and_are_acknowledged_as_entries(
    events: EventStream,
) -> None:
    """A batch's entries share one stream-name string (built once per batch); an entry's id
    is the same text however often it is read; the core takes entries back as
    acknowledgements, mixed with ``(stream, id)`` pairs; a batch over two streams names each
    right."""
    await events.publish_many(prices(3))
    first = await events.read(STREAM_PRICE_UPDATES, "0", count=10, block_ms=0)
    assert len(first) == 3
    assert all(e.stream is first[0].stream for e in first)
    assert all(e.id == e.id and e.stream is e.stream for e in first)
    await events.ensure_group(STREAM_PRICE_UPDATES, "as-entries", "0")
    acker = events.subscribe(STREAM_PRICE_UPDATES, "as-entries", "c", count=10)
    got = await acker.next_batch()
    assert [e.id for e in got] == [e.id for e in first]
    await acker._core.flush_acks([got[0], (got[1].stream, got[1].id), got[2]])
    info = await events.info(STREAM_PRICE_UPDATES)
    assert next(g.pending for g in info.groups if g.name == "as-entries") == 0
    assert acker.stats.acked == 3
    await acker.close()
    await events.ensure_group(STREAM_PRICE_UPDATES, "names", "0")
    await events.ensure_group(STREAM_UI_EVENTS, "names", "0")
    status_id = await events.publish(SystemStatus("svc", "healthy", "", TS))
    sub = events.subscribe([STREAM_PRICE_UPDATES, STREAM_UI_EVENTS], "names", "c", count=10)
    async with sub:
        batch = await sub.next_batch()
    by_stream = {e.stream: [x.id for x in batch if x.stream == e.stream] for e in batch}
    assert by_stream == {STREAM_PRICE_UPDATES: [e.id for e in first], STREAM_UI_EVENTS: [status_id]}
    assert [type(e.event) for e in batch if e.stream == STREAM_UI_EVENTS] == [SystemStatus]


async def test_read_dollar_returns_nothing_when_nothing_arrives(events: EventStream) -> None:
    await events.publish_many(prices(3))
    assert await events.read(STREAM_PRICE_UPDATES, "$", count=10, block_ms=100) == []
    assert await events.read("stream:never-written", "$", block_ms=50) == []
    assert await events.read("stream:never-written", "0", block_ms=0) == []


async def test_read_dollar_blocks_until_an_entry_arrives(events: EventStream) -> None:
    reader = asyncio.ensure_future(events.read(STREAM_PRICE_UPDATES, "$", block_ms=5000))
    await asyncio.sleep(0.2)  # let XREAD BLOCK reach the server before publishing
    entry_id = await events.publish(PriceUpdate("SOL", 7, TS))
    got = await asyncio.wait_for(reader, 10)
    assert [e.id for e in got] == [entry_id]


async def test_bad_entries_come_back_with_an_error(events: EventStream, redis_server) -> None:
    s = "stream:mixed"
    good_before = await events.publish(PriceUpdate("SOL", 1, TS), s)
    redis_server.raw("XADD", s, "*", "type", "price_update")
    redis_server.raw("XADD", s, "*", "data", PriceUpdate("SOL", 2, TS).to_json())
    redis_server.raw("XADD", s, "*", "type", "price_update", "data", "{not json")
    redis_server.raw("XADD", s, "*", "type", "liquidation", "data", "{}")
    redis_server.raw("XADD", s, "*", "type", "price_update", "data", '{"token":"SOL"}')
    redis_server.raw("XADD", s, "*", "foo", "bar")
    good_after = await events.publish(PriceUpdate("SOL", 3, TS), s)

    entries = await events.read(s, "0", count=100, block_ms=0)
    assert len(entries) == 8
    assert entries[0].id == good_before and entries[-1].id == good_after
    assert entries[0].event == PriceUpdate("SOL", 1, TS) and entries[0].error is None
    assert entries[-1].event == PriceUpdate("SOL", 3, TS) and entries[-1].error is None
    bad = entries[1:-1]
    for e in bad:
        assert e.event is None
        assert isinstance(e.error, str) and e.error
    errors = [e.error or "" for e in bad]
    assert "data" in errors[0]  # no data field
    assert "type" in errors[1]  # no type field
    assert "price_update" in errors[2]  # bad JSON
    assert "liquidation" in errors[3] and "unknown" in errors[3]
    assert "price" in errors[4]  # a missing field
    assert "type" in errors[5]


# --- groups and info ---------------------------------------------------------------------------


async def test_ensure_group_is_idempotent_and_creates_the_stream(
    events: EventStream, redis_server
) -> None:
    assert await events.ensure_group("stream:new", "g") is True
    assert await events.ensure_group("stream:new", "g") is False
    assert await events.ensure_group("stream:new", "g", "0") is False
    assert redis_server.raw("EXISTS", "stream:new") == 1
    groups = redis_server.raw("XINFO", "GROUPS", "stream:new")
    assert [fields(g)["name"] for g in groups] == ["g"]
    assert await events.ensure_group("stream:new", "other", "0") is True


async def test_info(events: EventStream, pool) -> None:
    s = STREAM_TRADE_EVENTS
    await events.ensure_group(s, "empty-at-start", "$")
    empty = await events.info(s)
    assert (empty.stream, empty.length, empty.first_id, empty.last_id) == (s, 0, None, None)
    ids = await events.publish_many(
        [TradeExecuted(f"t{i}", "buy", "SOL/USDC", i + 1, 187, TS) for i in range(10)]
    )
    await events.ensure_group(s, "from-start", "0")
    await events.ensure_group(s, "from-now", "$")
    sub = events.subscribe(s, "from-start", "c1", count=4)
    batch = await sub.next_batch()
    assert [e.id for e in batch] == ids[:4]  # read, not acknowledged

    info = await events.info(s)
    assert (info.stream, info.length, info.first_id, info.last_id) == (s, 10, ids[0], ids[-1])
    groups = {g.name: g for g in info.groups}
    assert set(groups) == {"empty-at-start", "from-start", "from-now"}
    g = groups["from-start"]
    assert (g.consumers, g.pending, g.last_delivered_id) == (1, 4, ids[3])
    assert (groups["from-now"].consumers, groups["from-now"].pending) == (0, 0)
    assert groups["from-now"].last_delivered_id == ids[-1]
    if int(pool.redis_version.split(".")[0]) >= 7:
        assert g.lag == 6
        assert groups["from-now"].lag == 0
        assert groups["empty-at-start"].lag == 10
    else:  # Redis 6.2 reports no lag: None, not a guess
        assert all(group.lag is None for group in groups.values())
    assert "from-start" in repr(g)

    sub.ack(*batch)
    await sub.close()
    after = {g.name: g for g in (await events.info(s)).groups}
    assert after["from-start"].pending == 0


# --- validation before Redis -------------------------------------------------------------------

BAD_NAMES = ["", "stream {x}", "s*", "with space", "a\nb", "s" * 129, "ünïcode"]
BAD_IDS = ["", ">", "-", "+", "1-", "a-1", "1-2-3", "0x10"]


def stream_commands_called(server) -> dict[str, int]:
    """The stream commands every primary ran since `CONFIG RESETSTAT`, summed over primaries."""
    called: Counter[str] = Counter()
    for stats in server.raw_all("INFO", "commandstats"):
        for name, n in re.findall(r"cmdstat_(x\w+):calls=(\d+)", stats):
            called[name] += int(n)
    return {name: n for name, n in called.items() if n > 0}


async def assert_invalid(call: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInputError):
        await call()


async def test_invalid_names_and_ids_rejected_before_redis(
    events: EventStream, redis_server
) -> None:
    ok = STREAM_PRICE_UPDATES
    event = PriceUpdate("SOL", 1, TS)
    redis_server.raw_all("CONFIG", "RESETSTAT")
    for bad in BAD_NAMES:
        await assert_invalid(lambda bad=bad: events.publish(event, bad))
        await assert_invalid(lambda bad=bad: events.publish_many([event], bad))
        await assert_invalid(lambda bad=bad: events.read(bad, "0"))
        await assert_invalid(lambda bad=bad: events.ensure_group(bad, "g"))
        await assert_invalid(lambda bad=bad: events.ensure_group(ok, bad))
        await assert_invalid(lambda bad=bad: events.info(bad))
    for bad in BAD_IDS:
        await assert_invalid(lambda bad=bad: events.read(ok, bad))
        await assert_invalid(lambda bad=bad: events.ensure_group(ok, "g", bad))
    await assert_invalid(lambda: events.read(ok, "0", count=0))
    assert stream_commands_called(redis_server) == {}


@pytest.mark.parametrize(
    ("streams", "group", "consumer", "options"),
    [
        (["bad name"], "g", "c", {}),
        ([], "g", "c", {}),
        ([STREAM_PRICE_UPDATES], "bad group", "c", {}),
        ([STREAM_PRICE_UPDATES], "g", "", {}),
        ([STREAM_PRICE_UPDATES], "g", "c*", {}),
        ([STREAM_PRICE_UPDATES], "g", "c", {"count": 0}),
        ([STREAM_PRICE_UPDATES], "g", "c", {"block_ms": 0}),
        ([STREAM_PRICE_UPDATES], "g", "c", {"claim_min_idle_ms": 0}),
        ([STREAM_PRICE_UPDATES], "g", "c", {"claim_interval_ms": 0}),
        ([STREAM_PRICE_UPDATES], "g", "c", {"max_deliveries": 0}),
    ],
)
async def test_invalid_subscription_rejected_before_redis(
    events: EventStream, redis_server, streams, group, consumer, options
) -> None:
    redis_server.raw_all("CONFIG", "RESETSTAT")
    with pytest.raises(InvalidInputError):
        events.subscribe(streams, group, consumer, **options)
    assert stream_commands_called(redis_server) == {}


async def test_closing_a_subscription_closes_its_connection(
    events: solcache.EventStream, redis_server, eventually
) -> None:
    def clients() -> int:  # on the server holding the stream
        return len(redis_server.node_of(STREAM_UI_EVENTS).raw("CLIENT", "LIST").splitlines())

    await events.ensure_group(solcache.STREAM_UI_EVENTS, "g", start_id="0")
    before = clients()
    sub = events.subscribe(solcache.STREAM_UI_EVENTS, "g", "c", block_ms=10)
    assert await sub.next_batch() == []
    assert clients() == before + 1  # the blocking reads' own connection
    await sub.close()

    async def released() -> None:
        assert clients() == before

    await eventually(released)


async def test_acknowledgements_are_stream_id_pairs_checked_before_redis(
    events: solcache.EventStream,
) -> None:
    """The core takes ``(stream, id)`` pairs of strings, over several streams at once; anything
    else is a TypeError or ValueError before anything is acknowledged."""
    await events.publish_many(prices(2))
    await events.publish(SystemStatus("svc", "healthy", "", TS))
    for stream in (STREAM_PRICE_UPDATES, STREAM_UI_EVENTS):
        await events.ensure_group(stream, "acks", "0")
    sub = events.subscribe([STREAM_PRICE_UPDATES, STREAM_UI_EVENTS], "acks", "c", count=10)
    batch = await sub.next_batch()
    assert len(batch) == 3

    async def pending() -> list[int]:
        infos = [await events.info(s) for s in (STREAM_PRICE_UPDATES, STREAM_UI_EVENTS)]
        return [next(g.pending for g in i.groups if g.name == "acks") for i in infos]

    core = sub._core
    for bad in ([(STREAM_PRICE_UPDATES, 1)], [STREAM_PRICE_UPDATES], [(batch[0].id,)], 5):
        with pytest.raises((TypeError, ValueError)):
            await core.flush_acks(bad)  # type: ignore[arg-type]
    assert await pending() == [2, 1]
    await core.flush_acks([(e.stream, e.id) for e in batch])
    assert await pending() == [0, 0]
    assert sub.stats.acked == 3
    await sub.close()
