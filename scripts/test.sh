#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite.
# This is the README's second quick-start command, and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e ".[test,dev]"  # also builds the Models panel (labextension/, jlpm) into the package

# the panel's lint: eslint and prettier (TypeScript strict is checked by its build above)
(cd labextension && jlpm install >/dev/null && jlpm lint)

# Debian packages and real servers: a Docker engine with a local base image (no registry is reachable here);
# VictoriaMetrics (InfluxDB's write protocol), Prometheus and an OCI registry (the tests start their own instances on
# free loopback ports); Chromium for the browser tests
if [ "$(id -u)" = 0 ]; then
    bash scripts/setup-docker.sh
    bash scripts/setup-servers.sh
    bash scripts/setup-browser.sh
fi
export MM_DOCKER_BASE_IMAGE="${MM_DOCKER_BASE_IMAGE:-local/python:3.11}"

exec python3 -m pytest "$@"
