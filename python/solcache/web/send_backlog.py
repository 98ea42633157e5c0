"""What was written to one ``/events`` connection and has not reached the client yet.

A client that stops reading does not make a write fail: the bytes wait in the process (the
transport's buffer) and in the kernel's send queue, and only once both are full does a write
block. :class:`SendBacklog` measures that backlog directly: the transport's buffer plus the
kernel's count of bytes not yet acknowledged by the peer (``TIOCOUTQ``, Linux), and it
remembers when each write was made, so the age of the oldest byte the client has not received
is known. It also shrinks the connection's kernel send buffer, which otherwise grows to
megabytes for a client that does not read.

The server hands the connection's transport to the app in the request scope, under
``scope["extensions"][TRANSPORT_EXTENSION]["transport"]`` (``GatewayServer`` does; other ASGI
servers do not, and then the backlog reads as empty: only the send timeout applies).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

try:
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # not Linux: only the process's own buffer is measured
    _TIOCOUTQ = None

__all__ = ["TRANSPORT_EXTENSION", "SendBacklog", "transport_of"]

#: The ASGI scope extension carrying the connection's ``asyncio.Transport``.
TRANSPORT_EXTENSION = "solcache.transport"


def transport_of(scope: Mapping[str, Any]) -> asyncio.BaseTransport | None:
    """The transport the server put into ``scope``, or None."""
    extension = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    transport = extension.get("transport") if isinstance(extension, Mapping) else None
    return transport if isinstance(transport, asyncio.BaseTransport) else None


class SendBacklog:
    """Bytes written to one connection that its peer has not received, and their age."""

    def __init__(self, transport: asyncio.BaseTransport | None, send_buffer_bytes: int) -> None:
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self._fd = -1
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            if send_buffer_bytes > 0:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
            if _TIOCOUTQ is not None and sock.type == socket.SOCK_STREAM:
                self._fd = sock.fileno()
        self._written = 0
        # (bytes written up to and including this write, monotonic time of the write)
        self._writes: deque[tuple[int, float]] = deque()
        self.last_write_monotonic_s = time.monotonic()
        #: The most unsent bytes seen at a check.
        self.high_water_bytes = 0

    def abort(self) -> None:
        """Drop the connection and whatever it still buffers (a client given up on)."""
        if self._transport is not None:
            self._transport.abort()

    def record(self, nbytes: int) -> None:
        """Note a write of ``nbytes`` bytes just handed to the transport."""
        now = time.monotonic()
        self._written += nbytes
        self._writes.append((self._written, now))
        self.last_write_monotonic_s = now

    @property
    def pending(self) -> bool:
        """True while some write is not known to have reached the client."""
        return bool(self._writes)

    def unsent_bytes(self) -> int:
        """Bytes in the transport's buffer plus bytes the kernel holds for the peer (sent but
        not acknowledged, or not sent yet)."""
        if self._transport is None:
            return 0
        buffered = self._transport.get_write_buffer_size()
        if self._fd < 0 or _TIOCOUTQ is None:
            return buffered
        try:
            raw = fcntl.ioctl(self._fd, _TIOCOUTQ, b"\0\0\0\0")
        except OSError:  # closed under us, or not supported for this socket
            self._fd = -1
            return buffered
        queued: int = struct.unpack("i", raw)[0]
        return buffered + queued

    def measure(self) -> tuple[int, float]:
        """``(unsent bytes, seconds since the oldest write the client has not fully received)``.

        The unsent count includes the HTTP framing, so a partly received write counts as not
        received: the age errs on the old side by at most one write.
        """
        unsent = self.unsent_bytes()
        self.high_water_bytes = max(self.high_water_bytes, unsent)
        received = self._written - unsent
        while self._writes and self._writes[0][0] <= received:
            self._writes.popleft()
        age_s = time.monotonic() - self._writes[0][1] if self._writes else 0.0
        return unsent, age_s
