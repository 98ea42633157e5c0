"""`solcache serve` never goes silently deaf: Redis refusing writes (OOM under `noeviction`,
READONLY after a demotion), a lost consumer group, a busy HTTP port, SIGTERM, and a fault that
comes and goes faster than the health hold time. Each runs the real CLI in a subprocess
against real redis-server processes and checks what an operator sees: `/healthz`,
`/api/status`, `/metrics`, the `SystemStatus` events, the exit code and the output."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import solcache
from conftest import RedisServer, free_port
from service_process import Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STREAMS = (solcache.STREAM_PRICE_UPDATES, solcache.STREAM_TRADE_EVENTS, solcache.STREAM_UI_EVENTS)
GROUP = "solcache-serve"
SERVE = (sys.executable, "-m", "solcache", "serve")
# Generous: the machine running the suite may be loaded. Health needs 10 missed ticks (1 s)
# plus the 1 s hold at the defaults.
WITHIN_S = 30.0


def wait_for(check: Callable[[], Any], what: str, within_s: float = WITHIN_S) -> Any:
    """Poll `check()` until it returns something truthy; fail with its last value/error."""
    deadline = time.monotonic() + within_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # the service or Redis not answering yet
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {within_s} s; last: {last!r}")


def health(svc: Served) -> dict[str, Any]:
    return dict(svc.status()["service"]["health"])


def labelled(svc: Served, family: str) -> dict[str, float]:
    """`{label value: sample}` of a one-label family of `/metrics`."""
    for fam in text_string_to_metric_families(svc.get("/metrics").text):
        if fam.name == family:
            return {next(iter(s.labels.values())): s.value for s in fam.samples if s.labels}
    raise AssertionError(f"{family} not exported")


def statuses(server: RedisServer, component: str = "serve") -> list[str]:
    """The `SystemStatus` events `serve` published, oldest first."""
    out = []
    for _id, flat in server.raw("XRANGE", solcache.STREAM_UI_EVENTS, "-", "+"):
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        if fields["type"] != "system_status":
            continue
        event = solcache.TradingEvent.from_json(fields["type"], fields["data"])
        assert isinstance(event, solcache.SystemStatus)
        if event.component == component:
            out.append(event.status)
    return out


def groups(server: RedisServer, stream: str) -> dict[str, dict[str, Any]]:
    try:
        rows = server.raw("XINFO", "GROUPS", stream)
    except Exception:  # no such stream
        return {}
    return {d["name"]: d for d in (dict(zip(row[::2], row[1::2], strict=True)) for row in rows)}


def healthy_and_consuming(svc: Served) -> bool:
    return bool(
        svc.get("/healthz").status_code == 200 and svc.status()["service"]["events_consumed"] > 0
    )


def assert_clean_exit(svc: Served) -> str:
    out = svc.output()
    assert svc.proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "solcache: stopped after" in out, out[-3000:]
    return out


def refuse_writes(server: RedisServer) -> None:
    """Make every write fail with OOM (`noeviction`, and a limit below what is in use)."""
    server.raw("CONFIG", "SET", "maxmemory-policy", "noeviction")
    server.raw("CONFIG", "SET", "maxmemory", "1")


def take_writes(server: RedisServer) -> None:
    server.raw("CONFIG", "SET", "maxmemory", "0")


# --- refused writes and a lost group ----------------------------------------------------------


def test_oom_and_a_lost_group_make_serve_degraded_then_it_recovers_by_itself(
    fresh_redis: RedisServer,
) -> None:
    with serve("--redis-url", fresh_redis.url, "--seed", "1") as svc:
        wait_for(lambda: healthy_and_consuming(svc), "healthy and consuming at start")
        refuse_writes(fresh_redis)
        # The group on stream:ui-events goes with the stream; re-creating it is refused (OOM).
        fresh_redis.raw("DEL", solcache.STREAM_UI_EVENTS)

        down = wait_for(
            lambda: (r := svc.get("/healthz")).status_code == 503 and "consumer:" in r.text and r,
            "/healthz 503 naming the consumer",
        )
        lines = down.text.splitlines()
        assert lines[0] == "degraded", down.text
        assert any(x.startswith("price_writes: ") and "OOM" in x for x in lines), down.text
        assert any(x.startswith("consumer: ") and "OOM" in x for x in lines), down.text
        assert not any(x.startswith("redis: ") for x in lines), down.text  # PING still works

        report = health(svc)
        assert report["status"] == "degraded" and report["degraded"] is True, report
        assert {"price_writes", "pool_writes", "consumer"} <= set(report["reasons"]), report
        consumer = svc.status()["service"]["consumer"]
        assert consumer["state"] == "retrying" and "OOM" in consumer["last_error"], consumer
        metrics = svc.metrics()
        assert metrics["solcache_service_degraded"] == 1
        assert metrics["solcache_consumer_retrying"] == 1
        assert metrics["solcache_consumer_outages_total"] >= 1
        assert metrics["solcache_consumer_retries_total"] >= 1
        failing = labelled(svc, "solcache_health_check_failing")
        assert failing["price_writes"] == 1 and failing["consumer"] == 1, failing
        assert failing["redis"] == 0, failing
        errors = labelled(svc, "solcache_task_errors")
        assert errors["consumer"] >= 1 and errors["price-service"] >= 1, errors
        consumed = svc.status()["service"]["events_consumed"]

        take_writes(fresh_redis)
        wait_for(lambda: svc.get("/healthz").text == "ok\n", "/healthz 200 again")
        wait_for(
            lambda: svc.status()["service"]["events_consumed"] > consumed + 20,
            "the consumer reads again",
        )
        assert GROUP in groups(fresh_redis, solcache.STREAM_UI_EVENTS), "group re-created"
        metrics = svc.metrics()
        assert metrics["solcache_consumer_retrying"] == 0
        assert metrics["solcache_consumer_group_recreations_total"] >= 1
        assert svc.status()["service"]["consumer"]["group_recreations"] >= 1
        assert health(svc)["reasons"] == {}
        assert svc.metrics()["solcache_service_degraded"] == 0
        assert labelled(svc, "solcache_health_check_failing")["price_writes"] == 0
    out = assert_clean_exit(svc)
    assert "retrying" in out  # the errors were logged, not swallowed
    # Published once Redis took writes again: the outage, then the recovery, then the stop.
    assert statuses(fresh_redis) == ["degraded", "healthy", "stopped"]
    # The consumer's own statuses: it went retrying, then read again.
    assert statuses(fresh_redis, "consumer") == ["retrying", "connected"]


def test_a_demoted_then_promoted_server_is_read_only_then_writable_again(
    fresh_redis: RedisServer,
) -> None:
    primary = RedisServer()
    primary.start()
    try:
        with serve("--redis-url", fresh_redis.url, "--seed", "2") as svc:
            wait_for(lambda: healthy_and_consuming(svc), "healthy and consuming at start")
            # A failover demotes our server: it syncs (empty) data from the new primary, so
            # the groups are gone, and refuses every write with READONLY.
            fresh_redis.raw("REPLICAOF", "127.0.0.1", primary.port)
            down = wait_for(
                lambda: (
                    (r := svc.get("/healthz")).status_code == 503
                    and "read only replica" in r.text
                    and r
                ),
                "/healthz 503 with the READONLY error",
            )
            assert "price_writes: " in down.text, down.text
            report = health(svc)
            assert report["degraded"], report
            assert "read only replica" in report["reasons"]["price_writes"], report
            consumed = svc.status()["service"]["events_consumed"]

            fresh_redis.raw("REPLICAOF", "NO", "ONE")  # promoted back
            wait_for(lambda: svc.get("/healthz").text == "ok\n", "/healthz 200 again")
            wait_for(
                lambda: svc.status()["service"]["events_consumed"] > consumed + 20,
                "the consumer reads again",
            )
            for stream in STREAMS:
                assert GROUP in groups(fresh_redis, stream), f"group re-created on {stream}"
        assert_clean_exit(svc)
        assert statuses(fresh_redis)[-3:] == ["degraded", "healthy", "stopped"]
    finally:
        primary.cleanup()


# --- start and stop -------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}


def test_a_busy_port_fails_with_one_line_and_exit_2_before_touching_redis(
    fresh_redis: RedisServer,
) -> None:
    def connections() -> int:  # every raw() call is one more connection, itself included
        info = fresh_redis.raw("INFO", "stats")
        return int(info.split("total_connections_received:")[1].split()[0])

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = connections()
        run = subprocess.run(
            [*SERVE, "--redis-url", fresh_redis.url, "--port", str(port), "--duration", "5"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0], lines
    assert "Address already in use" in lines[0], lines
    assert run.stdout == ""
    # Nothing reached Redis: no status published, no group, no consumer, no connection.
    assert connections() == before + 1
    assert fresh_redis.raw("DBSIZE") == 0


@contextmanager
def serve_on_port(port: int, redis: RedisServer) -> Iterator[subprocess.Popen[bytes]]:
    """`serve` on a given port (a restart keeps its port), output in a temp file."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*SERVE, "--redis-url", redis.url, "--port", str(port), "--quiet"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
        try:
            wait_for(
                lambda: (
                    proc.poll() is None
                    and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                ),
                "serve healthy",
            )
            wait_for(
                lambda: (
                    httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()["service"][
                        "events_consumed"
                    ]
                    > 0
                ),
                "serve consuming",
            )
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            log.seek(0)
            proc.output = log.read().decode(errors="replace")  # type: ignore[attr-defined]


def test_sigterm_exits_0_after_publishing_stopped_and_leaves_no_consumer_behind(
    fresh_redis: RedisServer,
) -> None:
    port = free_port()
    runs = []
    for _ in range(2):
        with serve_on_port(port, fresh_redis) as proc:
            pass  # SIGTERM at the end of the block
        runs.append(proc)
        out: str = proc.output  # type: ignore[attr-defined]
        assert proc.returncode == 0, out[-3000:]
        assert "Traceback" not in out and "solcache: stopped after" in out, out[-3000:]
    for stream in STREAMS:
        # Everything it read was acknowledged, then the consumer left its group on the way out.
        assert fresh_redis.raw("XINFO", "CONSUMERS", stream, GROUP) == [], stream
        groups = fresh_redis.raw("XINFO", "GROUPS", stream)
        assert [dict(zip(g[::2], g[1::2], strict=True))["pending"] for g in groups] == [0]
    assert statuses(fresh_redis) == ["starting", "healthy", "stopped"] * 2


# --- debouncing -----------------------------------------------------------------------------------


def test_health_holds_while_a_fault_comes_and_goes_faster_than_the_hold_time(
    fresh_redis: RedisServer,
) -> None:
    env = {"SOLCACHE_HEALTH_MAX_MISSED_TICKS": "3", "SOLCACHE_HEALTH_HOLD_S": "3"}
    with serve("--redis-url", fresh_redis.url, "--seed", "3", env=env) as svc:
        wait_for(lambda: healthy_and_consuming(svc), "healthy and consuming at start")
        flapping = threading.Event()

        def flap() -> None:  # writes refused for 0.8 s, taken for 0.8 s, five times
            try:
                for _ in range(5):
                    refuse_writes(fresh_redis)
                    time.sleep(0.8)
                    take_writes(fresh_redis)
                    time.sleep(0.8)
            finally:
                take_writes(fresh_redis)
                flapping.set()

        codes, pending = [], []
        thread = threading.Thread(target=flap)
        thread.start()
        try:
            while not flapping.is_set():
                codes.append(svc.get("/healthz").status_code)
                pending.append(health(svc)["pending"])
                time.sleep(0.05)
        finally:
            thread.join()
        assert "degraded" in pending, "the checks saw the fault"  # ... but it never held 3 s
        assert set(codes) == {200}, codes
        assert svc.metrics()["solcache_health_changes_total"] == 0

        # A fault that lasts: reported once it has held for the 3 s.
        refuse_writes(fresh_redis)
        refused = time.monotonic()
        wait_for(lambda: svc.get("/healthz").status_code == 503, "/healthz 503")
        assert time.monotonic() - refused >= 3.0
        take_writes(fresh_redis)
        wait_for(lambda: svc.get("/healthz").status_code == 200, "/healthz 200 again")
        assert svc.metrics()["solcache_health_changes_total"] == 2
    assert_clean_exit(svc)
    assert statuses(fresh_redis) == ["starting", "healthy", "degraded", "healthy", "stopped"]
