"""A bounded per-client message queue that never blocks the producer.

The fan-out calls :meth:`ClientQueue.put` synchronously for every client; a slow client can
only lose messages, never slow the others. When the queue is full, room is made in this order:

1. drop the oldest keyed message that a newer one with the same key supersedes (a price
   update for a token whose newer price is queued: the latest price per token wins),
2. drop the queued message with the incoming message's key,
3. drop the oldest message without a key (trade events, status changes, …),
4. drop the oldest message.

Steps 1 and 2 are counted as ``coalesced``, steps 3 and 4 as ``dropped``. Every step is O(1)
amortized, and the queue never holds more than ``maxsize`` messages.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from solcache.web.messages import Message

__all__ = ["ClientQueue"]


class ClientQueue:
    """Messages for one client, oldest first, at most ``maxsize`` of them."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: OrderedDict[int, Message] = OrderedDict()
        self._seq = 0
        self._latest: dict[str, int] = {}  # key -> seq of the newest queued message with it
        self._superseded: deque[int] = deque()  # keyed seqs with a newer one queued
        self._plain: deque[int] = deque()  # seqs without a key
        self._ready = asyncio.Event()
        self.closed = False
        #: Keyed messages replaced by a newer one with the same key.
        self.coalesced = 0
        #: Messages lost to make room.
        self.dropped = 0
        #: The most messages ever queued at once.
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> None:
        """Queue ``message``, making room if full. Never blocks; ignored once closed."""
        if self.closed:
            return
        if len(self._items) >= self.maxsize:
            self._make_room(message)
        seq = self._seq
        self._seq += 1
        self._items[seq] = message
        if message.key is None:
            self._plain.append(seq)
        else:
            older = self._latest.get(message.key)
            if older is not None:
                self._superseded.append(older)
            self._latest[message.key] = seq
        self.high_water = max(self.high_water, len(self._items))
        self._ready.set()

    def _make_room(self, incoming: Message) -> None:
        while self._superseded:
            if self._items.pop(self._superseded.popleft(), None) is not None:
                self.coalesced += 1
                return
        if incoming.key is not None:
            own = self._latest.pop(incoming.key, None)
            if own is not None:
                del self._items[own]
                self.coalesced += 1
                return
        while self._plain:
            if self._items.pop(self._plain.popleft(), None) is not None:
                self.dropped += 1
                return
        # Only the newest message of each key is left: more keys than room.
        seq, oldest = self._items.popitem(last=False)
        if oldest.key is not None and self._latest.get(oldest.key) == seq:
            del self._latest[oldest.key]
        self.dropped += 1

    def take_all(self) -> list[Message]:
        """Remove and return every queued message, oldest first."""
        messages = list(self._items.values())
        self._items.clear()
        self._latest.clear()
        self._superseded.clear()
        self._plain.clear()
        self._ready.clear()
        return messages

    async def wait(self, timeout_s: float) -> bool:
        """Wait until a message is queued or the queue is closed; False after ``timeout_s``."""
        if self._items or self.closed:
            return True
        self._ready.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Refuse further messages and wake the waiting writer."""
        self.closed = True
        self._ready.set()
