"""What `make demo` (`solcache serve` without a URL) does to the machine, and what `serve`
leaves in a Redis it is pointed at: the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from conftest import RedisServer
from service_process import serve

ROOT = Path(__file__).resolve().parents[2]

#: `MAXLEN ~` keeps whole radix-tree nodes: a stream may hold up to one node (100) more.
NODE_ENTRIES = 100


def test_serve_without_a_url_runs_on_a_private_redis() -> None:
    # Whatever listens on 127.0.0.1:6379 (a system redis-server on this machine) is not used.
    with serve("--duration", "3") as served:
        status = served.status()
        assert status["redis"]["reachable"], status
    out = served.output()
    assert served.proc.returncode == 0, out
    assert "started a private redis-server (unix://" in out, out
    assert "SOLCACHE_REDIS_URL" in out, "says how to use another Redis"
    assert "using the Redis listening" not in out, out
    assert "private redis-server stopped" in out, out


def test_serve_leaves_only_bounded_data_in_a_shared_redis(fresh_redis: RedisServer) -> None:
    maxlen = 50
    env = {"SOLCACHE_STREAM_MAXLEN": str(maxlen)}
    with serve("--redis-url", fresh_redis.url, "--duration", "6", "--seed", "5", env=env) as s:
        s.proc.wait(timeout=60)  # runs its 6 s and stops by itself
    assert s.proc.returncode == 0, s.output()
    keys = sorted(fresh_redis.raw("KEYS", "*"))
    streams = [k for k in keys if fresh_redis.raw("TYPE", k) == "stream"]
    assert set(streams) == {
        "stream:price-updates",
        "stream:trade-events",
        "stream:ui-events",
    }, keys
    for key in keys:
        if key in streams:
            length = fresh_redis.raw("XLEN", key)
            assert length <= maxlen + NODE_ENTRIES, f"{key} holds {length} entries"
        else:
            assert key.startswith(("price:", "pool:")), f"unexpected key {key}"
            assert fresh_redis.raw("PTTL", key) > 0, f"{key} has no TTL"
    # More was published than a stream keeps: trimming bounded them, not a quiet run.
    info = fresh_redis.raw("XINFO", "STREAM", "stream:price-updates")
    assert dict(zip(info[::2], info[1::2], strict=True))["entries-added"] > maxlen + NODE_ENTRIES


def make_dry_run(venv: Path, target: str) -> str:
    run = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_make_demo_installs_and_builds_nothing_when_nothing_changed(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".deps").touch()
    # A fresh venv: the extension is built, with pip's "already satisfied" lines silenced.
    assert "PIP_QUIET=1 maturin develop" in make_dry_run(venv, "demo")
    now = time.time()
    os.utime(venv / ".deps", (now - 1, now - 1))
    (venv / ".built").touch()
    os.utime(venv / ".built", (now, now))
    plan = make_dry_run(venv, "demo")
    assert "maturin" not in plan and "pip install" not in plan, plan
    assert "-m solcache serve" in plan, plan


def test_the_demo_streams_every_event_type(fresh_redis: RedisServer) -> None:
    wanted = {"price_update", "pool_state", "trade_executed", "position_update", "system_status"}
    seen: set[str] = set()
    with serve("--redis-url", fresh_redis.url, "--seed", "9") as served:
        deadline = time.monotonic() + 30
        with httpx.stream("GET", served.url + "/events", timeout=10) as sse:
            for line in sse.iter_lines():
                if line.startswith("event: "):
                    seen.add(line.removeprefix("event: "))
                if seen >= wanted or time.monotonic() > deadline:
                    break
        assert seen >= wanted, f"missing {wanted - seen}"
        desk = served.status()["service"]["trade-simulator"]
        assert desk["trades"] > 0 and desk["errors"] == 0, desk
