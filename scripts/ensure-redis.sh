#!/usr/bin/env bash
# Make sure redis-server (>= 7.0, with redis-benchmark) and the openssl CLI (test certificates)
# are installed; install Debian's packages when they are missing.
#
# 7.0 is the floor because it is what the suites run on: Debian 12 offers 7.0.15 and nothing
# else (no 6.2, no 8.x), so no other version is tested here. The library itself also works on
# 6.2 (where XINFO GROUPS has no lag), but `make test` does not claim what it cannot show.
set -euo pipefail
MIN_MAJOR=7
check_version() {
  local version major
  version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
  major=${version%%.*}
  if [ -z "$major" ] || [ "$major" -lt "$MIN_MAJOR" ]; then
    echo "error: redis-server ${version:-of unknown version} found; the tests need >= $MIN_MAJOR.0 (Debian 12's redis-server is 7.0)." >&2
    exit 1
  fi
}
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then
  check_version
  exit 0
fi
echo "missing: ${missing[*]}: installing Debian's packages" >&2
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "error: ${missing[*]} missing and this user cannot run apt-get. Install redis-server >= 7.0 and openssl, then retry." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; }; then
  echo "error: apt-get could not install ${missing[*]}. Install redis-server >= 7.0 and openssl by hand and retry." >&2
  exit 1
fi
# Debian's package starts a service on 6379; the tests start their own servers and do not need it.
command -v redis-server >/dev/null
check_version
