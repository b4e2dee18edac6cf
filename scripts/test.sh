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

# Debian packages and real servers: a Docker engine with a local base image (no registry is reachable here), and
# VictoriaMetrics, which speaks InfluxDB's write protocol (the tests start their own instances on free ports)
if [ "$(id -u)" = 0 ]; then
    bash scripts/setup-docker.sh
    bash scripts/setup-influx.sh
    bash scripts/setup-browser.sh
fi
export MM_DOCKER_BASE_IMAGE="${MM_DOCKER_BASE_IMAGE:-local/python:3.11}"

exec python3 -m pytest "$@"
