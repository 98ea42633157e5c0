"""The pieces that keep `solcache serve` alive and honest, in process: the fixed-rate loop that
never dies of an error, the supervisor that restarts what stopped, and the debounced health
verdict (published to a real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import solcache
from solcache.services.health import Freshness, HealthMonitor
from solcache.services.periodic import Periodic
from solcache.services.supervisor import Supervised, Supervisor

pytestmark = pytest.mark.timeout(60)


async def wait_until(check: Callable[[], object], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- Periodic ---------------------------------------------------------------------------------


async def test_a_failing_tick_is_counted_and_backed_off_and_the_loop_goes_on() -> None:
    failing = True
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        if failing:
            raise RuntimeError("boom")

    loop = Periodic("t", 100, tick, backoff_max_s=0.2)  # 10 ms period
    loop.start()
    try:
        await asyncio.sleep(1.0)
        assert loop.running and loop.last_error == "boom"
        # Backed off (10, 20, 40, 80, 160, 200, 200 … ms): about 8 tries, not 100.
        assert 3 <= loop.errors == ticks <= 20, ticks
        assert loop.last_ok_monotonic_s is None
        failing = False
        await wait_until(lambda: loop.last_error == "")
        assert loop.last_ok_monotonic_s is not None
        before = ticks
        await asyncio.sleep(0.5)
        assert ticks - before >= 10  # back at the full rate (50 in 0.5 s when idle)
    finally:
        await loop.stop()
    assert not loop.running


# --- Supervisor -------------------------------------------------------------------------------


class FakeService:
    """A service whose start can fail and whose task can end by itself."""

    def __init__(self, name: str, log: list[str], failing_starts: int = 0) -> None:
        self.name = name
        self.log = log
        self.failing_starts = failing_starts
        self.up = False
        self.stop_raises = False

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.failing_starts:
            self.failing_starts -= 1
            raise ConnectionError("redis refused")
        self.up = True

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        self.up = False
        if self.stop_raises:
            raise RuntimeError("stop failed")

    def supervised(self) -> Supervised:
        return Supervised(self.name, self.start, self.stop, lambda: self.up)


async def test_supervisor_retries_failed_starts_restarts_ended_services_and_stops_all() -> None:
    log: list[str] = []
    a, b = FakeService("a", log), FakeService("b", log, failing_starts=2)
    supervisor = Supervisor([a.supervised(), b.supervised()], interval_s=0.02)
    await supervisor.start()  # never raises for a service's error
    try:
        assert a.up and not b.up
        assert supervisor.problems() == ["b: start failed (redis refused); retrying with backoff"]
        await wait_until(lambda: b.up)
        assert supervisor.problems() == []
        assert [s.errors for s in supervisor.services] == [0, 2]

        a.up = False  # its task ended while it should run
        await wait_until(lambda: a.up)
        assert supervisor.services[0].errors == 1
        assert log.count("start a") == 2
    finally:
        a.stop_raises = True  # one failing stop must not keep the others running
        await supervisor.stop()
    assert not a.up and not b.up
    assert log[-2:] == ["stop b", "stop a"]  # reverse order


# --- HealthMonitor ------------------------------------------------------------------------------


def component_statuses(server, component: str) -> list[tuple[str, str]]:
    out = []
    for _id, flat in server.raw("XRANGE", solcache.STREAM_UI_EVENTS, "-", "+"):
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        event = solcache.TradingEvent.from_json(fields["type"], fields["data"])
        assert isinstance(event, solcache.SystemStatus)
        if event.component == component:
            out.append((event.status, event.message))
    return out


async def test_health_is_debounced_reported_with_reasons_and_published(pool, redis_server) -> None:
    problem: dict[str, str | None] = {"writes": None}

    async def writes() -> str | None:
        return problem["writes"]

    async def broken() -> str | None:
        raise ValueError("bad check")

    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    monitor = HealthMonitor(
        solcache.EventStream(pool),
        {"writes": writes},
        component="test",
        hold_s=1.5,
        interval_s=0.02,
    )
    await monitor.starting("booting")
    assert monitor.report.status == "starting" and not monitor.report.healthy
    await monitor.start()
    try:
        assert monitor.report.status == "healthy"  # the first verdict at once
        assert monitor.report.text() == "ok\n"

        problem["writes"] = "OOM"  # a blip shorter than the hold
        await wait_until(lambda: monitor.report.pending == "degraded")
        await asyncio.sleep(0.2)
        problem["writes"] = None
        await wait_until(lambda: monitor.report.pending is None)
        assert monitor.report.status == "healthy" and monitor.report.changes == 0

        problem["writes"] = "no prices written for 2.0 s"  # a fault that lasts
        since = time.monotonic()
        await wait_until(lambda: monitor.report.status == "degraded")
        assert time.monotonic() - since >= 1.5
        report = monitor.report
        assert report.reasons == (("writes", "no prices written for 2.0 s"),)
        assert report.text() == "degraded\nwrites: no prices written for 2.0 s\n"
        assert report.as_dict()["reasons"] == {"writes": "no prices written for 2.0 s"}
        problem["writes"] = "no prices written for 3.0 s"  # still degraded: reasons stay current
        await wait_until(lambda: "3.0 s" in monitor.report.text())

        problem["writes"] = None
        await wait_until(lambda: monitor.report.healthy)
        assert monitor.report.changes == 2
    finally:
        await monitor.stop()
    assert monitor.report.status == "stopped"
    assert component_statuses(redis_server, "test") == [
        ("starting", "booting"),
        ("healthy", "all checks pass"),
        ("degraded", "writes: no prices written for 2.0 s"),
        ("healthy", "all checks pass"),
        ("stopped", "test stopped"),
    ]

    failing = HealthMonitor(
        solcache.EventStream(pool),
        {"broken": broken, "hangs": hangs},
        component="checks",
        check_timeout_s=0.2,
    )
    await failing.start()
    await failing.stop()
    assert component_statuses(redis_server, "checks")[0] == (
        "degraded",
        "broken: check failed: bad check; hangs: no answer within 0.2 s",
    )


class PausedPublisher:
    """The real `EventStream`, with each `publish_many` held at a gate after it took its
    events (as the extension does: the list is read when the call is made)."""

    def __init__(self, events: solcache.EventStream) -> None:
        self._events = events
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def publish_many(self, batch: list[solcache.SystemStatus]) -> list[str]:
        taken = list(batch)
        self.waiting.set()
        await self.gate.wait()
        return await self._events.publish_many(taken)


async def test_a_status_announced_while_a_publish_is_in_flight_is_published_next(
    pool, redis_server
) -> None:
    events = PausedPublisher(solcache.EventStream(pool))
    monitor = HealthMonitor(events, {}, component="flight")  # type: ignore[arg-type]
    monitor.announce("flight-consumer", "retrying", "retrying: OOM")
    publishing = asyncio.create_task(monitor.starting("booting"))
    await events.waiting.wait()
    monitor.announce("flight-consumer", "connected", "reading again")  # mid-publish
    events.gate.set()
    await publishing
    await monitor.stop()
    assert component_statuses(redis_server, "flight-consumer") == [
        ("retrying", "retrying: OOM"),
        ("connected", "reading again"),
    ]
    assert [s for s, _ in component_statuses(redis_server, "flight")] == ["starting", "stopped"]


async def test_freshness_fails_after_the_allowed_periods_and_quotes_the_error() -> None:
    last: dict[str, float | None] = {"ok": None}
    check = Freshness("no writes", lambda: last["ok"], 0.05, 2, lambda: "x" * 500)
    assert await check() is None  # counted from its creation before the first success
    await asyncio.sleep(0.15)
    problem = await check()
    assert problem is not None and problem.startswith("no writes for 0.")
    assert "(allowed 0.1 s); last error: " in problem and problem.endswith("x…")
    assert len(problem) < 300  # a long error is cut
    last["ok"] = time.monotonic()
    assert await check() is None
