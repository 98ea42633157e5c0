"""What a price source knows per configured feed: the newest price, when it came, what's wrong."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from solcache._core import PriceData, validate_token
from solcache.sources.hermes import HermesPrice, normalize_feed_id

__all__ = ["FeedBook"]


@dataclass(slots=True)
class _Entry:
    price: PriceData
    publish_time_s: int
    #: Monotonic seconds when this feed's ``publish_time`` last moved forward. A repeat of the
    #: same ``publish_time`` (Hermes re-sends every feed each slot) does not count.
    advanced_s: float


class FeedBook:
    """The newest price of every configured token, keyed by Pyth feed id.

    Prices only move forward: an update older than the one held is ignored. Freshness is
    judged per feed by ``publish_time`` alone: Hermes re-sends the last price of every feed in
    each update, so a feed whose publishers stopped keeps arriving with the same
    ``publish_time``. Such a feed ages (:meth:`staleness_s`, :meth:`stale`) and is dropped
    once its ``publish_time`` has not advanced for ``max_age_s``, so it turns missing instead of
    repeating its last value forever. Ages are measured on the monotonic clock from when the
    feed's ``publish_time`` last advanced here, so a wrong local wall clock cannot make a feed
    look fresh or stale.
    """

    def __init__(
        self,
        feed_ids: Mapping[str, str],
        *,
        source_name: str,
        max_age_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not feed_ids:
            raise ValueError("at least one feed is needed")
        self._token_by_id: dict[str, str] = {}
        for token, feed_id in feed_ids.items():
            normalized = normalize_feed_id(feed_id)
            if normalized in self._token_by_id:
                other = self._token_by_id[normalized]
                raise ValueError(f"{token} and {other} have the same feed id {normalized}")
            self._token_by_id[normalized] = validate_token(token)
        self.tokens: tuple[str, ...] = tuple(self._token_by_id.values())
        self._source_name = source_name
        self._max_age_s = max_age_s
        self._monotonic = monotonic
        self._entries: dict[str, _Entry] = {}
        self._feed_problems: dict[str, str] = {}
        self._started_s = monotonic()
        self._fresh_s: float | None = None

    @property
    def feed_ids(self) -> tuple[str, ...]:
        """The normalized feed ids, in the order of :attr:`tokens`."""
        return tuple(self._token_by_id)

    def apply(self, prices: Mapping[str, HermesPrice], *, complete: bool) -> int:
        """Take the prices of one response; return how many moved forward in publish time.

        ``complete`` says the response lists every feed upstream has (``latest``): a configured
        feed absent from it is dropped at once rather than after ``max_age_s``.
        """
        now_s = self._monotonic()
        fresh = 0
        for feed_id, update in prices.items():
            token = self._token_by_id.get(feed_id)
            if token is None:
                continue  # not asked for; ignore
            held = self._entries.get(token)
            if held is not None and update.publish_time_s < held.publish_time_s:
                continue  # out of order: keep the newer price
            if held is not None and update.publish_time_s == held.publish_time_s:
                continue  # a re-send of the same price: not fresh, the feed keeps ageing
            try:
                if update.price <= 0:
                    raise ValueError(f"price is not positive: {update.price}")
                data = PriceData(
                    token,
                    update.price,
                    timestamp=update.publish_time,
                    source=self._source_name,
                    confidence=update.conf,
                )
            except ValueError as exc:
                self._feed_problems[token] = f"{token}: rejected Pyth price: {exc}"
                continue
            self._entries[token] = _Entry(data, update.publish_time_s, now_s)
            self._feed_problems.pop(token, None)
            fresh += 1
        if complete:
            for feed_id, token in self._token_by_id.items():
                if feed_id not in prices:
                    self._entries.pop(token, None)
        if fresh:
            self._fresh_s = now_s
        return fresh

    def prices(self) -> tuple[PriceData, ...]:
        """The held prices (with their confidence), dropping those whose ``publish_time`` has
        not advanced within ``max_age_s``."""
        self._expire()
        return tuple(self._entries[t].price for t in self.tokens if t in self._entries)

    def missing(self) -> tuple[str, ...]:
        """Configured tokens without a price."""
        self._expire()
        return tuple(t for t in self.tokens if t not in self._entries)

    def problems(self) -> tuple[str, ...]:
        """Why some feeds' prices were rejected (bad values upstream)."""
        return tuple(self._feed_problems[t] for t in self.tokens if t in self._feed_problems)

    def staleness_s(self) -> float:
        """Seconds since the stalest held feed's ``publish_time`` last advanced; with no price
        held, since any price last did (since creation if none has yet)."""
        now_s = self._monotonic()
        self._expire()
        if self._entries:
            oldest_s = min(e.advanced_s for e in self._entries.values())
            return max(0.0, now_s - oldest_s)
        since = self._fresh_s if self._fresh_s is not None else self._started_s
        return max(0.0, now_s - since)

    def stale(self, after_s: float) -> tuple[tuple[str, float], ...]:
        """``(token, seconds)`` of every held feed whose ``publish_time`` has not advanced for
        more than ``after_s``, stalest first."""
        now_s = self._monotonic()
        self._expire()
        ages = [(t, now_s - e.advanced_s) for t, e in self._entries.items()]
        return tuple(sorted(((t, a) for t, a in ages if a > after_s), key=lambda ta: -ta[1]))

    def _expire(self) -> None:
        cutoff = self._monotonic() - self._max_age_s
        for token in [t for t, e in self._entries.items() if e.advanced_s < cutoff]:
            del self._entries[token]
