"""Prometheus families of the HTTP gateway (added to the registry ``/metrics`` serves).

- ``solcache_sse_clients`` (gauge): connected ``/events`` clients.
- ``solcache_sse_clients_connected_total`` (counter): ``/events`` connections accepted.
- ``solcache_sse_messages_sent_total`` (counter): SSE messages written (replays included).
- ``solcache_sse_messages_replayed_total`` (counter): messages replayed after a
  ``Last-Event-ID``.
- ``solcache_sse_messages_coalesced_total`` (counter): queued price / pool-state messages
  replaced by a newer one for the same token / pool because the client fell behind.
- ``solcache_sse_messages_dropped_total`` (counter): other messages dropped from a full
  client queue.
- ``solcache_sse_send_timeouts_total`` (counter): clients disconnected because a write did not
  complete within the send timeout.
- ``solcache_sse_replays_truncated_total`` (counter): reconnects that missed more than
  ``replay_limit`` events (or whose replay failed) and were told to resync.
- ``solcache_sse_stream_entries_total`` (counter): stream entries the reader fanned out.
- ``solcache_sse_bad_entries_total`` (counter): entries skipped because they did not decode.
- ``solcache_sse_read_errors_total`` (counter): failed stream reads (Redis down, timeouts).
- ``solcache_sse_queue_high_water`` (gauge): the fullest any connected client's queue got.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from solcache.web.hub import EventHub

__all__ = ["GatewayCollector"]

_COUNTERS = (
    ("clients_connected", "clients_connected", "/events connections accepted."),
    ("messages_sent", "messages_sent", "SSE messages written, replays included."),
    ("messages_replayed", "messages_replayed", "Messages replayed after a Last-Event-ID."),
    ("messages_coalesced", "messages_coalesced", "Queued messages superseded by a newer one."),
    ("messages_dropped", "messages_dropped", "Messages dropped from a full client queue."),
    ("send_timeouts", "send_timeouts", "Clients disconnected by the send timeout."),
    ("replays_truncated", "replays_truncated", "Reconnects told to resync."),
    ("stream_entries", "entries_read", "Stream entries the reader fanned out."),
    ("bad_entries", "bad_entries", "Stream entries skipped because they did not decode."),
    ("read_errors", "read_errors", "Failed stream reads."),
)


class GatewayCollector:
    """Builds the ``solcache_sse_*`` families from an :class:`EventHub` at scrape time."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        totals = self._hub.totals()
        clients = self._hub.clients
        families: list[Metric] = [
            GaugeMetricFamily("solcache_sse_clients", "Connected /events clients.", len(clients)),
            GaugeMetricFamily(
                "solcache_sse_queue_high_water",
                "The fullest any connected client's queue got.",
                max((c.queue.high_water for c in clients), default=0),
            ),
        ]
        for name, attr, doc in _COUNTERS:
            families.append(
                CounterMetricFamily(f"solcache_sse_{name}", doc, value=getattr(totals, attr))
            )
        return families
