"""The short soak in ``make test``: 2 % of a day of traffic, judged by ``benches/soak.py``.

The same driver as ``make soak`` (one implementation, loaded from ``benches/soak.py``) at scale
0.02: 17,280 events on each stream, 86,400 price sets, 51,840 pool-state sets, 172,800 reads,
two consumer groups, with ``MAXLEN ~ 1000`` so the streams fill up during warm-up and are
trimmed for the rest of the run. Every verdict is asserted except the absolute RSS bound of the
full run (``docs/reliability.md``): growth is judged per operation instead (RSS, malloc's heap,
Python objects and blocks per event after warm-up), with bounds that a leak of 16 bytes or one
object per call breaks — the second test injects such leaks and watches the verdicts fail.
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

#: Judged per operation; each leak of the second test must break its own.
PER_OP = ["rss-per-op", "heap-per-op", "objects-per-op", "py-blocks-per-op"]
#: Everything but the absolute RSS bound, which needs the full run.
ASSERTED = [
    "nothing-lost",
    "acked-everything",
    "streams-trimmed",
    "keys-bounded",
    "expiry",
    *PER_OP,
    "redis-memory",
    "tasks",
    "fds",
    "threads",
    "in-flight-calls",
    "connections",
    "no-errors",
]
# A short run settles later than a day's: judge from 30 % on.
WARMUP = 0.3


async def _run(server: RedisServer, **config: float) -> tuple[soak.SoakReport, str]:
    lines: list[str] = []
    report = await soak.run_soak(server.url, soak.SoakConfig(**config), lines.append)
    text = "\n".join([*lines, *(v.line() for v in report.verdicts)])
    print(text)  # shown with -rP or on failure
    return report, text


@pytest.mark.slow
async def test_short_soak_loses_nothing_and_leaks_nothing(fresh_redis: RedisServer) -> None:
    report, text = await _run(
        fresh_redis, scale=0.02, maxlen=1000, checkpoints=10, warmup_fraction=WARMUP
    )
    assert report.totals["events_per_stream"] == 17_280
    assert report.totals["reads"] == 172_800
    assert {v.name for v in report.verdicts} >= set(ASSERTED)
    failed = [report.verdict(name).line() for name in ASSERTED if not report.verdict(name).ok]
    assert not failed, "\n".join(failed) + "\n\n" + text


@pytest.mark.slow
async def test_soak_catches_a_16_byte_and_a_one_object_leak_per_read(
    fresh_redis: RedisServer,
) -> None:
    report, text = await _run(
        fresh_redis,
        scale=0.01,
        maxlen=1000,
        checkpoints=5,
        warmup_fraction=WARMUP,
        leak_bytes_per_read=16,
        leak_objects_per_read=1,
    )
    passed = [report.verdict(name).line() for name in PER_OP if report.verdict(name).ok]
    assert not passed, "a leak went unnoticed:\n" + "\n".join(passed) + "\n\n" + text
    # Everything else still holds: the leaks are all that is wrong.
    others = [v.line() for v in report.verdicts if v.name not in [*PER_OP, "rss"] and not v.ok]
    assert not others, "\n".join(others)
