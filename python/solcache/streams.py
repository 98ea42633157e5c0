"""Event streams: publishing, tailing, and consumer-group subscriptions as async iterators."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Sequence

from solcache import _core
from solcache._core import StreamEntry, SubscriptionStats
from solcache.exceptions import ConnectionError, InvalidInputError

__all__ = ["EventStream", "Subscription", "Tail"]


class EventStream(_core.EventStream):
    """Redis Streams for trading events; see ``docs/key-schema.md`` for streams and routing.

    ``publish`` routes by event type unless a stream is named; every XADD trims the stream
    to about ``maxlen`` entries (``MAXLEN ~``).
    """

    def tail(
        self,
        streams: str | Sequence[str],
        from_ids: str | Sequence[str] = "$",
        *,
        block_ms: int = 1_000,
        count: int = 100,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 2.0,
        give_up_after_s: float | None = None,
    ) -> Tail:
        """New entries of ``streams``, in arrival order, as an async iterator of
        :class:`StreamEntry` (each names its ``stream``); no consumer group, nothing to
        acknowledge.

        ``from_ids`` is one id for every stream or one per stream: ``"$"`` (entries after the
        stream's last one when the tail connects), ``"0"`` (everything the stream holds) or an
        entry id (entries after it). One ``XREAD BLOCK`` over all streams waits up to
        ``block_ms`` on a connection the tail keeps (``solcache-tail`` in ``CLIENT LIST``) and
        reads up to ``count`` entries per stream. Across streams, entries come in entry-id
        order (to the millisecond); see ``docs/streams.md``.

        The iterator rides through outages: a lost connection or a timeout is retried after
        ``retry_initial_s``, doubling up to ``retry_max_s``, while ``state`` says
        ``"retrying"``; it then resumes after the last entry it returned, with no gap and no
        duplicate. Only when ``give_up_after_s`` is set and an outage lasts that long does the
        loop raise the last error. ``next_batch()`` raises every error instead. Close the tail
        with ``close()`` or ``async with``.
        """
        names = [streams] if isinstance(streams, str) else list(streams)
        ids = [from_ids] * len(names) if isinstance(from_ids, str) else list(from_ids)
        core = self._tail(
            names,
            ids,
            count=count,
            block_ms=block_ms,
            retry_initial_ms=_ms("retry_initial_s", retry_initial_s),
            retry_max_ms=_ms("retry_max_s", retry_max_s),
            give_up_after_ms=None
            if give_up_after_s is None
            else _ms("give_up_after_s", give_up_after_s),
        )
        return Tail(core)

    def subscribe(
        self,
        streams: str | Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 100,
        claim_min_idle_ms: int = 10_000,
        claim_interval_ms: int = 1_000,
        max_deliveries: int = 5,
        start_id: str = "$",
        retry_initial_s: float = 0.1,
        retry_max_s: float = 2.0,
        give_up_after_s: float | None = None,
    ) -> Subscription:
        """Read ``streams`` as ``consumer`` of ``group``.

        Delivery is at least once: an entry is acknowledged only after the loop body that got it
        has finished (the iterator acknowledges it when asked for the next one). Entries left
        pending longer than ``claim_min_idle_ms`` (a crashed consumer's) are reclaimed; one
        delivered more than ``max_deliveries`` times goes to ``stream:dead-letter``.

        The subscription rides through outages (see ``docs/streams.md``): a failed read is
        retried after ``retry_initial_s``, doubling up to ``retry_max_s``, while ``state`` says
        ``"retrying"``; it then reads this consumer's pending entries first. Only when
        ``give_up_after_s`` is set and an outage lasts that long does the loop raise the last
        error. A missing group (never created, or lost with a restart without persistence) is
        created at ``start_id``: ``"$"`` skips what the stream already holds, ``"0"`` replays
        it; an entry this consumer acknowledged is never delivered again.
        """
        names = [streams] if isinstance(streams, str) else list(streams)
        core = self._subscription(
            names,
            group,
            consumer,
            count=count,
            block_ms=block_ms,
            claim_min_idle_ms=claim_min_idle_ms,
            claim_interval_ms=claim_interval_ms,
            max_deliveries=max_deliveries,
            start_id=start_id,
            retry_initial_ms=_ms("retry_initial_s", retry_initial_s),
            retry_max_ms=_ms("retry_max_s", retry_max_s),
            give_up_after_ms=None
            if give_up_after_s is None
            else _ms("give_up_after_s", give_up_after_s),
        )
        return Subscription(core)


def _ms(name: str, seconds: float) -> int:
    """Seconds as whole milliseconds (at least 1), refusing what is not a positive number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidInputError(f"{name} must be a number of seconds, got {seconds!r}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidInputError(f"{name} must be positive and finite, got {seconds!r}")
    return max(1, round(seconds * 1000))


class Subscription:
    """An async iterator of :class:`StreamEntry` for one consumer of a group.

    ``async for entry in sub`` acknowledges each entry when the next one is requested, i.e.
    after the loop body finished with it; leaving ``async with sub`` without an exception
    (e.g. by ``break``) acknowledges the last one too. ``batches()`` does the same per
    batch. For explicit control, use ``next_batch()`` and ``ack()``. Acknowledgements ride
    along with the next read, so they cost no extra round trip; ``close()`` sends any that
    are still queued. The iterator and ``batches()`` read the next batch while the loop body
    handles the current one (so a batch's acknowledgements ride one read later); a batch read
    ahead when the subscription closes stays pending for this consumer and is delivered again
    (to it first when it comes back, or to another after ``claim_min_idle_ms``).

    Outages do not end the loop: while Redis is unreachable (or the group is being created
    again) ``state`` is ``"retrying"`` and the iterator waits; see ``EventStream.subscribe``.
    """

    def __init__(self, core: _core.CoreSubscription) -> None:
        self._core = core
        self._buffer: deque[StreamEntry] = deque()
        # Entries handled, acknowledged with the next read: the core reads their stream and id.
        self._acks: list[StreamEntry] = []
        self._current: StreamEntry | None = None
        self._closed = False

    @property
    def stats(self) -> SubscriptionStats:
        """Delivered, redelivered, acknowledged and dead-lettered counts, outages, retries and
        group re-creations so far."""
        return self._core.stats()

    @property
    def state(self) -> str:
        """``"connected"`` (the last read succeeded), ``"retrying"`` (it failed; see
        :attr:`last_error`) or ``"stopped"`` (closed, or it gave up)."""
        return "stopped" if self._closed else self._core.state()

    @property
    def last_error(self) -> str | None:
        """Why the last read failed, while :attr:`state` is ``"retrying"``."""
        return self._core.last_error()

    @property
    def closed(self) -> bool:
        return self._closed

    def ack(self, *entries: StreamEntry) -> None:
        """Mark entries processed; the XACK goes out with the next read or ``close()``."""
        self._acks.extend(entries)

    async def next_batch(self) -> list[StreamEntry]:
        """Send queued acknowledgements, then read the next batch (empty if none arrived)."""
        return await self._next_batch(read_ahead=False)

    async def _next_batch(self, read_ahead: bool) -> list[StreamEntry]:
        if self._closed:
            raise ConnectionError("the subscription is closed")
        acks, self._acks = self._acks, []
        try:
            if read_ahead:
                ready = self._core.take_ready(acks)  # no round through the runtime
                if ready is not None:
                    return ready
            return await self._core.next_batch(acks, read_ahead)
        except BaseException:
            self._acks = acks + self._acks  # nothing was acknowledged: keep them queued
            raise

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamEntry:
        # This runs once per entry: ack() inlined, attributes read once.
        current = self._current
        if current is not None:
            self._acks.append(current)
        buffer = self._buffer
        if not buffer:
            self._current = None
            while not buffer:
                if self._closed:
                    raise StopAsyncIteration
                buffer.extend(await self._next_batch(read_ahead=True))
        current = self._current = buffer.popleft()
        return current

    async def batches(self) -> AsyncIterator[list[StreamEntry]]:
        """Yield non-empty batches; each is acknowledged when the next one is requested."""
        while not self._closed:
            batch = await self._next_batch(read_ahead=True)
            if batch:
                yield batch
                self.ack(*batch)

    async def close(self) -> None:
        """Send queued acknowledgements, close the read connection and stop. An entry whose
        loop body did not finish is not acknowledged: it is redelivered (at least once)."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        acks, self._acks = self._acks, []
        await self._core.close(acks)  # also closes its blocking-read connection

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Leaving the block normally (including `break`) means the last entry was handled.
        if exc_type is None and self._current is not None:
            self.ack(self._current)
            self._current = None
        await self.close()


class Tail:
    """An async iterator of :class:`StreamEntry` over several streams, in arrival order; see
    :meth:`EventStream.tail`.

    ``async for entry in tail`` waits for entries without end, riding through outages;
    ``next_batch()`` returns what one read brought (empty after ``block_ms`` without any) and
    raises every error. ``close()`` (or leaving ``async with``) closes its connection and ends
    the iteration.
    """

    def __init__(self, core: _core.CoreTail) -> None:
        self._core = core
        self._buffer: deque[StreamEntry] = deque()
        self._closed = False

    @property
    def streams(self) -> list[str]:
        """The streams tailed, in the order given."""
        return self._core.streams

    @property
    def positions(self) -> dict[str, str]:
        """The last id read per stream, entries the iterator still buffers included (``"$"``
        until the first connection pinned it)."""
        return dict(zip(self.streams, self._core.positions, strict=True))

    @property
    def state(self) -> str:
        """``"connected"``, ``"retrying"`` (the latest read failed) or ``"stopped"`` (closed)."""
        return self._core.state

    @property
    def entries(self) -> int:
        """Entries read so far."""
        return self._core.entries

    @property
    def outages(self) -> int:
        """Times reading started failing (a run of failures counts once)."""
        return self._core.outages

    @property
    def retries(self) -> int:
        """Failed reads that were tried again."""
        return self._core.retries

    @property
    def connections_opened(self) -> int:
        """Connections opened so far (1 + the reconnects)."""
        return self._core.connections_opened

    @property
    def last_error(self) -> str | None:
        """The latest failure, until a read succeeds."""
        return self._core.last_error

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> None:
        """Connect now, pinning ``"$"`` to each stream's last entry (else the first read does)."""
        if self._closed:
            raise ConnectionError("the tail is closed")
        await self._core.open()

    async def next_batch(self) -> list[StreamEntry]:
        """The next entries in arrival order; empty when none arrived within ``block_ms``."""
        if self._closed:
            raise ConnectionError("the tail is closed")
        return await self._core.next_batch()

    def __aiter__(self) -> Tail:
        return self

    async def __anext__(self) -> StreamEntry:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            batch = await self._core.next_batch(riding=True)
            if self._closed:  # closed while the read waited: its entries go with the tail
                raise StopAsyncIteration
            self._buffer.extend(batch)
        return self._buffer.popleft()

    async def close(self) -> None:
        """Close the connection and end the iteration (entries read but not yet returned by
        the iterator are dropped)."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        await self._core.close()

    async def __aenter__(self) -> Tail:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
