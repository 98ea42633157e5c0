"""The live status line `solcache serve` keeps at the bottom of a terminal.

It is one line rewritten in place (``\\r``). A log record written while it is shown would be
glued onto it, so while it is open every logging handler that writes to a stream clears the
line first; the next update draws it again below the record.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Protocol, TextIO

__all__ = ["StatusLine", "TickRate", "render"]

#: Moves to the start of the line and erases it.
_CLEAR = "\r\x1b[K"


class _ServiceStats(Protocol):
    @property
    def ticks(self) -> int: ...
    @property
    def events_published(self) -> int: ...
    @property
    def degraded(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class _Latency(Protocol):
    @property
    def p99_us(self) -> float: ...


class TickRate:
    """Ticks per second over the last ``window_s`` seconds of samples.

    None until the samples span ``min_span_s``: a rate over a few milliseconds (the first
    frame, right after start) says nothing and can come out at hundreds of thousands of Hz.
    """

    def __init__(self, window_s: float = 5.0, min_span_s: float = 1.0) -> None:
        if not 0 < min_span_s <= window_s:
            raise ValueError("need 0 < min_span_s <= window_s")
        self._window_s = window_s
        self._min_span_s = min_span_s
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, now_s: float, ticks: int) -> float | None:
        """Add the tick count seen at ``now_s`` (monotonic seconds); return the rate."""
        self._samples.append((now_s, ticks))
        # Keep one sample older than the window, so the span covers the whole window.
        while len(self._samples) > 2 and now_s - self._samples[1][0] >= self._window_s:
            self._samples.popleft()
        first_s, first_ticks = self._samples[0]
        span_s = now_s - first_s
        if span_s < self._min_span_s:
            return None
        return (ticks - first_ticks) / span_s


class StatusLine:
    """``[elapsed] state · rate · published · consumed · write p99`` on ``out``, in place.

    While it is open (from construction until :meth:`close`), log records written by stream
    handlers start on a line of their own. Not enabled (``enabled=False``, e.g. ``--quiet``
    or not a terminal): every method does nothing.
    """

    def __init__(self, out: TextIO, *, enabled: bool = True) -> None:
        self._out = out
        self._enabled = enabled
        self._shown = False
        self._lock = threading.Lock()  # log records may come from any thread
        self._rate = TickRate()
        self._handlers: list[logging.Handler] = []
        if enabled:
            self._attach()

    def update(
        self,
        elapsed_s: float,
        stats: _ServiceStats,
        consumed: int,
        metrics: Mapping[str, _Latency],
        *,
        now_s: float | None = None,
    ) -> None:
        """Draw the line for the price service's ``stats`` ``elapsed_s`` after start."""
        if not self._enabled:
            return
        rate = self._rate.update(elapsed_s if now_s is None else now_s, stats.ticks)
        self.show(render(elapsed_s, stats, rate, consumed, metrics))

    def show(self, text: str) -> None:
        """Replace the line with ``text``."""
        if not self._enabled:
            return
        with self._lock:
            self._out.write(_CLEAR + text)
            self._out.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the line (the cursor stays at its start)."""
        with self._lock:
            if self._shown:
                self._out.write(_CLEAR)
                self._out.flush()
                self._shown = False

    def close(self) -> None:
        """Erase the line and stop watching the log handlers."""
        if not self._enabled:
            return
        self.clear()
        for handler in self._handlers:
            handler.removeFilter(self._before_record)
        self._handlers.clear()

    def _before_record(self, record: logging.LogRecord) -> bool:
        self.clear()
        return True  # a filter that lets everything through, only to run first

    def _attach(self) -> None:
        loggers: list[logging.Logger] = [logging.getLogger()]
        loggers += [
            lg
            for lg in logging.Logger.manager.loggerDict.values()
            if isinstance(lg, logging.Logger)
        ]
        for logger in loggers:
            for handler in logger.handlers:
                is_stream = isinstance(handler, logging.StreamHandler)
                if is_stream and not isinstance(handler, logging.FileHandler):
                    handler.addFilter(self._before_record)
                    self._handlers.append(handler)


def render(
    elapsed_s: float,
    stats: _ServiceStats,
    rate_hz: float | None,
    consumed: int,
    metrics: Mapping[str, _Latency],
) -> str:
    """The text of the status line."""
    writes = metrics.get("price_set_many")
    p99 = f"{writes.p99_us / 1000:.2f} ms" if writes is not None else "-"
    state = f"DEGRADED ({stats.reason})" if stats.degraded else "healthy"
    rate = f"{rate_hz:4.1f}" if rate_hz is not None else "   -"
    return (
        f"[{elapsed_s:6.1f} s] {state} · {rate} Hz · published {stats.events_published} · "
        f"consumed {consumed} · write p99 {p99}"
    )
