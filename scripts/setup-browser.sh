#!/usr/bin/env bash
# Debian's Chromium for the real-browser tests (tests/e2e/test_browser.py drives it through Playwright with
# executable_path=/usr/bin/chromium; Playwright's own browser download is not used). Idempotent; run as root.
set -euo pipefail
say() { echo "[setup-browser] $*"; }
if [ -x /usr/bin/chromium ]; then
    say "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "[setup-browser] ERROR: run as root (it installs a Debian package)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy chromium 2>/dev/null | grep -q Candidate:.*[0-9]; then
    apt-get update -o DPkg::Lock::Timeout=300 -qq
fi
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium fonts-dejavu-core >/dev/null
say "installed $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
