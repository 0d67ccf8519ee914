"""TTY end to end: the real docker CLI inside a real pseudo-terminal (Python's ``pty``), through
dockerserver, on the simulator and on a real dockerd behind dockerclient: ``run -t`` output is
raw (no stream headers), ``run -it``/``exec -it`` echo input, Ctrl-D ends stdin, Ctrl-C kills."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest
import trio

from docker_helpers import DOCKER_CLIS, IMAGE, Docker, docker_front, need, private_dockerd
from libswarm.backends.dockerclient import DockerClient
from libswarm.backends.simulator import Simulator

pytestmark = pytest.mark.slow  # the real docker CLI (and a private dockerd)


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as d:
        yield d


@pytest.fixture(params=["simulator", "dockerclient"])
async def docker(request, tmp_path):
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    if request.param == "simulator":
        backend = Simulator()
    else:
        backend = DockerClient(f"unix://{request.getfixturevalue('dockerd').sock}")
    async with docker_front(f"unix://{sock}", backend):
        yield Docker(f"unix://{sock}")


def _winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _in_pty(d: Docker, args: list[str], steps: list[tuple[bytes, bytes | tuple[int, int]]], timeout: float = 20,
            size: tuple[int, int] = (24, 80)) -> tuple[int, bytes]:
    """Run the docker CLI with a pseudo-terminal (``size``: rows, columns) as
    stdin/stdout/stderr; for each step, wait until the output has ``expect`` (after the
    previous step's), then write ``send`` (a ``(rows, cols)`` resizes the terminal instead,
    and SIGWINCH tells the CLI). Return (exit status, all output)."""
    master, slave = pty.openpty()
    _winsize(slave, *size)
    p = subprocess.Popen([d.cli, "-H", d.host, *args], stdin=slave, stdout=slave, stderr=slave, env=d.env,
                         start_new_session=True)
    os.close(slave)
    out = b""
    seen = 0
    deadline = time.monotonic() + timeout

    def read_some() -> bool:
        nonlocal out
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
        return True

    try:
        for expect, send in steps:
            while expect not in out[seen:]:
                assert time.monotonic() < deadline and read_some(), (args, expect, out)
            seen = out.index(expect, seen) + len(expect)
            if isinstance(send, tuple):
                _winsize(master, *send)
                p.send_signal(signal.SIGWINCH)  # the pty is not its controlling terminal
                time.sleep(0.3)  # let the resize reach the container
            elif send:
                time.sleep(0.3)  # let the container start reading
                os.write(master, send)
        while p.poll() is None:
            assert time.monotonic() < deadline, ("the CLI did not exit", args, out)
            read_some()
        while read_some() and select.select([master], [], [], 0)[0]:
            pass
        return p.returncode, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


async def _pty(d: Docker, args: list[str], steps: list[tuple[bytes, bytes | tuple[int, int]]],
               size: tuple[int, int] = (24, 80)) -> tuple[int, bytes]:
    return await trio.to_thread.run_sync(lambda: _in_pty(d, args, steps, size=size))


async def test_run_t_output_is_raw(docker):
    code, out = await _pty(docker, ["run", "-t", "--rm", "--network", "none", IMAGE, "echo", "tty"], [])
    assert (code, out) == (0, b"tty\r\r\n")  # the container's tty writes \r\n, ours adds a \r (not raw without -i)
    code, out = await _pty(docker, ["run", "-t", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo err >&2; exit 3"],
                           [])
    assert (code, out) == (3, b"err\r\r\n")  # one stream: stderr comes on the terminal too, no frame headers


async def test_run_it_echo_ctrl_d_ctrl_c(docker):
    code, out = await _pty(docker, ["run", "-it", "--rm", "--network", "none", IMAGE, "cat"],
                           [(b"", b"hello\r"), (b"hello\r\nhello\r\n", b"\x04")])
    assert code == 0, out
    # Ctrl-C is SIGINT: PID 1 ignores it, unless an init runs it
    code, out = await _pty(docker, ["run", "-it", "--rm", "--init", "--network", "none", IMAGE, "cat"],
                           [(b"", b"x\r"), (b"x\r\nx\r\n", b"\x03")])
    assert code == 130, out
    code, out = await _pty(docker, ["run", "-it", "--rm", "--network", "none", IMAGE, "cat"],
                           [(b"", b"y\r"), (b"y\r\ny\r\n", b"\x03"), (b"^C", b"\x04")])
    assert code == 0, out


async def test_exec_it(docker):
    await docker.ok("run", "-d", "--name", "tty1", "--network", "none", IMAGE, "sleep", "300")
    try:
        code, out = await _pty(docker, ["exec", "-it", "tty1", "cat"], [(b"", b"in exec\r"),
                                                                         (b"in exec\r\nin exec\r\n", b"\x04")])
        assert code == 0, out
        code, out = await _pty(docker, ["exec", "-it", "tty1", "cat"], [(b"", b"\x03")])
        assert code == 130, out
        code, out = await _pty(docker, ["exec", "-t", "tty1", "sh", "-c", "echo a; echo b >&2; exit 4"], [])
        assert (code, out) == (4, b"a\r\r\nb\r\r\n"), out
    finally:
        await docker("rm", "-f", "tty1")
