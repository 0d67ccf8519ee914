"""Sans-IO message codec of the HTTP/2 profile: CBOR with reference tags.

A message is one CBOR data item (RFC 8949). Plain data uses the ordinary
CBOR types: null, booleans, integers of any size (bignum tags 2/3), floats,
text and byte strings, arrays, maps and date/times (tags 0 and 1). A Sender,
Receiver or byte stream anywhere inside the message is replaced by a tag whose
content is the *reference number* of the HTTP/2 stream that carries it:

====== ================ ===================================================
tag    Python object    the receiver of the message gets
====== ================ ===================================================
41400  Sender           a Sender: it sends, the message's sender receives
41401  Receiver         a Receiver: the message's sender sends to it
41402  duplex stream    a duplex byte stream
41403  read-only stream a byte stream it reads (the message's sender writes)
41404  write-only str.  a byte stream it writes (the message's sender reads)
====== ================ ===================================================

The codec does no I/O: the caller passes callbacks that turn a local object
into a reference number (encode) and a reference into an object (decode).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import fractions
import io
import ipaddress
import re
import uuid
from typing import Any, Callable, Literal

import cbor2

from ..errors import LocalProtocolError, MessageTooLargeError, RemoteProtocolError
from .framing import frame_header, sole_bstr

__all__ = ["Kind", "KindOf", "TAGS", "KINDS", "CborCodec", "plain_data"]

#: What a reference stands for, named by what the *receiver* of the message gets.
Kind = Literal["sender", "receiver", "stream", "read-stream", "write-stream"]

TAGS: dict[str, int] = {
    "sender": 41400,
    "receiver": 41401,
    "stream": 41402,
    "read-stream": 41403,
    "write-stream": 41404,
}
KINDS: dict[int, str] = {v: k for k, v in TAGS.items()}

# Tags cbor2 would decode into types outside libchan's data model.
_REJECTED_SEMANTIC_TAGS = (4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799)


def plain_data(obj: object) -> str | None:
    """The classifier of a codec that carries no channels: nothing is a reference."""
    return None


KindOf = Callable[[object], "str | None"]


def _reject_type(encoder: Any, value: Any) -> None:
    raise LocalProtocolError(
        f"cannot send a {type(value).__name__}: libchan messages hold None, bool, int, float, str,"
        " bytes, list, dict, datetime, Senders, Receivers and byte streams"
    )


_REJECTED_ENCODERS: dict[type, Callable[[Any, Any], None]] = {
    t: _reject_type
    for t in (
        set,
        frozenset,
        complex,
        decimal.Decimal,
        fractions.Fraction,
        uuid.UUID,
        _dt.date,
        _dt.time,
        re.Pattern,
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Network,
        ipaddress.IPv6Network,
        ipaddress.IPv4Interface,
        ipaddress.IPv6Interface,
        cbor2.CBORTag,
        cbor2.CBORSimpleValue,
        type(cbor2.undefined),
    )
}


def _encode_memoryview(encoder: Any, value: memoryview) -> None:
    encoder.encode(value.tobytes())


_REJECTED_ENCODERS[memoryview] = _encode_memoryview


class _Rejected(Exception):
    pass


def _make_semantic_rejector(tag: int) -> Callable[..., Any]:
    def reject(*args: Any) -> Any:
        raise _Rejected(f"message uses CBOR tag {tag}, which libchan does not accept")

    return reject


_SEMANTIC_DECODERS = {t: _make_semantic_rejector(t) for t in _REJECTED_SEMANTIC_TAGS}


class _Hooks:
    """What cbor2's callbacks need, held apart from the codec.

    cbor2's C encoder and decoder do not take part in garbage collection, so a callback
    that is a bound method of the codec that owns them makes a cycle that is never freed
    (one codec, decoder and buffer leaked per session). The callbacks are closures over
    this holder instead, which refers to neither.
    """

    __slots__ = ("kind_of", "on_object", "on_reference")

    def __init__(self, kind_of: KindOf) -> None:
        self.kind_of = kind_of
        self.on_object: Callable[[str, Any], int] | None = None
        self.on_reference: Callable[[str, int], Any] | None = None


def _make_default(hooks: _Hooks) -> Callable[[Any, Any], None]:
    def default(encoder: Any, value: Any) -> None:
        kind = hooks.kind_of(value)
        if kind is None:
            raise LocalProtocolError(f"cannot send a {type(value).__name__} in a libchan message")
        assert hooks.on_object is not None
        ref = hooks.on_object(kind, value)
        encoder.encode_length(6, TAGS[kind])  # major type 6: tag
        encoder.encode(ref)

    return default


def _make_tag_hook(hooks: _Hooks) -> Callable[..., Any]:
    def tag_hook(*args: Any) -> Any:
        tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
        kind = KINDS.get(tag.tag)
        if kind is None:
            raise _Rejected(f"message uses unknown CBOR tag {tag.tag}")
        ref = tag.value
        if type(ref) is not int or ref < 0:
            raise _Rejected(f"reference tag {tag.tag} must hold an unsigned integer, not {ref!r}")
        assert hooks.on_reference is not None
        return hooks.on_reference(kind, ref)

    return tag_hook


#: CborCodec.decode keeps its buffer and decoder after a message of at most this many bytes.
_KEEP_DECODER_BELOW = 16 * 1024


class CborCodec:
    """Encode and decode libchan messages as CBOR.

    ``encode(msg, on_object)`` calls ``on_object(kind, obj)`` for every
    Sender/Receiver/byte stream found and puts the returned reference number in
    its place. ``decode(payload, on_reference)`` calls
    ``on_reference(kind, ref)`` for every reference tag and puts the returned
    object in its place.
    """

    def __init__(
        self,
        *,
        max_message_size: int,
        max_depth: int,
        kind_of: KindOf = plain_data,
        reference_types: tuple[type, ...] = (),
    ) -> None:
        """``reference_types``: classes whose instances are references (``kind_of``
        names their kind), found by their exact type: cbor2 does not look any further
        for them. (cbor2 looks an object of another class up among types it imports on
        first need, ``email`` among them: about 10 ms of a short client's start-up.)"""
        self.max_message_size = max_message_size
        self.max_depth = max_depth
        # What a non-data object is sent as (``"sender"``...), or None: given by the
        # engine (:func:`libchan.engine.kinds.kind_of`), which knows the object types.
        self._hooks = _Hooks(kind_of)
        self._encoders = _REJECTED_ENCODERS
        if reference_types:
            default = _make_default(self._hooks)
            self._encoders = {**_REJECTED_ENCODERS, **{t: default for t in reference_types}}
        # One encoder and one decoder are reused (creating them per message
        # costs more than the coding itself); after any error they are
        # dropped, since cbor2's objects are not safe to reuse after one.
        self._encoder: cbor2.CBOREncoder | None = None
        self._decoder: Any = None
        self._fp = io.BytesIO()

    @property
    def kind_of(self) -> KindOf:
        return self._hooks.kind_of

    @kind_of.setter
    def kind_of(self, kind_of: KindOf) -> None:
        self._hooks.kind_of = kind_of

    def encode(self, msg: Any, on_object: Callable[[str, Any], int]) -> bytes:
        if type(msg) is bytes and len(msg) < self.max_message_size - 8:
            # the commonest message, byte for byte what cbor2 writes (a definite-length bstr)
            return frame_header(len(msg)) + msg
        if self._encoder is None:
            self._encoder = cbor2.CBOREncoder(
                io.BytesIO(), default=_make_default(self._hooks), timezone=_dt.timezone.utc, encoders=self._encoders
            )
        self._hooks.on_object = on_object
        try:
            payload = self._encoder.encode_to_bytes(msg)
        except BaseException as exc:
            self._encoder = None
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, (LocalProtocolError, MessageTooLargeError)):
                raise
            if isinstance(exc, RecursionError):
                raise LocalProtocolError("message is nested too deeply to encode") from exc
            cause = exc.__cause__ if isinstance(exc.__cause__, LocalProtocolError) else None
            if cause is not None:
                raise cause from None
            raise LocalProtocolError(f"cannot encode message: {exc}") from exc
        finally:
            self._hooks.on_object = None
        if len(payload) > self.max_message_size:
            raise MessageTooLargeError(len(payload), self.max_message_size, local=True)
        return payload

    def decode(self, payload: bytes, on_reference: Callable[[str, int], Any]) -> Any:
        n = len(payload)
        if n > self.max_message_size:
            raise MessageTooLargeError(n, self.max_message_size, local=False)
        body = sole_bstr(payload)  # a message that is one byte string: what cbor2 returns, without it
        if body is not None:
            return body
        fp = self._fp
        fp.seek(0)
        fp.truncate()
        fp.write(payload)
        fp.seek(0)
        if self._decoder is None:
            self._decoder = cbor2.CBORDecoder(
                fp,
                tag_hook=_make_tag_hook(self._hooks),
                semantic_decoders=_SEMANTIC_DECODERS,
                max_depth=self.max_depth,
                allow_indefinite=True,
            )
        self._hooks.on_reference = on_reference
        try:
            value = self._decoder.decode()
        except BaseException as exc:
            self._decoder = None
            self._fp = io.BytesIO()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(exc, RemoteProtocolError):
                raise
            cause = exc.__cause__
            if isinstance(cause, RemoteProtocolError):
                raise cause from None
            if isinstance(cause, _Rejected) or isinstance(exc, _Rejected):
                raise RemoteProtocolError(str(cause or exc)) from None
            raise RemoteProtocolError(f"malformed CBOR message: {exc}") from exc
        finally:
            self._hooks.on_reference = None
        if fp.tell() != len(payload):
            raise RemoteProtocolError(
                f"malformed CBOR message: {len(payload) - fp.tell()} trailing bytes after the item"
            )
        if n > _KEEP_DECODER_BELOW:
            # A large message leaves nothing of its size with the session: the buffer's copy
            # of it (until the next decode) and what cbor2's decoder keeps after it (up to
            # 34 KB) go; the next message makes a decoder again.
            fp.seek(0)
            fp.truncate()
            self._decoder = None
        return value
