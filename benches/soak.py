"""Soak: 24 h of 10 Hz traffic replayed as fast as it goes, in one process, through the public API.

``make soak`` (or ``python benches/soak.py [--scale 1.0] [--report soak.json]``) starts a private
redis-server (free port, no persistence, no ``maxmemory``) and replays, for ``--scale`` x 24 h:

- 10 Hz of events on each of the three streams (864,000 each at scale 1): ``PriceUpdate`` →
  ``stream:price-updates``, ``TradeExecuted`` → ``stream:trade-events``, ``SystemStatus`` →
  ``stream:ui-events``, published with ``publish_many`` (every XADD trims with ``MAXLEN ~``);
- 10 Hz of prices for each of the five MVP tokens (864,000 sets per token), with ``set_many``
  (2 s TTL, as in production);
- 100 Hz of reads (8,640,000 calls): ``get_many`` of the five tokens and ``get`` of one, in turn,
  from ``--read-concurrency`` concurrent readers;
- two consumer groups reading all three streams: ``soak-handlers`` through a
  ``SubscriptionManager`` (one handler per stream) and ``soak-batches`` through
  ``EventStream.subscribe`` with explicit ``next_batch``/``ack``. Every event carries a sequence
  number; both groups check that they see each one once, in order.

The publisher never runs more than half a ``MAXLEN`` ahead of the slower group (a consumer that
lags by more than ``MAXLEN`` loses entries to trimming: that is Redis' contract, not a leak).

At ``--checkpoints`` regular points the replay pauses until both groups caught up, runs
``gc.collect()``, and samples the process (RSS, open fds, threads, asyncio tasks, the core's
in-flight calls), the pool (connections, errors) and Redis (``used_memory``, XLEN, pending, lag,
keys, clients, connections received). Warm-up is the first 10 % of the work; the verdicts compare
what comes after with the warm-up checkpoint. Exit status 1 when a verdict fails.

The driver is also imported by ``tests/python/test_soak.py`` (the short version in ``make test``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import platform
import resource
import shlex
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import solcache
from solcache import _core
from solcache.services.private_redis import PrivateRedis
from solcache.subscriptions import SubscriptionManager

__all__ = ["SoakConfig", "SoakReport", "Verdict", "main", "run_soak"]

T = TypeVar("T")

#: 24 h at 10 Hz.
TICKS_PER_DAY = 864_000
READS_PER_TICK = 10  # 100 Hz of reads against 10 Hz of prices
STREAMS = (solcache.STREAM_PRICE_UPDATES, solcache.STREAM_TRADE_EVENTS, solcache.STREAM_UI_EVENTS)
GROUP_HANDLERS = "soak-handlers"
GROUP_BATCHES = "soak-batches"
MIB = 1024 * 1024
#: Pool states written and read alongside the prices (Raydium SOL-USDC and two more).
POOLS = (
    "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2",
    "So11111111111111111111111111111111111111112",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
)
#: ``MAXLEN ~`` trims whole radix-tree nodes: a stream may hold up to one node
#: (``stream-node-max-entries``, 100 by default) more than MAXLEN.
NODE_SLACK = 100


@dataclass(frozen=True)
class SoakConfig:
    scale: float = 1.0  # fraction of 24 h
    maxlen: int = solcache.DEFAULT_MAXLEN
    checkpoints: int = 20
    warmup_fraction: float = 0.1
    ticks_per_step: int = 100  # 10 s of traffic per publish_many / set_many round
    read_concurrency: int = 16
    reads_per_tick: int = READS_PER_TICK
    max_rss_growth_bytes: int = MIB
    max_used_memory_ratio: float = 1.25  # largest post-warm-up used_memory / warm-up value
    caught_up_timeout_s: float = 120.0
    stall_timeout_s: float = 120.0  # a step or checkpoint taking longer is reported as a hang
    # Growth after warm-up (RSS, malloc's heap, CPython objects and blocks), per operation of
    # the rarest kind (events; each tick is also 10 reads and 8 writes): a leak of 16 bytes on
    # any call costs at least 32 per event (glibc's smallest chunk is 32 bytes) and breaks it.
    max_bytes_per_op: float = 16.0
    max_objects_per_op: float = 0.25  # a Python object leaked per call: at least 1 per event
    # Keys written once (never rewritten) that must be gone after their TTL.
    once_keys: int = 200
    once_ttl_ms: int = 1000
    # Test hooks: on every read, leak this many bytes of C heap / this many Python objects
    # (tests/python/test_soak.py proves the verdicts catch such leaks).
    leak_bytes_per_read: int = 0
    leak_objects_per_read: int = 0

    @property
    def ticks(self) -> int:
        return max(round(TICKS_PER_DAY * self.scale), self.checkpoints)


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


@dataclass
class SoakReport:
    config: dict[str, Any]
    environment: dict[str, Any]
    totals: dict[str, Any]
    checkpoints: list[dict[str, Any]]
    after_close: dict[str, Any]
    verdicts: list[Verdict] = field(default_factory=list)
    command: str = ""

    @property
    def passed(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def verdict(self, name: str) -> Verdict:
        return next(v for v in self.verdicts if v.name == name)

    def to_json(self) -> str:
        data = asdict(self)
        data["passed"] = self.passed
        return json.dumps(data, indent=2, default=str)


# --- consumers -------------------------------------------------------------------------------


def _sequence(stream: str, event: solcache.TradingEvent | None) -> int:
    """The sequence number the publisher put into an event of ``stream``."""
    if isinstance(event, solcache.PriceUpdate):
        return int(event.price)
    if isinstance(event, solcache.TradeExecuted):
        return int(event.id.removeprefix("soak-"))
    if isinstance(event, solcache.SystemStatus):
        return int(event.message)
    raise AssertionError(f"unexpected entry on {stream}: {event!r}")


class SequenceCheck:
    """Per stream: the next sequence number expected, gaps and duplicates seen (O(1) memory)."""

    def __init__(self) -> None:
        self.next = dict.fromkeys(STREAMS, 1)
        self.gaps = 0
        self.duplicates = 0

    def see(self, entry: solcache.StreamEntry) -> None:
        seq = _sequence(entry.stream, entry.event)
        expected = self.next[entry.stream]
        if seq < expected:
            self.duplicates += 1
            return
        self.gaps += seq - expected
        self.next[entry.stream] = seq + 1

    def seen(self, stream: str) -> int:
        return self.next[stream] - 1

    def min_seen(self) -> int:
        return min(self.next.values()) - 1


class BatchConsumer:
    """Group ``soak-batches``: ``next_batch`` / ``ack`` over all three streams in one task."""

    def __init__(self, events: solcache.EventStream) -> None:
        self.events = events
        self.check = SequenceCheck()
        self.sub: solcache.Subscription | None = None
        self.target = 0  # stop once every stream reached this sequence number
        self.stopping = False

    async def run(self) -> None:
        self.sub = self.events.subscribe(
            list(STREAMS), GROUP_BATCHES, "soak-b1", count=1000, block_ms=100
        )
        try:
            while not (self.stopping and self.check.min_seen() >= self.target):
                batch = await self.sub.next_batch()
                for entry in batch:
                    self.check.see(entry)
                self.sub.ack(*batch)
        finally:
            await self.sub.close()


# --- sampling --------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_LIBC = ctypes.CDLL(None)
_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)  # glibc >= 2.33
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _Mallinfo2
_LIBC.malloc.restype = ctypes.c_void_p
_LIBC.malloc.argtypes = [ctypes.c_size_t]
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)


def _trim() -> None:
    """Give free heap memory back to the system, so RSS tracks what is held, not what the
    allocator keeps for later."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _heap_bytes() -> int | None:
    """Bytes malloc has handed out and not had back, over every arena (the Rust core's
    allocations and CPython's larger ones; CPython's small objects are counted apart)."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)


def _count_dir(path: str) -> int | None:
    try:
        return len(os.listdir(path))
    except OSError:
        return None


def _in_flight() -> int | None:
    fn: Callable[[], int] | None = getattr(_core, "_in_flight_calls", None)
    return fn() if fn is not None else None


async def _settled_in_flight() -> int | None:
    """The fewest calls in flight seen over ~0.1 s: a call's result reaches Python a moment
    before its Rust future is dropped, and the consumers' reads come and go; a leak never
    goes away."""
    if _in_flight() is None:
        return None
    seen = []
    for _ in range(50):
        seen.append(_in_flight() or 0)
        await asyncio.sleep(0.002)
    return min(seen)


def _keys(keyspace: dict[str, str]) -> int:
    # INFO keyspace: db0 → "keys=8,expires=5,avg_ttl=1834"
    fields = dict(kv.split("=", 1) for kv in keyspace.get("db0", "").split(",") if "=" in kv)
    return int(fields.get("keys", 0))


class LogCounter(logging.Handler):
    """Counts the ``solcache`` logger's records by level instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: dict[str, int] = {}
        self.last_error: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] = self.counts.get(record.levelname, 0) + 1
        if record.levelno >= logging.ERROR:
            self.last_error = record.getMessage()


# --- the replay ------------------------------------------------------------------------------


class Soak:
    def __init__(self, pool: solcache.RedisPool, config: SoakConfig) -> None:
        self.pool = pool
        self.config = config
        self.prices = solcache.PriceCache(pool)
        self.pool_states = solcache.PoolStateCache(pool)
        self.once_tokens = [f"ONCE{i}" for i in range(config.once_keys)]
        self.once_written_at: float | None = None
        self.events = solcache.EventStream(pool, maxlen=config.maxlen)
        self.tokens = list(solcache.MVP_TOKENS)
        self.published = 0  # sequence number of the last event published on each stream
        self.sets = 0
        self.reads = 0
        self.hits = 0
        self.misses = 0
        self.handlers = SequenceCheck()
        self.manager = SubscriptionManager(
            self.events, GROUP_HANDLERS, "soak-h1", start_id="0", count=500, block_ms=100
        )
        for stream in STREAMS:
            self.manager.on_stream(stream, self._handle)
        self.batches = BatchConsumer(self.events)
        self.batch_task: asyncio.Task[None] | None = None
        self.checkpoints: list[dict[str, Any]] = []
        # What the samples in `checkpoints` hold (heap bytes, CPython blocks, objects): not
        # the library's memory, so not counted in later samples.
        self.sampling_cost = {"heap_bytes": 0, "py_blocks": 0, "gc_objects": 0}
        self.leaked: list[list[Any]] = []  # the leak_objects_per_read hook's
        self.started = time.monotonic()
        self.progress_at = self.started
        self.stalled = False

    async def _handle(self, entry: solcache.StreamEntry) -> None:
        self.handlers.see(entry)

    def _lag(self) -> int:
        """Events published but not yet processed by the slower group (per stream, at most)."""
        return self.published - min(self.handlers.min_seen(), self.batches.check.min_seen())

    async def start(self) -> None:
        once = solcache.PriceCache(self.pool, ttl_ms=self.config.once_ttl_ms)
        now = datetime.now(UTC)
        await once.set_many([solcache.PriceData(t, 1, now, "soak") for t in self.once_tokens])
        self.once_written_at = time.monotonic()
        for stream in STREAMS:
            await self.events.ensure_group(stream, GROUP_BATCHES, "0")
        await self.manager.start()
        self.batch_task = asyncio.create_task(self.batches.run(), name="soak-batches")

    async def step(self, ticks: int) -> None:
        """``ticks`` x 100 ms of traffic: events, prices and reads, concurrently."""
        while self._lag() > self.config.maxlen // 2:  # never let trimming overtake a consumer
            self._check_consumers()
            await asyncio.sleep(0.002)
        now = datetime.now(UTC)
        first = self.published + 1
        events: list[solcache.TradingEvent] = []
        for seq in range(first, first + ticks):
            events.append(solcache.PriceUpdate(self.tokens[seq % 5], seq, now))
            side = "buy" if seq % 2 else "sell"
            events.append(solcache.TradeExecuted(f"soak-{seq}", side, "SOL/USDC", "1.5", seq, now))
            events.append(solcache.SystemStatus("soak", "healthy", str(seq), now))
        prices = [
            solcache.PriceData(token, Decimal(first + i), now, "soak")
            for i in range(ticks)
            for token in self.tokens
        ]
        states = [
            solcache.PoolState(address, 1000 + i, 500 + i, 700 + i, 9000 + i, now)
            for i in range(ticks)
            for address in POOLS
        ]
        reads = ticks * self.config.reads_per_tick
        workers = self.config.read_concurrency
        share = [reads // workers + (1 if w < reads % workers else 0) for w in range(workers)]
        # The first step's reads must find prices and pools.
        await asyncio.gather(self.prices.set_many(prices), self.pool_states.set_many(states))
        await asyncio.gather(
            self.events.publish_many(events),
            *(self._read(n, w) for w, n in enumerate(share) if n),
        )
        self.published += ticks
        self.sets += len(prices) + len(states)
        self.reads += reads

    async def _read(self, n: int, worker: int) -> None:
        hits = 0
        leak, leak_objects = self.config.leak_bytes_per_read, self.config.leak_objects_per_read
        for i in range(n):
            kind = (i + worker) % 4
            if kind == 0:
                found = await self.prices.get_many(self.tokens)
                hits += sum(v is not None for v in found.values())
            elif kind == 1:
                states = await self.pool_states.get_many(list(POOLS))
                hits += sum(v is not None for v in states.values())
            else:
                hits += await self.prices.get(self.tokens[i % 5]) is not None
            if leak:
                _LIBC.malloc(leak)
            for _ in range(leak_objects):
                self.leaked.append([])
        self.hits += hits

    def _check_consumers(self) -> None:
        if not self.manager.running:
            raise RuntimeError("the SubscriptionManager stopped (stop() re-raises why)")
        if self.batch_task is not None and self.batch_task.done():
            self.batch_task.result()  # re-raises what stopped it
            raise RuntimeError("the batch consumer stopped early")

    async def caught_up(self) -> dict[str, Any]:
        """Wait until both groups processed everything and Redis holds nothing pending."""
        deadline = time.monotonic() + self.config.caught_up_timeout_s
        while self._lag() > 0:
            self._check_consumers()
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumers did not catch up: lag {self._lag()}")
            await asyncio.sleep(0.005)
        # The last batch's XACKs ride with each group's next read (at most block_ms away).
        while True:
            infos = {s: await self.events.info(s) for s in STREAMS}
            groups = [g for info in infos.values() for g in info.groups]
            pending = sum(g.pending for g in groups)
            lag = sum(g.lag or 0 for g in groups)
            if (pending == 0 and lag == 0) or time.monotonic() > deadline:
                return {"infos": infos, "pending": pending, "lag": lag}
            await asyncio.sleep(0.01)

    async def checkpoint(self, label: str) -> dict[str, Any]:
        state = await self.caught_up()
        gc.collect()
        _trim()
        # Reading the write-once keys expires them on access once their TTL passed (Redis'
        # lazy expiry), so the key count below no longer includes them either.
        assert self.once_written_at is not None
        once_age_s = time.monotonic() - self.once_written_at
        once = await self.prices.get_many(self.once_tokens) if self.once_tokens else {}
        memory = await self.pool.info("memory")
        clients = await self.pool.info("clients")
        stats = await self.pool.info("stats")
        keyspace = await self.pool.info("keyspace")
        dead = await self.events.info(solcache.STREAM_DEAD_LETTER)
        counts = self.pool.counts()
        # Memory and objects first, less what the samples taken so far hold themselves.
        # (asyncio keeps up to ~100 cancelled timers, a handler timeout's each, before it
        # purges them: a few hundred objects that come and go, well inside the bounds.)
        heap, blocks = _heap_bytes(), sys.getallocatedblocks()
        objects = len(gc.get_objects())
        kept = self.sampling_cost
        sample = {
            "label": label,
            "elapsed_s": round(time.monotonic() - self.started, 2),
            "ticks": self.published,
            "rss_bytes": _rss_bytes(),
            "heap_bytes": None if heap is None else heap - kept["heap_bytes"],
            "py_blocks": blocks - kept["py_blocks"],
            "once_age_s": round(once_age_s, 3),
            "once_left": sum(v is not None for v in once.values()),
            "used_memory": int(memory["used_memory"]),
            "xlen": {s: state["infos"][s].length for s in STREAMS},
            "dead_letter_len": dead.length,
            "pending": state["pending"],
            "lag": state["lag"],
            "keys": _keys(keyspace),
            "pool_connections": counts["connections"],
            "pool_waiting": counts["waiting"],
            "redis_clients": int(clients["connected_clients"]),
            "connections_received": int(stats["total_connections_received"]),
            "tasks": len(asyncio.all_tasks()),
            "in_flight": await _settled_in_flight(),
            "fds": _count_dir("/proc/self/fd"),
            "threads": _count_dir("/proc/self/task"),
            "max_pool_size": self.pool.max_size,
            "gc_objects": objects - kept["gc_objects"],
            "reads": self.reads,
            "sets": self.sets,
        }
        self.checkpoints.append(sample)
        heap_now = _heap_bytes()
        kept["heap_bytes"] += 0 if heap is None or heap_now is None else heap_now - heap
        kept["py_blocks"] += sys.getallocatedblocks() - blocks
        kept["gc_objects"] += len(gc.get_objects()) - objects
        return sample

    async def replay(self, out: Callable[[str], None]) -> None:
        """Start the consumers, replay every tick with checkpoints, stop the consumers.

        A watchdog fails the run when no step or checkpoint finished for ``stall_timeout_s``
        (one task for the whole run: a timeout per step would leave a cancelled timer per step
        in the loop's heap, counted as objects at the checkpoints)."""
        watchdog = asyncio.create_task(self._watchdog(asyncio.current_task()))
        try:
            await self._replay(out)
        except asyncio.CancelledError:
            if self.stalled:
                raise RuntimeError(f"stalled for {self.config.stall_timeout_s} s") from None
            raise
        finally:
            watchdog.cancel()

    async def _replay(self, out: Callable[[str], None]) -> None:
        config = self.config
        await self.start()
        total = config.ticks
        marks = [round(total * i / config.checkpoints) for i in range(1, config.checkpoints + 1)]
        warmup_ticks = round(total * config.warmup_fraction)
        marks = sorted({*marks, warmup_ticks})
        _print_sample(await self._progress(self.checkpoint("start")), out)
        for mark in marks:
            while self.published < mark:
                await self._progress(self.step(min(config.ticks_per_step, mark - self.published)))
            label = "warm-up" if mark == warmup_ticks else f"{100 * mark / total:.0f}%"
            _print_sample(await self._progress(self.checkpoint(label)), out)
        await self._progress(self.stop())

    async def _progress(self, work: Coroutine[Any, Any, T]) -> T:
        result = await work
        self.progress_at = time.monotonic()
        return result

    async def _watchdog(self, main: asyncio.Task[Any] | None) -> None:
        """Print every task's stack and the calls in flight (a lost completion shows up here)
        and cancel ``main`` once no progress was made for ``stall_timeout_s``."""
        limit = self.config.stall_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit))
            if time.monotonic() - self.progress_at > limit:
                break
        print(
            f"soak: no progress for {limit} s; in-flight calls {_in_flight()}; tasks:",
            file=sys.stderr,
        )
        for t in asyncio.all_tasks():
            t.print_stack(file=sys.stderr)
        self.stalled = True
        if main is not None:
            main.cancel()

    async def totals(self) -> dict[str, Any]:
        """Counts and final state after :meth:`replay` (the pool still open)."""
        elapsed = time.monotonic() - self.started
        infos = {s: await self.events.info(s) for s in STREAMS}
        batches_sub = self.batches.sub
        return {
            "elapsed_s": round(elapsed, 1),
            "events_per_stream": self.published,
            "events": self.published * len(STREAMS),
            "price_sets": self.sets,
            "reads": self.reads,
            "token_reads_hit": self.hits,
            "read_calls_per_s": round(self.reads / elapsed),
            "handlers": {"gaps": self.handlers.gaps, "duplicates": self.handlers.duplicates},
            "batches": {
                "gaps": self.batches.check.gaps,
                "duplicates": self.batches.check.duplicates,
            },
            "seen": {
                GROUP_HANDLERS: {s: self.handlers.seen(s) for s in STREAMS},
                GROUP_BATCHES: {s: self.batches.check.seen(s) for s in STREAMS},
            },
            "acked": {
                GROUP_HANDLERS: _acked(self.manager.subscription_stats),
                GROUP_BATCHES: _acked(batches_sub.stats if batches_sub is not None else None),
            },
            "manager_stats": asdict(self.manager.stats),
            "final_groups": {
                f"{s}/{g.name}": {"pending": g.pending, "lag": g.lag}
                for s, info in infos.items()
                for g in info.groups
            },
            "tasks_after_stop": len(asyncio.all_tasks()),
            "in_flight_after_stop": _in_flight(),
            "error_counts": self.pool.error_counts(),
            "metrics": {
                name: {"count": m.count, "errors": m.errors, "p50_us": m.p50_us, "p99_us": m.p99_us}
                for name, m in self.pool.metrics().items()
                if m.count
            },
        }

    async def abort(self) -> None:
        """Stop both consumers after a failure or an interrupt (their errors are moot)."""
        if self.batch_task is not None and not self.batch_task.done():
            self.batch_task.cancel()
            await asyncio.wait({self.batch_task}, timeout=2)
        with contextlib.suppress(Exception):
            await self.manager.stop(timeout_s=2)

    async def stop(self) -> None:
        self.batches.target = self.published
        self.batches.stopping = True
        await self.manager.stop()
        if self.batch_task is not None:
            await asyncio.wait_for(self.batch_task, self.config.caught_up_timeout_s)


def _print_sample(s: dict[str, Any], out: Callable[[str], None]) -> None:
    xlen = "/".join(str(n) for n in s["xlen"].values())
    in_flight = "-" if s["in_flight"] is None else s["in_flight"]
    out(
        f"{s['label']:>9} {s['elapsed_s']:>8.1f}s rss {s['rss_bytes'] / MIB:7.2f} MiB  "
        f"redis {s['used_memory'] / MIB:6.2f} MiB  xlen {xlen}  keys {s['keys']}  "
        f"pending {s['pending']}  conns {s['pool_connections']}/{s['redis_clients']} "
        f"(+{s['connections_received']})  tasks {s['tasks']}  in-flight {in_flight}  "
        f"fds {s['fds']}  threads {s['threads']}  objects {s['gc_objects']}  "
        f"blocks {s['py_blocks']}  heap {_mib(s['heap_bytes'])}"
    )


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:.2f} MiB"


async def run_soak(url: str, config: SoakConfig, out: Callable[[str], None] = print) -> SoakReport:
    """Replay ``config.scale`` x 24 h of traffic against ``url``; sample and judge it."""
    log = LogCounter()
    solcache_logger = logging.getLogger("solcache")
    solcache_logger.addHandler(log)
    propagate, solcache_logger.propagate = solcache_logger.propagate, False
    fds_before = _count_dir("/proc/self/fd")
    try:
        pool = await solcache.RedisPool.connect(url)
        redis_version = pool.redis_version
        try:
            soak = Soak(pool, config)
            try:
                await soak.replay(out)
            except BaseException:
                await soak.abort()  # the consumers go before the pool they use
                raise
            totals = await soak.totals()
        finally:
            await pool.close()
        # The closed subscriptions still hold their dedicated connections while the objects
        # live; count them, then drop everything and look for leftovers.
        alive = await _redis_clients(url, wait_for=1, within_s=1.0)
        checkpoints = soak.checkpoints
        del soak
        gc.collect()
        after_close = await _leftovers(url)
        after_close["redis_clients_while_objects_alive"] = alive
        after_close["fds_before_open"] = fds_before
    finally:
        solcache_logger.removeHandler(log)
        solcache_logger.propagate = propagate
    totals["log_records"] = log.counts
    totals["last_error_log"] = log.last_error
    report = SoakReport(
        config=asdict(config) | {"ticks": config.ticks},
        environment={
            "python": platform.python_version(),
            "solcache": solcache.__version__,
            "redis": redis_version,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "in_flight_counter": _in_flight() is not None,
        },
        totals=totals,
        checkpoints=checkpoints,
        after_close=after_close,
    )
    report.verdicts = judge(report, config)
    return report


def _acked(stats: solcache.SubscriptionStats | None) -> int | None:
    return stats.acked if stats is not None else None


async def _redis_clients(url: str, *, wait_for: int, within_s: float) -> int:
    """Clients connected to Redis, counted through a one-connection probe pool (itself
    included), polled until at most ``wait_for`` or ``within_s`` elapsed."""
    deadline = time.monotonic() + within_s
    async with await solcache.RedisPool.connect(url, max_size=1, min_idle=0) as probe:
        while True:
            clients = int((await probe.info("clients"))["connected_clients"])
            if clients <= wait_for or time.monotonic() > deadline:
                return clients

            await asyncio.sleep(0.05)


async def _leftovers(url: str) -> dict[str, Any]:
    """After ``pool.close()`` and the objects are gone: what is still open."""
    clients = await _redis_clients(url, wait_for=1, within_s=5.0)
    # A call's completion reaches Python a moment before its Rust future is dropped.
    for _ in range(500):
        if not _in_flight():
            break
        await asyncio.sleep(0.01)
    return {
        "redis_clients": clients,
        "in_flight": _in_flight(),
        "tasks": len(asyncio.all_tasks()),
        "fds": _count_dir("/proc/self/fd"),
    }


# --- verdicts --------------------------------------------------------------------------------


def judge(report: SoakReport, config: SoakConfig) -> list[Verdict]:
    cps = report.checkpoints
    warm = next(c for c in cps if c["label"] == "warm-up")
    after = cps[cps.index(warm) :]
    final = cps[-1]
    t = report.totals
    v: list[Verdict] = []

    growth = final["rss_bytes"] - warm["rss_bytes"]
    peak = max(c["rss_bytes"] for c in after) - warm["rss_bytes"]
    v.append(
        Verdict(
            "rss",
            growth <= config.max_rss_growth_bytes,
            f"{growth / MIB:+.2f} MiB from warm-up to the end (peak {peak / MIB:+.2f} MiB; "
            f"bound {config.max_rss_growth_bytes / MIB:.0f} MiB), "
            f"{warm['rss_bytes'] / MIB:.1f} → {final['rss_bytes'] / MIB:.1f} MiB",
        )
    )

    # Redis' memory is judged from the first checkpoint (at or after warm-up) where every stream
    # is full: before that, streams are still filling up to MAXLEN and memory rightly grows.
    full = [c for c in after if min(c["xlen"].values()) >= config.maxlen]
    base = full[0] if full else final
    peak_used = max(c["used_memory"] for c in cps[cps.index(base) :])
    ratio = peak_used / base["used_memory"]
    v.append(
        Verdict(
            "redis-memory",
            ratio <= config.max_used_memory_ratio,
            f"used_memory peak {peak_used / MIB:.2f} MiB = {ratio:.2f}x its value when the "
            f"streams were full ({base['label']}: {base['used_memory'] / MIB:.2f} MiB; bound "
            f"{config.max_used_memory_ratio}x), final {final['used_memory'] / MIB:.2f} MiB"
            + ("" if full else "; the streams never reached MAXLEN"),
        )
    )

    lengths = [n for c in after for n in c["xlen"].values()]
    floor = min(config.maxlen, warm["ticks"])
    v.append(
        Verdict(
            "streams-trimmed",
            floor <= min(lengths) and max(lengths) <= config.maxlen + NODE_SLACK,
            f"XLEN after warm-up {min(lengths)}..{max(lengths)} "
            f"(MAXLEN ~ {config.maxlen}: {floor}..{config.maxlen + NODE_SLACK})",
        )
    )

    # Once the write-once keys' TTL passed (and reading them expired them), the keyspace is
    # what is rewritten all along: 5 prices, the pools, the streams.
    max_keys = 5 + len(POOLS) + len(STREAMS)
    ttl_s = config.once_ttl_ms / 1000
    expired = [c for c in cps if c["once_age_s"] > ttl_s]
    keys = [c["keys"] for c in expired]
    dead = max(c["dead_letter_len"] for c in cps)
    v.append(
        Verdict(
            "keys-bounded",
            bool(keys) and max(keys) <= max_keys and dead == 0,
            f"DBSIZE {min(keys, default=0)}..{max(keys, default=0)} at {len(keys)} "
            f"checkpoints after the write-once keys' TTL (≤ {max_keys}: 5 prices, "
            f"{len(POOLS)} pools, {len(STREAMS)} streams), dead-letter entries {dead}",
        )
    )
    before = [c["once_left"] for c in cps if c["once_age_s"] < ttl_s]
    left = [c["once_left"] for c in expired]
    v.append(
        Verdict(
            "expiry",
            bool(left) and max(left) == 0 and all(n == config.once_keys for n in before),
            f"{config.once_keys} keys written once with a {config.once_ttl_ms} ms TTL: "
            f"readable {before or '(no checkpoint)'} before it, "
            f"{left or '(no checkpoint)'} after it",
        )
    )

    # Leaks per operation after warm-up: growth divided by the operations of each kind. The
    # bound applies to the rarest kind (events), so a leak of 16 bytes on any call breaks it.
    events_after = (final["ticks"] - warm["ticks"]) * len(STREAMS)
    reads_after = final["reads"] - warm["reads"]

    def per_op(name: str, key: str, bound: float, unit: str) -> None:
        first, last = warm[key], final[key]
        if first is None or last is None or events_after <= 0:
            v.append(Verdict(name, True, f"not measured here ({key} unavailable)"))
            return
        growth = last - first
        per_event, per_read = growth / events_after, growth / max(reads_after, 1)
        v.append(
            Verdict(
                name,
                per_event <= bound,
                f"{growth:+,} {unit} after warm-up: {per_event:+.3f} per event "
                f"({events_after:,}; bound {bound:g}), {per_read:+.4f} per read "
                f"({reads_after:,})",
            )
        )

    per_op("rss-per-op", "rss_bytes", config.max_bytes_per_op, "bytes")
    per_op("heap-per-op", "heap_bytes", config.max_bytes_per_op, "bytes")
    per_op("objects-per-op", "gc_objects", config.max_objects_per_op, "objects")
    per_op("py-blocks-per-op", "py_blocks", config.max_objects_per_op, "blocks")

    def no_growth(name: str, values: list[int | None], extra: str = "", ok: bool = True) -> None:
        if any(x is None for x in values):
            v.append(Verdict(name, True, "not measured here (/proc unavailable)"))
            return
        first, rest = values[0], [x for x in values[1:] if x is not None]
        assert first is not None
        ok = ok and max(rest) <= first
        v.append(Verdict(name, ok, f"warm-up {first}, after {min(rest)}..{max(rest)}{extra}"))

    closed = report.after_close
    no_growth(
        "tasks",
        [c["tasks"] for c in after],
        f", after close {closed['tasks']} (the caller's own)",
        closed["tasks"] <= 1,
    )
    # Each pooled connection is a socket: the pool may still open connections up to max_size
    # after warm-up; any other descriptor must not grow.
    no_growth(
        "fds",
        [None if c["fds"] is None else c["fds"] - c["pool_connections"] for c in after],
        f" besides pooled connections; after close {closed['fds']} "
        f"(before the pool opened {closed['fds_before_open']})",
    )
    no_growth("threads", [c["threads"] for c in after])
    in_flight = [c["in_flight"] for c in after]
    if any(x is None for x in in_flight):
        v.append(Verdict("in-flight-calls", True, "not measured (no _core._in_flight_calls)"))
    else:
        bound = 2  # the two consumers' blocking reads
        v.append(
            Verdict(
                "in-flight-calls",
                max(in_flight) <= bound and closed["in_flight"] == 0,
                f"at checkpoints {min(in_flight)}..{max(in_flight)} (≤ {bound}: the two "
                f"consumers' reads), after close {closed['in_flight']}",
            )
        )

    conns = [c["redis_clients"] for c in after]
    received = final["connections_received"] - warm["connections_received"]
    pool_max = max(c["pool_connections"] for c in cps)
    max_size = final["max_pool_size"]
    clients_bound = max_size + 2  # the pool + the two subscriptions' own connections
    v.append(
        Verdict(
            "connections",
            max(conns) <= clients_bound and received <= max_size and closed["redis_clients"] <= 1,
            f"Redis clients after warm-up {min(conns)}..{max(conns)} (≤ {clients_bound}), "
            f"pool ≤ {pool_max} of {max_size}, new connections after warm-up {received} "
            f"(≤ {max_size}); left after close: {closed['redis_clients'] - 1} once the objects "
            f"are gone, {closed['redis_clients_while_objects_alive'] - 1} while the closed "
            f"subscriptions were still referenced",
        )
    )

    errors = {k: n for k, n in t["error_counts"].items() if n}
    v.append(
        Verdict(
            "no-errors",
            not errors and not t["log_records"].get("ERROR"),
            f"error counts {errors or 'all 0'}, error log records "
            f"{t['log_records'].get('ERROR', 0)}",
        )
    )

    published = t["events_per_stream"]
    pending = {k: g for k, g in t["final_groups"].items() if g["pending"] or g["lag"]}
    v.append(
        Verdict(
            "acked-everything",
            not pending and all(c["pending"] == 0 for c in after),
            f"pending and lag 0 at every checkpoint and at the end "
            f"({len(t['final_groups'])} groups){'' if not pending else f'; left: {pending}'}",
        )
    )
    expected = published * len(STREAMS)
    acked = t["acked"]
    seen_all = all(n == published for g in t["seen"].values() for n in g.values())
    lost = t["handlers"]["gaps"] + t["batches"]["gaps"]
    dup = t["handlers"]["duplicates"] + t["batches"]["duplicates"]
    v.append(
        Verdict(
            "nothing-lost",
            seen_all and lost == 0 and dup == 0 and all(n == expected for n in acked.values()),
            f"published {expected} ({published} per stream); acked {acked}; "
            f"gaps {lost}, duplicates {dup}",
        )
    )
    return v


# --- the command -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 24 h (default 1)")
    parser.add_argument("--report", type=Path, help="write the full report as JSON here")
    parser.add_argument("--maxlen", type=int, default=solcache.DEFAULT_MAXLEN)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--read-concurrency", type=int, default=16)
    parser.add_argument(
        "--url", help="use this Redis instead of a private redis-server (it must be empty)"
    )
    args = parser.parse_args(argv)
    config = SoakConfig(
        scale=args.scale,
        maxlen=args.maxlen,
        checkpoints=args.checkpoints,
        read_concurrency=args.read_concurrency,
    )
    command = shlex.join([Path(sys.executable).name, *sys.argv])

    # SIGTERM unwinds like Ctrl-C, so the private redis-server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            url = stack.enter_context(PrivateRedis(tcp=True)).tcp_url
        print(
            f"soak: {config.ticks:,} ticks (scale {config.scale}) = {config.ticks:,} events per "
            f"stream, {config.ticks * 5:,} price sets, {config.ticks * config.reads_per_tick:,} "
            f"reads; MAXLEN ~ {config.maxlen}; {url}",
            flush=True,
        )
        report = asyncio.run(run_soak(url, config, lambda s: print(s, flush=True)))
    report.command = command
    t = report.totals
    print(
        f"\n{t['events']:,} events, {t['price_sets']:,} price sets, {t['reads']:,} reads "
        f"({t['read_calls_per_s']:,}/s) in {t['elapsed_s']:.0f} s"
    )
    for verdict in report.verdicts:
        print(verdict.line())
    print("PASSED" if report.passed else "FAILED")
    if args.report is not None:
        args.report.write_text(report.to_json() + "\n")
        print(f"report: {args.report}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
