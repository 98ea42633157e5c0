"""Credentials, ACLs and the HTTP surface.

- An ACL user restricted to solcache's keys can do everything solcache does; a user denied a
  command or a key gets a typed `ResponseError`; missing, wrong or disabled credentials are an
  `AuthenticationError`.
- No password appears anywhere: exception messages and reprs (also of errors raised during an
  outage), logs, pool and settings reprs, and everything a running `solcache serve` shows:
  dashboard, `/api/*`, `/metrics`, `/healthz`, `/events` and its own output, healthy or not.
- The gateway binds to 127.0.0.1 by default, and every route is read-only: other methods get
  404/405 and nothing is written to Redis.

(`rediss://` is in test_tls.py; the basic wrong-password and redaction cases in test_redis_pool.py.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

import solcache
from conftest import RedisServer, free_port
from service_process import Served, serve
from solcache import EventStream, PoolState, PriceCache, PriceData, PriceUpdate, RedisPool
from solcache.subscriptions import SubscriptionManager

pytestmark = pytest.mark.timeout(90)

ROOT_PW = "root-Pw-5d1c8e"  # requirepass of the default user (the tests' raw client)
APP_PW = "app-Pw-7f3c91b2"  # the ACL user solcache connects as
READER_PW = "reader-Pw-2a64e0"
SECRETS = (ROOT_PW, APP_PW, READER_PW)
SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
STREAM = solcache.STREAM_PRICE_UPDATES
FAST = {"connect_timeout_ms": 300, "response_timeout_ms": 300, "checkout_timeout_ms": 300}

# fmt: off
ACL_ARGS = (
    "--requirepass", ROOT_PW,
    # solcache's keys only, every command but the dangerous ones (INFO is needed: version check)
    "--user", "app", "on", f">{APP_PW}", "~price:*", "~pool:*", "~stream:*",
    "+@all", "-@dangerous", "+info",
    # reads only
    "--user", "reader", "on", f">{READER_PW}", "~*", "-@all", "+@read", "+@connection", "+info",
    # INFO denied: solcache cannot check the server version
    "--user", "noinfo", "on", f">{READER_PW}", "~*", "+@all", "-info",
    # disabled
    "--user", "gone", "off", f">{APP_PW}", "~*", "+@all",
)
# fmt: on


def acl_server() -> RedisServer:
    return RedisServer(*ACL_ARGS, auth=(ROOT_PW,))


def app_url(server: RedisServer, user: str = "app", password: str = APP_PW) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"a password is shown in: {str(text)[:500]}"


def error_texts(error: BaseException) -> list[str]:
    """Everything an application could print or log about an exception."""
    return [
        str(error),
        repr(error),
        repr(error.args),
        "".join(traceback.format_exception(error)),
    ]


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    server = acl_server()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def clean_acl_redis(acl_redis: RedisServer) -> RedisServer:
    acl_redis.raw("FLUSHALL")
    acl_redis.raw("ACL", "LOG", "RESET")
    return acl_redis


# --- ACL users ---------------------------------------------------------------------------------


async def test_acl_user_limited_to_solcache_keys_can_do_everything_solcache_does(
    clean_acl_redis: RedisServer,
) -> None:
    server = clean_acl_redis
    async with await RedisPool.connect(app_url(server)) as pool:
        prices, pools, events = PriceCache(pool), solcache.PoolStateCache(pool), EventStream(pool)
        await prices.set(PriceData("SOL", "187.2345"))
        await prices.set_many([PriceData("RAY", "4.12"), PriceData("BONK", "0.00002345")])
        got = await prices.get_many(["SOL", "RAY", "BONK"])
        assert all(p is not None for p in got.values())
        state = PoolState(SOL_USDC, 1, 2, 3, 4)
        await pools.set(state)
        assert await pools.get(SOL_USDC) == state

        await events.ensure_group(STREAM, "g", "0")
        ids = await events.publish_many([PriceUpdate("SOL", i) for i in range(3)])
        assert [e.id for e in await events.read(STREAM, "0", block_ms=0)] == ids
        sub = events.subscribe(STREAM, "g", "c", claim_interval_ms=1)  # XAUTOCLAIM too
        batch = await sub.next_batch()
        assert [e.id for e in batch] == ids
        sub.ack(*batch)
        await sub.close()
        info = await events.info(STREAM)
        assert info.length == 3 and info.groups[0].pending == 0
        assert (await pool.health()).reachable
        assert (await pool.info("server"))["redis_version"] == server.version

        clients = server.raw("CLIENT", "LIST")
        assert "user=app" in clients  # it really connected as `app`
    assert server.raw("ACL", "LOG") == []  # and nothing it did was denied


async def test_denied_commands_and_keys_are_typed_errors(
    clean_acl_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = clean_acl_redis
    denied: list[BaseException] = []

    async def refused(call: Callable[[], Awaitable[object]]) -> None:
        with pytest.raises(solcache.ResponseError, match=r"(?i)noperm") as info:
            await call()
        assert info.value.code == "NOPERM"
        assert not isinstance(info.value, solcache.exceptions.InternalError)
        denied.append(info.value)

    async with await RedisPool.connect(app_url(server)) as pool:
        events = EventStream(pool)
        await refused(lambda: events.publish(PriceUpdate("SOL", 1), "audit:trades"))  # key
        await refused(lambda: events.ensure_group("audit:trades", "g"))
        # a denied call breaks nothing: the same pool goes on
        assert await events.publish(PriceUpdate("SOL", 1)) is not None
        assert pool.error_counts()["response"] == 2

    async with await RedisPool.connect(app_url(server, "reader", READER_PW)) as pool:
        prices, events = PriceCache(pool), EventStream(pool)
        await refused(lambda: prices.set(PriceData("SOL", 1)))
        await refused(lambda: prices.set_many([PriceData("SOL", 1)]))
        await refused(lambda: events.publish(PriceUpdate("SOL", 1)))
        await refused(lambda: events.ensure_group(STREAM, "g"))
        # A subscription retries a refused read (an operator may fix the ACL) until it gives up.
        await refused(lambda: anext(aiter(events.subscribe(STREAM, "g", "c", give_up_after_s=0.2))))

        async def handler(event: PriceUpdate) -> None:
            pass

        manager = SubscriptionManager(events, "g", "c")
        manager.on(PriceUpdate, handler)
        await refused(manager.start)
        assert not manager.running
        # reads are allowed and still work on the same pool
        assert await prices.get("SOL") is None  # the refused writes wrote nothing
        counts = pool.counts()
        assert counts["connections"] >= 1 and counts["in_use"] == 0

    with pytest.raises(solcache.ResponseError, match=r"(?i)noperm.*info") as info:
        await RedisPool.connect(app_url(server, "noinfo", READER_PW))
    denied.append(info.value)

    for error in denied:
        assert_no_secret(*error_texts(error))
    assert_no_secret(caplog.text)


@pytest.mark.parametrize(
    ("user", "password", "code"),
    [("app", "not-the-Pw-91c", "WRONGPASS"), ("gone", APP_PW, "WRONGPASS"), (None, None, "NOAUTH")],
    ids=["wrong-password", "disabled-user", "no-credentials"],
)
async def test_wrong_disabled_or_missing_credentials_are_authentication_errors(
    acl_redis: RedisServer,
    user: str | None,
    password: str | None,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    if user is None:
        url = f"redis://127.0.0.1:{acl_redis.port}/0"  # NOAUTH
    else:
        assert password is not None
        url = app_url(acl_redis, user, password)
    start = time.monotonic()
    with pytest.raises(solcache.AuthenticationError) as info:
        await RedisPool.connect(url, **FAST)
    assert time.monotonic() - start < 0.3 + 1.5
    assert isinstance(info.value, solcache.ConnectionError)
    assert info.value.code == code  # Redis' word for the refusal, no message matching
    assert info.value.args == (str(info.value),) and info.value.errno is None
    assert_no_secret(*error_texts(info.value), caplog.text)
    if password is not None:
        assert password not in "".join([*error_texts(info.value), caplog.text])


async def test_no_password_in_errors_logs_or_reprs_through_an_outage(
    caplog: pytest.LogCaptureFixture, eventually: Callable[..., Awaitable[Any]]
) -> None:
    caplog.set_level(logging.DEBUG)
    server = acl_server()
    server.start()
    try:
        url = app_url(server)
        settings = solcache.Settings(redis_url=url)
        assert_no_secret(repr(settings), str(settings), settings.redacted_redis_url)
        texts: list[object] = [repr(settings), str(settings)]
        async with await RedisPool.connect(url, **FAST) as pool:
            texts += [repr(pool), pool.url, pool.metrics(), pool.error_counts()]
            assert pool.url == f"redis://app:***@127.0.0.1:{server.port}/0"
            prices, events = PriceCache(pool), EventStream(pool)
            seen: list[int] = []

            async def handler(event: PriceUpdate) -> None:
                seen.append(1)

            # Start id 0: the group lost with the restart is created again with what the
            # stream holds by then ("$" would skip an event published before that).
            manager = SubscriptionManager(
                events,
                "g",
                "c",
                start_id="0",
                block_ms=50,
                backoff_initial_s=0.05,
                backoff_max_s=0.2,
            )
            manager.on(PriceUpdate, handler)
            async with manager:  # logs its retries through the outage
                server.kill()
                for call in (
                    lambda: prices.get("SOL"),
                    lambda: events.publish(PriceUpdate("SOL", 1)),
                ):
                    with pytest.raises(solcache.ConnectionError) as down:
                        await call()
                    texts += error_texts(down.value)
                    assert "redis://app:***@127.0.0.1" in str(down.value)  # shown, redacted
                health = await pool.health()
                assert health.error
                texts.append(health.error)
                await eventually(lambda: _assert(manager.stats.errors >= 2))

                server.start()
                await eventually(lambda: prices.set(PriceData("SOL", 1)))
                server.pause()
                try:
                    with pytest.raises(solcache.TimeoutError) as slow:
                        await prices.get("SOL")
                    texts += error_texts(slow.value)
                finally:
                    server.resume()
                await eventually(lambda: events.publish(PriceUpdate("SOL", 2)))
                await eventually(lambda: _assert(bool(seen)))
            texts += [repr(pool), pool.metrics()]
        assert manager.stats.errors >= 2
        await asyncio.sleep(0.1)  # let the core's queued log records reach logging
        assert any("subscription g/c" in r.getMessage() for r in caplog.records)
        assert_no_secret(*texts, caplog.text)
    finally:
        server.cleanup()


def _assert(condition: bool) -> Awaitable[None]:
    assert condition
    return asyncio.sleep(0)


# --- the service ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, RedisServer]]:
    """`solcache serve` with default host, connected as `app` with the password in
    SOLCACHE_REDIS_URL, against a server of this module's own (a test may kill it)."""
    server = acl_server()
    server.start()
    try:
        env = {"SOLCACHE_REDIS_URL": app_url(server), "SOLCACHE_CONNECT_TIMEOUT_MS": "300"}
        with serve("--seed", "2", env=env) as svc:
            yield svc, server
    finally:
        server.cleanup()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on TCP `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                local, _remote, state = line.split()[1:4]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


def _other_local_address() -> str | None:
    """A non-loopback address of this host, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by connect()
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_gateway_binds_to_loopback_by_default(
    served: tuple[Served, RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SOLCACHE_"):
            monkeypatch.delenv(name)
    assert solcache.Settings().http_host == "127.0.0.1"
    svc, _ = served
    assert _listening_addresses(svc.port) == {"0100007F"}  # 127.0.0.1, and nothing else
    other = _other_local_address()
    if other is not None:
        with pytest.raises(OSError), socket.create_connection((other, svc.port), timeout=2):
            pass


ROUTES = ["/", "/api/status", "/api/prices", "/api/pools", "/metrics", "/healthz"]


def _first_sse_lines(svc: Served, n: int = 5) -> str:
    lines: list[str] = []
    with httpx.stream("GET", svc.url + "/events", timeout=5) as sse:
        for line in sse.iter_lines():
            lines.append(line)
            if len(lines) >= n:
                break
    return "\n".join(lines)


def test_serve_never_shows_the_password(served: tuple[Served, RedisServer]) -> None:
    svc, server = served
    healthy = {path: svc.get(path) for path in ROUTES}
    assert all(r.status_code == 200 for r in healthy.values()), healthy
    assert "<html" in healthy["/"].text.lower()
    status = healthy["/api/status"].json()
    assert status["redis"]["url"] == f"redis://app:***@127.0.0.1:{server.port}/0"
    assert_no_secret(*(r.text for r in healthy.values()), *healthy["/"].headers.values())
    assert_no_secret(_first_sse_lines(svc))

    server.kill()  # now every error path: messages carry the (redacted) URL

    def down() -> bool:  # the health verdict changes once the outage held for the hold time
        st = svc.status()
        return not st["redis"]["reachable"] and st["service"]["health"]["degraded"]

    deadline = time.monotonic() + 10
    while not down():
        assert time.monotonic() < deadline, svc.status()
        time.sleep(0.1)
    failing = {path: svc.get(path) for path in ROUTES}
    assert failing["/healthz"].status_code == 503 and failing["/api/prices"].status_code == 503
    assert_no_secret(*(r.text for r in failing.values()))
    svc.proc.terminate()
    svc.proc.wait(timeout=30)
    out = svc.output()
    assert "WARNING" in out and "serve degraded: redis: unreachable" in out, out[-2000:]  # logged
    assert_no_secret(out)  # ... without the password


def test_cli_errors_never_show_the_password(acl_redis: RedisServer) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}
        return subprocess.run(
            [sys.executable, "-m", "solcache", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    nowhere = f"redis://app:{APP_PW}@127.0.0.1:{free_port()}/0"
    failed = run("serve", "--redis-url", nowhere, "--duration", "1", "--port", str(free_port()))
    assert failed.returncode == 2
    assert "redis://app:***@127.0.0.1:" in failed.stderr
    wrong = run("doctor", "--redis-url", app_url(acl_redis, "app", "wrong-Pw-0e4"))
    good = run("doctor", "--redis-url", app_url(acl_redis))
    assert wrong.returncode != 0 and good.returncode in (0, 1)
    for done in (failed, wrong, good):
        assert_no_secret(done.stdout, done.stderr)
        assert "wrong-Pw-0e4" not in done.stdout + done.stderr


# --- read-only HTTP ---------------------------------------------------------------------------


def _command_calls(server: RedisServer) -> dict[str, int]:
    calls = {}
    for line in server.raw("INFO", "commandstats").split():
        if line.startswith("cmdstat_"):
            name, stats = line[len("cmdstat_") :].split(":", 1)
            calls[name] = int(stats.split(",")[0].split("=")[1])
    return calls


def _dirty(server: RedisServer) -> int:
    info = server.raw("INFO", "persistence")
    return int(info.split("rdb_changes_since_last_save:")[1].split()[0])


async def test_every_http_route_is_read_only(
    redis_server: RedisServer,
    pool: RedisPool,
    start_gateway: Callable[..., Awaitable[Any]],
) -> None:
    await PriceCache(pool).set(PriceData("SOL", "187.2345"))
    await EventStream(pool).publish(PriceUpdate("SOL", "187.2345"))
    gw = await start_gateway(pool)
    paths = sorted({route.path for route in gw.app.routes})
    assert {"/", "/events", "/api/status", "/metrics", "/healthz"} <= set(paths)
    extra = ["/api", "/api/prices/SOL", "/api/flush", "/admin", "/events/price_update", "/x"]
    writes = set(redis_server.raw("ACL", "CAT", "write")) | set(
        redis_server.raw("ACL", "CAT", "admin")
    )
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ROUTES:  # serve every GET once, so read paths are warmed up
            assert (await http.get(gw.url + path)).status_code == 200, path
        keys, dirty, before = (
            redis_server.raw("DBSIZE"),
            _dirty(redis_server),
            _command_calls(redis_server),
        )
        for path in paths + extra:
            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                response = await http.request(
                    method, gw.url + path, json={"token": "SOL", "price": "0"}
                )
                assert response.status_code in (404, 405), (method, path, response.status_code)
        for path in ROUTES:
            assert (await http.get(gw.url + path)).status_code == 200, path
    after = _command_calls(redis_server)
    called = {name for name, n in after.items() if n > before.get(name, 0)}
    assert not called & writes, called & writes
    assert redis_server.raw("DBSIZE") == keys
    assert _dirty(redis_server) == dirty  # not one key changed
    got = await PriceCache(pool).get("SOL")
    assert got is not None and str(got.price) == "187.2345"
