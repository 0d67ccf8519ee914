"""The byte pipe under a :class:`~libchan.spdy_like.link.Link`.

:class:`TransportIO` reads and writes any trio stream. For a plain socket
(TCP or unix, what ``tcp://`` and ``unix://`` give) it talks to the OS socket
itself, the way an asyncio transport does:

* ``try_send`` writes what the kernel takes *now*, synchronously, so a task
  that just queued a message can put it on the wire without waking the writer
  task (one scheduler pass less per message on a latency-bound exchange);
* ``receive_some`` waits for readability and reads once, without the extra
  yield that trio's ``SocketStream`` adds after every successful call.

It works on a duplicate of the socket's file descriptor (public API only), so
:meth:`close` must run when the link is done with it; the trio stream is still
the one that waits for readiness and is closed by its owner. Anything else (TLS,
in-memory streams) goes through the trio stream unchanged.
"""

from __future__ import annotations

import os
import socket

import trio

__all__ = ["TransportIO"]

_MAX_IOV = 512  # buffers per sendmsg (the kernel's limit is 1024)


def _drop(chunks: list[bytes | memoryview], n: int) -> list[bytes | memoryview]:
    """``chunks`` without their first ``n`` bytes."""
    i = 0
    while i < len(chunks) and n >= len(chunks[i]):
        n -= len(chunks[i])
        i += 1
    if i == len(chunks):
        return []
    rest = chunks[i:] if i else list(chunks)
    if n:
        rest[0] = memoryview(rest[0])[n:]
    return rest


class TransportIO:
    """Reads and writes of one connection (see the module docstring)."""

    def __init__(self, transport: trio.abc.Stream) -> None:
        self.transport = transport
        prefix = b""
        inner = transport
        unwrap = getattr(transport, "unwrap_prefix", None)
        if unwrap is not None:  # a stream whose first bytes were read to sniff the protocol
            prefix, inner = unwrap()
        self._prefix = prefix
        self._tsock = inner.socket if isinstance(inner, trio.SocketStream) else None
        self._sock: socket.socket | None = None
        if self._tsock is not None:
            self._sock = socket.socket(fileno=os.dup(self._tsock.fileno()))
            self._sock.setblocking(False)
        else:
            self._prefix = b""  # the wrapper hands out its own prefix

    @property
    def direct(self) -> bool:
        """True when writes can be attempted synchronously (:meth:`try_send`)."""
        return self._sock is not None

    def try_send(self, chunks: list[bytes | memoryview]) -> list[bytes | memoryview]:
        """Write what the kernel accepts without blocking (one gathering write, no
        joining copy); returns what is left of ``chunks`` (direct only)."""
        sock = self._sock
        assert sock is not None
        if len(chunks) == 1:  # the common case: one buffer
            data = chunks[0]
            try:
                sent = sock.send(data)
            except BlockingIOError:
                return chunks
            return [] if sent == len(data) else [memoryview(data)[sent:]]
        while chunks:
            try:
                sent = sock.sendmsg(chunks[:_MAX_IOV])
            except BlockingIOError:
                return chunks
            chunks = _drop(chunks, sent)
            if sent == 0:
                return chunks
        return chunks

    async def send_all(self, chunks: list[bytes | memoryview]) -> None:
        if self._sock is None:
            await self.transport.send_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            return
        chunks = self.try_send(chunks)
        while chunks:
            try:
                await trio.lowlevel.wait_writable(self._tsock)
            except trio.ClosedResourceError:
                if self._tsock.fileno() == -1:
                    raise
                continue  # interrupt_reader() woke every waiter: not a close
            chunks = self.try_send(chunks)

    async def receive_some(self, max_bytes: int) -> bytes | None:
        """Bytes read (``b""`` at end of stream), or None if :meth:`interrupt_reader`
        woke the wait (direct only)."""
        if self._sock is None:
            return await self.transport.receive_some(max_bytes)
        if self._prefix:
            await trio.lowlevel.checkpoint()
            data, self._prefix = self._prefix, b""
            return data
        while True:
            try:
                await trio.lowlevel.wait_readable(self._tsock)
            except trio.ClosedResourceError:
                if self._tsock.fileno() == -1:
                    raise  # really closed
                return None  # interrupted
            try:
                return self._sock.recv(max_bytes)
            except BlockingIOError:
                continue

    def interrupt_reader(self) -> None:
        """Wake the task waiting in :meth:`receive_some` (it returns None), closing
        nothing: trio's ``notify_closing`` wakes every waiter of the descriptor (a
        writer waiting for room just waits again) and the next wait re-registers it.
        Far cheaper, for the rare wake-up, than a cancel scope around every read."""
        if self._tsock is not None and self._tsock.fileno() != -1:
            trio.lowlevel.notify_closing(self._tsock)

    def close(self) -> None:
        """Close the duplicate descriptor (the connection closes once its owner closes too)."""
        if self._sock is not None:
            self._sock.close()
