"""The connection pool every cache shares."""

from __future__ import annotations

from types import TracebackType

from solcache import _core
from solcache.config import KeyLayout, Settings

__all__ = ["RedisPool"]


class RedisPool(_core.RedisPool):
    """A pool of Redis connections managed by the Rust core (bb8).

    Open it with ``await RedisPool.connect(url)``; close it with ``await pool.close()`` or use
    it as ``async with await RedisPool.connect() as pool``. Arguments left out come from
    :class:`solcache.Settings`, i.e. from ``SOLCACHE_*`` environment variables.
    """

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        max_size: int | None = None,
        min_idle: int | None = None,
        connect_timeout_ms: int | None = None,
        response_timeout_ms: int | None = None,
        checkout_timeout_ms: int | None = None,
        health_check_interval_ms: int | None = None,
        slow_threshold_ms: float | None = None,
        direct_reads: bool | None = None,
        direct_spin_us: int | None = None,
        near_cache: bool | None = None,
        near_cache_max_bytes: int | None = None,
        key_layout: KeyLayout | None = None,
        settings: Settings | None = None,
    ) -> RedisPool:
        """Connect, check the server is Redis ≥ 6.2, and start the background health check.

        Raises ``ConnectionError`` (``AuthenticationError`` for refused credentials) when the
        server cannot be reached within ``connect_timeout_ms``.

        ``direct_reads`` (default on): cache ``get``/``get_many`` and a lone
        ``EventStream.publish`` awaited on an asyncio loop go over a connection that loop
        reads itself, with no thread hop (plain TCP and unix
        sockets; TLS reads use the pool; on a cluster, a socket per primary the runtime reads,
        see docs/scaling.md). ``direct_spin_us``: a lone direct read polls its
        socket this long for the reply before yielding to the loop, so a fast reply skips a
        loop iteration; it stops polling by itself when replies take longer (remote server).
        See docs/performance.md.

        ``near_cache`` (default off, ``SOLCACHE_NEAR_CACHE``): every cache made from this pool
        serves reads from process memory, kept correct by Redis' invalidations, bounded by
        ``near_cache_max_bytes`` (``SOLCACHE_NEAR_CACHE_MAX_BYTES``). See docs/near-cache.md.

        ``key_layout`` (default ``"spread"``, ``SOLCACHE_KEY_LAYOUT``): ``"tagged"`` names the
        caches' keys ``price:{prices}:<token>`` and ``pool:{pools}:<address>``, one Redis
        Cluster slot per family, so a ``get_many`` is one ``MGET`` on one node. Every process
        sharing the data must use the same layout. See docs/scaling.md.
        """
        s = settings if settings is not None else Settings()
        handle = await _core.open_pool(
            url if url is not None else s.effective_redis_url,
            max_size=_pick(max_size, s.pool_max_size),
            min_idle=_pick(min_idle, s.pool_min_idle),
            connect_timeout_ms=_pick(connect_timeout_ms, s.connect_timeout_ms),
            response_timeout_ms=_pick(response_timeout_ms, s.response_timeout_ms),
            checkout_timeout_ms=_pick(checkout_timeout_ms, s.checkout_timeout_ms),
            health_check_interval_ms=_pick(health_check_interval_ms, s.health_check_interval_ms),
            slow_threshold_ms=(
                slow_threshold_ms if slow_threshold_ms is not None else s.slow_threshold_ms
            ),
            direct_reads=direct_reads if direct_reads is not None else s.direct_reads,
            direct_spin_us=_pick(direct_spin_us, s.direct_spin_us),
            near_cache=near_cache if near_cache is not None else s.near_cache,
            near_cache_max_bytes=_pick(near_cache_max_bytes, s.near_cache_max_bytes),
            key_layout=key_layout if key_layout is not None else s.key_layout,
        )
        return cls(handle)

    async def __aenter__(self) -> RedisPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def cluster_direct_stats(self) -> dict[str, int] | None:
        """How a Redis Cluster pool's cache reads went, counted since it opened.

        ``None`` unless the URL is a cluster (``redis+cluster://`` or ``rediss+cluster://``).
        Keys: ``direct`` (reads answered over the pool's own socket to the key's primary),
        ``fallbacks`` (reads sent through the cluster client instead: a redirection, an error
        reply, a broken socket or a timeout on the direct path), ``refreshes`` (reads of the
        slot table), ``sockets`` (direct sockets open now, over every primary), ``polled``
        (direct reads whose reply was polled for) and ``poll_hits`` (of those, the ones
        answered while polling). ``fallbacks`` growing as fast as ``direct`` means reads
        take the slower path. All stay 0 when reads never take the direct path
        (``direct_reads=False``, TLS). No round trip. See docs/scaling.md.
        """
        return super().cluster_direct_stats()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"RedisPool(url={self.url!r}, max_size={self.max_size}, {state})"


def _pick(value: int | None, default: int) -> int:
    return value if value is not None else default
