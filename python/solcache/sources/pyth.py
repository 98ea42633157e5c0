"""Prices from Pyth Hermes: streamed over SSE (default) or polled, in a background task."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from solcache._core import __version__
from solcache.backoff import Backoff
from solcache.sources.base import PriceSnapshot, PriceSource, SourceError
from solcache.sources.feed_book import FeedBook
from solcache.sources.hermes import HERMES_URL, PYTH_FEED_IDS, parse_price_update
from solcache.sources.hermes_http import RateLimitedError, check_status
from solcache.sources.sse_decoder import SseDecoder

__all__ = ["PythPriceSource", "PythStats"]

_log = logging.getLogger(__name__)
_LATEST_PATH = "/v2/updates/price/latest"
_STREAM_PATH = "/v2/updates/price/stream"


@dataclass(frozen=True, slots=True)
class PythStats:
    """Counters since the source was created."""

    #: HTTP requests sent (polls and stream connections).
    requests: int
    #: Answers that were 429 Too Many Requests.
    rate_limited: int
    #: Failed attempts of any other kind (network, HTTP status, bad payload).
    errors: int
    #: SSE connections that opened (200 OK).
    stream_connections: int
    #: Payloads (poll answers, SSE events) that carried prices.
    payloads: int
    #: Prices that moved forward in publish time.
    updates: int


class PythPriceSource(PriceSource):
    """Pyth prices from a Hermes server, kept fresh by a background task.

    In ``"stream"`` mode the task holds ``GET /v2/updates/price/stream`` open and reconnects with
    backoff when Hermes closes it (it does after 24 h) or it fails; in ``"poll"`` mode it sends
    ``GET /v2/updates/price/latest`` every ``poll_interval_s``. :meth:`snapshot` never waits on
    the network: it returns what the task has received. Each price keeps Pyth's confidence
    interval (``PriceData.confidence``, ``conf`` scaled like the price).

    Freshness is judged by each feed's ``publish_time``, never by arrival: Hermes re-sends the
    last price of every feed in each update, so a feed whose publishers stopped keeps arriving
    unchanged. ``snapshot().staleness_s`` is the age of the stalest feed (time since its
    ``publish_time`` last advanced), a feed older than ``stale_after_s`` is named in
    ``snapshot().problems``, and one older than ``price_max_age_s`` is dropped (missing).

    A 429 pauses the task for the server's ``Retry-After`` (capped at ``retry_after_max_s``) or
    else ``rate_limit_backoff_s``, and is reported in ``snapshot().problems`` meanwhile. Feed ids
    unknown to Hermes are ignored upstream (``ignore_invalid_price_ids``) and their tokens show
    up in ``snapshot().missing``, as do feeds whose ``publish_time`` stood still for
    ``price_max_age_s``.

    The API key, if any, goes in the ``api_key_header`` header as ``"{api_key_scheme} {key}"``
    (just the key when the scheme is None) and is never logged; nor is the URL's path, which
    some providers use for a secret token.
    """

    name = "pyth"

    def __init__(
        self,
        feed_ids: Mapping[str, str] = PYTH_FEED_IDS,
        *,
        base_url: str = HERMES_URL,
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        api_key_scheme: str | None = "Bearer",
        mode: Literal["stream", "poll"] = "stream",
        poll_interval_s: float = 0.4,
        timeout_s: float = 5.0,
        stream_idle_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rate_limit_backoff_s: float = 60.0,
        retry_after_max_s: float = 300.0,
        stale_after_s: float = 2.0,
        price_max_age_s: float = 60.0,
    ) -> None:
        """Configure the source; nothing connects before :meth:`start`.

        ``feed_ids`` maps tokens to feed ids (hex, with or without ``0x``, any case).
        ``timeout_s`` bounds connecting and each poll; ``stream_idle_timeout_s`` is the longest
        silence tolerated on the stream before reconnecting (Hermes sends a keep-alive comment
        every 15 s).
        """
        if mode not in ("stream", "poll"):
            raise ValueError(f"mode must be 'stream' or 'poll', got {mode!r}")
        durations = {
            "poll_interval_s": poll_interval_s,
            "timeout_s": timeout_s,
            "stream_idle_timeout_s": stream_idle_timeout_s,
            "backoff_initial_s": backoff_initial_s,
            "backoff_max_s": backoff_max_s,
            "rate_limit_backoff_s": rate_limit_backoff_s,
            "retry_after_max_s": retry_after_max_s,
            "stale_after_s": stale_after_s,
            "price_max_age_s": price_max_age_s,
        }
        for what, value in durations.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{what} must be positive and finite, got {value}")
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError("base_url must be an http:// or https:// URL without a query")
        self._book = FeedBook(feed_ids, source_name=self.name, max_age_s=price_max_age_s)
        self._base_url = base_url.rstrip("/")
        self._public_url = f"{url.scheme}://{url.hostname}" + (f":{url.port}" if url.port else "")
        self._secrets = [s for s in (api_key, url.password, url.path.strip("/")) if s]
        self._headers = {"User-Agent": f"solcache/{__version__}"}
        if api_key:
            self._headers[api_key_header] = (
                f"{api_key_scheme} {api_key}" if api_key_scheme else api_key
            )
        self._mode = mode
        self._poll_interval_s = poll_interval_s
        self._timeout_s = timeout_s
        self._stream_idle_timeout_s = stream_idle_timeout_s
        self._backoff = Backoff(backoff_initial_s, max(backoff_initial_s, backoff_max_s))
        self._rate_limit_backoff_s = rate_limit_backoff_s
        self._retry_after_max_s = retry_after_max_s
        self._stale_after_s = stale_after_s
        query = "&".join(f"ids[]={feed_id}" for feed_id in self._book.feed_ids)
        self._query = f"?{query}&parsed=true&ignore_invalid_price_ids=true"
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._problem: str | None = None
        self._counts = dict.fromkeys(PythStats.__slots__, 0)

    @property
    def tokens(self) -> tuple[str, ...]:
        return self._book.tokens

    @property
    def mode(self) -> str:
        """``"stream"`` or ``"poll"``."""
        return self._mode

    @property
    def stats(self) -> PythStats:
        """Request and update counters (for metrics)."""
        return PythStats(**self._counts)

    async def start(self) -> None:
        """Start the background task (idempotent). Returns at once; see :meth:`wait_ready`."""
        if self._task is not None:
            return
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=self._headers,
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=False,
        )
        self._task = asyncio.create_task(self._run(), name=f"solcache-pyth-{self._mode}")
        _log.info("pyth: %s prices of %s from %s", self._mode, self.tokens, self._public_url)

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first price; return whether one arrived."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Cancel the background task and close the HTTP client (idempotent)."""
        task, self._task = self._task, None
        client, self._client = self._client, None
        try:
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
        finally:
            if client is not None:
                await client.aclose()

    async def snapshot(self) -> PriceSnapshot:
        """The newest prices received; raises :class:`SourceError` when there are none."""
        if self._task is None:
            raise SourceError("the Pyth source is not started")
        if self._task.done() and not self._task.cancelled():
            raise SourceError(f"the Pyth task died: {self._task.exception()!r}")
        problems = self._book.problems() + tuple(
            f"{token}: publish_time has not advanced for {age_s:.1f} s"
            for token, age_s in self._book.stale(self._stale_after_s)
        )
        if self._problem is not None:
            problems = (self._problem, *problems)
        prices = self._book.prices()
        if not prices:
            raise SourceError("no Pyth price yet" + "".join(f"; {p}" for p in problems))
        return PriceSnapshot(
            prices=prices,
            missing=self._book.missing(),
            staleness_s=self._book.staleness_s(),
            problems=problems,
        )

    # --- the background task ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self._mode == "poll":
                    await self._poll_forever()
                else:
                    await self._stream_once()
                delay_s = self._backoff.next_delay_s()
                self._report(
                    f"Hermes closed the price stream; reconnecting in {delay_s:.2f} s",
                    level=logging.INFO,  # routine: Hermes ends every stream after 24 h
                )
            except RateLimitedError as exc:
                self._counts["rate_limited"] += 1
                delay_s = min(
                    self._retry_after_max_s,
                    exc.retry_after_s
                    if exc.retry_after_s is not None
                    else self._rate_limit_backoff_s,
                )
                self._report(f"rate limited by Hermes (HTTP 429); retrying in {delay_s:.2f} s")
            except (httpx.HTTPError, SourceError) as exc:
                self._counts["errors"] += 1
                delay_s = self._backoff.next_delay_s()
                self._report(f"{self._describe(exc)}; retrying in {delay_s:.2f} s")
            except Exception as exc:  # a bug must not stop prices for good: log it, retry
                self._counts["errors"] += 1
                delay_s = self._backoff.next_delay_s()
                _log.exception("pyth: unexpected error")
                self._report(f"unexpected {type(exc).__name__}; retrying in {delay_s:.2f} s")
            await asyncio.sleep(delay_s)

    async def _poll_forever(self) -> None:
        assert self._client is not None
        next_s = time.monotonic()
        while True:
            self._counts["requests"] += 1
            response = await self._client.get(_LATEST_PATH + self._query)
            check_status(response, self._scrub)
            try:
                payload = response.json()
            except ValueError:
                raise SourceError("Hermes sent a response that is not JSON") from None
            self._take(payload, complete=True)
            next_s = max(next_s + self._poll_interval_s, time.monotonic())
            await asyncio.sleep(next_s - time.monotonic())

    async def _stream_once(self) -> None:
        """One SSE connection, until the server ends it."""
        assert self._client is not None
        self._counts["requests"] += 1
        timeout = httpx.Timeout(self._timeout_s, read=self._stream_idle_timeout_s)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        async with self._client.stream(
            "GET", _STREAM_PATH + self._query, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != httpx.codes.OK:
                await response.aread()
            check_status(response, self._scrub)
            self._counts["stream_connections"] += 1
            decoder = SseDecoder()
            async for line in response.aiter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                if event.event == "error":
                    self._report(f"Hermes stream error: {self._scrub(event.data)}")
                    continue
                if event.event != "message":
                    continue
                try:
                    self._take(json.loads(event.data), complete=False)
                except (ValueError, SourceError) as exc:
                    self._counts["errors"] += 1
                    self._report(f"skipped a bad stream event: {self._describe(exc)}")

    def _take(self, payload: object, *, complete: bool) -> None:
        prices, problems = parse_price_update(payload)
        for problem in problems:
            _log.warning("pyth: %s", problem)
        self._counts["payloads"] += 1
        self._counts["updates"] += self._book.apply(prices, complete=complete)
        if self._book.prices():
            self._ready.set()
            self._backoff.reset()
            self._recovered()
        else:
            self._report("Hermes sent no price for any configured feed (unknown feed ids?)")

    # --- reporting ---------------------------------------------------------------------------

    def _report(self, problem: str, *, level: int = logging.WARNING) -> None:
        """Make ``problem`` the current one (shown in snapshots until data flows again)."""
        if problem != self._problem:
            _log.log(level, "pyth (%s): %s", self._public_url, problem)
        self._problem = problem

    def _recovered(self) -> None:
        if self._problem is not None:
            _log.info("pyth (%s): receiving prices again", self._public_url)
            self._problem = None

    def _describe(self, exc: BaseException) -> str:
        text = str(exc).strip()
        return self._scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _scrub(self, text: str) -> str:
        """``text`` without the API key or the secret-bearing parts of the base URL."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"PythPriceSource({self._public_url!r}, mode={self._mode!r}, tokens={self.tokens})"
