"""Event streams: publishing, tailing, and consumer-group subscriptions as async iterators."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence

from solcache import _core
from solcache._core import StreamEntry, SubscriptionStats
from solcache.exceptions import ConnectionError

__all__ = ["EventStream", "Subscription"]


class EventStream(_core.EventStream):
    """Redis Streams for trading events; see ``docs/key-schema.md`` for streams and routing.

    ``publish`` routes by event type unless a stream is named; every XADD trims the stream
    to about ``maxlen`` entries (``MAXLEN ~``).
    """

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
    ) -> Subscription:
        """Read ``streams`` as ``consumer`` of ``group`` (create the group with ``ensure_group``).

        Delivery is at least once: an entry is acknowledged only after the loop body that got it
        has finished (the iterator acknowledges it when asked for the next one). Entries left
        pending longer than ``claim_min_idle_ms`` (a crashed consumer's) are reclaimed; one
        delivered more than ``max_deliveries`` times goes to ``stream:dead-letter``.
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
        )
        return Subscription(core)


class Subscription:
    """An async iterator of :class:`StreamEntry` for one consumer of a group.

    ``async for entry in sub`` acknowledges each entry when the next one is requested, i.e.
    after the loop body finished with it; leaving ``async with sub`` without an exception
    (e.g. by ``break``) acknowledges the last one too. ``batches()`` does the same per
    batch. For explicit control, use ``next_batch()`` and ``ack()``. Acknowledgements ride
    along with the next read, so they cost no extra round trip; ``close()`` sends any that
    are still queued.
    """

    def __init__(self, core: _core.CoreSubscription) -> None:
        self._core = core
        self._buffer: deque[StreamEntry] = deque()
        self._acks: list[tuple[str, str]] = []
        self._current: StreamEntry | None = None
        self._closed = False

    @property
    def stats(self) -> SubscriptionStats:
        """Delivered, redelivered, acknowledged and dead-lettered counts so far."""
        return self._core.stats()

    @property
    def closed(self) -> bool:
        return self._closed

    def ack(self, *entries: StreamEntry) -> None:
        """Mark entries processed; the XACK goes out with the next read or ``close()``."""
        self._acks.extend((e.stream, e.id) for e in entries)

    async def next_batch(self) -> list[StreamEntry]:
        """Send queued acknowledgements, then read the next batch (empty if none arrived)."""
        if self._closed:
            raise ConnectionError("the subscription is closed")
        acks, self._acks = self._acks, []
        try:
            return await self._core.next_batch(acks)
        except BaseException:
            self._acks = acks + self._acks  # nothing was acknowledged: keep them queued
            raise

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamEntry:
        if self._current is not None:
            self.ack(self._current)
            self._current = None
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer.extend(await self.next_batch())
        self._current = self._buffer.popleft()
        return self._current

    async def batches(self) -> AsyncIterator[list[StreamEntry]]:
        """Yield non-empty batches; each is acknowledged when the next one is requested."""
        while not self._closed:
            batch = await self.next_batch()
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
