"""Sans-IO framing of a stream body: a CBOR sequence of byte strings.

The body of every libchan HTTP/2 stream (both directions) is an RFC 8742 CBOR
sequence whose items are:

* a definite-length byte string (major type 2): one unit of payload -- one
  encoded message on a channel, one chunk of data on a byte stream;
* the simple value ``undefined`` (the single byte ``0xf7``): a keepalive that
  the receiving application never sees;
* the simple value ``null`` (the single byte ``0xf6``): the end of this
  direction, sent by an HTTP/2 *server* that finishes its direction while the
  client's is still open (a complete response would let a proxy cancel the
  rest of the request). Only keepalives may follow it.

Anything else is a :class:`~libchan.RemoteProtocolError`.
"""

from __future__ import annotations

from ..errors import MessageTooLargeError, RemoteProtocolError

__all__ = ["KEEPALIVE", "END_MARKER", "frame_header", "sole_bstr", "encode_frame", "FrameDecoder"]

KEEPALIVE = b"\xf7"
END_MARKER = b"\xf6"


def _small_header(length: int) -> bytes:
    return bytes((0x40 | length,)) if length < 24 else bytes((0x58, length))


_SMALL_HEADERS = [_small_header(n) for n in range(0x100)]


def frame_header(length: int) -> bytes:
    """CBOR byte-string header for a payload of ``length`` bytes."""
    if length < 0x100:
        return _SMALL_HEADERS[length]
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    if length < 0x100000000:
        return b"\x5a" + length.to_bytes(4, "big")
    return b"\x5b" + length.to_bytes(8, "big")


def sole_bstr(data: bytes) -> bytes | None:
    """The contents of ``data`` if it is exactly one CBOR byte string whose header
    has at most 3 bytes (the commonest item: a whole frame, or a message that is
    a short ``bytes``), found without the general decoders; else None."""
    n = len(data)
    first = data[0] if n else 0
    if first < 0x58:
        if first < 0x40:
            return None
        head, length = 1, first - 0x40
    elif first == 0x58 and n > 1:
        head, length = 2, data[1]
    elif first == 0x59 and n > 2:
        head, length = 3, (data[1] << 8) | data[2]
    else:
        return None
    return data[head:] if head + length == n else None


#: A piece of a pending item at least this long is kept as it came (not copied).
_KEEP_WHOLE = 16 * 1024
#: Smaller pieces are gathered into blocks of this many bytes.
_BLOCK = 64 * 1024


def encode_frame(payload: bytes) -> bytes:
    """One framed payload: header followed by the payload."""
    return frame_header(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder of a framed stream body.

    ``feed(data)`` returns ``(payloads, free)``: the complete payloads now
    available, each as ``(bytes, wire_size)``, and the number of bytes that
    carried no payload (keepalives), which the caller may acknowledge at once.
    A framing error raises; if complete payloads preceded the bad bytes in the
    same call, they are returned first and the error is kept in ``error``
    (and raised by every later ``feed``).

    An item that is not complete yet is held as the pieces it arrived in
    (pieces of :data:`_KEEP_WHOLE` bytes or more are kept as they are, smaller
    ones gathered into blocks of :data:`_BLOCK`), and joined once, when its last
    byte arrives: it takes what it holds, with no spare capacity left by a
    growing buffer and no copy of its beginning at every read.
    """

    # (slots, and the pending item's buffers made when an item is pending: every stream
    # has a decoder, and most of them never hold a partial item)
    __slots__ = ("max_size", "pending", "_head", "_hlen", "_length", "_parts", "_tail", "_have", "error", "ended")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        #: An item is pending: its header (``_head``, all or part) was read.
        self.pending = False
        self._head: bytearray | None = None
        self._hlen = 0  # the pending item's header size (0 until its first byte is in)
        self._length = -1  # its payload size (-1 until its whole header is in)
        self._parts: list[bytes] | None = None  # payload pieces so far, in order ...
        self._tail: bytearray | None = None  # ... then small pieces gathered here
        self._have = 0  # payload bytes in _parts and _tail
        self.error: Exception | None = None
        #: True once the end marker (0xf6) was read.
        self.ended = False

    @property
    def buffered(self) -> int:
        """Bytes held for an item that is not complete yet."""
        return (len(self._head) if self._head is not None else 0) + self._have

    def feed(self, data: bytes | memoryview) -> tuple[list[tuple[bytes, int]], int]:
        if self.error is not None:
            raise self.error
        if not self.pending and not self.ended and type(data) is bytes:
            # the common case of a latency-bound exchange: exactly one whole item
            body = sole_bstr(data)
            if body is not None and len(body) <= self.max_size:
                return [(body, len(data))], 0
        out: list[tuple[bytes, int]] = []
        try:
            free = self._parse(data, out)
        except (RemoteProtocolError, MessageTooLargeError) as exc:
            self.error = exc
            self._reset()
            if not out:
                raise
            return out, 0
        return out, free

    def _parse(self, data: bytes | memoryview, out: list[tuple[bytes, int]]) -> int:
        # Parse straight from ``data`` (no copy into a buffer); only an incomplete
        # trailing item is kept. A pending item is completed first with just the
        # bytes it lacks.
        if self.pending:
            data = self._complete_pending(data, out)
            if not len(data):
                return 0
        if type(data) is bytes:
            free, pos = self._scan(data, data, out)  # slicing bytes copies once, like bytes(view[...])
        else:
            view = memoryview(data)
            try:
                free, pos = self._scan(view, view, out)
            finally:
                view.release()
        if pos < len(data):
            # (an incomplete item always begins with a byte-string head: _scan stops
            # at nothing else)
            self.pending = True
            self._complete_pending(data if not pos else memoryview(data)[pos:], out)
        return free

    def _complete_pending(self, data: bytes | memoryview, out: list[tuple[bytes, int]]) -> bytes | memoryview:
        """Add to the pending item what it lacks from ``data``; if that completes it,
        output it and return the rest of ``data`` (a view, not a copy), else keep
        all of ``data`` and return ``b""``."""
        view = memoryview(data)
        length = self._length
        if length < 0:
            head = self._head
            if head is None:
                info = view[0] & 0x1F
                self._hlen = 1 if info < 24 else 1 + (1 << (info - 24))
                head = self._head = bytearray()
            take = self._hlen - len(head)
            head += view[:take]
            view = view[take:]
            if len(head) < self._hlen:
                return b""
            length = head[0] & 0x1F if self._hlen == 1 else int.from_bytes(head[1:], "big")
            if length > self.max_size:
                raise MessageTooLargeError(length, self.max_size, local=False)
            self._length = length
        need = length - self._have
        if len(view) < need:
            self._keep(view, data)
            return b""
        piece = view[:need]
        if self._have:
            parts = self._parts if self._parts is not None else []
            if self._tail:
                parts.append(bytes(self._tail))
            parts.append(piece)  # type: ignore[arg-type]  # (join takes any buffer)
            payload = b"".join(parts)
        else:
            payload = bytes(piece)
        out.append((payload, self._hlen + length))
        self._reset()
        return view[need:]

    def _keep(self, view: memoryview, data: bytes | memoryview) -> None:
        """Hold ``view`` (all that is left of ``data``) as part of the pending payload."""
        n = len(view)
        if not n:
            return
        self._have += n
        parts = self._parts
        if parts is None:
            parts = self._parts = []
        if n >= _KEEP_WHOLE:
            if self._tail:
                parts.append(bytes(self._tail))
                self._tail = None
            # a piece that is all of a bytes object is kept as it is (no copy)
            parts.append(data if n == len(data) and type(data) is bytes else bytes(view))
            return
        tail = self._tail
        if tail is None:
            tail = self._tail = bytearray()
        tail += view
        if len(tail) >= _BLOCK:
            parts.append(bytes(tail))
            self._tail = None

    def _reset(self) -> None:
        self.pending = False
        self._head = None
        self._hlen = 0
        self._length = -1
        self._parts = None
        self._tail = None
        self._have = 0

    def _scan(self, buf: bytes | bytearray | memoryview, view: bytes | memoryview, out: list[tuple[bytes, int]]) -> tuple[int, int]:
        free = 0
        pos = 0
        n = len(buf)
        copying = type(view) is bytes  # slicing bytes copies already
        max_size = self.max_size
        append = out.append
        while pos < n:
            first = buf[pos]
            if 0x40 <= first <= 0x58 and not self.ended:
                # the common item: a byte string shorter than 256 bytes (a small message)
                if first < 0x58:
                    start = pos + 1
                    end = start + first - 0x40
                elif pos + 1 < n:
                    start = pos + 2
                    end = start + buf[pos + 1]
                else:
                    break
                if end - start > max_size:  # known from the header alone
                    raise MessageTooLargeError(end - start, max_size, local=False)
                if end > n:
                    break
                # (copying: view is bytes, and so is its slice)
                append((view[start:end] if copying else bytes(view[start:end]), end - pos))  # type: ignore[arg-type]
                pos = end
                continue
            if first == 0xF7:
                pos += 1
                free += 1
                continue
            if self.ended:
                raise RemoteProtocolError("stream framing: data after the end marker 0xf6")
            if first == 0xF6:
                pos += 1
                free += 1
                self.ended = True
                continue
            if first & 0xE0 != 0x40:
                raise RemoteProtocolError(
                    f"stream framing: expected a CBOR byte string, 0xf6 or 0xf7, got initial byte {first:#04x}"
                )
            info = first & 0x1F
            if info < 24:
                hlen, length = 1, info
            elif info <= 27:
                size = 1 << (info - 24)
                hlen = 1 + size
                if pos + hlen > n:
                    break
                length = int.from_bytes(buf[pos + 1 : pos + hlen], "big")
            else:
                raise RemoteProtocolError(
                    "stream framing: indefinite-length or reserved byte-string header"
                    f" {first:#04x}"
                )
            if length > self.max_size:
                raise MessageTooLargeError(length, self.max_size, local=False)
            end = pos + hlen + length
            if end > n:
                break
            # (no local name for a memoryview slice: a traceback would keep it exported)
            # (copying: view is bytes, and so is its slice)
            out.append((view[pos + hlen : end] if copying else bytes(view[pos + hlen : end]), hlen + length))  # type: ignore[arg-type]
            pos = end
        return free, pos

    def at_boundary(self) -> bool:
        """True when no partial item is buffered (a clean place for the body to end)."""
        return not self.pending
