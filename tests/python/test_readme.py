"""The README's Python examples, as written, against a private redis-server: each one runs, and
does what a user should copy (fresh events, nothing left behind, the right HTTP status)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def examples() -> dict[str, str]:
    """Every ```python block of README.md, named by the heading it is under."""
    text = (ROOT / "README.md").read_text()
    found: dict[str, str] = {}
    heading = ""
    for part in re.split(r"^(## .*)$", text, flags=re.M):
        if part.startswith("## "):
            heading = part[3:].strip()
            continue
        for n, block in enumerate(re.findall(r"```python\n(.*?)```", part, re.S)):
            found[f"{heading} {n}" if n else heading] = block
    return found


def run(code: str, redis: RedisServer) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLCACHE_")}
    env["SOLCACHE_REDIS_URL"] = redis.url
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_has_the_examples_this_file_checks() -> None:
    assert {"Quickstart", "Events", "Synchronous API", "Use it from FastAPI"} <= set(examples())


@pytest.mark.parametrize("name", ["Quickstart", "Synchronous API"])
def test_cache_examples_run(name: str, redis_server: RedisServer) -> None:
    out = run(examples()[name], redis_server)
    assert "PriceData(token='SOL', price=Decimal('187.2345')" in out, out


def test_tail_example_prints_the_entry_published_after_it_opened(
    redis_server: RedisServer,
) -> None:
    redis_server.raw("XADD", "stream:price-updates", "*", "type", "price_update", "data", "{}")
    out = run(examples()["Events 1"], redis_server)
    assert out.startswith("stream:price-updates "), out
    assert "PriceUpdate(token='SOL', price=Decimal('187.2345')" in out, out
    assert len(out.splitlines()) == 1, out  # not the older entry, which it never saw


def test_events_example_prints_fresh_events_and_leaves_no_group(
    redis_server: RedisServer,
) -> None:
    # A stream that already holds old entries, as on a Redis that `solcache serve` writes to.
    for n in range(200):
        redis_server.raw(
            "XADD",
            "stream:price-updates",
            "*",
            "type",
            "price_update",
            "data",
            f'{{"token":"SOL","price":"{100 + n}","timestamp":"2024-01-01T00:00:00.000000Z"}}',
        )
    for _ in range(2):  # the second run must not pick up anything the first one left
        out = run(examples()["Events"], redis_server)
        assert "PriceUpdate(token='SOL', price=Decimal('187.2345')" in out, out
        assert "SystemStatus(component='price-service', status='healthy'" in out, out
        stamps = re.findall(r"timestamp='([^']+)'", out)
        assert len(stamps) == 2, out
        for stamp in stamps:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            assert datetime.now(UTC) - at < timedelta(minutes=1), f"an old entry: {out}"
        assert redis_server.raw("XINFO", "GROUPS", "stream:price-updates") == [], "group left"


@pytest.fixture
def fastapi_example(fresh_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("SOLCACHE_REDIS_URL", fresh_redis.url)
    module = ModuleType("readme_fastapi")
    exec(compile(examples()["Use it from FastAPI"], "README FastAPI example", "exec"), vars(module))
    return module


async def test_fastapi_example_answers_422_404_200_and_503(
    fastapi_example: ModuleType, fresh_redis: RedisServer
) -> None:
    app: Any = fastapi_example.app
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://readme") as client,
    ):
        bad = await client.get("/price/SOL:USDC")
        assert bad.status_code == 422, bad.text
        assert "does not match" in bad.json()["detail"], bad.text
        assert (await client.get("/price/SOL")).status_code == 404
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        fresh_redis.raw(
            "SET",
            "price:SOL",
            f'{{"token":"SOL","price":"187.2345","timestamp":"{stamp}","source":"pyth"}}',
            "PX",
            "2000",
        )
        ok = await client.get("/price/SOL")
        assert ok.status_code == 200 and ok.json()["price"] == "187.2345", ok.text
        fresh_redis.stop()
        down = await client.get("/price/SOL")
        assert down.status_code == 503, down.text


def layout() -> dict[str, str]:
    """The README's "Layout" tree: folder path → what it says of it (two more spaces: a
    subfolder of the line above)."""
    section = re.split(r"^## ", (ROOT / "README.md").read_text(), flags=re.M)
    (body,) = [s for s in section if s.startswith("Layout\n")]
    (tree,) = re.findall(r"```\n(.*?)```", body, re.S)
    folders: dict[str, str] = {}
    parents: list[str] = []
    for line in tree.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name, _, what = line.strip().partition(" ")
        del parents[depth:]
        folders[("".join(parents) + name).rstrip("/")] = what.strip()
        parents.append(name)
    return folders


def test_the_layout_names_every_folder_that_holds_code() -> None:
    listed = layout()
    assert all(listed.values()), "every folder has its line"
    for folder in listed:
        assert (ROOT / folder).is_dir(), f"README Layout names {folder}/, which does not exist"
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    code_folders = {
        str(Path(f).parent) for f in tracked if f.endswith((".py", ".rs", ".sh", ".html"))
    }
    code_folders.discard(".")
    missing = sorted(f for f in code_folders if f not in listed)
    assert not missing, f"README Layout misses {missing}"
