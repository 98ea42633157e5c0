"""Where the benchmark connects: a solcache Redis URL taken apart for the other clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from solcache._core import redact_url

__all__ = ["Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """One Redis server as solcache's URL names it (``redis://``, ``rediss://``, ``unix://``).

    ``host``/``port`` are set for TCP, ``unix_socket`` for a socket path. ``tls`` is true for
    ``rediss://``; ``insecure`` for a ``#insecure`` fragment (no certificate verification).
    The password is kept out of ``repr``.
    """

    url: str = field(repr=False)
    host: str | None = None
    port: int | None = None
    unix_socket: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    insecure: bool = False

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse ``url`` the way the Rust core does; raise ``ValueError`` for other schemes."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "unix":
            query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
            return cls(
                url=url,
                unix_socket=unquote(parts.path),
                db=int(query.get("db", "0") or 0),
                username=query.get("user") or query.get("username"),
                password=query.get("pass") or query.get("password"),
            )
        if scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis://, rediss:// or unix:// URL: {redact_url(url)}")
        path = parts.path.strip("/")
        return cls(
            url=url,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=scheme == "rediss",
            insecure=parts.fragment == "insecure",
        )

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``."""
        return redact_url(self.url)
