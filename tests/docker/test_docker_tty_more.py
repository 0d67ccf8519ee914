"""TTY end to end, continued: ``docker start -ai`` and ``docker attach`` to a TTY container,
the detach keys (Ctrl-P Ctrl-Q), terminal resize passed on to the backend."""

from __future__ import annotations

import pytest

from docker_helpers import IMAGE
from test_docker_tty import _pty, docker, dockerd  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


async def test_start_ai_tty(docker):
    await docker.ok("create", "-it", "--name", "tty2", "--network", "none", IMAGE, "cat")
    try:
        code, out = await _pty(docker, ["start", "-ai", "tty2"], [(b"", b"again\r"), (b"again\r\nagain\r\n", b"\x04")])
        assert code == 0, out
    finally:
        await docker("rm", "-f", "tty2")


async def test_attach_tty(docker):
    await docker.ok("run", "-dit", "--name", "tty3", "--network", "none", IMAGE, "cat")
    try:
        code, out = await _pty(docker, ["attach", "tty3"], [(b"", b"att\r"), (b"att\r\natt\r\n", b"\x04")])
        assert code == 0, out
    finally:
        await docker("rm", "-f", "tty3")


async def _running(docker, name: str) -> str:
    return (await docker.ok("inspect", "-f", "{{.State.Running}}", name)).strip()


async def test_detach_keys_attach(docker):
    """Ctrl-P Ctrl-Q leaves the container running, the CLI exits 0; attach again works."""
    await docker.ok("run", "-dit", "--name", "tty4", "--network", "none", IMAGE, "cat")
    try:
        for word in (b"one", b"two"):
            code, out = await _pty(docker, ["attach", "tty4"], [(b"", word + b"\r"),
                                                                (word + b"\r\n" + word + b"\r\n", b"\x10\x11")])
            # the CLI detects the keys itself and ends with its error "read escape sequence": exit 1
            # for attach (as against a real dockerd), 0 for run
            assert code == 1 and out.endswith(b"read escape sequence\r\n"), out
            assert await _running(docker, "tty4") == "true"
    finally:
        await docker("rm", "-f", "tty4")


async def test_detach_keys_run_it(docker):
    code, out = await _pty(docker, ["run", "-it", "--name", "tty5", "--network", "none", IMAGE, "cat"],
                           [(b"", b"r\r"), (b"r\r\nr\r\n", b"\x10\x11")])
    try:
        assert code == 0, out
        assert await _running(docker, "tty5") == "true"
        # custom keys: --detach-keys ctrl-x,x
        code, out = await _pty(docker, ["attach", "--detach-keys", "ctrl-x,x", "tty5"],
                               [(b"", b"s\r"), (b"s\r\ns\r\n", b"\x18x")])
        assert code == 1 and out.endswith(b"read escape sequence\r\n"), out
        assert await _running(docker, "tty5") == "true"
    finally:
        await docker("rm", "-f", "tty5")


async def test_resize_run_it(docker):
    """The CLI's terminal size reaches the container (``stty size``), and a resize later too."""
    code, out = await _pty(docker, ["run", "-it", "--rm", "--network", "none", IMAGE, "sh", "-c", "cat; stty size; sleep 2; stty size"],
                           [(b"", b"a\r"), (b"a\r\na\r\n", b"\x04"), (b"33 101\r\n", (40, 120)), (b"40 120\r\n", b"")],
                           size=(33, 101))
    assert code == 0, out


async def test_resize_exec_it(docker):
    await docker.ok("run", "-d", "--name", "tty6", "--network", "none", IMAGE, "sleep", "300")
    try:
        code, out = await _pty(docker, ["exec", "-it", "tty6", "sh", "-c", "cat; stty size; sleep 2; stty size"],
                               [(b"", b"a\r"), (b"a\r\na\r\n", b"\x04"), (b"30 90\r\n", (31, 91)), (b"31 91\r\n", b"")],
                               size=(30, 90))
        assert code == 0, out
        # without a TTY there is no terminal to size
        p = await docker("exec", "tty6", "stty", "size")
        assert p.returncode == 1 and p.stderr == b"stty: standard input: Inappropriate ioctl for device\n", p
    finally:
        await docker("rm", "-f", "tty6")
