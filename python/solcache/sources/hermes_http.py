"""How Hermes answers over HTTP: status codes worth telling apart, and ``Retry-After``."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from solcache.sources.base import SourceError

__all__ = ["RateLimitedError", "check_status", "retry_after_s"]

#: Characters of an upstream error body quoted in a message.
_QUOTE_CHARS = 200


class RateLimitedError(SourceError):
    """Hermes answered 429 Too Many Requests (the public instance: 30 requests per 10 s)."""

    def __init__(self, retry_after_s: float | None) -> None:
        super().__init__("rate limited by Hermes (HTTP 429)")
        #: The server's ``Retry-After``, in seconds, if it sent one.
        self.retry_after_s = retry_after_s


def check_status(response: httpx.Response, scrub: Callable[[str], str]) -> None:
    """Return if ``response`` is 200 OK; else raise :class:`RateLimitedError` or SourceError.

    The body (read already) is quoted in the error after passing through ``scrub``.
    """
    status = response.status_code
    if status == httpx.codes.OK:
        return
    if status == httpx.codes.TOO_MANY_REQUESTS:
        raise RateLimitedError(retry_after_s(response.headers.get("Retry-After")))
    body = response.text[:_QUOTE_CHARS].strip()
    hint = " (check the API key)" if status in (401, 403) else ""
    raise SourceError(f"Hermes answered HTTP {status}{hint}: {scrub(body)}")


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header (delay seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
