"""What the gateway sends to SSE clients: one :class:`Message` per stream entry or pool state.

A message's ``data`` is built once and shared by every client; only its ``id:`` line is
per client (see :mod:`solcache.web.ids`), so it is added when the message is written.
The event JSON produced by the Rust core is embedded verbatim, never re-parsed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from solcache._core import PoolState, PriceUpdate, StreamEntry

__all__ = ["Message", "encode", "from_entry", "from_pool_state", "plain", "resync"]

#: Synthesized messages (pool states, resync notices) carry no stream id.
NO_STREAM = -1


@dataclass(frozen=True, slots=True)
class Message:
    """One SSE message before its ``id:`` line is known."""

    #: The SSE ``event:`` name (``price_update``, ``trade_executed``, ``pool_state``, …).
    event: str
    #: The SSE ``data:`` line: compact JSON without newlines.
    data: str
    #: Index into ``STREAMS`` of the stream the entry came from, or ``NO_STREAM``.
    stream: int = NO_STREAM
    #: The Redis entry id (empty for synthesized messages).
    entry_id: str = ""
    #: Messages with the same key supersede each other when a client falls behind (the
    #: latest price per token, the latest state per pool); None for everything else.
    key: str | None = None


def from_entry(stream: int, entry: StreamEntry) -> Message | None:
    """The message for a decoded stream entry, or None for an entry that failed to decode.

    ``data`` is ``{"stream": …, "id": …, "data": <the event's JSON>}``.
    """
    event = entry.event
    if event is None:
        return None
    data = f'{{"stream":"{entry.stream}","id":"{entry.id}","data":{event.to_json()}}}'
    key = f"price:{event.token}" if isinstance(event, PriceUpdate) else None
    return Message(event.type, data, stream, entry.id, key)


#: Swap sizes (in token A) the dashboard shows price impact for, with Raydium AMM v4's fee and
#: a common slippage tolerance.
QUOTE_SIZES = ("1", "100", "1000")
QUOTE_FEE_BPS = 25
QUOTE_SLIPPAGE_BPS = 50


def plain(value: Decimal) -> str:
    """``value`` in positional notation, as the core writes decimals: ``0.000000665``, never
    ``6.65E-7`` (``str()`` of a small Decimal), which many JSON consumers cannot parse."""
    return format(value, "f")


def quotes(state: PoolState) -> list[dict[str, str]]:
    """A→B swap quotes for :data:`QUOTE_SIZES`, computed by the core's ``quote_swap``; every
    amount a decimal string in positional notation (see :func:`plain`)."""
    out = []
    for size in QUOTE_SIZES:
        q = state.quote_swap(size, fee_bps=QUOTE_FEE_BPS, slippage_bps=QUOTE_SLIPPAGE_BPS)
        out.append(
            {
                "amount_in": plain(q.amount_in),
                "amount_out": plain(q.amount_out),
                "execution_price": plain(q.execution_price),
                "price_impact": plain(q.price_impact),
                "max_sandwich_loss": plain(q.max_sandwich_loss),
            }
        )
    return out


def from_pool_state(state: PoolState) -> Message:
    """A ``pool_state`` message, keyed by address: ``{"data": <the pool state's JSON>,
    "quotes": [...]}`` with the swap quotes of :func:`quotes` (the dashboard's impact table)."""
    data = f'{{"data":{state.to_json()},"quotes":{json.dumps(quotes(state))}}}'
    return Message("pool_state", data, key=f"pool:{state.pool_address}")


def resync(reason: str, streams: Sequence[str]) -> Message:
    """Tell a client it missed events it will not get (refetch the snapshots)."""
    return Message("resync", json.dumps({"reason": reason, "streams": list(streams)}))


def encode(message: Message, composite_id: str | None) -> str:
    """The SSE text of one message (``event:``, ``id:`` unless None, ``data:``)."""
    if composite_id is None:
        return f"event: {message.event}\ndata: {message.data}\n\n"
    return f"event: {message.event}\nid: {composite_id}\ndata: {message.data}\n\n"
