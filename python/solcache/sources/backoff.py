"""Exponential backoff with jitter, for reconnecting to an upstream."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``initial_s``, times ``multiplier`` per failure up to ``max_s``, +-``jitter``."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        multiplier: float = 2.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        if multiplier < 1 or not 0 <= jitter < 1:
            raise ValueError(
                f"need multiplier >= 1 and 0 <= jitter < 1, got {multiplier}, {jitter}"
            )
        self._initial_s = initial_s
        self._max_s = max_s
        self._multiplier = multiplier
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last :meth:`reset`."""
        return self._failures

    def next_delay_s(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        base = min(self._max_s, self._initial_s * self._multiplier ** min(self._failures, 64))
        self._failures += 1
        return base * (1.0 + self._jitter * (2.0 * self._rng.random() - 1.0))

    def reset(self) -> None:
        """Forget past failures (after a success)."""
        self._failures = 0
