"""The performance goals, each a ratio to the raw round trip measured in the same run.

``p50``/``p99``: a row's latency as a multiple of the raw ``redis-benchmark -c 1`` p50, at
most ``limit``; ``share``: a concurrent row's reads/s as a fraction of ``redis-benchmark -c N``
with as many connections as callers, at least ``limit``. With rounds, ``p50`` and ``share`` are
the median over rounds of each round's ratio to its own raw run. A goal whose row (or the raw
run) was not measured is "not judged".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Literal

from solcache.latency import Report

__all__ = ["GOALS", "Goal", "GoalResult", "goal_lines", "goals_json", "judge"]


@dataclass(frozen=True, slots=True)
class Goal:
    """``metric`` of row ``key`` must be at most (``p50``/``p99`` as a multiple of the raw
    p50) or at least (``share``: reads/s as a fraction of redis-benchmark -c N) ``limit``."""

    key: str
    metric: Literal["p50", "p99", "share"]
    limit: float
    text: str


@dataclass(frozen=True, slots=True)
class GoalResult:
    """A goal judged: ``met`` is None when it could not be judged (``why`` says why)."""

    goal: Goal
    value: float | None
    met: bool | None
    why: str = ""


GOALS = (
    Goal("solcache-async.get", "p50", 1.3, "async get p50 ≤ 1.3x raw p50"),
    Goal("solcache-async.get", "p99", 2.5, "async get p99 ≤ 2.5x raw p50"),
    Goal("solcache-sync.get", "p50", 1.15, "sync get p50 ≤ 1.15x raw p50"),
    Goal("solcache-async.get_many", "p50", 1.4, "async get_many p50 ≤ 1.4x raw p50"),
    Goal("solcache-sync.get_many", "p50", 1.4, "sync get_many p50 ≤ 1.4x raw p50"),
    Goal("solcache-async.get.c20", "share", 0.8, "20 callers ≥ 80 % of redis-benchmark -c 20"),
    Goal("solcache-async.get.c200", "share", 0.8, "200 callers ≥ 80 % of redis-benchmark -c 200"),
)


def judge(report: Report, ratios: dict[str, list[float]] | None = None) -> list[GoalResult]:
    """Every goal of :data:`GOALS` judged against ``report``; ``ratios`` (row key → per-round
    ratios to that round's raw run) judge ``p50`` and ``share`` goals when given."""
    out: list[GoalResult] = []
    for g in GOALS:
        row = report.row(g.key)
        if row is None or row.timing is None:
            why = f"{row.label}: {row.note}" if row is not None else "not measured"
            out.append(GoalResult(g, None, None, why))
            continue
        per_round = (ratios or {}).get(g.key)
        if per_round and g.metric in ("p50", "share"):
            value: float | None = statistics.median(per_round)
            missing = ""
        elif g.metric == "share":
            value = report.share(row)
            missing = "no redis-benchmark throughput"
        else:
            value = report.ratio(row.timing.p50_us if g.metric == "p50" else row.timing.p99_us)
            missing = "no raw round trip (redis-benchmark)"
        if value is None:
            out.append(GoalResult(g, None, None, missing))
        elif g.metric == "share":
            out.append(GoalResult(g, value, value >= g.limit))
        else:
            out.append(GoalResult(g, value, value <= g.limit))
    return out


def goal_lines(results: list[GoalResult]) -> list[str]:
    """The goals block of the printed report: met / NOT met / not judged, one line each."""
    out = ["Goals, against this run's raw round trip:"]
    for g in results:
        if g.met is None:
            out.append(f"  {'not judged':<11}{g.goal.text:<48}({g.why})")
        else:
            value = f"{g.value:.0%}" if g.goal.metric == "share" else f"{g.value:.2f}x"
            out.append(f"  {'met' if g.met else 'NOT met':<11}{g.goal.text:<48}({value})")
    return out


def goals_json(results: list[GoalResult]) -> list[dict[str, Any]]:
    """The goals as JSON-ready data."""
    return [
        {
            "goal": g.goal.text,
            "key": g.goal.key,
            "metric": g.goal.metric,
            "limit": g.goal.limit,
            "value": g.value,
            "met": g.met,
            "why": g.why or None,
        }
        for g in results
    ]
