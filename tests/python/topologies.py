"""A Redis Cluster (3 primaries + 3 replicas) and a Sentinel group (primary, replica, 3
sentinels) of real processes on free loopback ports, for the tests that run on every topology.

Replicas sync at once (`repl-diskless-sync-delay 0`), so a replica can take over as soon as its
primary dies; the node timeout and `down-after-milliseconds` are 1 s.

Both offer what the tests use of one server (`RedisServer`): `url`, `raw(*args)` (the command
goes where a client's would: the primary owning its key's slot, the primary the sentinels
name), `raw_all(*args)` (the reply of every primary), `node_of(key)` (the server holding a key,
for per-server commands such as `CLIENT LIST`) and `flushall()`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import RedisServer, RespError, free_port

NODE_TIMEOUT_MS = 1000
DOWN_AFTER_MS = 1000
MASTER_NAME = "mymaster"
# Commands without a key whose reply is the same on every node: `raw` sends them to any node.
# Any other keyless command (INFO, CONFIG, CLIENT …) is per node: ask `raw_all`.
NODE_INDEPENDENT = {"TIME", "PING", "ECHO"}


def crc16(data: bytes) -> int:
    """CRC16-XMODEM (polynomial 0x1021, initial 0), the hash of Redis Cluster key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The slot of `key`: only the text inside its first non-empty `{…}` counts."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return crc16(data) % 16384


def command_keys(node: RedisServer, args: tuple[object, ...]) -> list[str]:
    """The key arguments of a command, as the server itself finds them (`COMMAND GETKEYS`)."""
    try:
        keys = node.raw("COMMAND", "GETKEYS", *args)
    except RespError as e:
        if "no key arguments" in str(e):
            return []
        raise
    assert isinstance(keys, list)
    return [str(k) for k in keys]


def _wait(check, what: str, within_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(OSError, RespError):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within_s} s")
        time.sleep(0.1)


def free_cluster_port() -> int:
    """A free port p <= 55535 whose cluster bus port p + 10000 is free too."""
    for _ in range(1000):
        port = free_port()
        if port > 55535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair for a cluster node")


class RedisCluster:
    """Six cluster-enabled servers joined by `redis-cli --cluster create`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="solcache-cluster-"))
        self.nodes = [RedisServer(*self._node_args(i)) for i in range(6)]
        for node in self.nodes:
            node.port = free_cluster_port()

    def _node_args(self, i: int) -> list[str]:
        # fmt: off
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.dir / f"nodes-{i}.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--repl-diskless-sync-delay", "0",
        ]
        # fmt: on

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        create = ["redis-cli", "--cluster", "create", *addrs]
        subprocess.run(
            [*create, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        self.wait_ok()
        return self

    def running(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None]

    def wait_ok(self) -> None:
        """Every live node says `cluster_state:ok`; every replica's link is up."""

        def ok() -> bool:
            for n in self.running():
                repl = n.raw("INFO", "replication")
                if "cluster_state:ok" not in n.raw("CLUSTER", "INFO"):
                    return False
                if "role:master" not in repl and "master_link_status:up" not in repl:
                    return False
            return True

        _wait(ok, "cluster_state:ok")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def primary_of(self, key: str) -> RedisServer:
        """The live primary serving `key`'s slot."""
        node = self.running()[0]
        slot = int(node.raw("CLUSTER", "KEYSLOT", key))
        for line in node.raw("CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            port = int(fields[1].split("@")[0].split(":")[1])
            for r in fields[8:]:
                lo, _, hi = r.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no primary serves {key}")

    def primaries(self) -> list[RedisServer]:
        return [n for n in self.running() if "role:master" in n.raw("INFO", "replication")]

    def raw(self, *args: object) -> object:
        """One command on the primary that owns its key's slot (a `MOVED` reply followed)."""
        any_node = self.running()[0]
        name = str(args[0]).upper()
        if name in NODE_INDEPENDENT:
            return any_node.raw(*args)
        keys = command_keys(any_node, args) if len(args) > 1 else []
        assert keys, f"{name} has no key: which node? use raw_all or node_of"
        node = self._slot_owner(key_slot(keys[0]))
        for _ in range(5):
            try:
                return node.raw(*args)
            except RespError as e:
                if not str(e).startswith("MOVED "):
                    raise
                port = int(str(e).split()[2].rsplit(":", 1)[1])
                node = next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"{args[0]} kept being moved")

    def node_of(self, key: str) -> RedisServer:
        """The primary that owns `key`'s slot."""
        return self._slot_owner(key_slot(key))

    def raw_all(self, *args: object) -> list[object]:
        """The reply of every primary, in node order."""
        return [n.raw(*args) for n in self.primaries()]

    def _slot_owner(self, slot: int) -> RedisServer:
        ranges = self.running()[0].raw("CLUSTER", "SLOTS")
        for lo, hi, primary, *_replicas in ranges:  # type: ignore[union-attr]
            if lo <= slot <= hi:
                return next(n for n in self.nodes if n.port == primary[1])
        raise AssertionError(f"no primary serves slot {slot}")

    def flushall(self) -> None:
        for n in self.primaries():
            n.raw("FLUSHALL")

    def close(self) -> None:
        for n in self.nodes:
            n.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelGroup:
    """A primary, its replica and three `redis-server --sentinel` processes."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="solcache-sentinel-"))
        self.primary = RedisServer("--repl-diskless-sync-delay", "0")
        self.replica: RedisServer | None = None
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    def start(self) -> SentinelGroup:
        self.primary.start()
        self.replica = RedisServer("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.start()
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        replica = self.replica

        def ready() -> bool:
            if "master_link_status:up" not in replica.raw("INFO", "replication"):
                return False
            return all(
                len(self.sentinel_raw(p, "SENTINEL", "SENTINELS", MASTER_NAME)) >= 2
                and len(self.sentinel_raw(p, "SENTINEL", "REPLICAS", MASTER_NAME)) >= 1
                for p in self.sentinel_ports
            )

        _wait(ready, "the sentinels meeting each other and the replica")
        return self

    @staticmethod
    def sentinel_raw(port: int, *args: str) -> object:
        from conftest import raw

        class _Addr:
            auth: tuple[str, ...] = ()

        addr = _Addr()
        addr.port = port  # type: ignore[attr-defined]
        return raw(addr, *args)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def named_primary_port(self) -> int:
        host_port = self.sentinel_raw(
            self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
        )
        assert isinstance(host_port, list)
        return int(host_port[1])

    def current_primary(self) -> RedisServer:
        """The server the sentinels name as the primary."""
        port = self.named_primary_port()
        return next(s for s in (self.primary, self.replica) if s is not None and s.port == port)

    def node_of(self, key: str) -> RedisServer:
        """The primary the sentinels name (it holds every key)."""
        return self.current_primary()

    def raw(self, *args: object) -> object:
        """One command on the primary the sentinels name."""
        return self.current_primary().raw(*args)

    def raw_all(self, *args: object) -> list[object]:
        """The reply of the primary (the one node clients send commands to), as a list."""
        return [self.raw(*args)]

    def flushall(self) -> None:
        self.raw("FLUSHALL")

    def close(self) -> None:
        for s in self.sentinels:
            s.kill()
            s.wait()
        for server in (self.primary, self.replica):
            if server is not None:
                server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def started_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster()
    try:
        yield cluster.start()
    finally:
        cluster.close()


@contextlib.contextmanager
def started_sentinels() -> Iterator[SentinelGroup]:
    group = SentinelGroup()
    try:
        yield group.start()
    finally:
        group.close()
