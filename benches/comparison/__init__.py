"""solcache side by side with other Python Redis clients: the peers and the goals.

:mod:`solcache.latency` measures the raw round trip and solcache (as ``solcache bench`` does);
:func:`run_comparison` adds the peers of :mod:`comparison.peers` (redis-py, coredis,
valkey-glide) as more rows and judges the goals of :mod:`comparison.goals`.
``benches/compare.py`` (``make compare``) runs it on a private redis-server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comparison.goals import GOALS, Goal, GoalResult, goal_lines, goals_json, judge
from comparison.peers import PeerPrice, decode_price, peer_specs, peer_versions
from solcache.latency import BenchConfig, Report, render, run_benchmark

__all__ = [
    "GOALS",
    "Comparison",
    "Goal",
    "GoalResult",
    "PeerPrice",
    "decode_price",
    "peer_specs",
    "run_comparison",
]


@dataclass
class Comparison:
    """The rows of one run and its goals, judged."""

    report: Report
    goals: list[GoalResult]

    def render(self) -> str:
        """The table, the goals (met / NOT met), the machine and the commands, as text."""
        return render(self.report, extra=goal_lines(self.goals))

    def to_json(self) -> dict[str, Any]:
        """What :meth:`render` prints, as JSON-ready data."""
        return self.report.to_json() | {"goals": goals_json(self.goals)}


def run_comparison(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> Comparison:
    """Measure solcache and every peer against ``cfg.url``; judge the goals.

    A peer that is not installed is a row that says so. Raises solcache's ``ConnectionError``
    when the server cannot be reached.
    """
    report = run_benchmark(cfg, progress, clients=peer_specs())
    report.machine["peers"] = peer_versions()
    return Comparison(report, judge(report))
