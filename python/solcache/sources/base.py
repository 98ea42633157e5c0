"""The interfaces every price and pool-state source implements.

A source is started once, asked for a snapshot as often as the service wants (10 Hz by
default), and closed. It never writes to Redis: the services do that.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from solcache._core import PoolState, PriceData

__all__ = ["PoolSource", "PriceSnapshot", "PriceSource", "SourceError"]


class SourceError(Exception):
    """A source could not produce data (network, HTTP status, bad payload)."""


@dataclass(frozen=True, slots=True)
class PriceSnapshot:
    """What a price source knows right now."""

    #: The newest price of every token the source has one for.
    prices: tuple[PriceData, ...]
    #: Configured tokens the source has no price for (unknown feed, not published yet).
    missing: tuple[str, ...] = ()
    #: Seconds since the source last received fresh data from upstream (0 for simulated).
    staleness_s: float = 0.0
    #: Human-readable problems worth reporting (rate limited, reconnecting, …).
    problems: tuple[str, ...] = field(default_factory=tuple)


class PriceSource(abc.ABC):
    """A source of token prices."""

    #: Short name written into ``PriceData.source`` (``simulated``, ``pyth``).
    name: str

    @property
    @abc.abstractmethod
    def tokens(self) -> tuple[str, ...]:
        """The tokens this source is configured for."""

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open connections, start background tasks (default: nothing)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Stop background tasks and release connections (default: nothing)."""

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first data; True when there is some (default: at
        once)."""
        return True

    @abc.abstractmethod
    async def snapshot(self) -> PriceSnapshot:
        """The current prices. Raises :class:`SourceError` when the source has nothing usable."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class PoolSource(abc.ABC):
    """A source of constant-product pool states."""

    name: str

    @property
    @abc.abstractmethod
    def addresses(self) -> tuple[str, ...]:
        """The pool addresses this source is configured for."""

    @property
    def pairs(self) -> dict[str, str]:
        """What each pool trades (``SOL/USDC``) by address, for the pools the source knows it
        of (default: none)."""
        return {}

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open connections, start background tasks (default: nothing)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Stop background tasks and release connections (default: nothing)."""

    @abc.abstractmethod
    async def snapshot(self) -> tuple[PoolState, ...]:
        """The current states of the configured pools."""
