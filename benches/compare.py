"""solcache side by side with the raw round trip and other Python Redis clients, in one run.

``make compare`` (or ``.venv/bin/python benches/compare.py [options]``):

1. installs the peers into the current venv when missing (pinned below; ``--no-install``
   skips that and reports missing peers as "not installed");
2. starts a private ``redis-server`` on a free port (``--save "" --appendonly no``), killed at
   exit, Ctrl-C included; it never touches a Redis on 6379;
3. seeds ``price:{token}`` for the five MVP tokens with solcache's own ``set_many`` (1 h TTL,
   re-written every round) and measures, in ``--rounds`` interleaved rounds
   (:mod:`comparison.rounds`): ``redis-benchmark GET price:SOL -c 1 -P 1``, solcache async and
   sync ``get``/``get_many``, redis-py asyncio (default ``ConnectionPool`` and
   ``BlockingConnectionPool``) and sync (hiredis), coredis and valkey-glide, every row doing
   the same work (a decoded object whose ``price`` and ``timestamp`` are read), then
   ``redis-benchmark -c 20`` and ``-c 200`` and 20 and 200 concurrent callers, each compared
   with the run of as many connections; wall time and CPU time per call for every row;
4. measures the event-stream rows of :mod:`comparison.streams`: ``publish_many`` and a
   consumer group's read + ack through the async iterator, in rounds interleaved with the raw
   ``redis-benchmark -c 1 -P 100 XADD`` rate, and publish→handler latency at 10 Hz and 1 kHz;
5. prints one table of µs (medians over rounds) and ratios to the raw p50, the goals of
   :mod:`comparison.goals` (met / NOT met), the stream rows with their goals, the machine
   and every command run; ``--json PATH`` writes the same as JSON.

``--streams-only`` measures step 4 alone (``--stream-rounds`` rounds, 3 by default) and
prints its rows and goals: what to run when only the stream path changed.

It takes a few minutes with the default 20 000 calls per row (split over the rounds).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import solcache
from comparison import DEFAULT_ROUNDS, run_comparison
from comparison.peers import PEER_REQUIREMENTS
from comparison.streams import run_streams, stream_lines
from solcache.latency import BenchConfig
from solcache.services.private_redis import PrivateRedis

UVLOOP = "uvloop==0.23.0"
#: Long enough that no seeded price expires during a row (they are re-seeded before each).
SEED_TTL_MS = 3_600_000


def install_missing(requirements: dict[str, str]) -> None:
    """``pip install`` the requirements whose module cannot be imported; warn on failure."""
    missing = [req for module, req in requirements.items() if not _importable(module)]
    if not missing:
        return
    print(f"installing {' '.join(missing)} into {sys.prefix}", file=sys.stderr, flush=True)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", *missing],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        tail = (run.stderr.strip() or run.stdout.strip()).splitlines()[-3:]
        print("pip install failed (rows will say 'not installed'):", *tail, sep="\n  ")
    importlib.invalidate_caches()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--calls", type=int, default=20_000, help="timed calls per row, all rounds (20000)"
    )
    p.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"interleaved rounds ({DEFAULT_ROUNDS})"
    )
    p.add_argument("--warmup", type=int, help="untimed calls before each row (calls/10)")
    p.add_argument(
        "--raw-requests",
        type=int,
        default=100_000,
        help="redis-benchmark -c 1 requests, all rounds (100000; twice that with -c 20/200)",
    )
    p.add_argument(
        "--callers",
        default="20,200",
        help="concurrent callers, comma-separated (20,200)",
    )
    p.add_argument("--pool-max-size", type=int, default=20, help="connections per pool (20)")
    p.add_argument("--no-install", action="store_true", help="do not pip install missing peers")
    p.add_argument("--uvloop", action="store_true", help="run the asyncio rows on uvloop")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--redis-server", default="redis-server", help="redis-server executable")
    p.add_argument(
        "--streams-only", action="store_true", help="measure the event-stream rows alone"
    )
    p.add_argument(
        "--stream-rounds", type=int, default=3, help="interleaved rounds of the stream rows (3)"
    )
    return p


def _raise_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    callers = tuple(int(c) for c in args.callers.split(",") if c.strip())
    if args.calls < 1 or args.rounds < 1 or not callers or min(callers) < 1:
        print("--calls, --rounds and --callers must be positive", file=sys.stderr)
        return 2
    if shutil.which(args.redis_server) is None:
        print(f"{args.redis_server} not found (make redis installs it)", file=sys.stderr)
        return 2
    # Slow-call warnings are expected while this loads the machine: keep the table readable.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("solcache").setLevel(logging.ERROR)
    if args.streams_only:
        return _streams_only(args)
    if not args.no_install:
        install_missing(PEER_REQUIREMENTS | ({"uvloop": UVLOOP} if args.uvloop else {}))
    server = _private_server(args)
    try:
        server.start()
        cfg = BenchConfig(
            url=server.tcp_url,
            tokens=tuple(solcache.MVP_TOKENS),
            calls=args.calls,
            warmup=args.warmup,
            callers=callers,
            pool_max_size=args.pool_max_size,
            seed_ttl_ms=SEED_TTL_MS,
            raw_requests=args.raw_requests,
            use_uvloop=args.uvloop,
            title=f"solcache compare: private redis-server on 127.0.0.1:{server.port} "
            "(TCP loopback), keys price:{token}",
            command=shlex.join([sys.executable, *sys.argv]),
        )

        def progress(label: str) -> None:
            print(f"  … {label}", file=sys.stderr, flush=True)

        comparison = run_comparison(cfg, progress, rounds=args.rounds)
    except KeyboardInterrupt:
        print("\ninterrupted: redis-server stopped", file=sys.stderr)
        return 130
    finally:
        server.close()
    print(comparison.render())
    if args.json is not None:
        data = comparison.to_json()
        args.json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        print(f"\nJSON: {args.json}")
    return 0


def _private_server(args: argparse.Namespace) -> PrivateRedis:
    """The run's server, not started yet. SIGTERM / SIGHUP end the run like Ctrl-C does:
    through the caller's ``finally``, which stops the server."""
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    return PrivateRedis(tcp=True, executable=args.redis_server)


def _streams_only(args: argparse.Namespace) -> int:
    """The stream rows and their goals alone, on a private server."""
    server = _private_server(args)
    try:
        server.start()
        run = run_streams(
            server.tcp_url,
            rounds=max(1, args.stream_rounds),
            progress=lambda label: print(f"  … {label}", file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt:
        print("\ninterrupted: redis-server stopped", file=sys.stderr)
        return 130
    finally:
        server.close()
    print("\n".join(stream_lines(run)))
    if args.json is not None:
        data = {"streams": run.__dict__ | {"latency": {str(k): v for k, v in run.latency.items()}}}
        args.json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
