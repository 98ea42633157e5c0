"""`solcache doctor` and `solcache bench` against private redis-servers (real subprocesses)."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solcache", *args], capture_output=True, text=True, timeout=timeout_s
    )


def test_doctor_reports_what_to_fix(fresh_redis) -> None:
    run = run_cli("doctor", "--redis-url", fresh_redis.url)
    out = run.stdout
    assert "✓ reachable" in out and "✓ Redis 7" in out and "round trip" in out, out
    # The test server has no maxmemory and no AOF: both are reported, so the exit code is 1.
    assert "maxmemory is 0" in out and "AOF persistence off" in out, out
    assert run.returncode == 1
    fresh_redis.raw("CONFIG", "SET", "maxmemory", "100mb")
    fresh_redis.raw("CONFIG", "SET", "maxmemory-policy", "volatile-lru")
    fresh_redis.raw("CONFIG", "SET", "appendonly", "yes")
    run = run_cli("doctor", "--redis-url", fresh_redis.url)
    assert run.returncode == 0, run.stdout
    assert "all good" in run.stdout


def test_doctor_on_an_unreachable_server_says_how_to_fix_it() -> None:
    run = run_cli("doctor", "--redis-url", "redis://127.0.0.1:1/0")
    assert run.returncode == 1
    assert "✗ cannot use Redis at redis://127.0.0.1:1/0" in run.stdout
    assert "fix:" in run.stdout


def test_bench_prints_a_table(redis_server) -> None:
    run = run_cli("bench", "--redis-url", redis_server.url, "--calls", "200")
    assert run.returncode == 0, run.stderr
    for row in (
        "get ",
        "get_many (5)",
        "set ",
        "set_many (5)",
        "publish_many (100 events)",
        "20 callers",
    ):
        assert row in run.stdout, run.stdout
    assert "p50 µs" in run.stdout and "p99 µs" in run.stdout
    # Only throw-away data: bench-* prices and the bench stream, each with a TTL.
    assert redis_server.raw("EXISTS", "price:SOL") == 0
    assert redis_server.raw("XLEN", "stream:solcache-bench") > 0
    keys = redis_server.raw("KEYS", "*")
    assert keys, "the bench wrote something"
    for key in keys:
        assert key.startswith(("price:bench-", "stream:solcache-bench")), key
        assert 0 < redis_server.raw("PTTL", key) <= 60_000, f"{key} outlives the run"


def test_doctor_on_an_http_url_says_it_is_not_a_redis_url() -> None:
    run = run_cli("doctor", "--redis-url", "http://127.0.0.1:8000/")
    assert run.returncode == 1
    assert "✗ cannot use Redis at http://127.0.0.1:8000/" in run.stdout, run.stdout
    assert "fix: that is an http:// URL" in run.stdout and "redis://" in run.stdout, run.stdout
    assert "start redis-server" not in run.stdout, run.stdout


def test_doctor_on_refused_credentials_says_to_check_them(auth_redis) -> None:
    run = run_cli("doctor", "--redis-url", f"redis://alice:wrong@127.0.0.1:{auth_redis.port}/0")
    assert run.returncode == 1
    assert "fix: check the user and password" in run.stdout, run.stdout
    assert "wrong" not in run.stdout, "the password is never shown"
    assert "start redis-server" not in run.stdout, run.stdout


def test_version_prints_the_installed_package_version() -> None:
    import importlib.metadata
    import shutil
    from pathlib import Path

    import solcache

    installed = importlib.metadata.version("solcache")
    assert installed == solcache.__version__, "the extension and the package disagree"
    script = shutil.which("solcache", path=str(Path(sys.executable).parent))
    assert script is not None, "the solcache console script is not installed"
    for cmd in ([sys.executable, "-m", "solcache", "--version"], [script, "--version"]):
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"solcache {installed}\n", (cmd, run.stdout)


def test_serve_without_the_serve_extra_says_what_to_install() -> None:
    # The modules of the `serve` extra made unimportable, as in an environment without it.
    code = (
        "import sys\n"
        "missing = ['starlette', 'uvicorn', 'httpx', 'prometheus_client']\n"
        "sys.modules.update(dict.fromkeys(missing))\n"
        "from solcache.cli import main\n"
        "sys.exit(main(['serve', '--duration', '1']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    assert run.stderr == (
        "solcache serve needs starlette, uvicorn, httpx, prometheus-client: "
        "pip install 'solcache[serve]'\n"
    )
