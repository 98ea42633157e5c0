#!/usr/bin/env bash
# Make sure redis-server (>= 6.2) is installed; install Debian's package when it is missing.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server not found: installing Debian's redis-server package" >&2
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "error: redis-server is missing and this user cannot run apt-get. Install redis-server >= 6.2 and retry." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server; }; then
  echo "error: apt-get could not install redis-server. Install redis-server >= 6.2 by hand and retry." >&2
  exit 1
fi
# Debian's package starts a service on 6379; the tests start their own servers and do not need it.
command -v redis-server >/dev/null
