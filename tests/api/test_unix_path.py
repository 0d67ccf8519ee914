"""A server's unix socket file: a stale one of an earlier run is replaced at start; at the
end the server removes its own file, and only its own (another server may have taken the
path over meanwhile): libchan.serve and swarmd's dockerserver."""

from __future__ import annotations

import os
import socket
import stat

import trio

import libchan
from libswarm.backends.simulator import Simulator

from docker_helpers import docker_front


async def _handler(session: libchan.Session) -> None:
    async for _ in session:
        pass


def _take_over(path: str) -> socket.socket:
    """Another server binds ``path`` (after removing the file there, as servers do)."""
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    return other


async def test_serve_removes_only_its_own_socket_file(tmp_path):
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # a stale socket of an earlier run (nobody listens)
    stale.close()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(libchan.serve, f"unix://{path}", _handler)
            async with libchan.connect(f"unix://{path}"):
                pass
            nursery.cancel_scope.cancel()
        assert not os.path.exists(path)  # its own file goes with it

        async with trio.open_nursery() as nursery:
            await nursery.start(libchan.serve, f"unix://{path}", _handler)
            other = _take_over(path)
            nursery.cancel_scope.cancel()
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)  # the other server's file stays
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.close()
    finally:
        other.close()


async def _run_front(path: str, then):
    async with docker_front(f"unix://{path}", Simulator("web")):
        return then()


async def test_dockerserver_removes_only_its_own_socket_file(tmp_path):
    path = str(tmp_path / "d.sock")
    with trio.fail_after(10):
        await _run_front(path, lambda: None)
        assert not os.path.exists(path)
        other = await _run_front(path, lambda: _take_over(path))
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        other.close()
