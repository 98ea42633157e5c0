#!/usr/bin/env bash
# Make sure redis-server (>= 6.2, with redis-benchmark) and the openssl CLI (test certificates)
# are installed; install Debian's packages when they are missing.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "missing: ${missing[*]}: installing Debian's packages" >&2
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "error: ${missing[*]} missing and this user cannot run apt-get. Install redis-server >= 6.2 and openssl, then retry." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; }; then
  echo "error: apt-get could not install ${missing[*]}. Install redis-server >= 6.2 and openssl by hand and retry." >&2
  exit 1
fi
# Debian's package starts a service on 6379; the tests start their own servers and do not need it.
command -v redis-server >/dev/null
