"""Where prices and pool states come from: the interfaces and their implementations.

- :class:`SimulatedPriceSource` / :class:`SimulatedPoolSource`: the embedded default, a seeded
  random walk around real-world levels and constant-product pools at real Raydium addresses.
- :class:`PythPriceSource`: Pyth Hermes over SSE or polling.
"""

from __future__ import annotations

from solcache.sources.base import PoolSource, PriceSnapshot, PriceSource, SourceError
from solcache.sources.hermes import HERMES_URL, PYTH_FEED_IDS, normalize_feed_id
from solcache.sources.hermes_http import RateLimitedError
from solcache.sources.pyth import PythPriceSource, PythStats
from solcache.sources.reference import REFERENCE_PRICES, TOKEN_MODELS, TokenModel
from solcache.sources.simulated import SimulatedPriceSource
from solcache.sources.simulated_pools import DEFAULT_POOLS, PoolSpec, SimulatedPoolSource

__all__ = [
    "DEFAULT_POOLS",
    "HERMES_URL",
    "PYTH_FEED_IDS",
    "REFERENCE_PRICES",
    "TOKEN_MODELS",
    "PoolSource",
    "PoolSpec",
    "PriceSnapshot",
    "PriceSource",
    "PythPriceSource",
    "PythStats",
    "RateLimitedError",
    "SimulatedPoolSource",
    "SimulatedPriceSource",
    "SourceError",
    "TokenModel",
    "normalize_feed_id",
]
