"""The Pyth Hermes v2 price-update format: feed ids and the ``parsed`` part of a response.

A response of ``/v2/updates/price/latest`` (and each event of ``/v2/updates/price/stream``) is::

    {"binary": {"encoding": "hex", "data": ["…"]},
     "parsed": [{"id": "<64 hex digits, no 0x>",
                 "price": {"price": "14523456789", "conf": "7012345", "expo": -8,
                           "publish_time": 1735689600},
                 "ema_price": {…}, "metadata": {…}}]}

``price`` and ``conf`` are integer strings; the value is ``price * 10**expo``, computed here
exactly in decimal. ``publish_time`` is in unix seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from solcache.sources.base import SourceError

__all__ = [
    "HERMES_URL",
    "PYTH_FEED_IDS",
    "HermesPrice",
    "normalize_feed_id",
    "parse_price_update",
    "scaled_price",
]

#: The public Hermes instance of the Pyth Data Association (30 requests per 10 s per IP).
HERMES_URL = "https://hermes.pyth.network"

#: Pyth price feed ids (``Crypto.X/USD``) of the MVP tokens, lower-case hex without ``0x``.
PYTH_FEED_IDS: Mapping[str, str] = MappingProxyType(
    {
        "SOL": "ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d",
        "USDC": "eaa020c61cc479712813461ce153894a96a6c00b21ed0cfc2798d1f9a9e9c94a",
        "BONK": "72b021217ca3fe68922a19aaf990109cb9d84e9ad004b4d2025ad6f529314419",
        "JitoSOL": "67be9f519b95cf24338801051f9a808eff0a578ccb388db73b7f6fe1de019ffb",
        "RAY": "91568baa8beb53db23eb3fb7f22c6e8bd303d103919e19733f2bb642d3e7987a",
    }
)

_FEED_ID = re.compile(r"[0-9a-f]{64}")
#: Pyth prices are int64: at most 19 digits, so scaling them never rounds.
_INTEGER = re.compile(r"-?[0-9]{1,20}")
#: Exponents Pyth uses are small negatives (-5 to -10); anything far outside is a bad payload.
_MAX_ABS_EXPO = 30
#: Unix seconds of 10000-01-01, past the last representable datetime.
_YEAR_10000_S = 253_402_300_800


def normalize_feed_id(feed_id: str) -> str:
    """``feed_id`` as 64 lower-case hex digits without ``0x``; raises ValueError if malformed."""
    text = feed_id.strip().lower()
    text = text.removeprefix("0x")
    if not _FEED_ID.fullmatch(text):
        raise ValueError(
            f"a Pyth feed id is 64 hex digits (optionally 0x-prefixed), got {feed_id!r}"
        )
    return text


def scaled_price(mantissa: str, expo: int) -> Decimal:
    """``mantissa * 10**expo``, exact.

    ``scaled_price("14523456789", -8) == Decimal("145.23456789")``.
    """
    if not _INTEGER.fullmatch(mantissa):
        raise ValueError(f"price is not an integer string: {mantissa!r}")
    if isinstance(expo, bool) or not isinstance(expo, int) or abs(expo) > _MAX_ABS_EXPO:
        raise ValueError(f"bad exponent: {expo!r}")
    return Decimal(mantissa).scaleb(expo)


@dataclass(frozen=True, slots=True)
class HermesPrice:
    """One feed's price from a Hermes response."""

    #: Normalized feed id (64 lower-case hex digits).
    feed_id: str
    #: The price in quote units (USD for the MVP feeds), exact.
    price: Decimal
    #: Confidence interval, same units as ``price``.
    conf: Decimal
    #: When the price was published, unix seconds.
    publish_time_s: int

    @property
    def publish_time(self) -> datetime:
        """``publish_time_s`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.publish_time_s, UTC)


def parse_price_update(payload: object) -> tuple[dict[str, HermesPrice], list[str]]:
    """The prices in one Hermes response, by normalized feed id, plus problems with entries.

    A malformed entry is skipped and described in the problems; a payload without a ``parsed``
    list raises :class:`SourceError`.
    """
    if not isinstance(payload, dict):
        raise SourceError(f"Hermes payload is not a JSON object but {type(payload).__name__}")
    entries = payload.get("parsed")
    if not isinstance(entries, list):
        raise SourceError("Hermes payload has no 'parsed' list (was parsed=false requested?)")
    prices: dict[str, HermesPrice] = {}
    problems: list[str] = []
    for entry in entries:
        try:
            price = _parse_entry(entry)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            problems.append(f"skipped malformed Hermes entry: {exc}")
            continue
        prices[price.feed_id] = price
    return prices, problems


def _parse_entry(entry: object) -> HermesPrice:
    if not isinstance(entry, dict):
        raise TypeError(f"entry is {type(entry).__name__}, not an object")
    feed_id = normalize_feed_id(str(entry["id"]))
    body = entry["price"]
    if not isinstance(body, dict):
        raise TypeError(f"'price' of {feed_id} is not an object")
    expo = body["expo"]
    publish_time_s = body["publish_time"]
    if isinstance(publish_time_s, bool) or not isinstance(publish_time_s, int):
        raise TypeError(f"publish_time of {feed_id} is not an integer: {publish_time_s!r}")
    if not 0 <= publish_time_s < _YEAR_10000_S:
        raise ValueError(f"publish_time of {feed_id} is out of range: {publish_time_s}")
    return HermesPrice(
        feed_id=feed_id,
        price=scaled_price(str(body["price"]), expo),
        conf=scaled_price(str(body["conf"]), expo),
        publish_time_s=publish_time_s,
    )
