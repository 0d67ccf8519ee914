"""Wire profiles: what differs between HTTP/2 + CBOR and Go's SPDY/3.1 + msgpack.

The session is written once; a profile supplies its multiplexer, its body
encodings and a few rules:

========================  =========================  ============================
rule                      ``h2`` (default)           ``spdy`` (Go libchan)
========================  =========================  ============================
multiplexer               HTTP/2 (h2)                SPDY/3.1 (:mod:`.spdy3`)
who opens streams         client; server via parks   either side
session close             control stream             GOAWAY
channel body              CBOR in byte-string items  concatenated msgpack
byte-stream body          byte-string items          raw bytes
keepalive                 1-byte item + PING         PING
stream kind known from    headers                    the message's ext code
reference numbers         client odd, server even    each side from 2, +1
flow control              per stream, end to end     none (Go has none): TCP
========================  =========================  ============================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..config import Config
from ..messages.bodies import FramedChunks, FramedMessages, GoMessages, RawChunks
from ..messages.framing import frame_header
from ..spdy_like.flood import FloodLimits
from .kinds import kind_of

#: Messages shorter than this are queued as one piece (header + payload joined).
_JOIN_BELOW = 16 * 1024

#: For a bytes message of n < 250 bytes: the item header of its encoded message
#: followed by the message's own CBOR head (see short_bytes_framing).
_SHORT_HEADS = [frame_header(n + len(frame_header(n))) + frame_header(n) for n in range(250)]

if TYPE_CHECKING:
    from ..spdy_like.mux import Multiplexer
    from .seams import Profile, SessionPort

__all__ = ["H2Profile", "SpdyProfile", "PROFILES", "get_profile"]


class H2Profile:
    name = "h2"
    #: The server cannot open streams itself; the client keeps parked requests.
    parks = True
    #: Session open/close is said on a control stream.
    control_stream = True
    #: Idle streams get a 1-byte keepalive item.
    keepalive_data = True
    #: Stream headers carry the kind (libchan-type).
    kind_in_headers = True
    #: Reference numbers: client odd, server even (True) or each side from 2 (False).
    ref_parity = True
    flow_controlled = True
    chunk_size = 64 * 1024

    def make_mux(self, *, client_side: bool, config: Config) -> Multiplexer:
        from ..spdy_like.h2mux import H2Multiplexer

        return H2Multiplexer.for_config(config, client_side=client_side)

    def make_codec(self, config: Config) -> Any:
        from ..messages.cbor_codec import CborCodec

        return CborCodec(max_message_size=config.max_message_size, max_depth=config.max_nesting_depth, kind_of=kind_of)

    def message_body(self, session: SessionPort) -> Any:
        return FramedMessages(session.config.max_message_size, session.decode)

    def bytes_body(self, session: SessionPort) -> Any:
        return FramedChunks(session.config.max_message_size)

    def control_body(self, session: SessionPort) -> Any:
        return FramedChunks(session.config.max_message_size)

    def wire_message(self, payload: bytes) -> bytes | tuple[bytes, bytes]:
        """What goes on the wire for one encoded message: one piece for a small
        message, two for a large one (header and payload, to avoid a copy)."""
        if len(payload) < _JOIN_BELOW:
            return frame_header(len(payload)) + payload
        return frame_header(len(payload)), payload

    def chunk_header(self, length: int) -> bytes:
        """What precedes a byte-stream chunk of ``length`` bytes on the wire."""
        return frame_header(length)

    def short_bytes_framing(self, max_message_size: int) -> tuple[int, list[bytes]]:
        """``(below, heads)``: a message that is a ``bytes`` of n < ``below`` bytes
        (the commonest message) goes on the wire as ``heads[n] + value``, exactly
        ``wire_message(codec.encode(value))`` without the two steps."""
        return max(0, min(250, max_message_size - 8)), _SHORT_HEADS


_BIN8_HEADS = [bytes((0xC4, n)) for n in range(256)]


class SpdyProfile:
    name = "spdy"
    parks = False
    control_stream = False
    keepalive_data = False
    kind_in_headers = False
    ref_parity = False
    flow_controlled = False
    chunk_size = 32 * 1024  # what Go's io.Copy writes

    def make_mux(self, *, client_side: bool, config: Config) -> Multiplexer:
        from ..spdy_like.spdymux import SpdyMultiplexer

        return SpdyMultiplexer(
            client_side=client_side,
            max_frame_size=config.max_frame_size,
            max_data_frame_size=max(config.max_message_size, config.max_frame_size),
            max_header_list_size=config.max_header_list_size,
            flood=FloodLimits.of(config),
            fast_paths=config.fast_paths,
        )

    def make_codec(self, config: Config) -> Any:
        from ..messages.msgpack_codec import MsgpackCodec

        return MsgpackCodec(max_message_size=config.max_message_size, max_depth=config.max_nesting_depth, kind_of=kind_of)

    def message_body(self, session: SessionPort) -> Any:
        from ..messages.msgpack_codec import MsgpackStreamDecoder

        return GoMessages(MsgpackStreamDecoder(session.codec, session.on_reference))

    def bytes_body(self, session: SessionPort) -> Any:
        return RawChunks()

    def control_body(self, session: SessionPort) -> Any:
        return RawChunks()

    def wire_message(self, payload: bytes) -> bytes:
        return payload

    def short_bytes_framing(self, max_message_size: int) -> tuple[int, list[bytes]]:
        """A ``bytes`` of n < 256 bytes is msgpack's bin 8: ``c4 n`` then the bytes (a
        message is its own payload here: no framing around it)."""
        return max(0, min(256, max_message_size - 1)), _BIN8_HEADS

    def chunk_header(self, length: int) -> bytes:
        return b""


PROFILES: dict[str, Callable[[], Profile]] = {"h2": H2Profile, "spdy": SpdyProfile}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(f"unknown libchan profile {name!r} (use 'h2' or 'spdy')") from None
