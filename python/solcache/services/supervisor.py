"""Starts the background services of `solcache serve` and keeps every one of them running.

Each service loop already retries its own errors; the :class:`Supervisor` covers what is left:
a ``start()`` that fails (Redis refusing the consumer group at start, say) is retried with
backoff in the background, and a service found not running while it should be is restarted.
Both are counted, logged and reported by :meth:`Supervisor.problems` until they clear.
``stop()`` stops every service, in reverse order, even when some of them fail to stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from solcache.backoff import Backoff
from solcache.services.periodic import Periodic

__all__ = ["Supervised", "Supervisor"]

logger = logging.getLogger("solcache")


@dataclass(eq=False)
class Supervised:
    """One service: how to start and stop it, and whether it runs."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    running: Callable[[], bool]
    #: Failed starts and unexpected stops, since the supervisor started.
    errors: int = 0
    #: Why it is not running (empty while it runs).
    problem: str = ""
    _backoff: Backoff = field(default_factory=lambda: Backoff(0.1, 5.0))
    _retry_at: float = 0.0


class Supervisor:
    """Keeps ``services`` running from :meth:`start` to :meth:`stop` (see the module doc).

    Checks every ``interval_s``; each ``stop()`` of a service gets ``stop_timeout_s``.
    """

    def __init__(
        self,
        services: Sequence[Supervised],
        *,
        interval_s: float = 0.5,
        stop_timeout_s: float = 10.0,
    ) -> None:
        if not (interval_s > 0 and stop_timeout_s > 0):
            raise ValueError("interval_s and stop_timeout_s must be > 0")
        self.services = tuple(services)
        self._stop_timeout_s = stop_timeout_s
        self._loop = Periodic("supervisor", 1.0 / interval_s, self._watch)
        self._started: set[Supervised] = set()

    @property
    def running(self) -> bool:
        return self._loop.running

    def problems(self) -> list[str]:
        """``name: why`` for every service that should run and does not."""
        return [f"{s.name}: {s.problem}" for s in self.services if s.problem]

    async def start(self) -> None:
        """Start every service in order (a failed start is retried in the background), then
        watch them. Never raises for a service's error."""
        for service in self.services:
            await self._start(service)
        self._loop.start()

    async def stop(self) -> None:
        """Stop watching, then stop every service in reverse order (each bounded)."""
        await self._loop.stop()
        for service in reversed(self.services):
            await self._stop(service)
        self._started.clear()

    async def _watch(self) -> None:
        now = time.monotonic()
        for service in self.services:
            if service.running() or now < service._retry_at:
                continue
            if service in self._started:  # it was running: its task ended
                service.errors += 1
                service.problem = "stopped unexpectedly; restarting"
                logger.error("%s stopped while serve runs; restarting it", service.name)
                await self._stop(service)
            await self._start(service)

    async def _start(self, service: Supervised) -> None:
        try:
            await service.start()
        except Exception as e:
            service.errors += 1
            self._started.discard(service)
            delay_s = service._backoff.next_delay_s()
            service._retry_at = time.monotonic() + delay_s
            message = f"start failed ({e}); retrying with backoff"
            if message != service.problem:
                logger.warning("%s: %s (now %.2f s)", service.name, message, delay_s)
            service.problem = message
            await self._stop(service)  # undo a half start
            return
        self._started.add(service)
        service._backoff.reset()
        if service.problem:
            logger.warning("%s: running again", service.name)
        service.problem = ""

    async def _stop(self, service: Supervised) -> None:
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                await service.stop()
        except Exception as e:  # one service failing to stop must not keep the others running
            logger.warning("%s: stop failed: %s", service.name, str(e) or type(e).__name__)
