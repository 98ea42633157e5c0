# Every target sets up what it needs on a fresh Debian machine: venv, Python deps, the built
# extension, redis-server (via apt-get when missing).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
CARGO_TEST ?= $(shell command -v cargo-nextest >/dev/null 2>&1 && echo "cargo nextest run" || echo "cargo test")

.PHONY: all install redis chromium build-dev wheel wheel-check lint stubtest fmt test test-rust test-python coverage bench bench-gate compare soak leak-check demo clean

all: test

$(VENV)/.deps: requirements-dev.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.deps

redis:
	@bash scripts/ensure-redis.sh

chromium:
	@bash scripts/ensure-chromium.sh

# The extension, built in release mode into the venv (tests and benchmarks use this), rebuilt
# only when the Rust sources or the build settings changed. PIP_QUIET: maturin's pip run would
# otherwise list every dependency $(VENV)/.deps already installed.
RUST_SOURCES := $(shell find src -name '*.rs') Cargo.toml Cargo.lock
$(VENV)/.built: $(VENV)/.deps $(RUST_SOURCES) pyproject.toml
	@# The extension is abi3 (_core.abi3.so): a version-specific _core.cpython-*.so left by an
	@# older build would be imported first and shadow it.
	rm -f python/solcache/_core.cpython-*.so
	PIP_QUIET=1 maturin develop --release --quiet
	@touch $@

build-dev: $(VENV)/.built

# One wheel for every CPython >= 3.11 (abi3) on glibc >= 2.17 (manylinux2014): zig, from the
# ziglang package, links against glibc 2.17's symbols whatever glibc this machine has.
wheel: install
	rm -f target/wheels/solcache-*.whl
	maturin build --release --zig --compatibility manylinux2014 --out target/wheels

# What the wheel's tags promise, checked by third-party tools: abi3audit fails on a symbol outside
# CPython 3.11's stable ABI; auditwheel names the oldest manylinux policy the symbols allow
# (tests/python/test_wheel.py asserts both against the wheel's tags).
wheel-check: wheel
	abi3audit --strict --summary target/wheels/solcache-*.whl
	auditwheel show target/wheels/solcache-*.whl

fmt:
	cargo fmt --all
	ruff format python tests/python benches
	ruff check --fix python tests/python benches

lint: install
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings
	ruff check python tests/python benches
	ruff format --check python tests/python benches
	mypy

# The stub must match the built extension, so this runs after build-dev.
stubtest: build-dev
	$(PY) -m mypy.stubtest solcache._core --allowlist stubtest-allowlist.txt

# The Rust tests use the core without PyO3 (the binding needs a Python interpreter to link).
test-rust: redis
	$(CARGO_TEST) --no-default-features

test-python: redis chromium build-dev stubtest wheel-check
	$(PY) -m pytest

# Both suites once, on an instrumented build: Rust line coverage (cargo-llvm-cov, the Rust tests
# and pytest driving the extension) and Python line coverage (pytest-cov) from the same pytest
# run. Prints both totals and the uncovered lines per file, HTML in target/coverage/; fails when
# either total is under 90 % (COVERAGE_MIN). Installs llvm-tools and cargo-llvm-cov if missing.
# PYTEST_ARGS go to pytest. tests/python/test_wheel.py checks the built wheel: it is built first.
coverage: redis chromium install wheel
	CARGO_TEST="$(CARGO_TEST)" bash scripts/coverage.sh $(PYTEST_ARGS)

# What CI runs (.ci/run): lint, the stub and the wheel's tags, then both suites with the
# coverage gate (test-rust and test-python run the same suites without instrumentation).
test: redis install lint stubtest wheel-check coverage

bench: redis build-dev
	cargo bench --no-default-features
	$(PY) -m pytest benches --benchmark-enable -q

# The speed promises, judged (benches/gate.py; CI runs it after make test): 1000 sequential reads
# through the async and the sync API (mean < 1 ms, p99 < 2 ms over all rounds), 10 Hz for 60 s
# with the consumer at most one batch behind, and the streams held at 10 000 + 1 %.
bench-gate: redis build-dev
	$(PY) benches/gate.py $(GATE_ARGS)

# Raw redis-benchmark, redis-py, coredis, valkey-glide and solcache side by side in one run
# (installs the peers into the venv, starts its own redis-server); prints one table of ratios.
compare: redis build-dev
	$(PY) benches/compare.py $(COMPARE_ARGS)

# 24 h of 10 Hz traffic replayed as fast as it goes through the library, then `solcache serve`
# with SSE clients through Redis restarts and client kills; figures go to docs/reliability.md.
soak: redis build-dev
	$(PY) benches/soak.py $(SOAK_ARGS)
	$(PY) benches/soak_serve.py $(SOAK_SERVE_ARGS)

# The Rust core's integration tests under valgrind's leak checker.
leak-check: redis
	bash scripts/leak-check.sh

# The main job on embedded defaults: `solcache serve` on a private redis-server (unless
# SOLCACHE_REDIS_URL or DEMO_ARGS="--redis-url …" names one); prints the dashboard URL.
demo: redis build-dev
	$(PY) -m solcache serve $(DEMO_ARGS)

clean:
	cargo clean
	rm -rf $(VENV) target/wheels
