"""``solcache bench``: solcache's reads and writes against the raw round trip of a Redis.

One run times ``redis-benchmark``'s GET of the very key solcache reads (the raw round trip),
then solcache's async and sync ``get``/``get_many``, concurrent callers and (``solcache
bench``) its writes, all against the same server, and prints each latency as a ratio to the
raw p50::

    from solcache.latency import BenchConfig, render, run_benchmark

    report = run_benchmark(BenchConfig("redis://127.0.0.1:6379/0", ("bench-SOL",), calls=2000))
    print(render(report))

Latencies are microseconds per call, rates calls per second.
"""

from __future__ import annotations

from solcache.latency.benchmark import SEED_PRICE, BenchConfig, run_benchmark
from solcache.latency.clients import AsyncClient, ClientSpec, ClientUnavailable, SyncClient
from solcache.latency.command import run_bench
from solcache.latency.redis_benchmark import parse_redis_benchmark
from solcache.latency.report import Report, Row, render
from solcache.latency.target import Target
from solcache.latency.timing import Timing, percentile

__all__ = [
    "SEED_PRICE",
    "AsyncClient",
    "BenchConfig",
    "ClientSpec",
    "ClientUnavailable",
    "Report",
    "Row",
    "SyncClient",
    "Target",
    "Timing",
    "parse_redis_benchmark",
    "percentile",
    "render",
    "run_bench",
    "run_benchmark",
]
