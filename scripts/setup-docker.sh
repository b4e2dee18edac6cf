#!/usr/bin/env bash
# The Docker setup ships inside the package (`mm docker-setup` runs it after a pip install); from a source checkout
# this runs the same script.
exec bash "$(dirname "$0")/../mm_magics/data/setup-docker.sh" "$@"
