"""A decoder for Server-Sent Events (the ``text/event-stream`` format), fed one line at a time.

Lines starting with ``:`` are comments (Hermes sends ``: No update available`` and empty
keep-alive comments); ``data:`` lines accumulate until a blank line ends the event.
"""

from __future__ import annotations

from dataclasses import dataclass

from solcache.sources.base import SourceError

__all__ = ["SseDecoder", "SseEvent"]


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event."""

    #: The ``event:`` field, ``message`` when absent (Hermes uses ``error`` for failures).
    event: str
    #: The ``data:`` lines joined with newlines.
    data: str
    #: The ``id:`` field, if any.
    id: str | None = None


class SseDecoder:
    """Turns lines (without their line endings) into events, following the WHATWG rules."""

    def __init__(self, max_event_chars: int = 4 * 1024 * 1024) -> None:
        self._max_event_chars = max_event_chars
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None
        #: Comment lines seen so far.
        self.comments = 0

    def feed(self, line: str) -> SseEvent | None:
        """Consume one line; return the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._size += len(value) + 1
            if self._size > self._max_event_chars:
                raise SourceError(f"SSE event larger than {self._max_event_chars} characters")
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        # `retry:` and unknown fields are ignored: reconnection is the caller's policy.
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        if not data:
            return None
        return SseEvent(event=event or "message", data="\n".join(data), id=self._id)
