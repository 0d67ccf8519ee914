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
        items, free = self._frames.feed(data)
        out: list[tuple[Any, int]] = []
        decode = self._decode
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
                return out, free + sum(w for _, w in items[len(out) :])
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
        items = self._decoder.feed(data)
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
