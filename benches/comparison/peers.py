"""The peers solcache is compared with, each doing the work a solcache read does.

Every peer reads the JSON solcache writes (``price:{token}``) and turns it into an object with
a ``Decimal`` price and an aware ``datetime``: ``get`` is one GET, ``get_many`` one MGET of all
the run's tokens; like solcache's rows, each read's ``price`` and ``timestamp`` are then read
(:func:`solcache.latency.clients.read_fields`). redis-py's asyncio client runs twice: on its
default ``ConnectionPool`` (what ``Redis(host=…)`` builds: a new connection whenever all are
busy, up to 100, then a call fails) and on a ``BlockingConnectionPool`` of the run's pool
size (callers wait for one). Peers are imported with :mod:`importlib` only when measured, so
a missing one is a row that says "not installed" (``benches/compare.py`` installs them first).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from solcache import price_key
from solcache.latency.clients import (
    AsyncClient,
    ClientSpec,
    ClientUnavailable,
    SyncClient,
    installed_version,
    read_fields,
)
from solcache.latency.target import Target

__all__ = ["PEER_REQUIREMENTS", "PeerPrice", "decode_price", "peer_specs", "peer_versions"]

#: Seconds a peer waits for a pooled connection or a reply before failing the call.
PEER_TIMEOUT_S = 5.0
#: The peers and the versions measured (``pip index versions`` on 2026-11-26): the module that
#: shows one is installed → its requirement.
PEER_REQUIREMENTS = {
    "redis": "redis[hiredis]==8.1.0",
    "hiredis": "hiredis==3.5.0",
    "coredis": "coredis==6.9.0",
    "glide": "valkey-glide==2.6.0",
}


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


def _one(raw: bytes | str | None) -> object:
    return read_fields(decode_price(raw))


def _many(tokens: Sequence[str], values: Sequence[bytes | str | None]) -> dict[str, object]:
    return read_fields({t: decode_price(v) for t, v in zip(tokens, values, strict=True)})


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
    return _redis_py_async_client(aio.Redis(connection_pool=pool), pool, tokens)


async def _open_redis_py_async_default(
    target: Target, tokens: Sequence[str], _max_size: int
) -> AsyncClient:
    """redis-py's asyncio client as ``Redis(host=…)`` builds it: its default ``ConnectionPool``."""
    aio: Any = importlib.import_module("redis.asyncio")
    pool = aio.ConnectionPool(**_redis_py_kwargs(target, aio))
    return _redis_py_async_client(aio.Redis(connection_pool=pool), pool, tokens)


def _redis_py_async_client(client: Any, pool: Any, tokens: Sequence[str]) -> AsyncClient:
    key, keys = price_key(tokens[0]), [price_key(t) for t in tokens]

    async def get() -> object:
        return _one(await client.get(key))

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
        lambda: _one(client.get(key)), lambda: _many(tokens, client.mget(keys)), close
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
        return _one(await client.get(key))

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
        return _one(await client.get(key))

    async def get_many() -> object:
        return _many(tokens, await client.mget(keys))

    async def close() -> None:
        await client.close()

    return AsyncClient(get, get_many, close)


def peer_specs() -> list[ClientSpec]:
    """The peers in table order; redis-py's asyncio client also runs the concurrent rows."""
    return [
        ClientSpec(
            "redis-py-asyncio-default-pool", _redis_py_label("asyncio") + ", ConnectionPool",
            "redis", "not installed", open_async=_open_redis_py_async_default, concurrent=True,
        ),
        ClientSpec(
            "redis-py-asyncio", _redis_py_label("asyncio") + ", BlockingConnectionPool",
            "redis", "not installed", open_async=_open_redis_py_async, concurrent=True,
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


def peer_versions() -> str:
    """``redis 8.1.0, hiredis 3.5.0, …`` (or ``not installed``) for the report."""
    dists = (re.split(r"[\[=]", req)[0] for req in PEER_REQUIREMENTS.values())
    return ", ".join(f"{d} {installed_version(d) or 'not installed'}" for d in dists)
