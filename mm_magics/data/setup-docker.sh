#!/usr/bin/env bash
# Make a Docker engine and a local Python base image available for `%mm_deploy --docker` on a fresh Debian
# bookworm machine with no systemd and no reachable image registry (only the Debian and PyPI mirrors).
#
# Idempotent: each step is skipped when its result is already there, so a second run takes about a second.
#   1. install docker.io and debootstrap (apt-get update only when the package lists lack them)
#   2. start dockerd in the background unless `docker info` already answers
#   3. provide the base image local/python:3.11 (Debian's Python 3.11, pip, venv): `docker load` it from the cache
#      tarball, else build it with debootstrap and save the tarball for the next run on this machine
#
# Run as root: `mm docker-setup` (or `bash scripts/setup-docker.sh` in a source checkout). Then deploy with the
# base image local/python:3.11 (MM_DOCKER_BASE_IMAGE=local/python:3.11). Environment: MM_BASE_IMAGE (image name to
# provide, default local/python:3.11), DEBIAN_MIRROR (default: the first Debian mirror in this machine's apt sources), XDG_CACHE_HOME.
set -euo pipefail

IMAGE="${MM_BASE_IMAGE:-local/python:3.11}"
# The mirror this machine's apt already uses (deb822 "URIs:" or one-line "deb" entries), never a hard-coded host:
# a machine that reaches only its own mirror must build from that one.
apt_mirror() {
    local files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list)
    local f
    for f in "${files[@]}"; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ {print $2; exit} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; exit}}' "$f" \
            | grep -v -- '-security' | head -n 1
    done | head -n 1
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/mm_magics"
TARBALL="$CACHE_DIR/$(echo "$IMAGE" | tr '/:' '__').tar.gz"
DOCKERD_LOG=/tmp/dockerd.log
START=$SECONDS

say() { echo "[setup-docker] $*"; }
die() { echo "[setup-docker] ERROR: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO (exit $?); see the output above"' ERR

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts dockerd): sudo mm docker-setup"
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian bookworm"

# -- 1. packages ------------------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed: check the Debian mirror"
    fi
    say "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed: see the apt output above"
else
    say "docker.io and debootstrap already installed"
fi

# -- 2. the engine ------------------------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    say "Docker engine already running"
else
    if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        say "dockerd (pid $(cat /var/run/docker.pid)) is starting; waiting for it"
    else
        say "starting dockerd (log: $DOCKERD_LOG)"
        # nohup execs dockerd, so $! is dockerd's own pid; it outlives this script (no systemd here)
        nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
        echo $! >/tmp/dockerd.pid
    fi
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s: see $DOCKERD_LOG"
    say "Docker engine ready"
fi

# -- 3. the base image --------------------------------------------------------------------------------------------
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "base image $IMAGE already present"
elif [ -s "$TARBALL" ] && gzip -dc "$TARBALL" | docker load -q >/dev/null 2>&1 \
        && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "base image $IMAGE loaded from $TARBALL"
else
    [ -e "$TARBALL" ] && say "cached $TARBALL is unusable; rebuilding"
    ROOTFS="$(mktemp -d /tmp/mm-rootfs.XXXXXX)"
    cleanup() { rm -rf "$ROOTFS"; }
    trap cleanup EXIT
    say "building $IMAGE with debootstrap from $MIRROR (about 1.5 min)"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
        bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
        || { tail -n 20 "$ROOTFS.log" >&2; die "debootstrap failed (log above, full log $ROOTFS.log)"; }
    rm -f "$ROOTFS.log"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    say "importing the root filesystem as $IMAGE"
    tar -C "$ROOTFS" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$IMAGE" >/dev/null
    say "caching it as $TARBALL"
    mkdir -p "$CACHE_DIR"
    docker save "$IMAGE" | gzip -1 >"$TARBALL.tmp"
    mv -f "$TARBALL.tmp" "$TARBALL"
fi

docker run --rm --network none "$IMAGE" python3 -c 'import venv, sys; print(sys.version.split()[0])' >/dev/null \
    || die "$IMAGE does not run python3: delete $TARBALL and run this script again"
say "done in $((SECONDS - START)) s: deploy with base image $IMAGE (MM_DOCKER_BASE_IMAGE=$IMAGE)"
