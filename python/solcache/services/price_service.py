"""Keeps `price:*` fresh from a source and publishes price events at a fixed rate."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from solcache._core import PriceCache, PriceData, PriceUpdate
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
    #: Prices refused because their confidence interval was too wide (since start).
    prices_refused: int = 0
    #: Tokens whose price was refused at the last tick.
    refused: tuple[str, ...] = ()


class PriceUpdateService:
    """Each tick: read the source, write every price with ``set_many`` (TTL refreshed), and
    publish one :class:`PriceUpdate` per token.

    At the default 10 Hz every live token is rewritten every 100 ms, well within the 500 ms
    the 2 s TTL allows. A source error or a Redis error fails the tick: it is counted and the
    loop backs off (up to ``backoff_max_s``) until a tick succeeds. Stale source data (older
    than ``stale_after_s``) or a token without a price is reported too; :attr:`stats` says
    what the last tick saw. Deciding what that means for the whole service, and announcing
    it, is the caller's job (``solcache serve`` does it in :mod:`solcache.services.health`).

    With ``max_confidence_fraction``, a price whose confidence interval (``PriceData.confidence``,
    Pyth's ``conf``) is wider than that fraction of the price is refused: not written, no event
    published (readers keep the last good price until its TTL ends), counted in
    ``stats.prices_refused`` and reported as the source's problem. Prices without a
    confidence always pass.
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
        max_confidence_fraction: float | None = None,
    ) -> None:
        if max_confidence_fraction is not None and not 0 < max_confidence_fraction < float("inf"):
            raise ValueError("max_confidence_fraction must be finite and > 0 (None: no check)")
        self._max_confidence = (
            None if max_confidence_fraction is None else Decimal(repr(max_confidence_fraction))
        )
        self._refused_total = 0
        self._refused: tuple[str, ...] = ()
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
            prices_refused=self._refused_total,
            refused=self._refused,
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
        prices, too_wide = self._confident(snap.prices)
        if snap.staleness_s > self._stale_after_s:
            self._source_problem = f"source data is {snap.staleness_s:.1f} s old"
        elif snap.missing:
            self._source_problem = f"no price for {', '.join(snap.missing)}"
        elif too_wide:
            self._source_problem = "; ".join(too_wide)
        else:
            self._source_problem = ""
        self._last_ok = time.monotonic()
        if not prices:
            return
        try:
            await self._prices.set_many(prices)
            updates = [PriceUpdate(p.token, p.price, p.timestamp) for p in prices]
            await self._events.publish_many(updates)
        except SolcacheError as e:
            self._write_error = str(e)
            raise
        self._written += len(prices)
        self._published += len(updates)
        self._write_error = ""
        self._last_write = time.monotonic()

    def _confident(self, prices: Sequence[PriceData]) -> tuple[list[PriceData], list[str]]:
        """The prices to write, and why each refused one was refused (confidence too wide)."""
        if self._max_confidence is None:
            self._refused = ()
            return list(prices), []
        kept: list[PriceData] = []
        refused: list[PriceData] = []
        for p in prices:
            wide = p.confidence is not None and p.confidence > p.price * self._max_confidence
            (refused if wide else kept).append(p)
        self._refused = tuple(p.token for p in refused)
        self._refused_total += len(refused)
        return kept, [_too_wide(p, self._max_confidence) for p in refused]


def _too_wide(price: PriceData, limit: Decimal) -> str:
    """Why ``price`` was refused, decimals in positional notation."""
    confidence = price.confidence or Decimal(0)
    share = f"{confidence / price.price:.2%}" if price.price else "all"
    return (
        f"{price.token} price refused: confidence ±{confidence:f} is {share} of "
        f"{price.price:f} (limit {limit:.2%})"
    )
