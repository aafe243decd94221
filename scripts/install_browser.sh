#!/usr/bin/env bash
# Install Debian's chromium for the browser test (tests/test_browser.py drives it with Playwright).
# Safe to run again: it does nothing when /usr/bin/chromium is already there. Needs root (CI is).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
