"""`solcache bench`: solcache against the raw round trip of the user's own Redis.

Prints one table (see :mod:`solcache.latency`): ``redis-benchmark``'s GET round trip (when it
is on ``PATH``), solcache's async and sync reads, concurrent callers, then solcache's writes
and stream publishing, each latency also as a ratio to the raw p50.

Writes only throw-away data: prices of ``bench-*`` tokens (re-written before each row with a
60 s TTL, so every read is a hit; the ``set`` rows write with the production 2 s TTL) and the
stream ``stream:solcache-bench``, trimmed to about 1 000 entries and expiring 60 s after the
run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from solcache._core import PriceCache, PriceData, PriceUpdate
from solcache.config import Settings
from solcache.latency.benchmark import BenchConfig, ExtraRows, run_benchmark
from solcache.latency.report import Report, Row, render
from solcache.latency.timing import default_warmup, time_async
from solcache.redis_pool import RedisPool
from solcache.streams import EventStream

__all__ = ["BENCH_SEED_TTL_MS", "BENCH_STREAM", "BENCH_TOKENS", "run_bench"]

BENCH_TOKENS = ("bench-SOL", "bench-USDC", "bench-BONK", "bench-JitoSOL", "bench-RAY")
BENCH_STREAM = "stream:solcache-bench"
#: TTL of the seeded ``bench-*`` prices and of the bench stream: the longest a benchmark key
#: outlives the run.
BENCH_SEED_TTL_MS = 60_000
#: Events per ``publish_many`` call; that row's ops/s counts events.
PUBLISH_BATCH = 100


def _writes(calls: int) -> ExtraRows:
    """Rows for ``set``, ``set_many`` and ``publish_many`` (µs per call; events/s)."""

    async def measure(pool: RedisPool, say: Callable[[str], None]) -> list[Row]:
        prices = PriceCache(pool)  # the production TTL
        events = EventStream(pool, maxlen_per_stream={BENCH_STREAM: 1000})
        batch = [PriceData(t, Decimal("187.2345"), source="bench") for t in BENCH_TOKENS]
        updates = [PriceUpdate("SOL", Decimal("187.2345")) for _ in range(PUBLISH_BATCH)]
        n_publish = max(10, calls // 20)
        rows: list[Row] = []
        cases = [
            ("set", "solcache async set", calls, lambda: prices.set(batch[0]), 1),
            (
                "set_many",
                f"solcache async set_many ({len(batch)})",
                calls,
                lambda: prices.set_many(batch),
                1,
            ),
            (
                "publish_many",
                f"solcache async publish_many ({PUBLISH_BATCH} events)",
                n_publish,
                lambda: events.publish_many(updates, BENCH_STREAM),
                PUBLISH_BATCH,
            ),
        ]
        try:
            for key, label, n, op, per_call in cases:
                say(label)
                timing = await time_async(op, n, default_warmup(n))
                timing = dataclasses.replace(timing, ops_per_s=timing.ops_per_s * per_call)
                rows.append(Row(f"solcache-async.{key}", label, "writes", timing))
        finally:
            # Like the seeded prices, the stream goes away by itself after the run.
            await events.expire(BENCH_STREAM, BENCH_SEED_TTL_MS)
        return rows

    return measure


class _Progress:
    """``[n] label`` on one line of ``out`` (rewritten in place on a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.done = out, 0
        self.tty = out.isatty()

    def __call__(self, label: str) -> None:
        self.done += 1
        end = "" if self.tty else "\n"
        prefix = "\r\x1b[2K" if self.tty else ""
        print(f"{prefix}[{self.done:>2}] {label}", end=end, file=self.out, flush=True)

    def finish(self) -> None:
        if self.tty and self.done:
            print("\r\x1b[2K", end="", file=self.out, flush=True)


def run_bench(
    settings: Settings,
    calls: int = 2000,
    out: TextIO = sys.stdout,
    *,
    use_uvloop: bool = False,
    json_path: Path | None = None,
    command: str = "",
    progress: TextIO = sys.stderr,
) -> Report:
    """Run the benchmark against ``settings``' Redis, print the table to ``out``.

    ``calls`` timed calls per sequential row (about as many reads per concurrent row);
    progress goes to ``progress``; ``json_path`` also gets the rows as JSON. Returns the
    report. Raises solcache's ``ConnectionError`` when Redis cannot be reached.
    """
    cfg = BenchConfig(
        url=settings.effective_redis_url,
        tokens=BENCH_TOKENS,
        calls=calls,
        pool_max_size=settings.pool_max_size,
        seed_ttl_ms=BENCH_SEED_TTL_MS,
        raw_requests=max(2_000, 5 * calls),
        use_uvloop=use_uvloop,
        settings=settings,
        title=f"solcache bench against {settings.redacted_redis_url}",
        command=command,
    )
    bar = _Progress(progress)
    try:
        report = run_benchmark(cfg, bar, extra=_writes(calls))
    finally:
        bar.finish()
    print(render(report), file=out)
    print(
        f"(publish_many ops/s counts events; data: bench-* prices and {BENCH_STREAM}, both "
        f"expiring {BENCH_SEED_TTL_MS // 1000} s after the run)",
        file=out,
    )
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    return report
