"""Run async handlers for stream events: one consumer of a group, at-least-once, restartable.

Register handlers per event type (``manager.on(PriceUpdate, handler)`` or
``manager.on("price_update", handler)``) or per stream (``manager.on_stream(stream, handler)``),
then ``await manager.start()`` or use ``async with manager``. One task reads every registered
stream through one :meth:`EventStream.subscribe` subscription and runs the handlers:

- an event-type handler gets the event, a stream handler gets the :class:`StreamEntry` (id,
  stream, deliveries, event);
- the handlers of one entry run concurrently; entries of one stream run in order, streams
  concurrently;
- an entry is acknowledged only when all its handlers succeeded. A handler that raises or times
  out is logged (logger ``solcache``) and counted, and its entry stays pending: the core
  reclaims it after ``claim_min_idle_ms`` and, after ``max_deliveries``, moves it to
  ``stream:dead-letter``. Handlers must therefore be idempotent;
- the loop never ends by itself: on any error (connection lost, timeout, a lost group, a
  server refusing writes with OOM or READONLY, a denied command …) the subscription counts it,
  makes it visible (``state == "retrying"``, ``last_error``, the ``outages`` and ``retries``
  counters), retries with exponential backoff from ``backoff_initial_s`` up to
  ``backoff_max_s`` and resumes from the group's position (this consumer's pending entries
  first). A group that was lost (a restart without persistence, a deleted stream or group, a
  failover) is created again as soon as the server accepts it and counted
  (``group_recreations``): with ``start_id="$"`` entries published before that are not seen by
  the new group, with ``"0"`` they are (see ``docs/streams.md``). ``on_state_change`` is told
  when reading stops and starts working again;
- ``await manager.stop()`` finishes the current batch, acknowledges it and closes the
  subscription.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import math
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

from solcache import exceptions as exc
from solcache._core import StreamEntry, SubscriptionStats, TradingEvent
from solcache.backoff import Backoff
from solcache.streams import EventStream, Subscription
from solcache.subscription_handlers import EntryHandler, HandlerTable, call_handler, handler_name

__all__ = ["EntryHandler", "ManagerStats", "StateListener", "SubscriptionManager"]

logger = logging.getLogger("solcache")

E = TypeVar("E", bound=TradingEvent)

#: Called as ``await listener(state, last_error)`` when the state becomes ``"retrying"`` (with
#: why) or ``"connected"`` again (with None).
StateListener = Callable[[str, str | None], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ManagerStats:
    """Counters of a :class:`SubscriptionManager` since it was created."""

    #: Entries whose handlers all succeeded (then acknowledged).
    handled: int = 0
    #: Deliveries in which a handler raised or timed out (the entry stays pending).
    failed: int = 0
    #: Entries received that had been delivered before (``deliveries > 1``).
    redelivered: int = 0
    #: Non-empty batches processed.
    batches: int = 0
    #: Errors the loop retried after (connection, timeout, lost group, any error reply …).
    errors: int = 0
    #: Entries of a read stream that no handler was registered for (acknowledged).
    ignored: int = 0
    #: Times reading stopped working (each run of failed reads counts once).
    outages: int = 0
    #: Failed reads, each followed by another attempt (part of ``errors``).
    retries: int = 0
    #: Groups created again after they were found gone (NOGROUP).
    group_recreations: int = 0


class SubscriptionManager:
    """Consumer ``consumer`` of ``group`` running registered handlers; see the module doc.

    Every wait is bounded: reads by ``block_ms`` (plus the pool's response timeout), each
    handler call by ``handler_timeout_s``, retries by ``backoff_max_s``, the final flush of
    acknowledgements by ``close_timeout_s`` and :meth:`stop` by its ``timeout_s``.
    """

    def __init__(
        self,
        events: EventStream,
        group: str,
        consumer: str | None = None,
        *,
        start_id: str = "$",
        count: int = 100,
        block_ms: int = 100,
        claim_min_idle_ms: int = 10_000,
        claim_interval_ms: int = 1_000,
        max_deliveries: int = 5,
        handler_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 1.0,
        close_timeout_s: float = 5.0,
        remove_consumer_on_stop: bool = True,
        on_state_change: StateListener | None = None,
    ) -> None:
        for name, value in [
            ("handler_timeout_s", handler_timeout_s),
            ("backoff_initial_s", backoff_initial_s),
            ("backoff_max_s", backoff_max_s),
            ("close_timeout_s", close_timeout_s),
        ]:
            _check_seconds(name, value)
        if backoff_max_s < backoff_initial_s:
            raise exc.InvalidInputError("backoff_max_s must be at least backoff_initial_s")
        for name, number in [
            ("count", count),
            ("block_ms", block_ms),
            ("claim_min_idle_ms", claim_min_idle_ms),
            ("claim_interval_ms", claim_interval_ms),
            ("max_deliveries", max_deliveries),
        ]:
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise exc.InvalidInputError(f"{name} must be an int of at least 1, got {number!r}")
        self._events = events
        self._group = group
        self._consumer = consumer if consumer is not None else default_consumer_name()
        self._start_id = start_id
        self._count = count
        self._block_ms = block_ms
        self._claim_min_idle_ms = claim_min_idle_ms
        self._claim_interval_ms = claim_interval_ms
        self._max_deliveries = max_deliveries
        self._handler_timeout_s = handler_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._close_timeout_s = close_timeout_s
        self._remove_consumer_on_stop = remove_consumer_on_stop
        self._on_state_change = on_state_change
        self._reported_state = "connected"

        self._handlers = HandlerTable()

        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_error: str | None = None
        self._last_read: float | None = None

        self._handled = 0
        self._failed = 0
        self._redelivered = 0
        self._batches = 0
        self._errors = 0
        self._ignored = 0
        self._totals = _SubscriptionTotals()

    # --- registration ---------------------------------------------------------------------

    @overload
    def on(
        self,
        event_type: type[E],
        handler: Callable[[E], Awaitable[object]],
        *,
        stream: str | None = None,
    ) -> None: ...

    @overload
    def on(
        self,
        event_type: str,
        handler: Callable[[TradingEvent], Awaitable[object]],
        *,
        stream: str | None = None,
    ) -> None: ...

    def on(
        self,
        event_type: type[TradingEvent] | str,
        handler: Callable[[Any], Awaitable[object]],
        *,
        stream: str | None = None,
    ) -> None:
        """Call ``await handler(event)`` for each event of ``event_type`` (a class such as
        ``PriceUpdate`` or its type name ``"price_update"``) read from ``stream`` (the type's
        default stream unless named)."""
        self._check_not_running()
        self._handlers.add_type(event_type, handler, stream)

    def on_stream(self, stream: str, handler: EntryHandler) -> None:
        """Call ``await handler(entry)`` for each entry read from ``stream``."""
        self._check_not_running()
        self._handlers.add_stream(stream, handler)

    def _check_not_running(self) -> None:
        if self.running:
            raise RuntimeError("register handlers before start() (or after stop())")

    # --- state ------------------------------------------------------------------------------

    @property
    def group(self) -> str:
        return self._group

    @property
    def consumer(self) -> str:
        return self._consumer

    @property
    def streams(self) -> list[str]:
        """The streams read, in registration order."""
        return self._handlers.streams

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def state(self) -> str:
        """``"stopped"``, ``"connected"``, or ``"retrying"`` (the last read failed; see
        :attr:`last_error`)."""
        if not self.running:
            return "stopped"
        return "retrying" if self.last_error is not None else "connected"

    @property
    def last_error(self) -> str | None:
        """Why the last read failed, until a read succeeds again (None when connected)."""
        if self._last_error is not None:
            return self._last_error
        sub = self._sub
        return sub.last_error if sub is not None and sub.state == "retrying" else None

    @property
    def last_read_monotonic_s(self) -> float | None:
        """``time.monotonic()`` of the last successful read (None before the first)."""
        return self._last_read

    @property
    def subscription(self) -> Subscription | None:
        """The current subscription (``None`` before the first ``start()``)."""
        return self._sub

    @property
    def subscription_stats(self) -> SubscriptionStats | None:
        """The core's counters (delivered, acked, dead-lettered, bad entries) of the current
        subscription."""
        return self._sub.stats if self._sub is not None else None

    @property
    def stats(self) -> ManagerStats:
        sub = self._totals.with_current(self._sub)
        return ManagerStats(
            handled=self._handled,
            failed=self._failed,
            redelivered=self._redelivered,
            batches=self._batches,
            errors=self._errors + sub.retries,
            ignored=self._ignored,
            outages=sub.outages,
            retries=sub.retries,
            group_recreations=sub.group_recreations,
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the groups (idempotent) and start the reading task.

        Raises the error of the first ``ensure_group`` if Redis cannot be reached now.
        """
        if self.running:
            raise RuntimeError("the subscription manager is already running")
        if not self._handlers.streams:
            raise RuntimeError("register at least one handler before start()")
        await self._ensure_groups()
        sub = self._events.subscribe(
            self._handlers.streams,
            self._group,
            self._consumer,
            count=self._count,
            block_ms=self._block_ms,
            claim_min_idle_ms=self._claim_min_idle_ms,
            claim_interval_ms=self._claim_interval_ms,
            max_deliveries=self._max_deliveries,
            start_id=self._start_id,
            retry_initial_s=self._backoff_initial_s,
            retry_max_s=self._backoff_max_s,
        )
        self._totals = self._totals.with_current(self._sub)  # a restart keeps the counts
        self._sub = sub
        self._stopping = asyncio.Event()
        self._last_error = None
        self._task = asyncio.create_task(
            self._run(sub), name=f"solcache-subscription:{self._group}:{self._consumer}"
        )

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the current batch, acknowledge it, close the subscription and stop.

        If that takes longer than ``timeout_s`` the task is cancelled: entries whose handlers
        had not finished stay pending and are redelivered.

        With ``remove_consumer_on_stop`` (the default) the consumer then leaves its groups
        (``XGROUP DELCONSUMER``), so restarts under new names do not pile up dead consumers; a
        consumer that still holds pending entries is kept so they stay claimable. Failing to
        remove it (Redis down) is logged, never raised.
        """
        _check_seconds("timeout_s", timeout_s)
        task = self._task
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            logger.warning(
                "subscription %s/%s did not stop within %.1f s; cancelling it",
                self._group,
                self._consumer,
                timeout_s,
            )
            task.cancel()
            await asyncio.wait({task}, timeout=self._close_timeout_s + 1.0)
        self._task = None
        if self._remove_consumer_on_stop:
            await self._remove_consumer()

    async def _remove_consumer(self) -> None:
        for stream in self._handlers.streams:
            try:
                removed = await asyncio.wait_for(
                    self._events.delete_consumer(stream, self._group, self._consumer),
                    self._close_timeout_s,
                )
            except (exc.SolcacheError, TimeoutError) as e:
                logger.warning(
                    "subscription %s/%s: could not leave %s: %s",
                    self._group,
                    self._consumer,
                    stream,
                    e,
                )
                continue
            if not removed:
                logger.info(
                    "subscription %s/%s: kept in %s, it still holds pending entries",
                    self._group,
                    self._consumer,
                    stream,
                )

    async def __aenter__(self) -> SubscriptionManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the loop ----------------------------------------------------------------------------

    async def _ensure_groups(self) -> None:
        for stream in self._handlers.streams:
            await self._events.ensure_group(stream, self._group, self._start_id)

    async def _run(self, sub: Subscription) -> None:
        # The subscription retries failed reads itself; this backoff is for anything else.
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        try:
            while not self._stopping.is_set():
                try:
                    batch = await sub.next_batch()
                    if sub.state == "connected":
                        self._last_read = time.monotonic()
                    if self._last_error is not None:
                        logger.warning(
                            "subscription %s/%s: reading again", self._group, self._consumer
                        )
                        self._last_error = None
                    backoff.reset()
                    await self._report_state()
                    if batch:
                        await self._process(sub, batch)
                except Exception as e:  # whatever it is, retry: the loop must not end
                    self._errors += 1
                    message = str(e) or type(e).__name__
                    delay_s = backoff.next_delay_s()
                    if message != self._last_error:
                        logger.warning(
                            "subscription %s/%s: %s; retrying with backoff (now %.2f s)",
                            self._group,
                            self._consumer,
                            message,
                            delay_s,
                            exc_info=None if isinstance(e, exc.SolcacheError) else e,
                        )
                    self._last_error = message
                    await self._report_state()
                    await self._pause(delay_s)
        finally:
            await self._close(sub)

    async def _report_state(self) -> None:
        """Tell ``on_state_change`` when reading stopped or started working again."""
        state = self.state
        if state == self._reported_state or state == "stopped":
            return
        self._reported_state = state
        if self._on_state_change is None:
            return
        try:
            await self._on_state_change(state, self.last_error)
        except Exception as e:  # a listener's failure never stops the consumer
            logger.warning(
                "subscription %s/%s: on_state_change failed: %r", self._group, self._consumer, e
            )

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if ``stop()`` is called meanwhile."""
        with contextlib.suppress(builtins.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _close(self, sub: Subscription) -> None:
        """Send the acknowledgements still queued; on failure those entries are redelivered."""
        try:
            await asyncio.wait_for(sub.close(), self._close_timeout_s)
        except (exc.SolcacheError, builtins.TimeoutError) as e:
            self._errors += 1
            logger.warning(
                "subscription %s/%s: acknowledgements not sent on close (%s); "
                "those entries will be delivered again",
                self._group,
                self._consumer,
                e,
            )

    async def _process(self, sub: Subscription, batch: list[StreamEntry]) -> None:
        self._batches += 1
        by_stream: dict[str, list[StreamEntry]] = {}
        for entry in batch:
            by_stream.setdefault(entry.stream, []).append(entry)
        if len(by_stream) == 1:
            await self._process_in_order(sub, batch)
        else:
            await asyncio.gather(*(self._process_in_order(sub, e) for e in by_stream.values()))

    async def _process_in_order(self, sub: Subscription, entries: list[StreamEntry]) -> None:
        for entry in entries:
            if await self._handle(entry):
                sub.ack(entry)  # sent with the next read, or by close()

    async def _handle(self, entry: StreamEntry) -> bool:
        """Run the entry's handlers; True when it may be acknowledged."""
        if entry.deliveries > 1:
            self._redelivered += 1
        handlers = self._handlers.for_entry(entry)
        if not handlers:
            if entry.event is None:  # the core dead-letters these; never drop one here
                self._failed += 1
                logger.error(
                    "%s %s cannot be decoded and has no stream handler: %s",
                    entry.stream,
                    entry.id,
                    entry.error,
                )
                return False
            self._ignored += 1
            return True
        timeout_s = self._handler_timeout_s
        if len(handlers) == 1:
            results: list[BaseException | None] = [
                await call_handler(handlers[0], entry, timeout_s)
            ]
        else:
            results = list(
                await asyncio.gather(*(call_handler(h, entry, timeout_s) for h in handlers))
            )
        failures = [(h, r) for h, r in zip(handlers, results, strict=True) if r is not None]
        if not failures:
            self._handled += 1
            return True
        self._failed += 1
        for handler, error in failures:
            logger.error(
                "handler %s failed on %s %s (delivery %d); the entry stays pending: %r",
                handler_name(handler),
                entry.stream,
                entry.id,
                entry.deliveries,
                error,
                exc_info=error,
            )
        return False


@dataclass(frozen=True, slots=True)
class _SubscriptionTotals:
    """The core counters of the subscriptions a restarted manager closed."""

    outages: int = 0
    retries: int = 0
    group_recreations: int = 0

    def with_current(self, sub: Subscription | None) -> _SubscriptionTotals:
        """These totals plus the counters of ``sub``."""
        if sub is None:
            return self
        st = sub.stats
        return _SubscriptionTotals(
            self.outages + st.outages,
            self.retries + st.retries,
            self.group_recreations + st.group_recreations,
        )


def default_consumer_name() -> str:
    """``<hostname>-<pid>``, restricted to the characters a consumer name may hold."""
    name = f"{socket.gethostname()}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9:._-]", "_", name)[:128]


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise exc.InvalidInputError(f"{name} must be a number of seconds, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise exc.InvalidInputError(f"{name} must be positive and finite, got {value!r}")
