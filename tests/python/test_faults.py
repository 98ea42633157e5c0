"""Faults against real redis-server processes: SIGKILL and restart (with and without an AOF),
SIGSTOP, pool exhaustion, a slow, silent or resetting network (tests/python/fault_proxy.py),
and Python tasks cancelled mid-call.

Every wall-clock bound here is generous (the configured timeout plus a margin meant for a loaded
2-core machine): the tests prove that calls end, with the right error, and that everything
recovers without a restart; `docs/performance.md` has the numbers. Recovery times are printed
(`pytest -rP` or `-s` shows them).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

import solcache
from conftest import RedisServer
from direct_path import until_direct
from fault_proxy import FaultProxy
from service_process import Served, serve
from solcache import (
    EventStream,
    PoolState,
    PoolStateCache,
    PriceCache,
    PriceData,
    PriceUpdate,
    RedisPool,
    StreamEntry,
    TradeExecuted,
)
from solcache._core import _in_flight_calls
from solcache.subscriptions import SubscriptionManager

pytestmark = pytest.mark.timeout(90)

#: Short timeouts so an outage is noticed quickly; the health check finds dead idle connections.
FAST = {
    "connect_timeout_ms": 300,
    "response_timeout_ms": 300,
    "checkout_timeout_ms": 300,
    "health_check_interval_ms": 200,
}
#: The longest one pooled call may legitimately take under FAST: a checkout that waits for a
#: connect, then the response.
CALL_BUDGET_S = (300 + 300 + 300) / 1000
#: Added to every wall-clock bound: scheduling delays on a loaded 2-core machine.
MARGIN_S = 1.5
#: How soon after Redis is back each component must work again (measured: milliseconds for the
#: pool, about a second for the slowest parts of `serve`, 1.7-2.4 s for its health verdict,
#: which changes once the recovery held for SOLCACHE_HEALTH_HOLD_S); generous on purpose.
RECOVERY_S = 4.0
#: How long `serve` is left without Redis: long enough for each retry loop to reach its longest
#: backoff (a loop capped at 5 s would then need up to 5 s more after Redis is back).
OUTAGE_S = 12.0
#: The longest the event loop may go without running a 5 ms ticker. A call that blocked the loop
#: while waiting on Redis would hold it for its whole timeout, and the shortest timeout these
#: tests wait on is 300 ms (FAST, and the checkout timeout of the exhaustion test): any gap that
#: long is a blocked loop, anything shorter is scheduling on a busy machine.
MAX_LOOP_GAP_S = FAST["response_timeout_ms"] / 1000

STREAM = solcache.STREAM_PRICE_UPDATES
SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
VALUES = {
    "SOL": "187.2345",
    "USDC": "1.0001",
    "BONK": "0.00002345",
    "JitoSOL": "221.5",
    "RAY": "4.12",
}


# --- helpers ---------------------------------------------------------------------------------


def report(what: str, seconds: float) -> None:
    print(f"recovery: {what}: {seconds * 1000:.0f} ms")


async def fails_with(
    kind: type[BaseException], call: Callable[[], Awaitable[object]], within_s: float
) -> BaseException:
    """Await `call()`; it must raise `kind` within `within_s`. Returns the error."""
    start = time.monotonic()
    with pytest.raises(kind) as info:
        await call()
    elapsed = time.monotonic() - start
    assert elapsed < within_s, f"{info.value!r} only after {elapsed:.2f} s"
    return info.value


async def timed(call: Callable[[], Awaitable[object]]) -> tuple[object, float]:
    """(result or raised exception of `await call()`, seconds from the call on)."""
    start = time.monotonic()
    try:
        result: object = await call()
    except Exception as e:
        result = e
    return result, time.monotonic() - start


async def write_values(pool: RedisPool) -> None:
    await PriceCache(pool, ttl_ms=600_000).set_many(PriceData(t, v) for t, v in VALUES.items())


async def check_replies(pool: RedisPool) -> None:
    """Each reply belongs to its own request: distinct values per token, read one by one,
    concurrently and with one MGET. A connection that kept a stale reply would mix them up."""
    cache = PriceCache(pool)
    tokens = list(VALUES) * 4
    got = await asyncio.gather(*(cache.get(t) for t in tokens))
    for token, price in zip(tokens, got, strict=True):
        assert price is not None and price.token == token, (token, price)
        assert price.price == Decimal(VALUES[token])
    many = await cache.get_many(list(VALUES))
    assert {t: str(p.price) if p else None for t, p in many.items()} == VALUES


async def round_trip(pool: RedisPool) -> None:
    """Write, then check every value (works on a server that came back empty)."""
    await write_values(pool)
    await check_replies(pool)


async def pool_settled(pool: RedisPool) -> None:
    """Counts are consistent and nothing is lent out or waiting (no leaked checkout)."""
    c = pool.counts()
    assert c["in_use"] == 0 and c["waiting"] == 0, c
    assert c["connections"] == c["idle"] <= pool.max_size, c


async def no_rust_call_in_flight() -> None:
    n = _in_flight_calls()
    assert n == 0, f"{n} Rust futures still running"


async def time_until(
    eventually: Callable[..., Awaitable[Any]], check: Callable[[], Awaitable[Any]], since: float
) -> float:
    """Poll `check` with `eventually` (up to RECOVERY_S); seconds from `since` to success."""
    await eventually(check, within_s=RECOVERY_S)
    return time.monotonic() - since


class LoopWatch:
    """Runs a 5 ms ticker in the test's loop and records the longest gap between ticks."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.every_s = every_s
        self.max_gap_s = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.every_s)
            now = loop.time()
            self.max_gap_s = max(self.max_gap_s, now - last)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def outage_calls(pool: RedisPool) -> dict[str, Callable[[], Awaitable[object]]]:
    """One call of each kind the library makes, by name (writes keep VALUES as they are)."""
    prices, pools, events = (
        PriceCache(pool, ttl_ms=600_000),
        PoolStateCache(pool),
        EventStream(pool),
    )
    state = PoolState(SOL_USDC, 1, 1, 1, 1)
    sol, ray = PriceData("SOL", VALUES["SOL"]), PriceData("RAY", VALUES["RAY"])
    return {
        "price_get": lambda: prices.get("SOL"),
        "price_get_many": lambda: prices.get_many(["SOL", "RAY"]),
        "price_set": lambda: prices.set(sol),
        "price_set_many": lambda: prices.set_many([sol, ray]),
        "pool_get": lambda: pools.get(SOL_USDC),
        "pool_set": lambda: pools.set(state),
        "publish": lambda: events.publish(PriceUpdate("SOL", 1)),
        "publish_many": lambda: events.publish_many([PriceUpdate("SOL", 1)] * 3),
        "read": lambda: events.read(STREAM, "0", block_ms=100),
        "ensure_group": lambda: events.ensure_group(STREAM, "g"),
        "stream_info": lambda: events.info(STREAM),
        "server_info": lambda: pool.info("server"),
    }


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A server of this test's own with an AOF fsynced before every reply."""
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    server.start()
    assert server.raw("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
    yield server
    server.cleanup()


@pytest.fixture
def proxy(fresh_redis: RedisServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of `fresh_redis`, passing bytes through to begin with."""
    with FaultProxy(fresh_redis.port) as p:
        yield p


@contextlib.asynccontextmanager
async def background(coro: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- SIGKILL and restart -----------------------------------------------------------------------


async def test_sigkill_every_call_fails_fast_then_the_same_pool_recovers(
    fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(fresh_redis.url, max_size=10, **FAST) as pool:
        await write_values(pool)
        await asyncio.gather(*(check_replies(pool) for _ in range(4)))  # several connections
        assert pool.counts()["connections"] >= 2
        calls = outage_calls(pool)
        fresh_redis.kill()

        for _ in range(2):  # the first round finds dead connections, the second none at all
            for name, call in calls.items():
                err = await fails_with(solcache.ConnectionError, call, 0.3 + MARGIN_S)
                assert isinstance(err, builtins.ConnectionError), name
                assert not isinstance(err, builtins.TimeoutError), name
                assert str(fresh_redis.port) in str(err), err
        health = await pool.health()
        assert health.reachable is False and health.error
        await eventually(lambda: pool_settled(pool))
        # (a failed `read` is not counted: its own connection fails to open before the core
        # records anything; reported, not asserted here)
        assert pool.error_counts()["connection"] >= 2 * (len(calls) - 1)

        fresh_redis.start()  # same port, empty: no persistence
        took = await time_until(eventually, lambda: round_trip(pool), time.monotonic())
        report("pool after SIGKILL + restart", took)
        for call in calls.values():
            await call()  # every kind of call works again
        assert (await pool.health()).reachable
        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))


async def test_sigkill_subscription_manager_keeps_running_and_handles_new_events(
    fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(fresh_redis.url, **FAST) as pool:
        events = EventStream(pool)
        got: list[int] = []
        acked_by_redis: list[int] = []

        async def handler(event: PriceUpdate) -> None:
            got.append(int(event.price))

        async def publisher() -> None:  # 20 Hz through the outage; counts what Redis took
            n = 0
            while True:
                n += 1
                with contextlib.suppress(solcache.ConnectionError, solcache.TimeoutError):
                    await events.publish(PriceUpdate("SOL", n))
                    acked_by_redis.append(n)
                await asyncio.sleep(0.05)

        manager = SubscriptionManager(
            events, "g", "c", start_id="0", block_ms=50, backoff_initial_s=0.05, backoff_max_s=0.25
        )
        manager.on(PriceUpdate, handler)
        async with manager, background(publisher()):

            async def handled_all() -> None:
                assert set(got) >= set(acked_by_redis) and acked_by_redis

            await eventually(handled_all)
            fresh_redis.kill()
            await eventually(lambda: _assert(manager.stats.errors >= 2))
            assert manager.running
            before = len(acked_by_redis)
            fresh_redis.start()
            restarted = time.monotonic()

            async def handles_new_events() -> None:
                new = acked_by_redis[before:]
                assert new and set(got) >= set(new[:1])

            report(
                "SubscriptionManager after SIGKILL + restart",
                await time_until(eventually, handles_new_events, restarted),
            )
            await eventually(lambda: _assert(len(acked_by_redis) >= before + 10))

            async def handled_every_new_one() -> None:  # none lost after the restart
                assert set(got) >= set(acked_by_redis[before:])

            await eventually(handled_every_new_one)
            assert manager.running
        # backoff, not a spin: well under one retry per block period
        assert 2 <= manager.stats.errors < 100


def blocked_clients(server: RedisServer) -> int:
    """Clients blocked in XREAD/XREADGROUP BLOCK on the server right now."""
    info = server.raw("INFO", "clients")
    return int(info.split("blocked_clients:")[1].split()[0])


def _assert(condition: bool) -> Awaitable[None]:
    assert condition
    return asyncio.sleep(0)


def _wait(check: Callable[[], object], within_s: float, what: str) -> float:
    """Poll `check()` (sync, truthy or raising) every 50 ms; seconds until it held."""
    start = time.monotonic()
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return time.monotonic() - start
        except Exception as e:  # Redis or the service not answering yet
            last = e
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what} not within {within_s} s; last: {last!r}")
        time.sleep(0.05)


def _wait_all(checks: dict[str, Callable[[], object]], within_s: float) -> dict[str, float]:
    """Poll each check (sync, truthy or raising) every 50 ms in a thread of its own until it
    held once; seconds from now until each first held."""
    start = time.monotonic()

    def poll(what: str, check: Callable[[], object]) -> float:
        last: object = None
        while time.monotonic() - start < within_s:
            try:
                last = check()
                if last:
                    return time.monotonic() - start
            except Exception as e:  # Redis or the service not answering yet
                last = e
            time.sleep(0.05)
        raise AssertionError(f"{what}: not within {within_s} s; last: {last!r}")

    with ThreadPoolExecutor(len(checks)) as pool:
        futures = {what: pool.submit(poll, what, check) for what, check in checks.items()}
        return {what: f.result() for what, f in futures.items()}


def _statuses(server: RedisServer) -> list[str]:
    """What `serve` announced about its own health (the simulated desk's statuses left out)."""
    out = []
    for _id, flat in server.raw("XRANGE", solcache.STREAM_UI_EVENTS, "-", "+"):
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        event = solcache.TradingEvent.from_json(fields["type"], fields["data"])
        if isinstance(event, solcache.SystemStatus) and event.component == "serve":
            out.append(event.status)
    return out


def _sse_price_update(svc: Served) -> bool:
    with httpx.stream("GET", svc.url + "/events", timeout=2) as sse:
        assert sse.status_code == 200
        for line in sse.iter_lines():
            if line.startswith("event: price_update"):
                return True
    return False


def test_sigkill_serve_reports_degraded_then_recovers_without_a_restart(
    fresh_redis: RedisServer,
) -> None:
    with serve("--redis-url", fresh_redis.url, "--seed", "1") as svc:
        pid = svc.proc.pid

        def healthy() -> bool:
            st, m = svc.status(), svc.metrics()
            ps = st["service"]["price_service"]
            return bool(
                st["redis"]["reachable"]
                and not ps["degraded"]
                and ps["ticks"] > 0
                and m["solcache_redis_up"] == 1
                and m["solcache_service_degraded"] == 0
                and st["service"]["events_consumed"] > 0
            )

        _wait(healthy, 15, "serve healthy at start")
        assert _statuses(fresh_redis)[:2] == ["starting", "healthy"]

        fresh_redis.kill()

        def degraded() -> bool:
            st, m = svc.status(), svc.metrics()
            ps = st["service"]["price_service"]
            return bool(
                st["redis"]["reachable"] is False
                and st["redis"]["error"]
                and ps["degraded"]
                and ps["reason"].startswith("redis error")
                and m["solcache_redis_up"] == 0
                and m["solcache_service_degraded"] == 1
                and svc.get("/healthz").status_code == 503
                and svc.get("/api/prices").status_code == 503
            )

        killed = time.monotonic()
        print(f"outage noticed after {_wait(degraded, 10, 'degraded reported') * 1000:.0f} ms")
        consumed = svc.status()["service"]["events_consumed"]
        # A long enough outage for every retry loop to reach its longest backoff: recovery must
        # not depend on how long Redis was away.
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed)))
        fresh_redis.start()  # same port, empty
        recovered = _wait_all(
            {
                "prices written again": lambda: fresh_redis.raw("GET", "price:SOL"),
                "/healthz 200": lambda: svc.get("/healthz").status_code == 200,
                "/api/prices": lambda: svc.get("/api/prices").json()["prices"]["SOL"],
                "/api/status not degraded": lambda: (
                    svc.status()["redis"]["reachable"]
                    and not svc.status()["service"]["price_service"]["degraded"]
                ),
                "/metrics redis_up 1, degraded 0": lambda: (
                    svc.metrics()["solcache_redis_up"] == 1
                    and svc.metrics()["solcache_service_degraded"] == 0
                ),
                "its consumer group reads again": lambda: (
                    svc.status()["service"]["events_consumed"] > consumed + 10
                ),
                "/events streams prices": lambda: _sse_price_update(svc),
            },
            RECOVERY_S,
        )
        for what, took in recovered.items():
            report(f"serve: {what}", took)
        # The stream came back empty; what the service announced since then: it was degraded
        # (published late: Redis was down when it happened), and is healthy again.
        statuses = _statuses(fresh_redis)
        assert "healthy" in statuses, statuses
        assert "degraded" in statuses[: statuses.index("healthy")], statuses
        assert healthy()
        assert svc.proc.poll() is None and svc.proc.pid == pid  # never restarted
    assert svc.proc.returncode == 0, svc.output()


# --- AOF: nothing acknowledged is lost -------------------------------------------------------


async def test_aof_no_acknowledged_event_is_lost_across_sigkill(
    aof_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    assert aof_redis.raw("CONFIG", "GET", "appendfsync") == ["appendfsync", "always"]
    async with await RedisPool.connect(aof_redis.url, **FAST) as pool:
        events = EventStream(pool, maxlen=1_000_000)
        published: dict[str, TradeExecuted] = {}  # XADD replied with this id
        errors: list[BaseException] = []

        async def publisher() -> None:
            n = 0
            while True:
                batch = [
                    TradeExecuted(f"t{n + i}", "buy", "SOL/USDC", n + i, 187) for i in range(5)
                ]
                n += len(batch)
                try:
                    if n % 2:
                        ids = await events.publish_many(batch)
                    else:
                        ids = [await events.publish(e) for e in batch]
                except (solcache.ConnectionError, solcache.TimeoutError) as e:
                    errors.append(e)
                else:
                    published.update(zip(ids, batch, strict=True))
                await asyncio.sleep(0.002)

        async with background(publisher()):
            await eventually(lambda: _assert(len(published) >= 200))
            aof_redis.kill()  # while publishing
            await eventually(lambda: _assert(len(errors) >= 3))
            at_kill = len(published)
            aof_redis.start()
            await eventually(lambda: _assert(len(published) >= at_kill + 100))

        stored = {
            entry_id: dict(zip(flat[::2], flat[1::2], strict=True))
            for entry_id, flat in aof_redis.raw("XRANGE", solcache.STREAM_TRADE_EVENTS, "-", "+")
        }
        missing = sorted(set(published) - set(stored))
        assert not missing, f"{len(missing)} of {len(published)} acknowledged events lost"
        for entry_id, event in published.items():
            assert stored[entry_id]["data"] == event.to_json()
        # Resent after a dropped connection, an event may be stored twice; never lost.
        assert len(stored) >= len(published)


async def test_aof_group_position_survives_sigkill_and_unacked_entries_come_back(
    aof_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(aof_redis.url, **FAST) as pool:
        events = EventStream(pool)
        await events.ensure_group(STREAM, "g", "0")
        ids = await events.publish_many([PriceUpdate("SOL", i) for i in range(40)])
        opts = {"block_ms": 50, "claim_min_idle_ms": 300, "claim_interval_ms": 100}
        a = events.subscribe(STREAM, "g", "a", count=10, **opts)
        crashed = events.subscribe(STREAM, "g", "b", count=5, **opts)

        first = await a.next_batch()  # 0-9, handled
        a.ack(*first)
        second = await a.next_batch()  # 10-19 (acks 0-9 on the way)
        a.ack(*second[:5])  # 10-14 handled; 15-19 were being handled when Redis died
        third = await a.next_batch()  # 20-29 (acks 10-14), never handled
        taken = await crashed.next_batch()  # 30-34: a consumer that then crashed for good
        assert [e.id for e in first + second + third + taken] == ids[:35]
        group_before = aof_redis.raw("XINFO", "GROUPS", STREAM)
        assert _group_position(aof_redis, group_before)["last-delivered-id"] == ids[34]
        pending_before = aof_redis.raw("XPENDING", STREAM, "g", "-", "+", 100)
        assert {row[0] for row in pending_before} == set(ids[15:35])

        aof_redis.kill()
        aof_redis.start()
        # position, consumers and pending survive (Redis 7.0 does not reload `lag`)
        assert _group_position(aof_redis) == _group_position(aof_redis, group_before)
        pending_after = aof_redis.raw("XPENDING", STREAM, "g", "-", "+", 100)
        # (id, consumer, deliveries); the idle time moves on
        assert [(i, c, n) for i, c, _, n in pending_after] == [
            (i, c, n) for i, c, _, n in pending_before
        ]
        later = await _retry(
            lambda: events.publish_many([PriceUpdate("SOL", 100 + i) for i in range(5)])
        )

        # The surviving consumer goes on with the same Subscription object: it re-reads its own
        # pending entries, claims the crashed consumer's, then reads what is new.
        got: dict[str, StreamEntry] = {}

        async def read_all() -> None:
            try:
                batch = await a.next_batch()
            except (solcache.ConnectionError, solcache.TimeoutError):
                batch = []  # its connection died with the server: the next call reconnects
            for entry in batch:
                got.setdefault(entry.id, entry)
            a.ack(*batch)
            assert set(got) >= set(ids[15:]) | set(later), len(got)

        await eventually(read_all, within_s=10)
        assert not set(got) & set(ids[:15]), "handled-and-acknowledged entries came back"
        for entry_id in ids[15:35]:
            assert got[entry_id].deliveries >= 2, got[entry_id]
        for entry_id in [*ids[35:], *later]:
            assert got[entry_id].deliveries == 1
        assert a.stats.redelivered >= 20
        await a.close()
        assert int(aof_redis.raw("XPENDING", STREAM, "g")[0]) == 0


def _group_position(server: RedisServer, groups: Any = None) -> dict[str, Any]:
    """Name, consumers, pending and last-delivered-id of the only group of STREAM."""
    ((flat,),) = [groups if groups is not None else server.raw("XINFO", "GROUPS", STREAM)]
    info = dict(zip(flat[::2], flat[1::2], strict=True))
    return {k: info[k] for k in ("name", "consumers", "pending", "last-delivered-id")}


async def _retry(call: Callable[[], Awaitable[Any]], within_s: float = RECOVERY_S) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await call()
        except (solcache.ConnectionError, solcache.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# --- SIGSTOP -----------------------------------------------------------------------------------


async def test_paused_server_every_call_times_out_without_blocking_the_loop(
    fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(fresh_redis.url, max_size=8, **FAST) as pool:
        await write_values(pool)
        await asyncio.gather(*(check_replies(pool) for _ in range(4)))
        events = EventStream(pool)
        await events.ensure_group(STREAM, "g", "$")
        sub = events.subscribe(STREAM, "g", "c", block_ms=100)
        assert await sub.next_batch() == []
        calls = outage_calls(pool)
        bound = CALL_BUDGET_S + MARGIN_S

        fresh_redis.pause()
        try:
            async with LoopWatch() as watch:
                # everything at once (more callers than connections), then each alone
                rounds: list[list[Callable[[], Awaitable[object]]]] = [
                    [*calls.values(), sub.next_batch, pool.health]
                    + [functools.partial(PriceCache(pool).get, t) for t in VALUES],
                    list(calls.values()),
                ]
                for calls_round in rounds:
                    results = await asyncio.gather(*(timed(c) for c in calls_round))
                    for result, took in results:
                        if isinstance(result, solcache.PoolHealth):
                            assert result.reachable is False and result.error
                        elif isinstance(result, list):  # the subscription rides through
                            assert result == [] and sub.state == "retrying", result
                            assert sub.last_error is not None and "timed out" in sub.last_error
                        else:  # a response or connect timeout, or no free connection
                            assert isinstance(result, solcache.TimeoutError), result
                            assert isinstance(result, builtins.TimeoutError)
                            if not isinstance(result, solcache.PoolExhaustedError):
                                assert "timed out" in str(result)
                        assert took < bound + 0.1, f"{result!r} after {took:.2f} s"
            assert watch.ticks > 50 and watch.max_gap_s < MAX_LOOP_GAP_S, watch.max_gap_s
        finally:
            fresh_redis.resume()
        resumed = time.monotonic()
        report(
            "pool after SIGCONT", await time_until(eventually, lambda: check_replies(pool), resumed)
        )
        entry_id = await events.publish(PriceUpdate("SOL", 1))

        async def delivered() -> None:
            try:
                batch = await sub.next_batch()
            except solcache.TimeoutError:
                batch = []
            sub.ack(*batch)
            assert entry_id in {e.id for e in batch}

        report("subscription after SIGCONT", await time_until(eventually, delivered, resumed))
        await sub.close()
        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))
        assert pool.error_counts()["timeout"] >= len(calls)


# --- pool exhaustion ----------------------------------------------------------------------------


async def test_200_callers_on_20_connections_of_a_slow_server(
    proxy: FaultProxy, fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(
        proxy.url(),
        max_size=20,
        min_idle=20,
        connect_timeout_ms=1000,
        response_timeout_ms=5000,
        checkout_timeout_ms=300,
        health_check_interval_ms=60_000,
    ) as pool:
        await eventually(lambda: _assert(pool.counts()["idle"] == 20))
        cache = PriceCache(pool, ttl_ms=600_000)
        proxy.delay(0.4)  # each round trip now takes 0.8 s: every connection is held that long

        def write(i: int) -> Callable[[], Awaitable[None]]:  # writes always take a pooled one
            return lambda: cache.set(PriceData(f"T{i}", i))

        async with LoopWatch() as watch:
            results = await asyncio.wait_for(
                asyncio.gather(*(timed(write(i)) for i in range(200))), 30
            )
        served = {i: took for i, (r, took) in enumerate(results) if not isinstance(r, Exception)}
        exhausted = {
            i: took
            for i, (r, took) in enumerate(results)
            if isinstance(r, solcache.PoolExhaustedError)
        }
        others = [r for i, (r, _) in enumerate(results) if i not in served and i not in exhausted]
        assert len(served) + len(exhausted) == 200, others[:3]
        assert 1 <= len(served) <= 40, len(served)  # the 20 connections, once each (+ slack)
        assert all(took >= 0.8 for took in served.values())
        assert max(exhausted.values()) < 0.3 + MARGIN_S  # the checkout timeout, not 5 s
        assert watch.max_gap_s < MAX_LOOP_GAP_S
        error = results[next(iter(exhausted))][0]
        assert isinstance(error, solcache.TimeoutError) and isinstance(error, builtins.TimeoutError)
        assert pool.error_counts()["pool_exhausted"] == len(exhausted)
        proxy.pass_through()
        # what was served is written; an exhausted call never reached Redis
        assert fresh_redis.raw("DBSIZE") == len(served)
        for i in list(served)[:5] + list(exhausted)[:5]:
            assert fresh_redis.raw("EXISTS", f"price:T{i}") == (i in served)

        await eventually(lambda: pool_settled(pool))
        again = await asyncio.wait_for(asyncio.gather(*(write(i)() for i in range(200))), 30)
        assert len(again) == 200 and fresh_redis.raw("DBSIZE") == 200
        await write_values(pool)
        await check_replies(pool)
        await eventually(no_rust_call_in_flight)


# --- network faults ----------------------------------------------------------------------------


async def test_network_delay_slows_calls_then_times_them_out(
    proxy: FaultProxy, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(
        proxy.url(), response_timeout_ms=1000, health_check_interval_ms=60_000
    ) as pool:
        await round_trip(pool)
        cache = PriceCache(pool)
        proxy.delay(0.1)  # 0.2 s per round trip: slower, within the 1 s response timeout
        sol, took = await timed(lambda: cache.get("SOL"))
        assert isinstance(sol, PriceData) and sol.price == Decimal(VALUES["SOL"])
        assert took >= 0.2
        await check_replies(pool)

        proxy.delay(0.6)  # 1.2 s per round trip: past the response timeout
        async with LoopWatch() as watch:
            await fails_with(solcache.TimeoutError, lambda: cache.get("SOL"), 1.0 + MARGIN_S)
        assert watch.max_gap_s < MAX_LOOP_GAP_S
        proxy.pass_through()
        back = time.monotonic()
        # the late reply must not be taken for the answer to a later request
        report(
            "after a delay past the timeout",
            await time_until(eventually, lambda: check_replies(pool), back),
        )
        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))


async def test_black_hole_times_out_then_recovers_with_the_right_replies(
    proxy: FaultProxy, fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(proxy.url(), max_size=6, **FAST) as pool:
        await write_values(pool)
        # 60 concurrent reads: on the direct connection, not 6 pooled ones lent within 300 ms.
        await until_direct(fresh_redis, PriceCache(pool))
        await asyncio.gather(*(check_replies(pool) for _ in range(3)))
        calls = outage_calls(pool)
        proxy.black_hole()
        async with LoopWatch() as watch:
            for name, call in calls.items():  # open connections, then new ones: all silent
                err = await fails_with(solcache.TimeoutError, call, CALL_BUDGET_S + MARGIN_S)
                assert isinstance(err, builtins.TimeoutError), name
            health = await pool.health()
        assert health.reachable is False and health.error
        assert watch.max_gap_s < MAX_LOOP_GAP_S, watch.max_gap_s
        proxy.pass_through()
        back = time.monotonic()
        report(
            "after a black hole", await time_until(eventually, lambda: check_replies(pool), back)
        )
        for call in calls.values():
            await call()
        await until_direct(fresh_redis, PriceCache(pool))
        await check_replies(pool)
        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))


async def test_reset_mid_call_is_a_connection_error_and_the_next_call_succeeds(
    proxy: FaultProxy, fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    # min_idle 0: no connection is opened in the background while the proxy resets them
    async with await RedisPool.connect(
        proxy.url(),
        max_size=4,
        min_idle=0,
        connect_timeout_ms=1000,
        health_check_interval_ms=60_000,
    ) as pool:
        cache = PriceCache(pool, ttl_ms=600_000)
        await asyncio.gather(*(write_values(pool) for _ in range(4)))  # several connections
        await check_replies(pool)

        proxy.reset()  # the request reaches Redis, then the connection is reset
        err = await fails_with(
            solcache.ConnectionError, lambda: cache.set(PriceData("SOL", "200")), MARGIN_S
        )
        assert isinstance(err, builtins.ConnectionError)
        assert not isinstance(err, builtins.TimeoutError)
        assert proxy.resets >= 1
        assert '"price":"200"' in fresh_redis.raw("GET", "price:SOL")  # it ran; the reply was lost
        await fails_with(solcache.ConnectionError, lambda: cache.get("SOL"), MARGIN_S)

        proxy.pass_through()
        sol = await cache.get("SOL")  # at once, on a fresh connection
        assert sol is not None and sol.price == 200
        await cache.set(PriceData("SOL", VALUES["SOL"]))
        await check_replies(pool)

        # A blocking subscription read whose connection is reset mid-read.
        events = EventStream(pool)
        await events.ensure_group(STREAM, "g", "$")
        sub = events.subscribe(STREAM, "g", "c", block_ms=2000)
        read = asyncio.ensure_future(sub.next_batch())
        await eventually(lambda: _assert(blocked_clients(fresh_redis) == 1))
        proxy.reset_all()
        assert await asyncio.wait_for(read, 2 + MARGIN_S) == []  # not raised: retried
        assert sub.state == "retrying" and sub.stats.outages == 1
        entry_id = await events.publish(PriceUpdate("SOL", 1))
        batch: list[solcache.StreamEntry] = []
        deadline = time.monotonic() + 10
        while not batch and time.monotonic() < deadline:
            batch = await sub.next_batch()  # reconnects by itself
        assert [e.id for e in batch] == [entry_id]
        assert sub.state == "connected"
        sub.ack(*batch)
        await sub.close()
        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))


async def test_a_never_used_idle_connection_that_died_does_not_fail_the_next_call(
    proxy: FaultProxy, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(
        proxy.url(), max_size=4, min_idle=2, health_check_interval_ms=60_000
    ) as pool:
        cache = PriceCache(pool, ttl_ms=600_000)
        await cache.set(PriceData("SOL", VALUES["SOL"]))  # uses one connection of two
        await eventually(lambda: _assert(pool.counts()["idle"] >= 2))
        assert proxy.reset_all() >= 2  # e.g. a load balancer's idle timeout
        # The dead connection is replaced and the request retried on a fresh one, as it is for
        # a connection that had served a call.
        sol = await cache.get("SOL")
        assert sol is not None and sol.price == Decimal(VALUES["SOL"])


# --- cancellation ------------------------------------------------------------------------------


async def test_cancelled_calls_leave_no_broken_connection_and_no_rust_task(
    proxy: FaultProxy, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(
        proxy.url(), max_size=10, health_check_interval_ms=60_000
    ) as pool:
        await write_values(pool)
        cache, events = PriceCache(pool), EventStream(pool)
        proxy.delay(0.05)  # every call is on the wire when it is cancelled
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: cache.get("SOL"),
            lambda: cache.get_many(list(VALUES)),
            lambda: cache.set(PriceData("RAY", VALUES["RAY"])),
            lambda: events.publish(PriceUpdate("SOL", 1)),
        ]
        for call in calls:  # one at a time ...
            with pytest.raises(builtins.TimeoutError):
                await asyncio.wait_for(call(), 0.01)
        with pytest.raises(builtins.TimeoutError):  # ... and 100 at once
            async with asyncio.timeout(0.02):
                await asyncio.gather(*(calls[i % len(calls)]() for i in range(100)))
        proxy.pass_through()

        # Cancelled right around completion, many times: whatever the race, nothing breaks.
        for i in range(300):
            with contextlib.suppress(builtins.TimeoutError):
                await asyncio.wait_for(calls[i % len(calls)](), 0.0002 * (i % 7))

        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))
        await check_replies(pool)  # no connection hands out a cancelled call's reply
        assert pool.counts()["connections"] <= pool.max_size


async def test_cancelled_blocking_reads_leave_nothing_behind_and_lose_nothing(
    fresh_redis: RedisServer, eventually: Callable[..., Awaitable[Any]]
) -> None:
    async with await RedisPool.connect(fresh_redis.url, **FAST) as pool:
        events = EventStream(pool)

        # A tail read blocked for 10 s, cancelled after it reached the server.
        read = asyncio.ensure_future(events.read(STREAM, "$", block_ms=10_000))
        await eventually(lambda: _assert(blocked_clients(fresh_redis) == 1))
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        await eventually(no_rust_call_in_flight)
        await eventually(
            lambda: _assert(blocked_clients(fresh_redis) == 0)
        )  # its connection was closed

        # A subscription whose task is cancelled in a blocking XREADGROUP: entries that arrive
        # afterwards are still delivered by the same subscription (not left pending unseen).
        await events.ensure_group(STREAM, "g", "$")
        sub = events.subscribe(STREAM, "g", "c", block_ms=10_000)
        seen: list[StreamEntry] = []

        async def consume() -> None:
            async for entry in sub:
                seen.append(entry)

        task = asyncio.ensure_future(consume())
        await eventually(lambda: _assert(blocked_clients(fresh_redis) == 1))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(no_rust_call_in_flight)
        ids = await events.publish_many([PriceUpdate("SOL", i) for i in range(3)])

        got: list[StreamEntry] = []

        async def all_three() -> None:
            batch = await sub.next_batch()
            got.extend(batch)
            sub.ack(*batch)
            assert {e.id for e in got} >= set(ids)

        await eventually(all_three, within_s=15)
        assert seen == []
        await sub.close()
        assert int(fresh_redis.raw("XPENDING", STREAM, "g")[0]) == 0

        # and the pool is fine
        await round_trip(pool)
        await eventually(no_rust_call_in_flight)
        await eventually(lambda: pool_settled(pool))
