"""Sans-IO decoders of one direction of a stream body, for each wire profile.

Every body decoder has the same shape: ``feed(data)`` returns
``(items, free)`` -- the items now complete, each ``(value, wire_size)``, and
the count of bytes that carried nothing for the application -- and keeps a
fatal error in ``error`` (items decoded before it are still returned).
``ended`` tells that an in-body end marker was read; ``at_boundary()`` that no
partial item is buffered. A value that is a :class:`DecodeFailure` is a
message that could not be decoded but was consumed: the application gets its
error from that ``receive`` and the stream goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..errors import RemoteProtocolError
from .framing import FrameDecoder, sole_bstr

if TYPE_CHECKING:  # (msgpack is imported only by the Go profile)
    from .msgpack_codec import MsgpackStreamDecoder

__all__ = ["DecodeFailure", "FramedMessages", "FramedChunks", "RawChunks", "BodyDecoder"]


class DecodeFailure:
    """A consumed message that failed to decode (recoverable, per message)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class FramedChunks:
    """HTTP/2 profile: byte-string items (chunks of a byte stream, or keepalives only)."""

    __slots__ = ("_frames",)

    def __init__(self, max_size: int) -> None:
        self._frames = FrameDecoder(max_size)

    def feed(self, data: bytes | memoryview) -> tuple[list[tuple[Any, int]], int]:
        return self._frames.feed(data)

    @property
    def error(self) -> Exception | None:
        return self._frames.error

    @property
    def ended(self) -> bool:
        return self._frames.ended

    @property
    def buffered(self) -> int:
        return self._frames.buffered

    @property
    def footprint(self) -> int:
        """Memory the partial item takes (what a budget charges): one copy."""
        return self._frames.buffered

    def at_boundary(self) -> bool:
        return self._frames.at_boundary()


class FramedMessages(FramedChunks):
    """HTTP/2 profile: each byte-string item holds one CBOR message."""

    __slots__ = ("_decode", "_error")

    def __init__(self, max_size: int, decode: Callable[[bytes], Any]) -> None:
        super().__init__(max_size)
        self._decode = decode
        self._error: Exception | None = None

    def feed(self, data: bytes | memoryview) -> tuple[list[tuple[Any, int]], int]:
        if self._error is not None:
            raise self._error
        frames = self._frames
        out: list[tuple[Any, int]] = []
        if type(data) is bytes and not frames.pending and not frames.ended and frames.error is None:
            # Several small messages that are each one short byte string (a burst to
            # one channel): taken in one pass (_short_bstr_messages); the rest, from the
            # first item that is not such a message, goes through the general decoders.
            pos = _short_bstr_messages(data, frames.max_size, out)
            if pos:
                if pos == len(data):
                    return out, 0
                data = memoryview(data)[pos:]
        try:
            items, free = frames.feed(data)
        except Exception:
            if not out:
                raise
            return out, 0  # (as FrameDecoder.feed does: the items before the error; it keeps the error)
        decode = self._decode
        taken = len(out)
        for payload, wire in items:
            # a message that is one byte string needs no decoder (the commonest,
            # a short one, checked here without a call: see sole_bstr)
            first = payload[0] if payload else 0
            if 0x40 <= first < 0x58 and len(payload) == first - 0x3F:
                out.append((payload[1:], wire))
                continue
            body = sole_bstr(payload)
            if body is not None:
                out.append((body, wire))
                continue
            try:
                out.append((decode(payload), wire))
            except Exception as exc:  # a message the peer should not have sent: fatal here
                self._error = exc
                return out, free + sum(w for _, w in items[len(out) - taken :])
        return out, free

    def feed_one(self, data: bytes) -> tuple[Any, int] | None:
        """:meth:`feed` for the usual read of a latency-bound exchange, quicker: if
        ``data`` is exactly one whole item and nothing is pending, its message and
        wire size (a message that fails to decode is a fatal error, kept in
        :attr:`error`, and given as a :class:`DecodeFailure`). Else None, and
        nothing was consumed: use :meth:`feed`."""
        frames = self._frames
        if self._error is not None or frames.pending or frames.ended or frames.error is not None or type(data) is not bytes:
            return None
        n = len(data)
        if 2 < n < 0x102:  # the commonest: a short bytes message, sliced once (as in feed)
            first = data[0]
            start = 2 if first == 0x58 and data[1] == n - 2 else 1 if first - 0x41 == n - 2 and first < 0x58 else 0
            if start and n - start <= frames.max_size:
                m = data[start]
                if 0x40 <= m < 0x58 and n - start == m - 0x3F:
                    return data[start + 1 :], n
                if m == 0x58 and n - start >= 2 and data[start + 1] == n - start - 2:
                    return data[start + 2 :], n
        payload = sole_bstr(data)
        if payload is None or len(payload) > frames.max_size:
            return None
        body = sole_bstr(payload)
        if body is not None:
            return body, len(data)
        try:
            return self._decode(payload), len(data)
        except Exception as exc:  # as in feed: fatal here
            self._error = exc
            return DecodeFailure(exc), len(data)

    @property
    def error(self) -> Exception | None:
        return self._error or self._frames.error


def _short_bstr_messages(data: bytes, max_size: int, out: list[tuple[Any, int]]) -> int:
    """Take the items at the start of ``data`` that are whole, under 256 bytes and each
    one message that is a single short byte string (its header of at most 2 bytes):
    each message's bytes are sliced once out of ``data`` and appended to ``out`` with
    its wire size. Returns where the first other item (or incomplete one) begins.
    (Headers of two bytes are looked at first: a 100-byte message costs a fifth less
    than the other way round, one under 23 bytes a twentieth more.)"""
    n = len(data)
    pos = 0
    append = out.append
    while pos + 1 < n:
        first = data[pos]
        if first == 0x58:  # item header of 2 bytes: a payload of 1 to 255 bytes
            size = data[pos + 1]
            start = pos + 2
        elif 0x40 < first < 0x58:  # of 1 byte: a payload of 1 to 23 bytes
            size = first - 0x40
            start = pos + 1
        else:
            break
        end = start + size
        if end > n or size > max_size or not size:
            break
        m = data[start]
        if m == 0x58:
            if size < 2 or data[start + 1] != size - 2:
                break
            append((data[start + 2 : end], end - pos))
        elif 0x40 <= m < 0x58 and size == m - 0x3F:
            append((data[start + 1 : end], end - pos))
        else:
            break
        pos = end
    return pos


class RawChunks:
    """Go profile: a byte stream's body is the raw bytes, no framing."""

    error: Exception | None = None
    ended = False
    buffered = 0
    footprint = 0

    def feed(self, data: bytes | memoryview) -> tuple[list[tuple[Any, int]], int]:
        if type(data) is not bytes:
            data = bytes(data)  # (a view of a read is not kept)
        return ([(data, len(data))] if data else []), 0

    def at_boundary(self) -> bool:
        return True


class GoMessages:
    """Go profile: concatenated msgpack messages (wraps the msgpack stream decoder)."""

    ended = False

    def __init__(self, decoder: MsgpackStreamDecoder) -> None:
        self._decoder = decoder

    def feed(self, data: bytes) -> tuple[list[tuple[Any, int]], int]:
        decoder = self._decoder
        failures = decoder.failures
        items = decoder.feed(data)
        if decoder.failures == failures:
            return items, 0  # (no message failed: nothing to wrap)
        return [
            ((DecodeFailure(v) if isinstance(v, RemoteProtocolError) else v), w) for v, w in items
        ], 0

    def feed_one(self, data: bytes) -> tuple[Any, int] | None:
        """:meth:`feed` for a read that is exactly one whole message (see
        MsgpackStreamDecoder.decode_sole), quicker; else None, nothing consumed. A message
        that fails is given as a :class:`DecodeFailure`, and the stream goes on, as with
        :meth:`feed` (:attr:`error` stays None)."""
        if type(data) is not bytes:
            return None
        item = self._decoder.decode_sole(data)
        if item is None:
            return None
        if isinstance(item[0], RemoteProtocolError):
            return DecodeFailure(item[0]), item[1]
        return item

    @property
    def error(self) -> Exception | None:
        return self._decoder.error

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    @property
    def footprint(self) -> int:
        """Memory the decoder holds (what a budget charges): the partial message, and
        the buffer of msgpack's Unpacker that finds where it ends."""
        return self._decoder.footprint

    def at_boundary(self) -> bool:
        return self._decoder.at_boundary()


BodyDecoder = FramedChunks | FramedMessages | RawChunks | GoMessages
