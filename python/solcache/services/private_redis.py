"""A private redis-server child: nothing persisted, in a temp dir of its own, stopped on exit.

`solcache serve` (and so `make demo`) runs one when no Redis URL is configured; the tests and
the benchmarks start theirs with this class too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PrivateRedis", "PrivateRedisError", "free_port"]


class PrivateRedisError(RuntimeError):
    """redis-server is missing or did not come up."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` child listening on a unix socket in a temp dir, and on 127.0.0.1 at a
    free port when ``tcp`` is true; no RDB, no AOF.

    ``extra_args`` come last on its command line, so they override the defaults (e.g.
    ``"--appendonly", "yes"``: the AOF lives in :attr:`dir`, which :meth:`stop` keeps for the
    next :meth:`start`). It runs in its own session: a Ctrl-C in the terminal reaches only this
    process, which stops the server after what still uses it. :meth:`start` waits up to
    ``start_timeout_s`` until it answers; :meth:`stop` sends SIGTERM, then SIGKILL after
    ``stop_timeout_s``; :meth:`close` also removes the temp dir.
    """

    def __init__(
        self,
        *extra_args: str,
        tcp: bool = False,
        executable: str = "redis-server",
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.extra_args = extra_args
        self.executable = executable
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        #: The TCP port (None: unix socket only).
        self.port: int | None = free_port() if tcp else None
        self.dir = Path(tempfile.mkdtemp(prefix="solcache-redis-"))
        self.unix_socket = str(self.dir / "redis.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def unix_url(self) -> str:
        return f"unix://{self.unix_socket}"

    @property
    def tcp_url(self) -> str:
        if self.port is None:
            raise PrivateRedisError("this redis-server listens on a unix socket only")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the server and wait until it answers; raise :class:`PrivateRedisError` if it
        does not (the tail of its log says why)."""
        if self.proc is not None:
            raise PrivateRedisError("the redis-server is already running")
        exe = shutil.which(self.executable)
        if exe is None:
            raise PrivateRedisError(
                f"{self.executable} not found: install Redis >= 6.2 (Debian: apt-get install "
                "redis-server)"
            )
        tcp = ["--port", "0"] if self.port is None else ["--port", str(self.port)]
        log = self.dir / "redis.log"
        # fmt: off
        args = [
            exe, *tcp, "--bind", "127.0.0.1",
            "--unixsocket", self.unix_socket, "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
            "--logfile", str(log), *self.extra_args,
        ]
        # fmt: on
        # Its output goes to the log too: a bad option is reported there before logging starts.
        with open(log, "ab") as output:
            self.proc = subprocess.Popen(
                args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.start_timeout_s
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                self.stop()
                raise PrivateRedisError(f"redis-server did not start:\n{tail}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        """True once PING over the unix socket gets a reply (``-NOAUTH`` counts: it is up)."""
        if not os.path.exists(self.unix_socket):
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(self.unix_socket)
                s.sendall(b"PING\r\n")
                return s.recv(64)[:1] in (b"+", b"-")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``stop_timeout_s``; keeps :attr:`dir`."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown, no final save or fsync."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def close(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
