"""Event-stream rows of ``make compare``: solcache's stream throughput against the raw XADD
rate of ``redis-benchmark`` measured in the same run, and publish→handler latency.

The raw rate is ``redis-benchmark -c 1 -P 100`` running ``XADD … MAXLEN ~ 10000 * data
<150 bytes>``: what one connection gets from the server when the client costs nothing. The
solcache rows, measured in interleaved rounds with that raw run (medians over the rounds):

- ``publish_many`` of 1,000 ``PriceUpdate`` events per call;
- a consumer group read + ack through the async iterator (``async for entry in sub``),
  batches of 100: the loop body reads ``entry.event`` (the event object, already decoded and
  validated in the core) and touches none of its fields; the goal is judged on this row;
- the same read + ack with ``entry.event.price`` read in the loop body (a ``Decimal`` built
  per event), what a consumer that uses the price pays on top;
- publish→handler latency at 10 Hz (300 events) and at 1 kHz (3,000), p50 and nearest-rank
  p99, and the entries still pending at the end.

Events/s are wall-clock; CPU µs per event is this process's CPU time (every thread: the
Python loop and the core's runtime), which moves less than the wall clock on a shared machine.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import solcache
from solcache.latency.redis_benchmark import (
    RawUnavailable,
    connection_args,
    parse_redis_benchmark,
)
from solcache.latency.target import Target

__all__ = [
    "STREAM_GOALS",
    "StreamGoal",
    "StreamRun",
    "raw_xadd_rate",
    "run_streams",
    "stream_goal_results",
    "stream_lines",
]

#: The raw command's stream (trimmed like solcache's streams) and payload size.
RAW_STREAM = "stream:bench-raw"
PAYLOAD_BYTES = 150
MAXLEN = 10_000


def raw_xadd_command(target: Target, requests: int) -> list[str]:
    """``redis-benchmark -c 1 -P 100 … XADD stream:bench-raw MAXLEN ~ 10000 * data <150 B>``."""
    # fmt: off
    return [
        "redis-benchmark", *connection_args(target), "-c", "1", "-P", "100",
        "-n", str(requests), "--csv",
        "XADD", RAW_STREAM, "MAXLEN", "~", str(MAXLEN), "*", "data", "x" * PAYLOAD_BYTES,
    ]
    # fmt: on


def raw_xadd_rate(target: Target, requests: int = 100_000) -> float:
    """XADDs per second the server takes from one pipelining connection (``RawUnavailable``
    when redis-benchmark cannot measure it)."""
    cmd = raw_xadd_command(target, requests)
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except FileNotFoundError as e:
        raise RawUnavailable("not measured: redis-benchmark is not on PATH") from e
    timing = parse_redis_benchmark(run.stdout, requests, 1)
    if timing is None:
        detail = (run.stderr.strip() or run.stdout.strip()).splitlines()
        raise RawUnavailable(f"redis-benchmark gave no result: {detail[-1] if detail else '?'}")
    return timing.ops_per_s


@dataclass
class StreamRun:
    """Per-round results (events/s, CPU µs per event) and the latency rows."""

    raw: list[float] = field(default_factory=list)
    publish: list[tuple[float, float]] = field(default_factory=list)
    consume: list[tuple[float, float]] = field(default_factory=list)
    #: the same read + ack, reading each event's price
    consume_price: list[tuple[float, float]] = field(default_factory=list)
    #: rate (Hz) → (p50 ms, p99 ms, pending at the end)
    latency: dict[int, tuple[float, float, int]] = field(default_factory=dict)
    note: str = ""

    @property
    def raw_rate(self) -> float | None:
        return statistics.median(self.raw) if self.raw else None

    def median(self, rows: list[tuple[float, float]]) -> tuple[float, float] | None:
        if not rows:
            return None
        return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)

    def share(self, rows: list[tuple[float, float]]) -> float | None:
        """The median over rounds of the row's rate ÷ that round's raw rate."""
        if rows and len(rows) == len(self.raw):
            return statistics.median(r[0] / raw for r, raw in zip(rows, self.raw, strict=True))
        m, raw = self.median(rows), self.raw_rate
        return m[0] / raw if m is not None and raw else None


def _updates(n: int, start: int = 0) -> list[solcache.PriceUpdate]:
    return [solcache.PriceUpdate("SOL", Decimal("187.2345") + start + i) for i in range(n)]


async def publish_rate(
    events: solcache.EventStream, stream: str, total: int, batch: int = 1000
) -> tuple[float, float]:
    """``publish_many`` of ``batch`` events at a time: (events/s, CPU µs per event)."""
    chunk = _updates(batch)
    cpu, started = time.process_time(), time.perf_counter()
    for _ in range(total // batch):
        await events.publish_many(chunk, stream)
    elapsed = time.perf_counter() - started
    return total // batch * batch / elapsed, (time.process_time() - cpu) / total * 1e6


async def consume_rate(
    events: solcache.EventStream,
    stream: str,
    total: int,
    count: int = 100,
    *,
    read_price: bool = False,
) -> tuple[float, float]:
    """A new group reads ``total`` entries of ``stream`` through the async iterator and
    acknowledges them: (events/s, CPU µs per event). The loop body reads each entry's event
    (``entry.event``, checked not None) and, with ``read_price``, its ``price`` too."""
    group = f"bench-read-{time.monotonic_ns()}"
    await events.ensure_group(stream, group, "0")
    seen = 0
    prices = Decimal(0)
    cpu, started = time.process_time(), time.perf_counter()
    async with events.subscribe(stream, group, "bench", count=count) as sub:
        async for entry in sub:
            event = entry.event
            if event is None:
                raise AssertionError(f"undecodable entry {entry!r}")
            if read_price:
                assert isinstance(event, solcache.PriceUpdate)
                prices += event.price
            seen += 1
            if seen >= total:
                break
    elapsed = time.perf_counter() - started
    cpu_us = (time.process_time() - cpu) / total * 1e6
    await events.delete_group(stream, group)
    return total / elapsed, cpu_us


async def handler_latency(
    events: solcache.EventStream, stream: str, rate_hz: int, n: int
) -> tuple[float, float, int]:
    """Publish ``n`` events at ``rate_hz`` while a subscriber handles them: (p50 ms, p99 ms,
    entries pending at the end)."""
    group = f"bench-lat-{rate_hz}-{time.monotonic_ns()}"
    await events.ensure_group(stream, group, "$")
    sent_ns = [0] * n
    got: list[int] = []

    async def consume() -> None:
        async with events.subscribe(stream, group, "c", block_ms=50) as sub:
            async for entry in sub:
                assert isinstance(entry.event, solcache.PriceUpdate)
                got.append(time.perf_counter_ns() - sent_ns[int(entry.event.price)])
                if len(got) >= n:
                    break

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(n):
        delay = start + i / rate_hz - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_ns[i] = time.perf_counter_ns()
        await events.publish(solcache.PriceUpdate("SOL", Decimal(i)), stream)
    await asyncio.wait_for(consumer, 60)
    info = await events.info(stream)
    pending = next(g.pending for g in info.groups if g.name == group)
    await events.delete_group(stream, group)
    ms = sorted(x / 1e6 for x in got)
    return nearest_rank(ms, 0.50), nearest_rank(ms, 0.99), pending


def nearest_rank(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ascending ``ordered``: the smallest sample with at
    least ``q`` of the samples at or below it (p99 of 300 samples is the 297th, not the
    slowest)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _run(
    url: str,
    target: Target,
    rounds: int,
    total: int,
    latency: bool,
    say: Callable[[str], None],
) -> StreamRun:
    stream = "stream:bench-events"
    run = StreamRun()
    async with await solcache.RedisPool.connect(url) as pool:
        events = solcache.EventStream(pool, maxlen_per_stream={stream: rounds * total + MAXLEN})
        await events.publish_many(_updates(1000), stream)  # warm up: connections, code paths
        for r in range(rounds):
            say(f"streams round {r + 1}/{rounds}: raw XADD, publish_many, read + ack")
            # Interleaved: a raw run, then solcache, in every round.
            try:
                run.raw.append(await asyncio.to_thread(raw_xadd_rate, target))
            except RawUnavailable as e:
                run.note = str(e)
            run.publish.append(await publish_rate(events, stream, total))
            run.consume.append(await consume_rate(events, stream, total))
            run.consume_price.append(await consume_rate(events, stream, total, read_price=True))
        if latency:
            # 300 events at 10 Hz (30 s): the nearest-rank p99 is then the 297th, not the max.
            for rate_hz, n in ((10, 300), (1000, 3000)):
                say(f"streams publish→handler at {rate_hz} Hz")
                run.latency[rate_hz] = await handler_latency(events, stream, rate_hz, n)
        await events.expire(stream, 60_000)  # gone by itself after the run
    return run


def run_streams(
    url: str,
    *,
    rounds: int = 3,
    total: int = 50_000,
    latency: bool = True,
    progress: Callable[[str], None] | None = None,
) -> StreamRun:
    """Measure the stream rows against ``url`` on a fresh event loop (blocking)."""
    say = progress if progress is not None else (lambda _label: None)
    return asyncio.run(_run(url, Target.from_url(url), rounds, total, latency, say))


@dataclass(frozen=True, slots=True)
class StreamGoal:
    """A stream row's ``metric`` must be at least (``share``) or at most (``p99_ms``)
    ``limit``."""

    row: str
    metric: str
    limit: float
    text: str


STREAM_GOALS = (
    StreamGoal("publish", "share", 0.9, "publish_many ≥ 90 % of raw XADD -P 100"),
    StreamGoal("consume", "share", 0.7, "group read + ack (iterator) ≥ 70 % of raw XADD"),
    StreamGoal("10", "p99_ms", 2.0, "publish→handler p99 ≤ 2 ms at 10 Hz, no backlog"),
    StreamGoal("1000", "p99_ms", 2.0, "publish→handler p99 ≤ 2 ms at 1 kHz, no backlog"),
)


def stream_goal_results(run: StreamRun) -> list[dict[str, Any]]:
    """Every stream goal judged: ``met`` None when it was not measured."""
    out: list[dict[str, Any]] = []
    for g in STREAM_GOALS:
        value: float | None
        if g.metric == "share":
            value = run.share(run.publish if g.row == "publish" else run.consume)
            met = None if value is None else value >= g.limit
        else:
            lat = run.latency.get(int(g.row))
            value = lat[1] if lat is not None else None
            met = None if lat is None else lat[1] <= g.limit and lat[2] == 0
        out.append({"goal": g.text, "value": value, "met": met, "metric": g.metric})
    return out


def stream_lines(run: StreamRun) -> list[str]:
    """The stream rows and their goals, as printed lines."""
    raw = run.raw_rate
    out = ["Event streams (one connection; medians of interleaved rounds)"]
    out.append(f"  {'row':<52}{'events/s':>10}{'CPU µs/ev':>11}{'vs raw':>8}")
    out.append("  (the read + ack row's loop body reads entry.event and none of its fields)")
    if raw is not None:
        runs = ", ".join(f"{r:,.0f}" for r in run.raw)
        out.append(f"  {'raw: redis-benchmark -c 1 -P 100 XADD (150 B)':<52}{raw:>10,.0f}")
        out.append(f"    (rounds: {runs})")
    else:
        out.append(f"  raw XADD: {run.note or 'not measured'}")
    for label, rows in (
        ("solcache publish_many (1000 per call)", run.publish),
        ("solcache group read + ack, async iterator, batch 100", run.consume),
        ("  the same, each event's price read (a Decimal)", run.consume_price),
    ):
        m = run.median(rows)
        if m is None:
            continue
        share = run.share(rows)
        ratio = f"{share:.0%}" if share is not None else "-"
        out.append(f"  {label:<52}{m[0]:>10,.0f}{m[1]:>11.2f}{ratio:>8}")
    for rate_hz, (p50, p99, pending) in sorted(run.latency.items()):
        out.append(
            f"  publish→handler at {rate_hz} Hz: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"pending at the end {pending}"
        )
    out.append("Stream goals, against this run's raw XADD rate:")
    for g in stream_goal_results(run):
        status = "not judged" if g["met"] is None else ("met" if g["met"] else "NOT met")
        v = g["value"]
        shown = "-" if v is None else (f"{v:.0%}" if g["metric"] == "share" else f"{v:.2f} ms")
        out.append(f"  {status:<11}{g['goal']:<52}({shown})")
    return out
