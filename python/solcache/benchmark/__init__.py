"""Side-by-side comparison of solcache with the raw round trip and other Redis clients.

Used by ``benches/compare.py`` (``make compare``: its own redis-server, peers installed,
real ``price:*`` keys) and by ``solcache bench`` (the user's Redis, peers only if already
importable, throw-away ``bench-*`` keys)::

    from solcache.benchmark import CompareConfig, render, run_comparison

    report = run_comparison(CompareConfig("redis://127.0.0.1:6379/0", ("bench-SOL",), calls=2000))
    print(render(report))

Latencies are microseconds per call; every ratio is to ``redis-benchmark``'s GET round
trip measured in the same run against the same server.
"""

from __future__ import annotations

from solcache.benchmark.clients import PeerPrice, decode_price
from solcache.benchmark.measure import Timing, percentile
from solcache.benchmark.raw import parse_redis_benchmark
from solcache.benchmark.report import GOALS, GoalResult, Report, Row, render
from solcache.benchmark.runner import SEED_PRICE, CompareConfig, run_comparison
from solcache.benchmark.target import Target

__all__ = [
    "GOALS",
    "SEED_PRICE",
    "CompareConfig",
    "GoalResult",
    "PeerPrice",
    "Report",
    "Row",
    "Target",
    "Timing",
    "decode_price",
    "parse_redis_benchmark",
    "percentile",
    "render",
    "run_comparison",
]
