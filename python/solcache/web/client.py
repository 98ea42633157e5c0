"""One connected SSE client: its queue and the composite id of what it has been sent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from solcache.web.client_queue import ClientQueue
from solcache.web.ids import format_composite, id_key
from solcache.web.messages import Message, encode

__all__ = ["Client"]


class Client:
    """A client's queue plus ``ids``, the last entry id it was sent from each stream.

    ``floor`` holds, per stream index, an id the client already has that is newer than
    anything the gateway has read yet (it saw it from an earlier gateway): live entries up
    to it are skipped, so a resumed client never gets a duplicate.
    """

    def __init__(
        self, queue: ClientQueue, ids: Sequence[str], floor: dict[int, tuple[int, int]]
    ) -> None:
        self.queue = queue
        self.ids = list(ids)
        self._floor = floor
        #: Messages written to the client (replayed ones included).
        self.sent = 0
        #: Messages replayed after a ``Last-Event-ID``.
        self.replayed = 0

    @property
    def composite_id(self) -> str:
        return format_composite(self.ids)

    def render(self, messages: Iterable[Message]) -> str:
        """The SSE text of ``messages``, advancing ``ids`` as each one is written."""
        parts: list[str] = []
        for m in messages:
            if m.stream < 0:
                parts.append(encode(m, None))
                continue
            if self._floor:
                floor = self._floor.get(m.stream)
                if floor is not None:
                    if id_key(m.entry_id) <= floor:
                        continue
                    del self._floor[m.stream]
            self.ids[m.stream] = m.entry_id
            parts.append(encode(m, self.composite_id))
        self.sent += len(parts)
        return "".join(parts)

    def catch_up_to(self, ids: Sequence[str]) -> None:
        """After a replay up to ``ids``: no stream is behind them any more."""
        for i, entry_id in enumerate(ids):
            if id_key(entry_id) > id_key(self.ids[i]):
                self.ids[i] = entry_id
