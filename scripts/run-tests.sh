#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs the Debian packages the
# tests drive (curl, nghttpx, haproxy, iproute2, docker.io, busybox-static) when missing, creates .venv, installs the
# project with its test extras, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v nghttpx >/dev/null || missing+=(nghttp2-proxy)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v ip >/dev/null || missing+=(iproute2)
command -v dockerd >/dev/null || missing+=(docker.io)
[ -x /bin/busybox ] || missing+=(busybox-static)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    apt_install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
    $sudo "${apt_install[@]}" "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null && $sudo "${apt_install[@]}" "${missing[@]}" >/dev/null; }
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
exec .venv/bin/python -m pytest -q "$@"
