"""Reads and writes on a plain socket stream without trio's extra scheduler pass.

trio's ``SocketStream`` yields once after every call that did not have to wait (a write
the kernel took at once, a read of bytes already there): a scheduler pass each. The
Docker front end and ``dockerclient`` exchange a few small messages per request, so
they write the OS socket at once and read what is there, waiting only when nothing is,
as libchan's own socket I/O does (``libchan/engine/sockio.py``). Anything but a plain
``trio.SocketStream`` (TLS, in-memory streams), a closed socket and any OS error go
through the stream's own methods, which raise trio's errors as usual.
"""

from __future__ import annotations

import os

import trio

__all__ = ["receive_some", "send_all"]


def _fd(stream: trio.abc.Stream) -> int:
    """The OS descriptor of a plain socket stream (-1: none, or it is closed)."""
    return stream.socket.fileno() if type(stream) is trio.SocketStream else -1


async def send_all(stream: trio.abc.Stream, data: bytes) -> None:
    """``stream.send_all(data)``: what the kernel takes at once is written now, without a yield."""
    fd = _fd(stream)
    if fd >= 0 and data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            n = 0  # (the stream's own send_all raises it as trio's error)
        if n == len(data):
            return
        data = data[n:]
    await stream.send_all(data)


async def receive_some(stream: trio.abc.Stream, max_bytes: int = 65536) -> bytes:
    """``stream.receive_some(max_bytes)``: bytes already there are returned without a yield."""
    fd = _fd(stream)
    if fd >= 0:
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            pass
        except OSError:
            return bytes(await stream.receive_some(max_bytes))  # trio's error for it
    return bytes(await stream.receive_some(max_bytes))
