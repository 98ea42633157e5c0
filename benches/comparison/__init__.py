"""solcache side by side with other Python Redis clients: the peers and the goals.

:mod:`solcache.latency` measures the raw round trip and solcache (as ``solcache bench`` does);
:func:`run_comparison` adds the peers of :mod:`comparison.peers` (redis-py, coredis,
valkey-glide) as more rows and judges the goals of :mod:`comparison.goals`; the event-stream
rows of :mod:`comparison.streams` (throughput against the raw XADD rate, publish→handler
latency) follow with goals of their own.
``benches/compare.py`` (``make compare``) runs it on a private redis-server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comparison.goals import GOALS, Goal, GoalResult, goal_lines, goals_json, judge
from comparison.peers import PeerPrice, decode_price, peer_specs, peer_versions
from comparison.streams import StreamRun, run_streams, stream_goal_results, stream_lines
from solcache.latency import BenchConfig, Report, render, run_benchmark

__all__ = [
    "GOALS",
    "Comparison",
    "Goal",
    "GoalResult",
    "PeerPrice",
    "StreamRun",
    "decode_price",
    "peer_specs",
    "run_comparison",
]


@dataclass
class Comparison:
    """The rows of one run and its goals, judged."""

    report: Report
    goals: list[GoalResult]
    streams: StreamRun | None = None

    def render(self) -> str:
        """The table, the goals (met / NOT met), the machine and the commands, as text."""
        extra = goal_lines(self.goals)
        if self.streams is not None:
            extra += ["", *stream_lines(self.streams)]
        return render(self.report, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """What :meth:`render` prints, as JSON-ready data."""
        data = self.report.to_json() | {"goals": goals_json(self.goals)}
        if self.streams is not None:
            s = self.streams
            data["streams"] = {
                "raw_xadd_per_s": s.raw,
                "publish_many": s.publish,
                "read_ack_iterator_batch_100": s.consume,
                "latency_ms": {str(hz): v for hz, v in s.latency.items()},
                "goals": stream_goal_results(s),
            }
        return data


def run_comparison(
    cfg: BenchConfig, progress: Callable[[str], None] | None = None, *, streams: bool = True
) -> Comparison:
    """Measure solcache and every peer against ``cfg.url``; judge the goals. With
    ``streams``, the event-stream rows follow (their own loop and pool, same server).

    A peer that is not installed is a row that says so. Raises solcache's ``ConnectionError``
    when the server cannot be reached.
    """
    report = run_benchmark(cfg, progress, clients=peer_specs())
    report.machine["peers"] = peer_versions()
    stream_run = run_streams(cfg.url, progress=progress) if streams else None
    return Comparison(report, judge(report), stream_run)
