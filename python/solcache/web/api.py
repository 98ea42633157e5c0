"""The read-only JSON and text endpoints: ``/api/status``, ``/api/prices``, ``/api/pools``,
``/metrics``, ``/healthz`` and the dashboard page ``/``.

Cached values are returned as the JSON the Rust core wrote (embedded verbatim, not re-parsed).
A cache read that fails (Redis down, timeout) answers 503 with ``{"error": …}``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from solcache._core import PoolStateCache, PriceCache
from solcache.web.status import StatusReporter

__all__ = ["Api"]

_NO_STORE = {"cache-control": "no-store"}


class _HasJson(Protocol):
    def to_json(self) -> str: ...


class Api:
    """Request handlers bound to the caches, the status reporter and the metrics registry."""

    def __init__(
        self,
        *,
        prices: PriceCache,
        pools: PoolStateCache,
        tokens: Sequence[str],
        pool_addresses: Sequence[str],
        reporter: StatusReporter,
        registry: CollectorRegistry,
        read_timeout_s: float = 2.0,
        health: Callable[[], tuple[bool, str]] | None = None,
        pool_pairs: Mapping[str, str] | None = None,
    ) -> None:
        if not 0 < read_timeout_s < math.inf:
            raise ValueError("read_timeout_s must be finite and > 0")
        self._prices = prices
        self._pools = pools
        self._tokens = list(tokens)
        self._pool_addresses = list(pool_addresses)
        self._pairs_json = json.dumps(dict(pool_pairs or {}), separators=(",", ":"))
        self._reporter = reporter
        self._health = health
        self._registry = registry
        self._timeout_s = read_timeout_s
        self._page = resources.files("solcache.web").joinpath("dashboard.html").read_bytes()

    async def dashboard(self, request: Request) -> Response:
        """The single-page dashboard (inline JS and CSS, no external resources)."""
        return HTMLResponse(self._page, headers=_NO_STORE)

    async def status(self, request: Request) -> Response:
        """Redis health, read latency, service state, streams and gateway counters."""
        report = await self._reporter.report()
        try:
            body = json.dumps(report, default=str, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a NaN or infinity somewhere: JSON has no spelling for them
            body = json.dumps(_finite(report), default=str, separators=(",", ":"))
        return Response(body, media_type="application/json", headers=_NO_STORE)

    async def prices(self, request: Request) -> Response:
        """``{"time": unix s, "prices": {token: PriceData JSON or null}}`` (one MGET)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                found = await self._prices.get_many(self._tokens)
        except Exception as exc:
            return _unavailable(exc)
        return _snapshot("prices", found)

    async def pools(self, request: Request) -> Response:
        """``{"time": unix s, "pools": {address: PoolState JSON or null}, "pairs": {address:
        "SOL/USDC"}}`` (one MGET; ``pairs`` has the pools whose pair the service knows)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                found = await self._pools.get_many(self._pool_addresses)
        except Exception as exc:
            return _unavailable(exc)
        return _snapshot("pools", found, f',"pairs":{self._pairs_json}')

    async def healthz(self, request: Request) -> Response:
        """200 ``ok`` when healthy, 503 with the reason otherwise: the ``health`` callable's
        verdict when there is one, else whether Redis answers."""
        if self._health is not None:
            healthy, text = self._health()
            status_code = 200 if healthy else 503
            return Response(text, status_code, media_type="text/plain", headers=_NO_STORE)
        reachable, error = await self._reporter.reachable()
        if reachable:
            return Response("ok\n", media_type="text/plain", headers=_NO_STORE)
        return Response(f"redis unreachable: {error}\n", 503, media_type="text/plain")

    async def metrics(self, request: Request) -> Response:
        """The registry in the Prometheus text format."""
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)


def _snapshot(name: str, found: Mapping[str, _HasJson | None], extra: str = "") -> Response:
    items = ",".join(
        f"{json.dumps(key)}:{value.to_json() if value is not None else 'null'}"
        for key, value in found.items()
    )
    body = f'{{"time":{time.time()!r},"{name}":{{{items}}}{extra}}}'
    return Response(body, media_type="application/json", headers=_NO_STORE)


def _finite(value: object) -> object:
    """``value`` with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _unavailable(exc: Exception) -> Response:
    return JSONResponse({"error": str(exc) or "redis read timed out"}, 503, headers=_NO_STORE)
