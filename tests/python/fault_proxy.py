"""A TCP proxy that injects network faults between solcache and a real redis-server.

It runs its own asyncio loop in a daemon thread, so it keeps working (and keeps its timing)
whatever the test's loop does. The test switches the mode at any time; the new mode applies
to every connection, open or new, from the next chunk of bytes on:

- ``pass_through()``: bytes are forwarded both ways;
- ``delay(s)``: every chunk is forwarded ``s`` seconds after it arrived (in order; chunks are
  not serialised behind each other's delay, so throughput stays, latency grows);
- ``black_hole()``: connections are accepted and bytes read, but nothing is forwarded or
  answered: the peer sees a server that never replies;
- ``reset()``: the next chunk a client sends is forwarded to Redis, then the client connection
  is closed with RST (``SO_LINGER`` 0): the request may have run, the reply never comes.
  A new connection is reset as soon as it sends its handshake.

``reset_all()`` resets every open client connection right now, whatever the mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["FaultProxy", "Mode"]


class Mode(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    BLACK_HOLE = "black_hole"
    RESET = "reset"


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    closed: bool = False


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: SO_LINGER on, timeout 0, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """``127.0.0.1:port`` → ``target_host:target_port``; see the module docstring."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.port = 0
        #: Connections accepted, and client connections reset, since the start.
        self.accepted = 0
        self.resets = 0
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # every task of the proxy's loop
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    # --- control (from the test's thread) ------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def pass_through(self) -> None:
        self.mode = Mode.PASS

    def delay(self, seconds: float) -> None:
        self.delay_s = seconds
        self.mode = Mode.DELAY

    def black_hole(self) -> None:
        self.mode = Mode.BLACK_HOLE

    def reset(self) -> None:
        self.mode = Mode.RESET

    def reset_all(self) -> int:
        """RST every open client connection now; returns how many."""
        return self._call(self._reset_all())

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # --- the proxy (in its own loop) --------------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._drop(link, rst=True)
        # Dropped links end their pumps by themselves; cancel only what is still stuck.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            self._drop(link, rst=True)
        return len(links)

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        current = asyncio.current_task()
        if current is not None:
            self._track(current)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        self._track(asyncio.create_task(self._pump(up_reader, writer, link, from_client=False)))
        # A handler task must not end cancelled: asyncio 3.11 logs that as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump(reader, up_writer, link, from_client=True)

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        link: _Link,
        *,
        from_client: bool,
    ) -> None:
        """Copy ``src`` to ``dst`` applying the current mode; a writer task keeps the order."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = self._track(asyncio.create_task(self._send(queue, dst, link)))
        try:
            while not link.closed:
                try:
                    chunk = await src.read(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                mode = self.mode
                if mode is Mode.BLACK_HOLE:
                    continue
                if mode is Mode.RESET and from_client:
                    with contextlib.suppress(OSError):
                        dst.write(chunk)  # the request reaches Redis ...
                        await dst.drain()
                    self._drop(link, rst=True)  # ... its reply never comes back
                    self.resets += 1
                    break
                due = time.monotonic() + (self.delay_s if mode is Mode.DELAY else 0.0)
                queue.put_nowait((due, chunk))
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
            self._drop(link, rst=False)

    async def _send(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        dst: asyncio.StreamWriter,
        link: _Link,
    ) -> None:
        while (item := await queue.get()) is not None:
            due, chunk = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if link.closed:
                return
            try:
                dst.write(chunk)
                await dst.drain()
            except OSError:
                return

    def _drop(self, link: _Link, *, rst: bool) -> None:
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        if rst:
            _rst(link.client)
        else:
            link.client.close()
        link.upstream.close()
