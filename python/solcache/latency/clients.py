"""The clients a benchmark run measures: how to open one, and what its calls are.

Every client reads the prices the run seeded (``price:{token}``) and returns decoded objects:
``get`` reads the first token, ``get_many`` all of them in one call, and each read's
``price`` (a ``Decimal``) and ``timestamp`` (a ``datetime``) are touched, so a client that
builds them lazily pays for them like one that builds them eagerly. solcache's async and sync
caches are built here; any other client is one more :class:`ClientSpec`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from solcache import sync
from solcache._core import PriceCache
from solcache.latency.target import Target
from solcache.redis_pool import RedisPool

__all__ = [
    "AsyncClient",
    "ClientSpec",
    "ClientUnavailable",
    "SyncClient",
    "installed_version",
    "read_fields",
    "solcache_async_client",
    "solcache_sync_spec",
]


class ClientUnavailable(Exception):
    """The client cannot be measured here; the message is the table's note (one line)."""


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
    """One client to measure. ``key`` is stable (JSON); ``label`` is for the table.

    ``module`` must be importable; ``missing`` is the note when it is not. Exactly one of
    ``open_async`` / ``open_sync`` is set; both take the target, the tokens and the pool size.
    ``concurrent``: an async client also measured with the run's concurrent callers.
    """

    key: str
    label: str
    module: str
    missing: str
    open_async: AsyncOpener | None = None
    open_sync: SyncOpener | None = None
    concurrent: bool = False

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


def read_fields(item: Any) -> Any:
    """Read ``item.price`` and ``item.timestamp`` (each value's, for a dict) and return it:
    the work a caller of any client does with a price."""
    for value in item.values() if isinstance(item, dict) else (item,):
        if value is not None:
            _ = (value.price, value.timestamp)
    return item


def solcache_async_client(pool: RedisPool, tokens: Sequence[str]) -> AsyncClient:
    """``PriceCache(pool).get`` / ``get_many`` (the pool stays open: the caller owns it)."""
    cache = PriceCache(pool)
    token, token_list = tokens[0], list(tokens)

    async def get() -> object:
        return read_fields(await cache.get(token))

    async def get_many() -> object:
        return read_fields(await cache.get_many(token_list))

    async def close() -> None:
        return None

    return AsyncClient(get, get_many, close)


def _open_solcache_sync(target: Target, tokens: Sequence[str], max_size: int) -> SyncClient:
    """``solcache.sync.RedisPool.connect(url, max_size=…)`` and ``solcache.sync.PriceCache``."""
    pool = sync.RedisPool.connect(target.url, max_size=max_size, key_layout="spread")
    return _sync_client(pool, tokens)


def _open_solcache_sync_unpolled(
    target: Target, tokens: Sequence[str], max_size: int
) -> SyncClient:
    """The same with ``direct_reads=False``: the read sleeps in the kernel until its reply."""
    pool = sync.RedisPool.connect(
        target.url, max_size=max_size, direct_reads=False, key_layout="spread"
    )
    return _sync_client(pool, tokens)


def _sync_client(pool: sync.RedisPool, tokens: Sequence[str]) -> SyncClient:
    cache = sync.PriceCache(pool)
    token, token_list = tokens[0], list(tokens)
    return SyncClient(
        lambda: read_fields(cache.get(token)),
        lambda: read_fields(cache.get_many(token_list)),
        pool.close,
    )


def solcache_sync_spec(polled: bool = True) -> ClientSpec:
    """solcache's blocking API (:mod:`solcache.sync`) as a client to measure; ``polled=False``:
    with ``direct_reads=False`` (no polling: what polling buys, and what it costs in CPU)."""
    if not polled:
        return ClientSpec(
            "solcache-sync-unpolled", "solcache sync, direct_reads=False", "solcache.sync",
            "not available", open_sync=_open_solcache_sync_unpolled,
        )  # fmt: skip
    return ClientSpec(
        "solcache-sync", "solcache sync", "solcache.sync", "not available",
        open_sync=_open_solcache_sync,
    )  # fmt: skip
