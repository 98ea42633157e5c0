"""The handlers of a :class:`~solcache.subscriptions.SubscriptionManager`: which ones an entry
gets, and one handler call bounded by its timeout."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable
from typing import Any

from solcache import exceptions as exc
from solcache._core import EVENT_TYPES, StreamEntry, TradingEvent

__all__ = ["EntryHandler", "HandlerTable", "call_handler", "handler_name"]

#: A stream handler: called with each entry of the stream.
EntryHandler = Callable[[StreamEntry], Awaitable[object]]

_TYPE_NAMES: dict[type[TradingEvent], str] = {cls: name for name, (cls, _) in EVENT_TYPES.items()}
_DEFAULT_STREAMS: dict[str, str] = {name: stream for name, (_, stream) in EVENT_TYPES.items()}


class HandlerTable:
    """Handlers registered per stream and per (stream, event type), in registration order."""

    def __init__(self) -> None:
        self._streams: dict[str, None] = {}  # an ordered set
        self._by_stream: dict[str, list[EntryHandler]] = {}
        self._by_type: dict[tuple[str, str], list[EntryHandler]] = {}

    @property
    def streams(self) -> list[str]:
        """The streams that have a handler, in registration order."""
        return list(self._streams)

    def add_type(
        self,
        event_type: type[TradingEvent] | str,
        handler: Callable[[Any], Awaitable[object]],
        stream: str | None,
    ) -> None:
        """``handler(event)`` for each event of ``event_type`` (a concrete event class or its
        type name) read from ``stream`` (the type's default stream when None)."""
        if isinstance(event_type, str):
            type_name = event_type
            if type_name not in _DEFAULT_STREAMS:
                raise exc.InvalidInputError(f"unknown event type {type_name!r}")
        else:
            found = _TYPE_NAMES.get(event_type)
            if found is None:
                known = ", ".join(c.__name__ for c in _TYPE_NAMES)
                raise exc.InvalidInputError(
                    f"register a concrete event class ({known}) or its type name, "
                    f"not {event_type!r}"
                )
            type_name = found
        target = stream if stream is not None else _DEFAULT_STREAMS[type_name]

        async def call(entry: StreamEntry) -> object:
            return await handler(entry.event)

        call.__qualname__ = handler_name(handler)
        self._by_type.setdefault((target, type_name), []).append(call)
        self._streams[target] = None

    def add_stream(self, stream: str, handler: EntryHandler) -> None:
        """``handler(entry)`` for each entry read from ``stream``."""
        self._by_stream.setdefault(stream, []).append(handler)
        self._streams[stream] = None

    def for_entry(self, entry: StreamEntry) -> list[EntryHandler]:
        """The handlers of ``entry``: its stream's, then its event type's (if it decoded)."""
        handlers = list(self._by_stream.get(entry.stream, ()))
        if entry.event is not None:
            handlers.extend(self._by_type.get((entry.stream, entry.event.type), ()))
        return handlers


async def call_handler(
    handler: EntryHandler, entry: StreamEntry, timeout_s: float
) -> BaseException | None:
    """Run one handler within ``timeout_s`` seconds; return what it raised, if anything (a
    ``TimeoutError`` when it ran out of time). Re-raises only the cancellation of the caller."""
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            await handler(entry)
    except builtins.TimeoutError as e:
        if not deadline.expired():
            return e  # raised by the handler itself
        return builtins.TimeoutError(f"timed out after {timeout_s} s")
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the manager itself is being cancelled
        return asyncio.CancelledError("the handler was cancelled")
    except Exception as e:
        return e
    return None


def handler_name(handler: Callable[..., object]) -> str:
    """The handler's qualified name (for logs), or its repr."""
    return getattr(handler, "__qualname__", None) or repr(handler)
