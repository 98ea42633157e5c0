"""Soak of ``solcache serve`` with SSE clients attached, through Redis restarts and client kills.

``make soak`` runs it after ``benches/soak.py`` (or ``python benches/soak_serve.py [--seconds 600]
[--clients 8] [--restart-every-s 60] [--kill-every-s 15]``). On a private redis-server
(TCP, no persistence) it starts ``solcache serve`` (simulated market: prices and pool states at
10 Hz, trades, positions and statuses) as a child process and attaches ``--clients`` SSE
clients that reconnect with ``Last-Event-ID`` like a browser. On a schedule it restarts
redis-server (stop, 2 s down, start on the same port: the service must recover by itself) and
kills a client mid-stream (its connection dropped without a goodbye) and attaches a new one.

Every ``--sample-every-s`` it samples RSS, open descriptors and tasks (threads, ``/proc/PID/task``)
of the service and of redis-server, ``/healthz`` and the events the clients received. Verdicts:
the service healthy again after every restart, every client receiving events after it, the
service's descriptors and tasks back to their warm-up count, and its RSS growth after warm-up
(the first restart) under ``--max-rss-growth-mib``. Exit status 1 when one fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import httpx

from solcache.services.private_redis import PrivateRedis, free_port

MIB = 1024 * 1024


def proc_sample(pid: int | None) -> dict[str, int | None]:
    """RSS (bytes), open descriptors and tasks of a process; None where it is gone."""
    if pid is None:
        return {"rss": None, "fds": None, "tasks": None}
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * resource.getpagesize()
        return {
            "rss": rss,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "tasks": len(os.listdir(f"/proc/{pid}/task")),
        }
    except OSError:
        return {"rss": None, "fds": None, "tasks": None}


@dataclass
class Client:
    """An SSE client that reconnects with Last-Event-ID, as the dashboard does."""

    url: str
    events: int = 0
    last_id: str = ""
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0)) as http:
            while True:
                headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
                try:
                    async with http.stream("GET", self.url, headers=headers) as response:
                        async for line in response.aiter_lines():
                            if line.startswith("id:"):
                                self.last_id = line[3:].strip()
                            elif line.startswith("data:"):
                                self.events += 1
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(1.0)  # the browser's EventSource retry

    def start(self) -> Client:
        self.task = asyncio.create_task(self.run())
        return self

    async def kill(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@dataclass
class Run:
    samples: list[dict[str, object]] = field(default_factory=list)
    recoveries_s: list[float | None] = field(default_factory=list)
    clients_after_restart: list[int] = field(default_factory=list)
    restarts: int = 0
    kills: int = 0


async def healthy(base: str, within_s: float) -> float | None:
    """Seconds until /healthz answers 200, or None after ``within_s``."""
    start = time.monotonic()
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() - start < within_s:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(base + "/healthz")).status_code == 200:
                    return time.monotonic() - start
            await asyncio.sleep(0.2)
    return None


async def soak(args: argparse.Namespace, redis: PrivateRedis, log: BinaryIO) -> Run:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}
    # fmt: off
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "solcache", "serve", "--redis-url", redis.tcp_url,
        "--port", str(port), "--quiet", env=env, stdout=log, stderr=log,
    )
    # fmt: on
    run = Run()
    clients: list[Client] = []
    try:
        if await healthy(base, 60) is None:
            raise SystemExit("solcache serve did not become healthy within 60 s")
        clients = [Client(base + "/events").start() for _ in range(args.clients)]
        started = time.monotonic()
        next_restart, next_kill, next_sample = args.restart_every_s, args.kill_every_s, 0.0
        while (elapsed := time.monotonic() - started) < args.seconds:
            if service.returncode is not None:
                raise SystemExit(f"solcache serve exited ({service.returncode})")
            if elapsed >= next_sample:
                next_sample += args.sample_every_s
                run.samples.append(await sample(run, elapsed, service.pid, redis, clients, base))
            if elapsed >= next_kill:
                next_kill += args.kill_every_s
                victim = clients.pop(run.kills % len(clients))
                await victim.kill()
                clients.append(Client(base + "/events").start())
                run.kills += 1
            if elapsed >= next_restart:
                next_restart += args.restart_every_s
                await restart(run, redis, base, clients)
            await asyncio.sleep(0.2)
        run.samples.append(await sample(run, elapsed, service.pid, redis, clients, base))
    finally:
        for client in clients:
            await client.kill()
        if service.returncode is None:
            service.terminate()
            await asyncio.wait_for(service.wait(), 30)
    return run


async def restart(run: Run, redis: PrivateRedis, base: str, clients: list[Client]) -> None:
    redis.stop()
    await asyncio.sleep(2.0)
    redis.start()
    run.restarts += 1
    run.recoveries_s.append(await healthy(base, 60))
    before = [c.events for c in clients]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = sum(c.events > n for c, n in zip(clients, before, strict=True))
        if got == len(clients):
            break
        await asyncio.sleep(0.2)
    run.clients_after_restart.append(
        sum(c.events > n for c, n in zip(clients, before, strict=True))
    )


async def sample(
    run: Run, elapsed: float, pid: int, redis: PrivateRedis, clients: list[Client], base: str
) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=2.0) as http:
        try:
            health: object = (await http.get(base + "/healthz")).status_code
            metrics = (await http.get(base + "/metrics")).text
            sse = next(
                int(float(line.split()[1]))
                for line in metrics.splitlines()
                if line.startswith("solcache_sse_clients ")
            )
        except httpx.HTTPError as e:
            health, sse = type(e).__name__, 0
    service = proc_sample(pid)
    fds = service["fds"]
    return {
        "t_s": round(elapsed),
        "restarts": run.restarts,
        "kills": run.kills,
        "service": service,
        "sse_clients": sse,
        # One descriptor per connected /events client; the rest must not grow.
        "service_fds_besides_clients": None if fds is None else fds - sse,
        "redis": proc_sample(redis.pid),
        "healthz": health,
        "events": sum(c.events for c in clients),
    }


def _mib(n: object) -> str:
    return "-" if not isinstance(n, int) else f"{n / MIB:.1f}"


def _service(sample: dict[str, object]) -> dict[str, object]:
    """The service process's part of one sample."""
    service = sample["service"]
    assert isinstance(service, dict)
    return service


def _most(samples: list[dict[str, object]], field: str) -> int | None:
    """The (low) median integer value of ``field`` over ``samples`` (None when none has one)."""
    values = [v for s in samples if isinstance(v := s[field], int)]
    return statistics.median_low(values) if values else None


def report(run: Run, args: argparse.Namespace) -> bool:
    print("| t (s) | restarts | kills | serve RSS MiB | fds (SSE) | tasks | redis RSS MiB | fds "
          "| tasks | /healthz | events to clients |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for s in run.samples:
        svc, red = s["service"], s["redis"]
        assert isinstance(svc, dict) and isinstance(red, dict)
        print(
            f"| {s['t_s']} | {s['restarts']} | {s['kills']} | {_mib(svc['rss'])} "
            f"| {svc['fds']} ({s['sse_clients']}) "
            f"| {svc['tasks']} | {_mib(red['rss'])} | {red['fds']} | {red['tasks']} "
            f"| {s['healthz']} | {s['events']:,} |"
        )
    after = [s for s in run.samples if isinstance(s["restarts"], int) and s["restarts"] >= 1]
    warm, final = (after[0], after[-1]) if after else (run.samples[0], run.samples[-1])
    w, f = warm["service"], final["service"]
    assert isinstance(w, dict) and isinstance(f, dict)
    growth = (f["rss"] or 0) - (w["rss"] or 0)
    # A descriptor or two come and go with connections being opened at the moment of a sample,
    # so the medians of the first and of the last third after the first restart are compared:
    # a descriptor leaked per restart or per kill raises the last third's above the first's.
    judged = after or run.samples
    third = max(1, len(judged) // 3)
    fds_w = _most(judged[:third], "service_fds_besides_clients")
    fds_f = _most(judged[-third:], "service_fds_besides_clients")
    # Threads come and go the same way (a blocking connect during a restart).
    tasks_w = _most([_service(s) for s in judged[:third]], "tasks")
    tasks_f = _most([_service(s) for s in judged[-third:]], "tasks")
    checks = [
        (
            "recovered",
            bool(run.recoveries_s) and all(r is not None for r in run.recoveries_s),
            f"/healthz 200 again after each of {run.restarts} restarts, after "
            + ", ".join("never" if r is None else f"{r:.1f} s" for r in run.recoveries_s),
        ),
        (
            "clients-fed",
            all(n == args.clients for n in run.clients_after_restart),
            f"clients receiving events after each restart: {run.clients_after_restart} "
            f"of {args.clients}",
        ),
        (
            "service-fds",
            isinstance(fds_w, int) and isinstance(fds_f, int) and fds_f <= fds_w,
            f"descriptors besides the /events connections: median {fds_w} in the first third "
            f"after the first restart, median {fds_f} in the last third",
        ),
        (
            "service-tasks",
            isinstance(tasks_w, int) and isinstance(tasks_f, int) and tasks_f <= tasks_w,
            f"tasks: median {tasks_w} in the first third after the first restart, median "
            f"{tasks_f} in the last third",
        ),
        (
            "service-rss",
            growth <= args.max_rss_growth_mib * MIB,
            f"{growth / MIB:+.1f} MiB from the first restart to the end "
            f"(bound {args.max_rss_growth_mib} MiB)",
        ),
    ]
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return all(ok for _, ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--restart-every-s", type=float, default=60.0)
    parser.add_argument("--kill-every-s", type=float, default=15.0)
    parser.add_argument("--sample-every-s", type=float, default=30.0)
    parser.add_argument("--max-rss-growth-mib", type=float, default=4.0)
    parser.add_argument(
        "--service-log", default="target/soak/serve.log", help="where the service's output goes"
    )
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.service_log) or ".", exist_ok=True)
    with PrivateRedis(tcp=True) as redis, open(args.service_log, "wb") as log:
        run = asyncio.run(soak(args, redis, log))
    return 0 if report(run, args) else 1


if __name__ == "__main__":
    sys.exit(main())
