"""The fan-out: one reader task tails the streams and hands every entry to every client.

:class:`EventHub` owns two background tasks:

- the **reader** tails ``stream:price-updates``, ``stream:trade-events`` and
  ``stream:ui-events`` from the last id it handed out of each: one ``XREAD BLOCK`` over the
  three on a connection of its own (:meth:`EventStream.tail`), which returns as soon as an
  entry arrives (or after ``block_ms`` without any) with the entries in arrival order. It
  hands them to every client's bounded queue without awaiting anything. It survives Redis
  outages with an exponential backoff capped at ``retry_max_s`` (1 s): the tail reconnects
  and resumes after the last entry handed out, so nothing is skipped or sent twice.
- the **pool poller** reads the configured pools' states every ``pool_poll_interval_s`` (one
  MGET) and fans out a ``pool_state`` message for each state that changed.

``connect()`` registers a client and returns the position the fan-out had reached at that
instant: everything after it reaches the client's queue, and :meth:`EventHub.replay` reads
what the client missed up to it. Both tasks are cancelled by :meth:`EventHub.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from solcache._core import PoolStateCache, StreamEntry
from solcache.backoff import Backoff
from solcache.exceptions import ResponseError
from solcache.streams import EventStream, Tail
from solcache.web.client import Client
from solcache.web.client_queue import ClientQueue
from solcache.web.ids import STREAMS, ZERO_ID, id_key
from solcache.web.messages import Message, from_entry, from_pool_state, resync

__all__ = ["EventHub", "HubTotals", "Replay"]

logger = logging.getLogger("solcache.web")

#: Stream name → its index in :data:`STREAMS` (messages carry the index).
_INDEX = {stream: i for i, stream in enumerate(STREAMS)}


@dataclass(slots=True)
class HubTotals:
    """Counters since the hub was created (disconnected clients included)."""

    entries_read: int = 0
    bad_entries: int = 0
    read_errors: int = 0
    pool_poll_errors: int = 0
    clients_connected: int = 0
    messages_sent: int = 0
    messages_replayed: int = 0
    messages_coalesced: int = 0
    messages_dropped: int = 0
    send_timeouts: int = 0
    #: Clients disconnected for more than ``sse_max_unsent_bytes`` not received.
    unsent_bytes_disconnects: int = 0
    #: Clients disconnected for not receiving bytes older than ``sse_max_unsent_age_s``.
    unsent_age_disconnects: int = 0
    replays_truncated: int = 0
    #: Reconnects whose ``Last-Event-ID`` was unknown (not ours, or ahead of its stream).
    unknown_last_event_ids: int = 0


@dataclass(frozen=True, slots=True)
class Replay:
    """What :meth:`EventHub.replay` found: the messages, and the streams it could not replay
    in full with the reason (``replay_limit``, ``trimmed``, ``replay_failed``)."""

    messages: list[Message]
    incomplete: dict[str, str]


class EventHub:
    """Tails the streams once and fans every entry out to the connected clients."""

    def __init__(
        self,
        events: EventStream,
        *,
        pools: PoolStateCache | None = None,
        pool_addresses: Sequence[str] = (),
        client_queue_size: int = 256,
        replay_limit: int = 1000,
        read_count: int | None = None,
        block_ms: int = 1000,
        pool_poll_interval_s: float = 0.1,
        read_timeout_s: float = 2.0,
        replay_timeout_s: float = 5.0,
        retry_min_s: float = 0.1,
        retry_max_s: float = 1.0,
    ) -> None:
        for name, value in {
            "pool_poll_interval_s": pool_poll_interval_s,
            "read_timeout_s": read_timeout_s,
            "replay_timeout_s": replay_timeout_s,
            "retry_min_s": retry_min_s,
            "retry_max_s": retry_max_s,
        }.items():
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if block_ms < 1:
            raise ValueError(f"block_ms must be ≥ 1, got {block_ms}")
        if retry_min_s > retry_max_s:
            raise ValueError(f"retry_min_s ({retry_min_s}) must be ≤ retry_max_s ({retry_max_s})")
        if client_queue_size < 1 or replay_limit < 0:
            raise ValueError("client_queue_size must be ≥ 1 and replay_limit ≥ 0")
        self._events = events
        self._pools = pools
        self._pool_addresses = list(pool_addresses)
        self.client_queue_size = client_queue_size
        self.replay_limit = replay_limit
        # One read adds up to 3 x read_count entries to every queue: keep that well below
        # the queue size, so a client that keeps up never loses anything to batching.
        self._read_count = read_count or max(1, client_queue_size // (2 * len(STREAMS)))
        self._block_ms = block_ms
        self._pool_poll_interval_s = pool_poll_interval_s
        self._read_timeout_s = read_timeout_s
        self._replay_timeout_s = replay_timeout_s
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._clients: set[Client] = set()
        self._position: list[str] | None = None
        self._pool_messages: dict[str, Message] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._totals = HubTotals()
        self.last_error: str | None = None
        self.last_entry_monotonic_s: float | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the reader task runs."""
        return bool(self._tasks) and not self._tasks[0].done()

    @property
    def closing(self) -> bool:
        """True once :meth:`close_clients` or :meth:`stop` was called."""
        return self._closing

    @property
    def position(self) -> tuple[str, ...] | None:
        """The last entry id the reader handled per stream (None until it first reached Redis)."""
        return tuple(self._position) if self._position is not None else None

    async def start(self) -> None:
        """Find where the streams end now, then start the reader (and the pool poller if pools
        are configured). If Redis does not answer within ``read_timeout_s``, the reader keeps
        trying in the background."""
        if self._tasks:
            return
        self._closing = False
        if self._position is None:
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    self._position = await self._initial_position()
            except Exception as exc:
                self._report_error(str(exc) or "stream info timed out")
        self._tasks.append(asyncio.create_task(self._read_loop(), name="solcache-sse-reader"))
        if self._pools is not None and self._pool_addresses:
            self._tasks.append(
                asyncio.create_task(self._pool_loop(self._pools), name="solcache-sse-pools")
            )

    def close_clients(self) -> None:
        """End every client's stream and refuse new ones (the server is shutting down)."""
        self._closing = True
        for client in list(self._clients):
            client.queue.close()

    async def stop(self) -> None:
        """Cancel the background tasks, wait for them, and end every client's stream."""
        self.close_clients()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- clients ---------------------------------------------------------------------------

    def connect(self, since: Sequence[str] | None) -> tuple[Client, tuple[str, ...] | None]:
        """Register a client that has seen the streams up to ``since`` (None: new client).

        Returns the client and the fan-out position at registration: entries after it will
        reach the client's queue; replay ``(since, position]`` with :meth:`replay`.
        """
        position = self.position
        floor: dict[int, tuple[int, int]] = {}
        if position is None:
            ids = list(since) if since is not None else [ZERO_ID] * len(STREAMS)
        elif since is None:
            ids = list(position)
        else:
            ids = list(since)
            for i, (seen, reached) in enumerate(zip(since, position, strict=True)):
                if id_key(seen) > id_key(reached):
                    floor[i] = id_key(seen)
        client = Client(ClientQueue(self.client_queue_size), ids, floor)
        for message in self._pool_messages.values():
            client.queue.put(message)
        if since is not None and position is None:
            client.queue.put(resync("replay_unavailable", STREAMS))
        if self._closing:
            client.queue.close()
        self._clients.add(client)
        self._totals.clients_connected += 1
        return client, position

    def disconnect(self, client: Client) -> None:
        """Unregister ``client`` and fold its counters into the totals."""
        if client not in self._clients:
            return
        self._clients.discard(client)
        client.queue.close()
        self._fold(client)

    def _fold(self, client: Client) -> None:
        t = self._totals
        t.messages_sent += client.sent
        t.messages_replayed += client.replayed
        t.messages_coalesced += client.queue.coalesced
        t.messages_dropped += client.queue.dropped

    def record_send_timeout(self) -> None:
        self._totals.send_timeouts += 1

    def record_fell_behind(self, reason: str) -> None:
        """Count a client disconnected by an unsent limit (``unsent_bytes``, ``unsent_age``)."""
        if reason == "unsent_bytes":
            self._totals.unsent_bytes_disconnects += 1
        else:
            self._totals.unsent_age_disconnects += 1

    def record_unknown_id(self) -> None:
        self._totals.unknown_last_event_ids += 1

    async def known(self, since: Sequence[str]) -> bool:
        """False if an id in ``since`` is ahead of the newest entry of its stream in Redis.

        Such an id was not produced by this Redis (a made-up or far-future id, or one from
        before the stream was deleted): resuming from it would skip every live entry until the
        stream caught up with it. Ids up to the fan-out position are known without asking
        Redis; one ahead of it (the client came from a gateway that had read further) is
        checked with the stream's info. If Redis does not answer, the id counts as unknown: a
        needless ``resync`` costs the client a snapshot reload, a wrong resume its updates.
        """
        position = self.position
        if position is None:
            return True  # nothing to skip: connect() tells the client replay is unavailable
        ahead = [i for i in range(len(STREAMS)) if id_key(since[i]) > id_key(position[i])]
        if not ahead:
            return True
        try:
            async with asyncio.timeout(self._read_timeout_s):
                infos = await asyncio.gather(*(self._events.info(STREAMS[i]) for i in ahead))
        except Exception as exc:
            logger.debug("checking a Last-Event-ID failed: %s", str(exc) or "timed out")
            return False
        return all(
            info.last_id is not None and id_key(since[i]) <= id_key(info.last_id)
            for i, info in zip(ahead, infos, strict=True)
        )

    @property
    def clients(self) -> tuple[Client, ...]:
        """The connected clients."""
        return tuple(self._clients)

    def totals(self) -> HubTotals:
        """Counters so far, connected clients included."""
        live = dataclasses.replace(self._totals)
        for client in self._clients:
            live.messages_sent += client.sent
            live.messages_replayed += client.replayed
            live.messages_coalesced += client.queue.coalesced
            live.messages_dropped += client.queue.dropped
        return live

    # --- replay ----------------------------------------------------------------------------

    async def replay(self, since: Sequence[str], until: Sequence[str]) -> Replay:
        """Entries after ``since`` up to and including ``until`` per stream, oldest first.

        At most ``replay_limit`` messages. :attr:`Replay.incomplete` names the streams whose
        missed entries are not all there, and why: ``replay_limit`` (more than fit),
        ``trimmed`` (``MAXLEN ~`` removed some before they could be replayed) or
        ``replay_failed`` (Redis did not answer within ``replay_timeout_s``).
        """
        wanted = [i for i in range(len(STREAMS)) if id_key(since[i]) < id_key(until[i])]
        if not wanted:
            return Replay([], {})
        cap = self.replay_limit + 1
        try:
            async with asyncio.timeout(self._replay_timeout_s):
                results = await asyncio.gather(
                    *(self._read_range(i, since[i], until[i], cap) for i in wanted)
                )
        except Exception as exc:
            logger.warning("replay after Last-Event-ID failed: %s", str(exc) or "timed out")
            self._totals.replays_truncated += 1
            return Replay([], {STREAMS[i]: "replay_failed" for i in wanted})
        incomplete = {
            STREAMS[i]: reason
            for i, (_, reason) in zip(wanted, results, strict=True)
            if reason is not None
        }
        merged = list(heapq.merge(*(msgs for msgs, _ in results), key=_order))
        if len(merged) > self.replay_limit:
            for m in merged[self.replay_limit :]:
                incomplete.setdefault(STREAMS[m.stream], "replay_limit")
            merged = merged[: self.replay_limit]
        if incomplete:
            self._totals.replays_truncated += 1
        return Replay(merged, {s: incomplete[s] for s in STREAMS if s in incomplete})

    async def _read_range(
        self, i: int, since: str, until: str, cap: int
    ) -> tuple[list[Message], str | None]:
        """Messages in ``(since, until]`` of stream ``i``, at most ``cap`` entries; and None if
        that is all of them, else why not (``replay_limit``, ``trimmed``)."""
        if since != ZERO_ID:
            first = (await self._events.info(STREAMS[i])).first_id
            if first is not None and id_key(first) > id_key(since):
                # `since` itself was trimmed away, and maybe entries after it too.
                rest, _ = await self._read_range(i, ZERO_ID, until, cap)
                return rest, "trimmed"
        out: list[Message] = []
        last, end, seen = since, id_key(until), 0
        while seen < cap:
            entries = await self._events.read(
                STREAMS[i], last, count=min(1000, cap - seen), block_ms=0
            )
            if not entries:
                return out, None
            for entry in entries:
                if id_key(entry.id) > end:
                    return out, None
                last, seen = entry.id, seen + 1
                message = from_entry(i, entry)
                if message is not None:
                    out.append(message)
            if last == until:
                return out, None
        return out, "replay_limit"

    # --- the reader ------------------------------------------------------------------------

    async def _initial_position(self) -> list[str]:
        """The last id of each stream now: the reader starts after it."""
        ids = []
        for stream in STREAMS:
            try:
                info = await self._events.info(stream)
            except ResponseError:  # no such key: the stream does not exist yet
                ids.append(ZERO_ID)
            else:
                ids.append(info.last_id or ZERO_ID)
        return ids

    async def _read_loop(self) -> None:
        backoff = Backoff(self._retry_min_s, self._retry_max_s)
        tail: Tail | None = None
        # The tail's own response timeout is block_ms + the pool's; this one only guards it.
        read_timeout_s = self._read_timeout_s + self._block_ms / 1000
        try:
            while True:
                try:
                    if self._position is None:
                        async with asyncio.timeout(self._read_timeout_s):
                            self._position = await self._initial_position()
                    if tail is None:
                        tail = self._events.tail(
                            STREAMS,
                            self._position,
                            block_ms=self._block_ms,
                            count=self._read_count,
                        )
                    async with asyncio.timeout(read_timeout_s):
                        entries = await tail.next_batch()
                except Exception as exc:
                    self._totals.read_errors += 1
                    self._report_error(str(exc) or "stream read timed out")
                    await asyncio.sleep(backoff.next_delay_s())
                    continue
                if self.last_error is not None:
                    logger.info("stream reader recovered")
                    self.last_error = None
                backoff.reset()
                self._dispatch(entries)
        finally:
            if tail is not None:
                await tail.close()

    def _report_error(self, error: str) -> None:
        if self.last_error is None:
            logger.warning("stream reader failing, retrying with backoff: %s", error)
        self.last_error = error

    def _dispatch(self, entries: Sequence[StreamEntry]) -> None:
        """Hand one read to every client, in the arrival order the tail gave it.

        Synchronous, so no client joins halfway and the position always matches what the
        queues got.
        """
        assert self._position is not None
        if not entries:
            return
        clients = list(self._clients)
        for entry in entries:
            i = _INDEX[entry.stream]
            self._position[i] = entry.id
            message = from_entry(i, entry)
            if message is None:
                self._totals.bad_entries += 1
                continue
            for client in clients:
                client.queue.put(message)
        self._totals.entries_read += len(entries)
        self.last_entry_monotonic_s = time.monotonic()

    # --- the pool poller -------------------------------------------------------------------

    async def _pool_loop(self, pools: PoolStateCache) -> None:
        backoff = Backoff(self._retry_min_s, self._retry_max_s)
        while True:
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    states = await pools.get_many(self._pool_addresses)
            except Exception as exc:
                self._totals.pool_poll_errors += 1
                logger.debug("pool poll failed: %s", exc)
                await asyncio.sleep(backoff.next_delay_s())
                continue
            backoff.reset()
            for address, state in states.items():
                if state is None:
                    continue
                message = from_pool_state(state)
                known = self._pool_messages.get(address)
                if known is not None and known.data == message.data:
                    continue
                self._pool_messages[address] = message
                for client in list(self._clients):
                    client.queue.put(message)
            await asyncio.sleep(self._pool_poll_interval_s)


def _order(message: Message) -> tuple[int, int, int]:
    ms, seq = id_key(message.entry_id)
    return ms, seq, message.stream
