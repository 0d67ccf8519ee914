"""Sans-IO SPDY/3.1 multiplexer, shaped to what the Go libchan peer needs.

It implements the same :class:`~.mux.Multiplexer` interface as the HTTP/2
one, on top of the :mod:`.spdy3` framer, and follows the wire facts recorded
from Go libchan (``../shared/interop/go-libchan/README.md``):

* both sides open streams (SYN_STREAM; client odd ids from 1, server even
  from 2); a peer stream is answered with SYN_REPLY ``:status: 200`` before
  anything is written on it (Go drops DATA that comes before its SYN_REPLY);
* closing a direction is an empty DATA frame with FIN, never FIN on a frame
  that carries data, on SYN_STREAM or on SYN_REPLY (Go never does);
* no flow control: Go sends no WINDOW_UPDATE and ignores ours, so none is
  sent and no send window is enforced (backpressure is TCP's);
* PINGs with the peer's parity are echoed, our own parity's are answers;
* never sent: HEADERS, SETTINGS, WINDOW_UPDATE or any frame Go cannot handle
  (a HEADERS frame wedges Go's frame workers);
* received SETTINGS, WINDOW_UPDATE, HEADERS and unknown control frames are
  ignored; DATA for an unknown stream is ignored; a SYN_STREAM whose id is not
  above the last one, or of the wrong parity, is refused with
  RST_STREAM(PROTOCOL_ERROR).

Stream error codes cross the interface as HTTP/2 codes and are translated.
"""

from __future__ import annotations

import struct

from .mux import (
    ENHANCE_YOUR_CALM,
    ConnectionEnded,
    DataReceived,
    FastLane,
    MuxEvent,
    StreamAnswered,
    StreamEnded,
    StreamOpened,
    StreamReset,
)
from .flood import EMPTY, PING, RESET, STREAM, FloodGuard, FloodLimits
from .spdy3 import (
    MAX_FRAME_LENGTH,
    Data,
    HeadersFrame,
    Settings,
    UnknownControl,
    WindowUpdate,
    Frame,
    FrameParser,
    FrameWriter,
    GoAway,
    Ping,
    RstStream,
    Spdy3ProtocolError,
    SynReply,
    SynStream,
    split_header_value,
)

__all__ = ["SpdyMultiplexer", "to_spdy_status", "from_spdy_status"]

# HTTP/2 error code -> SPDY/3 RST_STREAM status, and back. SPDY/3 has no
# ENHANCE_YOUR_CALM: a message over max_message_size is bad input from the peer, reset
# with PROTOCOL_ERROR as spec 19.5 says (CANCEL would tell Go a reader left).
_TO_SPDY = {0: 5, 1: 1, 2: 6, 3: 7, 5: 9, 6: 11, 7: 3, 8: 5, 11: 1}
_FROM_SPDY = {1: 1, 2: 5, 3: 7, 4: 1, 5: 8, 6: 2, 7: 3, 8: 1, 9: 5, 10: 1, 11: 6}

#: Bytes a header block may hold beyond ``max_header_list_size`` (zlib overhead and
#: the block's own length fields, which the list size does not count).
HEADER_BLOCK_SLACK = 1024

# The GOAWAY status of a flood is 1 (PROTOCOL_ERROR: SPDY/3 has no other); the
# ConnectionEnded event carries HTTP/2's ENHANCE_YOUR_CALM (mux.py) for the session's reason.

#: Largest DATA payload we write (Go accepts up to 16 MiB - 1).
MAX_DATA = 16 * 1024 * 1024 - 1


#: A DATA frame's header: stream id, then flags (none) and length.
_DATA_HEADER = struct.Struct(">II")
#: A DATA frame at least this long is handed out as its header and its payload's pieces
#: (the write gathers them), not copied into the output buffer.
_GATHER_FROM = 16 * 1024


def to_spdy_status(h2_code: int) -> int:
    return _TO_SPDY.get(h2_code, 1)


def from_spdy_status(status: int) -> int:
    return _FROM_SPDY.get(status, 1)


class _Stream:
    __slots__ = ("local_fin", "remote_fin", "ours")

    def __init__(self, ours: bool) -> None:
        self.ours = ours
        self.local_fin = False
        self.remote_fin = False


class SpdyMultiplexer:
    flow_controlled = False
    needs_end_marker = False
    #: The single-frame lanes (None when the fast paths are off).
    lane: FastLane | None = None
    input_pending = False  # (receive_data processes all it is given)

    def __init__(
        self,
        *,
        client_side: bool,
        max_frame_size: int = 1024 * 1024,
        max_data_frame_size: int = MAX_FRAME_LENGTH,
        max_header_list_size: int = 64 * 1024,
        flood: FloodLimits | None = None,
        fast_paths: bool = True,
    ) -> None:
        self.client_side = client_side
        if fast_paths:
            self.lane = FastLane(self._receive_sole_data, self._data_header_now)
        # Every length is checked on the 8-byte frame header (spec 19.3): DATA up to
        # max_data_frame_size (Go writes a message in one frame: the session passes
        # max(max_message_size, max_frame_size)), control frames up to a header block's
        # bound, fixed-size ones exactly.
        self._parser = FrameParser(
            min(max_data_frame_size, MAX_FRAME_LENGTH),
            max_header_block_size=max_header_list_size + HEADER_BLOCK_SLACK,
            max_control_frame_size=10 + max_header_list_size + HEADER_BLOCK_SLACK,
            stream_data=True,  # a DATA frame's payload is passed on as it arrives
        )
        self._guard = FloodGuard(flood or FloodLimits())
        self._now = 0.0
        self._writer = FrameWriter()
        self._out = bytearray()  # frames not yet handed out, after ...
        self._parts: list[bytes | memoryview] = []  # ... these (a large DATA frame's pieces: not copied)
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if client_side else 2
        self._last_peer_id = 0
        self._own_parity = 1 if client_side else 0
        self._next_ping = 1 if client_side else 2
        self._max_data = min(max_frame_size, MAX_DATA)
        self._closed = False
        self._peer_goaway_seen = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _send(self, frame: Frame) -> None:
        self._out += self._writer.serialize(frame)

    # -- input -------------------------------------------------------------------------
    @property
    def handshake_done(self) -> bool:
        """SPDY has no connection preface: always True."""
        return True

    @property
    def buffered_input(self) -> int:
        """Bytes of a partial frame held until the rest arrives."""
        return self._parser.buffered_bytes

    def receive_data(self, data: bytes, now: float | None = None) -> list[MuxEvent]:
        """Feed ``data``; ``now`` (seconds) is the time of the read for the flood
        limits (None: no time passed since the last call)."""
        if now is not None:
            self._now = now
        if self._closed:
            # After our GOAWAY only the peer's GOAWAY matters (both sides closing:
            # each must see the other's to stop waiting for the connection's end).
            if self._peer_goaway_seen or self._parser.failed:
                return []
            try:
                frames = self._parser.feed(data)
            except Spdy3ProtocolError:
                return []
            for f in frames:
                if isinstance(f, GoAway):
                    self._peer_goaway_seen = True
                    return [ConnectionEnded(0 if f.status == 0 else 1, f"peer sent GOAWAY (status {f.status})", True)]
            return []
        try:
            frames = self._parser.feed(data)
            error = None
        except Spdy3ProtocolError as exc:
            frames = list(getattr(exc, "frames", []))
            error = exc
        out: list[MuxEvent] = []
        guard = self._guard
        for frame in frames:
            kind = self._flood_kind(frame)
            if kind is not None and not guard.allow(kind, self._now):
                self._closed = True
                self._send(GoAway(self._last_peer_id, 1))
                out.append(ConnectionEnded(ENHANCE_YOUR_CALM, f"SPDY protocol error from peer: {guard.tripped}", False))
                return out
            self._handle(frame, out)
            if self._closed:
                return out
        if error is not None:
            self._closed = True
            self._send(GoAway(self._last_peer_id, 1))
            out.append(ConnectionEnded(1, f"SPDY protocol error from peer: {error}", False))
        return out

    def _receive_sole_data(self, data: bytes) -> tuple[int, bytes] | None:
        """If ``data`` is exactly one DATA frame without flags, carrying something, on a
        stream whose peer direction is open, with no frame pending before it (a
        latency-bound exchange's usual read): ``(stream_id, payload)``, what
        :meth:`receive_data` would report as its one DataReceived. Else None, and
        nothing was consumed (use :meth:`receive_data`)."""
        n = len(data)
        if n <= 8 or data[0] & 0x80 or data[4] or self._closed or not self._parser.at_boundary:
            return None
        length = (data[5] << 16) | (data[6] << 8) | data[7]
        if length != n - 8 or length > self._parser.max_frame_size:
            return None
        sid = (data[0] << 24) | (data[1] << 16) | (data[2] << 8) | data[3]
        st = self._streams.get(sid)
        if st is None or st.remote_fin:
            return None
        return sid, data[8:]

    def _data_header_now(self, stream_id: int, length: int) -> bytes | None:
        """For a task that writes one DATA frame of ``length`` bytes itself, at once:
        its 8-byte header -- only if no other output is queued to go first (a SYN_REPLY
        must precede the first DATA: Go drops DATA before it) and the stream may send.
        Else None, and nothing changed (queue the data instead)."""
        if self._out or self._parts or not 0 < length <= self._max_data or self._closed:
            return None
        st = self._streams.get(stream_id)
        if st is None or st.local_fin:
            return None
        return _DATA_HEADER.pack(stream_id, length)

    def _flood_kind(self, f: Frame) -> str | None:
        """Which flood limit a frame counts against (flood.py; None: none)."""
        if isinstance(f, Data):
            return EMPTY if not f.data and not f.fin else None
        if isinstance(f, SynStream):
            return STREAM
        if isinstance(f, RstStream):
            return RESET
        if isinstance(f, Ping):
            return PING if f.ping_id % 2 != self._own_parity else None
        if isinstance(f, (Settings, WindowUpdate, HeadersFrame, UnknownControl)):
            return EMPTY
        return None

    def _handle(self, f: object, out: list[MuxEvent]) -> None:
        if isinstance(f, Data):
            st = self._streams.get(f.stream_id)
            if st is None or st.remote_fin:
                return  # Go ignores DATA on unknown streams too
            if f.data:
                out.append(DataReceived(f.stream_id, f.data, len(f.data)))
            if f.fin:
                st.remote_fin = True
                out.append(StreamEnded(f.stream_id))
                self._forget_if_done(f.stream_id)
        elif isinstance(f, SynStream):
            sid = f.stream_id
            if sid % 2 == self._own_parity or sid <= self._last_peer_id or sid in self._streams:
                self._send(RstStream(sid, 1))
                return
            self._last_peer_id = sid
            st = _Stream(ours=False)
            self._streams[sid] = st
            headers = {name: split_header_value(value)[0] for name, value in f.headers}
            out.append(StreamOpened(sid, headers, f.fin))
            if f.fin:
                st.remote_fin = True
                out.append(StreamEnded(sid))
        elif isinstance(f, SynReply):
            st = self._streams.get(f.stream_id)
            if st is None or not st.ours:
                return
            headers = {name: split_header_value(value)[0] for name, value in f.headers}
            out.append(StreamAnswered(f.stream_id, headers, f.fin))
            if f.fin:
                st.remote_fin = True
                out.append(StreamEnded(f.stream_id))
                self._forget_if_done(f.stream_id)
        elif isinstance(f, RstStream):
            if self._streams.pop(f.stream_id, None) is not None:
                out.append(StreamReset(f.stream_id, from_spdy_status(f.status), True))
        elif isinstance(f, Ping):
            if f.ping_id % 2 != self._own_parity:
                self._send(Ping(f.ping_id))  # the peer's ping: echo it
        elif isinstance(f, GoAway):
            self._closed = True
            self._peer_goaway_seen = True
            out.append(ConnectionEnded(0 if f.status == 0 else 1, f"peer sent GOAWAY (status {f.status})", True))
        # SETTINGS, WINDOW_UPDATE, HEADERS and unknown control frames: ignored, as Go does.

    def _forget_if_done(self, sid: int) -> None:
        st = self._streams.get(sid)
        if st is not None and st.local_fin and st.remote_fin:
            del self._streams[sid]

    def _flush_out(self) -> None:
        """The frames in ``_out`` go after ``_parts`` (whatever is added next goes after them)."""
        if self._out:
            self._parts.append(bytes(self._out))
            self._out.clear()

    def data_chunks(self) -> list[bytes | memoryview]:
        self._flush_out()
        parts, self._parts = self._parts, []
        return parts

    def has_output(self) -> bool:
        return bool(self._out or self._parts)

    def data_to_send(self) -> bytes:
        return b"".join(self.data_chunks())

    # -- output ------------------------------------------------------------------------
    def can_open_stream(self) -> bool:
        return not self._closed

    def open_stream(self, headers: list[tuple[str, str]], end_stream: bool = False) -> int:
        sid = self._next_id
        self._next_id += 2
        self._streams[sid] = _Stream(ours=True)
        self._send(SynStream(sid, tuple(headers)))
        if end_stream:
            self.end_stream(sid)
        return sid

    def answer_stream(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool = False) -> None:
        if stream_id not in self._streams:
            raise KeyError(f"stream {stream_id} is closed")
        self._send(SynReply(stream_id, ((":status", "200"),)))
        if end_stream:
            self.end_stream(stream_id)

    def sendable(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        if st is None or st.local_fin or self._closed:
            return 0
        return self._max_data

    def send_data_parts(self, stream_id: int, parts: list[bytes | memoryview], end_stream: bool = False) -> None:
        st = self._streams.get(stream_id)
        if st is None or st.local_fin:
            raise KeyError(f"stream {stream_id} is closed")
        n = sum(len(p) for p in parts)
        if n >= _GATHER_FROM:
            # a large frame: its header, then the pieces as they are (gathered by the write)
            header = self._writer.data_header(stream_id, n)
            self._flush_out()
            self._parts.append(header)
            self._parts.extend(parts)
        elif n:
            self._send(Data(stream_id, parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)))
        if end_stream:
            self.end_stream(stream_id)

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> None:
        self.send_data_parts(stream_id, [data], end_stream)

    def end_stream(self, stream_id: int) -> None:
        st = self._streams.get(stream_id)
        if st is None or st.local_fin:
            raise KeyError(f"stream {stream_id} is closed")
        st.local_fin = True
        self._send(Data(stream_id, b"", fin=True))
        self._forget_if_done(stream_id)

    def reset_stream(self, stream_id: int, error_code: int = 8) -> None:
        if self._streams.pop(stream_id, None) is not None or stream_id > 0:
            if not self._closed:
                self._send(RstStream(stream_id, to_spdy_status(error_code)))

    def acknowledge(self, stream_id: int | None, size: int) -> None:
        """No flow control with Go: nothing to acknowledge."""

    def ping(self) -> None:
        if not self._closed:
            self._send(Ping(self._next_ping))
            self._next_ping = (self._next_ping + 2) & 0xFFFFFFFF or (1 if self.client_side else 2)

    def close(self, error_code: int = 0, reason: str = "") -> None:
        if not self._closed:
            self._closed = True
            self._send(GoAway(self._last_peer_id, 0 if error_code == 0 else 1))
