"""The main way solcache is used: a pip-installed wheel in a service's own environment.

`make test` builds the wheel (`make wheel`) before pytest; this installs it into a fresh venv and
runs the README's Python example, as written, against a private redis-server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def newest_wheel() -> Path:
    wheels = sorted(
        (ROOT / "target" / "wheels").glob("solcache-*.whl"), key=lambda p: p.stat().st_mtime
    )
    if not wheels:
        pytest.fail("no wheel in target/wheels: run `make wheel` (make test does)")
    return wheels[-1]


def readme_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2, "README.md lost its cache and events examples"
    return blocks


@pytest.mark.slow
def test_wheel_runs_the_readme_examples(tmp_path: Path, redis_server) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(newest_wheel())],
        check=True,
        timeout=600,
    )
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
