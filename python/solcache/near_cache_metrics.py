"""Prometheus families of a pool's near cache, built from ``RedisPool.near_cache_stats()``.

Exported by :class:`solcache.prometheus.SolcacheCollector` only for a pool opened with the
near cache on (``near_cache=True`` or ``SOLCACHE_NEAR_CACHE=true``):

- ``solcache_near_cache_hits_total`` (counter): reads answered from memory (per key).
- ``solcache_near_cache_misses_total`` (counter): keys read from Redis instead.
- ``solcache_near_cache_invalidations_total`` (counter): keys dropped on Redis' word.
- ``solcache_near_cache_flushes_total`` (counter): times everything was dropped (FLUSHALL,
  the tracking connection lost or killed, a failed PING on it).
- ``solcache_near_cache_fills_total`` (counter): fill round trips on the tracking connection.
- ``solcache_near_cache_reconnects_total`` (counter): tracking connections opened again.
- ``solcache_near_cache_bytes`` (gauge): memory held (keys, values, per-entry overhead).
- ``solcache_near_cache_entries`` (gauge): entries held.
- ``solcache_near_cache_connected`` (gauge): 1 while hits are served, 0 while reads go to Redis.
- ``solcache_near_cache_io_uring`` (gauge): 1 while hits learn of invalidations from an io_uring
  ring (no system call per hit), 0 while each hit reads the tracking socket.
- ``solcache_near_cache_served_age_seconds{quantile}`` (gauge): age of the entries hits
  served (since their fill was sent), quantiles ``0.5``, ``0.99`` and ``1`` (the oldest).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["near_cache_families"]

_COUNTERS = (
    ("hits", "Reads answered from the near cache's memory (per key)."),
    ("misses", "Keys the near cache read from Redis."),
    ("invalidations", "Keys the near cache dropped because Redis said they changed."),
    ("flushes", "Times the near cache dropped everything (FLUSHALL, tracking connection lost)."),
    ("fills", "Fill round trips on the near cache's tracking connection."),
    ("reconnects", "Tracking connections the near cache opened again."),
)
_GAUGES = (
    ("bytes", "Memory the near cache holds (keys, values, per-entry overhead), bytes."),
    ("entries", "Entries the near cache holds."),
    ("connected", "1 while the near cache serves hits, 0 while its reads go to Redis."),
    (
        "io_uring",
        "1 while near cache hits learn of invalidations from an io_uring ring, 0 if from recv.",
    ),
)


def near_cache_families(stats: Mapping[str, int] | None) -> list[Metric]:
    """The near cache's families; none for a pool without one (``stats`` is None)."""
    if stats is None:
        return []
    families: list[Metric] = []
    for name, doc in _COUNTERS:
        counter = CounterMetricFamily(f"solcache_near_cache_{name}", doc)
        counter.add_metric([], stats[name])
        families.append(counter)
    for name, doc in _GAUGES:
        families.append(GaugeMetricFamily(f"solcache_near_cache_{name}", doc, value=stats[name]))
    age = GaugeMetricFamily(
        "solcache_near_cache_served_age_seconds",
        "Age of the entries near cache hits served, since their fill was sent.",
        labels=["quantile"],
    )
    for quantile, key in (("0.5", "age_p50_us"), ("0.99", "age_p99_us"), ("1", "age_max_us")):
        age.add_metric([quantile], stats[key] / 1e6)
    families.append(age)
    return families
