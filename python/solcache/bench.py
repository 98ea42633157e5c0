"""`solcache bench`: latency and throughput of solcache against the user's own Redis.

Writes only throw-away data: prices of `bench-*` tokens (2 s TTL) and the stream
`stream:solcache-bench`, trimmed to about 1 000 entries.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TextIO

from solcache._core import PriceCache, PriceData, PriceUpdate
from solcache.config import Settings
from solcache.pool import RedisPool
from solcache.streams import EventStream

__all__ = ["BenchResult", "run_bench"]

BENCH_TOKENS = ("bench-SOL", "bench-USDC", "bench-BONK", "bench-JitoSOL", "bench-RAY")
BENCH_STREAM = "stream:solcache-bench"


@dataclass(frozen=True, slots=True)
class BenchResult:
    name: str
    calls: int
    p50_us: float
    p99_us: float
    ops_per_s: float


def _percentile(sorted_us: list[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))]


class _Progress:
    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total, self.done = out, total, 0

    def step(self, label: str) -> None:
        self.done += 1
        width = 30
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        print(f"\r[{bar}] {self.done}/{self.total} {label:<28}", end="", file=self.out, flush=True)


async def _sequential(
    name: str, calls: int, op: Callable[[], Awaitable[object]], per_call: int = 1
) -> BenchResult:
    for _ in range(min(100, calls)):  # warm up connections and caches
        await op()
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        await op()
        times.append((time.perf_counter_ns() - t0) / 1e3)
    elapsed = time.perf_counter() - started
    times.sort()
    return BenchResult(
        name, calls, statistics.median(times), _percentile(times, 0.99), calls * per_call / elapsed
    )


async def _concurrent(
    name: str, callers: int, calls_each: int, op: Callable[[], Awaitable[object]]
) -> BenchResult:
    times: list[float] = []

    async def caller() -> None:
        for _ in range(calls_each):
            t0 = time.perf_counter_ns()
            await op()
            times.append((time.perf_counter_ns() - t0) / 1e3)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - started
    times.sort()
    return BenchResult(
        name, len(times), statistics.median(times), _percentile(times, 0.99), len(times) / elapsed
    )


async def run_bench(
    settings: Settings, calls: int = 2000, out: TextIO = sys.stdout
) -> list[BenchResult]:
    """Run every benchmark, print a progress bar and the result table, return the rows."""
    async with await RedisPool.connect(settings=settings) as pool:
        prices = PriceCache(pool)
        events = EventStream(pool, maxlen_per_stream={BENCH_STREAM: 1000})
        batch = [PriceData(t, Decimal("187.2345"), source="bench") for t in BENCH_TOKENS]
        await prices.set_many(batch)
        updates = [PriceUpdate("SOL", Decimal("187.2345")) for _ in range(100)]
        sol = BENCH_TOKENS[0]
        n_publish = max(10, calls // 20)
        cases: list[tuple[str, Callable[[], Awaitable[BenchResult]]]] = [
            ("get", lambda: _sequential("get", calls, lambda: prices.get(sol))),
            (
                "get_many (5)",
                lambda: _sequential("get_many (5)", calls, lambda: prices.get_many(BENCH_TOKENS)),
            ),
            ("set", lambda: _sequential("set", calls, lambda: prices.set(batch[0]))),
            (
                "set_many (5)",
                lambda: _sequential("set_many (5)", calls, lambda: prices.set_many(batch)),
            ),
            (
                "publish_many (100 events)",
                lambda: _sequential(
                    "publish_many (100 events)",
                    n_publish,
                    lambda: events.publish_many(updates, BENCH_STREAM),
                    100,
                ),
            ),
            (
                "get, 20 callers",
                lambda: _concurrent(
                    "get, 20 callers", 20, max(1, calls // 20), lambda: prices.get(sol)
                ),
            ),
        ]
        progress = _Progress(out, len(cases))
        results: list[BenchResult] = []
        for name, run in cases:
            progress.step(name)
            results.append(await run())
        print(file=out)
        print(f"\nsolcache bench against {pool.url} (Redis {pool.redis_version})", file=out)
        print(f"{'operation':<30}{'calls':>8}{'p50 µs':>10}{'p99 µs':>10}{'ops/s':>12}", file=out)
        for r in results:
            print(
                f"{r.name:<30}{r.calls:>8}{r.p50_us:>10.1f}{r.p99_us:>10.1f}{r.ops_per_s:>12,.0f}",
                file=out,
            )
        print(
            "(publish_many ops/s counts events; data: bench-* prices, 2 s TTL, and",
            BENCH_STREAM + ")",
            file=out,
        )
        return results
