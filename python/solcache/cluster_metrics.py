"""Prometheus families of a cluster pool's direct reads, from ``RedisPool.cluster_direct_stats()``.

Exported by :class:`solcache.prometheus.SolcacheCollector` only for a Redis Cluster pool
(``redis+cluster://``); they show whether cache reads take the direct path (a socket per
primary) or the slower cluster client (see docs/scaling.md):

- ``solcache_cluster_direct_reads_total`` (counter): reads answered on the direct path.
- ``solcache_cluster_fallback_reads_total`` (counter): reads sent through the cluster client
  instead (a redirection, an error reply, a broken socket, a timeout, a primary without a
  socket).
- ``solcache_cluster_slot_refreshes_total`` (counter): reads of the slot table.
- ``solcache_cluster_direct_polled_total`` (counter): direct reads whose reply was polled for
  before waiting on the reactor.
- ``solcache_cluster_direct_poll_hits_total`` (counter): of those, reads answered while polling.
- ``solcache_cluster_direct_sockets`` (gauge): direct sockets open now, over every primary.

All stay 0 on a cluster whose reads never take the direct path (``direct_reads=False``, TLS).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["cluster_direct_families"]

# (stats key, metric name without the `_total` suffix, help)
_COUNTERS = (
    ("direct", "cluster_direct_reads", "Cluster cache reads answered on the direct path."),
    (
        "fallbacks",
        "cluster_fallback_reads",
        "Cluster cache reads sent through the cluster client instead of the direct path.",
    ),
    ("refreshes", "cluster_slot_refreshes", "Reads of the cluster's slot table."),
    (
        "polled",
        "cluster_direct_polled",
        "Direct cluster reads whose reply was polled for before waiting on the reactor.",
    ),
    (
        "poll_hits",
        "cluster_direct_poll_hits",
        "Direct cluster reads answered while polling.",
    ),
)


def cluster_direct_families(stats: Mapping[str, int] | None) -> list[Metric]:
    """The cluster direct-read families; none for a pool that is not a cluster (``None``)."""
    if stats is None:
        return []
    families: list[Metric] = []
    for key, name, doc in _COUNTERS:
        counter = CounterMetricFamily(f"solcache_{name}", doc)
        counter.add_metric([], stats[key])
        families.append(counter)
    families.append(
        GaugeMetricFamily(
            "solcache_cluster_direct_sockets",
            "Direct sockets open to the cluster's primaries now.",
            value=stats["sockets"],
        )
    )
    return families
