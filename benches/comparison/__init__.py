"""solcache side by side with other Python Redis clients: the peers and the goals.

:func:`run_comparison` measures the raw round trip, solcache and the peers of
:mod:`comparison.peers` (redis-py, coredis, valkey-glide), every row doing the same work, in
interleaved rounds with a ``redis-benchmark`` run in each (:mod:`comparison.rounds`), and
judges the goals of :mod:`comparison.goals` on per-round ratios; the event-stream
rows of :mod:`comparison.streams` (throughput against the raw XADD rate, publish→handler
latency) follow with goals of their own.
``benches/compare.py`` (``make compare``) runs it on a private redis-server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from comparison.goals import GOALS, Goal, GoalResult, goal_lines, goals_json, judge
from comparison.peers import PeerPrice, decode_price, peer_specs, peer_versions
from comparison.rounds import DEFAULT_ROUNDS, run_rounds
from comparison.streams import StreamRun, run_streams, stream_goal_results, stream_lines
from solcache.latency import BenchConfig, Report, render

__all__ = [
    "DEFAULT_ROUNDS",
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
    #: Row key → that row's ratio to the raw run of each round.
    ratios: dict[str, list[float]] = field(default_factory=dict)

    def render(self) -> str:
        """The table, the goals (met / NOT met), the machine and the commands, as text."""
        extra = goal_lines(self.goals)
        if self.streams is not None:
            extra += ["", *stream_lines(self.streams)]
        return render(self.report, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """What :meth:`render` prints, as JSON-ready data."""
        data = self.report.to_json() | {"goals": goals_json(self.goals)}
        data["ratios_per_round"] = self.ratios
        if self.streams is not None:
            s = self.streams
            data["streams"] = {
                "raw_xadd_per_s": s.raw,
                "publish_many": s.publish,
                "read_ack_iterator_batch_100": s.consume,
                "read_ack_iterator_batch_100_price_read": s.consume_price,
                "latency_ms": {str(hz): v for hz, v in s.latency.items()},
                "goals": stream_goal_results(s),
            }
        return data


def run_comparison(
    cfg: BenchConfig,
    progress: Callable[[str], None] | None = None,
    *,
    streams: bool = True,
    rounds: int = DEFAULT_ROUNDS,
) -> Comparison:
    """Measure solcache and every peer against ``cfg.url`` in ``rounds`` interleaved rounds
    (``cfg.calls`` per row in all); judge the goals. With ``streams``, the event-stream rows
    follow (their own loop and pool, same server).

    A peer that is not installed is a row that says so. Raises solcache's ``ConnectionError``
    when the server cannot be reached.
    """
    report, ratios = run_rounds(cfg, progress, clients=peer_specs(), rounds=rounds)
    report.machine["peers"] = peer_versions()
    stream_run = run_streams(cfg.url, progress=progress) if streams else None
    return Comparison(report, judge(report, ratios), stream_run, ratios)
