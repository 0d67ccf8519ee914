"""The byte pipe under a :class:`~libchan.engine.link.Link`.

:class:`TransportIO` reads and writes any trio stream. For a plain socket
(TCP or unix, what ``tcp://`` and ``unix://`` give) it talks to the OS socket
itself, the way an asyncio transport does:

* ``try_send`` writes what the kernel takes *now*, synchronously, so a task
  that just queued a message can put it on the wire without waking the writer
  task (one scheduler pass less per message on a latency-bound exchange); the
  rest waits in :attr:`TransportIO.backlog` for ``send_all``;
* ``receive_some`` waits for readability and reads once, without the extra
  yield that trio's ``SocketStream`` adds after every successful call; the
  wait is the only suspension point, so a cancelled read has consumed nothing.

A ``trio.SSLStream`` over such a socket (what ``tls://`` gives), once its
handshake is done, is driven the same way: the stream's own ``ssl.SSLObject``
and memory BIOs encrypt and decrypt, and the ciphertext goes straight to and
from the socket (:class:`~libchan.compat.trio_ssl.TlsState`). trio's ``SSLStream``
keeps every round of its protocol behind several awaits and locks; here one read
or write is one synchronous step. This uses ``SSLStream`` internals, all of them in
:mod:`libchan.compat.trio_ssl` (checked once by its ``take_over``; anything
unexpected falls back to the stream's own methods). With ``fast_paths=False``
every stream goes through its own trio methods.
The stream is left consistent, so its ``aclose`` works as usual afterwards.

It reads and writes the socket's own descriptor with ``os.read``/``os.write``/
``os.writev`` (public API only; trio keeps its sockets non-blocking), taking the
descriptor from the trio socket at each call: once the owner closed the stream it is
-1 and the call fails with ``OSError`` (EBADF), never reaching a reused descriptor. No
duplicate descriptor is made, so a connection costs one descriptor. The trio stream is
still the one that waits for readiness and is closed by its owner.
Anything else (in-memory streams, TLS over anything but a socket) goes through
the trio stream unchanged.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any, Iterator, cast

import trio

from ..compat.trio_epoll import ReadableWait, readable_wait
from ..compat.trio_ssl import TlsState, take_over

__all__ = ["TransportIO"]

_MAX_IOV = 512  # buffers per sendmsg (the kernel's limit is 1024)
#: One buffer for the reads of every connection while they bring little (their bytes are
#: copied out at once: no await comes between a read and its copy, and trio runs one
#: task at a time). Reading into a new object of ``max_bytes`` instead allocates 256 KiB
#: per read, which glibc serves with mmap, mremap and munmap (three more syscalls and
#: page faults) until its mmap threshold rises, if ever.
_SHARED_READ = memoryview(bytearray(256 * 1024))
#: A read that brings at least this much: the next one reads into its own new object
#: (a bulk transfer: no copy), until one brings less.
_BIG_READ = 64 * 1024
_TLS_READ = 256 * 1024  # plaintext taken from the SSL object per call
#: At most this much goes into a TLS memory BIO at once, each way (a socket read of
#: ciphertext, or plaintext to encrypt), and is taken out before the next: an OpenSSL
#: memory BIO keeps the largest size it ever held for the connection's life (a 1 MB
#: message sent at once made both ends of a TLS connection keep 1.5 MB).
_TLS_BIO_PIECE = 64 * 1024
_TLS_JOIN = 16 * 1024  # smaller pieces of one write are joined (a TLS record holds 16 KiB)


def _pieces(data: bytes | memoryview) -> Iterator[bytes | memoryview]:
    """``data`` in pieces of at most :data:`_TLS_BIO_PIECE` bytes (itself if it is no longer)."""
    if len(data) <= _TLS_BIO_PIECE:
        yield data
        return
    view = memoryview(data)
    for at in range(0, len(view), _TLS_BIO_PIECE):
        yield view[at : at + _TLS_BIO_PIECE]


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

    # (slots: one per connection)
    __slots__ = ("backlog", "_big_reads", "_prefix", "_readable", "_tls", "_tls_ended", "_tls_error", "transport",
        "_tsock", "_write", "_writev")

    def __init__(self, transport: trio.abc.Stream, *, fast_paths: bool = True) -> None:
        self.transport = transport
        prefix = b""
        inner = transport
        unwrap = getattr(transport, "unwrap_prefix", None)
        if unwrap is not None:  # a stream whose first bytes were read to sniff the protocol
            prefix, inner = unwrap()
        self._prefix = prefix
        self._tls: TlsState | None = None
        self._tls_error: BaseException | None = None  # raised by the next read
        self._tls_ended = False  # close_notify was read: every later read is b""
        self._tsock: Any = None
        #: The socket's read wait without trio's per-wait objects (compat/trio_epoll.py),
        #: made at the first wait; False where it cannot be had.
        self._readable: ReadableWait | None | bool = None
        self._big_reads = False  # (see _BIG_READ)
        tls = take_over(inner) if fast_paths else None
        if tls is not None:
            self._tls, socket_stream = tls
            self._tsock = socket_stream.socket
        elif isinstance(inner, trio.SocketStream) and fast_paths:
            self._tsock = inner.socket
        #: What was handed to :meth:`try_send` (ciphertext under TLS) that the
        #: kernel did not take yet; :meth:`send_all` sends it first.
        self.backlog: list[bytes | memoryview] = []
        # (instance attributes: a test may wrap them to watch every write)
        self._write = os.write
        self._writev = os.writev
        if self._tsock is not None:
            if self._tls is not None:
                # TLS 1.3 session tickets trio held back until the first write
                delayed = self._tls.take_delayed_output()
                if delayed:
                    self.backlog.append(delayed)
        else:
            self._prefix = b""  # the wrapper hands out its own prefix

    @property
    def direct(self) -> bool:
        """True when writes can be attempted synchronously (:meth:`try_send`)."""
        return self._tsock is not None

    @property
    def tls(self) -> bool:
        """True when this drives a TLS stream's encryption itself."""
        return self._tls is not None

    def try_send(self, chunks: list[bytes | memoryview]) -> None:
        """Write what the kernel accepts without blocking (one gathering write, no
        joining copy); the rest goes to :attr:`backlog` (direct only)."""
        tsock = self._tsock
        assert tsock is not None
        if self._tls is not None:
            chunks = self._encrypt(chunks)
        if self.backlog:
            chunks = self.backlog + chunks
            self.backlog = []
        if len(chunks) == 1:  # the common case: one buffer
            data = chunks[0]
            try:
                sent = self._write(tsock.fileno(), data)
            except BlockingIOError:
                self.backlog = chunks
                return
            if sent != len(data):
                self.backlog = [memoryview(data)[sent:]]
            return
        while chunks:
            try:
                sent = self._writev(tsock.fileno(), chunks[:_MAX_IOV])
            except BlockingIOError:
                break
            chunks = _drop(chunks, sent)
            if sent == 0:
                break
        self.backlog = chunks

    def _encrypt(self, chunks: list[bytes | memoryview]) -> list[bytes | memoryview]:
        tls = self._tls
        assert tls is not None
        # Every write to the SSL object is at most _TLS_BIO_PIECE, and what it makes is
        # taken out of the memory BIO before the next (see _TLS_BIO_PIECE).
        obj, outgoing = tls.obj, tls.outgoing
        out: list[bytes | memoryview] = [outgoing.read()] if outgoing.pending else []  # (what was there first goes first)

        def put(data: bytes | memoryview) -> None:
            obj.write(data)
            out.append(outgoing.read())

        try:
            small: list[bytes | memoryview] = []  # joined: one record, not one per piece
            joined = 0
            for chunk in chunks:
                n = len(chunk)
                if n < _TLS_JOIN:
                    small.append(chunk)
                    joined += n
                    if joined >= _TLS_BIO_PIECE:
                        put(b"".join(small))
                        small, joined = [], 0
                    continue
                if small:
                    put(b"".join(small))
                    small, joined = [], 0
                for piece in _pieces(chunk):
                    put(piece)
            if joined:  # (SSLObject takes an empty write for EOF)
                put(b"".join(small))
        except ssl.SSLError as exc:
            raise tls.broken(exc) from exc
        return out

    async def send_all(self, chunks: list[bytes | memoryview]) -> None:
        if self._tsock is None:
            # In pieces: a trio.SSLStream (fast paths off, or a stream of the caller's)
            # puts what one send_all gets into its memory BIO at once (see _TLS_BIO_PIECE).
            for piece in _pieces(chunks[0] if len(chunks) == 1 else b"".join(chunks)):
                await self.transport.send_all(piece)
            return
        self.try_send(chunks)
        while self.backlog:
            try:
                await trio.lowlevel.wait_writable(self._tsock)
            except (trio.ClosedResourceError, ValueError):  # (ValueError: closed before the wait)
                if self._tsock.fileno() == -1:
                    raise trio.ClosedResourceError("the connection's socket was closed") from None
                continue  # interrupt_reader() woke every waiter: not a close
            self.try_send([])

    async def receive_some(self, max_bytes: int) -> bytes | None:
        """Bytes read (``b""`` at end of stream), or None if :meth:`interrupt_reader`
        woke the wait (direct only)."""
        if self._tsock is None:
            # (trio.abc.Stream says bytes | bytearray; the engine only reads and slices
            # what it gets, so a bytearray -- trio.testing's memory streams -- does too)
            return cast(bytes, await self.transport.receive_some(max_bytes))
        try:
            data = self._held(max_bytes)
        except BaseException:
            await trio.lowlevel.checkpoint()  # (a checkpoint, whatever it raises)
            raise
        if data is not None:  # (no need to wait for the socket)
            await trio.lowlevel.checkpoint()
            return data
        while True:
            try:
                readable = self._readable
                if readable is None:
                    fd = self._tsock.fileno()
                    readable = self._readable = (readable_wait(fd) if fd != -1 else None) or False
                if readable and self._tsock.fileno() != -1:
                    await cast(ReadableWait, readable).wait()
                else:
                    await trio.lowlevel.wait_readable(self._tsock)
            except (trio.ClosedResourceError, ValueError):  # (ValueError: closed before the wait)
                if self._tsock.fileno() == -1:
                    raise trio.ClosedResourceError("the connection's socket was closed") from None
                return None  # interrupted
            data = self._read_socket(max_bytes)
            if data is not None:
                return data

    def read_nowait(self, max_bytes: int) -> bytes | None:
        """What :meth:`receive_some` would return now without waiting (direct only),
        or None if nothing can be read yet."""
        if self._tsock is None:
            return None
        data = self._held(max_bytes)
        if data is None and self._tsock.fileno() != -1:
            data = self._read_socket(max_bytes)
        return data

    def _held(self, max_bytes: int) -> bytes | None:
        """What a read returns without the socket: the sniffed prefix, the end or error
        of TLS, plaintext or ciphertext left over (from the handshake, or a read that
        stopped at max_bytes). None: read the socket."""
        data: bytes | None
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        if self._tls_error is not None:
            raise self._tls_error
        if self._tls_ended:
            return b""
        tls = self._tls
        if tls is not None and (tls.incoming.pending or tls.obj.pending()):
            return self._decrypt(max_bytes)
        return None

    def _read_socket(self, max_bytes: int) -> bytes | None:
        """One read of the socket (and, with TLS, what it decrypts to); None: nothing
        yet (it would block, or a TLS record is incomplete)."""
        assert self._tsock is not None
        size = max_bytes if self._tls is None else min(max_bytes, _TLS_BIO_PIECE)  # (see _TLS_BIO_PIECE)
        try:
            if self._big_reads or size > len(_SHARED_READ):
                data = os.read(self._tsock.fileno(), size)
            else:
                n = os.readv(self._tsock.fileno(), (_SHARED_READ[:size],))
                data = bytes(_SHARED_READ[:n])
        except BlockingIOError:
            return None
        self._big_reads = len(data) >= _BIG_READ
        tls = self._tls
        if tls is None:
            return data
        if data:
            tls.incoming.write(data)
            return self._decrypt(max_bytes)
        tls.incoming.write_eof()
        decrypted = self._decrypt(max_bytes)
        if decrypted is None:  # (OpenSSL says so itself; just in case)
            if not tls.ragged_eof_ok:
                raise tls.broken(ssl.SSLEOFError("EOF in the middle of a TLS record"))
            decrypted = b""
        return decrypted

    def _decrypt(self, max_bytes: int) -> bytes | None:
        """Plaintext from the TLS layer: bytes (``b""`` at a clean end) or None
        if a record is incomplete (read the socket again)."""
        tls = self._tls
        assert tls is not None
        parts: list[bytes] = []
        size = 0
        try:
            while size < max_bytes:
                try:
                    part = tls.obj.read(min(max_bytes - size, _TLS_READ))
                except ssl.SSLWantReadError:
                    break
                if not part:  # close_notify was read (Python returns b"" for it): the end
                    self._tls_ended = True
                    if not parts:
                        return b""
                    break
                parts.append(part)
                size += len(part)
        except ssl.SSLZeroReturnError:  # close_notify: the end (after what came before it)
            self._tls_ended = True
            if not parts:
                self._flush_tls_output()
                return b""
        except ssl.SSLError as exc:
            if parts:  # deliver what came before; the error comes with the next read
                self._tls_error = tls.broken(exc)
            elif tls.ragged_eof_ok and isinstance(exc, ssl.SSLEOFError):
                return b""
            else:
                raise tls.broken(exc) from exc
        # a read may make TLS answer (a key update, renegotiation): send it along
        self._flush_tls_output()
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _flush_tls_output(self) -> None:
        tls = self._tls
        assert tls is not None
        if tls.outgoing.pending:
            self.backlog.append(tls.outgoing.read())
            try:
                self.try_send([])
            except OSError:
                pass  # the next write reports it

    def shutdown_write(self) -> None:
        """Half-close a socket read directly: the peer reads to its end what we wrote,
        then end of stream (plain: FIN; TLS: close_notify, after which TLS 1.3 still
        reads what the peer sends). Nothing on another transport."""
        tsock = self._tsock
        if tsock is None or tsock.fileno() == -1:
            return
        tls = self._tls
        if tls is None:
            try:
                tsock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        try:
            tls.obj.unwrap()  # (writes close_notify; the peer's comes later, if ever)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, ValueError, OSError):
            return
        try:
            self._flush_tls_output()
        except OSError:
            pass

    def interrupt_reader(self) -> None:
        """Wake the task waiting in :meth:`receive_some` (it returns None), closing
        nothing: trio's ``notify_closing`` wakes every waiter of the descriptor (a
        writer waiting for room just waits again) and the next wait re-registers it.
        Far cheaper, for the rare wake-up, than a cancel scope around every read."""
        if self._tsock is not None and self._tsock.fileno() != -1:
            trio.lowlevel.notify_closing(self._tsock)
