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
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self.error: Exception | None = None
        #: True once the end marker (0xf6) was read.
        self.ended = False

    @property
    def buffered(self) -> int:
        """Bytes held for an item that is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[list[tuple[bytes, int]], int]:
        if self.error is not None:
            raise self.error
        if not self._buf and not self.ended and type(data) is bytes:
            # the common case of a latency-bound exchange: exactly one whole item
            body = sole_bstr(data)
            if body is not None and len(body) <= self.max_size:
                return [(body, len(data))], 0
        out: list[tuple[bytes, int]] = []
        try:
            free = self._parse(data, out)
        except (RemoteProtocolError, MessageTooLargeError) as exc:
            self.error = exc
            self._buf.clear()
            if not out:
                raise
            return out, 0
        return out, free

    def _parse(self, data: bytes | memoryview, out: list[tuple[bytes, int]]) -> int:
        # Parse straight from ``data`` when nothing is pending (no copy into the
        # buffer); only an incomplete trailing item is kept. An item left pending
        # by the last read is completed first with just the bytes it lacks.
        if self._buf and len(data) > 64:
            data = self._complete_pending(data, out)
            if not data:
                return 0
        direct = not self._buf
        buf: bytes | bytearray | memoryview
        if direct:
            buf = data
        else:
            buf = self._buf
            buf += data
        if direct and type(data) is bytes:
            free, pos = self._scan(data, data, out)  # (buf is data) slicing bytes copies once, like bytes(view[...])
        else:
            view = memoryview(buf)
            try:
                free, pos = self._scan(buf, view, out)
            finally:
                view.release()
        if direct:
            if pos < len(data):
                self._buf = bytearray(data[pos:])
        elif pos:
            del self._buf[:pos]
        return free

    def _complete_pending(self, data: bytes | memoryview, out: list[tuple[bytes, int]]) -> bytes | memoryview:
        """Add to the pending incomplete item only what it lacks from ``data``; if
        that completes it, output it and return the rest of ``data`` (a view, not
        a copy), else keep everything and return ``b""``. (The pending bytes always
        begin with a byte-string head: nothing else is left incomplete.)"""
        buf = self._buf
        info = buf[0] & 0x1F
        hlen = 1 if info < 24 else 1 + (1 << (info - 24))
        view = memoryview(data)
        if len(buf) < hlen:
            take = hlen - len(buf)
            buf += view[:take]
            view = view[take:]
            if len(buf) < hlen:
                return b""
        length = info if info < 24 else int.from_bytes(buf[1:hlen], "big")
        if length > self.max_size:
            raise MessageTooLargeError(length, self.max_size, local=False)
        need = hlen + length - len(buf)
        if len(view) < need:
            buf += view
            return b""
        buf += view[:need]
        out.append((bytes(buf[hlen:]), hlen + length))
        buf.clear()
        return view[need:]

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
        return not self._buf
