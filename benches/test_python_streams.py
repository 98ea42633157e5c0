"""Python benchmarks of event streams: publish_many and consume + ack throughput beside the raw
XADD rate of redis-benchmark, and publish→handler latency at 10 Hz and at 1 kHz (the
functions of ``comparison.streams``, which ``make compare`` runs too).

Run with ``pytest benches --benchmark-enable`` (``make bench``). Prints, never asserts timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

import solcache
from bench_support import BenchRedis
from comparison.streams import (
    StreamRun,
    consume_rate,
    handler_latency,
    publish_rate,
    raw_xadd_rate,
    stream_lines,
)
from solcache.latency.redis_benchmark import RawUnavailable
from solcache.latency.target import Target

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
    aloop: asyncio.AbstractEventLoop,
    events: solcache.EventStream,
    bench_redis: BenchRedis,
    report: Callable[[str], None],
) -> None:
    """Events/s of publish_many (1000 per call) and of group read + ack through the async
    iterator (batch 100), in rounds interleaved with the raw ``redis-benchmark -c 1 -P 100``
    XADD rate; the same rows as ``make compare``."""
    target = Target.from_url(bench_redis.url("tcp"))
    run = StreamRun()

    async def round_() -> None:
        run.publish.append(await publish_rate(events, STREAM, 50_000))
        run.consume.append(await consume_rate(events, STREAM, 50_000))
        run.consume_price.append(await consume_rate(events, STREAM, 50_000, read_price=True))

    for _ in range(3):
        try:
            run.raw.append(raw_xadd_rate(target))
        except RawUnavailable as e:
            run.note = str(e)
        aloop.run_until_complete(round_())
    report("")
    for line in stream_lines(run):
        report(line)


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
    p50, p99, pending = aloop.run_until_complete(handler_latency(events, STREAM, rate_hz, n))
    report("")
    report(
        f"Python publish→handler at {rate_hz} Hz ({n} events): p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, pending at the end {pending}"
    )
