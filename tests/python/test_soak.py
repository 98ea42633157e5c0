"""The short soak in ``make test``: 2 % of a day of traffic, judged by ``benches/soak.py``.

The same driver as ``make soak`` (one implementation, loaded from ``benches/soak.py``) at scale
0.02: 17,280 events on each stream, 86,400 price sets, 172,800 reads, two consumer groups, with
``MAXLEN ~ 1000`` so the streams fill up during warm-up and are trimmed for the rest of the run.
Every verdict that does not depend on the run's length is asserted; process RSS only against a
gross bound (a few seconds of traffic do not settle the allocator), the 1 MiB bound is for the
full run (``docs/reliability.md``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import RedisServer

SOAK_PATH = Path(__file__).resolve().parents[2] / "benches" / "soak.py"


def _load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("solcache_soak", SOAK_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


soak = _load_soak()

#: Everything but RSS, which needs the full run to settle.
ASSERTED = [
    "nothing-lost",
    "acked-everything",
    "streams-trimmed",
    "keys-bounded",
    "redis-memory",
    "tasks",
    "fds",
    "threads",
    "in-flight-calls",
    "connections",
    "no-errors",
]


@pytest.mark.slow
async def test_short_soak_loses_nothing_and_leaks_nothing(fresh_redis: RedisServer) -> None:
    config = soak.SoakConfig(scale=0.02, maxlen=1000, checkpoints=10)
    lines: list[str] = []
    report = await soak.run_soak(fresh_redis.url, config, lines.append)
    text = "\n".join([*lines, *(v.line() for v in report.verdicts)])
    print(text)  # shown with -rP or on failure

    assert report.totals["events_per_stream"] == 17_280
    assert report.totals["reads"] == 172_800
    failed = [report.verdict(name).line() for name in ASSERTED if not report.verdict(name).ok]
    assert not failed, "\n".join(failed) + "\n\n" + text

    warm = next(c for c in report.checkpoints if c["label"] == "warm-up")
    rss = report.checkpoints[-1]["rss_bytes"] - warm["rss_bytes"]
    assert rss <= 8 * soak.MIB, f"RSS grew {rss / soak.MIB:.1f} MiB after warm-up\n{text}"
