"""Publishes a simulated desk's trades, positions and status, so the simulated market of
`solcache serve` (the demo) carries every event type, not only prices."""

from __future__ import annotations

import logging
import time

from solcache._core import PositionUpdate, SystemStatus, TradeExecuted
from solcache.exceptions import SolcacheError
from solcache.services.periodic import Periodic
from solcache.sources.base import PoolSource, PriceSource
from solcache.sources.simulated import SimulatedPriceSource
from solcache.sources.simulated_pools import SimulatedPoolSource
from solcache.sources.simulated_trades import SimulatedTradeSource
from solcache.streams import EventStream

__all__ = ["TradeSimulator", "simulated_desk"]

logger = logging.getLogger("solcache")

_Event = TradeExecuted | PositionUpdate | SystemStatus


class TradeSimulator:
    """Each tick (``1 / source step``): the source's new trades and positions go to
    ``stream:trade-events`` in one ``publish_many``; every ``status_every_s`` a
    :class:`SystemStatus` (``healthy``, with the trade count and the positions) goes to
    ``stream:ui-events``, and ``starting`` / ``stopped`` around the run.

    Events Redis did not take are kept (at most ``max_unsent``, the oldest dropped first and
    counted in :attr:`dropped`) and sent first on the next tick; errors are counted and the
    last one is in :attr:`last_error` until a publish succeeds.
    """

    component = "trade-simulator"

    def __init__(
        self,
        source: SimulatedTradeSource,
        events: EventStream,
        *,
        step_s: float = 0.5,
        status_every_s: float = 5.0,
        max_unsent: int = 1000,
    ) -> None:
        if not (step_s > 0 and status_every_s > 0 and max_unsent >= 1):
            raise ValueError("step_s and status_every_s must be > 0, max_unsent >= 1")
        self._source = source
        self._events = events
        self._status_every_s = status_every_s
        self._max_unsent = max_unsent
        self._loop = Periodic(self.component, 1.0 / step_s, self._tick)
        self._unsent: list[_Event] = []
        self._next_status = 0.0
        self._dropping = False
        self.ticks = 0
        self.published = 0
        self.errors = 0
        self.dropped = 0
        self.last_error = ""

    @property
    def running(self) -> bool:
        return self._loop.running

    def status(self) -> dict[str, object]:
        """Counters and positions for ``/api/status``."""
        return {
            "ticks": self.ticks,
            "trades": self._source.trades,
            "events_published": self.published,
            "unsent": len(self._unsent),
            "dropped": self.dropped,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    async def start(self) -> None:
        """Publish ``starting`` (kept for later if Redis refuses it) and start ticking."""
        self._queue([SystemStatus(self.component, "starting", "simulated trades")])
        await self._flush()
        self._next_status = time.monotonic() + self._status_every_s
        self._loop.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the current tick, stop, publish ``stopped`` (with anything still unsent)."""
        await self._loop.stop(timeout_s)
        self._queue([SystemStatus(self.component, "stopped", self._summary())])
        await self._flush()

    async def _tick(self) -> None:
        self.ticks += 1
        new: list[_Event] = list(self._source.step())
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + self._status_every_s
            new.append(SystemStatus(self.component, "healthy", self._summary()))
        self._queue(new)
        await self._flush()

    def _queue(self, events: list[_Event]) -> None:
        self._unsent.extend(events)
        excess = len(self._unsent) - self._max_unsent
        if excess > 0:
            del self._unsent[:excess]
            if not self._dropping:  # once per outage; the count is in status()
                logger.warning(
                    "%s: Redis refuses events: keeping the newest %d, dropping older ones",
                    self.component,
                    self._max_unsent,
                )
            self._dropping = True
            self.dropped += excess

    async def _flush(self) -> None:
        if not self._unsent:
            return
        try:
            await self._events.publish_many(self._unsent)
        except SolcacheError as e:
            self.errors += 1
            if str(e) != self.last_error:
                logger.warning("%s: cannot publish yet: %s", self.component, e)
            self.last_error = str(e)
            return
        self.published += len(self._unsent)
        self._unsent.clear()
        self.last_error = ""
        self._dropping = False

    def _summary(self) -> str:
        held = ", ".join(
            f"{token} {p.amount:f} (PnL {p.pnl_usd:f} USD)"  # positional, never 1E-7
            for token, p in sorted(self._source.positions().items())
        )
        return f"{self._source.trades} trades; positions: {held or 'none'}"[:1000]


def simulated_desk(
    prices: PriceSource, pools: PoolSource, events: EventStream, *, seed: int | None = None
) -> TradeSimulator | None:
    """The trade simulator of a fully simulated market (simulated prices and pools), trading
    the pools' pairs at the simulated prices; None otherwise: next to real prices, made-up
    trades would pass for real ones."""
    if not isinstance(prices, SimulatedPriceSource) or not isinstance(pools, SimulatedPoolSource):
        return None
    source = SimulatedTradeSource(
        pools.specs, seed=seed, reference_prices=lambda: prices.last_prices
    )
    return TradeSimulator(source, events)
