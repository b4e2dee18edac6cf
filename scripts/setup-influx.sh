#!/usr/bin/env bash
# Install an InfluxDB-compatible server for the InfluxDB sink's real-server tests on a fresh Debian bookworm machine.
#
# No InfluxDB 2.x is installable here (Debian's `influxdb` is 1.6, v1 API only), but Debian's `victoria-metrics`
# accepts InfluxDB's /api/v2/write line protocol unchanged from influxdb-client, and lets the tests read every point
# back exactly (/api/v1/export). This script only installs it: the tests start their own server on a free loopback
# port with a temporary data directory, so nothing is left running.
#
# Idempotent: a second run only checks the binary (about a second). apt-get update runs only when the package lists
# do not know the package yet. Run as root: `bash scripts/setup-influx.sh`.
set -euo pipefail

say() { echo "[setup-influx] $*"; }
die() { echo "[setup-influx] ERROR: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO (exit $?); see the output above"' ERR

[ "$(id -u)" -eq 0 ] || die "run as root (it installs a Debian package): sudo bash $0"
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian bookworm"

if command -v victoria-metrics >/dev/null; then
    say "victoria-metrics already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show victoria-metrics >/dev/null 2>&1; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed: check the Debian mirror"
    fi
    say "installing victoria-metrics"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends victoria-metrics >/dev/null \
        || die "apt-get install victoria-metrics failed: see the apt output above"
fi

# The Debian package may start a service where an init system exists; the tests never use it. Just prove the
# binary runs.
victoria-metrics -version >/dev/null 2>&1 || die "victoria-metrics is installed but does not run: reinstall it"
say "ready: $(command -v victoria-metrics) (package $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '?'))"
