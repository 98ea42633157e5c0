"""Keeps `price:*` fresh from a source and publishes price events at a fixed rate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from solcache._core import PriceCache, PriceUpdate, SystemStatus
from solcache.exceptions import SolcacheError
from solcache.services.periodic import Periodic
from solcache.sources.base import PriceSource, SourceError
from solcache.streams import EventStream

__all__ = ["PriceServiceStats", "PriceUpdateService"]

logger = logging.getLogger("solcache")

#: Status events kept for a later publish while Redis cannot take them (the newest win).
MAX_UNSENT_STATUSES = 16


@dataclass(frozen=True, slots=True)
class PriceServiceStats:
    ticks: int
    prices_written: int
    events_published: int
    errors: int
    degraded: bool
    #: Why the service is degraded (empty when healthy).
    reason: str
    #: Seconds since the source last delivered fresh data.
    source_staleness_s: float
    #: Tokens the source had no price for at the last tick.
    missing: tuple[str, ...]


class PriceUpdateService:
    """Each tick: read the source, write every price with ``set_many`` (TTL refreshed), and
    publish one :class:`PriceUpdate` per token.

    At the default 10 Hz every live token is rewritten every 100 ms, well within the 500 ms
    the 2 s TTL allows. A source error, stale source data (older than ``stale_after_s``) or a
    Redis error marks the service degraded; a :class:`SystemStatus` is published on start
    (``starting``), after the first tick (``healthy`` or ``degraded``), on every change between
    the two, and on stop (``stopped``). A status that cannot be published (Redis is down, the
    usual reason for ``degraded``) is kept, with the time it happened, and published before the
    next one once Redis takes writes again: the stream shows the outage, not only the
    recovery.
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
    ) -> None:
        self._source = source
        self._prices = prices
        self._events = events
        self._stale_after_s = stale_after_s
        self._ready_timeout_s = ready_timeout_s
        self._loop = Periodic(self.component, publish_hz, self._tick)
        self._ticks = self._written = self._published = self._errors = 0
        #: None until the first tick decides: healthy ("") or degraded (the reason).
        self._degraded_reason: str | None = None
        self._staleness_s = 0.0
        self._missing: tuple[str, ...] = ()
        self._last_ok = time.monotonic()
        self._unsent: list[SystemStatus] = []

    @property
    def stats(self) -> PriceServiceStats:
        return PriceServiceStats(
            ticks=self._ticks,
            prices_written=self._written,
            events_published=self._published,
            errors=self._errors,
            degraded=bool(self._degraded_reason),
            reason=self._degraded_reason or "",
            source_staleness_s=self._staleness_s,
            missing=self._missing,
        )

    async def start(self) -> None:
        """Start the source, wait up to ``ready_timeout_s`` for its first data, start the loop;
        publish ``starting``."""
        await self._source.start()
        if not await self._source.wait_ready(self._ready_timeout_s):
            logger.warning(
                "%s: no data from %s after %.1f s",
                self.component,
                self._source.name,
                self._ready_timeout_s,
            )
        await self._status(
            "starting", f"{self._source.name} source, {len(self._source.tokens)} tokens"
        )
        self._loop.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the current tick, stop the loop and the source; publish ``stopped``."""
        await self._loop.stop(timeout_s)
        await self._source.close()
        await self._status("stopped", "price service stopped")

    async def _tick(self) -> None:
        self._ticks += 1
        try:
            snap = await self._source.snapshot()
        except SourceError as e:
            self._errors += 1
            self._staleness_s = time.monotonic() - self._last_ok
            await self._set_degraded(f"source error: {e}")
            return
        self._staleness_s = snap.staleness_s
        self._missing = snap.missing
        try:
            if snap.prices:
                await self._prices.set_many(snap.prices)
                updates = [PriceUpdate(p.token, p.price, p.timestamp) for p in snap.prices]
                await self._events.publish_many(updates)
                self._written += len(snap.prices)
                self._published += len(updates)
        except SolcacheError as e:
            self._errors += 1
            await self._set_degraded(f"redis error: {e}")
            return
        self._last_ok = time.monotonic()
        await self._publish_statuses()
        if snap.staleness_s > self._stale_after_s:
            await self._set_degraded(f"source data is {snap.staleness_s:.1f} s old")
        elif snap.missing:
            await self._set_degraded(f"no price for {', '.join(snap.missing)}")
        else:
            await self._set_degraded("")

    async def _set_degraded(self, reason: str) -> None:
        if reason == self._degraded_reason:
            return
        self._degraded_reason = reason
        if reason:
            logger.warning("%s degraded: %s", self.component, reason)
            await self._status("degraded", reason)
        else:
            logger.info("%s healthy again", self.component)
            await self._status("healthy", "prices flowing")

    async def _status(self, status: str, message: str) -> None:
        self._unsent.append(SystemStatus(self.component, status, message[:1000]))
        del self._unsent[:-MAX_UNSENT_STATUSES]
        await self._publish_statuses()

    async def _publish_statuses(self) -> None:
        """Publish the statuses not published yet, oldest first; keep them if Redis fails."""
        if not self._unsent:
            return
        try:
            await self._events.publish_many(self._unsent)
        except SolcacheError as e:  # Redis down: published with the next status or good tick
            logger.warning(
                "%s: could not publish status %s yet: %s",
                self.component,
                self._unsent[-1].status,
                e,
            )
            return
        self._unsent.clear()
