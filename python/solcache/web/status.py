"""What ``/api/status`` reports, computed at most once per ``ttl_s`` however many tabs poll.

The report: Redis health (``await pool.health()``), read latency per read operation (p50 /
p99 / p99.9 in µs from ``pool.metrics()``), the services' own state (the ``status`` callable),
per-stream length and how far the gateway's reader is behind, and the gateway's counters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping

from solcache._core import EventStream, RedisPool, StreamInfo
from solcache.exceptions import ResponseError
from solcache.web.hub import EventHub
from solcache.web.ids import STREAMS

__all__ = ["READ_OPERATIONS", "StatusReporter"]

logger = logging.getLogger("solcache.web")

#: The operations whose latency the dashboard shows as "read latency".
READ_OPERATIONS = ("price_get", "price_get_many", "pool_get", "pool_get_many")

StatusCallable = Callable[[], Mapping[str, object]]


class StatusReporter:
    """Builds the status document; concurrent callers within ``ttl_s`` share one build."""

    def __init__(
        self,
        pool: RedisPool,
        events: EventStream,
        hub: EventHub,
        status: StatusCallable | None,
        *,
        ttl_s: float = 0.5,
        timeout_s: float = 2.0,
    ) -> None:
        if not (0 <= ttl_s < math.inf and 0 < timeout_s < math.inf):
            raise ValueError("ttl_s must be finite and ≥ 0, timeout_s finite and > 0")
        self._pool = pool
        self._events = events
        self._hub = hub
        self._status = status
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._cached: tuple[float, dict[str, object]] | None = None
        self._building: asyncio.Future[dict[str, object]] | None = None

    async def report(self) -> dict[str, object]:
        """The status document (see the module docstring)."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self._ttl_s:
            return self._cached[1]
        if self._building is None:
            self._building = asyncio.ensure_future(self._build())
            self._building.add_done_callback(self._built)
        return await asyncio.shield(self._building)

    def _built(self, future: asyncio.Future[dict[str, object]]) -> None:
        self._building = None
        if not future.cancelled() and future.exception() is None:
            self._cached = (time.monotonic(), future.result())

    async def reachable(self) -> tuple[bool, str | None]:
        """Whether Redis answers a PING within ``timeout_s``, and the error if not."""
        try:
            async with asyncio.timeout(self._timeout_s):
                health = await self._pool.health()
        except Exception as exc:
            return False, str(exc) or "health probe timed out"
        return health.reachable, health.error

    async def _build(self) -> dict[str, object]:
        redis = await self._redis()
        streams = await self._streams() if redis.get("reachable") else {}
        service: Mapping[str, object] = {}
        if self._status is not None:
            try:
                service = self._status()
            except Exception as exc:
                logger.exception("the status callable failed")
                service = {"error": str(exc)}
        hub = self._hub
        return {
            "time": time.time(),
            "redis": redis,
            "read_latency_us": self._latency(),
            "service": dict(service),
            "streams": streams,
            "gateway": {
                "reader": "running" if hub.running else "stopped",
                "reader_error": hub.last_error,
                "clients": len(hub.clients),
                "position": dict(zip(STREAMS, hub.position or (), strict=False)),
                **dataclasses.asdict(hub.totals()),
            },
        }

    async def _redis(self) -> dict[str, object]:
        try:
            async with asyncio.timeout(self._timeout_s):
                h = await self._pool.health()
        except Exception as exc:
            return {"reachable": False, "error": str(exc) or "health probe timed out"}
        return {
            "reachable": h.reachable,
            "rtt_ms": h.rtt_ms,
            "redis_version": h.redis_version,
            "error": h.error,
            "url": self._pool.url,
            "connections": h.connections,
            "idle": h.idle,
            "in_use": h.in_use,
            "waiting": h.waiting,
            "max_size": self._pool.max_size,
        }

    def _latency(self) -> dict[str, dict[str, float]]:
        metrics = self._pool.metrics()
        out = {}
        for name in READ_OPERATIONS:
            st = metrics.get(name)
            if st is not None:
                out[name] = {
                    "count": st.count,
                    "errors": st.errors,
                    "p50": st.p50_us,
                    "p99": st.p99_us,
                    "p999": st.p999_us,
                    "max": st.max_us,
                }
        return out

    async def _streams(self) -> dict[str, object]:
        try:
            async with asyncio.timeout(self._timeout_s):
                results = await asyncio.gather(
                    *(self._events.info(s) for s in STREAMS), return_exceptions=True
                )
        except TimeoutError:
            return {}
        position = self._hub.position
        out: dict[str, object] = {}
        for i, (stream, info) in enumerate(zip(STREAMS, results, strict=True)):
            if isinstance(info, StreamInfo):
                read = position[i] if position is not None else None
                out[stream] = {
                    "length": info.length,
                    "last_id": info.last_id,
                    "gateway_id": read,
                    "gateway_caught_up": info.last_id is None or info.last_id == read,
                    "groups": {g.name: {"lag": g.lag, "pending": g.pending} for g in info.groups},
                }
            elif isinstance(info, ResponseError):
                out[stream] = {"length": 0, "last_id": None}
        return out
