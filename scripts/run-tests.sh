#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs the Debian packages the
# tests drive (curl, nghttpx, haproxy, iproute2, docker.io, busybox-static) when missing,
# and python3-venv when .venv is still to be made and python3 cannot make one (Debian's
# python3 comes without ensurepip), creates .venv, installs the project with its test
# extras, then runs pytest on everything, the libchan layers once more with every fast
# path off (LIBCHAN_FAST_PATHS=0), and mypy --strict on libchan and libswarm.
# Extra arguments go to pytest, and then only that pytest run is made.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v nghttpx >/dev/null || missing+=(nghttp2-proxy)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v ip >/dev/null || missing+=(iproute2)
command -v dockerd >/dev/null || missing+=(docker.io)
[ -x /bin/busybox ] || missing+=(busybox-static)
# `python3 -m venv` needs ensurepip, which Debian ships separately (python3-venv)
can_make_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }
[ -x .venv/bin/python ] || can_make_venv || missing+=(python3-venv)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    apt_install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
    $sudo "${apt_install[@]}" "${missing[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null && $sudo "${apt_install[@]}" "${missing[@]}" >/dev/null; } \
        || echo "run-tests.sh: could not install ${missing[*]} with apt-get; tests needing them skip (or fail under CI)" >&2
fi

if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv; then
        rm -rf .venv  # half made (no pip): the next run must not take it for a venv
        echo "run-tests.sh: cannot create .venv with python3 -m venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
if ! pip_out=$(.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1); then
    printf '%s\n' "$pip_out" >&2
    echo "run-tests.sh: pip install -e '.[test]' failed" >&2
    exit 1
fi
printf '%s\n' "$pip_out" | grep -v -e '^WARNING: Location' -e '^$' || true
if (($#)); then
    exec .venv/bin/python -m pytest -q "$@"
fi
.venv/bin/python -m pytest -q
echo "run-tests.sh: the libchan tests again with every fast path off (LIBCHAN_FAST_PATHS=0)"
LIBCHAN_FAST_PATHS=0 .venv/bin/python -m pytest -q -m "not fast_paths" tests/wire tests/engine tests/api tests/interop
echo "run-tests.sh: mypy --strict libchan libswarm"
.venv/bin/python -m mypy --strict libchan libswarm
