"""`GET /events` over real HTTP (uvicorn) against a real redis-server: delivery, `id:` and
`event:`, resuming with Last-Event-ID, bounded queues that coalesce prices, stalled clients,
heartbeats and shutdown. The per-client queue is also tested on its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

import solcache
from solcache import (
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    STREAM_UI_EVENTS,
    EventStream,
    PriceUpdate,
    SystemStatus,
    TradeExecuted,
)
from solcache.web.client_queue import ClientQueue
from solcache.web.ids import STREAMS, format_composite, id_key, parse_composite
from solcache.web.limits import GatewayLimits
from solcache.web.messages import Message

TOKENS = ("SOL", "USDC", "BONK", "JitoSOL", "RAY")
SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"


@dataclass
class Sse:
    """One parsed SSE message, or a comment (`comment` set, the rest None)."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[Sse]:
    """SSE messages and comments from a stream of lines."""
    current = Sse()
    async for line in lines:
        if line == "":
            if current.event or current.data is not None:
                yield current
            current = Sse()
        elif line.startswith(":"):
            yield Sse(comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "data":
                current.data = value if current.data is None else current.data + "\n" + value


class SseClient:
    """An `/events` subscriber over httpx; `await connected()` before publishing."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._messages = parse_sse(response.aiter_lines())
        self.comments: list[str] = []

    async def next(self, within_s: float = 5.0) -> Sse:
        async with asyncio.timeout(within_s):
            return await anext(self._messages)

    async def connected(self) -> None:
        while (await self.next()).comment != "connected":
            pass

    async def events(self, n: int, within_s: float = 5.0, skip: tuple[str, ...] = ()) -> list[Sse]:
        """The next `n` messages (comments collected aside, `skip` types ignored)."""
        out: list[Sse] = []
        deadline = time.monotonic() + within_s
        while len(out) < n:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if message.comment is not None:
                self.comments.append(message.comment)
            elif message.event not in skip:
                out.append(message)
        return out

    async def quiet(self, for_s: float, skip: tuple[str, ...] = ("pool_state",)) -> list[Sse]:
        """Messages (not comments, not `skip`) that arrive within `for_s`."""
        out: list[Sse] = []
        deadline = time.monotonic() + for_s
        try:
            while True:
                message = await self.next(max(0.001, deadline - time.monotonic()))
                if message.comment is None and message.event not in skip:
                    out.append(message)
        except TimeoutError:
            return out


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


@pytest.fixture
def server_errors() -> Iterator[Callable[[], list[logging.LogRecord]]]:
    """Call it after starting the gateway (uvicorn's logging setup drops earlier handlers):
    it collects the ERROR records of uvicorn's and asyncio's loggers from then on (uvicorn
    does not propagate to the root logger, so caplog would not see them)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.ERROR)
    loggers = [logging.getLogger(n) for n in ("uvicorn", "asyncio")]

    def capture() -> list[logging.LogRecord]:
        for logger in loggers:
            logger.addHandler(handler)
        return records

    yield capture
    for logger in loggers:
        logger.removeHandler(handler)


def subscribe(http: httpx.AsyncClient, url: str, last_event_id: str | None = None) -> Any:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return http.stream("GET", f"{url}/events", headers=headers)


def entry_ids(messages: list[Sse]) -> list[str]:
    return [m.json["id"] for m in messages]


def by_stream(messages: list[Sse]) -> dict[str, list[str]]:
    """Entry ids per stream, in arrival order (the live fan-out orders each stream; across
    streams only within one read round)."""
    out: dict[str, list[str]] = {}
    for m in messages:
        out.setdefault(m.json["stream"], []).append(m.json["id"])
    return out


def same_events(messages: list[Sse], ids: list[str]) -> bool:
    """`messages` are exactly the entries `ids`, each stream's in order."""
    return sorted(entry_ids(messages), key=id_key) == ids and all(
        ids_ == sorted(ids_, key=id_key) for ids_ in by_stream(messages).values()
    )


# --- the per-client queue ----------------------------------------------------------------------


def price(token: str, n: int) -> Message:
    return Message("price_update", f"{token}{n}", 0, f"{n}-0", key=f"price:{token}")


def trade(n: int) -> Message:
    return Message("trade_executed", f"t{n}", 1, f"{n}-0")


def test_queue_keeps_everything_while_there_is_room() -> None:
    q = ClientQueue(8)
    sent = [price("SOL", 1), price("SOL", 2), trade(3)]
    for m in sent:
        q.put(m)
    assert q.take_all() == sent
    assert (q.coalesced, q.dropped, len(q)) == (0, 0, 0)


def test_full_queue_coalesces_prices_latest_per_token_first() -> None:
    q = ClientQueue(4)
    for m in (price("SOL", 1), trade(2), price("SOL", 3), price("BONK", 4)):
        q.put(m)
    q.put(price("SOL", 5))  # full: SOL 1 is superseded by SOL 3 and goes first
    assert [m.data for m in q.take_all()] == ["t2", "SOL3", "BONK4", "SOL5"]
    assert (q.coalesced, q.dropped) == (1, 0)


def test_full_queue_replaces_own_token_then_drops_oldest_non_price() -> None:
    q = ClientQueue(3)
    for m in (trade(1), price("SOL", 2), trade(3)):
        q.put(m)
    q.put(price("SOL", 4))  # the queued SOL price gives way to the newer one
    assert [m.data for m in q.take_all()] == ["t1", "t3", "SOL4"]
    for m in (trade(5), price("SOL", 6), trade(7)):
        q.put(m)
    q.put(trade(8))  # no price to coalesce: the oldest trade is dropped, the price stays
    assert [m.data for m in q.take_all()] == ["SOL6", "t7", "t8"]
    assert (q.coalesced, q.dropped) == (1, 1)


def test_queue_stays_bounded_under_a_flood() -> None:
    q = ClientQueue(16)
    for n in range(10_000):
        q.put(price(TOKENS[n % 5], n) if n % 3 else trade(n))
        assert len(q) <= 16
    left = q.take_all()
    newest = {}
    for n in range(10_000):
        if n % 3:
            newest[f"price:{TOKENS[n % 5]}"] = f"{TOKENS[n % 5]}{n}"
    prices_left = [m for m in left if m.key]
    assert {m.key: m.data for m in prices_left} == newest  # the latest price of every token
    assert len(prices_left) == len(TOKENS)  # and nothing older
    assert q.high_water == 16
    assert q.coalesced + q.dropped == 10_000 - 16


def test_composite_ids_round_trip_and_reject_garbage() -> None:
    ids = ("1735689600000-0", "1735689600001-3", "0-0")
    assert parse_composite(format_composite(ids)) == ids
    for bad in (None, "", "1-0,2-0", "a-b,1-0,2-0", "1-0,2-0,3-0,4-0", "1-0," * 100):
        assert parse_composite(bad) is None


# --- delivery ------------------------------------------------------------------------------------


async def test_delivers_published_events_with_id_and_event(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool)
    async with subscribe(http, gw.url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = SseClient(response)
        await sse.connected()
        sol = PriceUpdate("SOL", "187.2345")
        trade = TradeExecuted("sig-1", "buy", "SOL/USDC", "12.5", "187.2345")
        status = SystemStatus("price-service", "healthy", "started")
        ids = [await events.publish(e) for e in (sol, trade, status)]
        got = await sse.events(3, skip=("pool_state",))

    assert [m.event for m in got] == ["price_update", "trade_executed", "system_status"]
    assert [m.json["stream"] for m in got] == [
        STREAM_PRICE_UPDATES,
        STREAM_TRADE_EVENTS,
        STREAM_UI_EVENTS,
    ]
    assert entry_ids(got) == ids
    for message, event in zip(got, (sol, trade, status), strict=True):
        assert message.json["data"] == json.loads(event.to_json())  # the event's JSON, verbatim
    # The composite id advances one stream at a time, in the fixed stream order.
    composite = [parse_composite(m.id) for m in got]
    assert composite[0] is not None and composite[0][0] == ids[0]
    assert composite[1] is not None and composite[1][:2] == (ids[0], ids[1])
    assert composite[2] == (ids[0], ids[1], ids[2])


async def test_pool_states_stream_as_pool_state_events(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any], http: Any
) -> None:
    pools = solcache.PoolStateCache(pool)
    gw = await start_gateway(pool, pool_poll_interval_s=0.05)
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        for reserve in ("41250.5", "41251.5"):
            state = pool_state(reserve)
            await pools.set(state)
            (got,) = await sse.events(1)
            assert got.event == "pool_state" and got.id is None  # no stream id: not resumable
            assert got.json["data"] == json.loads(state.to_json())


def pool_state(reserve_a: str) -> solcache.PoolState:
    return solcache.PoolState(SOL_USDC, "12500000.50", reserve_a, "7723456.123456", "98765432.10")


# --- resuming with Last-Event-ID -----------------------------------------------------------------


def mixed(n: int, tag: str) -> list[solcache.TradingEvent]:
    """`n` events spread over the three streams."""
    out: list[solcache.TradingEvent] = []
    for i in range(n):
        if i % 3 == 0:
            out.append(PriceUpdate(TOKENS[i % 5], f"{i}.5"))
        elif i % 3 == 1:
            out.append(TradeExecuted(f"{tag}-{i}", "sell", "SOL/USDC", "1", "2"))
        else:
            out.append(SystemStatus("svc", "healthy", f"{tag}-{i}"))
    return out


async def reader_reached(
    gw: Any, ids: list[str], batch: list[solcache.TradingEvent] | None = None, within_s: float = 5.0
) -> None:
    """Wait until the gateway's reader has fanned out every entry in `ids` (published from
    `batch`, in order; without it all to the price stream). Judged per stream: entries of two
    streams can carry the same id, so one stream reaching an id says nothing of the other."""
    streams = [e.default_stream for e in batch] if batch is not None else [STREAMS[0]] * len(ids)
    want: dict[int, str] = {}
    for stream, entry_id in zip(streams, ids, strict=True):
        i = STREAMS.index(stream)
        want[i] = max(want.get(i, entry_id), entry_id, key=id_key)

    def reached() -> bool:
        position = gw.hub.position
        return position is not None and all(
            id_key(position[i]) >= id_key(newest) for i, newest in want.items()
        )

    deadline = time.monotonic() + within_s
    while not reached():
        assert time.monotonic() < deadline, f"reader at {gw.hub.position}, want {want}"
        await asyncio.sleep(0.01)


async def publish_each(events: EventStream, batch: list[solcache.TradingEvent]) -> list[str]:
    """Publish one by one, so ids are in publishing order across streams."""
    return [await events.publish(e) for e in batch]


async def test_reconnect_with_last_event_id_replays_exactly_the_missed_events(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool)
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        before = await publish_each(events, mixed(6, "before"))
        seen = await sse.events(6, skip=("pool_state",))
    assert same_events(seen, before)
    last_id = seen[-1].id  # each stream's part of the composite id only grows
    assert parse_composite(last_id) == tuple(max(by_stream(seen)[s], key=id_key) for s in STREAMS)

    missed_events = mixed(9, "missed")
    missed = await publish_each(events, missed_events)  # while disconnected
    await reader_reached(gw, missed, missed_events)  # so they come back by replay, not live
    async with subscribe(http, gw.url, last_event_id=last_id) as response:
        sse = SseClient(response)
        replayed = await sse.events(9, skip=("pool_state",))
        assert entry_ids(replayed) == missed  # all of them, oldest first
        after = await publish_each(events, mixed(4, "after"))
        live = await sse.events(4, skip=("pool_state",))
        assert same_events(live, after)  # joined the live fan-out without a duplicate
        assert await sse.quiet(0.3) == []
    assert gw.hub.totals().messages_replayed == 9


async def test_resume_across_a_gateway_restart(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    first = await start_gateway(pool)
    async with subscribe(http, first.url) as response:
        sse = SseClient(response)
        await sse.connected()
        await publish_each(events, mixed(3, "a"))
        got = await sse.events(3, skip=("pool_state",))
        last_id = got[-1].id
        assert parse_composite(last_id) == tuple(
            max(by_stream(got)[s], key=id_key) for s in STREAMS
        )
    await first.stop()
    missed = await publish_each(events, mixed(5, "down"))  # no gateway running
    second = await start_gateway(pool, port=first.port)
    async with subscribe(http, second.url, last_event_id=last_id) as response:
        sse = SseClient(response)
        assert entry_ids(await sse.events(5, skip=("pool_state",))) == missed
        after = await publish_each(events, mixed(2, "b"))
        assert same_events(await sse.events(2, skip=("pool_state",)), after)


async def test_replay_is_bounded_by_replay_limit_then_resync(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool, replay_limit=10)
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        await events.publish(PriceUpdate("SOL", "1"))
        last_id = (await sse.events(1, skip=("pool_state",)))[0].id
    missed = await events.publish_many([PriceUpdate("SOL", str(i)) for i in range(25)])
    await reader_reached(gw, missed)
    async with subscribe(http, gw.url, last_event_id=last_id) as response:
        sse = SseClient(response)
        got = await sse.events(11, skip=("pool_state",))
    assert entry_ids(got[:10]) == missed[:10]
    assert got[10].event == "resync"
    assert got[10].json == {"reason": "replay_limit", "streams": [STREAM_PRICE_UPDATES]}
    assert gw.hub.totals().replays_truncated == 1


async def test_replay_of_trimmed_entries_ends_with_resync(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool)
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        await events.publish(PriceUpdate("SOL", "1"))
        last_id = (await sse.events(1, skip=("pool_state",)))[0].id
    short = EventStream(pool, maxlen=10)  # MAXLEN ~ 10 trims whole nodes of 100 entries
    ids = await short.publish_many([PriceUpdate("SOL", str(i)) for i in range(350)])
    await reader_reached(gw, ids)
    left = [e.id for e in await events.read(STREAM_PRICE_UPDATES, "0-0", count=1000, block_ms=0)]
    assert 10 <= len(left) < 350  # the entry the client saw last is gone
    async with subscribe(http, gw.url, last_event_id=last_id) as response:
        sse = SseClient(response)
        got = await sse.events(len(left) + 1, skip=("pool_state",))
    assert entry_ids(got[:-1]) == left  # what is left, then a warning about the rest
    assert got[-1].event == "resync"
    assert got[-1].json == {"reason": "trimmed", "streams": [STREAM_PRICE_UPDATES]}


UNKNOWN = {"reason": "unknown_id", "streams": list(STREAMS)}


async def test_garbage_last_event_id_is_unknown_resync_then_live(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    await events.publish(PriceUpdate("SOL", "1"))
    gw = await start_gateway(pool)
    async with subscribe(http, gw.url, last_event_id="not-an-id") as response:
        sse = SseClient(response)
        await sse.connected()
        (notice,) = await sse.events(1, skip=("pool_state",))
        assert notice.event == "resync" and notice.json == UNKNOWN
        fresh = await events.publish(PriceUpdate("SOL", "2"))
        assert entry_ids(await sse.events(1, skip=("pool_state",))) == [fresh]
    assert gw.hub.totals().unknown_last_event_ids == 1


@pytest.mark.parametrize(
    "ahead",
    [
        "99999999999999-0,99999999999999-0,99999999999999-0",  # far future on every stream
        "99999999999999-0,0-0,0-0",  # only the price stream
    ],
)
async def test_last_event_id_ahead_of_the_streams_is_unknown_resync_then_live(
    pool: solcache.RedisPool,
    events: EventStream,
    start_gateway: Callable[..., Any],
    http: Any,
    ahead: str,
) -> None:
    await events.publish(PriceUpdate("SOL", "1"))
    gw = await start_gateway(pool)
    async with subscribe(http, gw.url, last_event_id=ahead) as response:
        sse = SseClient(response)
        await sse.connected()
        (notice,) = await sse.events(1, skip=("pool_state",))
        assert notice.event == "resync" and notice.json == UNKNOWN
        fresh = await publish_each(events, [PriceUpdate("SOL", "2"), PriceUpdate("USDC", "1")])
        got = await sse.events(2, skip=("pool_state",))
        assert entry_ids(got) == fresh  # price updates flow, none skipped
        assert parse_composite(got[-1].id or "")[0] == fresh[-1]  # ids restart from the stream
    assert gw.hub.totals().unknown_last_event_ids == 1


async def test_last_event_id_ahead_of_the_reader_but_in_the_stream_resumes_without_resync(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    """A client coming from a gateway that had read further than this one (this one's reader
    is held back here) resumes after its id: no resync, no duplicate."""
    gw = await start_gateway(pool)
    await eventually_reached(lambda: gw.hub.position is not None)
    reader = gw.hub._tasks[0]
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    ids = await publish_each(events, [PriceUpdate("SOL", str(i)) for i in range(3)])
    seen = format_composite([ids[1], *gw.hub.position[1:]])
    async with subscribe(http, gw.url, last_event_id=seen) as response:
        sse = SseClient(response)
        await wait_for_clients(gw, 1)
        gw.hub._tasks[0] = asyncio.create_task(gw.hub._read_loop())  # it catches up now
        got = await sse.events(1, within_s=15.0, skip=("pool_state",))
        assert entry_ids(got) == ids[2:]
        assert await sse.quiet(0.3) == []
    assert gw.hub.totals().unknown_last_event_ids == 0


async def eventually_reached(check: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


# --- slow and stalled clients --------------------------------------------------------------------


def stalled_socket(port: int) -> socket.socket:
    """An `/events` request whose client never reads (a tiny receive buffer fills fast)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


async def wait_for_clients(gw: Any, n: int, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while len(gw.hub.clients) != n:
        assert time.monotonic() < deadline, f"{len(gw.hub.clients)} clients, expected {n}"
        await asyncio.sleep(0.01)


FILLER = "x" * 1000  # ~1 KB per SSE message: a few MB fill the socket buffers


async def test_stalled_client_does_not_delay_a_healthy_one_and_is_disconnected(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool, send_timeout_s=5.0, client_queue_size=64)
    async with subscribe(http, gw.url) as response:
        healthy = SseClient(response)
        await healthy.connected()
        (healthy_client,) = gw.hub.clients
        stalled = stalled_socket(gw.port)
        try:
            await wait_for_clients(gw, 2)
            (stalled_client,) = set(gw.hub.clients) - {healthy_client}
            published = 0
            # Until the stalled client's buffers are full and its queue overflows, while the
            # healthy client reads everything.
            while stalled_client.queue.dropped == 0:
                assert published < 20_000, "the stalled client never stalled"
                await events.publish_many([SystemStatus("filler", "healthy", FILLER)] * 100)
                published += 100
                got = await healthy.events(100, skip=("pool_state",))
                assert all(m.event == "system_status" for m in got)
            # With the stalled client blocked, a new event still reaches the healthy one, and
            # before the stalled one's send timed out: it did not wait behind that send.
            marker = await events.publish(TradeExecuted("marker", "buy", "SOL/USDC", "1", "2"))
            (got_marker,) = await healthy.events(1, skip=("pool_state",))
            assert got_marker.json["id"] == marker
            assert gw.hub.totals().send_timeouts == 0 and stalled_client in gw.hub.clients
            # The send timeout disconnects the stalled client; the healthy one stays.
            await wait_for_clients(gw, 1, within_s=30.0)
            assert gw.hub.totals().send_timeouts == 1
            assert len(stalled_client.queue) <= 64
            assert gw.hub.clients == (healthy_client,)
            assert healthy_client.queue.dropped == 0
        finally:
            stalled.close()


async def test_slow_client_queue_coalesces_prices_and_stays_bounded(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any]
) -> None:
    gw = await start_gateway(pool, send_timeout_s=30.0, client_queue_size=64)
    sock = stalled_socket(gw.port)
    try:
        await wait_for_clients(gw, 1)
        (client,) = gw.hub.clients
        # Fill the socket buffers until the writer blocks and messages pile up in the queue.
        while len(client.queue) < 64:
            await events.publish_many([SystemStatus("filler", "healthy", FILLER)] * 100)
            await asyncio.sleep(0.01)
        latest: dict[str, str] = {}
        for rnd in range(200):  # 1000 price updates the client cannot take
            batch = [PriceUpdate(t, f"{rnd}.{i}") for i, t in enumerate(TOKENS)]
            await events.publish_many(batch)
            latest.update({e.token: str(e.price) for e in batch})
            assert len(client.queue) <= 64
        await asyncio.sleep(0.3)  # the reader fans out the rest
        assert len(client.queue) <= 64 and client.queue.high_water == 64
        assert client.queue.coalesced > 900  # most price updates were superseded
        assert client.queue.dropped > 0  # and the filler made room first
        # Now the client reads: it ends with the latest price of every token.
        received = await read_raw_events(sock, until=lambda seen: seen == latest)
        price_events = [m for m in received if m.event == "price_update"]
        assert len(price_events) < 1000 // 2
        # Coalescing only ever replaces a queued price with a newer one: per token, what
        # arrives is prices that were published, in the order they were published.
        by_token: dict[str, list[Decimal]] = {}
        for m in price_events:
            by_token.setdefault(m.json["data"]["token"], []).append(
                Decimal(m.json["data"]["price"])
            )
        for i, token in enumerate(TOKENS):
            published = [Decimal(f"{rnd}.{i}") for rnd in range(200)]
            got = by_token.get(token, [])
            assert got and all(p in published for p in got), (token, got)
            assert got == sorted(set(got)), (token, got)
    finally:
        sock.close()


# --- clients that stop reading: bounded on the gateway's side -----------------------------------

LOOSE = {"sse_max_unsent_bytes": 64 * 1024 * 1024, "sse_max_unsent_age_s": 3600.0}


async def publish_until_disconnected(gw: Any, events: EventStream, within_s: float) -> float:
    """Publish ~20 KB/s of filler until the gateway has no client; return the seconds taken."""
    started = time.monotonic()
    while gw.hub.clients:
        assert time.monotonic() - started < within_s, "the stalled client is still connected"
        await events.publish_many([SystemStatus("filler", "healthy", FILLER)] * 2)
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_client_that_stops_reading_is_disconnected_by_unsent_age(
    pool: solcache.RedisPool,
    events: EventStream,
    start_gateway: Callable[..., Any],
    server_errors: Callable[[], list[logging.LogRecord]],
) -> None:
    limits = GatewayLimits(sse_max_unsent_bytes=64 * 1024 * 1024, sse_max_unsent_age_s=1.0)
    gw = await start_gateway(pool, send_timeout_s=120.0, pool_addresses=[], limits=limits)
    errors = server_errors()
    sock = stalled_socket(gw.port)
    try:
        await wait_for_clients(gw, 1)
        took_s = await publish_until_disconnected(gw, events, within_s=30.0)
        print(f"stalled client disconnected by the unsent age after {took_s:.1f} s")
        totals = gw.hub.totals()
        assert (totals.unsent_age_disconnects, totals.unsent_bytes_disconnects) == (1, 0)
        assert totals.send_timeouts == 0
        assert errors == []  # the connection was dropped, not left half-answered
    finally:
        sock.close()


async def test_client_too_far_behind_is_disconnected_by_unsent_bytes(
    pool: solcache.RedisPool,
    events: EventStream,
    start_gateway: Callable[..., Any],
    server_errors: Callable[[], list[logging.LogRecord]],
) -> None:
    limits = GatewayLimits(sse_max_unsent_bytes=32 * 1024, sse_max_unsent_age_s=3600.0)
    gw = await start_gateway(pool, send_timeout_s=120.0, pool_addresses=[], limits=limits)
    errors = server_errors()
    sock = stalled_socket(gw.port)
    try:
        await wait_for_clients(gw, 1)
        await publish_until_disconnected(gw, events, within_s=30.0)
        totals = gw.hub.totals()
        assert (totals.unsent_bytes_disconnects, totals.unsent_age_disconnects) == (1, 0)
        assert totals.send_timeouts == 0
        assert errors == []
    finally:
        sock.close()


def kernel_send_queue(local_port: int, remote_port: int) -> int:
    """Bytes the kernel holds for the peer on the socket local_port -> remote_port (the
    ``tx_queue`` column of /proc/net/tcp: sent but not acknowledged, or not sent yet)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
            if int(local, 16) == local_port and int(remote, 16) == remote_port:
                return int(fields[4].split(":")[0], 16)
    return 0


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc/net/tcp")
async def test_a_stalled_client_holds_only_a_small_kernel_send_buffer(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any]
) -> None:
    limits = GatewayLimits(sse_send_buffer_bytes=16 * 1024, **LOOSE)
    gw = await start_gateway(
        pool, send_timeout_s=120.0, client_queue_size=64, pool_addresses=[], limits=limits
    )
    sock = stalled_socket(gw.port)
    try:
        await wait_for_clients(gw, 1)
        (client,) = gw.hub.clients
        client_port = sock.getsockname()[1]
        most, published = 0, 0
        # Until the writer blocks and the queue fills: the kernel took all it would.
        while len(client.queue) < 64:
            assert published < 8_000, f"the writer never blocked ({most} bytes in the kernel)"
            await events.publish_many([SystemStatus("filler", "healthy", FILLER)] * 100)
            published += 100
            await asyncio.sleep(0.02)
            most = max(most, kernel_send_queue(gw.port, client_port))
        print(f"kernel send queue of a stalled client: at most {most} bytes")
        # Linux reserves twice SO_SNDBUF, bookkeeping included; the system default grows to MBs.
        assert 0 < most <= 4 * 16 * 1024
    finally:
        sock.close()


async def test_shutdown_with_a_client_that_stopped_reading_is_prompt_and_quiet(
    pool: solcache.RedisPool,
    events: EventStream,
    start_gateway: Callable[..., Any],
    server_errors: Callable[[], list[logging.LogRecord]],
) -> None:
    limits = GatewayLimits(**LOOSE)
    gw = await start_gateway(
        pool, send_timeout_s=120.0, client_queue_size=64, pool_addresses=[], limits=limits
    )
    errors = server_errors()
    sock = stalled_socket(gw.port)
    try:
        await wait_for_clients(gw, 1)
        (client,) = gw.hub.clients
        while len(client.queue) < 64:  # the writer is blocked on the client
            await events.publish_many([SystemStatus("filler", "healthy", FILLER)] * 100)
            await asyncio.sleep(0.02)
        started = time.monotonic()
        await gw.stop(within_s=30.0)
        print(f"shutdown with a stalled client took {time.monotonic() - started:.2f} s")
        # uvicorn would wait out its graceful timeout, then cancel the stream with a traceback.
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        sock.close()


async def read_raw_events(
    sock: socket.socket, until: Callable[[dict[str, str]], bool], within_s: float = 15.0
) -> list[Sse]:
    """Read the raw HTTP response (chunked) until the latest price per token satisfies `until`."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    buffer = b""
    messages: list[Sse] = []
    seen: dict[str, str] = {}
    deadline = time.monotonic() + within_s
    while not until(seen):
        assert time.monotonic() < deadline, f"latest prices seen: {seen}"
        async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
            chunk = await loop.sock_recv(sock, 1 << 16)
        assert chunk, "the gateway closed the connection"
        buffer += chunk
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            fields = dict(
                line.split(": ", 1) for line in block.decode().splitlines() if ": " in line
            )
            if "event" in fields:
                message = Sse(event=fields["event"], id=fields.get("id"), data=fields["data"])
                messages.append(message)
                if message.event == "price_update":
                    data = message.json["data"]
                    seen[data["token"]] = data["price"]
    return messages


# --- heartbeat and shutdown ----------------------------------------------------------------------


async def test_heartbeat_comments_arrive_when_idle(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool, heartbeat_s=0.2, pool_addresses=[])
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        started = time.monotonic()
        pings = [(await sse.next(2.0)).comment for _ in range(3)]
    assert pings == ["ping", "ping", "ping"]
    assert 0.4 < time.monotonic() - started < 3.0


async def test_reader_stops_on_shutdown_and_open_streams_end(
    pool: solcache.RedisPool, events: EventStream, start_gateway: Callable[..., Any], http: Any
) -> None:
    gw = await start_gateway(pool)
    hub = gw.hub
    assert hub.running
    tasks = list(hub._tasks)
    assert len(tasks) == 2  # the stream reader and the pool poller
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        started = time.monotonic()
        await gw.stop()  # an open stream must not hold the shutdown up
        assert time.monotonic() - started < 2.0
        with pytest.raises(StopAsyncIteration):
            while True:  # the stream ended cleanly
                await sse.next(2.0)
    assert not hub.running
    assert all(t.done() for t in tasks)
    assert hub.clients == ()


async def test_lifespan_starts_and_stops_the_reader(pool: solcache.RedisPool) -> None:
    from solcache.web import create_app

    app = create_app(
        pool,
        EventStream(pool),
        prices=solcache.PriceCache(pool),
        pools=solcache.PoolStateCache(pool),
        tokens=TOKENS,
        pool_addresses=[],
    )
    hub = app.state.hub
    assert not hub.running
    async with app.router.lifespan_context(app):
        assert hub.running
    assert not hub.running and hub._tasks == []


async def test_reader_survives_a_redis_restart(
    fresh_redis: Any, start_gateway: Callable[..., Any], http: Any
) -> None:
    async with await solcache.RedisPool.connect(fresh_redis.url) as pool:
        events = EventStream(pool)
        gw = await start_gateway(pool, pool_addresses=[])
        async with subscribe(http, gw.url) as response:
            sse = SseClient(response)
            await sse.connected()
            first = await events.publish(PriceUpdate("SOL", "1"))
            assert entry_ids(await sse.events(1)) == [first]
            fresh_redis.stop()
            await asyncio.sleep(0.5)  # the reader fails and backs off
            assert gw.hub.last_error is not None
            fresh_redis.start()
            again = await eventually_publish(events, PriceUpdate("SOL", "2"))
            assert entry_ids(await sse.events(1, within_s=10.0)) == [again]


async def eventually_publish(events: EventStream, event: PriceUpdate) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return await events.publish(event)
        except solcache.ConnectionError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)


# --- wire formats of every message -----------------------------------------------------------

PLAIN_DECIMAL = r"-?[0-9]+(\.[0-9]+)?"
MICROS_UTC = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"
DECIMAL_FIELDS = {
    *("price", "amount", "pnl", "liquidity", "reserve_a", "reserve_b", "volume_24h"),
    *("amount_in", "amount_out", "execution_price", "price_impact", "max_sandwich_loss"),
}


def assert_wire_formats(value: Any, field: str = "") -> int:
    """Every decimal field of a message's JSON is a positional-notation string and every
    timestamp has exactly six fractional digits; returns how many fields were checked."""
    import re

    if isinstance(value, dict):
        return sum(assert_wire_formats(v, k) for k, v in value.items())
    if isinstance(value, list):
        return sum(assert_wire_formats(v, field) for v in value)
    if field in DECIMAL_FIELDS:
        assert isinstance(value, str) and re.fullmatch(PLAIN_DECIMAL, value), (field, value)
        return 1
    if field == "timestamp":
        assert isinstance(value, str) and re.fullmatch(MICROS_UTC, value), (field, value)
        return 1
    return 0


async def test_messages_carry_plain_decimals_and_microsecond_timestamps(
    pool: solcache.RedisPool,
    events: EventStream,
    start_gateway: Callable[..., Any],
    http: Any,
) -> None:
    pools = solcache.PoolStateCache(pool)
    gw = await start_gateway(pool, pool_poll_interval_s=0.05)
    # A deep pool: a 1-unit swap moves the price by about 1e-12, which str() writes as 1E-12.
    deep = solcache.PoolState(SOL_USDC, 2634567.89, "1000000000000", "187000000000000", 0)
    async with subscribe(http, gw.url) as response:
        sse = SseClient(response)
        await sse.connected()
        await pools.set(deep)
        (state,) = await sse.events(1)
        published = [
            PriceUpdate("BONK", Decimal("6.65E-7")),
            TradeExecuted("sig-fmt", "sell", "BONK/USDC", Decimal("1E+7"), Decimal("6.65E-7")),
            solcache.PositionUpdate("BONK", Decimal("-1E+7"), Decimal("-1E-9")),
            SystemStatus("price-service", "healthy", "prices flowing"),  # timestamp: now
        ]
        for event in published:
            await events.publish(event)
        got = await sse.events(len(published), skip=("pool_state",))

    assert state.event == "pool_state"
    impact = state.json["quotes"][0]["price_impact"]
    assert "E" not in impact and Decimal(impact) < Decimal("1e-6"), impact
    assert Decimal(impact) == deep.quote_swap("1", fee_bps=25, slippage_bps=50).price_impact
    assert assert_wire_formats(state.json) == 5 + 5 * 3
    by_type = {m.event: m.json["data"] for m in got}  # three streams: no order across them
    assert set(by_type) == {e.type for e in published}
    assert by_type["price_update"]["price"] == "0.000000665"
    assert by_type["trade_executed"]["amount"] == "10000000"
    assert by_type["position_update"]["pnl"] == "-0.000000001"
    assert sum(assert_wire_formats(data) for data in by_type.values()) == 2 + 3 + 3 + 1
