"""Prometheus families of a Sentinel pool's switch watcher, built from ``RedisPool.health()``.

The pool keeps one subscription per sentinel (a background task each, retried with backoff)
and follows the failovers they announce. Exported by
:class:`solcache.prometheus.SolcacheCollector` only for a ``redis+sentinel://`` pool:

- ``solcache_sentinel_switches_total`` (counter): failovers the sentinels announced
  (``+switch-master``), once each however many sentinels announce it.
- ``solcache_sentinel_promotions_taken_total`` (counter): connections that reached the replica
  a sentinel was promoting before the sentinels named it.
- ``solcache_sentinel_watches_up`` (gauge): sentinels whose announcements the pool is
  subscribed to right now; below the number of sentinels, one is down or unreachable and a
  failover is noticed by the pool's poll of the sentinels (every ``health_check_interval``).
- ``solcache_sentinel_watch_errors_total`` (counter): subscriptions to a sentinel lost or
  refused, each retried after a backoff (100 ms doubling to 2 s).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from solcache._core import PoolHealth

__all__ = ["sentinel_families"]


def sentinel_families(health: PoolHealth | None) -> list[Metric]:
    """The switch watcher's families; none without a probe or on another topology."""
    if health is None or health.topology != "sentinel":
        return []
    switches = CounterMetricFamily(
        "solcache_sentinel_switches",
        "Failovers the sentinels announced (+switch-master), once each.",
        value=health.switches_seen,
    )
    promotions = CounterMetricFamily(
        "solcache_sentinel_promotions_taken",
        "Connections that reached a replica being promoted before the sentinels named it.",
        value=health.promotions_taken,
    )
    up = GaugeMetricFamily(
        "solcache_sentinel_watches_up",
        "Sentinels whose announcements the pool is subscribed to right now.",
        value=health.switch_watches_up,
    )
    errors = CounterMetricFamily(
        "solcache_sentinel_watch_errors",
        "Subscriptions to a sentinel lost or refused, each retried with backoff.",
        value=health.switch_watch_errors,
    )
    return [switches, promotions, up, errors]
