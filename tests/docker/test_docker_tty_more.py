"""TTY end to end, continued: ``docker start -ai`` and ``docker attach`` to a TTY container,
the detach keys (Ctrl-P Ctrl-Q), terminal resize passed on to the backend."""

from __future__ import annotations

import pytest
import trio

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


async def _raw_attach_detach(docker, name: str, query: str, keys: bytes) -> bytes:
    """Attach over the raw API (no docker CLI to catch the keys), type, then send the detach
    keys: the engine (dockerserver for the simulator, dockerd) must end the connection."""
    stream = await trio.open_unix_socket(docker.host[len("unix://"):])
    async with stream:
        await stream.send_all(f"POST /v1.41/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1{query} "
                              "HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                              "Content-Length: 0\r\n\r\n".encode())
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            assert data.startswith(b"HTTP/1.1 101"), data
            data = data.partition(b"\r\n\r\n")[2]
            await trio.sleep(0.3)
            await stream.send_all(b"hi\r")
            while b"hi\r\nhi\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, data
                data += chunk
            await stream.send_all(keys)
            while chunk := await stream.receive_some(65536):  # the engine ends the connection
                data += chunk
        return data


async def test_detach_keys_raw_api(docker):
    await docker.ok("run", "-dit", "--name", "tty7", "--network", "none", IMAGE, "cat")
    try:
        await _raw_attach_detach(docker, "tty7", "", b"\x10\x11")
        assert await _running(docker, "tty7") == "true"
        # custom keys: Ctrl-P Ctrl-Q is then input like any other
        await _raw_attach_detach(docker, "tty7", "&detachKeys=ctrl-x,x", b"\x10\x11\x18x")
        assert await _running(docker, "tty7") == "true"
    finally:
        await docker("rm", "-f", "tty7")


def test_detach_keys_parse_and_proxy():
    from libswarm.backends._docker.http import HTTPError
    from libswarm.backends._docker.streams import EscapeProxy, detach_keys

    assert detach_keys(None) == b"\x10\x11"
    assert detach_keys("ctrl-x,x") == b"\x18x"
    assert detach_keys("ctrl-@,ctrl-[") == b"\x00\x1b"
    with pytest.raises(HTTPError):
        detach_keys("ctrl-xx")
    p = EscapeProxy(b"\x10\x11")
    assert p.feed(b"a\x10") == b"a" and p.held == b"\x10"
    assert p.feed(b"b") == b"\x10b" and not p.detached  # broken: passed on
    assert p.feed(b"c\x10") == b"c" and p.feed(b"\x11rest") == b"" and p.detached
