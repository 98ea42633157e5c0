"""The main way solcache is used: a pip-installed wheel in a service's own environment.

`make test` builds the wheel (`make wheel-check`) before pytest; this checks its tags against what
auditwheel and abi3audit find in it, installs it into fresh venvs (this CPython and a newer one)
and runs the README's Python examples, as written, against a private redis-server.
"""

from __future__ import annotations

import glob
import importlib.machinery
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

import solcache
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
#: One wheel for every CPython >= 3.11 (stable ABI) on every glibc >= 2.17.
PYTHON_TAG, ABI_TAG = "cp311", "abi3"
PLATFORM_TAGS = {"manylinux2014_x86_64", "manylinux_2_17_x86_64"}


def newest_wheel() -> Path:
    wheels = sorted(
        (ROOT / "target" / "wheels").glob("solcache-*.whl"), key=lambda p: p.stat().st_mtime
    )
    if not wheels:
        pytest.fail("no wheel in target/wheels: run `make wheel` (make test does)")
    return wheels[-1]


def wheel_tags(wheel: Path) -> set[str]:
    """The `Tag:` lines of the wheel's own metadata (what pip matches against)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/WHEEL"))
        lines = zf.read(name).decode().splitlines()
    return {line.split(": ", 1)[1] for line in lines if line.startswith("Tag: ")}


def fresh_venv(python: str | Path, where: Path) -> Path:
    """A new venv made by `python` with the wheel pip-installed in it; returns its interpreter."""
    subprocess.run([str(python), "-m", "venv", str(where)], check=True, timeout=120)
    venv_python = where / "bin" / "python"
    subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--quiet", str(newest_wheel())],
        check=True,
        timeout=600,
    )
    return venv_python


def newer_cpython() -> str | None:
    """The newest CPython above this one on the machine (pyenv's too), or None."""
    candidates = [
        *(shutil.which(f"python3.{minor}") for minor in range(20, sys.version_info.minor, -1)),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")), reverse=True),
    ]
    for exe in filter(None, candidates):
        probe = subprocess.run(
            [exe, "-c", "import sys; print(sys.implementation.name, sys.version_info.minor)"],
            capture_output=True,
            text=True,
            check=False,
        )
        name, _, minor = probe.stdout.partition(" ")
        if probe.returncode == 0 and name == "cpython" and int(minor) > sys.version_info.minor:
            return exe
    return None


def test_wheel_tags_are_abi3_and_manylinux2014() -> None:
    wheel = newest_wheel()
    expected = {f"{PYTHON_TAG}-{ABI_TAG}-{platform}" for platform in PLATFORM_TAGS}
    assert wheel_tags(wheel) == expected
    name_tags = wheel.name.removesuffix(".whl").split("-")[-3:]
    assert name_tags[:2] == [PYTHON_TAG, ABI_TAG], wheel.name
    assert set(name_tags[2].split(".")) == PLATFORM_TAGS, wheel.name
    assert wheel.name.split("-")[1] == solcache.__version__, "the wheel holds another version"


def test_auditwheel_finds_the_wheel_within_manylinux_2_17() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(newest_wheel())],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    verdict = " ".join(run.stdout.split())  # auditwheel wraps its lines
    assert 'consistent with the following platform tag: "manylinux_2_17_x86_64"' in verdict, (
        run.stdout
    )


def test_abi3audit_finds_only_stable_abi_symbols_of_3_11() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "abi3audit", "--strict", "--report", str(newest_wheel())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (spec,) = json.loads(run.stdout)["specs"].values()
    (extension,) = spec["wheel"]
    assert extension["name"] == "_core.abi3.so"
    result = extension["result"]
    assert result["is_abi3"] and result["is_abi3_baseline_compatible"], result
    assert result["baseline"] == "3.11", result
    assert tuple(map(int, result["computed"].split("."))) <= (3, 11), result
    assert result["non_abi3_symbols"] == [] and result["future_abi3_objects"] == {}, result


def test_the_extension_under_test_is_the_abi3_build() -> None:
    """What the tests exercise is what the wheel ships: the stable-ABI `_core.abi3.so`."""
    core = Path(solcache._core.__file__)
    assert core.name == "_core.abi3.so", f"{core} is not the abi3 build"
    shadows = [
        core.with_name(f"_core{suffix}")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if suffix != ".abi3.so" and core.with_name(f"_core{suffix}").exists()
    ]
    assert shadows == [], f"stale builds beside {core.name} (`make build-dev` removes them)"


def test_timestamps_are_utc_datetimes_to_the_microsecond() -> None:
    """The abi3 build makes its own `datetime`s (no C API): exact value, `timezone.utc`."""
    when = datetime(2026, 11, 26, 15, 0, 0, 123456, tzinfo=UTC)
    for value in (
        solcache.PriceData("SOL", 1, when),
        solcache.PoolState("58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2", 1, 1, 1, 1, when),
        solcache.PriceUpdate("SOL", 1, when),
    ):
        stamp = value.timestamp
        assert type(stamp) is datetime and stamp.tzinfo is UTC, repr(stamp)
        assert (stamp.isoformat(), stamp.fold) == ("2026-11-26T15:00:00.123456+00:00", 0)


@pytest.mark.slow
def test_wheel_installs_and_runs_on_a_newer_cpython(tmp_path: Path, redis_server) -> None:
    newer = newer_cpython()
    if newer is None:
        pytest.skip("no CPython newer than this one on the machine")
    python = fresh_venv(newer, tmp_path / "venv")
    code = (
        "import asyncio, sys, solcache\n"
        "async def main():\n"
        "    async with await solcache.RedisPool.connect(sys.argv[1]) as pool:\n"
        "        prices = solcache.PriceCache(pool)\n"
        "        await prices.set(solcache.PriceData('SOL', '187.2345'))\n"
        "        got = await prices.get('SOL')\n"
        "        print(sys.version_info[:2], got.price, got.timestamp.tzinfo)\n"
        "asyncio.run(main())\n"
    )
    run = subprocess.run(
        [str(python), "-c", code, redis_server.url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split(")", 1)[1].split() == ["187.2345", "UTC"], run.stdout
    assert "(3, 11)" not in run.stdout, f"{newer} is not a newer CPython"


def readme_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2, "README.md lost its cache and events examples"
    return blocks


@pytest.mark.slow
def test_wheel_runs_the_readme_examples(tmp_path: Path, redis_server) -> None:
    venv = tmp_path / "venv"
    python = fresh_venv(sys.executable, venv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SOLCACHE_REDIS_URL"] = redis_server.url
    outputs = []
    for n, code in enumerate(readme_examples()):
        if "fastapi" in code:  # needs a web framework this package does not depend on
            compile(code, f"README example {n}", "exec")
            continue
        example = tmp_path / f"example_{n}.py"
        example.write_text(code)
        run = subprocess.run(
            [str(python), str(example)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"README example {n} failed:\n{run.stderr}"
        outputs.append(run.stdout)
    assert "PriceData(token='SOL', price=Decimal('187.2345')" in outputs[0]
    assert "OperationStats(count=1" in outputs[0]
    assert "PriceUpdate(token='SOL', price=Decimal('187.2345')" in outputs[1]
    where = subprocess.run(
        [str(python), "-c", "import solcache; print(solcache.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in where.stdout, (
        "the example must use the installed wheel, not the source tree"
    )
    version = subprocess.run(
        [str(venv / "bin" / "solcache"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert version.stdout == f"solcache {solcache.__version__}\n"


#: What `pip install 'solcache[serve]'` adds (module names); the library imports none of them.
SERVE_MODULES = ("starlette", "uvicorn", "httpx", "prometheus_client")
SERVE_HINT = (
    "solcache serve needs starlette, uvicorn, httpx, prometheus-client: "
    "pip install 'solcache[serve]'\n"
)


def requirements(extra: str | None) -> list[str]:
    """The names of the wheel's requirements: unconditional ones, or those of ``extra``."""
    with zipfile.ZipFile(newest_wheel()) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(name).decode().splitlines()
    names = []
    for line in lines:
        if not line.startswith("Requires-Dist: "):
            continue
        requirement, _, marker = line.removeprefix("Requires-Dist: ").partition(";")
        marker_extra = re.fullmatch(r"\s*extra == [\"'](\w+)[\"']\s*", marker)
        if (marker_extra.group(1) if marker_extra else None) == extra:
            names.append(re.split(r"[<>=!~\[\s(]", requirement.strip())[0])
    return sorted(names)


def test_the_wheel_requires_pydantic_only_and_offers_the_serve_extra() -> None:
    assert requirements(None) == ["pydantic", "pydantic-settings"]
    assert requirements("serve") == ["httpx", "prometheus-client", "starlette", "uvicorn"]


def test_the_wheel_ships_no_benchmark_of_other_clients_and_no_issue_talk() -> None:
    with zipfile.ZipFile(newest_wheel()) as zf:
        sources = {
            n: zf.read(n).decode(errors="replace")
            for n in zf.namelist()
            if n.endswith((".py", ".pyi", ".html"))
        }
    assert "solcache/latency/__init__.py" in sources  # `solcache bench` is shipped
    assert not [n for n in sources if "/benchmark/" in n or "comparison" in n], sorted(sources)
    for name, text in sources.items():
        for word in ("redis-py", "coredis", "valkey-glide", "Goals"):
            assert word not in text, f"{name} mentions {word}"
        assert not re.search(r"\bissue\s*#?\d", text, re.I), f"{name} speaks of an issue"


def run_in(venv: Path, program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``venv/bin/program *args`` with no PYTHONPATH, VIRTUAL_ENV or SOLCACHE_* variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("SOLCACHE_")
    }
    return subprocess.run(
        [str(venv / "bin" / program), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


LIBRARY_ROUND_TRIP = """
import asyncio, sys, solcache
from solcache import Settings, sync

async def main():
    async with await solcache.RedisPool.connect(sys.argv[1]) as pool:
        prices = solcache.PriceCache(pool)
        await prices.set(solcache.PriceData("SOL", "187.2345"))
        print((await prices.get("SOL")).price)
        solcache.SubscriptionManager(solcache.EventStream(pool), "readers")

asyncio.run(main())
with sync.RedisPool.connect(sys.argv[1]) as pool:
    print(sync.PriceCache(pool).get("SOL").price)
print(Settings().price_ttl_ms, solcache.__file__.startswith(sys.prefix))
print(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:])))
"""


@pytest.mark.slow
def test_the_library_works_without_the_serve_extra(tmp_path: Path, redis_server) -> None:
    venv = tmp_path / "venv"
    fresh_venv(sys.executable, venv)  # plain `pip install <wheel>`
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = run_in(venv, "python", "-c", probe, *SERVE_MODULES, cwd=tmp_path)
    assert found.returncode == 0 and found.stdout == "[]\n", found.stdout + found.stderr
    run = run_in(
        venv, "python", "-c", LIBRARY_ROUND_TRIP, redis_server.url, *SERVE_MODULES, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["187.2345", "187.2345", "2000 True", "[]"], run.stdout
    serve = run_in(venv, "solcache", "serve", "--duration", "1", cwd=tmp_path)
    assert (serve.returncode, serve.stdout, serve.stderr) == (2, "", SERVE_HINT)
    # The other commands are the library's: they need no extra.
    doctor = run_in(venv, "solcache", "doctor", "--redis-url", redis_server.url, cwd=tmp_path)
    assert "✓ reachable" in doctor.stdout and "Traceback" not in doctor.stderr, doctor
    bench = run_in(
        venv, "solcache", "bench", "--redis-url", redis_server.url, "--calls", "20", cwd=tmp_path
    )
    assert bench.returncode == 0 and "solcache async get " in bench.stdout, bench.stderr


@pytest.mark.slow
def test_the_serve_extra_brings_what_serve_needs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"{newest_wheel()}[serve]",
        ],
        check=True,
        timeout=600,
    )
    # A private redis-server, the simulated market and the gateway for a second, then a clean stop.
    port = str(free_port())
    serve = run_in(venv, "solcache", "serve", "--port", port, "--duration", "1", cwd=tmp_path)
    assert serve.returncode == 0, serve.stdout + serve.stderr
    assert "started a private redis-server" in serve.stdout + serve.stderr
