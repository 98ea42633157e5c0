"""Whether `solcache serve` is healthy: named checks, a debounced verdict, announced once.

Every ``interval_s`` the :class:`HealthMonitor` runs its checks (each returns the problem it
sees, or None) and derives the raw state: ``healthy`` when no check fails, ``degraded``
otherwise. The reported state (``/healthz``, ``/api/status``, ``/metrics`` and the
``SystemStatus`` events published to ``stream:ui-events``) follows the raw state only once
that has held for ``hold_s``: a fault that comes and goes faster than that (an auth change
rolling through the pool, a server at its memory limit freeing a little) does not flap the
health answer. The first verdict is reported at once.

A status that cannot be published (Redis refuses writes, the usual reason for ``degraded``)
is kept with the time it happened, and published before the next one once Redis takes writes
again: the stream shows the outage, not only the recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from solcache._core import SystemStatus
from solcache.exceptions import SolcacheError
from solcache.services.periodic import Periodic
from solcache.streams import EventStream

__all__ = ["Freshness", "HealthCheck", "HealthMonitor", "HealthReport"]

logger = logging.getLogger("solcache")

#: A check: returns what is wrong (one line), or None when all is well.
HealthCheck = Callable[[], Awaitable[str | None]]

#: The longest error text a freshness problem quotes.
MAX_ERROR_CHARS = 200
#: Status events kept for a later publish while Redis cannot take them (the newest win).
MAX_UNSENT_STATUSES = 16


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The reported (debounced) health."""

    #: ``starting`` (no verdict yet), ``healthy``, ``degraded`` or ``stopped``.
    status: str
    #: ``(check, problem)`` of every failing check while ``degraded`` (empty otherwise).
    reasons: tuple[tuple[str, str], ...]
    #: Seconds the reported status has held.
    since_s: float
    #: The status the checks give now when it differs from ``status`` and has not held for
    #: ``hold_s`` yet (None otherwise).
    pending: str | None
    #: Reported changes between healthy and degraded since the first verdict.
    changes: int

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    def text(self) -> str:
        """``ok``, or the status and one ``check: problem`` line per failing check."""
        if self.healthy:
            return "ok\n"
        return "".join([f"{self.status}\n", *(f"{c}: {p}\n" for c, p in self.reasons)])

    def as_dict(self) -> dict[str, object]:
        """For ``/api/status``: also ``degraded`` (a bool) and ``reasons`` as a mapping."""
        return {
            "status": self.status,
            "degraded": self.status == "degraded",
            "reasons": dict(self.reasons),
            "since_s": round(self.since_s, 3),
            "pending": self.pending,
            "changes": self.changes,
        }


class Freshness:
    """A check that fails when a recurring success is older than ``max_missed`` periods.

    ``last_ok()`` gives the ``time.monotonic()`` of the last success (None before the first;
    the check's creation time stands in), ``last_error()`` the current error if any.
    """

    def __init__(
        self,
        what: str,
        last_ok: Callable[[], float | None],
        period_s: float,
        max_missed: int,
        last_error: Callable[[], str | None] = lambda: None,
    ) -> None:
        if not (period_s > 0 and max_missed >= 1):
            raise ValueError("period_s must be > 0 and max_missed >= 1")
        self._what = what
        self._last_ok = last_ok
        self._allowed_s = period_s * max_missed
        self._last_error = last_error
        self._created = time.monotonic()

    async def __call__(self) -> str | None:
        last = self._last_ok()
        age_s = time.monotonic() - (last if last is not None else self._created)
        if age_s <= self._allowed_s:
            return None
        error = self._last_error()
        problem = f"{self._what} for {age_s:.1f} s (allowed {self._allowed_s:.1f} s)"
        if not error:
            return problem
        if len(error) > MAX_ERROR_CHARS:  # a pipeline's error repeats once per command
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        return f"{problem}; last error: {error}"


class HealthMonitor:
    """Runs the checks every ``interval_s`` and reports the debounced verdict (see module).

    ``starting(message)`` publishes ``starting``; ``start()`` takes the first verdict at once
    and starts the loop; ``stop()`` ends it and publishes ``stopped`` (waiting at most
    ``publish_timeout_s`` for Redis). Each check is given ``check_timeout_s``.
    """

    def __init__(
        self,
        events: EventStream,
        checks: Mapping[str, HealthCheck],
        *,
        component: str = "serve",
        hold_s: float = 1.0,
        interval_s: float = 0.25,
        check_timeout_s: float = 2.0,
        publish_timeout_s: float = 2.0,
    ) -> None:
        if not (hold_s >= 0 and interval_s > 0 and check_timeout_s > 0 and publish_timeout_s > 0):
            raise ValueError("hold_s must be >= 0; the interval and timeouts > 0")
        self._events = events
        self._checks = dict(checks)
        self._component = component
        self._hold_s = hold_s
        self._check_timeout_s = check_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._loop = Periodic("health-monitor", 1.0 / interval_s, self.evaluate)
        self._status = "starting"
        self._reasons: tuple[tuple[str, str], ...] = ()
        self._since = time.monotonic()
        self._pending_since: float | None = None
        self._changes = 0
        self._unsent: list[SystemStatus] = []

    @property
    def checks(self) -> tuple[str, ...]:
        """The names of the checks, in order."""
        return tuple(self._checks)

    @property
    def running(self) -> bool:
        return self._loop.running

    @property
    def errors(self) -> int:
        """Evaluations that failed (retried at the next interval)."""
        return self._loop.errors

    @property
    def report(self) -> HealthReport:
        now = time.monotonic()
        pending = None
        if self._pending_since is not None:
            pending = "healthy" if self._status == "degraded" else "degraded"
        return HealthReport(
            status=self._status,
            reasons=self._reasons if self._status == "degraded" else (),
            since_s=now - self._since,
            pending=pending,
            changes=self._changes,
        )

    async def starting(self, message: str) -> None:
        """Publish ``starting`` (kept for later if Redis refuses it now)."""
        self._queue("starting", message)
        await self._publish()

    async def start(self) -> None:
        """Take the first verdict now (reported at once), then check every ``interval_s``."""
        await self.evaluate()
        self._loop.start()

    async def stop(self) -> None:
        """Stop checking; publish ``stopped`` and whatever is still unsent."""
        await self._loop.stop()
        self._status, self._since, self._pending_since = "stopped", time.monotonic(), None
        self._queue("stopped", f"{self._component} stopped")
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._publish()
        except TimeoutError:
            logger.warning("%s: 'stopped' not published: Redis did not answer", self._component)
        if self._unsent:
            logger.warning(
                "%s: %d status event(s) never published", self._component, len(self._unsent)
            )

    async def evaluate(self) -> None:
        """Run every check once and update the reported state (debounced)."""
        problems = await self._run_checks()
        raw = "degraded" if problems else "healthy"
        now = time.monotonic()
        if self._status == "starting":
            self._report(raw, problems, now)
        elif raw == self._status:
            self._pending_since = None
            if problems:
                self._reasons = problems  # still degraded: say why now
        else:
            if self._pending_since is None:
                self._pending_since = now
            if now - self._pending_since >= self._hold_s:
                self._report(raw, problems, now)
        await self._publish()

    async def _run_checks(self) -> tuple[tuple[str, str], ...]:
        results = await asyncio.gather(*(self._check(c) for c in self._checks.values()))
        return tuple((n, p) for n, p in zip(self._checks, results, strict=True) if p is not None)

    async def _check(self, check: HealthCheck) -> str | None:
        deadline = asyncio.timeout(self._check_timeout_s)
        try:
            async with deadline:
                return await check()
        except Exception as e:  # a check that fails says so; it never stops the monitor
            if deadline.expired():
                return f"no answer within {self._check_timeout_s:g} s"
            return f"check failed: {e}"

    def _report(self, status: str, reasons: tuple[tuple[str, str], ...], now: float) -> None:
        first = self._status == "starting"
        self._status, self._reasons, self._since, self._pending_since = status, reasons, now, None
        if not first:
            self._changes += 1
        message = "; ".join(f"{c}: {p}" for c, p in reasons) or "all checks pass"
        if status == "degraded":
            logger.warning("%s degraded: %s", self._component, message)
        elif not first:
            logger.warning("%s healthy again", self._component)
        self._queue(status, message)

    def announce(self, component: str, status: str, message: str) -> None:
        """Queue a ``SystemStatus`` of another ``component`` (e.g. the consumer going
        ``retrying``); published with the next evaluation, kept until Redis takes it."""
        self._unsent.append(SystemStatus(component, status, message[:1000]))
        del self._unsent[:-MAX_UNSENT_STATUSES]

    def _queue(self, status: str, message: str) -> None:
        self._unsent.append(SystemStatus(self._component, status, message[:1000]))
        del self._unsent[:-MAX_UNSENT_STATUSES]

    async def _publish(self) -> None:
        """Publish the statuses not published yet, oldest first; keep them if Redis fails."""
        if not self._unsent:
            return
        # Taken out before the await: a status announced while this publish is in flight
        # stays queued for the next one instead of being cleared with this batch.
        batch, self._unsent = self._unsent, []
        try:
            await self._events.publish_many(batch)
        except SolcacheError:  # published at a later evaluation, once Redis takes writes
            self._unsent[:0] = batch
            del self._unsent[:-MAX_UNSENT_STATUSES]
