"""Keeps `price:*` fresh from a source and publishes price events at a fixed rate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from solcache._core import PriceCache, PriceUpdate
from solcache.exceptions import SolcacheError
from solcache.services.periodic import Periodic
from solcache.sources.base import PriceSource, SourceError
from solcache.streams import EventStream

__all__ = ["PriceServiceStats", "PriceUpdateService"]

logger = logging.getLogger("solcache")


@dataclass(frozen=True, slots=True)
class PriceServiceStats:
    ticks: int
    prices_written: int
    events_published: int
    #: Ticks that failed (source or Redis error), each retried with backoff.
    errors: int
    degraded: bool
    #: Why the last tick was not fine (empty when it was): ``source error: …``,
    #: ``redis error: …``, ``source data is … s old`` or ``no price for …``.
    reason: str
    #: The source's part of ``reason`` (empty when the source is fine).
    source_problem: str
    #: The last failed write's error, until a write succeeds again (empty when none).
    write_error: str
    #: ``time.monotonic()`` of the last successful write of prices and events (None before).
    last_write_monotonic_s: float | None
    #: Seconds since the source last delivered fresh data.
    source_staleness_s: float
    #: Tokens the source had no price for at the last tick.
    missing: tuple[str, ...]


class PriceUpdateService:
    """Each tick: read the source, write every price with ``set_many`` (TTL refreshed), and
    publish one :class:`PriceUpdate` per token.

    At the default 10 Hz every live token is rewritten every 100 ms, well within the 500 ms
    the 2 s TTL allows. A source error or a Redis error fails the tick: it is counted and the
    loop backs off (up to ``backoff_max_s``) until a tick succeeds. Stale source data (older
    than ``stale_after_s``) or a token without a price is reported too; :attr:`stats` says
    what the last tick saw. Deciding what that means for the whole service, and announcing
    it, is the caller's job (``solcache serve`` does it in :mod:`solcache.services.health`).
    """

    component = "price-service"

    def __init__(
        self,
        source: PriceSource,
        prices: PriceCache,
        events: EventStream,
        *,
        publish_hz: float = 10.0,
        stale_after_s: float = 2.0,
        ready_timeout_s: float = 5.0,
        backoff_max_s: float = 1.0,
    ) -> None:
        self._source = source
        self._prices = prices
        self._events = events
        self._stale_after_s = stale_after_s
        self._ready_timeout_s = ready_timeout_s
        self._loop = Periodic(self.component, publish_hz, self._tick, backoff_max_s=backoff_max_s)
        self._ticks = self._written = self._published = 0
        self._source_problem = ""
        self._write_error = ""
        self._staleness_s = 0.0
        self._missing: tuple[str, ...] = ()
        self._last_ok = time.monotonic()
        self._last_write: float | None = None

    @property
    def period_s(self) -> float:
        """Seconds between ticks."""
        return self._loop.period_s

    @property
    def running(self) -> bool:
        """True while the loop runs."""
        return self._loop.running

    @property
    def stats(self) -> PriceServiceStats:
        if self._source_problem:
            reason = self._source_problem
        elif self._write_error:
            reason = f"redis error: {self._write_error}"
        else:
            reason = ""
        return PriceServiceStats(
            ticks=self._ticks,
            prices_written=self._written,
            events_published=self._published,
            errors=self._loop.errors,
            degraded=bool(reason),
            reason=reason,
            source_problem=self._source_problem,
            write_error=self._write_error,
            last_write_monotonic_s=self._last_write,
            source_staleness_s=self._staleness_s,
            missing=self._missing,
        )

    async def start(self) -> None:
        """Start the source, wait up to ``ready_timeout_s`` for its first data, start the loop."""
        await self._source.start()
        if not await self._source.wait_ready(self._ready_timeout_s):
            logger.warning(
                "%s: no data from %s after %.1f s",
                self.component,
                self._source.name,
                self._ready_timeout_s,
            )
        self._loop.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the current tick, stop the loop and the source."""
        await self._loop.stop(timeout_s)
        await self._source.close()

    async def _tick(self) -> None:
        self._ticks += 1
        try:
            snap = await self._source.snapshot()
        except SourceError as e:
            self._staleness_s = time.monotonic() - self._last_ok
            self._source_problem = f"source error: {e}"
            raise
        self._staleness_s = snap.staleness_s
        self._missing = snap.missing
        if snap.staleness_s > self._stale_after_s:
            self._source_problem = f"source data is {snap.staleness_s:.1f} s old"
        elif snap.missing:
            self._source_problem = f"no price for {', '.join(snap.missing)}"
        else:
            self._source_problem = ""
        self._last_ok = time.monotonic()
        if not snap.prices:
            return
        try:
            await self._prices.set_many(snap.prices)
            updates = [PriceUpdate(p.token, p.price, p.timestamp) for p in snap.prices]
            await self._events.publish_many(updates)
        except SolcacheError as e:
            self._write_error = str(e)
            raise
        self._written += len(snap.prices)
        self._published += len(updates)
        self._write_error = ""
        self._last_write = time.monotonic()
