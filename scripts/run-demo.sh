#!/usr/bin/env bash
# The main job on its embedded default: the rexec demo (server and client on
# localhost over mutual TLS with throwaway certificates). Arguments, if any,
# are the command to run remotely.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[demo]' 2>&1 | grep -v '^WARNING: Location' || true
exec .venv/bin/python -m libchan.examples.rexec demo "$@"
