"""``scripts/run-demo.sh``, the README's first command, run for real.

The docker demo: ``swarmd 'dockerserver unix://TMP/swarm.sock' simulator`` in the
background and a scripted session of the real docker CLI against it; it must print each
command and its output, exit 0, and leave nothing behind (swarmd stopped, its temporary
directory and socket removed). A docker CLI that answers wrongly must make it fail, with a
message saying which command. ``.venv`` exists here, so the script skips pip.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from docker_helpers import DOCKER_CLI, need
from swarmd_support import ROOT

pytestmark = pytest.mark.slow  # scripts/run-demo.sh, run for real

SCRIPT = str(ROOT / "scripts" / "run-demo.sh")


def _run(*args: str, path_prefix: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"):
        env.pop(k, None)
    if path_prefix:
        env["PATH"] = path_prefix + os.pathsep + env["PATH"]
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _demo_dir(out: str) -> str:
    m = re.search(r"swarmd 'dockerserver unix://(\S+)/swarm\.sock' simulator &", out)
    assert m, out
    return m.group(1)


def test_demo_session():
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    p = _run()
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = p.stdout
    # each command is printed, then its output, in this order
    expected = [
        "$ docker version", "Server: libswarm dockerserver", "Version:          20.10.0-libswarm",
        "$ docker run --rm busybox echo hello from swarmd\nhello from swarmd\n",
        "$ echo hi | docker run -i --rm busybox cat\nhi\n",
        "$ docker run -d --name web busybox sh -c 'echo serving; sleep 30'\n",
        "$ docker ps\nCONTAINER ID", "$ docker logs web\nserving\n", "$ docker stop web\nweb\n",
        "$ docker ps -a\n", "Exited (137)", "$ docker rm web\nweb\n",
        "$ docker rm web\nError response from daemon: No such container: web\n",
        "$ docker run --rm busybox sh -c 'exit 3'; echo \"exit status: $?\"\nexit status: 3\n",
        "# swarmd stopped (SIGTERM, exit status 0, socket removed)",
        "run-demo.sh: OK: 11 docker commands against swarmd gave the expected output and status",
    ]
    pos = 0
    for text in expected:
        i = out.find(text, pos)
        assert i >= 0, f"{text!r} not found after offset {pos} in:\n{out}"
        pos = i + len(text)
    assert re.search(r"^[0-9a-f]{64}$", out, re.M)
    assert p.stderr == ""
    tmp = _demo_dir(out)
    assert not os.path.exists(tmp), "the demo left its directory behind"
    assert _processes_mentioning(tmp) == [], "swarmd is still running"


def test_demo_fails_clearly(tmp_path):
    """A docker CLI giving wrong answers: exit 1 naming the command; swarmd and the directory cleaned up."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'not what you expect'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    p = _run(path_prefix=str(tmp_path))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "run-demo.sh: FAILED: `docker version`: the output does not match /Engine:/" in p.stderr, p.stderr
    assert "--- swarmd's log:" in p.stderr and "dockerserver: listening on" in p.stderr
    assert "$ docker version\nnot what you expect\n" in p.stdout
    tmp = _demo_dir(p.stdout)
    assert not os.path.exists(tmp)
    assert _processes_mentioning(tmp) == []


def test_help_and_bad_arguments():
    p = _run("--help", timeout=30)
    assert p.returncode == 0 and "bash scripts/run-demo.sh rexec [CMD...]" in p.stdout, p
    p = _run("--bogus", timeout=30)
    assert p.returncode == 2 and "unknown argument: --bogus (see --help)" in p.stderr, p


def test_rexec_demo_still_reachable():
    p = _run("rexec", "sh", "-c", "echo remote output; exit 2", timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    combined = p.stdout + p.stderr
    assert "remote output" in combined and "exited with status 2" in combined, combined
