"""The console of `solcache serve` on a terminal: the live status line, log records on lines of
their own, a sane rate from the first frame, slow Redis calls summarised instead of one line
each."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conftest import RedisServer, free_port
from solcache.services.status_line import StatusLine, TickRate


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw`` (handles ``\\r``, ``\\n`` and erase-line)."""
    lines, col, i = [""], 0, 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            lines[-1] = lines[-1][:col]
            i += 3
            continue
        c = raw[i]
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("")
            col = 0
        else:
            line = lines[-1].ljust(col)
            lines[-1] = line[:col] + c + line[col + 1 :]
            col += 1
        i += 1
    return lines


@dataclass(frozen=True)
class Stats:
    """What the status line reads of the price service's stats."""

    ticks: int
    events_published: int
    degraded: bool = False
    reason: str = ""


def stats(ticks: int) -> Stats:
    return Stats(ticks=ticks, events_published=5 * ticks)


def test_tick_rate_waits_for_a_meaningful_span_then_follows_the_window() -> None:
    rate = TickRate(window_s=5.0, min_span_s=1.0)
    assert rate.update(100.0, 3) is None  # the first frame: no span at all
    assert rate.update(100.00001, 3) is None
    assert rate.update(100.5, 8) is None
    assert rate.update(101.0, 13) == pytest.approx(10.0)
    for k in range(2, 20):  # 10 Hz, then 20 Hz from t = 110 on
        ticks = 3 + 10 * k if k <= 10 else 103 + 20 * (k - 10)
        got = rate.update(100.0 + k, ticks)
    assert got == pytest.approx(20.0), "the old 10 Hz left the 5 s window"


@pytest.fixture
def logger_on(request: pytest.FixtureRequest) -> Iterator[tuple[io.StringIO, logging.Logger]]:
    out = io.StringIO()
    logger = logging.getLogger(f"solcache.test.{request.node.name}")
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    yield out, logger
    logger.removeHandler(handler)


def test_log_records_never_land_on_the_status_line(
    logger_on: tuple[io.StringIO, logging.Logger],
) -> None:
    out, logger = logger_on
    line = StatusLine(out)
    line.update(0.5, stats(5), 0, {}, now_s=0.5)
    logger.warning("price-service degraded: redis error")
    line.update(1.5, stats(15), 12, {}, now_s=1.5)
    line.close()
    logger.warning("after close")
    shown = screen(out.getvalue())
    assert "WARNING price-service degraded: redis error" in shown, shown
    assert "WARNING after close" in shown, shown
    assert not any("Hz" in s and "WARNING" in s for s in shown), shown
    # The first frame has no rate yet, the second one has the real one.
    frames = re.findall(r"\[\s*[\d.]+ s\][^\r\x1b]*", out.getvalue())
    assert "   - Hz" in frames[0] and "10.0 Hz" in frames[1], frames


def test_a_disabled_status_line_writes_nothing(
    logger_on: tuple[io.StringIO, logging.Logger],
) -> None:
    out, logger = logger_on
    line = StatusLine(out, enabled=False)
    line.update(1.0, stats(10), 0, {})
    logger.warning("plain")
    line.close()
    assert out.getvalue() == "WARNING plain\n"


def run_on_a_terminal(args: list[str], env: dict[str, str], timeout_s: float = 60) -> str:
    """Run ``args`` with stdout and stderr on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_serve_console_on_a_terminal(fresh_redis: RedisServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}
    env["SOLCACHE_SLOW_THRESHOLD_MS"] = "0.001"  # every cache call is slow: warnings galore
    # fmt: off
    args = [
        sys.executable, "-m", "solcache", "serve", "--redis-url", fresh_redis.url,
        "--port", str(free_port()), "--duration", "5", "--seed", "1",
    ]
    # fmt: on
    raw = run_on_a_terminal(args, env)
    shown = screen(raw)
    # Every status frame has a believable rate (10 Hz by default), the first one included.
    rates = [float(r) for r in re.findall(r"(\d+\.\d) Hz", raw)]
    assert rates, raw
    assert all(r < 100 for r in rates), rates
    # Log records start on a line of their own, never glued to the status line.
    assert not any("Hz" in s and "WARNING" in s for s in shown), shown
    # Slow calls: each operation's first one at once, then summaries (none within 5 s).
    slow = [s for s in shown if "slow Redis" in s]
    assert slow, shown
    ops = [re.search(r"slow Redis operation: (\w+) took", s) for s in slow]
    names = [m.group(1) for m in ops if m is not None]
    assert len(names) == len(slow) and len(set(names)) == len(names), slow
    assert all("later slow calls are summarised every 60 s" in s for s in slow), slow
