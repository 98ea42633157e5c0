"""Timing of individual calls: sequential (async or sync) and concurrent callers.

Every call is timed on its own with ``time.perf_counter_ns``; percentiles are nearest-rank
over all timed calls. Times are in microseconds (µs), rates in calls per second. CPU time per
call is the process's CPU time (``time.process_time``: every thread, so a client's own I/O
threads and any polling count) over the timed calls, divided by their number.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = [
    "Timing",
    "default_warmup",
    "percentile",
    "time_async",
    "time_concurrent",
    "time_sync",
]


@dataclass(frozen=True, slots=True)
class Timing:
    """Latency of ``calls`` timed calls and the rate they ran at.

    ``p50_us``, ``p99_us`` and ``mean_us`` are microseconds per call (None where the source,
    e.g. ``redis-benchmark -q``, does not report them); ``ops_per_s`` is calls per second of
    wall-clock time over the timed calls; ``callers`` is how many ran at once; ``errors``
    counts calls that raised (concurrent runs only; they are not timed) and ``first_error``
    names the first of them. ``cpu_us`` is this process's CPU time per call (None where the
    source, e.g. ``redis-benchmark``, is another process).
    """

    calls: int
    p50_us: float
    p99_us: float | None
    mean_us: float | None
    ops_per_s: float
    callers: int = 1
    errors: int = 0
    first_error: str = ""
    cpu_us: float | None = None

    @classmethod
    def of(
        cls,
        ns: list[int],
        elapsed_s: float,
        *,
        callers: int = 1,
        errors: int = 0,
        first_error: str = "",
        cpu_s: float | None = None,
    ) -> Timing:
        """Percentiles of per-call times ``ns`` (nanoseconds) over ``elapsed_s`` seconds;
        ``cpu_s``: the process's CPU seconds over the same calls."""
        if not ns:
            raise ValueError("no call was timed")
        us = sorted(n / 1000 for n in ns)
        return cls(
            calls=len(us),
            p50_us=percentile(us, 0.50),
            p99_us=percentile(us, 0.99),
            mean_us=statistics.fmean(us),
            ops_per_s=len(us) / elapsed_s if elapsed_s > 0 else math.inf,
            callers=callers,
            errors=errors,
            first_error=first_error,
            cpu_us=cpu_s / len(us) * 1e6 if cpu_s is not None else None,
        )


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of an ascending, non-empty list."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def default_warmup(calls: int) -> int:
    """Untimed calls before a timed run: a tenth of ``calls``, at least 100, at most 2 000."""
    return max(100, min(2_000, calls // 10))


async def time_async(op: Callable[[], Awaitable[object]], calls: int, warmup: int) -> Timing:
    """``warmup`` untimed awaits of ``op()``, then ``calls`` awaits, each timed."""
    for _ in range(warmup):
        await op()
    clock = time.perf_counter_ns
    ns = [0] * calls
    cpu = time.process_time()
    started = clock()
    for i in range(calls):
        t0 = clock()
        await op()
        ns[i] = clock() - t0
    elapsed_s = (clock() - started) / 1e9
    return Timing.of(ns, elapsed_s, cpu_s=time.process_time() - cpu)


def time_sync(op: Callable[[], object], calls: int, warmup: int) -> Timing:
    """``warmup`` untimed calls of ``op()``, then ``calls`` calls, each timed."""
    for _ in range(warmup):
        op()
    clock = time.perf_counter_ns
    ns = [0] * calls
    cpu = time.process_time()
    started = clock()
    for i in range(calls):
        t0 = clock()
        op()
        ns[i] = clock() - t0
    elapsed_s = (clock() - started) / 1e9
    return Timing.of(ns, elapsed_s, cpu_s=time.process_time() - cpu)


async def time_concurrent(
    op: Callable[[], Awaitable[object]],
    callers: int,
    total_calls: int,
    error_types: tuple[type[BaseException], ...] = (Exception,),
) -> Timing:
    """``callers`` coroutines (``asyncio.gather``) each awaiting ``op()`` in a loop.

    Each caller makes ``max(1, total_calls // callers)`` calls. Throughput is successful
    calls over the wall-clock time of the whole gather; a call raising one of
    ``error_types`` is counted in ``errors`` and not timed.
    """
    per_caller = max(1, total_calls // callers)
    ns: list[int] = []
    errors: list[BaseException] = []
    clock = time.perf_counter_ns

    async def caller() -> None:
        for _ in range(per_caller):
            t0 = clock()
            try:
                await op()
            except error_types as e:
                errors.append(e)
                continue
            ns.append(clock() - t0)

    cpu = time.process_time()
    started = clock()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed_s = (clock() - started) / 1e9
    first = f"{type(errors[0]).__name__}: {errors[0]}"[:100] if errors else ""
    return Timing.of(
        ns,
        elapsed_s,
        callers=callers,
        errors=len(errors),
        first_error=first,
        cpu_s=time.process_time() - cpu,
    )
