#!/usr/bin/env bash
# The main job: the real docker CLI against swarmd, with no Docker engine involved.
#
#   bash scripts/run-demo.sh                 the docker demo (below)
#   bash scripts/run-demo.sh rexec [CMD...]  the libchan rexec demo: a server and a client on
#                                            localhost over mutual TLS; the client runs CMD on
#                                            the server and prints its output and exit status
#   bash scripts/run-demo.sh --help
#
# The docker demo starts `swarmd 'dockerserver unix://TMPDIR/swarm.sock' simulator` in the
# background (the Docker Engine API in front of libswarm's in-memory engine), runs a short
# docker CLI session against it, printing each command before its output, then stops swarmd
# (SIGTERM; its socket is removed). Exit status 0 when every command gave the expected
# output and status; otherwise the failing command, what was expected, and status 1.
#
# On a fresh machine it first creates .venv and installs the project into it
# (pip install -e '.[demo]'; skipped when that is done already), and installs a docker CLI
# with apt-get when none is on PATH (Debian's docker.io: bookworm has no CLI-only package;
# its daemon is not started).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "run-demo.sh: $*" >&2; exit 1; }

installed() {  # the project and its demo extra are installed in .venv from this checkout
    [ -x .venv/bin/python ] && [ -x .venv/bin/swarmd ] && .venv/bin/python - "$PWD" <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, re, sys, tomllib
import libswarm
assert libswarm.__file__.startswith(sys.argv[1] + "/")
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["demo"]:
    md.version(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])
EOF
}

setup_venv() {
    installed && return 0
    [ -x .venv/bin/python ] || python3 -m venv .venv || die "cannot create .venv (on Debian: apt-get install python3-venv)"
    local log
    log=$(mktemp)
    if ! .venv/bin/pip install -q --disable-pip-version-check -e '.[demo]' >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "pip install -e '.[demo]' failed"
    fi
    rm -f "$log"
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    rexec) shift; setup_venv; exec .venv/bin/python -m libchan.examples.rexec demo "$@" ;;
    "") ;;
    *) echo "run-demo.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

setup_venv
if ! command -v docker >/dev/null; then
    echo "run-demo.sh: no docker CLI on PATH: installing Debian's docker.io with apt-get (for its CLI)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    apt_install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 docker.io)
    $sudo "${apt_install[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -qq >/dev/null && $sudo "${apt_install[@]}" >/dev/null; } \
        || die "could not install a docker CLI (apt-get install docker.io)"
    command -v docker >/dev/null || die "still no docker CLI on PATH after installing docker.io"
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/swarmd-demo.XXXXXX")
SOCK=$DIR/swarm.sock
SWARMD_PID=""

stop_swarmd() {  # SIGTERM, up to 10 s, then SIGKILL; sets SWARMD_STATUS
    SWARMD_STATUS=""
    [ -n "$SWARMD_PID" ] || return 0
    kill -TERM "$SWARMD_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SWARMD_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SWARMD_PID" 2>/dev/null || true
    SWARMD_STATUS=0
    wait "$SWARMD_PID" 2>/dev/null || SWARMD_STATUS=$?
    SWARMD_PID=""
}
cleanup() {
    stop_swarmd
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo >&2
    echo "run-demo.sh: FAILED: $*" >&2
    if [ -s "$DIR/swarmd.log" ]; then
        echo "--- swarmd's log:" >&2
        tail -n 20 "$DIR/swarmd.log" >&2
    fi
    exit 1
}

# the docker CLI talks to swarmd only: no user configuration, contexts or TLS settings
export DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$DIR/docker-config"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_API_VERSION

echo "# swarmd serves the Docker Engine API in front of libswarm's in-memory simulator:"
echo "\$ swarmd 'dockerserver unix://$SOCK' simulator &"
.venv/bin/swarmd "dockerserver unix://$SOCK" simulator >"$DIR/swarmd.log" 2>&1 &
SWARMD_PID=$!
for _ in $(seq 150); do
    [ -S "$SOCK" ] && break
    kill -0 "$SWARMD_PID" 2>/dev/null || { SWARMD_PID=""; fail "swarmd exited at start"; }
    sleep 0.1
done
[ -S "$SOCK" ] || fail "swarmd did not create $SOCK within 15 s"
sed 's/^/  /' "$DIR/swarmd.log"
echo "\$ export DOCKER_HOST=unix://$SOCK"

STEPS=0
demo() {  # demo 'COMMAND' EXPECTED_STATUS 'EXTENDED REGEX THE OUTPUT MUST MATCH'
    local cmd=$1 want_status=$2 want=$3 out status=0
    STEPS=$((STEPS + 1))
    printf '\n$ %s\n' "$cmd"
    out=$(timeout 30 bash -c "$cmd" </dev/null 2>&1) || status=$?
    [ -z "$out" ] || printf '%s\n' "$out"
    [ "$status" -ne 124 ] || fail "\`$cmd\` did not finish within 30 s"
    [ "$status" -eq "$want_status" ] || fail "\`$cmd\` exited with status $status, expected $want_status"
    grep -Eq -- "$want" <<<"$out" || fail "\`$cmd\`: the output does not match /$want/"
}

demo 'docker version' 0 'Engine:'
demo 'docker run --rm busybox echo hello from swarmd' 0 '^hello from swarmd$'
demo 'echo hi | docker run -i --rm busybox cat' 0 '^hi$'
demo "docker run -d --name web busybox sh -c 'echo serving; sleep 30'" 0 '^[0-9a-f]{64}$'
demo 'docker ps' 0 ' Up .* web$'
demo 'docker logs web' 0 '^serving$'
demo 'docker stop web' 0 '^web$'
demo 'docker ps -a' 0 ' Exited \(137\) .* web$'
demo 'docker rm web' 0 '^web$'
demo 'docker rm web' 1 'No such container: web'
demo "docker run --rm busybox sh -c 'exit 3'; echo \"exit status: \$?\"" 0 '^exit status: 3$'

stop_swarmd
[ "$SWARMD_STATUS" = 0 ] || fail "swarmd exited with status $SWARMD_STATUS on SIGTERM, expected 0"
[ ! -e "$SOCK" ] || fail "swarmd left its socket $SOCK behind"
echo
echo "# swarmd stopped (SIGTERM, exit status 0, socket removed)"
echo "run-demo.sh: OK: $STEPS docker commands against swarmd gave the expected output and status"
