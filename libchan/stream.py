"""Byte streams: raw bytes carried beside messages (attach, stdio, files).

Every libchan byte stream is a :class:`trio.abc.HalfCloseableStream`:
``send_all``, ``receive_some``, ``send_eof`` and ``aclose``.

Three directions exist, as in Go libchan (ext codes 1/2/3 of its profile):

* duplex -- both sides read and write (:func:`stream_pipe` ends, sockets);
* read-only -- the holder only reads (wrap a stream in :class:`ReadOnly`);
* write-only -- the holder only writes (wrap a stream in :class:`WriteOnly`).

When a message sent over a session holds a byte stream, the peer receives a
byte stream of the *same* direction, and the session copies bytes between the
local object and the network. So to let a peer read your local data, send
``ReadOnly(local)``; to let a peer write into a local sink, send
``WriteOnly(local)``; to give a peer both, send the duplex stream itself.
Any ``trio.abc.Stream`` is sent as duplex, a bare ``trio.abc.ReceiveStream``
as read-only and a bare ``trio.abc.SendStream`` as write-only.
"""

from __future__ import annotations

import operator
from typing import Literal

import trio

from .compat.trio_cancel import must_checkpoint
from .engine.outbox import Outbox
from .errors import SessionClosedError, broken_error
from .forward import Abortable, Forwarded, Spliceable

__all__ = [
    "ByteStream",
    "ReadOnly",
    "WriteOnly",
    "stream_pipe",
    "PipeStream",
    "stream_direction",
    "Direction",
]

Direction = Literal["duplex", "read", "write"]


class ByteStream(trio.abc.HalfCloseableStream):
    """Base class of libchan's byte streams; ``direction`` tells what the holder may do."""

    direction: Direction = "duplex"

    @property
    def readable(self) -> bool:
        return self.direction in ("duplex", "read")

    @property
    def writable(self) -> bool:
        return self.direction in ("duplex", "write")


class _Wrapped(ByteStream):
    def __init__(self, inner: trio.abc.AsyncResource) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream is read-only")
        await self.inner.send_all(data)  # type: ignore[attr-defined]

    async def wait_send_all_might_not_block(self) -> None:
        if not self.writable:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream is read-only")
        await self.inner.wait_send_all_might_not_block()  # type: ignore[attr-defined]

    async def send_eof(self) -> None:
        if not self.writable:
            await trio.lowlevel.checkpoint()
            return
        send_eof = getattr(self.inner, "send_eof", None)
        if send_eof is not None:
            await send_eof()
        else:
            await self.inner.aclose()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if not self.readable:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this byte stream is write-only")
        return await self.inner.receive_some(max_bytes)  # type: ignore[attr-defined,no-any-return]  # (readable: inner is a ReceiveStream)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _abort(self, reason: str | BaseException = "the other side of a forwarded stream broke") -> bool:
        """Abort the wrapped stream if it can be (a stream pipe end), so that its
        reader sees the failure rather than a clean end of stream; False if it
        cannot (then the forwarder just closes it)."""
        if not isinstance(self.inner, Abortable):
            return False
        return self.inner._abort(reason) is not False

    def _gone(self, exc: BaseException) -> None:
        if isinstance(self.inner, Forwarded):
            self.inner._gone(exc)

    async def _splice_to(self, dst: trio.abc.SendStream) -> str:
        if self.readable and isinstance(self.inner, Spliceable):
            return await self.inner._splice_to(dst)
        return "no"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class ReadOnly(_Wrapped):
    """Mark ``inner`` (a receive stream) as read-only: a peer given it may only read."""

    direction: Direction = "read"


class WriteOnly(_Wrapped):
    """Mark ``inner`` (a send stream) as write-only: a peer given it may only write."""

    direction: Direction = "write"


def immutable_view(data: bytes | bytearray | memoryview) -> memoryview:
    """A byte view of ``data`` that nobody can change under it: ``bytes``, or a view
    of ``bytes``, as they are (slices of it are never copied); anything else
    (``bytearray``, views of it) copied once. Byte streams queue such views."""
    if isinstance(data, bytes):
        return memoryview(data)
    if isinstance(data, memoryview) and isinstance(data.obj, bytes) and data.c_contiguous:
        return data if data.format == "B" and data.ndim == 1 else data.cast("B")
    return memoryview(bytes(data))


def checked_max_bytes(max_bytes: int | None) -> int | None:
    """Validate ``receive_some``'s argument as trio's streams do: None, or an
    integer (``TypeError`` otherwise, e.g. for 1.5) of at least 1 (``ValueError``)."""
    if max_bytes is None:
        return None
    max_bytes = operator.index(max_bytes)
    if max_bytes < 1:
        raise ValueError("max_bytes must be >= 1")
    return max_bytes


def stream_direction(obj: object) -> Direction | None:
    """Return the direction a byte-stream object is sent as, or None if it is not one."""
    if isinstance(obj, ByteStream):
        return obj.direction
    if isinstance(obj, trio.abc.Stream):
        return "duplex"
    if isinstance(obj, trio.abc.ReceiveStream):
        return "read"
    if isinstance(obj, trio.abc.SendStream):
        return "write"
    return None


class _OneWay:
    """One direction of an in-memory stream pipe: a bounded queue of immutable chunks
    (slices of the writer's ``bytes``, never copied inside the pipe)."""

    def __init__(self, max_buffer: int) -> None:
        self.buf = Outbox()
        self.max_buffer = max_buffer
        self.eof = False  # writer finished
        self.broken: str | BaseException | None = None  # writer aborted: the reader gets BrokenResourceError
        self.reader_closed = False
        #: Why the reading end went away, when it was forwarded into a session that
        #: ended: the writer gets SessionClosedError instead of the plain broken pipe.
        self.gone: SessionClosedError | None = None
        self.lot = trio.lowlevel.ParkingLot()
        #: Where the writer's bytes go directly once the reading end is forwarded
        #: (PipeStream._splice_to), instead of through ``buf``.
        self.sink: trio.abc.SendStream | None = None
        self.writing = False  # the writer is inside sink.send_all

    def reader_gone(self) -> trio.BrokenResourceError:
        """The error for a write after the reading end went away."""
        if self.gone is not None:
            return broken_error(self.gone)
        return trio.BrokenResourceError("the other end of the stream was closed")

    def forwarded_into(self, exc: BaseException) -> None:
        """The session stream the reading end was forwarded into failed with ``exc``."""
        self.reader_closed = True
        if isinstance(exc, SessionClosedError) and self.gone is None:
            self.gone = exc

    def take(self, max_bytes: int | None) -> bytes:
        """Remove and return up to ``max_bytes`` (all if None) queued bytes (one copy at most)."""
        buf = self.buf
        chunk = buf.take(len(buf) if max_bytes is None else min(max_bytes, len(buf)))
        return chunk if type(chunk) is bytes else bytes(chunk)


class PipeStream(ByteStream):
    """One end of an in-memory duplex byte stream made by :func:`stream_pipe`."""

    def __init__(self, incoming: _OneWay, outgoing: _OneWay) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            if must_checkpoint():
                await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("this stream end was closed")
            if self._out.eof:
                raise trio.ClosedResourceError("send_eof() was called on this stream end")
            view = immutable_view(data)  # queued as slices, never copied again
            out = self._out
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("this stream end was closed")
                if out.reader_closed:
                    raise out.reader_gone()
                if not view:
                    break
                if out.sink is not None and not out.buf:
                    # the reading end is spliced into a session (and drained): write there
                    await self._send_to_sink(view)
                    break
                room = out.max_buffer - len(out.buf)
                if room > 0:
                    part = view[:room]
                    out.buf.append(part)
                    view = view[room:]
                    out.lot.unpark_all()
                    continue
                await out.lot.park()
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def _send_to_sink(self, view: memoryview) -> None:
        """send_all while the other end is spliced into a session's byte stream."""
        out = self._out
        assert out.sink is not None
        out.writing = True
        try:
            await out.sink.send_all(view)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            out.forwarded_into(exc)
            raise out.reader_gone() from None
        finally:
            out.writing = False
            if out.eof or out.reader_closed:
                out.lot.unpark_all()  # a forwarder waits for this send to end

    async def _splice_to(self, dst: trio.abc.SendStream) -> str:
        """Forward what the other end writes into ``dst`` (a session's byte stream),
        letting the writer's ``send_all`` call ``dst`` itself once the buffer is
        drained: no copy into the pipe and no task hop per chunk. Returns
        ``"eof"`` at the writer's end of stream (no EOF sent to ``dst``) or
        ``"gone"`` if ``dst`` failed (the writer's next send fails); raises like
        ``receive_some`` if the writer broke the stream."""
        inq = self._in
        try:
            while True:
                if inq.buf and not inq.writing:
                    inq.sink = None  # what was buffered goes first, through here
                    chunk = inq.take(None)
                    inq.lot.unpark_all()
                    try:
                        await dst.send_all(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        inq.forwarded_into(exc)
                        return "gone"
                    continue
                if inq.broken is not None:
                    raise broken_error(inq.broken)
                if inq.reader_closed and not inq.writing:
                    return "gone"
                if (inq.eof or self._closed) and not inq.writing:
                    return "eof"
                if inq.sink is None and not inq.buf:
                    inq.sink = dst  # from now on the writer writes to dst itself
                    inq.lot.unpark_all()  # (a writer waiting for room switches to dst)
                await inq.lot.park()
        finally:
            inq.sink = None

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            out = self._out
            if must_checkpoint():
                await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("this stream end was closed")
            if out.sink is not None and not out.reader_closed:
                await out.sink.wait_send_all_might_not_block()
                return
            while not self._closed and not out.reader_closed and out.sink is None and len(out.buf) >= out.max_buffer:
                await out.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this stream end was closed")
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("this stream end was closed")
        self._out.eof = True
        self._out.lot.unpark_all()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        max_bytes = checked_max_bytes(max_bytes)
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            if must_checkpoint():
                await trio.lowlevel.checkpoint()
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("this stream end was closed")
                if self._in.buf:
                    chunk = self._in.take(max_bytes)
                    self._in.lot.unpark_all()
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return chunk
                if self._in.broken is not None:
                    raise broken_error(self._in.broken)
                if self._in.eof:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return b""
                await self._in.lot.park()
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.eof = True
            self._in.reader_closed = True
            self._in.buf.clear()
            self._in.lot.unpark_all()
            self._out.lot.unpark_all()
        await trio.lowlevel.checkpoint()

    def _abort(self, reason: str | BaseException = "the other side of a forwarded stream broke") -> None:
        """Close this end so that the other end's reads fail (BrokenResourceError)
        instead of seeing a clean end of file; used when a stream forwarded into
        this pipe broke."""
        if self._out.broken is None and not self._out.eof:
            self._out.broken = reason
        self._closed = True
        self._out.eof = True
        if isinstance(reason, BaseException):
            self._in.forwarded_into(reason)  # (a session that ended: the writer here is told why)
        self._in.reader_closed = True
        self._in.buf.clear()
        self._in.lot.unpark_all()
        self._out.lot.unpark_all()

    def _gone(self, exc: BaseException) -> None:
        """What this end's bytes were forwarded into failed with ``exc``: the other
        end's writer learns why (SessionClosedError if the session ended)."""
        self._in.forwarded_into(exc)
        self._in.lot.unpark_all()

    def __repr__(self) -> str:
        return f"<libchan.PipeStream at {id(self):#x}>"


def stream_pipe(max_buffer: int = 65536) -> tuple[PipeStream, PipeStream]:
    """Return two connected in-memory duplex byte-stream ends.

    Bytes written into one end are read from the other. At most
    ``max_buffer`` bytes wait unread per direction; beyond that ``send_all``
    blocks (backpressure).
    """
    if max_buffer < 1:
        raise ValueError("max_buffer must be >= 1")
    a_to_b = _OneWay(max_buffer)
    b_to_a = _OneWay(max_buffer)
    return PipeStream(b_to_a, a_to_b), PipeStream(a_to_b, b_to_a)
