#!/usr/bin/env bash
# Line coverage of the Rust core and of the Python package, from one run of each suite:
# the Rust tests and pytest (which drives the extension) run against an instrumented build,
# coverage.py measures the Python side in the same pytest run. Prints both totals and the
# uncovered lines per file, writes HTML under target/coverage/, and fails when either total is
# under COVERAGE_MIN (90 %). Extra arguments go to pytest.
#
# Needs the venv (make install) and a Rust toolchain; installs llvm-tools and cargo-llvm-cov.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN="${COVERAGE_MIN:-90}"
LLVM_COV_VERSION=0.9.1
VENV="${VIRTUAL_ENV:-$PWD/.venv}"
PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"  # maturin, as make test has it
OUT=target/coverage

# --- tools ---------------------------------------------------------------------------------
if ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then
  rustup component add llvm-tools
fi
if [ "$(cargo llvm-cov --version 2>/dev/null)" != "cargo-llvm-cov $LLVM_COV_VERSION" ]; then
  cargo install cargo-llvm-cov --version "$LLVM_COV_VERSION" --locked
fi

# --- instrumented build, both suites ---------------------------------------------------------
# A target dir of its own: instrumented artifacts never mix with the release build the
# benchmarks and the wheel use.
export CARGO_TARGET_DIR="$PWD/target/llvm-cov-target"
# Both suites on one optimised build (the extension's timings hold, and the Rust tests share its
# dependencies), without LTO and in more codegen units: it builds in a fraction of the release
# profile's time, and the counters are the same.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
# shellcheck disable=SC1090
source <(cargo llvm-cov show-env --sh 2>/dev/null)
cargo llvm-cov clean --workspace
rm -rf "$OUT" .coverage .coverage.*
mkdir -p "$OUT"

${CARGO_TEST:-cargo test} --release --no-default-features

# The venv now holds the instrumented extension: make build-dev puts the release one back.
rm -f "$VENV/.built" python/solcache/_core.cpython-*.so
PIP_QUIET=1 maturin develop --release --quiet
"$PY" -m pytest --cov --cov-report= "$@"

# --- reports ---------------------------------------------------------------------------------
status=0
echo
echo "== Python line coverage (uncovered lines per file) =="
"$PY" -m coverage report --show-missing --skip-covered --fail-under="$MIN" || status=1
"$PY" -m coverage html --quiet -d "$OUT/python"
"$PY" -m coverage json --quiet -o "$OUT/python.json"

echo
echo "== Rust line coverage (uncovered lines per file) =="
# tests/ and benches/ are the suites, not the product.
IGNORE='(^|/)(tests|benches)/'
cargo llvm-cov report --release --html --output-dir "$OUT/rust" --ignore-filename-regex "$IGNORE"
cargo llvm-cov report --release --show-missing-lines --ignore-filename-regex "$IGNORE" \
  --fail-under-lines "$MIN" | tee "$OUT/rust.txt" || status=1

py_total=$("$PY" -c "import json; print(f\"{json.load(open('$OUT/python.json'))['totals']['percent_covered']:.1f}\")")
rust_total=$(awk '/^TOTAL/ {print $(NF-3)}' "$OUT/rust.txt")
echo
echo "coverage: Rust ${rust_total} of lines, Python ${py_total}% of lines (minimum ${MIN}%); HTML in $OUT/"
exit $status
