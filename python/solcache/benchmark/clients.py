"""The clients compared with solcache, each doing the work a solcache read does.

Every client reads the JSON solcache writes (``price:{token}``) and turns it into an object
with a ``Decimal`` price and an aware ``datetime``: ``get`` is one GET, ``get_many`` one MGET
of all the benchmark's tokens. Peers are imported with :mod:`importlib` only when measured,
so the package needs none of them; a missing one is reported, never installed here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from solcache._core import PriceCache, price_key
from solcache.benchmark.target import Target
from solcache.pool import RedisPool

__all__ = [
    "AsyncClient",
    "ClientSpec",
    "ClientUnavailable",
    "PeerPrice",
    "SyncClient",
    "client_specs",
    "decode_price",
    "installed_version",
    "solcache_async_client",
]

#: Seconds a peer waits for a pooled connection or a reply before failing the call.
PEER_TIMEOUT_S = 5.0


class ClientUnavailable(Exception):
    """The client cannot be measured here; the message is the table's note (one line)."""


@dataclass(frozen=True, slots=True)
class PeerPrice:
    """What a peer builds from one ``price:{token}`` value (solcache builds a PriceData)."""

    token: str
    price: Decimal
    timestamp: datetime
    source: str


def decode_price(raw: bytes | str | None) -> PeerPrice | None:
    """``json.loads`` + ``Decimal(price)`` + ``datetime.fromisoformat`` of one value."""
    if raw is None:
        return None
    d = json.loads(raw)
    return PeerPrice(
        d["token"], Decimal(d["price"]), datetime.fromisoformat(d["timestamp"]), d["source"]
    )


@dataclass(frozen=True, slots=True)
class AsyncClient:
    """An opened async client: ``get()`` reads the first token, ``get_many()`` all of them."""

    get: Callable[[], Awaitable[object]]
    get_many: Callable[[], Awaitable[object]]
    close: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SyncClient:
    """An opened blocking client; same operations as :class:`AsyncClient`."""

    get: Callable[[], object]
    get_many: Callable[[], object]
    close: Callable[[], None]


AsyncOpener = Callable[[Target, Sequence[str], int], Awaitable[AsyncClient]]
SyncOpener = Callable[[Target, Sequence[str], int], SyncClient]


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One client to measure. ``key`` is stable (JSON, goals); ``label`` is for the table.

    ``module`` must be importable; ``missing`` is the note when it is not. Exactly one of
    ``open_async`` / ``open_sync`` is set; both take the target, the tokens and the pool size.
    """

    key: str
    label: str
    module: str
    missing: str
    open_async: AsyncOpener | None = None
    open_sync: SyncOpener | None = None

    def importable(self) -> bool:
        """True when :attr:`module` can be imported (without importing it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ImportError:  # a missing parent package
            return False


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _many(tokens: Sequence[str], values: Sequence[bytes | str | None]) -> dict[str, object]:
    return {t: decode_price(v) for t, v in zip(tokens, values, strict=True)}


# --- solcache ------------------------------------------------------------------------------


def solcache_async_client(pool: RedisPool, tokens: Sequence[str]) -> AsyncClient:
    """``PriceCache(pool).get`` / ``get_many`` (the pool stays open: the caller owns it)."""
    cache = PriceCache(pool)
    token, tokens = tokens[0], list(tokens)

    async def close() -> None:
        return None

    return AsyncClient(lambda: cache.get(token), lambda: cache.get_many(tokens), close)


def _open_solcache_sync(target: Target, tokens: Sequence[str], max_size: int) -> SyncClient:
    """``solcache.sync.RedisPool.connect(url, max_size=…)`` and ``solcache.sync.PriceCache``."""
    try:
        sync: Any = importlib.import_module("solcache.sync")
    except Exception as e:  # also a module that exists but does not match the extension
        raise ClientUnavailable(f"not available ({type(e).__name__}: {e})") from e
    pool_cls = getattr(sync, "RedisPool", None)
    if pool_cls is None or not hasattr(sync, "PriceCache"):
        raise ClientUnavailable("not available (solcache.sync has no RedisPool/PriceCache)")
    connect = getattr(pool_cls, "connect", None)
    pool = connect(target.url, max_size=max_size) if connect else pool_cls(target.url)
    if inspect.isawaitable(pool):
        raise ClientUnavailable("not available (solcache.sync.RedisPool.connect is async)")
    cache = sync.PriceCache(pool)
    token, token_list = tokens[0], list(tokens)

    def close() -> None:
        closer = getattr(pool, "close", None)
        if closer is not None:
            closer()

    return SyncClient(lambda: cache.get(token), lambda: cache.get_many(token_list), close)


# --- redis-py ------------------------------------------------------------------------------


def _redis_py_kwargs(target: Target, module: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "socket_timeout": PEER_TIMEOUT_S,
    }
    if target.unix_socket is not None:
        kwargs.update(connection_class=module.UnixDomainSocketConnection, path=target.unix_socket)
    else:
        kwargs.update(host=target.host, port=target.port)
        if target.tls:
            kwargs.update(
                connection_class=module.SSLConnection,
                ssl_cert_reqs="none" if target.insecure else "required",
            )
    return kwargs


async def _open_redis_py_async(target: Target, tokens: Sequence[str], max_size: int) -> AsyncClient:
    """redis-py's asyncio client on a ``BlockingConnectionPool`` of ``max_size``."""
    aio: Any = importlib.import_module("redis.asyncio")
    pool = aio.BlockingConnectionPool(
        max_connections=max_size, timeout=PEER_TIMEOUT_S, **_redis_py_kwargs(target, aio)
    )
    client = aio.Redis(connection_pool=pool)
    key, keys = price_key(tokens[0]), [price_key(t) for t in tokens]

    async def get() -> object:
        return decode_price(await client.get(key))

    async def get_many() -> object:
        return _many(tokens, await client.mget(keys))

    async def close() -> None:
        await client.aclose()
        await pool.disconnect()

    return AsyncClient(get, get_many, close)


def _open_redis_py_sync(target: Target, tokens: Sequence[str], max_size: int) -> SyncClient:
    """redis-py's blocking client (one connection is enough for sequential calls)."""
    redis: Any = importlib.import_module("redis")
    pool = redis.ConnectionPool(max_connections=max_size, **_redis_py_kwargs(target, redis))
    client = redis.Redis(connection_pool=pool)
    key, keys = price_key(tokens[0]), [price_key(t) for t in tokens]

    def close() -> None:
        client.close()
        pool.disconnect()

    return SyncClient(
        lambda: decode_price(client.get(key)), lambda: _many(tokens, client.mget(keys)), close
    )


def _redis_py_label(kind: str) -> str:
    """``redis-py asyncio (hiredis)`` when redis-py will parse with hiredis."""
    if importlib.util.find_spec("redis") is None:
        return f"redis-py {kind}"
    try:
        utils: Any = importlib.import_module("redis.utils")
        parser = "hiredis" if utils.HIREDIS_AVAILABLE else "Python parser"
    except Exception:  # a broken install is reported when the row is opened
        parser = "?"
    return f"redis-py {kind} ({parser})"


# --- coredis and valkey-glide --------------------------------------------------------------


async def _open_coredis(target: Target, tokens: Sequence[str], max_size: int) -> AsyncClient:
    """coredis' asyncio client (entered as an async context, which it requires)."""
    coredis: Any = importlib.import_module("coredis")
    kwargs: dict[str, Any] = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "max_connections": max_size,
        "stream_timeout": PEER_TIMEOUT_S,
    }
    if target.unix_socket is not None:
        kwargs["unix_socket_path"] = target.unix_socket
    else:
        kwargs.update(host=target.host, port=target.port)
        if target.tls:
            kwargs.update(ssl=True, ssl_cert_reqs="none" if target.insecure else "required")
    stack = AsyncExitStack()
    client = await stack.enter_async_context(coredis.Redis(**kwargs))
    key, keys = price_key(tokens[0]), [price_key(t) for t in tokens]

    async def get() -> object:
        return decode_price(await client.get(key))

    async def get_many() -> object:
        return _many(tokens, await client.mget(keys))

    return AsyncClient(get, get_many, stack.aclose)


async def _open_glide(target: Target, tokens: Sequence[str], max_size: int) -> AsyncClient:
    """valkey-glide's asyncio ``GlideClient`` (TCP only: it takes host and port)."""
    if target.unix_socket is not None:
        raise ClientUnavailable("not measured: valkey-glide connects over TCP only")
    glide: Any = importlib.import_module("glide")
    kwargs: dict[str, Any] = {
        "use_tls": target.tls,
        "database_id": target.db,
        "request_timeout": int(PEER_TIMEOUT_S * 1000),
    }
    if target.password is not None:
        kwargs["credentials"] = glide.ServerCredentials(target.password, target.username)
    if target.insecure:
        kwargs["advanced_config"] = glide.AdvancedGlideClientConfiguration(
            tls_config=glide.TlsAdvancedConfiguration(use_insecure_tls=True)
        )
    config = glide.GlideClientConfiguration([glide.NodeAddress(target.host, target.port)], **kwargs)
    client = await glide.GlideClient.create(config)
    key, keys = price_key(tokens[0]), [price_key(t) for t in tokens]

    async def get() -> object:
        return decode_price(await client.get(key))

    async def get_many() -> object:
        return _many(tokens, await client.mget(keys))

    async def close() -> None:
        await client.close()

    return AsyncClient(get, get_many, close)


def client_specs() -> list[ClientSpec]:
    """solcache's sync API and the peers, in table order (solcache async is built apart)."""
    return [
        ClientSpec(
            "solcache-sync", "solcache sync", "solcache.sync",
            "not available (no solcache.sync in this build)",
            open_sync=_open_solcache_sync,
        ),
        ClientSpec(
            "redis-py-asyncio", _redis_py_label("asyncio"), "redis", "not installed",
            open_async=_open_redis_py_async,
        ),
        ClientSpec(
            "redis-py-sync", _redis_py_label("sync"), "redis", "not installed",
            open_sync=_open_redis_py_sync,
        ),
        ClientSpec(
            "coredis", "coredis asyncio", "coredis", "not installed", open_async=_open_coredis
        ),
        ClientSpec(
            "valkey-glide", "valkey-glide asyncio", "glide", "not installed",
            open_async=_open_glide,
        ),
    ]  # fmt: skip
