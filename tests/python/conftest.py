"""Real redis-server processes on free ports, and a tiny RESP client for raw access.

No mocks: every test that talks to Redis talks to a `redis-server` child started here.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import solcache
from solcache.services.private_redis import PrivateRedis, free_port

T = TypeVar("T")
PASSWORD = "s3cret-pw"

# Support modules that hold assertions (imported by test modules, one also a fixture plugin).
pytest.register_assert_rewrite("bad_input_support")


class RespError(Exception):
    """An error reply (`-ERR …`) from the raw client."""


def _encode(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(f: Any) -> Any:
    line = f.readline()
    if not line:
        raise builtins.ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RespError(f"unexpected reply {line!r}")


def raw(server: RedisServer, *args: Any) -> Any:
    """Send one command over a plain socket (authenticating if needed); return the reply."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        f = sock.makefile("rb")
        if server.auth:
            sock.sendall(_encode(("AUTH", *server.auth)))
            _read_reply(f)
        sock.sendall(_encode(args))
        return _read_reply(f)


class RedisServer(PrivateRedis):
    """One `redis-server` child (solcache's own launcher): TCP on 127.0.0.1:port plus a unix
    socket, no persistence, and what the tests do to it: raw commands, pause, SIGKILL, restart.

    `extra_args` come last on the command line, so they override the defaults (e.g.
    `"--appendonly", "yes"` turns the AOF on; it lives in `dir`, which `restart` keeps).
    """

    def __init__(self, *extra_args: str, auth: tuple[str, ...] = ()) -> None:
        super().__init__(*extra_args, tcp=True)
        self.auth = auth  # AUTH arguments used by `raw`
        self.paused = False

    @property
    def url(self) -> str:
        return self.tcp_url

    def raw(self, *args: Any) -> Any:
        return raw(self, *args)

    def raw_all(self, *args: Any) -> list[Any]:
        """The reply of every primary: here the one server's, as a list (as on a cluster)."""
        return [self.raw(*args)]

    def node_of(self, key: str) -> RedisServer:
        """The server holding `key`: this one (a cluster answers with the slot's primary)."""
        return self

    def flushall(self) -> None:
        self.raw("FLUSHALL")

    @property
    def version(self) -> str:
        """`redis_version` as the server reports it in `INFO server` (e.g. "7.0.15")."""
        info = self.raw("INFO", "server")
        return next(
            line.split(":", 1)[1] for line in info.split() if line.startswith("redis_version:")
        )

    def stop(self) -> None:
        if self.paused:
            self.resume()
        super().stop()

    def kill(self) -> None:
        super().kill()  # a stopped (paused) process dies too
        self.paused = False

    def restart(self) -> None:
        """Start again on the same port and dir (an AOF or RDB written there is loaded)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def cleanup(self) -> None:
        self.close()


# --- topologies: one server, a Redis Cluster, Sentinel ----------------------------------------
#
# A module with `pytestmark = pytest.mark.topologies` runs each test that uses `redis_server`
# (or `pool`, `events`) once per topology: `redis_server` is then the session's cluster or
# sentinel group (tests/python/topologies.py), emptied before each test, with the same `url`,
# `raw`, `raw_all`, `node_of` and `flushall`. A test that needs one server process says so with
# `@pytest.mark.only_on("standalone", reason=...)`: its other variants are reported skipped.

TOPOLOGIES = ("standalone", "cluster", "sentinel")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "topologies: run the module's Redis tests on one server, a cluster, sentinel"
    )
    config.addinivalue_line(
        "markers", "only_on(*topologies, reason): in a topologies module, skip the others"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "topology" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("topologies") is None:
        return
    only = metafunc.definition.get_closest_marker("only_on")
    if only is not None:
        unknown = set(only.args) - set(TOPOLOGIES)
        assert only.args and not unknown and only.kwargs.get("reason"), (
            f"{metafunc.definition.nodeid}: only_on(<{'|'.join(TOPOLOGIES)}>…, reason=…)"
        )
    params = []
    for name in TOPOLOGIES:
        marks = []
        if only is not None and name not in only.args:
            reason = f"{'/'.join(only.args)} only: {only.kwargs['reason']}"
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(name, marks=marks, id=name))
    metafunc.parametrize("topology", params, indirect=True)


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    """The kind of deployment `redis_server` is: "standalone" unless the module is marked
    `topologies`."""
    return str(getattr(request, "param", "standalone"))


@pytest.fixture(scope="session")
def _shared_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """3 primaries + 3 replicas, started once per session (`topologies.RedisCluster`)."""
    from topologies import started_cluster

    with started_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[Any]:
    """A primary, its replica and 3 sentinels, started once (`topologies.SentinelGroup`)."""
    from topologies import started_sentinels

    with started_sentinels() as group:
        yield group


@pytest.fixture
def redis_server(topology: str, request: pytest.FixtureRequest) -> Any:
    """The session's shared server (or, in a `topologies` module, cluster or sentinel group),
    emptied before each test."""
    target = request.getfixturevalue(
        {"standalone": "_shared_redis", "cluster": "redis_cluster", "sentinel": "sentinel_group"}[
            topology
        ]
    )
    target.flushall()
    return target


@contextlib.contextmanager
def writes_refused(server: Any) -> Iterator[None]:
    """Every primary of `server` (a `redis_server` of any topology) answers writes with OOM
    (`maxmemory 1`, `noeviction`) until the block ends; the limit goes back to 0 (none) even
    when the block fails, so a shared server is left taking writes."""
    server.raw_all("CONFIG", "SET", "maxmemory-policy", "noeviction")
    server.raw_all("CONFIG", "SET", "maxmemory", "1")
    try:
        yield
    finally:
        server.raw_all("CONFIG", "SET", "maxmemory", "0")


@pytest.fixture
def fresh_redis(topology: str) -> Iterator[RedisServer]:
    """A server of this test's own, which the test may stop, restart or pause."""
    assert topology == "standalone", "fresh_redis is one server: mark the test only_on(...)"
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def auth_redis() -> Iterator[RedisServer]:
    """A server with `requirepass` for the default user and an ACL user `alice`."""
    # fmt: off
    server = RedisServer(
        "--requirepass", PASSWORD,
        "--user", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all",
        auth=(PASSWORD,),
    )
    # fmt: on
    with server:
        yield server


@pytest.fixture
async def pool(redis_server: RedisServer) -> AsyncIterator[solcache.RedisPool]:
    async with await solcache.RedisPool.connect(redis_server.url) as p:
        yield p


async def _eventually(fn: Callable[[], Awaitable[T]], within_s: float = 5.0) -> T:
    """Await `fn()` until it returns without raising; re-raise its last error after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    return _eventually


@pytest.fixture
def events(pool: solcache.RedisPool) -> solcache.EventStream:
    """An EventStream on the shared (emptied) server, default maxlen."""
    return solcache.EventStream(pool)


# --- the HTTP gateway (solcache.web), served by uvicorn on a free port ---------------------

SOL_USDC_POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"


class RunningGateway:
    """A `solcache.web` app served by `GatewayServer` in the test's event loop."""

    def __init__(self, app: Any, server: Any, task: asyncio.Task[None], port: int) -> None:
        self.app = app
        self.server = server
        self.task = task
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.hub = app.state.hub

    async def stop(self, within_s: float = 10.0) -> None:
        """Shut the server down (lifespan included) and wait for it."""
        if self.task.done():
            return
        self.server.should_exit = True
        await asyncio.wait_for(asyncio.shield(self.task), within_s)


@pytest.fixture
async def start_gateway() -> AsyncIterator[Callable[..., Awaitable[RunningGateway]]]:
    """`await start_gateway(pool, port=None, **create_app_kwargs)`: a running gateway over
    `pool` (tokens: the MVP tokens, pools: SOL-USDC), stopped at teardown."""
    from solcache.web import GatewayServer, create_app

    running: list[RunningGateway] = []

    async def start(
        pool: solcache.RedisPool, port: int | None = None, **kwargs: Any
    ) -> RunningGateway:
        kwargs.setdefault("tokens", solcache.MVP_TOKENS)
        kwargs.setdefault("pool_addresses", [SOL_USDC_POOL])
        app = create_app(
            pool,
            solcache.EventStream(pool),
            prices=solcache.PriceCache(pool),
            pools=solcache.PoolStateCache(pool),
            **kwargs,
        )
        port = port if port is not None else free_port()
        server = GatewayServer(app, port=port, install_signal_handlers=False)
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                await task  # raises what stopped it
                raise RuntimeError(f"the gateway did not start on port {port}")
            await asyncio.sleep(0.01)
        gateway = RunningGateway(app, server, task, port)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        await gateway.stop()
