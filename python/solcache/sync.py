"""The blocking API, for synchronous services (threads, WSGI, scripts).

Same caches, keys, JSON and errors as the async API; each call blocks the calling thread
for one Redis round trip and releases the GIL while it waits, so other threads run::

    from solcache import sync

    with sync.RedisPool.connect("redis://127.0.0.1:6379/0") as pool:
        prices = sync.PriceCache(pool)
        sol = prices.get("SOL")

The pool is thread-safe: share one per process. It does its I/O on the calling thread (no
runtime, no thread hop), which makes it the fastest way to read one key from Python. Every URL
the async pool takes works here too: one server, Sentinel (``redis+sentinel://``) and Redis
Cluster (``redis+cluster://``, requests routed by slot; see docs/scaling.md).
"""

from __future__ import annotations

from types import TracebackType

from solcache import _core
from solcache.config import KeyLayout, Settings

__all__ = ["PoolStateCache", "PriceCache", "RedisPool"]

PriceCache = _core.SyncPriceCache
PoolStateCache = _core.SyncPoolStateCache


class RedisPool(_core.SyncRedisPool):
    """A thread-safe pool of blocking Redis connections, opened with :meth:`connect`.

    Arguments left out come from :class:`solcache.Settings` (``SOLCACHE_*`` variables).
    Timeouts are in milliseconds: ``connect_timeout_ms`` per connect, ``response_timeout_ms``
    per reply, ``checkout_timeout_ms`` to wait for a free connection when all
    ``max_size`` are busy (then ``PoolExhaustedError``).
    """

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        max_size: int | None = None,
        connect_timeout_ms: int | None = None,
        response_timeout_ms: int | None = None,
        checkout_timeout_ms: int | None = None,
        slow_threshold_ms: float | None = None,
        near_cache: bool | None = None,
        near_cache_max_bytes: int | None = None,
        direct_reads: bool | None = None,
        direct_spin_us: int | None = None,
        key_layout: KeyLayout | None = None,
        settings: Settings | None = None,
    ) -> RedisPool:
        """Connect and check the server is Redis ≥ 6.2 (blocks up to ``connect_timeout_ms``).

        ``direct_reads`` (default on): cache reads take a socket of their own beside each
        pooled connection and poll it for the reply for up to ``direct_spin_us`` (100) before
        the thread sleeps; a local reply comes sooner than a sleeping thread wakes. Polling
        holds the calling thread (not the GIL), only while no other read of the pool waits,
        and stops by itself against a remote server; 0 never polls.

        Raises ``ConnectionError`` (``AuthenticationError`` for refused credentials).
        ``near_cache`` (default off, ``SOLCACHE_NEAR_CACHE``): reads served from process
        memory, kept correct by Redis' invalidations; see docs/near-cache.md.
        ``key_layout`` (default ``"spread"``, ``SOLCACHE_KEY_LAYOUT``): see
        ``solcache.RedisPool.connect``.
        """
        s = settings if settings is not None else Settings()
        return cls(
            url if url is not None else s.effective_redis_url,
            max_size=max_size if max_size is not None else s.pool_max_size,
            connect_timeout_ms=(
                connect_timeout_ms if connect_timeout_ms is not None else s.connect_timeout_ms
            ),
            response_timeout_ms=(
                response_timeout_ms if response_timeout_ms is not None else s.response_timeout_ms
            ),
            checkout_timeout_ms=(
                checkout_timeout_ms if checkout_timeout_ms is not None else s.checkout_timeout_ms
            ),
            slow_threshold_ms=(
                slow_threshold_ms if slow_threshold_ms is not None else s.slow_threshold_ms
            ),
            near_cache=near_cache if near_cache is not None else s.near_cache,
            near_cache_max_bytes=(
                near_cache_max_bytes if near_cache_max_bytes is not None else s.near_cache_max_bytes
            ),
            direct_reads=direct_reads if direct_reads is not None else s.direct_reads,
            direct_spin_us=direct_spin_us if direct_spin_us is not None else s.direct_spin_us,
            key_layout=key_layout if key_layout is not None else s.key_layout,
        )

    def __enter__(self) -> RedisPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"sync.RedisPool(url={self.url!r}, max_size={self.max_size}, {state})"
