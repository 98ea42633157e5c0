"""`PrivateRedis`, the one redis-server launcher (serve's private server, the tests', the
benchmarks'): it answers when `start` returns, runs in a session of its own, and leaves nothing
behind, also when it cannot start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from solcache import PriceData, sync
from solcache.services.private_redis import PrivateRedis, PrivateRedisError


def test_a_unix_socket_server_answers_in_its_own_session_and_leaves_nothing() -> None:
    with PrivateRedis() as server:
        assert server.port is None
        with pytest.raises(PrivateRedisError):
            _ = server.tcp_url
        with sync.RedisPool.connect(server.unix_url) as pool:
            assert sync.PriceCache(pool).get("SOL") is None
        pid, folder = server.pid, server.dir
        assert pid is not None and folder.is_dir()
        # Its own session: a Ctrl-C in the terminal reaches only its parent, which stops it.
        assert os.getsid(pid) == pid != os.getsid(0)
    assert server.pid is None and not folder.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_tcp_server_keeps_its_port_and_dir_across_stop_and_start() -> None:
    with PrivateRedis("--appendonly", "yes", tcp=True) as server:
        with sync.RedisPool.connect(server.tcp_url) as pool:
            sync.PriceCache(pool, ttl_ms=600_000).set(PriceData("SOL", 1, source="aof"))
        server.stop()
        assert server.pid is None and server.dir.is_dir()
        server.start()  # the AOF in its dir is loaded again
        with sync.RedisPool.connect(server.tcp_url) as pool:
            got = sync.PriceCache(pool).get("SOL")
        assert got is not None and got.source == "aof"


def test_a_missing_executable_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    server = PrivateRedis(executable=str(tmp_path / "redis-server"))
    with pytest.raises(PrivateRedisError, match="redis-server not found: install Redis"):
        server.__enter__()  # what `with server:` does first
    assert server.pid is None and not server.dir.exists()


def test_a_server_that_does_not_come_up_says_why_and_leaves_nothing() -> None:
    server = PrivateRedis("--no-such-option", "1")
    with pytest.raises(PrivateRedisError, match="did not start") as e:
        server.__enter__()
    assert "no-such-option" in str(e.value)  # the tail of its log
    assert server.pid is None and not server.dir.exists()


def test_serve_without_redis_server_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}
    env["PATH"] = str(tmp_path)  # no redis-server on it
    run = subprocess.run(
        [sys.executable, "-m", "solcache", "serve", "--duration", "1", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "solcache: redis-server not found: install Redis >= 6.2" in out, out
    assert "--redis-url or SOLCACHE_REDIS_URL uses a Redis of yours" in out, out
    assert "Traceback" not in out, out
