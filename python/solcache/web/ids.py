"""Composite SSE event ids: the last Redis stream id of each fanned-out stream.

An SSE ``id:`` is ``<price-updates id>,<trade-events id>,<ui-events id>`` in the fixed order of
:data:`STREAMS`, e.g. ``1735689600000-0,1735689600001-3,0-0``. A browser sends the last one
back as ``Last-Event-ID`` when it reconnects, and one XREAD per stream from those ids replays
exactly what it missed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from solcache._core import STREAM_PRICE_UPDATES, STREAM_TRADE_EVENTS, STREAM_UI_EVENTS

__all__ = ["STREAMS", "ZERO_ID", "format_composite", "id_key", "parse_composite"]

#: The streams the gateway fans out, in composite-id order.
STREAMS: tuple[str, ...] = (STREAM_PRICE_UPDATES, STREAM_TRADE_EVENTS, STREAM_UI_EVENTS)
#: The id before every entry (XREAD from here reads the whole stream).
ZERO_ID = "0-0"

_ENTRY_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_MAX_HEADER_CHARS = 200


def id_key(entry_id: str) -> tuple[int, int]:
    """``"1735689600000-3"`` as ``(1735689600000, 3)``, for ordering entry ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def format_composite(ids: Sequence[str]) -> str:
    """Join one entry id per stream into an SSE id."""
    return ",".join(ids)


def parse_composite(value: str | None) -> tuple[str, ...] | None:
    """The per-stream ids in an SSE id, or None if ``value`` is absent or not one of ours."""
    if not value or len(value) > _MAX_HEADER_CHARS:
        return None
    parts = tuple(p.strip() for p in value.split(","))
    if len(parts) != len(STREAMS) or not all(_ENTRY_ID.match(p) for p in parts):
        return None
    return parts
