"""The solcache error tree.

Every error raised by solcache is a :class:`SolcacheError`. Each one also subclasses the
builtin it means, so callers can catch by meaning: ``except TimeoutError`` catches
:class:`solcache.TimeoutError`, ``except ValueError`` catches bad input and undecodable data.

The Rust core classifies errors; ``solcache._core`` maps each class to one of these types in
one place (``src/python/errors.rs``).
"""

from __future__ import annotations

import builtins

__all__ = [
    "AuthenticationError",
    "ConnectionError",
    "InternalError",
    "InvalidInputError",
    "PoolExhaustedError",
    "ResponseError",
    "SerializationError",
    "SolcacheError",
    "TimeoutError",
    "UnsupportedServerError",
]


class SolcacheError(Exception):
    """Base class of every error solcache raises."""


class ConnectionError(SolcacheError, builtins.ConnectionError):
    """Redis could not be reached, or the connection broke mid-call (retryable)."""


class AuthenticationError(ConnectionError):
    """Redis refused the credentials (wrong password, unknown ACL user).

    ``code`` is Redis' own word for the refusal: ``"WRONGPASS"`` (wrong password, unknown or
    disabled user) or ``"NOAUTH"`` (no credentials given); ``None`` when no reply said which.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TimeoutError(SolcacheError, builtins.TimeoutError):
    """A connect, response or checkout timeout elapsed (retryable)."""


class PoolExhaustedError(TimeoutError):
    """No pooled connection became free within the checkout timeout."""


class SerializationError(SolcacheError, ValueError):
    """A cached value could not be decoded; ``key`` names the Redis key that holds it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InvalidInputError(SolcacheError, ValueError):
    """An argument was rejected before Redis was touched (bad token, address, amount …)."""


class ResponseError(SolcacheError):
    """Redis answered with an error reply (e.g. WRONGTYPE, NOPERM, OOM).

    ``code`` is the error code Redis put first in its reply (``"NOGROUP"``, ``"BUSYGROUP"``,
    ``"OOM"``, ``"READONLY"``, ``"WRONGTYPE"``, ``"ERR"`` …), so callers act on what the server
    meant without reading the message; ``None`` when the reply was not an error reply but one
    of a shape solcache does not expect.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class UnsupportedServerError(SolcacheError):
    """The server is older than Redis 6.2, which solcache requires."""


class InternalError(SolcacheError):
    """A bug in solcache itself (a panic in the Rust core): please report it."""
