"""Python benchmarks of event streams: publish_many and consume + ack throughput, and
publish→handler latency at 10 Hz and at 1 kHz.

Run with ``pytest benches --benchmark-enable`` (``make bench``). Prints, never asserts timings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

import solcache
from bench_support import BenchRedis, Latency

pytestmark = pytest.mark.report
STREAM = solcache.STREAM_PRICE_UPDATES


@pytest.fixture
def events(
    bench_redis: BenchRedis, aloop: asyncio.AbstractEventLoop
) -> Iterator[solcache.EventStream]:
    pool = aloop.run_until_complete(solcache.RedisPool.connect(bench_redis.url("tcp")))
    yield solcache.EventStream(pool, maxlen=1_000_000)

    async def close() -> None:  # awaitables are created inside the running loop
        await pool.close()

    aloop.run_until_complete(close())


def updates(n: int) -> list[solcache.PriceUpdate]:
    return [solcache.PriceUpdate("SOL", Decimal("187.2345") + i) for i in range(n)]


def test_bench_publish_many_100(
    benchmark: Any, aloop: asyncio.AbstractEventLoop, events: solcache.EventStream
) -> None:
    batch = updates(100)

    async def publish() -> None:
        await events.publish_many(batch)

    benchmark(lambda: aloop.run_until_complete(publish()))


def test_throughput_report(
    aloop: asyncio.AbstractEventLoop, events: solcache.EventStream, report: Callable[[str], None]
) -> None:
    """Events/s of publish_many (batches of 1000) and of group read + ack (batches of 100
    and of 1000: the batch size is the consumer's main throughput knob)."""

    async def consume(group: str, count: int, total: int) -> float:
        sub = events.subscribe(STREAM, group, "bench", count=count)
        started = time.perf_counter()
        seen = 0
        async for batch_ in sub.batches():
            seen += len(batch_)
            if seen >= total:
                sub.ack(*batch_)
                break
        await sub.close()
        return seen / (time.perf_counter() - started)

    async def run() -> tuple[float, float, float]:
        total = 100_000
        batch = updates(1000)
        groups = [f"bench-{count}-{time.monotonic_ns()}" for count in (100, 1000)]
        for group in groups:
            await events.ensure_group(STREAM, group, "$")
        started = time.perf_counter()
        for _ in range(total // 1000):
            await events.publish_many(batch)
        publish_rate = total / (time.perf_counter() - started)
        by_100 = await consume(groups[0], 100, total)
        by_1000 = await consume(groups[1], 1000, total)
        return publish_rate, by_100, by_1000

    publish_rate, by_100, by_1000 = aloop.run_until_complete(run())
    report("")
    report("Python streams throughput (100 000 events, TCP):")
    report(f"  publish_many, batches of 1000:         {publish_rate:>10,.0f} events/s")
    report(f"  consumer group read + ack, batch 100:  {by_100:>10,.0f} events/s")
    report(f"  consumer group read + ack, batch 1000: {by_1000:>10,.0f} events/s")


@pytest.mark.parametrize(("rate_hz", "n"), [(10, 100), (1000, 3000)])
def test_latency_report(
    aloop: asyncio.AbstractEventLoop,
    events: solcache.EventStream,
    report: Callable[[str], None],
    rate_hz: int,
    n: int,
) -> None:
    """Publish ``n`` events at ``rate_hz`` while a subscriber consumes: publish→handler latency,
    and the backlog (pending entries) at the end."""

    async def run() -> tuple[Latency, int]:
        group = f"lat-{rate_hz}-{time.monotonic_ns()}"
        await events.ensure_group(STREAM, group, "$")
        sent_ns = [0] * n  # by event index (the price), set before the publish is sent
        got: list[int] = []

        async def consume() -> None:
            async with events.subscribe(STREAM, group, "c", block_ms=50) as sub:
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
            await events.publish(solcache.PriceUpdate("SOL", Decimal(i)))
        await asyncio.wait_for(consumer, 30)
        info = await events.info(STREAM)
        pending = next(g.pending for g in info.groups if g.name == group)
        return Latency.of(got), pending

    lat, pending = aloop.run_until_complete(run())
    report("")
    report(
        f"Python publish→handler at {rate_hz} Hz ({n} events): p50 {lat.p50 / 1000:.2f} ms, "
        f"p99 {lat.p99 / 1000:.2f} ms, pending at the end {pending}"
    )
