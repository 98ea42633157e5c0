#!/usr/bin/env bash
# The dashboard's browser test drives Debian's Chromium through Playwright (executable_path):
# install the Debian package when it is missing. Playwright never downloads a browser here.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "chromium not found: installing Debian's chromium package for the browser test" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; }; then
  echo "error: apt-get could not install chromium; install it (Debian package chromium) and retry." >&2
  exit 1
fi
