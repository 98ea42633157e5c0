"""How much one HTTP connection may cost the gateway: :class:`GatewayLimits`.

A connection that never finishes its request headers, a pile of idle keep-alive connections
and an ``/events`` client that stops reading all hold sockets and memory of the gateway
without doing anything useful; these limits bound each of them. Every limit is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solcache.config import Settings

__all__ = ["GatewayLimits"]


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """The gateway's per-connection limits (see the README's configuration table).

    - ``header_timeout_s``: a connection must deliver a complete request head (request line
      and headers) this long after it opened or after its first byte of a next request;
      otherwise it is closed.
    - ``keep_alive_timeout_s``: an idle keep-alive connection is closed after this long.
    - ``max_connections``: open connections beyond this get ``503`` and are closed at once.
    - ``sse_send_buffer_bytes``: the kernel send buffer (``SO_SNDBUF``) of an ``/events``
      connection (Linux reserves twice this for bookkeeping); 0 leaves the system default,
      which grows to megabytes for a client that stops reading.
    - ``sse_max_unsent_bytes``: an ``/events`` client with more than this written to it but not
      yet received (in the process and in the kernel's send queue) is disconnected.
    - ``sse_max_unsent_age_s``: an ``/events`` client that has not received bytes written to it
      this long ago is disconnected (it stopped reading, or the network is gone).
    """

    header_timeout_s: float = 10.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int = 1000
    sse_send_buffer_bytes: int = 65_536
    sse_max_unsent_bytes: int = 524_288
    sse_max_unsent_age_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "keep_alive_timeout_s", "sse_max_unsent_age_s"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be ≥ 1, got {self.max_connections}")
        if self.sse_send_buffer_bytes < 0:
            raise ValueError(f"sse_send_buffer_bytes must be ≥ 0, got {self.sse_send_buffer_bytes}")
        if self.sse_max_unsent_bytes < 1:
            raise ValueError(f"sse_max_unsent_bytes must be ≥ 1, got {self.sse_max_unsent_bytes}")

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayLimits:
        """The limits configured by ``SOLCACHE_HTTP_*`` and ``SOLCACHE_SSE_*`` settings."""
        names = {
            "header_timeout_s": "http_header_timeout_s",
            "keep_alive_timeout_s": "http_keep_alive_timeout_s",
            "max_connections": "http_max_connections",
            "sse_send_buffer_bytes": "sse_send_buffer_bytes",
            "sse_max_unsent_bytes": "sse_max_unsent_bytes",
            "sse_max_unsent_age_s": "sse_max_unsent_age_s",
        }
        assert set(names) == {f.name for f in fields(cls)}
        return cls(**{field: getattr(settings, setting) for field, setting in names.items()})
