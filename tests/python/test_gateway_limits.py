"""What one HTTP connection may cost the gateway, over raw sockets against a running
`GatewayServer` (and `solcache serve`) with a real redis-server: header and keep-alive
timeouts, the connection limit, malformed requests that log one line, and a trailing-slash
redirect that never reflects the Host header."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import solcache
from conftest import RedisServer
from service_process import serve
from solcache.web.limits import GatewayLimits

HALF_HEAD = b"GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nX-Slow: "


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after `within_s`)."""
    async with asyncio.timeout(within_s):
        return await reader.read()


async def until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def response_head(reader: asyncio.StreamReader, within_s: float = 10.0) -> bytes:
    async with asyncio.timeout(within_s):
        return await reader.readuntil(b"\r\n\r\n")


def metric_samples(text: str) -> dict[str, float]:
    return {
        s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def gateway_log() -> Iterator[Callable[[], list[logging.LogRecord]]]:
    """Call it after starting the gateway (uvicorn's logging setup drops earlier handlers):
    it collects the records of the gateway's, uvicorn's and asyncio's loggers from then on
    (uvicorn does not propagate to the root logger, so caplog would not see its errors)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("uvicorn", "asyncio", "solcache")]

    def capture() -> list[logging.LogRecord]:
        for logger in loggers:
            logger.addHandler(handler)
        return records

    yield capture
    for logger in loggers:
        logger.removeHandler(handler)


# --- header and keep-alive timeouts ---------------------------------------------------------


async def test_200_connections_with_incomplete_heads_are_closed_after_the_header_timeout(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any]
) -> None:
    timeout_s = 1.0
    gw = await start_gateway(pool, limits=GatewayLimits(header_timeout_s=timeout_s))
    counters = gw.app.state.http_counters
    conns = []
    for i in range(200):
        reader, writer = await open_raw(gw.port)
        if i % 4:  # three in four send half a request head, the rest nothing at all
            writer.write(HALF_HEAD)
            await writer.drain()
        conns.append((reader, writer))
    opened = time.monotonic()

    async def close_time(reader: asyncio.StreamReader) -> float:
        assert await closed_by_server(reader, within_s=30.0) == b""
        return time.monotonic() - opened

    closed_after = await asyncio.gather(*(close_time(r) for r, _ in conns))
    print(f"200 incomplete heads closed {min(closed_after):.2f}-{max(closed_after):.2f} s")
    assert min(closed_after) >= timeout_s * 0.5  # not before the timeout (timer slack aside)
    assert counters.header_timeouts == 200
    for _, writer in conns:
        writer.close()
    async with httpx.AsyncClient(timeout=10) as http:  # complete requests are unaffected
        assert (await http.get(gw.url + "/healthz")).status_code == 200
        scraped = metric_samples((await http.get(gw.url + "/metrics")).text)
    assert scraped["solcache_http_header_timeouts_total"] == 200


async def test_half_a_next_request_on_a_kept_alive_connection_is_timed_out(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any]
) -> None:
    limits = GatewayLimits(header_timeout_s=1.0, keep_alive_timeout_s=600.0)
    gw = await start_gateway(pool, limits=limits)
    reader, writer = await open_raw(gw.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
    writer.write(HALF_HEAD)  # uvicorn stops its keep-alive timer at the first byte
    await writer.drain()
    await closed_by_server(reader, within_s=20.0)
    assert gw.app.state.http_counters.header_timeouts == 1
    writer.close()


async def test_idle_keep_alive_connections_close_after_the_configured_timeout(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any]
) -> None:
    limits = GatewayLimits(header_timeout_s=600.0, keep_alive_timeout_s=0.3)
    gw = await start_gateway(pool, limits=limits)
    reader, writer = await open_raw(gw.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    await closed_by_server(reader, within_s=20.0)
    # uvicorn's own default is 5 s: closing well before shows the setting took effect.
    assert time.monotonic() - started < 4.0
    assert gw.app.state.http_counters.header_timeouts == 0
    writer.close()


# --- the connection limit ---------------------------------------------------------------------


async def test_connections_beyond_the_limit_get_503_and_are_closed(
    pool: solcache.RedisPool,
    start_gateway: Callable[..., Any],
    gateway_log: Callable[[], list[logging.LogRecord]],
) -> None:
    limits = GatewayLimits(max_connections=20, header_timeout_s=600.0)
    gw = await start_gateway(pool, limits=limits)
    log = gateway_log()
    counters = gw.app.state.http_counters
    idle = [await open_raw(gw.port) for _ in range(20)]
    await until(lambda: counters.open == 20)
    refused = []
    for _ in range(3):
        reader, writer = await open_raw(gw.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        refused.append(await closed_by_server(reader, within_s=10.0))
        writer.close()
    for answer in refused:
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"retry-after: 1" in answer.lower()
    assert counters.rejected == 3
    warnings = [r for r in log if "connection limit (20) reached" in r.getMessage()]
    assert len(warnings) == 1  # one line per episode, not one per connection
    # Once one closes, a new connection is served again.
    idle[0][1].close()
    await until(lambda: counters.open < 20)
    reader, writer = await open_raw(gw.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
    writer.close()
    for _, w in idle[1:]:
        w.close()


# --- malformed requests -----------------------------------------------------------------------

CHUNKED = b"Host: test\r\nTransfer-Encoding: chunked\r\n\r\n"
BAD_CHUNK = b"zz\r\nnot hex\r\n"


async def test_a_malformed_chunked_body_logs_one_line_and_no_traceback(
    pool: solcache.RedisPool,
    start_gateway: Callable[..., Any],
    gateway_log: Callable[[], list[logging.LogRecord]],
) -> None:
    gw = await start_gateway(pool)
    log = gateway_log()
    paths = ["/events", "/api/status", "/healthz", "/metrics", "/nowhere", "/events/"]
    for path in paths:  # the head parses, the body does not: the app already runs
        reader, writer = await open_raw(gw.port)
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + CHUNKED + BAD_CHUNK)
        answer = await closed_by_server(reader, within_s=10.0)
        assert answer.startswith(b"HTTP/1.1 400 "), (path, answer)
        writer.close()
    # The body turns bad after the response went out (the handler does not read it).
    reader, writer = await open_raw(gw.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n" + CHUNKED + b"5\r\nhello\r\n")
    assert (await response_head(reader)).startswith(b"HTTP/1.1 200")
    writer.write(BAD_CHUNK)
    await closed_by_server(reader, within_s=10.0)
    writer.close()

    counters = gw.app.state.http_counters
    await until(lambda: counters.bad_requests == len(paths) + 1)
    await asyncio.sleep(0.5)  # let the request tasks finish: they would log last
    assert gw.hub.clients == ()
    loud = [r for r in log if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    # At most uvicorn's one line per bad request. The core's slow-call warning (solcache.pool)
    # depends on the machine's load, not on these requests, so it is not counted.
    lines = [r for r in log if r.levelno >= logging.WARNING and r.name != "solcache.pool"]
    assert len(lines) <= len(paths) + 1, [r.getMessage() for r in lines]
    async with httpx.AsyncClient(timeout=10) as http:
        scraped = metric_samples((await http.get(gw.url + "/metrics")).text)
    assert scraped["solcache_http_bad_requests_total"] == len(paths) + 1


# --- the trailing-slash redirect ----------------------------------------------------------------


async def test_trailing_slash_redirect_is_relative_and_ignores_the_host_header(
    pool: solcache.RedisPool, start_gateway: Callable[..., Any]
) -> None:
    gw = await start_gateway(pool)
    async with httpx.AsyncClient(timeout=10) as http:
        moved = await http.get(gw.url + "/healthz/", headers={"Host": "evil.example"})
        assert moved.status_code == 307
        assert moved.headers["location"] == "/healthz"
        assert all("evil" not in value for value in moved.headers.values())
        query = await http.get(gw.url + "/api/status/?verbose=1", headers={"Host": "evil.example"})
        assert query.headers["location"] == "/api/status?verbose=1"
        followed = await http.get(gw.url + "/api/status/", follow_redirects=True)
        assert followed.status_code == 200 and followed.json()
        assert (await http.get(gw.url + "/nowhere/")).status_code == 404
    # A path that would make a protocol-relative Location is not one of ours: 404.
    reader, writer = await open_raw(gw.port)
    writer.write(b"GET //evil.example/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    answer = await closed_by_server(reader, within_s=10.0)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 404 ") and b"location" not in answer.lower()


# --- configuration ------------------------------------------------------------------------------


def test_limits_come_from_settings_and_refuse_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SOLCACHE_")]:
        monkeypatch.delenv(name)
    assert GatewayLimits.from_settings(solcache.Settings()) == GatewayLimits()
    monkeypatch.setenv("SOLCACHE_HTTP_HEADER_TIMEOUT_S", "2.5")
    monkeypatch.setenv("SOLCACHE_HTTP_KEEP_ALIVE_TIMEOUT_S", "0.5")
    monkeypatch.setenv("SOLCACHE_HTTP_MAX_CONNECTIONS", "77")
    monkeypatch.setenv("SOLCACHE_SSE_SEND_BUFFER_BYTES", "0")
    monkeypatch.setenv("SOLCACHE_SSE_MAX_UNSENT_BYTES", "1000")
    monkeypatch.setenv("SOLCACHE_SSE_MAX_UNSENT_AGE_S", "3")
    assert GatewayLimits.from_settings(solcache.Settings()) == GatewayLimits(
        header_timeout_s=2.5,
        keep_alive_timeout_s=0.5,
        max_connections=77,
        sse_send_buffer_bytes=0,
        sse_max_unsent_bytes=1000,
        sse_max_unsent_age_s=3.0,
    )
    for bad in ("0", "inf", "-1"):
        monkeypatch.setenv("SOLCACHE_HTTP_HEADER_TIMEOUT_S", bad)
        with pytest.raises(ValueError):
            solcache.Settings()
    for kwargs in ({"header_timeout_s": float("inf")}, {"max_connections": 0}):
        with pytest.raises(ValueError):
            GatewayLimits(**kwargs)


def test_serve_applies_the_configured_limits(redis_server: RedisServer) -> None:
    env = {
        "SOLCACHE_REDIS_URL": redis_server.url,
        "SOLCACHE_HTTP_HEADER_TIMEOUT_S": "1",
        "SOLCACHE_HTTP_MAX_CONNECTIONS": "5",
    }
    with serve(env=env) as svc:
        half = socket.create_connection(("127.0.0.1", svc.port), timeout=20)
        half.sendall(HALF_HEAD)
        assert half.recv(1024) == b""  # closed by the header timeout, not by our recv timeout
        half.close()
        idle = []
        while True:  # fill up to the limit (scrapes in between may hold one briefly)
            sock = socket.create_connection(("127.0.0.1", svc.port), timeout=20)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            if sock.recv(1024).startswith(b"HTTP/1.1 503 "):
                sock.close()
                break
            idle.append(sock)
            assert len(idle) <= 5
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 20
        while (scrape := svc.get("/metrics")).status_code == 503:  # the idle ones closing
            assert time.monotonic() < deadline
            time.sleep(0.2)
        scraped = metric_samples(scrape.text)
    assert scraped["solcache_http_header_timeouts_total"] >= 1
    assert scraped["solcache_http_connections_rejected_total"] >= 1
