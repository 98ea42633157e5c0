#!/usr/bin/env bash
# Leak check of the Rust core: build the integration tests without the Python binding
# (`--no-default-features`) and run them under valgrind's memcheck. Each test starts its own
# redis-server (tests/support); valgrind does not follow it (no --trace-children).
#
# Fails on memory errors, on *definite* leaks, and when a test process dies. A test that fails
# its own assertions under valgrind (a timing, see below) is run once more, alone; if it fails
# again it is reported but does not fail the check: the process still ran to its end, so its
# leak summary is complete, and `make test-rust` is what judges the tests. "Possibly lost" blocks are reported but do not
# fail: they are the per-thread handles of threads still alive at exit (a pointer into the
# middle of a block), not memory the core dropped. No suppressions file is used.
#
# Two tests are skipped by default: they assert wall-clock limits that valgrind's 20-50x
# slowdown breaks, not anything about memory. `connects_over_tls` (the TLS handshake through
# ring's assembly takes longer than the 1 s connect timeout under valgrind) and
# `approximate_trimming_bounds_length_and_memory` (tens of thousands of pipelined XADDs exceed
# the 500 ms response timeout).
#
#   LEAK_CHECK_TESTS="price_cache event_stream"  test targets to run (default below)
#   LEAK_CHECK_SKIP="name ..."                   tests to skip (default above; "" runs all)
#   LEAK_CHECK_ARGS="--exact some_test"          extra arguments for every test binary
# Logs: target/leak-check/<test>.log
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TESTS=${LEAK_CHECK_TESTS:-"price_cache pool_state_cache event_stream pool"}
SKIP=${LEAK_CHECK_SKIP-"connects_over_tls approximate_trimming_bounds_length_and_memory"}
read -r -a EXTRA <<<"${LEAK_CHECK_ARGS:-}"
for t in $SKIP; do EXTRA+=(--skip "$t"); done
LOGS=target/leak-check

if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind missing: installing Debian's package" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind; }; then
    echo "error: could not install valgrind; install it by hand and retry" >&2
    exit 1
  fi
fi

targets=()
for t in $TESTS; do targets+=(--test "$t"); done

echo "building ${TESTS} (cargo test --no-default-features --no-run)" >&2
# One JSON line per artifact; the test executables are those with profile.test = true.
mapfile -t binaries < <(
  cargo test --no-default-features --no-run --message-format=json "${targets[@]}" |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)
           | "\(.target.name) \(.executable)"'
)
if [ ${#binaries[@]} -eq 0 ]; then
  echo "error: no test binaries were built" >&2
  exit 1
fi

mkdir -p "$LOGS"
status=0
warnings=0
summary=()

# memcheck <log> <exe> <test args...>: run one test binary under valgrind; sets rc.
# --test-threads=1: one test at a time, so a slow test under valgrind does not starve another's
# timeouts; --fair-sched=yes keeps the tokio workers' thread switching fair under valgrind.
memcheck() {
  local log=$1 exe=$2
  shift 2
  rc=0
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite --error-exitcode=99 --fair-sched=yes --num-callers=40 \
    --log-file="$log" "$exe" --test-threads=1 "$@" >"$log.out" 2>&1 || rc=$?
  grep -E '^(test |test result:)' "$log.out" >&2 || true
}

# leaks <log>: the figures of the LEAK SUMMARY and ERROR SUMMARY at the end of a log.
leaks() {
  awk '
    /definitely lost:/ {d=$4" "$5" in "$7" blocks"}
    /indirectly lost:/ {i=$4" "$5}
    /possibly lost:/   {p=$4" "$5}
    /ERROR SUMMARY:/   {e=$4}
    END {printf "definitely lost %s, indirectly lost %s, possibly lost %s, errors %s",
         (d ? d : "0 bytes"), (i ? i : "0 bytes"), (p ? p : "0 bytes"), (e != "" ? e : "?")}' "$1"
}

for line in "${binaries[@]}"; do
  name=${line%% *}
  exe=${line#* }
  log="$LOGS/$name.log"
  echo "== $name under valgrind (log: $log)" >&2
  start=$SECONDS
  memcheck "$log" "$exe" "${EXTRA[@]}"
  detail=$(leaks "$log")
  if [ "$rc" -eq 101 ] && grep -q '\.\.\. FAILED$' "$log.out"; then
    # libtest's exit code for failed tests. Under valgrind on a busy machine that is nearly
    # always a timing (a 1 s connect timeout at pool open): run the failed ones once more,
    # alone, so their code paths are leak-checked too.
    mapfile -t failed < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log.out")
    echo "== $name: again under valgrind: ${failed[*]}" >&2
    memcheck "$log.rerun" "$exe" --exact "${failed[@]}"
    detail="$detail; rerun of ${#failed[@]}: $(leaks "$log.rerun")"
    if [ "$rc" -eq 101 ]; then
      still=$(grep -c '\.\.\. FAILED$' "$log.rerun.out" || true)
      result="ok, but $still test(s) failed twice under valgrind (see $log.rerun.out)"
      warnings=1
    elif [ "$rc" -eq 0 ]; then
      result="ok (${#failed[@]} test(s) passed on a rerun)"
    fi
  fi
  if [ "$rc" -eq 0 ]; then
    result=${result:-ok}
  elif [ "$rc" -eq 99 ]; then
    status=1
    result="FAIL (memory errors or definite leaks)"
  elif [ "$rc" -ne 101 ]; then
    status=1
    result="FAIL (the test process died, exit $rc; see the .out files in $LOGS)"
  fi
  summary+=("$name: $result in $((SECONDS - start)) s; $detail")
  unset result
done

echo
echo "leak check (valgrind $(valgrind --version | sed 's/valgrind-//'), errors-for-leak-kinds=definite):"
printf '  %s\n' "${summary[@]}"
if [ -n "$SKIP" ]; then echo "  skipped (wall-clock limits, see the top of this script): $SKIP"; fi
if [ "$warnings" -ne 0 ]; then
  echo "  note: tests that assert timings can fail under valgrind; \`make test-rust\` judges the tests"
fi
exit $status
