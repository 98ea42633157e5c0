"""The cache rows of ``make compare``, measured in interleaved rounds.

Every client (solcache async and sync, each peer) is opened once; then each round runs the
raw ``redis-benchmark GET -c 1 -P 1``, every sequential row (in an order rotated by one each
round, so no row always follows the raw run), ``redis-benchmark -c N`` for each caller count
N, and every concurrent row. A noisy minute of the shared machine thus hits every row and its
baseline alike. Each row's figures are the medians over rounds of that round's p50, p99,
mean, rate and CPU µs per call; its ratio to the raw round trip is the median over rounds of
the round's own ratio.

All of it runs in one coroutine on one loop (an async client may tie itself to the task that
opened it); the blocking rows run on the loop's thread between the async ones, and
``redis-benchmark`` in a worker thread while the loop waits.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from solcache._core import PriceCache, PriceData, price_key
from solcache.latency import BenchConfig, Report, Row, Timing
from solcache.latency.benchmark import (
    SEED_PRICE,
    _check,
    _failed,
    _loop_factory,
    _tool_version,
)
from solcache.latency.clients import (
    AsyncClient,
    ClientSpec,
    ClientUnavailable,
    SyncClient,
    installed_version,
    solcache_async_client,
    solcache_sync_spec,
)
from solcache.latency.redis_benchmark import RawUnavailable, run_redis_benchmark
from solcache.latency.report import (
    RAW_BEFORE,
    RAW_THROUGHPUT,
    Section,
    load_average,
    machine_info,
    raw_throughput_key,
)
from solcache.latency.target import Target
from solcache.latency.timing import default_warmup, time_async, time_concurrent, time_sync
from solcache.redis_pool import RedisPool

__all__ = ["DEFAULT_ROUNDS", "run_rounds"]

#: Rounds per run: each row's calls (and the raw requests) are split over them.
DEFAULT_ROUNDS = 5

Progress = Callable[[str], None]


@dataclass
class _Series:
    """One row: how to call it, and what each round measured."""

    key: str
    label: str
    section: Section
    call: Callable[[], Any] | None = None
    is_async: bool = True
    many: bool = False
    callers: int = 1
    note: str = ""
    rounds: list[Timing] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


def _median_timing(rounds: list[Timing]) -> Timing:
    def med(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    first = rounds[0]
    return Timing(
        calls=sum(t.calls for t in rounds),
        p50_us=statistics.median(t.p50_us for t in rounds),
        p99_us=med([t.p99_us for t in rounds]),
        mean_us=med([t.mean_us for t in rounds]),
        ops_per_s=statistics.median(t.ops_per_s for t in rounds),
        callers=first.callers,
        errors=sum(t.errors for t in rounds),
        first_error=next((t.first_error for t in rounds if t.first_error), ""),
        cpu_us=med([t.cpu_us for t in rounds]),
    )


class _Run:
    def __init__(self, cfg: BenchConfig, rounds: int, say: Progress) -> None:
        self.cfg, self.rounds, self.say = cfg, rounds, say
        self.target = Target.from_url(cfg.url)
        self.per_round = max(1, cfg.calls // rounds)
        warmup = cfg.warmup if cfg.warmup is not None else default_warmup(cfg.calls)
        self.warmup = warmup
        self.raw_requests = max(1000, cfg.raw_requests // rounds)
        self.many = f"get_many ({len(cfg.tokens)})"
        self.seq: list[_Series] = []
        self.conc: list[_Series] = []
        self.raw: dict[int, _Series] = {}
        self.commands: list[str] = []
        self.closers: list[Callable[[], Awaitable[None] | None]] = []

    def add(
        self,
        key: str,
        label: str,
        client: AsyncClient | SyncClient | None,
        note: str,
        concurrent: bool,
    ) -> None:
        is_async = isinstance(client, AsyncClient)
        if concurrent:
            for n in self.cfg.callers:
                get = client.get if client is not None else None
                name = f"{label} get, {n} callers"
                self.conc.append(
                    _Series(
                        f"{key}.get.c{n}", name, "concurrent", get, is_async, callers=n, note=note
                    )
                )
            return
        ops = (client.get, client.get_many) if client is not None else (None, None)
        for name, op, many in (("get", ops[0], False), ("get_many", ops[1], True)):
            shown = "get" if not many else self.many
            self.seq.append(
                _Series(
                    f"{key}.{name}", f"{label} {shown}", "sequential", op, is_async, many, note=note
                )
            )

    async def open(self, spec: ClientSpec) -> AsyncClient | SyncClient | str:
        """The opened client, or why not."""
        if not spec.importable():
            return spec.missing
        args = (self.target, self.cfg.tokens, self.cfg.pool_max_size)
        try:
            if spec.open_async is not None:
                client: AsyncClient | SyncClient = await spec.open_async(*args)
            elif spec.open_sync is not None:
                client = spec.open_sync(*args)
            else:
                return "nothing to open"
        except ClientUnavailable as e:
            return str(e)
        except Exception as e:
            return _failed(e)
        self.closers.append(client.close)
        return client

    def raw_run(self, clients: int) -> None:
        series = self.raw[clients]
        try:
            timing, cmd = run_redis_benchmark(
                self.target,
                price_key(self.cfg.tokens[0]),
                clients=clients,
                requests=self.raw_requests if clients == 1 else self.raw_requests * 2,
            )
        except RawUnavailable as e:
            series.note = str(e)
            return
        if cmd not in self.commands:
            self.commands.append(cmd)
        series.rounds.append(timing)

    async def time_row(self, s: _Series, first_round: bool) -> None:
        if s.call is None or (s.note and not s.rounds):
            return
        try:
            if s.section == "concurrent":
                n = s.callers
                # Warm-up: every caller reads a few times, so a pool opens its connections.
                await time_concurrent(s.call, n, n * 5)
                t = await time_concurrent(s.call, n, self.per_round)
            elif s.is_async:
                if first_round:
                    _check(await s.call(), self.cfg.tokens, s.many)
                t = await time_async(s.call, self.per_round, self.warmup if first_round else 20)
            else:
                if first_round:
                    _check(s.call(), self.cfg.tokens, s.many)
                t = time_sync(s.call, self.per_round, self.warmup if first_round else 20)
        except Exception as e:
            s.note, s.call = _failed(e), None
            s.rounds.clear()
            return
        s.rounds.append(t)

    def ratio_base(self, s: _Series) -> _Series | None:
        if s.section == "sequential":
            return self.raw[1]
        return self.raw.get(s.callers) or self.raw.get(20)

    async def main(self, pool: RedisPool, specs: Sequence[ClientSpec]) -> None:
        seeder = PriceCache(pool, ttl_ms=self.cfg.seed_ttl_ms)
        seed = [PriceData(t, SEED_PRICE, source="bench") for t in self.cfg.tokens]
        await seeder.set_many(seed)
        self.add("solcache-async", "solcache async", solcache_async_client(pool, self.cfg.tokens),
                 "", False)  # fmt: skip
        for spec in (solcache_sync_spec(), solcache_sync_spec(polled=False), *specs):
            self.say(f"opening {spec.label}")
            client = await self.open(spec)
            note = client if isinstance(client, str) else ""
            opened = None if isinstance(client, str) else client
            self.add(spec.key, spec.label, opened, note, False)
        self.add("solcache-async", "solcache async", solcache_async_client(pool, self.cfg.tokens),
                 "", True)  # fmt: skip
        for spec in specs:
            if spec.concurrent and spec.open_async is not None:
                client = await self.open(spec)
                note = client if isinstance(client, str) else ""
                self.add(spec.key, spec.label, None if note else client, note, True)  # type: ignore[arg-type]
        raw_label = "raw: redis-benchmark GET -c {} -P 1"
        self.raw[1] = _Series(RAW_BEFORE, raw_label.format(1), "sequential")
        for n in sorted({20, *self.cfg.callers}):
            key = RAW_THROUGHPUT if n == 20 else raw_throughput_key(n)
            self.raw[n] = _Series(key, raw_label.format(n), "concurrent", callers=n)
        for r in range(self.rounds):
            await seeder.set_many(seed)  # the seed TTL outlives every round
            self.say(f"round {r + 1}/{self.rounds}: redis-benchmark -c 1")
            await asyncio.to_thread(self.raw_run, 1)
            shift = r % max(1, len(self.seq))
            for s in self.seq[shift:] + self.seq[:shift]:
                self.say(f"round {r + 1}/{self.rounds}: {s.label}")
                await self.time_row(s, r == 0)
            for n in self.raw:
                if n != 1:
                    self.say(f"round {r + 1}/{self.rounds}: redis-benchmark -c {n}")
                    await asyncio.to_thread(self.raw_run, n)
            for s in self.conc:
                self.say(f"round {r + 1}/{self.rounds}: {s.label}")
                await self.time_row(s, r == 0)
            for s in (*self.seq, *self.conc):
                base = self.ratio_base(s)
                if not s.rounds or base is None or len(base.rounds) != len(s.rounds):
                    continue
                t, b = s.rounds[-1], base.rounds[-1]
                s.ratios.append(t.p50_us / b.p50_us if s.section == "sequential"
                                else t.ops_per_s / b.ops_per_s)  # fmt: skip

    async def close(self) -> None:
        for close in reversed(self.closers):
            try:
                done = close()
                if done is not None:
                    await done
            except Exception:  # a peer that fails to close does not hide the table
                pass

    def rows(self) -> list[Row]:
        out: list[Row] = []
        raw_rows = [self.raw[1], *(s for n, s in self.raw.items() if n != 1)]
        for s in (self.raw[1], *self.seq, *raw_rows[1:], *self.conc):
            if not s.rounds:
                out.append(Row(s.key, s.label, s.section, None, s.note or "not measured"))
                continue
            out.append(Row(s.key, s.label, s.section, _median_timing(s.rounds)))
        return out


def run_rounds(
    cfg: BenchConfig,
    progress: Progress | None = None,
    clients: Sequence[ClientSpec] = (),
    rounds: int = DEFAULT_ROUNDS,
) -> tuple[Report, dict[str, list[float]]]:
    """Measure solcache and ``clients`` against ``cfg.url`` in ``rounds`` interleaved rounds.

    Returns the report (rows hold medians over rounds) and, per row key, the round-by-round
    ratios to that round's raw run (p50 ÷ raw p50; reads/s ÷ raw reads/s for concurrent rows).
    Raises solcache's ``ConnectionError`` when the server cannot be reached.
    """
    say: Progress = progress if progress is not None else (lambda _label: None)
    machine = machine_info()
    factory, loop_name = _loop_factory(cfg.use_uvloop)
    run = _Run(cfg, max(1, rounds), say)

    async def session() -> str:
        pool = await RedisPool.connect(cfg.url, max_size=cfg.pool_max_size, settings=cfg.settings)
        try:
            await run.main(pool, clients)
            return pool.redis_version
        finally:
            await run.close()
            await pool.close()

    with asyncio.Runner(loop_factory=factory) as runner:
        redis_version = runner.run(session())
    machine |= dict(
        load_average_end=load_average(),
        redis_server=redis_version,
        redis_benchmark=_tool_version("redis-benchmark"),
        event_loop=loop_name,
        solcache=installed_version("solcache") or "?",
    )
    raw_rounds = ", ".join(f"{t.p50_us:.0f}" for t in run.raw[1].rounds)
    machine["raw_c1_p50_us_per_round"] = raw_rounds or "not measured"
    report = Report(
        title=cfg.title,
        rows=run.rows(),
        machine=machine,
        commands=[c for c in (cfg.command,) if c] + run.commands,
        settings={
            "url": run.target.redacted_url,
            "tokens": list(cfg.tokens),
            "calls": cfg.calls,
            "rounds": run.rounds,
            "calls_per_round": run.per_round,
            "warmup": run.warmup,
            "callers": list(cfg.callers),
            "pool_max_size": cfg.pool_max_size,
            "raw_requests_per_round": run.raw_requests,
            "uvloop": cfg.use_uvloop,
            "pid": os.getpid(),
        },
    )
    ratios = {s.key: s.ratios for s in (*run.seq, *run.conc) if s.ratios}
    return report, ratios
