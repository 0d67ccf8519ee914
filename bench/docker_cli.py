"""What the Docker-path benchmarks share: the docker CLI run with a clean environment
(no config, no DOCKER_HOST), a whole CLI process timed, swarmd started and stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DOCKER = os.environ.get("DOCKER", "docker")
ENV = {**os.environ, "DOCKER_CONFIG": "/nonexistent-docker-config"}
for _k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
    ENV.pop(_k, None)


def docker_ok(sock: str, *args: str) -> str:
    p = subprocess.run([DOCKER, "-H", f"unix://{sock}", *args], capture_output=True, env=ENV, timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} via {sock} failed: {p.stderr.decode().strip()}")
    return p.stdout.decode()


def time_once(argv: list[str]) -> float:
    """Wall time of one whole CLI process (blocking waitpid; a watchdog kills a hung one)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    watchdog = threading.Timer(60, p.kill)
    watchdog.daemon = True
    watchdog.start()
    assert p.stderr is not None
    try:
        err = p.stderr.read()  # EOF when the process exits (nothing much is written there)
        code = p.wait()
        dt = time.perf_counter() - t0
    except BaseException:  # Ctrl-C, SIGTERM: the CLI goes too
        p.kill()
        p.wait()
        raise
    finally:
        watchdog.cancel()
        p.stderr.close()
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}: {err.decode(errors='replace').strip()}")
    return dt


def start_swarmd(specs: list[str], sock: str, profile: str | None = None) -> subprocess.Popen[bytes]:
    py = [sys.executable]
    if profile:
        py += ["-m", "cProfile", "-o", profile]
    p = subprocess.Popen([*py, "-m", "libswarm.swarmd", *specs], cwd=ROOT, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"swarmd {specs} did not start")
        time.sleep(0.05)
    return p


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()  # swarmd ends its chain and exits 0 (under cProfile, the profile is written)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
