"""`solcache serve` as a child process on a free port, with its output in a file.

Used by the fault and security tests: the service must survive Redis outages without a
restart and must never show a password, so it runs exactly as an operator would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    final_output: str | None = None  # kept when the process has ended and the log is gone

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def status(self) -> dict[str, Any]:
        response = self.get("/api/status")
        response.raise_for_status()
        return dict(response.json())

    def metrics(self) -> dict[str, float]:
        """Every unlabelled sample of `/metrics` (`solcache_redis_up`, …) by name."""
        text = self.get("/metrics").text
        return {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.labels
        }

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    *args: str, env: Mapping[str, str] | None = None, port: int | None = None
) -> Iterator[Served]:
    """Run `python -m solcache serve --port <port or a free one> --quiet *args` until the block
    ends; wait for `/healthz` to answer 200 first. The child's environment has no `SOLCACHE_*`
    variables except those in `env`."""
    port = port if port is not None else free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}
    child_env.update(env or {})
    fd, name = tempfile.mkstemp(prefix="solcache-serve-", suffix=".log")
    log = Path(name)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "solcache", "serve", "--port", str(port), "--quiet", *args],
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(proc, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"serve exited early:\n{served.output()}"
            try:
                if served.get("/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"serve did not start:\n{served.output()}"
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        served.final_output = served.output()
        log.unlink(missing_ok=True)
