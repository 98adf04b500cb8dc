#!/usr/bin/env bash
# Make sure Debian's Chromium is present for the browser tests (Playwright drives /usr/bin/chromium;
# `playwright install` cannot download browsers offline). Installs it with apt when running as root
# (or with sudo); otherwise says that the browser tests will be skipped.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No /usr/bin/chromium and no apt-get: the browser tests will be skipped." >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "No /usr/bin/chromium (install it with: sudo apt-get install chromium): browser tests will be skipped." >&2
    exit 0
  fi
fi
echo "Installing Debian's chromium for the browser tests…"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
  || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } \
  || echo "Could not install chromium: the browser tests will be skipped." >&2
exit 0
