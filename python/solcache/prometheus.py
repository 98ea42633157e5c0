"""Prometheus metrics for solcache, built at scrape time from the Rust core's counters.

:class:`SolcacheCollector` is a ``prometheus_client`` custom collector: nothing is recorded in
Python per cache operation. A scrape reads ``RedisPool.metrics()`` (the core's HDR histograms,
one call) plus a cached snapshot of the pool's health and counts and of each stream's length
and consumer-group lag. Collectors are synchronous while ``pool.health()`` and
``EventStream.info()`` are not, so a :class:`MetricsRefresher` (a background task with
``start()`` / ``stop()``) refreshes that snapshot every second.

Usage::

    registry, refresher = build_registry(pool, events, services.snapshot)
    refresher.start()  # inside the running event loop
    ...                # serve generate_latest(registry) at /metrics
    await refresher.stop()

Metrics (every latency is in seconds; the core measures microseconds):

Operations (``operation`` is the core's name, :data:`OPERATIONS`; the core reports only
operations called at least once, the others are exported as zero so every series exists from
the first scrape):

- ``solcache_operation_latency_seconds{operation,quantile}`` (summary): p50, p99 and p99.9
  (``quantile`` ``0.5``, ``0.99``, ``0.999``; NaN before the first call) since the pool opened,
  with ``_sum`` and ``_count``.
- ``solcache_operation_latency_max_seconds{operation}`` (gauge): slowest call so far (absent
  before the first call).
- ``solcache_operations_total{operation}`` (counter): completed calls, failed ones included.
- ``solcache_operation_errors_total{operation}`` (counter): calls that ended in an error.
- ``solcache_slow_operations_total{operation}`` (counter): calls slower than the pool's
  ``slow_threshold_ms`` (cache reads and writes only; stream and admin calls never count).
- ``solcache_errors_total{kind}`` (counter): errors returned to callers by kind:
  ``connection``, ``authentication``, ``timeout``, ``pool_exhausted``, ``serialization``,
  ``invalid_input``, ``response``, ``unsupported_server``, ``pool_closed`` (all exported).

Pool and server (from the cached health snapshot):

- ``solcache_redis_up`` (gauge): 1 if the last probe (PING + INFO) succeeded, else 0.
- ``solcache_redis_rtt_seconds`` (gauge): round trip of that probe's PING (absent when down).
- ``solcache_pool_max_connections`` (gauge): the pool's ``max_size``.
- ``solcache_pool_connections`` (gauge): open connections.
- ``solcache_pool_idle_connections`` (gauge): open connections not in use.
- ``solcache_pool_in_use_connections`` (gauge): connections lent out.
- ``solcache_pool_waiting_requests`` (gauge): callers waiting for a connection.
- ``solcache_snapshot_age_seconds`` (gauge): age of the cached health and stream snapshot;
  growing means the refresher is stuck or stopped.
- ``solcache_pool_failovers_followed_total`` (counter): failovers the pool followed
  (Sentinel: the sentinels named another primary; cluster: fresh clients after failures).

Cluster (only for a ``redis+cluster://`` pool): the ``solcache_cluster_*`` direct-read
families listed in :mod:`solcache.cluster_metrics`.

Sentinel (only for a ``redis+sentinel://`` pool): the ``solcache_sentinel_*`` families listed
in :mod:`solcache.sentinel_metrics`.

Streams (from the cached ``EventStream.info()`` snapshot; needs ``events``):

- ``solcache_stream_length{stream}`` (gauge): entries in the stream (XLEN).
- ``solcache_stream_group_lag{stream,group}`` (gauge): entries not yet delivered to the group
  (Redis 7+; absent on older servers).
- ``solcache_stream_group_pending{stream,group}`` (gauge): delivered, not yet acknowledged.
- ``solcache_stream_group_consumers{stream,group}`` (gauge): consumers in the group.

Services (from the ``extra`` callable, a :class:`ServiceSnapshot`):

- ``solcache_events_published_total`` (counter): events the services published.
- ``solcache_events_consumed_total`` (counter): events the services consumed.
- ``solcache_consumer_retrying`` (gauge): 1 while the services' own consumer cannot read and
  retries with backoff.
- ``solcache_consumer_outages_total`` (counter): times that consumer's reads stopped working.
- ``solcache_consumer_retries_total`` (counter): its failed reads, each retried.
- ``solcache_consumer_group_recreations_total`` (counter): its groups created again after they
  were found gone (a Redis restart without persistence).
- ``solcache_source_staleness_seconds`` (gauge): time since the price source last had fresh
  data from upstream.
- ``solcache_prices_refused_total`` (counter): prices the price service refused because their
  confidence interval was wider than ``max_confidence_fraction`` of the price.
- ``solcache_service_degraded`` (gauge): 1 while the services report a degraded state.
- ``solcache_health_check_failing{check}`` (gauge): 1 for each health check that makes the
  reported state degraded, 0 for the others.
- ``solcache_health_changes_total`` (counter): reported changes between healthy and degraded.
- ``solcache_task_errors_total{task}`` (counter): errors each background task retried after
  (a failed tick, read, refresh or start; an unexpected stop).

Near cache (only for a pool opened with it): the ``solcache_near_cache_*`` families listed in
:mod:`solcache.near_cache_metrics`.

The HTTP gateway (:mod:`solcache.web`) adds its own families to the registry it serves, all
prefixed ``solcache_sse_``; they are listed in :mod:`solcache.web.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample

from solcache._core import (
    STREAM_DEAD_LETTER,
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    STREAM_UI_EVENTS,
    EventStream,
    OperationStats,
    PoolHealth,
    RedisPool,
    StreamInfo,
)
from solcache.cluster_metrics import cluster_direct_families
from solcache.exceptions import ResponseError
from solcache.near_cache_metrics import near_cache_families
from solcache.sentinel_metrics import sentinel_families

__all__ = [
    "DEFAULT_STREAMS",
    "OPERATIONS",
    "QUANTILES",
    "MetricsRefresher",
    "ServiceSnapshot",
    "SolcacheCollector",
    "build_registry",
]

logger = logging.getLogger("solcache.prometheus")

#: The streams whose length and lag are exported by default.
DEFAULT_STREAMS: tuple[str, ...] = (
    STREAM_PRICE_UPDATES,
    STREAM_TRADE_EVENTS,
    STREAM_UI_EVENTS,
    STREAM_DEAD_LETTER,
)
#: The operations the core times (``metrics.rs``); any other name it reports is exported too.
OPERATIONS: tuple[str, ...] = (
    "price_get",
    "price_get_many",
    "price_set",
    "price_set_many",
    "pool_get",
    "pool_get_many",
    "pool_set",
    "pool_set_many",
    "checkout",
    "ping",
    "stream_publish",
    "stream_publish_many",
    "stream_read",
    "stream_read_group",
    "stream_ack",
    "stream_claim",
    "stream_dead_letter",
    "stream_admin",
)
#: ``(quantile label, OperationStats attribute)`` of the exported latency quantiles.
QUANTILES: tuple[tuple[str, str], ...] = (
    ("0.5", "p50_us"),
    ("0.99", "p99_us"),
    ("0.999", "p999_us"),
)
_US = 1e-6


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    """What the services report at scrape time (counters count since the process started)."""

    #: Events the services published.
    events_published_total: int = 0
    #: Events the services consumed (handled).
    events_consumed_total: int = 0
    #: True while the services' consumer retries failed reads.
    consumer_retrying: bool = False
    #: Times the consumer's reads stopped working.
    consumer_outages_total: int = 0
    #: The consumer's failed reads, each retried.
    consumer_retries_total: int = 0
    #: The consumer's groups created again after they were found gone.
    consumer_group_recreations_total: int = 0
    #: Seconds since the price source last had fresh upstream data (0 for simulated).
    source_staleness_seconds: float = 0.0
    #: Prices refused for a confidence interval wider than the configured fraction.
    prices_refused_total: int = 0
    #: True while the services consider themselves degraded.
    degraded: bool = False
    #: Health check name → whether it fails in the reported state.
    health_checks: Mapping[str, bool] = field(default_factory=dict)
    #: Reported changes between healthy and degraded.
    health_changes_total: int = 0
    #: Background task name → errors it retried after.
    task_errors: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The result of one refresh: health (None if the probe failed) and stream infos."""

    health: PoolHealth | None
    streams: tuple[StreamInfo, ...]
    taken_at_monotonic_s: float


class SolcacheCollector:
    """A ``prometheus_client`` collector over a :class:`RedisPool` (and optionally its streams).

    ``extra`` is called at every scrape and returns a :class:`ServiceSnapshot`; an exception
    there is logged and only drops the service families. ``events`` enables the stream
    families (for ``streams``). The pool and stream families come from the snapshot that
    :meth:`refresh` takes (a :class:`MetricsRefresher` calls it periodically); before the
    first refresh they are absent.
    """

    def __init__(
        self,
        pool: RedisPool,
        extra: Callable[[], ServiceSnapshot] | None = None,
        *,
        events: EventStream | None = None,
        streams: Sequence[str] = DEFAULT_STREAMS,
    ) -> None:
        self._pool = pool
        self._extra = extra
        self._events = events
        self._streams = tuple(streams)
        self._snapshot: _Snapshot | None = None
        #: Refreshes that failed (each retried at the next interval).
        self.refresh_errors = 0

    async def refresh(self, timeout_s: float = 2.0) -> None:
        """Probe the pool and read the streams' info once, giving up after ``timeout_s``.

        Never raises: a failure is logged and exported as ``solcache_redis_up 0``.
        """
        health: PoolHealth | None = None
        infos: tuple[StreamInfo, ...] = ()
        try:
            async with asyncio.timeout(timeout_s):
                health = await self._pool.health()
                if health.reachable and self._events is not None:
                    infos = await self._stream_infos(self._events)
        except Exception as exc:  # a refresh must never kill the refresher
            self.refresh_errors += 1
            logger.warning("metrics refresh failed: %s", str(exc) or f"no answer in {timeout_s} s")
        self._snapshot = _Snapshot(health, infos, time.monotonic())

    async def _stream_infos(self, events: EventStream) -> tuple[StreamInfo, ...]:
        results = await asyncio.gather(
            *(events.info(s) for s in self._streams), return_exceptions=True
        )
        infos = []
        for stream, result in zip(self._streams, results, strict=True):
            if isinstance(result, StreamInfo):
                infos.append(result)
            elif not isinstance(result, ResponseError):  # "no such key": not created yet
                logger.warning("XINFO %s failed: %s", stream, result)
        return tuple(infos)

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports (for duplicate detection at registration)."""
        return self._families({}, None, ServiceSnapshot(), now_s=0.0)

    def collect(self) -> Iterable[Metric]:
        """Build every family from the core's counters and the cached snapshot."""
        service: ServiceSnapshot | None = None
        if self._extra is not None:
            try:
                service = self._extra()
            except Exception:
                logger.exception("the services' metrics callable failed")
        return self._families(self._pool.metrics(), self._snapshot, service, time.monotonic())

    def _families(
        self,
        ops: Mapping[str, OperationStats],
        snap: _Snapshot | None,
        service: ServiceSnapshot | None,
        now_s: float,
    ) -> list[Metric]:
        families = _operation_families(ops)
        families.append(_error_kind_family(self._pool.error_counts()))
        families += near_cache_families(self._pool.near_cache_stats())
        families += cluster_direct_families(self._pool.cluster_direct_stats())
        families += _pool_families(snap, self._pool.max_size, now_s)
        families += _stream_families(snap.streams if snap is not None else ())
        if service is not None:
            families += _service_families(service)
        return families


class MetricsRefresher:
    """The background task that refreshes a collector's snapshot every ``interval_s``.

    Each refresh gives up after ``timeout_s``. ``start()`` needs a running event loop;
    ``stop()`` cancels the task and waits for it. Both are idempotent.
    """

    def __init__(
        self, collector: SolcacheCollector, *, interval_s: float = 1.0, timeout_s: float = 2.0
    ) -> None:
        if not (0 < interval_s < math.inf and 0 < timeout_s < math.inf):
            raise ValueError("interval_s and timeout_s must be finite and > 0")
        self.collector = collector
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start refreshing now, then every ``interval_s``."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="solcache-metrics-refresher"
            )

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.collector.refresh(self._timeout_s)
            except Exception:  # refresh() catches its own errors; this is the last guard
                self.collector.refresh_errors += 1
                logger.exception("metrics refresh failed")
            await asyncio.sleep(self._interval_s)


def build_registry(
    pool: RedisPool,
    events: EventStream | None = None,
    extra: Callable[[], ServiceSnapshot] | None = None,
    *,
    interval_s: float = 1.0,
    timeout_s: float = 2.0,
) -> tuple[CollectorRegistry, MetricsRefresher]:
    """A fresh registry holding a :class:`SolcacheCollector`, and its (not started) refresher."""
    collector = SolcacheCollector(pool, extra, events=events)
    registry = CollectorRegistry()
    registry.register(collector)
    return registry, MetricsRefresher(collector, interval_s=interval_s, timeout_s=timeout_s)


def _operation_families(ops: Mapping[str, OperationStats]) -> list[Metric]:
    latency = SummaryMetricFamily(
        "solcache_operation_latency_seconds",
        "Latency of each core operation since the pool opened (HDR histogram).",
        labels=["operation"],
    )
    latency_max = GaugeMetricFamily(
        "solcache_operation_latency_max_seconds",
        "Slowest call of each core operation so far.",
        labels=["operation"],
    )
    total = CounterMetricFamily(
        "solcache_operations",
        "Completed core operations, failed ones included.",
        labels=["operation"],
    )
    errors = CounterMetricFamily(
        "solcache_operation_errors", "Core operations that ended in an error.", labels=["operation"]
    )
    slow = CounterMetricFamily(
        "solcache_slow_operations",
        "Core operations slower than the pool's slow threshold.",
        labels=["operation"],
    )
    for name in sorted(set(OPERATIONS) | set(ops)):
        st = ops.get(name)
        if st is None or st.count == 0:
            latency.add_metric([name], 0, 0.0)
            for label, _ in QUANTILES:
                latency.samples.append(
                    Sample(latency.name, {"operation": name, "quantile": label}, math.nan)
                )
            total.add_metric([name], 0)
            errors.add_metric([name], 0)
            slow.add_metric([name], 0)
            continue
        latency.add_metric([name], st.count, st.mean_us * st.count * _US)
        for label, attr in QUANTILES:
            latency.samples.append(
                Sample(
                    latency.name, {"operation": name, "quantile": label}, getattr(st, attr) * _US
                )
            )
        latency_max.add_metric([name], st.max_us * _US)
        total.add_metric([name], st.count)
        errors.add_metric([name], st.errors)
        slow.add_metric([name], st.slow)
    return [latency, latency_max, total, errors, slow]


def _error_kind_family(counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "solcache_errors", "Errors returned to callers, by kind.", labels=["kind"]
    )
    for kind, n in sorted(counts.items()):
        family.add_metric([kind], n)
    return family


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def _counter(name: str, doc: str, value: float | None) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def _pool_families(snap: _Snapshot | None, max_size: int, now_s: float) -> list[Metric]:
    health = snap.health if snap is not None else None
    up = None if snap is None else float(health is not None and health.reachable)
    rtt = health.rtt_ms / 1000 if health is not None and health.rtt_ms is not None else None
    age = now_s - snap.taken_at_monotonic_s if snap is not None else None

    def count(attr: str) -> float | None:
        return float(getattr(health, attr)) if health is not None else None

    return [
        _gauge("solcache_redis_up", "1 if the last Redis probe succeeded, else 0.", up),
        _gauge("solcache_redis_rtt_seconds", "Round trip of the last probe's PING.", rtt),
        _gauge("solcache_pool_max_connections", "The pool's max_size.", float(max_size)),
        _gauge("solcache_pool_connections", "Open pool connections.", count("connections")),
        _gauge("solcache_pool_idle_connections", "Open connections not in use.", count("idle")),
        _gauge("solcache_pool_in_use_connections", "Connections lent out.", count("in_use")),
        _gauge(
            "solcache_pool_waiting_requests", "Callers waiting for a connection.", count("waiting")
        ),
        _gauge(
            "solcache_snapshot_age_seconds", "Age of the cached health and stream snapshot.", age
        ),
        _counter(
            "solcache_pool_failovers_followed",
            "Failovers the pool followed (Sentinel: another primary; cluster: fresh clients).",
            count("failovers_followed"),
        ),
        *sentinel_families(health),
    ]


def _stream_families(infos: Sequence[StreamInfo]) -> list[Metric]:
    length = GaugeMetricFamily(
        "solcache_stream_length", "Entries in the stream (XLEN).", labels=["stream"]
    )
    group_labels = ["stream", "group"]
    lag = GaugeMetricFamily(
        "solcache_stream_group_lag", "Entries not yet delivered to the group.", labels=group_labels
    )
    pending = GaugeMetricFamily(
        "solcache_stream_group_pending",
        "Entries delivered to the group and not yet acknowledged.",
        labels=group_labels,
    )
    consumers = GaugeMetricFamily(
        "solcache_stream_group_consumers", "Consumers in the group.", labels=group_labels
    )
    for info in infos:
        length.add_metric([info.stream], info.length)
        for group in info.groups:
            labels = [info.stream, group.name]
            if group.lag is not None:
                lag.add_metric(labels, group.lag)
            pending.add_metric(labels, group.pending)
            consumers.add_metric(labels, group.consumers)
    return [length, lag, pending, consumers]


def _service_families(service: ServiceSnapshot) -> list[Metric]:
    return [
        CounterMetricFamily(
            "solcache_events_published",
            "Events the services published.",
            value=service.events_published_total,
        ),
        CounterMetricFamily(
            "solcache_events_consumed",
            "Events the services consumed.",
            value=service.events_consumed_total,
        ),
        _gauge(
            "solcache_consumer_retrying",
            "1 while the services' consumer cannot read and retries with backoff.",
            float(service.consumer_retrying),
        ),
        CounterMetricFamily(
            "solcache_consumer_outages",
            "Times the services' consumer stopped being able to read.",
            value=service.consumer_outages_total,
        ),
        CounterMetricFamily(
            "solcache_consumer_retries",
            "Failed reads of the services' consumer, each retried.",
            value=service.consumer_retries_total,
        ),
        CounterMetricFamily(
            "solcache_consumer_group_recreations",
            "Consumer groups created again after they were found gone.",
            value=service.consumer_group_recreations_total,
        ),
        _gauge(
            "solcache_source_staleness_seconds",
            "Seconds since the price source last had fresh upstream data.",
            service.source_staleness_seconds,
        ),
        CounterMetricFamily(
            "solcache_prices_refused",
            "Prices refused because their confidence interval was too wide.",
            value=service.prices_refused_total,
        ),
        _gauge(
            "solcache_service_degraded",
            "1 while the services report degraded.",
            float(service.degraded),
        ),
        _labelled(
            GaugeMetricFamily(
                "solcache_health_check_failing",
                "1 for each health check that makes the service degraded.",
                labels=["check"],
            ),
            {name: float(failing) for name, failing in service.health_checks.items()},
        ),
        CounterMetricFamily(
            "solcache_health_changes",
            "Reported changes between healthy and degraded.",
            value=service.health_changes_total,
        ),
        _labelled(
            CounterMetricFamily(
                "solcache_task_errors",
                "Errors each background task retried after.",
                labels=["task"],
            ),
            {name: float(n) for name, n in service.task_errors.items()},
        ),
    ]


def _labelled(
    family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, float]
) -> Metric:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family
