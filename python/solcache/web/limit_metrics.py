"""Prometheus families of the gateway's connection limits (added to the ``/metrics`` registry).

- ``solcache_http_connections`` (gauge): HTTP connections open now.
- ``solcache_http_connections_rejected_total`` (counter): connections refused with 503 at
  ``max_connections``.
- ``solcache_http_header_timeouts_total`` (counter): connections closed because their request
  head was not complete within ``header_timeout_s``.
- ``solcache_http_bad_requests_total`` (counter): requests that did not parse (400).
- ``solcache_sse_slow_clients_total{reason}`` (counter): ``/events`` clients disconnected
  because they did not receive what was written to them: ``unsent_bytes`` (more than
  ``sse_max_unsent_bytes``) or ``unsent_age`` (older than ``sse_max_unsent_age_s``).
- ``solcache_sse_unknown_last_event_ids_total`` (counter): reconnects whose
  ``Last-Event-ID`` was unknown (told to resync).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from solcache.web.http_guard import HttpCounters
from solcache.web.hub import EventHub

__all__ = ["LimitsCollector"]


class LimitsCollector:
    """Builds the families above from the hub's totals and the server's counters."""

    def __init__(self, hub: EventHub, counters: HttpCounters) -> None:
        self._hub = hub
        self._counters = counters

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        c = self._counters
        totals = self._hub.totals()
        slow = CounterMetricFamily(
            "solcache_sse_slow_clients",
            "/events clients disconnected for not receiving what was written to them.",
            labels=["reason"],
        )
        slow.add_metric(["unsent_bytes"], totals.unsent_bytes_disconnects)
        slow.add_metric(["unsent_age"], totals.unsent_age_disconnects)
        return [
            GaugeMetricFamily("solcache_http_connections", "HTTP connections open.", c.open),
            CounterMetricFamily(
                "solcache_http_connections_rejected",
                "Connections refused with 503 at the connection limit.",
                value=c.rejected,
            ),
            CounterMetricFamily(
                "solcache_http_header_timeouts",
                "Connections closed without a complete request head in time.",
                value=c.header_timeouts,
            ),
            CounterMetricFamily(
                "solcache_http_bad_requests",
                "Requests that did not parse (400).",
                value=c.bad_requests,
            ),
            slow,
            CounterMetricFamily(
                "solcache_sse_unknown_last_event_ids",
                "Reconnects with an unknown Last-Event-ID, told to resync.",
                value=totals.unknown_last_event_ids,
            ),
        ]
