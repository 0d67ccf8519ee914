"""Sans-IO SPDY/3 framing, as spoken by Go libchan (``docker/spdystream``).

In the style of h2/h11: plain objects that are fed bytes and hand back frames,
with no sockets and no event loop.

* :class:`FrameParser` -- ``feed(data) -> list[frame]``, one instance per
  *receiving* direction of a connection (it owns that direction's zlib inflate
  context, which every header block of the direction shares, in order).
* :class:`FrameWriter` -- ``serialize(frame) -> bytes``, one instance per
  *sending* direction (it owns the deflate context: level 9, the SPDY/3
  dictionary, ``Z_SYNC_FLUSH`` after every header block, exactly like Go, so
  the first block starts ``78 f9 e3 c6 a7 c2`` and every block ends
  ``00 00 ff ff``).
* Frames are frozen dataclasses: :class:`SynStream`, :class:`SynReply`,
  :class:`RstStream`, :class:`Settings`, :class:`Ping`, :class:`GoAway`,
  :class:`HeadersFrame`, :class:`WindowUpdate`, :class:`Data` and
  :class:`UnknownControl`.

Header blocks
    ``headers`` is a tuple of ``(name, value)`` string pairs in wire order.
    Several values of one name are NUL-joined in the value, exactly as on the
    wire (:func:`split_header_value` splits them). Bytes are decoded as UTF-8
    with ``surrogateescape``, so any byte string survives a parse/serialize
    round trip, and the writer accepts ``bytes`` as well as ``str``.

Metadata of frames read
    Every frame has keyword-only fields that the parser fills in and that take
    no part in ``==``: ``raw_flags`` (the flags byte as read), ``length`` (the
    24-bit length field) and, for control frames, ``version``. Frames with a
    header block also keep ``header_block``: the *decompressed* plain block.
    The writer always writes version 3; it derives the known flag bits from
    the semantic fields (``fin``, ``unidirectional``, ``clear``) and keeps any
    other bits of ``raw_flags`` unchanged.

What the parser checks (anything else is left to the caller)
    Framing: frame lengths (a length above ``max_frame_size`` fails as soon as
    the 8-byte header is in), the exact length of fixed-size control frames,
    the entry count of SETTINGS. Header blocks: zlib errors, truncation,
    trailing bytes, decompressed size (``max_header_block_size``), empty,
    duplicate, non-lowercase or non-UTF-8 names (Go rejects the last three
    too). Violations raise :class:`Spdy3ProtocolError` (a
    :class:`libchan.errors.RemoteProtocolError`); the parser is unusable
    afterwards, as the shared zlib context cannot be trusted any more.

    Deliberately *not* checked, because they are session-level decisions:
    the version field (Go never checks it), zero stream ids, PING id 0,
    RST_STREAM status 0, unknown flag bits, flow-control windows. Unknown
    control frame types (NOOP, CREDENTIAL, ...) come back as
    :class:`UnknownControl`; Go stops reading the connection on them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, TypedDict, Union

from ..errors import LocalProtocolError, RemoteProtocolError
from .spdy3_dictionary import SPDY3_DICTIONARY

__all__ = [
    "SPDY_VERSION",
    # control frame type codes
    "TYPE_SYN_STREAM", "TYPE_SYN_REPLY", "TYPE_RST_STREAM", "TYPE_SETTINGS",
    "TYPE_NOOP", "TYPE_PING", "TYPE_GOAWAY", "TYPE_HEADERS", "TYPE_WINDOW_UPDATE",
    "TYPE_CREDENTIAL", "CONTROL_FRAME_NAMES",
    # flags
    "FLAG_FIN", "FLAG_UNIDIRECTIONAL", "FLAG_SETTINGS_CLEAR_SETTINGS",
    "FLAG_SETTINGS_PERSIST_VALUE", "FLAG_SETTINGS_PERSISTED",
    # settings ids
    "SETTINGS_UPLOAD_BANDWIDTH", "SETTINGS_DOWNLOAD_BANDWIDTH", "SETTINGS_ROUND_TRIP_TIME",
    "SETTINGS_MAX_CONCURRENT_STREAMS", "SETTINGS_CURRENT_CWND", "SETTINGS_DOWNLOAD_RETRANS_RATE",
    "SETTINGS_INITIAL_WINDOW_SIZE", "SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE",
    # RST_STREAM status codes
    "PROTOCOL_ERROR", "INVALID_STREAM", "REFUSED_STREAM", "UNSUPPORTED_VERSION", "CANCEL",
    "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "STREAM_IN_USE", "STREAM_ALREADY_CLOSED",
    "INVALID_CREDENTIALS", "FRAME_TOO_LARGE", "RST_STATUS_NAMES",
    # GOAWAY status codes
    "GOAWAY_OK", "GOAWAY_PROTOCOL_ERROR", "GOAWAY_INTERNAL_ERROR",
    # limits
    "MAX_STREAM_ID", "MAX_FRAME_LENGTH",
    # frames
    "SynStream", "SynReply", "RstStream", "Settings", "Ping", "GoAway", "HeadersFrame",
    "WindowUpdate", "Data", "UnknownControl", "Frame", "Headers",
    # helpers
    "split_header_value", "join_header_values", "headers_to_dict", "normalize_headers",
    "encode_header_block", "decode_header_block",
    # machinery
    "Spdy3ProtocolError", "FrameParser", "FrameWriter",
]

SPDY_VERSION = 3

TYPE_SYN_STREAM = 1
TYPE_SYN_REPLY = 2
TYPE_RST_STREAM = 3
TYPE_SETTINGS = 4
TYPE_NOOP = 5  # SPDY/2 only; an unknown type in SPDY/3
TYPE_PING = 6
TYPE_GOAWAY = 7
TYPE_HEADERS = 8
TYPE_WINDOW_UPDATE = 9
TYPE_CREDENTIAL = 10  # SPDY/3, not implemented by spdystream -> UnknownControl

CONTROL_FRAME_NAMES: dict[int, str] = {
    TYPE_SYN_STREAM: "SYN_STREAM",
    TYPE_SYN_REPLY: "SYN_REPLY",
    TYPE_RST_STREAM: "RST_STREAM",
    TYPE_SETTINGS: "SETTINGS",
    TYPE_NOOP: "NOOP",
    TYPE_PING: "PING",
    TYPE_GOAWAY: "GOAWAY",
    TYPE_HEADERS: "HEADERS",
    TYPE_WINDOW_UPDATE: "WINDOW_UPDATE",
    TYPE_CREDENTIAL: "CREDENTIAL",
}

FLAG_FIN = 0x01  # SYN_STREAM, SYN_REPLY, HEADERS, DATA
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM
FLAG_SETTINGS_CLEAR_SETTINGS = 0x01  # SETTINGS frame flag
FLAG_SETTINGS_PERSIST_VALUE = 0x01  # per-entry flags
FLAG_SETTINGS_PERSISTED = 0x02

SETTINGS_UPLOAD_BANDWIDTH = 1
SETTINGS_DOWNLOAD_BANDWIDTH = 2
SETTINGS_ROUND_TRIP_TIME = 3
SETTINGS_MAX_CONCURRENT_STREAMS = 4
SETTINGS_CURRENT_CWND = 5
SETTINGS_DOWNLOAD_RETRANS_RATE = 6
SETTINGS_INITIAL_WINDOW_SIZE = 7
SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE = 8

PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
INVALID_CREDENTIALS = 10
FRAME_TOO_LARGE = 11

RST_STATUS_NAMES: dict[int, str] = {
    PROTOCOL_ERROR: "PROTOCOL_ERROR",
    INVALID_STREAM: "INVALID_STREAM",
    REFUSED_STREAM: "REFUSED_STREAM",
    UNSUPPORTED_VERSION: "UNSUPPORTED_VERSION",
    CANCEL: "CANCEL",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR",
    STREAM_IN_USE: "STREAM_IN_USE",
    STREAM_ALREADY_CLOSED: "STREAM_ALREADY_CLOSED",
    INVALID_CREDENTIALS: "INVALID_CREDENTIALS",
    FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
}

# GOAWAY has its own, smaller set of status codes in SPDY/3.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

MAX_STREAM_ID = 0x7FFFFFFF
MAX_FRAME_LENGTH = 0xFFFFFF  # the 24-bit length field: 16 MiB - 1

_U31 = 0x7FFFFFFF
_U32 = 0xFFFFFFFF
_HEADER = struct.Struct(">II")
#: Control frames of one length only: a header announcing another is an error at once.
_EXACT_LENGTHS = {TYPE_RST_STREAM: 8, TYPE_PING: 4, TYPE_GOAWAY: 8, TYPE_WINDOW_UPDATE: 8}
_U32S = struct.Struct(">I")

Headers = tuple[tuple[str, str], ...]
HeadersLike = Union[Mapping[Any, Any], Iterable[Any]]


# --------------------------------------------------------------------------
# errors


class Spdy3ProtocolError(RemoteProtocolError):
    """The peer's bytes are not valid SPDY/3 framing.

    ``frames`` holds the frames that the failing :meth:`FrameParser.feed`
    call had completed before it hit the error (in order), so that a caller
    can still act on them before tearing the connection down.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.frames: list[Frame] = []


# --------------------------------------------------------------------------
# header helpers


def _to_str(x: str | bytes, what: str) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).decode("utf-8", "surrogateescape")
    raise TypeError(f"header {what} must be str or bytes, not {type(x).__name__}")


def _to_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def normalize_headers(headers: HeadersLike) -> Headers:
    """Turn a mapping or an iterable of pairs into the canonical tuple form.

    A mapping value (or pair value) that is a list or tuple is NUL-joined.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for pair in items:
        name, value = pair
        if isinstance(value, (list, tuple)):
            value = join_header_values(value)
        out.append((_to_str(name, "name"), _to_str(value, "value")))
    return tuple(out)


def split_header_value(value: str) -> list[str]:
    """Split a wire header value into its NUL-separated values."""
    return value.split("\0")


def join_header_values(values: Iterable[str | bytes]) -> str:
    """Join several values of one header name the way SPDY/3 sends them."""
    return "\0".join(_to_str(v, "value") for v in values)


def headers_to_dict(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``{name: [values...]}`` view of a header tuple."""
    return {name: split_header_value(value) for name, value in headers}


def encode_header_block(headers: HeadersLike) -> bytes:
    """The *uncompressed* SPDY/3 name/value block for ``headers``.

    Raises :class:`LocalProtocolError` for names that are empty, not
    lowercase or duplicated (a Go peer would drop the connection).
    """
    pairs = normalize_headers(headers)
    parts = [_U32S.pack(len(pairs))]
    seen: set[bytes] = set()
    for name, value in pairs:
        nb, vb = _to_bytes(name), _to_bytes(value)
        if not nb:
            raise LocalProtocolError("SPDY/3 header names must not be empty")
        if name.lower() != name:
            raise LocalProtocolError(f"SPDY/3 header name {name!r} is not lowercase")
        if nb in seen:
            raise LocalProtocolError(
                f"duplicate SPDY/3 header name {name!r}: join the values with NUL instead"
            )
        seen.add(nb)
        if len(nb) > _U32 or len(vb) > _U32:
            raise LocalProtocolError("SPDY/3 header name or value too long")
        parts += (_U32S.pack(len(nb)), nb, _U32S.pack(len(vb)), vb)
    return b"".join(parts)


def decode_header_block(block: bytes, what: str = "header block") -> Headers:
    """Parse an *uncompressed* SPDY/3 name/value block (strictly).

    Raises :class:`Spdy3ProtocolError` on truncation, trailing bytes, empty,
    duplicate, non-lowercase or non-UTF-8 names.
    """
    n = len(block)
    if n < 4:
        raise Spdy3ProtocolError(
            f"bad header block in {what}: {n} bytes, too short for the 4-byte pair count"
        )
    (count,) = _U32S.unpack_from(block, 0)
    if count > (n - 4) // 8:
        raise Spdy3ProtocolError(
            f"bad header block in {what}: claims {count} name/value pairs "
            f"but only {n - 4} bytes follow the count"
        )
    pos = 4
    out = []
    seen: set[bytes] = set()
    for i in range(count):
        fields = []
        for part in ("name", "value"):
            if n - pos < 4:
                raise Spdy3ProtocolError(
                    f"bad header block in {what}: truncated in the {part} length of pair {i}"
                )
            (length,) = _U32S.unpack_from(block, pos)
            pos += 4
            if length > n - pos:
                raise Spdy3ProtocolError(
                    f"bad header block in {what}: {part} length {length} of pair {i} "
                    f"exceeds the {n - pos} remaining bytes"
                )
            fields.append(bytes(block[pos:pos + length]))
            pos += length
        nb, vb = fields
        if not nb:
            raise Spdy3ProtocolError(f"bad header block in {what}: empty header name (pair {i})")
        try:
            name = nb.decode("utf-8")
        except UnicodeDecodeError:
            raise Spdy3ProtocolError(
                f"bad header block in {what}: header name {nb!r} is not valid UTF-8"
            ) from None
        if name.lower() != name:
            raise Spdy3ProtocolError(
                f"bad header block in {what}: header name {name!r} is not lowercase"
            )
        if nb in seen:
            raise Spdy3ProtocolError(f"bad header block in {what}: duplicate header name {name!r}")
        seen.add(nb)
        out.append((name, vb.decode("utf-8", "surrogateescape")))
    if pos != n:
        raise Spdy3ProtocolError(
            f"bad header block in {what}: {n - pos} trailing bytes after {count} pairs"
        )
    return tuple(out)


# --------------------------------------------------------------------------
# frames


# The metadata fields are spelled out as field(default=..., kw_only=True,
# compare=False, repr=False) so that type checkers see them as keyword-only.


@dataclass(frozen=True)
class _Frame:
    #: the flags byte as read from the wire (None for frames built locally)
    raw_flags: int | None = field(default=None, kw_only=True, compare=False, repr=False)
    #: the 24-bit length field as read from the wire (None for frames built locally)
    length: int | None = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(frozen=True)
class _ControlFrame(_Frame):
    #: the 15-bit version field as read (3 for frames built locally)
    version: int = field(default=SPDY_VERSION, kw_only=True, compare=False, repr=False)


class _Meta(TypedDict):
    """The parser's metadata keywords for a control frame."""

    raw_flags: int
    length: int
    version: int


@dataclass(frozen=True)
class _HeaderFrame(_ControlFrame):
    #: the decompressed name/value block as read (None for frames built locally)
    header_block: bytes | None = field(default=None, kw_only=True, compare=False, repr=False)

    if TYPE_CHECKING:
        # Each subclass declares the ``headers`` field itself, to keep its
        # positional place after ``stream_id``.
        @property
        def headers(self) -> Headers: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", normalize_headers(self.headers))

    def headers_dict(self) -> dict[str, list[str]]:
        return headers_to_dict(self.headers)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The (NUL-joined) value of ``name``, or ``default``."""
        for n, v in self.headers:
            if n == name:
                return v
        return default


@dataclass(frozen=True)
class SynStream(_HeaderFrame):
    TYPE: ClassVar[int] = TYPE_SYN_STREAM
    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    assoc_stream_id: int = 0
    priority: int = 0  # 3 bits, 0 = highest
    slot: int = 0


@dataclass(frozen=True)
class SynReply(_HeaderFrame):
    TYPE: ClassVar[int] = TYPE_SYN_REPLY
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class HeadersFrame(_HeaderFrame):
    TYPE: ClassVar[int] = TYPE_HEADERS
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream(_ControlFrame):
    TYPE: ClassVar[int] = TYPE_RST_STREAM
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings(_ControlFrame):
    TYPE: ClassVar[int] = TYPE_SETTINGS
    #: ``(id, flags, value)`` triples, in wire order
    entries: tuple[tuple[int, int, int], ...] = ()
    clear: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(tuple(e) for e in self.entries))


@dataclass(frozen=True)
class Ping(_ControlFrame):
    TYPE: ClassVar[int] = TYPE_PING
    ping_id: int


@dataclass(frozen=True)
class GoAway(_ControlFrame):
    TYPE: ClassVar[int] = TYPE_GOAWAY
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class WindowUpdate(_ControlFrame):
    TYPE: ClassVar[int] = TYPE_WINDOW_UPDATE
    stream_id: int
    delta: int


@dataclass(frozen=True)
class UnknownControl(_ControlFrame):
    """A control frame of a type this framer does not implement, kept raw."""

    TYPE: ClassVar[int | None] = None
    frame_type: int
    flags: int
    payload: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", bytes(self.payload))


@dataclass(frozen=True)
class Data(_Frame):
    TYPE: ClassVar[int | None] = None
    stream_id: int
    data: bytes
    fin: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))


Frame = Union[
    SynStream, SynReply, RstStream, Settings, Ping, GoAway, HeadersFrame, WindowUpdate,
    Data, UnknownControl,
]


# --------------------------------------------------------------------------
# parser


class FrameParser:
    """Turns one direction's byte stream into frames.

    ``feed(data)`` returns every frame completed by ``data`` (possibly none);
    an incomplete frame is buffered, but never more than one frame of at most
    ``8 + max_frame_size`` bytes. ``max_header_block_size`` bounds the
    decompressed size of one header block (zlib bombs).

    With ``stream_data=True`` a DATA frame is not buffered: its payload is returned
    as it arrives, as several :class:`Data` frames of the same stream (``fin`` only
    on the last piece), so that a peer announcing a 16 MiB frame costs no 16 MiB
    buffer here (only control frames, bounded by ``max_control_frame_size``, wait
    whole).
    """

    def __init__(
        self,
        max_frame_size: int = 16 * 1024 * 1024,
        *,
        max_header_block_size: int = 1024 * 1024,
        max_control_frame_size: int | None = None,
        stream_data: bool = False,
    ) -> None:
        self.stream_data = stream_data
        #: A DATA frame being passed on piece by piece (stream_data): bytes still to
        #: come, its stream id, flags (FIN applies to its last piece).
        self._data_left = 0
        self._data_stream = 0
        self._data_flags = 0
        if max_frame_size < 0 or max_header_block_size < 1:
            raise ValueError("limits must be positive")
        self.max_frame_size = max_frame_size
        self.max_header_block_size = max_header_block_size
        #: Longest control frame accepted (header blocks are compressed: SYN_STREAM,
        #: SYN_REPLY, HEADERS; SETTINGS; unknown types), decided on the 8-byte header
        #: alone like every other length; the fixed-size ones (RST_STREAM, PING,
        #: GOAWAY, WINDOW_UPDATE) must have their exact length there too.
        self.max_control_frame_size = max_frame_size if max_control_frame_size is None else max_control_frame_size
        self._buf = bytearray()
        # This direction's zlib context, made with the first header block (7 KB; an idle
        # connection never gets one). wbits 0: the window the peer's zlib header names --
        # 32 KiB from Go, 2 KiB from us (FrameWriter) -- allocated as the first block needs it.
        self._inflater: zlib._Decompress | None = None
        self._error: Spdy3ProtocolError | None = None
        self._parsers: dict[int, Callable[[int, bytes, _Meta], Frame]] = {
            TYPE_SYN_STREAM: self._syn_stream,
            TYPE_SYN_REPLY: self._syn_reply,
            TYPE_RST_STREAM: self._rst_stream,
            TYPE_SETTINGS: self._settings,
            TYPE_PING: self._ping,
            TYPE_GOAWAY: self._goaway,
            TYPE_HEADERS: self._headers,
            TYPE_WINDOW_UPDATE: self._window_update,
        }

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame waiting for more input."""
        return len(self._buf)

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def at_boundary(self) -> bool:
        """Nothing of a frame is pending: the next byte fed begins a frame."""
        return not self._buf and not self._data_left and self._error is None

    def feed(self, data: bytes) -> list[Frame]:
        if self._error is not None:
            raise Spdy3ProtocolError(f"SPDY/3 parser already failed: {self._error}")
        buf = self._buf
        frames: list[Frame] = []
        if self._data_left and not buf and data:
            # the rest of a DATA frame passed on piece by piece, straight from ``data``
            # (not copied into the buffer first; all of a bytes read: not copied at all)
            take = min(self._data_left, len(data))
            frames.append(self._data_piece(data if take == len(data) and type(data) is bytes else bytes(memoryview(data)[:take])))
            if take == len(data):
                return frames
            buf += memoryview(data)[take:]
        else:
            buf += data
        pos = 0
        end = len(buf)
        try:
            while True:
                if self._data_left:  # the rest of a DATA frame passed on piece by piece
                    take = min(self._data_left, end - pos)
                    if not take:
                        break
                    frames.append(self._data_piece(bytes(buf[pos:pos + take])))
                    pos += take
                    continue
                if end - pos < 8:
                    break
                word0, word1 = _HEADER.unpack_from(buf, pos)
                flags = word1 >> 24
                length = word1 & 0xFFFFFF
                control = word0 & 0x80000000
                limit = self.max_control_frame_size if control else self.max_frame_size
                if length > limit:
                    kind = (
                        CONTROL_FRAME_NAMES.get(word0 & 0xFFFF, f"type {word0 & 0xFFFF}")
                        if control
                        else "DATA"
                    )
                    raise Spdy3ProtocolError(
                        f"oversized frame: {kind} frame of {length} bytes exceeds the "
                        f"limit of {limit} bytes"
                    )
                exact = _EXACT_LENGTHS.get(word0 & 0xFFFF) if control else None
                if exact is not None and length != exact:  # (the same error as _need's, sooner)
                    what = "truncated" if length < exact else "bad length for"
                    name = CONTROL_FRAME_NAMES[word0 & 0xFFFF]
                    raise Spdy3ProtocolError(f"{what} {name} frame: length {length}, must be {exact}")
                if end - pos - 8 < length:
                    if control or not self.stream_data:
                        break
                    pos += 8  # its payload follows piece by piece
                    self._data_left, self._data_stream, self._data_flags = length, word0, flags
                    continue
                payload = bytes(buf[pos + 8:pos + 8 + length])
                pos += 8 + length
                if word0 & 0x80000000:
                    frames.append(self._control(word0, flags, length, payload))
                else:
                    frames.append(
                        Data(word0, payload, bool(flags & FLAG_FIN), raw_flags=flags, length=length)
                    )
        except Spdy3ProtocolError as exc:
            exc.frames = frames
            self._error = exc
            del buf[:]
            raise
        del buf[:pos]
        return frames

    def _data_piece(self, piece: bytes) -> Data:
        """The next piece of the DATA frame being passed on (FIN on its last piece only)."""
        self._data_left -= len(piece)
        flags = self._data_flags if not self._data_left else self._data_flags & ~FLAG_FIN
        return Data(self._data_stream, piece, bool(flags & FLAG_FIN), raw_flags=flags, length=len(piece))

    def feed_eof(self) -> None:
        """The byte stream ended: raise if it ended inside a frame."""
        if self._error is None and self._buf:
            raise Spdy3ProtocolError(
                f"connection ended inside a frame ({len(self._buf)} bytes of it received)"
            )
        if self._error is None and self._data_left:
            raise Spdy3ProtocolError(f"connection ended inside a DATA frame ({self._data_left} bytes of it missing)")

    # -- control frames

    def _control(self, word0: int, flags: int, length: int, payload: bytes) -> Frame:
        version = (word0 >> 16) & 0x7FFF
        ftype = word0 & 0xFFFF
        meta: _Meta = {"raw_flags": flags, "length": length, "version": version}
        parse = self._parsers.get(ftype)
        if parse is None:
            return UnknownControl(ftype, flags, payload, **meta)
        return parse(flags, payload, meta)

    @staticmethod
    def _need(
        name: str, payload: bytes, *, exact: int | None = None, at_least: int | None = None
    ) -> None:
        n = len(payload)
        if exact is not None and n != exact:
            what = "truncated" if n < exact else "bad length for"
            raise Spdy3ProtocolError(f"{what} {name} frame: length {n}, must be {exact}")
        if at_least is not None and n < at_least:
            raise Spdy3ProtocolError(
                f"truncated {name} frame: length {n}, must be at least {at_least}"
            )

    def _header_block(self, compressed: bytes, what: str) -> tuple[Headers, bytes]:
        d = self._inflater
        if d is None:
            d = self._inflater = zlib.decompressobj(0, zdict=SPDY3_DICTIONARY)
        if d.eof:
            raise Spdy3ProtocolError(
                f"bad header block in {what}: the zlib stream of this direction has already ended"
            )
        try:
            plain = d.decompress(compressed, self.max_header_block_size)
        except zlib.error as exc:
            raise Spdy3ProtocolError(
                f"header block decompression failed in {what}: {exc}"
            ) from None
        if d.unconsumed_tail:
            raise Spdy3ProtocolError(
                f"bad header block in {what}: decompresses to more than "
                f"{self.max_header_block_size} bytes"
            )
        if d.unused_data:
            raise Spdy3ProtocolError(
                f"bad header block in {what}: {len(d.unused_data)} bytes after the end "
                f"of the zlib stream"
            )
        return decode_header_block(plain, what), plain

    def _syn_stream(self, flags: int, payload: bytes, meta: _Meta) -> SynStream:
        self._need("SYN_STREAM", payload, at_least=10)
        sid, assoc = struct.unpack_from(">II", payload, 0)
        sid &= _U31
        headers, plain = self._header_block(payload[10:], f"SYN_STREAM (stream {sid})")
        return SynStream(
            sid, headers, bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL),
            assoc & _U31, payload[8] >> 5, payload[9], header_block=plain, **meta,
        )

    def _syn_reply(self, flags: int, payload: bytes, meta: _Meta) -> SynReply:
        self._need("SYN_REPLY", payload, at_least=4)
        sid = _U32S.unpack_from(payload, 0)[0] & _U31
        headers, plain = self._header_block(payload[4:], f"SYN_REPLY (stream {sid})")
        return SynReply(sid, headers, bool(flags & FLAG_FIN), header_block=plain, **meta)

    def _headers(self, flags: int, payload: bytes, meta: _Meta) -> HeadersFrame:
        self._need("HEADERS", payload, at_least=4)
        sid = _U32S.unpack_from(payload, 0)[0] & _U31
        headers, plain = self._header_block(payload[4:], f"HEADERS (stream {sid})")
        return HeadersFrame(sid, headers, bool(flags & FLAG_FIN), header_block=plain, **meta)

    def _rst_stream(self, flags: int, payload: bytes, meta: _Meta) -> RstStream:
        self._need("RST_STREAM", payload, exact=8)
        sid, status = struct.unpack(">II", payload)
        return RstStream(sid & _U31, status, **meta)

    def _settings(self, flags: int, payload: bytes, meta: _Meta) -> Settings:
        self._need("SETTINGS", payload, at_least=4)
        (count,) = _U32S.unpack_from(payload, 0)
        if len(payload) != 4 + 8 * count:
            raise Spdy3ProtocolError(
                f"bad SETTINGS frame: length {len(payload)} does not fit {count} entries "
                f"(must be {4 + 8 * count})"
            )
        entries = []
        for off in range(4, len(payload), 8):
            w, value = struct.unpack_from(">II", payload, off)
            entries.append((w & 0xFFFFFF, w >> 24, value))
        return Settings(tuple(entries), bool(flags & FLAG_SETTINGS_CLEAR_SETTINGS), **meta)

    def _ping(self, flags: int, payload: bytes, meta: _Meta) -> Ping:
        self._need("PING", payload, exact=4)
        return Ping(_U32S.unpack(payload)[0], **meta)

    def _goaway(self, flags: int, payload: bytes, meta: _Meta) -> GoAway:
        self._need("GOAWAY", payload, exact=8)
        last, status = struct.unpack(">II", payload)
        return GoAway(last & _U31, status, **meta)

    def _window_update(self, flags: int, payload: bytes, meta: _Meta) -> WindowUpdate:
        self._need("WINDOW_UPDATE", payload, exact=8)
        sid, delta = struct.unpack(">II", payload)
        return WindowUpdate(sid & _U31, delta & _U31, **meta)


# --------------------------------------------------------------------------
# writer


def _check(value: int, limit: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise LocalProtocolError(f"{what} must be an integer in 0..{limit}, not {value!r}")
    return value


#: The deflate parameters of our header blocks (see FrameWriter).
_DEFLATE_WBITS = 11
_DEFLATE_MEMLEVEL = 1


class FrameWriter:
    """Serializes frames for one sending direction.

    Header blocks share this writer's deflate context, so frames must be
    written to the wire in the order they were serialized. If a header frame
    fails after its block was compressed (it would exceed the 24-bit length),
    the context is out of step with the peer and the writer refuses further
    header frames.
    """

    def __init__(self, *, compression_level: int = 9) -> None:
        # A 2 KiB window (wbits 11: the 1,423-byte dictionary still fits) and the least
        # hash memory (memLevel 1): about 15 KB for the session's whole life, where zlib's
        # defaults (wbits 15, memLevel 8) take 262 KB -- per connection, for header blocks
        # of a few dozen bytes. Any zlib inflater reads it (Go's takes windows up to 32 KiB).
        # (made with the first header block: an idle connection never gets one)
        self._compression_level = compression_level
        self._deflater: zlib._Compress | None = None
        self._broken = False

    def serialize(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            return self._data(frame)
        method = self._writers.get(type(frame))
        if method is None:
            raise TypeError(f"not a SPDY/3 frame: {frame!r}")
        return method(self, frame)

    # -- helpers

    @staticmethod
    def _flags(frame: _Frame, known_mask: int, semantic: int) -> int:
        extra = (frame.raw_flags or 0) & ~known_mask & 0xFF
        return semantic | extra

    @staticmethod
    def _control(ftype: int, flags: int, body: bytes) -> bytes:
        if len(body) > MAX_FRAME_LENGTH:
            raise LocalProtocolError(
                f"{CONTROL_FRAME_NAMES.get(ftype, ftype)} frame of {len(body)} bytes exceeds "
                f"the SPDY/3 maximum of {MAX_FRAME_LENGTH}"
            )
        return _HEADER.pack(0x80000000 | (SPDY_VERSION << 16) | ftype, (flags << 24) | len(body)) + body

    def _compress(self, headers: Headers) -> bytes:
        if self._broken:
            raise LocalProtocolError("FrameWriter's header compression context is out of step")
        plain = encode_header_block(headers)  # validates before touching the context
        deflater = self._deflater
        if deflater is None:
            deflater = self._deflater = zlib.compressobj(
                self._compression_level, zlib.DEFLATED, _DEFLATE_WBITS, _DEFLATE_MEMLEVEL, zlib.Z_DEFAULT_STRATEGY,
                zdict=SPDY3_DICTIONARY,
            )
        return deflater.compress(plain) + deflater.flush(zlib.Z_SYNC_FLUSH)

    def _header_control(self, ftype: int, flags: int, fixed: bytes, headers: Headers) -> bytes:
        block = self._compress(headers)
        try:
            return self._control(ftype, flags, fixed + block)
        except LocalProtocolError:
            self._broken = True
            raise

    # -- per frame type

    def _data(self, f: Data) -> bytes:
        return self.data_header(f.stream_id, len(f.data), self._flags(f, FLAG_FIN, FLAG_FIN if f.fin else 0)) + f.data

    @staticmethod
    def data_header(stream_id: int, length: int, flags: int = 0) -> bytes:
        """The 8-byte header of a DATA frame of ``length`` bytes (its payload follows it
        as it is: a large one need not be copied into the frame)."""
        _check(stream_id, MAX_STREAM_ID, "DATA stream id")
        if length > MAX_FRAME_LENGTH:
            raise LocalProtocolError(f"DATA frame of {length} bytes exceeds the SPDY/3 maximum of {MAX_FRAME_LENGTH}")
        return _HEADER.pack(stream_id, (flags << 24) | length)

    def _syn_stream(self, f: SynStream) -> bytes:
        sid = _check(f.stream_id, MAX_STREAM_ID, "SYN_STREAM stream id")
        assoc = _check(f.assoc_stream_id, MAX_STREAM_ID, "SYN_STREAM associated-to stream id")
        pri = _check(f.priority, 7, "SYN_STREAM priority")
        slot = _check(f.slot, 0xFF, "SYN_STREAM slot")
        semantic = (FLAG_FIN if f.fin else 0) | (FLAG_UNIDIRECTIONAL if f.unidirectional else 0)
        flags = self._flags(f, FLAG_FIN | FLAG_UNIDIRECTIONAL, semantic)
        fixed = struct.pack(">IIBB", sid, assoc, pri << 5, slot)
        return self._header_control(TYPE_SYN_STREAM, flags, fixed, f.headers)

    def _syn_reply(self, f: SynReply) -> bytes:
        sid = _check(f.stream_id, MAX_STREAM_ID, "SYN_REPLY stream id")
        flags = self._flags(f, FLAG_FIN, FLAG_FIN if f.fin else 0)
        return self._header_control(TYPE_SYN_REPLY, flags, _U32S.pack(sid), f.headers)

    def _headers(self, f: HeadersFrame) -> bytes:
        sid = _check(f.stream_id, MAX_STREAM_ID, "HEADERS stream id")
        flags = self._flags(f, FLAG_FIN, FLAG_FIN if f.fin else 0)
        return self._header_control(TYPE_HEADERS, flags, _U32S.pack(sid), f.headers)

    def _rst_stream(self, f: RstStream) -> bytes:
        sid = _check(f.stream_id, MAX_STREAM_ID, "RST_STREAM stream id")
        status = _check(f.status, _U32, "RST_STREAM status")
        return self._control(TYPE_RST_STREAM, self._flags(f, 0, 0), struct.pack(">II", sid, status))

    def _settings(self, f: Settings) -> bytes:
        parts = [_U32S.pack(len(f.entries))]
        for entry in f.entries:
            sid, sflags, value = entry
            _check(sid, 0xFFFFFF, "SETTINGS id")
            _check(sflags, 0xFF, "SETTINGS entry flags")
            _check(value, _U32, "SETTINGS value")
            parts.append(struct.pack(">II", (sflags << 24) | sid, value))
        flags = self._flags(
            f, FLAG_SETTINGS_CLEAR_SETTINGS, FLAG_SETTINGS_CLEAR_SETTINGS if f.clear else 0
        )
        return self._control(TYPE_SETTINGS, flags, b"".join(parts))

    def _ping(self, f: Ping) -> bytes:
        pid = _check(f.ping_id, _U32, "PING id")
        return self._control(TYPE_PING, self._flags(f, 0, 0), _U32S.pack(pid))

    def _goaway(self, f: GoAway) -> bytes:
        last = _check(f.last_good_stream_id, MAX_STREAM_ID, "GOAWAY last-good-stream-id")
        status = _check(f.status, _U32, "GOAWAY status")
        return self._control(TYPE_GOAWAY, self._flags(f, 0, 0), struct.pack(">II", last, status))

    def _window_update(self, f: WindowUpdate) -> bytes:
        sid = _check(f.stream_id, MAX_STREAM_ID, "WINDOW_UPDATE stream id")
        delta = _check(f.delta, _U31, "WINDOW_UPDATE delta")
        return self._control(TYPE_WINDOW_UPDATE, self._flags(f, 0, 0), struct.pack(">II", sid, delta))

    def _unknown(self, f: UnknownControl) -> bytes:
        ftype = _check(f.frame_type, 0xFFFF, "control frame type")
        flags = _check(f.flags, 0xFF, "control frame flags")
        return self._control(ftype, flags, f.payload)

    #: (each writer takes the frame type it is keyed by)
    _writers: ClassVar[dict[type[_Frame], Callable[[FrameWriter, Any], bytes]]] = {
        SynStream: _syn_stream,
        SynReply: _syn_reply,
        HeadersFrame: _headers,
        RstStream: _rst_stream,
        Settings: _settings,
        Ping: _ping,
        GoAway: _goaway,
        WindowUpdate: _window_update,
        UnknownControl: _unknown,
    }
