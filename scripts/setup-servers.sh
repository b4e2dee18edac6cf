#!/usr/bin/env bash
# Install the real servers the suite starts on loopback, on a fresh Debian bookworm machine (Debian packages only):
#
# - victoria-metrics: accepts InfluxDB's /api/v2/write line protocol unchanged from influxdb-client (no InfluxDB 2.x
#   is installable here; Debian's `influxdb` is 1.6, v1 API only) and lets the tests read every point back exactly;
# - prometheus: scrapes deployments' /metrics, its query API is what the tests read;
# - docker-registry: an OCI registry (CNCF distribution) that `mm image --push` pushes to and Docker pulls from.
#
# This script only installs them: the tests start their own instances on free loopback ports with temporary data
# directories, so nothing is left running. Idempotent: a second run only checks the binaries (about a second);
# apt-get update runs only when the package lists do not know a package yet. Run as root.
set -euo pipefail

say() { echo "[setup-servers] $*"; }
die() { echo "[setup-servers] ERROR: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO (exit $?); see the output above"' ERR

[ "$(id -u)" -eq 0 ] || die "run as root (it installs Debian packages): sudo bash $0"
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian bookworm"

declare -A BINARY=([victoria-metrics]=victoria-metrics [prometheus]=prometheus [docker-registry]=docker-registry)
missing=()
for pkg in "${!BINARY[@]}"; do
    command -v "${BINARY[$pkg]}" >/dev/null || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    for pkg in "${missing[@]}"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            say "apt-get update"
            apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed: check the Debian mirror"
            break
        fi
    done
    say "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed: see the apt output above"
fi

# The packages may start services where an init system exists; the tests never use them. Prove the binaries run.
victoria-metrics -version >/dev/null 2>&1 || die "victoria-metrics is installed but does not run: reinstall it"
prometheus --version >/dev/null 2>&1 || die "prometheus is installed but does not run: reinstall it"
docker-registry --version >/dev/null 2>&1 || die "docker-registry is installed but does not run: reinstall it"
say "ready: victoria-metrics, prometheus, docker-registry"
