"""Python benchmarks of ``solcache.PriceCache`` against a private redis-server.

Run with ``pytest benches --benchmark-enable`` (``make bench``). Two kinds:

* ``test_bench_*``: pytest-benchmark. It has no asyncio support, so every call is
  ``loop.run_until_complete(coroutine)``, which adds the loop's own start/stop cost;
  ``test_bench_loop_overhead`` measures that cost alone so it can be subtracted.
* ``@pytest.mark.report`` tests: many calls awaited inside one coroutine, each timed with
  ``time.perf_counter_ns``; they print p50 / p99 (µs) and the ratio to ``redis-benchmark``
  run against the same server in the same test. They print; they never assert a timing.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import solcache
from bench_support import BenchRedis, Caches, Latency, median_of, redis_benchmark

TRANSPORTS = ["tcp", "unix"]
ROUNDS = 5
SEQUENTIAL_READS = 1000


# ------------------------------------------------------------------------ pytest-benchmark


def test_bench_loop_overhead(benchmark: Any, aloop: asyncio.AbstractEventLoop) -> None:
    """``run_until_complete`` of a coroutine that does nothing: the harness's own cost."""

    async def nothing() -> None:
        return None

    benchmark(lambda: aloop.run_until_complete(nothing()))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bench_get(
    benchmark: Any, aloop: asyncio.AbstractEventLoop, caches: Caches, transport: str
) -> None:
    cache = caches.cache[transport]

    async def once() -> solcache.PriceData | None:
        return await cache.get("SOL")

    assert benchmark(lambda: aloop.run_until_complete(once())) == caches.prices[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bench_get_many_5(
    benchmark: Any, aloop: asyncio.AbstractEventLoop, caches: Caches, transport: str
) -> None:
    cache = caches.cache[transport]

    async def once() -> dict[str, solcache.PriceData | None]:
        return await cache.get_many(solcache.MVP_TOKENS)

    got = benchmark(lambda: aloop.run_until_complete(once()))
    assert list(got.values()) == caches.prices


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bench_set(
    benchmark: Any, aloop: asyncio.AbstractEventLoop, caches: Caches, transport: str
) -> None:
    cache, price = caches.cache[transport], caches.prices[0]

    async def once() -> None:
        await cache.set(price)

    benchmark(lambda: aloop.run_until_complete(once()))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bench_set_many_5(
    benchmark: Any, aloop: asyncio.AbstractEventLoop, caches: Caches, transport: str
) -> None:
    cache, prices = caches.cache[transport], caches.prices

    async def once() -> None:
        await cache.set_many(prices)

    benchmark(lambda: aloop.run_until_complete(once()))


# ------------------------------------------------------------------------ printed reports


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> Latency:
    """``n`` sequential awaited calls, each timed on its own, after ``n // 10`` warm-up calls."""
    for _ in range(n // 10):
        await call()
    ns = []
    for _ in range(n):
        started = time.perf_counter_ns()
        await call()
        ns.append(time.perf_counter_ns() - started)
    return Latency.of(ns)


def ratio(value: float, raw: Latency | None) -> str:
    return f"{value / raw.p50:.2f}x" if raw else "-"


def raw_line(label: str, raw: Latency | None) -> str:
    if raw is None:
        return f"raw round trip ({label}): redis-benchmark not installed, no ratios"
    return (
        f"raw round trip ({label}): redis-benchmark -t get -P 1: p50 {raw.p50:.1f} us, "
        f"p99 {raw.p99:.1f} us, {raw.rate:,.0f} req/s"
    )


def raw_median(rounds: list[Latency | None]) -> Latency | None:
    done = [r for r in rounds if r is not None]
    return median_of(done) if done else None


@pytest.mark.report
def test_sequential_reads_report(
    aloop: asyncio.AbstractEventLoop,
    caches: Caches,
    bench_redis: BenchRedis,
    report: Callable[[str], None],
) -> None:
    """1000 sequential ``await cache.get("SOL")`` (5 rounds): average, p50, p99 in µs."""
    cache = caches.cache["tcp"]
    rounds, raws = [], []
    for _ in range(ROUNDS):
        raws.append(redis_benchmark(bench_redis, n=SEQUENTIAL_READS * 4))
        rounds.append(aloop.run_until_complete(timed(SEQUENTIAL_READS, lambda: cache.get("SOL"))))
    raw = raw_median(raws)
    report("")
    report(f"Python: {SEQUENTIAL_READS} sequential awaited PriceCache.get over TCP, per round:")
    report(raw_line("tcp, -c 1", raw))
    for i, r in enumerate(rounds, 1):
        report(
            f"  round {i}: average {r.mean:.1f} us, p50 {r.p50:.1f} us, p99 {r.p99:.1f} us"
            f" (p50 {ratio(r.p50, raw)} raw)"
        )
    m = median_of(rounds)
    holds = m.mean < 1000 and m.p99 < 2000
    report(
        f"  median of {ROUNDS} rounds: average {m.mean:.1f} us, p50 {m.p50:.1f} us, "
        f"p99 {m.p99:.1f} us; p50 = {ratio(m.p50, raw)} raw p50"
    )
    report(
        "  'average < 1 ms and p99 < 2 ms': "
        + ("holds" if holds else "does NOT hold")
        + f" (average {m.mean / 1000:.3f} ms, p99 {m.p99 / 1000:.3f} ms)"
    )


@pytest.mark.report
def test_operations_report(
    aloop: asyncio.AbstractEventLoop,
    caches: Caches,
    bench_redis: BenchRedis,
    report: Callable[[str], None],
) -> None:
    """Every operation over TCP and the unix socket, rounds interleaved; medians printed."""

    async def nothing() -> None:
        return None

    ops: dict[str, Callable[[solcache.PriceCache], Callable[[], Awaitable[object]]]] = {
        "get": lambda c: lambda: c.get("SOL"),
        "get_many (5 tokens)": lambda c: lambda: c.get_many(solcache.MVP_TOKENS),
        "set": lambda c: lambda: c.set(caches.prices[0]),
        "set_many (5)": lambda c: lambda: c.set_many(caches.prices),
    }
    results: dict[tuple[str, str], list[Latency]] = {}
    raws: dict[str, list[Latency | None]] = {t: [] for t in TRANSPORTS}
    loop_only: list[Latency] = []
    for _ in range(ROUNDS):
        for t in TRANSPORTS:
            raws[t].append(redis_benchmark(bench_redis, n=4000, unix=t == "unix"))
        loop_only.append(aloop.run_until_complete(timed(2000, nothing)))
        for t in TRANSPORTS:
            for name, make in ops.items():
                r = aloop.run_until_complete(timed(2000, make(caches.cache[t])))
                results.setdefault((t, name), []).append(r)
    report("")
    report(f"Python: awaited PriceCache calls, us per call, median of {ROUNDS} rounds x 2000:")
    raw = {t: raw_median(raws[t]) for t in TRANSPORTS}
    for t in TRANSPORTS:
        report(raw_line(f"{t}, -c 1", raw[t]))
    report("| case | p50 us | p99 us | mean us | p50 / raw p50 |")
    report("|---|---:|---:|---:|---:|")
    lo = median_of(loop_only)
    report(f"| await of an empty coroutine | {lo.p50:.2f} | {lo.p99:.2f} | {lo.mean:.2f} | - |")
    for (t, name), rounds in results.items():
        m = median_of(rounds)
        report(
            f"| {t} PriceCache.{name} | {m.p50:.1f} | {m.p99:.1f} | {m.mean:.1f} "
            f"| {ratio(m.p50, raw[t])} |"
        )


@pytest.mark.report
@pytest.mark.parametrize("callers", [20, 200])
def test_concurrent_reads_report(
    aloop: asyncio.AbstractEventLoop,
    caches: Caches,
    bench_redis: BenchRedis,
    report: Callable[[str], None],
    callers: int,
) -> None:
    """``callers`` coroutines reading in a loop (asyncio.gather): throughput and p99."""
    cache = caches.cache["tcp"]
    total = 10_000
    per_caller = max(1, total // callers)

    async def reader(ns: list[int], errors: list[BaseException]) -> None:
        for _ in range(per_caller):
            started = time.perf_counter_ns()
            try:
                await cache.get("SOL")
            except solcache.SolcacheError as e:  # counted, not timed
                errors.append(e)
                continue
            ns.append(time.perf_counter_ns() - started)

    async def run() -> tuple[Latency, list[BaseException]]:
        ns: list[int] = []
        errors: list[BaseException] = []
        started = time.perf_counter()
        await asyncio.gather(*(reader(ns, errors) for _ in range(callers)))
        elapsed = time.perf_counter() - started
        return Latency.of(ns, len(ns) / elapsed), errors

    aloop.run_until_complete(run())  # warm-up: opens the pool's connections
    rounds, raws, errors = [], [], []
    for _ in range(ROUNDS):
        raws.append(redis_benchmark(bench_redis, clients=callers, n=20_000))
        r, errs = aloop.run_until_complete(run())
        rounds.append(r)
        errors.extend(errs)
    m = median_of(rounds)
    raw = raw_median(raws)
    report("")
    report(
        f"Python: {callers} concurrent callers (asyncio.gather) x {per_caller} reads, "
        f"pool max_size {caches.pools['tcp'].max_size}, median of {ROUNDS} rounds:"
    )
    report(
        f"  {m.rate:,.0f} reads/s, p50 {m.p50:.1f} us, p99 {m.p99:.1f} us, "
        f"errors {len(errors)}"
        + (f" (first: {type(errors[0]).__name__}: {errors[0]})" if errors else "")
    )
    if raw is not None:
        report(
            f"  redis-benchmark -t get -c {callers}: {raw.rate:,.0f} req/s, "
            f"p50 {raw.p50:.1f} us, p99 {raw.p99:.1f} us -> solcache at "
            f"{m.rate / raw.rate:.0%} of its throughput"
        )
    rates = [r.rate for r in rounds]
    per_round = ", ".join(f"{r:,.0f}" for r in rates)
    report(f"  reads/s per round: {per_round} (stdev {statistics.pstdev(rates):,.0f})")
