"""solcache side by side with other Python Redis clients: the peers and the goals.

:mod:`solcache.latency` measures the raw round trip and solcache (as ``solcache bench`` does);
this package adds the peers (redis-py, coredis, valkey-glide) as more rows and judges the
goals. ``benches/compare.py`` (``make compare``) runs it on a private redis-server.
"""

from comparison.goals import GOALS, Goal, GoalResult
from comparison.peers import PeerPrice, decode_price, peer_specs
from comparison.runner import Comparison, run_comparison

__all__ = [
    "GOALS",
    "Comparison",
    "Goal",
    "GoalResult",
    "PeerPrice",
    "decode_price",
    "peer_specs",
    "run_comparison",
]
