"""Sans-IO message codec of the Go profile: msgpack, as Go libchan writes it.

Go libchan (``github.com/docker/libchan`` over SPDY/3, with
``github.com/dmcgowan/msgpack``) sends each message as one msgpack object,
written straight into the channel's stream with **no framing**: a message may
span several DATA frames and several messages may share one. Senders,
Receivers, byte streams and times travel as msgpack extension types:

==== ================ ============================ =========================
ext  kind (here)      the receiver of the message  payload
==== ================ ============================ =========================
1    ``stream``       gets a duplex byte stream    ref
2    ``write-stream`` gets a stream it writes      ref
3    ``read-stream``  gets a stream it reads       ref
4    ``sender``       gets a Sender                ref
5    ``receiver``     gets a Receiver              ref
6    (datetime)       gets a ``datetime`` (UTC)    int64 seconds + uint32 ns
==== ================ ============================ =========================

Kinds are named, as in :mod:`.cbor_codec`, by what the *receiver* of the
message gets. A ref is a fixext4 (big-endian uint32) or, above 0xffffffff, a
fixext8 (uint64); any other payload length is "bad reference id".

Encoding follows Go's choices so that a Go peer decodes exactly what it would
decode from Go: a Python ``int`` uses the smallest *signed* code as Go does for
``int`` (positive/negative fixint, then int8/16/32/64; ``128`` is ``d1 00 80``),
and only values in ``2**63 .. 2**64-1`` use ``uint64``; floats are float64;
``str`` uses the str family (including str8), bytes-like values the bin family.
A ``datetime`` is ext 6 (naive datetimes are taken as UTC); Python keeps
microseconds, so the nanosecond field is always a multiple of 1000.

Decoding: ints (signed or unsigned codes) become ``int``, float32/float64 become
``float``, str ``str``, bin ``bytes``, arrays ``list`` (arrays used as map keys
become ``tuple``), maps ``dict``, nil ``None``, ext 6 a timezone-aware UTC
``datetime``. Nanoseconds below microsecond precision are **rounded down**
(truncated towards the past: 1969-07-20T20:17:40.0000005Z decodes to
1969-07-20T20:17:40Z). Times outside Python's year range 1..9999 are an error
for that message. References are replaced by what ``on_reference(kind, ref)``
returns, called in wire order once the whole message has been validated.

Errors while decoding a stream (see :class:`MsgpackStreamDecoder`):

* per message, the stream goes on (as in Go): an unknown ext type (Go:
  "extended type not registered"; this includes msgpack's own timestamp ext
  -1, which Go does not know), a reference whose payload is not 4 or 8 bytes
  ("bad reference id"), a bad time payload, invalid UTF-8 in a str, a map key
  that cannot be a ``dict`` key. Unlike Go, which stops in the middle of the
  message and desynchronises the stream when such a value is nested, the whole
  message is always consumed.
* fatal, the stream cannot go on: a never-used code (``c1``; Go returns the
  same error forever), nesting deeper than ``max_depth`` (or than msgpack's
  own limit of 1024), and a message larger than ``max_message_size``.
"""

from __future__ import annotations

import datetime as _dt
import struct
from typing import Any, Callable

import msgpack

from ..errors import LocalProtocolError, MessageTooLargeError, RemoteProtocolError
from .cbor_codec import KindOf, plain_data

__all__ = ["EXT_CODES", "EXT_KINDS", "TIME_EXT", "MsgpackCodec", "MsgpackStreamDecoder"]

#: msgpack ext code of each reference kind (named by what the message's receiver gets).
EXT_CODES: dict[str, int] = {
    "stream": 1,
    "write-stream": 2,
    "read-stream": 3,
    "sender": 4,
    "receiver": 5,
}
#: Reverse of :data:`EXT_CODES`.
EXT_KINDS: dict[int, str] = {v: k for k, v in EXT_CODES.items()}
#: msgpack ext code of a time value.
TIME_EXT = 6

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_UTC = _dt.timezone.utc

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_TIME = struct.Struct(">qI")
_REF_HEADERS4 = {code: bytes([0xD6, code]) for code in EXT_KINDS}
_REF_HEADERS8 = {code: bytes([0xD7, code]) for code in EXT_KINDS}
_TIME_HEADER = bytes([0xC7, 12, TIME_EXT])

_NIL = b"\xc0"
_TRUE = b"\xc3"
_FALSE = b"\xc2"


_FLOAT64 = struct.Struct(">Bd")
# Headers of the str family (fixstr, then str8), the bin family (bin8), maps and arrays
# (fixmap, fixarray), as msgpack writes them with use_bin_type: looked up, not packed.
_STR_HEADS = [bytes((0xA0 | n,)) for n in range(32)] + [bytes((0xD9, n)) for n in range(32, 0x100)]
_BIN_HEADS = [bytes((0xC4, n)) for n in range(0x100)]
_MAP_HEADS = [bytes((0x80 | n,)) for n in range(16)]
_ARRAY_HEADS = [bytes((0x90 | n,)) for n in range(16)]


def _head(n: int, small: list[bytes], code16: int, what: str) -> bytes:
    """The header of a str (code16 0xDA), bin (0xC5), map (0xDE) or array (0xDC) of ``n``
    bytes or entries: from ``small`` below its length, else 16-bit, else 32-bit (code16 + 1)."""
    if n < len(small):
        return small[n]
    if n <= 0xFFFF:
        return bytes((code16,)) + n.to_bytes(2, "big")
    if n <= 0xFFFFFFFF:
        return bytes((code16 + 1,)) + n.to_bytes(4, "big")
    raise LocalProtocolError(f"a {what} of {n} does not fit in msgpack (at most 2**32 - 1)")


def _pack_int(v: int) -> bytes:
    """Go's encoding of an ``int``: the smallest signed code (uint64 only above int64)."""
    if 0 <= v <= 0x7F or -32 <= v < 0:
        return struct.pack(">b", v) if v < 0 else bytes((v,))
    if -128 <= v < -32:
        return b"\xd0" + struct.pack(">b", v)
    if -0x8000 <= v <= 0x7FFF:
        return b"\xd1" + struct.pack(">h", v)
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return b"\xd2" + struct.pack(">i", v)
    if -(2**63) <= v < 2**63:
        return b"\xd3" + struct.pack(">q", v)
    if 2**63 <= v < 2**64:
        return b"\xcf" + _U64.pack(v)
    raise LocalProtocolError(f"integer {v} does not fit in msgpack (int64 or uint64)")


def _reject(value: Any) -> LocalProtocolError:
    return LocalProtocolError(
        f"cannot send a {type(value).__name__}: libchan messages hold None, bool, int, float, str,"
        " bytes, list, dict, datetime, Senders, Receivers and byte streams"
    )


class MsgpackCodec:
    """Encode libchan messages as Go libchan's msgpack.

    ``encode(msg, on_object)`` calls ``on_object(kind, obj)`` for every
    Sender/Receiver/byte stream found (in wire order) and puts the returned
    reference number in its place. Decoding is incremental, per channel
    stream: see :class:`MsgpackStreamDecoder`.
    """

    def __init__(self, *, max_message_size: int, max_depth: int, kind_of: KindOf = plain_data) -> None:
        self.max_message_size = max_message_size
        self.max_depth = max_depth
        self.kind_of = kind_of  # see CborCodec
        # (No msgpack.Packer: its buffer, 256 KiB from the start and as large as the
        # largest value it ever packed after that, would stay with every session.)

    # -- encoding ---------------------------------------------------------------

    def encode(self, msg: Any, on_object: Callable[[str, Any], int]) -> bytes:
        out = bytearray()
        try:
            self._encode(msg, on_object, out, 0)
        except (LocalProtocolError, MessageTooLargeError):
            raise
        except RecursionError as exc:
            raise LocalProtocolError("message is nested too deeply to encode") from exc
        except (UnicodeEncodeError, ValueError, TypeError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode message: {exc}") from exc
        if len(out) > self.max_message_size:
            raise MessageTooLargeError(len(out), self.max_message_size, local=True)
        return bytes(out)

    def _encode(self, obj: Any, on_object: Callable[[str, Any], int], out: bytearray, depth: int) -> None:
        t = type(obj)
        if t is bytes:
            n = len(obj)
            out += _BIN_HEADS[n] if n < 0x100 else _head(n, _BIN_HEADS, 0xC5, "byte string")
            out += obj
        elif t is str:
            data = obj.encode()  # (strict: a lone surrogate cannot be sent)
            n = len(data)
            out += _STR_HEADS[n] if n < 0x100 else _head(n, _STR_HEADS, 0xDA, "string")
            out += data
        elif t is float:
            out += _FLOAT64.pack(0xCB, obj)
        elif t is int:
            out += _pack_int(obj)
        elif obj is None:
            out += _NIL
        elif t is bool:
            out += _TRUE if obj else _FALSE
        elif t is list or t is tuple or t is dict:
            self._encode_container(obj, on_object, out, depth)
        elif isinstance(obj, bool):
            out += _TRUE if obj else _FALSE
        elif isinstance(obj, int):
            out += _pack_int(int(obj))
        elif isinstance(obj, float):
            self._encode(float(obj), on_object, out, depth)
        elif isinstance(obj, str):
            self._encode(str(obj), on_object, out, depth)
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            self._encode(bytes(obj), on_object, out, depth)
        elif isinstance(obj, (list, tuple, dict)):
            self._encode_container(obj, on_object, out, depth)
        elif isinstance(obj, _dt.datetime):
            out += self._encode_time(obj)
        else:
            kind = self.kind_of(obj)
            if kind is None:
                raise _reject(obj)
            ref = on_object(kind, obj)
            if type(ref) is not int or ref < 0 or ref >= 2**64:
                raise LocalProtocolError(f"reference number {ref!r} does not fit in uint64")
            code = EXT_CODES[kind]
            if ref <= 0xFFFFFFFF:
                out += _REF_HEADERS4[code] + _U32.pack(ref)
            else:
                out += _REF_HEADERS8[code] + _U64.pack(ref)
        if len(out) > self.max_message_size:
            raise MessageTooLargeError(len(out), self.max_message_size, local=True)

    def _encode_container(self, obj: Any, on_object: Callable[[str, Any], int], out: bytearray, depth: int) -> None:
        depth += 1
        if depth > self.max_depth:
            raise LocalProtocolError(
                f"message is nested more than {self.max_depth} levels deep (or holds a cycle)"
            )
        enc = self._encode
        if isinstance(obj, dict):
            n = len(obj)
            out += _MAP_HEADS[n] if n < 16 else _head(n, _MAP_HEADS, 0xDE, "map")
            for k, v in obj.items():
                enc(k, on_object, out, depth)
                enc(v, on_object, out, depth)
        else:
            n = len(obj)
            out += _ARRAY_HEADS[n] if n < 16 else _head(n, _ARRAY_HEADS, 0xDC, "array")
            for v in obj:
                enc(v, on_object, out, depth)

    @staticmethod
    def _encode_time(value: _dt.datetime) -> bytes:
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            value = value.replace(tzinfo=_UTC)
        delta = value - _EPOCH  # exact: days, seconds, microseconds
        seconds = delta.days * 86400 + delta.seconds
        return _TIME_HEADER + _TIME.pack(seconds, delta.microseconds * 1000)


# -- decoding -------------------------------------------------------------------


class _ExtError(Exception):
    """A per-message (recoverable) error raised from the ext hook."""


class _Fatal(Exception):
    pass


class _NotSole(Exception):
    """decode_sole: the bytes are not one message that decodes (feed will tell)."""


#: decode_sole tries reads of at most this many bytes (a larger one is left to feed:
#: it may well be part of a message, parsed again there).
_SOLE_MAX = 64 * 1024


class _Ref:
    """Placeholder for a reference until the whole message is validated."""

    __slots__ = ("kind", "ref", "obj")

    def __init__(self, kind: str, ref: int) -> None:
        self.kind = kind
        self.ref = ref
        self.obj: Any = None


# Announced sizes of a pending message, by first byte: (length field size, header size, bytes per unit).
_ANNOUNCED = {
    0xC4: (1, 2, 1), 0xC5: (2, 3, 1), 0xC6: (4, 5, 1),  # bin
    0xD9: (1, 2, 1), 0xDA: (2, 3, 1), 0xDB: (4, 5, 1),  # str
    0xC7: (1, 3, 1), 0xC8: (2, 4, 1), 0xC9: (4, 6, 1),  # ext
    0xDC: (2, 3, 1), 0xDD: (4, 5, 1),  # array: at least one byte per element
    0xDE: (2, 3, 2), 0xDF: (4, 5, 2),  # map: at least two bytes per entry
}


#: The Go decoder gives msgpack's Unpacker at most this many bytes at a time.
_PIECE = 64 * 1024
#: An Unpacker whose buffer grew past this is let go of at the next message boundary.
_UNPACKER_KEPT = 64 * 1024
#: What an Unpacker takes besides its buffer's growth: the object, with its fixed parse
#: stack of 1,024 entries (about 41 KB, every page of it touched), and its first buffer
#: (``read_size``, _PIECE). A decoder holds one only while a message is partial.
_UNPACKER_COST = 112 * 1024
#: An Unpacker let go of at a message boundary, for the next decoder that needs one:
#: making one costs 25-35 µs, and a burst to many channels would make one per read.
#: (One for the process, with its buffer growth and its cap: max_message_size differs
#: between sessions. A list, whose pop and append are each one step for threads.)
_SPARE_UNPACKERS: list[tuple[msgpack.Unpacker, int, int]] = []


def _is_short_bytes(buf: bytes | memoryview, start: int, size: int) -> bool:
    """Whether the ``size``-byte message at ``buf[start]`` is a short ``bytes`` (bin 8):
    its payload is ``buf[start + 2 : start + size]``, no decoder needed."""
    return buf[start] == 0xC4 and size == 2 + buf[start + 1]


def _short_bin_messages(data: bytes, max_size: int, out: list[tuple[Any, int]]) -> int:
    """Take the messages at the start of ``data`` that are whole and each a short ``bytes``
    (bin 8: 0xc4, its length, its payload): each payload is sliced once out of ``data`` and
    appended to ``out`` with its wire size. Returns where the first other message (or
    incomplete one) begins. (A burst of them to one channel needs no Unpacker.)"""
    n = len(data)
    pos = 0
    while pos + 1 < n and data[pos] == 0xC4:
        end = pos + 2 + data[pos + 1]
        if end > n or end - pos > max_size:
            break
        out.append((data[pos + 2 : end], end - pos))
        pos = end
    return pos


class MsgpackStreamDecoder:
    """Incremental decoder of one channel stream of concatenated msgpack messages.

    ``feed(data)`` returns the messages now complete, each ``(value,
    wire_size)``. A ``value`` that is a :class:`RemoteProtocolError` instance
    is a message that was consumed but could not be decoded: raise it to the
    application for that receive; the stream goes on. A fatal error sets
    ``error`` (a :class:`RemoteProtocolError` or :class:`MessageTooLargeError`),
    ``feed`` still returns the items decoded before it, and every later
    ``feed`` raises it. ``at_boundary()`` is true when no partial message is
    held; ``buffered`` is the number of bytes held.
    """

    def __init__(self, codec: MsgpackCodec, on_reference: Callable[[str, int], Any]) -> None:
        self._max_size = codec.max_message_size
        self._max_depth = codec.max_depth
        self._on_reference = on_reference
        # skip() only finds message boundaries; values are built from the exact bytes.
        # Made when a read needs it, let go of at the next message boundary: a stream
        # holds one only while a message is partial (see _UNPACKER_COST).
        self._unpacker: msgpack.Unpacker | None = None
        #: The unpacker's buffer growth, as far as we can tell (see :attr:`footprint`).
        self._unpacker_size = 0
        self._parts: list[bytes] = []  # the pending message's bytes so far, as they came
        self._pending = 0  # bytes in _parts
        self._base = 0  # stream offset of the pending message's first byte
        self._fed = 0  # stream offset after the last byte given to the unpacker
        self.error: Exception | None = None
        #: Messages given as a RemoteProtocolError value so far (the caller may look at
        #: its items only when this moved).
        self.failures = 0

    def _new_unpacker(self) -> msgpack.Unpacker:
        # It is given at most _PIECE bytes at a time, after every message that
        # completed has been skipped and one too large has failed: so it never holds
        # more than max_message_size + _PIECE bytes (its buffer doubles as it grows:
        # the cap keeps that within the same bound).
        return msgpack.Unpacker(max_buffer_size=self._max_size + _PIECE, read_size=_PIECE)

    def _take_unpacker(self) -> msgpack.Unpacker:
        """An Unpacker for the read at hand (nothing is pending: its stream offsets
        become the decoder's)."""
        try:
            unpacker, self._unpacker_size, cap = _SPARE_UNPACKERS.pop()
        except IndexError:
            cap = -1
        if cap != self._max_size:
            unpacker, self._unpacker_size = self._new_unpacker(), 0
        self._unpacker = unpacker
        self._fed = self._base = unpacker.tell()
        return unpacker

    def _let_go(self) -> None:
        """At a message boundary: the Unpacker holds nothing unparsed; it becomes the
        spare if its buffer did not grow much and there is none, else it goes."""
        unpacker = self._unpacker
        self._unpacker = None
        if unpacker is not None and self._unpacker_size <= _UNPACKER_KEPT and not _SPARE_UNPACKERS:
            _SPARE_UNPACKERS.append((unpacker, self._unpacker_size, self._max_size))
        self._unpacker_size = 0

    @property
    def buffered(self) -> int:
        """Bytes held of a message that is not complete yet."""
        return self._pending

    @property
    def footprint(self) -> int:
        """Memory the decoder takes beyond its own small size (what a budget charges):
        the pending message's bytes, and while it is partial msgpack's Unpacker
        (:data:`_UNPACKER_COST`) with what its buffer grew to while finding where the
        message ends (up to twice what it held unparsed at once). At a message boundary
        the decoder holds no Unpacker: 0."""
        if self._unpacker is None:
            return self._pending
        return self._pending + _UNPACKER_COST + self._unpacker_size

    def at_boundary(self) -> bool:
        return not self._pending

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[Any, int]]:
        if self.error is not None:
            raise self.error
        out: list[tuple[Any, int]] = []
        if type(data) is bytes and not self._parts and self._fed == self._base:
            # Nothing pending, the unpacker holds nothing: short ``bytes`` messages at the
            # start are taken without it (its offsets stay its own: those bytes are
            # never given to it).
            taken = _short_bin_messages(data, self._max_size, out)
            if taken:
                if taken == len(data):
                    return out
                data = memoryview(data)[taken:]
        n = len(data)
        if not n:
            return out
        unpacker = self._unpacker
        if unpacker is None:
            unpacker = self._take_unpacker()
        view = memoryview(data)
        offset = self._fed  # stream offset of data[0]
        start = 0  # data[start:] is not part of a message output yet
        pos = 0
        try:
            while pos < n:
                piece = view[pos : pos + _PIECE] if n > _PIECE else data
                try:
                    unpacker.feed(piece)
                except msgpack.BufferFull:  # (cannot happen: see _new_unpacker)
                    raise _Fatal(MessageTooLargeError(self._pending + pos - start, self._max_size, local=False)) from None
                pos += len(piece)
                self._fed = offset + pos
                unparsed = self._fed - unpacker.tell()
                if 2 * unparsed > self._unpacker_size:
                    self._unpacker_size = min(2 * unparsed, self._max_size + _PIECE)
                skip, tell = unpacker.skip, unpacker.tell
                while True:
                    try:
                        skip()
                    except msgpack.OutOfData:
                        break
                    except msgpack.StackError:
                        raise _Fatal(
                            RemoteProtocolError("malformed msgpack message: nested more than 1024 levels deep")
                        ) from None
                    except (msgpack.UnpackException, ValueError) as exc:
                        raise _Fatal(self._format_error(exc, view, offset)) from None
                    end = tell()
                    size = end - self._base
                    if size > self._max_size:
                        raise _Fatal(MessageTooLargeError(size, self._max_size, local=False))
                    stop = end - offset
                    if not self._parts and _is_short_bytes(view, start, size):
                        # the commonest message: no decoder needed
                        out.append((bytes(view[start + 2 : stop]), size))
                        start = stop
                        self._base = end
                        continue
                    if self._parts:
                        self._parts.append(view[start:stop])  # type: ignore[arg-type]  # (join takes any buffer)
                        payload = b"".join(self._parts)
                        self._parts = []
                        self._pending = 0
                    elif not start and stop == n and type(data) is bytes:
                        payload = data  # (the usual read: exactly one message)
                    else:
                        payload = bytes(view[start:stop])
                    value = self._decode_one(payload)
                    if isinstance(value, RemoteProtocolError):
                        self.failures += 1
                    out.append((value, size))
                    start = stop
                    self._base = end
                announced = self._announced_size(view, start, pos)  # (at least what is held)
                if announced > self._max_size:
                    raise _Fatal(MessageTooLargeError(announced, self._max_size, local=False))
        except _Fatal as fatal:
            self.error = fatal.args[0]
            self._parts = []
            self._pending = 0
            self._unpacker = None  # (in an unknown state: not a spare)
            self._unpacker_size = 0
            return out
        if start < n:
            # the pending message's bytes: ``data`` itself when all of it is (no copy)
            self._parts.append(data if not start and type(data) is bytes else bytes(view[start:]))
            self._pending += n - start
        elif not self._parts:
            self._let_go()  # (a boundary: the next read that needs one takes one)
        return out

    def _prefix(self, view: memoryview, start: int, stop: int, n: int) -> bytes:
        """The first ``n`` bytes (or fewer, if not there yet) of the pending message:
        the held parts, then ``view[start:stop]``."""
        head = b""
        for part in self._parts:
            head += part[: n - len(head)]
            if len(head) >= n:
                return head
        return head + bytes(view[start : min(stop, start + n - len(head))])

    def _format_error(self, exc: Exception, view: memoryview, offset: int) -> RemoteProtocolError:
        assert self._unpacker is not None  # (called while feed uses it)
        at = self._unpacker.tell()  # stream offset of the bad byte
        if isinstance(exc, msgpack.FormatError) and offset <= at < offset + len(view) and view[at - offset] == 0xC1:
            return RemoteProtocolError("malformed msgpack message: invalid code c1")
        return RemoteProtocolError(f"malformed msgpack message: {exc or type(exc).__name__}")

    def _announced_size(self, view: memoryview, start: int, stop: int) -> int:
        """Cheap lower bound of the pending message's size (its top-level header, or what is held)."""
        held = self._pending + stop - start
        if not held:
            return 0
        head = self._prefix(view, start, stop, 5)
        spec = _ANNOUNCED.get(head[0])
        if spec is None:
            return held
        nbytes, header, unit = spec
        if len(head) < 1 + nbytes:
            return held
        count = int.from_bytes(head[1 : 1 + nbytes], "big")
        return max(held, header + unit * count)

    # -- one message ------------------------------------------------------------

    def decode_sole(self, data: bytes) -> tuple[Any, int] | None:
        """:meth:`feed` for the usual read of a latency-bound exchange, quicker: if no
        message is pending and ``data`` is exactly one whole message that decodes, its
        value (a :class:`RemoteProtocolError` if one of its references is refused, as
        :meth:`feed` gives it) and size, without the Unpacker. Else None, and nothing was
        consumed: use :meth:`feed`."""
        n = len(data)
        if self._parts or self.error is not None or n > _SOLE_MAX or n > self._max_size:
            return None
        if n > 1 and _is_short_bytes(data, 0, n):
            return data[2:], n
        try:
            return self._decode_one(data, sole=True), n
        except (_NotSole, _Fatal):
            return None

    def _decode_one(self, payload: bytes, sole: bool = False) -> Any:
        """The message in ``payload``, or the :class:`RemoteProtocolError` that says why it
        cannot be had. ``sole``: ``payload`` is not known to be exactly one message, and
        any error while parsing it raises :class:`_NotSole` instead (it may not be one)."""
        refs: list[_Ref] = []

        def ext_hook(code: int, data: bytes) -> Any:
            kind = EXT_KINDS.get(code)
            if kind is not None:
                if len(data) == 4:
                    ref = _U32.unpack(data)[0]
                elif len(data) == 8:
                    ref = _U64.unpack(data)[0]
                else:
                    raise _ExtError("bad reference id")
                placeholder = _Ref(kind, ref)
                refs.append(placeholder)
                return placeholder
            if code == TIME_EXT:
                return _decode_time(data)
            raise _ExtError(f"extended type not registered (msgpack ext type {code})")

        try:
            try:
                value = msgpack.unpackb(payload, ext_hook=ext_hook, strict_map_key=False, timestamp=0)
                tuples = False
            except TypeError:
                if sole:
                    raise _NotSole from None
                # An array (or a reference) used as a map key: decode arrays as tuples,
                # then turn every array that is not a key back into a list.
                refs.clear()
                value = msgpack.unpackb(
                    payload, ext_hook=ext_hook, strict_map_key=False, timestamp=0, use_list=False
                )
                tuples = True
        except _ExtError as exc:
            if sole:
                raise _NotSole from None
            return RemoteProtocolError(str(exc))
        except UnicodeDecodeError as exc:
            if sole:
                raise _NotSole from None
            return RemoteProtocolError(f"malformed msgpack message: invalid UTF-8 in a str: {exc}")
        except (msgpack.UnpackException, ValueError, TypeError, OverflowError) as exc:
            if sole:  # (ExtraData: more than one message; "incomplete input": less)
                raise _NotSole from None
            return RemoteProtocolError(f"cannot decode msgpack message: {exc}")

        if tuples or len(payload) > self._max_depth or b"\xff" in payload:
            try:
                value = self._fix(value, 0, tuples)
            except _ExtError as exc:
                return RemoteProtocolError(str(exc))
            except RecursionError:
                raise _Fatal(RemoteProtocolError("incoming message is nested too deeply")) from None
        if refs:
            try:
                for placeholder in refs:
                    placeholder.obj = self._on_reference(placeholder.kind, placeholder.ref)
            except RemoteProtocolError as exc:
                return exc
            try:
                value = _resolve(value)
            except TypeError as exc:
                return RemoteProtocolError(f"a reference cannot be a map key: {exc}")
        return value

    def _fix(self, obj: Any, depth: int, tuples: bool) -> Any:
        """Check depth, reject msgpack timestamps (ext -1), turn non-key tuples into lists."""
        t = type(obj)
        if t is list or t is tuple or t is dict:
            depth += 1
            if depth > self._max_depth:
                raise _Fatal(
                    RemoteProtocolError(f"incoming message is nested more than {self._max_depth} levels deep")
                )
            if t is dict:
                for k, v in obj.items():
                    if type(k) is tuple or type(k) is msgpack.Timestamp:
                        self._check_key(k, depth)
                    if type(v) in _CONTAINERS_OR_TS:
                        obj[k] = self._fix(v, depth, tuples)
                return obj
            items = list(obj) if t is tuple else obj
            for i, v in enumerate(items):
                if type(v) in _CONTAINERS_OR_TS:
                    items[i] = self._fix(v, depth, tuples)
            return items
        if t is msgpack.Timestamp:
            raise _ExtError("extended type not registered (msgpack ext type -1)")
        return obj

    def _check_key(self, key: Any, depth: int) -> None:
        if type(key) is msgpack.Timestamp:
            raise _ExtError("extended type not registered (msgpack ext type -1)")
        if type(key) is tuple:
            depth += 1
            if depth > self._max_depth:
                raise _Fatal(
                    RemoteProtocolError(f"incoming message is nested more than {self._max_depth} levels deep")
                )
            for k in key:
                self._check_key(k, depth)


_CONTAINERS_OR_TS = {list, tuple, dict, msgpack.Timestamp}


def _decode_time(data: bytes) -> _dt.datetime:
    if len(data) != 12:
        raise _ExtError(f"bad time value: ext 6 payload of {len(data)} bytes, not 12")
    seconds, nanos = _TIME.unpack(data)
    try:
        return _EPOCH + _dt.timedelta(seconds=seconds + nanos // 1_000_000_000, microseconds=(nanos % 1_000_000_000) // 1000)
    except OverflowError:
        raise _ExtError(f"time out of range: {seconds} s since 1970") from None


def _resolve(obj: Any) -> Any:
    """Replace reference placeholders by the objects ``on_reference`` returned."""
    t = type(obj)
    if t is _Ref:
        return obj.obj
    if t is list:
        for i, v in enumerate(obj):
            if type(v) in _RESOLVE_TYPES:
                obj[i] = _resolve(v)
        return obj
    if t is dict:
        if any(type(k) in _RESOLVE_TYPES for k in obj):
            return {_resolve(k): _resolve(v) for k, v in obj.items()}
        for k, v in obj.items():
            if type(v) in _RESOLVE_TYPES:
                obj[k] = _resolve(v)
        return obj
    if t is tuple:
        return tuple(_resolve(v) for v in obj)
    return obj


_RESOLVE_TYPES = {_Ref, list, dict, tuple}
