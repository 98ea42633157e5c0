"""A private redis-server for `solcache serve` (and so `make demo`) when no Redis URL is given."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedRedis", "EmbeddedRedisError"]


class EmbeddedRedisError(RuntimeError):
    """redis-server is missing or did not come up."""


class EmbeddedRedis:
    """A ``redis-server`` child on a unix socket in a temp dir: no TCP port, nothing persisted.

    ``start()`` returns its ``unix://`` URL once it answers; ``stop()`` terminates it (SIGTERM,
    then SIGKILL after ``stop_timeout_s``) and removes the temp dir.
    """

    def __init__(
        self,
        executable: str = "redis-server",
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._executable = executable
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self._dir is None:
            raise EmbeddedRedisError("the embedded redis-server is not running")
        return f"unix://{self._dir / 'redis.sock'}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        exe = shutil.which(self._executable)
        if exe is None:
            raise EmbeddedRedisError(
                f"{self._executable} not found: install Redis >= 6.2 (Debian: apt-get install "
                "redis-server) or set SOLCACHE_REDIS_URL"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="solcache-redis-"))
        sock = self._dir / "redis.sock"
        # fmt: off
        args = [
            exe, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
        ]
        # fmt: on
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self._start_timeout_s
        while not self._answers(sock):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log = (self._dir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise EmbeddedRedisError(f"redis-server did not start:\n{log}")
            time.sleep(0.02)
        return self.url

    @staticmethod
    def _answers(sock: Path) -> bool:
        if not sock.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(str(sock))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
