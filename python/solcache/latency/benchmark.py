"""One benchmark run against one server: the raw round trip, solcache's async and sync reads,
and any other clients given.

:func:`run_benchmark` is synchronous: it owns an :class:`asyncio.Runner` (uvloop's loop
when asked), runs the async rows on it and the blocking rows between them, outside any
running loop. Every row is seeded first (solcache's own ``set_many``), checked to read the
seeded price (a hit, not a miss), then timed. A row that cannot run becomes a note; only
an unreachable server or Ctrl-C ends the run early.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from solcache._core import PriceCache, PriceData, price_key
from solcache.config import Settings
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
    RAW_AFTER,
    RAW_BEFORE,
    RAW_THROUGHPUT,
    RAW_THROUGHPUT_AFTER,
    Report,
    Row,
    Section,
    load_average,
    machine_info,
)
from solcache.latency.target import Target
from solcache.latency.timing import default_warmup, time_async, time_concurrent, time_sync
from solcache.redis_pool import RedisPool

__all__ = ["SEED_PRICE", "BenchConfig", "BenchFailure", "ExtraRows", "run_benchmark"]

#: The price every benchmark token is seeded with; every read is checked against it.
SEED_PRICE = Decimal("187.234500001")

Progress = Callable[[str], None]
#: Extra solcache rows measured on the run's loop and pool (``solcache bench``'s writes).
ExtraRows = Callable[[RedisPool, Progress], Awaitable[list[Row]]]


class BenchFailure(Exception):
    """A read did not return the seeded price: the row would time misses, so it is dropped."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run. ``tokens[0]`` is read by ``get``; all of them by ``get_many``.

    ``calls`` timed calls per sequential row (and about as many reads per concurrent row),
    after ``warmup`` untimed ones (None: :func:`default_warmup`). ``seed_ttl_ms`` is the TTL
    of the seeded prices (re-seeded before each row). ``raw_requests`` per redis-benchmark
    run.
    """

    url: str
    tokens: tuple[str, ...]
    calls: int = 20_000
    warmup: int | None = None
    callers: tuple[int, ...] = (20, 200)
    pool_max_size: int = 20
    seed_ttl_ms: int = 3_600_000
    raw_requests: int = 100_000
    use_uvloop: bool = False
    settings: Settings | None = None
    title: str = "solcache benchmark"
    command: str = ""


def _loop_factory(use_uvloop: bool) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    if not use_uvloop:
        return None, "asyncio default loop (uvloop not used)"
    try:
        uvloop: Any = importlib.import_module("uvloop")
    except ImportError:
        return None, "asyncio default loop (uvloop asked for but not installed)"
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory, f"uvloop {installed_version('uvloop') or '?'}"


def _check(result: object, tokens: Sequence[str], many: bool) -> None:
    """Raise :class:`BenchFailure` unless ``result`` holds the seeded price(s)."""
    values = list(result.values()) if many and isinstance(result, dict) else [result]
    if many and len(values) != len(tokens):
        raise BenchFailure(f"get_many returned {len(values)} of {len(tokens)} tokens")
    for v in values:
        if getattr(v, "price", None) != SEED_PRICE:
            raise BenchFailure(f"a read returned {v!r}, not the seeded price (a miss?)")


def _failed(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"failed: {type(e).__name__}: {text}"[:110]


def _tool_version(exe: str) -> str:
    if shutil.which(exe) is None:
        return "not on PATH"
    try:
        run = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        return run.stdout.strip() or run.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


class _Run:
    """State of one run: the loop, the solcache pool, the rows so far.

    An async client lives inside one coroutine from open to close (a client may tie its pool
    to the task that opened it); blocking clients run between the loop's runs.
    """

    def __init__(self, cfg: BenchConfig, runner: asyncio.Runner, progress: Progress) -> None:
        self.cfg, self.runner, self.say = cfg, runner, progress
        self.target = Target.from_url(cfg.url)
        self.key = price_key(cfg.tokens[0])
        self.warmup = cfg.warmup if cfg.warmup is not None else default_warmup(cfg.calls)
        self.rows: list[Row] = []
        self.commands: list[str] = []
        self.many = f"get_many ({len(cfg.tokens)})"
        self.pool: RedisPool | None = None

    async def aseed(self) -> None:
        """(Re)write every token's price with the seed TTL, solcache's own way."""
        assert self.pool is not None
        seeder = PriceCache(self.pool, ttl_ms=self.cfg.seed_ttl_ms)
        await seeder.set_many([PriceData(t, SEED_PRICE, source="bench") for t in self.cfg.tokens])

    def seed(self) -> None:
        self.runner.run(self.aseed())

    def raw(self, key: str, label: str, section: Section, clients: int) -> None:
        self.say(label)
        self.seed()
        try:
            timing, cmd = run_redis_benchmark(
                self.target, self.key, clients=clients, requests=self.cfg.raw_requests
            )
        except RawUnavailable as e:
            self.rows.append(Row(key, label, section, None, str(e)))
            return
        if cmd not in self.commands:
            self.commands.append(cmd)
        self.rows.append(Row(key, label, section, timing))

    def _names(self, key: str, label: str, concurrent: bool) -> list[tuple[str, str, Section]]:
        if concurrent:
            return [
                (f"{key}.get.c{n}", f"{label} get, {n} callers", "concurrent")
                for n in self.cfg.callers
            ]
        return [
            (f"{key}.get", f"{label} get", "sequential"),
            (f"{key}.get_many", f"{label} {self.many}", "sequential"),
        ]

    def absent(self, key: str, label: str, note: str, concurrent: bool = False) -> None:
        self.rows += [
            Row(k, name, sec, None, note) for k, name, sec in self._names(key, label, concurrent)
        ]

    async def async_session(
        self,
        key: str,
        label: str,
        opener: Callable[[], Awaitable[AsyncClient]],
        concurrent: bool = False,
    ) -> None:
        """Open an async client, measure its rows (sequential or concurrent), close it."""
        try:
            client = await opener()
        except ClientUnavailable as e:
            return self.absent(key, label, str(e), concurrent)
        except Exception as e:
            return self.absent(key, label, _failed(e), concurrent)
        try:
            if concurrent:
                for (k, name, sec), n in zip(
                    self._names(key, label, True), self.cfg.callers, strict=True
                ):
                    self.say(name)
                    try:
                        await self.aseed()
                        # Warm-up: every caller reads a few times, so the pool opens connections.
                        await time_concurrent(client.get, n, n * 5)
                        timing = await time_concurrent(client.get, n, self.cfg.calls)
                        self.rows.append(Row(k, name, sec, timing))
                    except Exception as e:
                        self.rows.append(Row(k, name, sec, None, _failed(e)))
                return
            calls = (client.get, client.get_many)
            for (k, name, sec), call in zip(self._names(key, label, False), calls, strict=True):
                self.say(name)
                try:
                    await self.aseed()
                    _check(await call(), self.cfg.tokens, call is client.get_many)
                    timing = await time_async(call, self.cfg.calls, self.warmup)
                    self.rows.append(Row(k, name, sec, timing))
                except Exception as e:
                    self.rows.append(Row(k, name, sec, None, _failed(e)))
        finally:
            await client.close()

    def sync_session(self, key: str, label: str, opener: Callable[[], SyncClient]) -> None:
        """Open a blocking client, time its rows outside any running loop, close it."""
        try:
            client = opener()
        except ClientUnavailable as e:
            return self.absent(key, label, str(e))
        except Exception as e:
            return self.absent(key, label, _failed(e))
        try:
            calls = (client.get, client.get_many)
            for (k, name, sec), call in zip(self._names(key, label, False), calls, strict=True):
                self.say(name)
                try:
                    self.seed()
                    _check(call(), self.cfg.tokens, call is client.get_many)
                    timing = time_sync(call, self.cfg.calls, self.warmup)
                    self.rows.append(Row(k, name, sec, timing))
                except Exception as e:
                    self.rows.append(Row(k, name, sec, None, _failed(e)))
        finally:
            client.close()

    def client(self, spec: ClientSpec, concurrent: bool = False) -> None:
        """Measure ``spec``'s rows, or note why it cannot be measured."""
        if not spec.importable():
            return self.absent(spec.key, spec.label, spec.missing, concurrent)
        args = (self.target, self.cfg.tokens, self.cfg.pool_max_size)
        if (open_async := spec.open_async) is not None:
            self.runner.run(
                self.async_session(spec.key, spec.label, lambda: open_async(*args), concurrent)
            )
        elif (open_sync := spec.open_sync) is not None and not concurrent:
            self.sync_session(spec.key, spec.label, lambda: open_sync(*args))


async def _extra(extra: ExtraRows, pool: RedisPool, say: Progress) -> list[Row]:
    return await extra(pool, say)


async def _close(pool: RedisPool) -> None:
    await pool.close()


def run_benchmark(
    cfg: BenchConfig,
    progress: Progress | None = None,
    extra: ExtraRows | None = None,
    clients: Sequence[ClientSpec] = (),
) -> Report:
    """Measure every row against ``cfg.url``; return the report.

    ``progress(label)`` is called before each row. ``extra(pool, progress)`` adds rows of its
    own (section ``writes``) measured on the same loop and pool. ``clients`` are measured after
    solcache's, the same way (those marked ``concurrent`` also with concurrent callers). Raises
    solcache's ``ConnectionError`` when the server cannot be reached.
    """
    say: Progress = progress if progress is not None else (lambda _label: None)
    machine = machine_info()  # load average before the run
    factory, loop_name = _loop_factory(cfg.use_uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        run = _Run(cfg, runner, say)
        pool = runner.run(
            # The default key layout whatever SOLCACHE_KEY_LAYOUT says: the raw round trip and
            # the peers read `price:<token>`.
            RedisPool.connect(
                cfg.url, max_size=cfg.pool_max_size, key_layout="spread", settings=cfg.settings
            )
        )  # a coroutine: no loop needed to create it
        run.pool = pool
        try:
            run.raw(RAW_BEFORE, "raw: redis-benchmark GET -c 1 (before)", "sequential", 1)

            async def solcache_async() -> AsyncClient:
                return solcache_async_client(pool, cfg.tokens)

            runner.run(run.async_session("solcache-async", "solcache async", solcache_async))
            for spec in (solcache_sync_spec(), *clients):
                run.client(spec)
            run.raw(RAW_THROUGHPUT, "raw: redis-benchmark GET -c 20 (before)", "concurrent", 20)
            runner.run(run.async_session("solcache-async", "solcache async", solcache_async, True))
            for spec in clients:
                if spec.concurrent:
                    run.client(spec, concurrent=True)
            label = "raw: redis-benchmark GET -c 20 (after)"
            run.raw(RAW_THROUGHPUT_AFTER, label, "concurrent", 20)
            if extra is not None:
                run.rows += runner.run(_extra(extra, pool, say))
            run.raw(RAW_AFTER, "raw: redis-benchmark GET -c 1 (after)", "sequential", 1)
            redis_version = pool.redis_version
        finally:
            runner.run(_close(pool))
    machine |= dict(
        load_average_end=load_average(),
        redis_server=redis_version,
        redis_benchmark=_tool_version("redis-benchmark"),
        event_loop=loop_name,
        solcache=installed_version("solcache") or "?",
    )
    return Report(
        title=cfg.title,
        rows=run.rows,
        machine=machine,
        commands=[c for c in (cfg.command,) if c] + run.commands,
        settings={
            "url": run.target.redacted_url,
            "tokens": list(cfg.tokens),
            "calls": cfg.calls,
            "warmup": run.warmup,
            "callers": list(cfg.callers),
            "pool_max_size": cfg.pool_max_size,
            "raw_requests": cfg.raw_requests,
            "uvloop": cfg.use_uvloop,
            "pid": os.getpid(),
        },
    )
