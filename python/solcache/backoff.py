"""The one retry schedule of solcache: exponential backoff with jitter.

Subscriptions (in the core), the services, the sources and the gateway all wait by it, so an
outage is ridden through the same way everywhere. ``Backoff(initial_s, max_s)`` gives delays
of ``initial_s``, doubling per consecutive failure up to ``max_s``, each moved by up to +-10 %
(``jitter``) so clients cut off together do not reconnect in lockstep; ``reset()`` after a
success.
"""

from __future__ import annotations

from solcache._core import Backoff

__all__ = ["Backoff"]
