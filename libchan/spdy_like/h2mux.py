"""Sans-IO HTTP/2 multiplexer: the ``h2`` library behind the :class:`Multiplexer` interface.

Standard RFC 9113 only: the settings we send are ordinary ones
(INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_CONCURRENT_STREAMS, ENABLE_PUSH=0,
MAX_HEADER_LIST_SIZE), no private frame types. Flow control is acknowledged
explicitly by the caller: the connection window as soon as data arrives, each
stream's window only when the application consumed the data, which is what
makes a slow reader push back on its sender end to end.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

if TYPE_CHECKING:
    from ..config import Config

from ..compat.h2 import (
    DataFastPath,
    make_settings,
    PeerCountedH2Connection,
    SharedDispatchH2Connection,
    StreamCounter,
    limit_closed_streams,
    raise_stream_limit,
)
from ..compat.hpack import compact_header_tables
from ..compat.hyperframe import install_cheap_repr
from .flood import EMPTY, PING, RESET, STREAM, FloodGuard, FloodLimits
from .h2frames import (
    data_header,
    FLAG_ACK,
    FLAG_END_HEADERS,
    FLAG_END_STREAM,
    FLAG_PADDED,
    HEADER_LEN,
    TYPE_CONTINUATION,
    TYPE_DATA,
    TYPE_HEADERS,
    TYPE_PING,
    TYPE_PRIORITY,
    TYPE_PUSH_PROMISE,
    TYPE_RST_STREAM,
    TYPE_SETTINGS,
    TYPE_WINDOW_UPDATE,
)
from .mux import (
    ConnectionEnded,
    DataReceived,
    FastLane,
    MuxEvent,
    StreamAnswered,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
)

__all__ = ["H2Multiplexer", "PREFACE"]


#: Most frames one receive_data call hands to h2 (HEADERS, SETTINGS, PING...; fast
#: DATA frames are not counted): a read full of requests (9,000 GETs fit in 256 KiB)
#: is processed in slices of this many, and the link lets other connections and tasks
#: run between them (about 10 ms of work per slice for requests answered at once).
_H2_FRAMES_PER_CALL = 100
#: Most new streams (requests) one call lets open: each may start a session and its
#: handler, far more work than any other frame, so a connection that floods requests
#: gets this many per turn while the other connections get theirs.
_NEW_STREAMS_PER_CALL = 4
#: A plain DATA frame longer than this that the fast path accepts is passed on piece by
#: piece as its payload arrives, instead of being buffered whole (a 1 MiB frame read in
#: 256 KiB pieces was copied four times over on its way in).
_STREAM_FRAMES_OVER = 32 * 1024

#: Bytes a header block may hold beyond ``max_header_list_size`` (see max_header_block).
HEADER_BLOCK_SLACK = 4096

_HEADER_BLOCK_TYPES = (TYPE_HEADERS, TYPE_PUSH_PROMISE, TYPE_CONTINUATION)

#: The first bytes an HTTP/2 client sends (RFC 9113 section 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

CANCEL = h2.errors.ErrorCodes.CANCEL
ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
FRAME_SIZE_ERROR = h2.errors.ErrorCodes.FRAME_SIZE_ERROR
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM


#: h2's configuration of a client's and of a server's connections: the same for all
#: (h2 only reads it), so shared instead of 350 bytes more per connection.
_H2_CONFIGS = {
    side: h2.config.H2Configuration(client_side=side, header_encoding="utf-8", validate_inbound_headers=True)
    for side in (False, True)
}


class H2Multiplexer:
    flow_controlled = True

    # (slots: one per connection, thousands of idle ones)
    __slots__ = ("_block_bytes", "client_side", "_closed", "_conn", "counter",
        "_data_frames_credited", "_data_frames_sent", "_data_left", "_data_sid", "_fast", "_guard", "_in_header_block",
        "_inbuf", "_input_dead", "input_pending", "lane", "_last_peer_stream", "max_header_block",
        "_max_header_list_size", "_max_peer_streams", "needs_end_marker", "_now", "_out",
        "_peer_goaway_seen", "_peer_parity", "_peer_settings_seen", "_preface_left",
        "refused_streams")

    @classmethod
    def for_config(cls, config: Config, *, client_side: bool) -> H2Multiplexer:
        """A multiplexer with ``config``'s windows and limits (what every libchan
        connection of the HTTP/2 profile uses)."""
        return cls(
            client_side=client_side,
            stream_window=config.stream_window,
            connection_window=config.connection_window,
            max_frame_size=config.max_frame_size,
            max_concurrent_streams=min(config.max_streams, 2**31 - 1),
            max_header_list_size=config.max_header_list_size,
            fast_paths=config.fast_paths,
            flood=FloodLimits.of(config),
        )

    def __init__(
        self,
        *,
        client_side: bool,
        stream_window: int = 1024 * 1024,
        connection_window: int = 64 * 1024 * 1024,
        max_frame_size: int = 1024 * 1024,
        max_concurrent_streams: int = 10_000,
        max_header_list_size: int = 64 * 1024,
        fast_paths: bool = True,
        flood: FloodLimits | None = None,
    ) -> None:
        self.client_side = client_side
        #: An HTTP/2 server ends its direction early with the in-body end marker.
        self.needs_end_marker = not client_side
        config = _H2_CONFIGS[client_side]
        # (h2's per-stream count of the peer's streams is replaced by _refuse_excess's per read)
        factory: type[h2.connection.H2Connection] = h2.connection.H2Connection
        if SharedDispatchH2Connection.usable():  # (also PeerCounted, and without a dispatch dict each)
            factory = SharedDispatchH2Connection
        elif PeerCountedH2Connection.usable():
            factory = PeerCountedH2Connection
        self._conn = factory(config=config)
        #: The open streams of each side, counted as they open and close (compat/h2.py).
        self.counter = StreamCounter(self._conn)
        if isinstance(self._conn, PeerCountedH2Connection):
            self._conn.counter = self.counter
        # (settings in lists, not deques: 9 KB less per connection; see compat/h2.py)
        self._conn.remote_settings = make_settings(not client_side)
        self._conn.local_settings = make_settings(
            client_side,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame_size,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        # The settings above are ours from the start; accept frames of the size
        # we advertise even before the peer acknowledges them.
        self._conn.max_inbound_frame_size = max_frame_size
        self._conn.decoder.max_header_list_size = max_header_list_size
        self._conn.incoming_buffer.max_frame_size = max_frame_size
        self._conn.initiate_connection()
        compact_header_tables(self._conn.encoder, self._conn.decoder)  # (1.3 KB less: compat/hpack.py)
        # h2 remembers the last 2**16 closed streams (to tell late frames from
        # errors); with sessions that churn through many short streams that is
        # megabytes per connection. Frames for a stream closed 4096 streams ago
        # are not in flight any more.
        limit_closed_streams(self._conn, 4096)
        # Peers are told the real limit (the SETTINGS just serialized). RFC 9113 5.1.2
        # makes exceeding it a *stream* error: a stream the peer opens while this many
        # of its streams are open or half-closed on this connection is reset with
        # REFUSED_STREAM here (_refuse_excess), whatever its session. h2's own check
        # would make it a connection error, so h2 itself is given a higher limit.
        self._max_peer_streams = max_concurrent_streams
        raise_stream_limit(self._conn, min(2**31 - 1, max_concurrent_streams * 2 + 16))
        #: Peer streams refused for the connection's limit so far (for tests and logs).
        self.refused_streams = 0
        if connection_window > 65535:
            self._conn.increment_flow_control_window(connection_window - 65535)
        self._closed = False
        self._peer_goaway_seen = False
        # Plain DATA frames bypass h2's per-frame objects (see compat/h2.py).
        self._fast = DataFastPath(self._conn) if fast_paths and DataFastPath.usable(self._conn) else None
        if self._fast is not None:
            install_cheap_repr()
        #: The single-frame lanes (None when the fast path is off).
        self.lane = FastLane(self._receive_sole_data, self._data_header_now) if self._fast is not None else None
        self._inbuf = b""  # input not yet split into frames, or not yet given to h2
        self._data_left = 0  # payload still to come of a DATA frame passed on piece by piece
        self._data_sid = 0  # ... and its stream
        #: Frames are buffered that the last receive_data call left for the next one.
        self.input_pending = False
        self._preface_left = 0 if client_side else len(PREFACE)
        self._peer_settings_seen = False
        self._in_header_block = False  # a HEADERS/PUSH_PROMISE awaits its CONTINUATION
        self._input_dead = False  # we ended the connection on a frame header
        self._block_bytes = 0  # wire bytes of the header block so far (frame headers too)
        self._max_header_list_size = max_header_list_size
        #: Largest header block accepted, counted in wire bytes as it arrives (frame
        #: headers, padding and all): ``max_header_list_size`` plus a slack for what a
        #: block holds beyond its fields (padding, priority, frame headers, HPACK
        #: overhead, which is below the 32 bytes per field the list size counts).
        self.max_header_block = max_header_list_size + HEADER_BLOCK_SLACK
        self._guard = FloodGuard(flood or FloodLimits())
        self._now = 0.0
        self._peer_parity = 0 if client_side else 1
        self._last_peer_stream = 0
        self._data_frames_sent = 0  # (each allows the peer two WINDOW_UPDATEs: flood.py)
        self._data_frames_credited = 0
        self._out: list[bytes | memoryview] = []  # output in order, before h2's own buffer

    # -- input ---------------------------------------------------------------
    @property
    def handshake_done(self) -> bool:
        """A server has the client's whole connection preface: its 24 octets and the
        SETTINGS frame after them (a client: always True, connect() waits for the server)."""
        return self.client_side or (not self._preface_left and self._peer_settings_seen)

    @property
    def buffered_input(self) -> int:
        """Input bytes held for later (a partial frame, frames left for the next call;
        not the part in of a large DATA frame, which went to its stream)."""
        return len(self._inbuf)

    def receive_data(self, data: bytes, now: float | None = None) -> list[MuxEvent]:
        """Feed ``data`` (after whatever is still buffered) and return the events.

        ``now`` (seconds, any origin) is the time of the read, for the flood limits
        (:mod:`.flood`); None: no time passed since the last call.

        Every frame header is checked as soon as its 9 bytes are in, before any of its
        payload is buffered: a length over our MAX_FRAME_SIZE is a connection error
        (FRAME_SIZE_ERROR, RFC 9113 4.2), and so is a header block (HEADERS or
        PUSH_PROMISE and its CONTINUATIONs, frame headers included) growing past
        :attr:`max_header_block` (ENHANCE_YOUR_CALM); a frame that exceeds a flood
        limit is one too (ENHANCE_YOUR_CALM).

        A plain DATA frame (no flags) of more than 32 KiB that the fast path accepts is
        passed on as its payload arrives, in several DataReceived whose flow lengths sum
        to the frame's, instead of being buffered whole.

        At most :data:`_H2_FRAMES_PER_CALL` frames go to h2 per call (DATA frames
        that take the fast path are not counted): when more are buffered,
        :attr:`input_pending` is True and the caller calls again (with ``b""``, or
        with more data, which goes after them), letting other work run in between."""
        self.input_pending = False
        if now is not None:
            self._now = now
        if self._closed:
            if self._input_dead:
                return []
            if self._data_left and data:  # (the rest of a DATA frame passed on in pieces)
                n = min(self._data_left, len(data))
                self._data_left -= n
                data = data[n:]
            if self._inbuf:  # (frames left for a next call when the connection ended)
                data, self._inbuf = self._inbuf + data, b""
            return self._h2_receive(data)
        events: list[MuxEvent] = []
        if self._preface_left and data:
            # the client preface goes to h2 (which checks it) before any frame
            n = min(self._preface_left, len(data))
            self._preface_left -= n
            events.extend(self._h2_receive(data[:n]))
            data = data[n:]
            if self._closed:
                return events
        buf = self._inbuf + data if self._inbuf else data
        end = len(buf)
        pos = 0
        if self._data_left and end:
            # the rest of a DATA frame whose header (and flow control) came before
            # (_inbuf is empty meanwhile: nothing is buffered behind a partial frame)
            pos = min(self._data_left, end)
            self._data_left -= pos
            # (a view, not a copy: the stream's decoder copies what it keeps, once)
            events.append(DataReceived(self._data_sid, buf if pos == end and type(buf) is bytes else memoryview(buf)[:pos], pos))
        slow = -1  # start of frames h2 has not seen yet
        fast = self._fast
        max_size = self._conn.max_inbound_frame_size
        budget = _H2_FRAMES_PER_CALL
        new_streams = _NEW_STREAMS_PER_CALL
        while end - pos >= HEADER_LEN:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            ftype = buf[pos + 3]
            flags = buf[pos + 4]
            stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if length > max_size:
                # RFC 9113 4.2: FRAME_SIZE_ERROR, decided on the header alone
                return self._fail_at(events, buf, slow, pos, FRAME_SIZE_ERROR,
                                     f"frame of {length} bytes (type {ftype}) exceeds our MAX_FRAME_SIZE of {max_size}")
            if ftype in _HEADER_BLOCK_TYPES:
                block = HEADER_LEN + length + (self._block_bytes if ftype == TYPE_CONTINUATION and self._in_header_block else 0)
                if block > self.max_header_block:
                    return self._fail_at(events, buf, slow, pos, ENHANCE_YOUR_CALM,
                                         f"header block of more than {self.max_header_block} bytes (max_header_list_size {self._max_header_list_size})")
            stop = pos + HEADER_LEN + length
            partial = stop > end
            if (
                fast is not None
                and ftype == TYPE_DATA
                and length
                and not flags & (FLAG_END_STREAM | FLAG_PADDED)
                and not self._in_header_block
                and (not partial or length > _STREAM_FRAMES_OVER)
            ):
                # a plain DATA frame, whole; or a large one in part, of which what is in
                # is passed on now and the rest as it comes
                if slow >= 0:  # h2 first sees the frames before this one (HEADERS that open its stream...)
                    events.extend(self._h2_receive(buf[slow:pos]))
                    slow = -1
                    if self._closed:
                        self._inbuf = b""
                        return events
                if fast.receive(stream_id, length):
                    if partial:
                        self._data_left = stop - end
                        self._data_sid = stream_id
                        if end > pos + HEADER_LEN:
                            events.append(DataReceived(stream_id, memoryview(buf)[pos + HEADER_LEN : end], end - pos - HEADER_LEN))
                        pos = end
                        break
                    events.append(DataReceived(stream_id, bytes(buf[pos + HEADER_LEN : stop]), length))
                    pos = stop
                    continue
            if partial:
                break
            if budget <= 0 or (
                not new_streams
                and ftype == TYPE_HEADERS
                and stream_id > self._last_peer_stream
                and stream_id % 2 == self._peer_parity
            ):
                self.input_pending = True  # the rest on the next call
                break
            budget -= 1
            kind = self._flood_kind(ftype, flags, length, stream_id)
            if kind is STREAM:
                new_streams -= 1
            if kind is not None:
                if kind is EMPTY and self._data_frames_sent != self._data_frames_credited:
                    self._guard.data_sent(self._data_frames_sent - self._data_frames_credited)
                    self._data_frames_credited = self._data_frames_sent
                if not self._guard.allow(kind, self._now):
                    return self._fail_at(events, buf, slow, pos, ENHANCE_YOUR_CALM, cast(str, self._guard.tripped))
            if ftype in _HEADER_BLOCK_TYPES:
                self._in_header_block = not flags & FLAG_END_HEADERS
                self._block_bytes = block
            if slow < 0:
                slow = pos
            pos = stop
        if slow >= 0:
            events.extend(self._h2_receive(buf[slow:pos]))
        self._inbuf = bytes(buf[pos:]) if pos < end and not self._closed else b""
        return events

    def _flood_kind(self, ftype: int, flags: int, length: int, stream_id: int) -> str | None:
        """Which flood limit a frame counts against (None: none)."""
        if ftype == TYPE_DATA:
            return EMPTY if not flags & FLAG_END_STREAM and length <= (1 if flags & FLAG_PADDED else 0) else None
        if ftype == TYPE_HEADERS:
            if stream_id > self._last_peer_stream and stream_id % 2 == self._peer_parity:
                self._last_peer_stream = stream_id
                return STREAM
            return None
        if ftype == TYPE_RST_STREAM:
            return RESET
        if ftype in (TYPE_PING, TYPE_SETTINGS):
            return None if flags & FLAG_ACK else PING
        if ftype in (TYPE_WINDOW_UPDATE, TYPE_PRIORITY) or ftype > TYPE_CONTINUATION:
            return EMPTY
        return None

    def _fail_at(self, events: list[MuxEvent], buf: bytes, slow: int, pos: int, code: int, reason: str) -> list[MuxEvent]:
        """A connection error found at the frame starting at ``pos``: h2 first sees the
        frames before it (from ``slow``), then GOAWAY(``code``) is queued, nothing more
        is buffered, and the events end with ConnectionEnded."""
        if slow >= 0:
            events.extend(self._h2_receive(buf[slow:pos]))
        self._inbuf = b""
        if self._closed:
            return events
        self._closed = True
        self._input_dead = True  # (the input is no longer frame-aligned: none is read again)
        try:
            self._conn.close_connection(code, reason.encode()[:256])
        except h2.exceptions.ProtocolError:
            pass
        events.append(ConnectionEnded(code, f"HTTP/2 protocol error from peer: {reason}", False))
        return events

    def _receive_sole_data(self, data: bytes) -> tuple[int, bytes] | None:
        """If ``data`` is exactly one plain DATA frame (no flags) that the fast path
        accepts, with nothing buffered before it -- a latency-bound exchange's usual
        read -- account for it and return ``(stream_id, payload)``: what
        :meth:`receive_data` would report as one DataReceived. Else None, and
        nothing was consumed (use :meth:`receive_data`)."""
        fast = self._fast
        if fast is None or self._inbuf or self._data_left or self._preface_left or self._in_header_block or self._closed:
            return None
        n = len(data)
        if n <= HEADER_LEN or data[3] != TYPE_DATA or data[4]:  # (an empty DATA is counted: receive_data)
            return None
        length = (data[0] << 16) | (data[1] << 8) | data[2]
        if length + HEADER_LEN != n or length > self._conn.max_inbound_frame_size:
            return None
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        if not fast.receive(stream_id, length):
            return None
        return stream_id, data[HEADER_LEN:]

    def _h2_receive(self, data: bytes) -> list[MuxEvent]:
        """Let h2 process ``data`` (whole frames, or anything once the fast path is off)."""
        if self._closed:
            # After our GOAWAY only the peer's GOAWAY matters (see SpdyMultiplexer).
            if self._peer_goaway_seen:
                return []
            try:
                events = self._conn.receive_data(data)
            except (h2.exceptions.ProtocolError, UnicodeDecodeError):
                return []
            for ev in events:
                if isinstance(ev, h2.events.ConnectionTerminated):
                    self._peer_goaway_seen = True
                    # (h2 always sets error_code on the ConnectionTerminated it emits)
                    return [ConnectionEnded(int(cast(int, ev.error_code)), f"peer sent GOAWAY {ev.error_code!s}", True)]
            return []
        try:
            events = self._conn.receive_data(data)
        except (h2.exceptions.ProtocolError, UnicodeDecodeError) as exc:
            # (h2 decodes header values as UTF-8 and lets UnicodeDecodeError through)
            self._closed = True
            return [ConnectionEnded(int(getattr(exc, "error_code", PROTOCOL_ERROR)), f"HTTP/2 protocol error from peer: {exc}", False)]
        opened: list[int] = []
        touch = self.counter.touch
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                opened.append(ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                touch(ev.stream_id)  # (it may have closed: counted no more)
        refused = self._refuse_excess(opened) if opened else ()
        out: list[MuxEvent] = []
        reported_ended: set[int] | None = None
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                if ev.stream_id in refused:
                    continue  # (its other events name a stream nobody tracks: ignored, DATA acknowledged)
                out.append(StreamOpened(ev.stream_id, _headers(ev.headers), ev.stream_ended is not None))
                if ev.stream_ended is not None:
                    out.append(StreamEnded(ev.stream_id))
            elif isinstance(ev, h2.events.ResponseReceived):
                out.append(StreamAnswered(ev.stream_id, _headers(ev.headers), ev.stream_ended is not None))
                if ev.stream_ended is not None:
                    out.append(StreamEnded(ev.stream_id))
            elif isinstance(ev, h2.events.DataReceived):
                out.append(DataReceived(ev.stream_id, ev.data, ev.flow_controlled_length))
                if ev.stream_ended is not None:
                    out.append(StreamEnded(ev.stream_id))
            elif isinstance(ev, h2.events.StreamEnded):
                # Already reported with the event that carried END_STREAM.
                if reported_ended is None:
                    reported_ended = _reported_ends(events)
                if ev.stream_id not in reported_ended:
                    out.append(StreamEnded(ev.stream_id))
            elif isinstance(ev, h2.events.TrailersReceived):
                if ev.stream_ended is not None:
                    out.append(StreamEnded(ev.stream_id))
            elif isinstance(ev, h2.events.StreamReset):
                out.append(StreamReset(ev.stream_id, int(ev.error_code), ev.remote_reset))
            elif isinstance(ev, h2.events.WindowUpdated):
                out.append(WindowOpened(ev.stream_id or None))
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self._peer_settings_seen = True
                out.append(WindowOpened(None))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._closed = True
                self._peer_goaway_seen = True
                extra = f" ({ev.additional_data!r})" if ev.additional_data else ""
                out.append(ConnectionEnded(int(cast(int, ev.error_code)), f"peer sent GOAWAY {ev.error_code!s}{extra}", True))
        return out

    def _refuse_excess(self, opened: list[int]) -> set[int]:
        """Reset with REFUSED_STREAM each stream in ``opened`` (the peer's new streams
        in this read, in order) that found ``max_concurrent_streams`` of the peer's
        streams open or half-closed on this connection (RFC 9113 5.1.2), and return
        their ids. Streams of this read that already closed again are not counted."""
        counter = self.counter
        counter.settle()
        n = len(counter.peers)
        refused: set[int] = set()
        for sid in opened:
            if not counter.is_open(sid):
                continue  # (closed again in this read: pruned on the next settle)
            if n >= self._max_peer_streams:
                self.reset_stream(sid, REFUSED_STREAM)
                refused.add(sid)
            else:
                counter.opened(sid)
                n += 1
        self.refused_streams += len(refused)
        return refused

    def data_to_send(self) -> bytes:
        return b"".join(self.data_chunks())

    def data_chunks(self) -> list[bytes | memoryview]:
        """Like :meth:`data_to_send`, as a list of buffers (for a gathering write;
        a few small buffers are joined, which costs less than gathering them)."""
        self._take_h2_output()
        out, self._out = self._out, []
        if 1 < len(out) <= 4 and sum(map(len, out)) <= 4096:
            return [b"".join(out)]
        return out

    def has_output(self) -> bool:
        """False only if :meth:`data_chunks` would return nothing."""
        return self._fast is None or bool(self._out) or self._fast.h2_output_queued()

    def _take_h2_output(self) -> None:
        """Move what h2 has queued to our output (it goes before what we add next).
        h2's buffer is looked at directly (DataFastPath.usable checked it exists)."""
        if self._fast is None or self._fast.h2_output_queued():
            own = self._conn.data_to_send()
            if own:
                self._out.append(own)

    # -- output --------------------------------------------------------------
    def can_open_stream(self) -> bool:
        return (
            not self._closed
            and self._conn.open_outbound_streams < self._conn.remote_settings.max_concurrent_streams
        )

    def open_stream(self, headers: list[tuple[str, str]], end_stream: bool = False) -> int:
        stream_id = self._conn.get_next_available_stream_id()
        self._conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.counter.opened(stream_id)
        if end_stream:
            self.counter.touch(stream_id)
        return stream_id

    def answer_stream(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool = False) -> None:
        if end_stream:
            self.counter.touch(stream_id)
        self._conn.send_headers(stream_id, headers, end_stream=end_stream)

    def sendable(self, stream_id: int) -> int:
        if self._fast is not None:
            n = self._fast.sendable(stream_id)
            if n is not None:
                return n
        try:
            window = self._conn.local_flow_control_window(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError, KeyError):
            return 0
        return max(0, min(window, self._conn.max_outbound_frame_size))

    def send_data_parts(self, stream_id: int, parts: list[bytes | memoryview], end_stream: bool = False) -> None:
        """One DATA frame made of ``parts`` (not joined on the fast path)."""
        if not self._send_fast(stream_id, parts, sum(map(len, parts)), end_stream):
            if end_stream:
                self.counter.touch(stream_id)
            self._data_frames_sent += 1
            self._conn.send_data(stream_id, parts[0] if len(parts) == 1 else b"".join(parts), end_stream=end_stream)

    def _data_header_now(self, stream_id: int, length: int) -> bytes | None:
        """For a task that writes one DATA frame of ``length`` bytes itself, at once:
        its 9-byte header, the frame accounted for -- only if no other output is
        queued to go first and the fast path accepts the frame. Else None, and
        nothing changed (queue the data instead)."""
        fast = self._fast
        if self._out or fast is None or fast.h2_output_queued() or not fast.send(stream_id, length):
            return None
        self._data_frames_sent += 1
        return data_header(length, stream_id)

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> None:
        if not self._send_fast(stream_id, (data,), len(data), end_stream):
            if end_stream:
                self.counter.touch(stream_id)
            self._data_frames_sent += 1
            self._conn.send_data(stream_id, data, end_stream=end_stream)

    def _send_fast(self, stream_id: int, parts: Sequence[bytes | memoryview], length: int, end_stream: bool) -> bool:
        """Queue one plain DATA frame beside h2 if it qualifies (see compat/h2.py)."""
        if end_stream or self._fast is None:
            return False
        if not self._fast.send(stream_id, length):
            return False
        self._data_frames_sent += 1
        self._take_h2_output()  # what h2 queued so far goes first
        self._out.append(data_header(length, stream_id))
        self._out.extend(parts)
        return True

    def end_stream(self, stream_id: int) -> None:
        self.counter.touch(stream_id)
        self._conn.end_stream(stream_id)

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        self.counter.touch(stream_id)
        try:
            self._conn.reset_stream(stream_id, error_code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError, h2.exceptions.ProtocolError):
            pass

    def acknowledge(self, stream_id: int | None, size: int) -> None:
        if size <= 0 or self._closed:
            return
        try:
            self._conn.increment_flow_control_window(size, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError, h2.exceptions.FlowControlError, h2.exceptions.ProtocolError, KeyError):
            pass

    def ping(self) -> None:
        if not self._closed:
            self._conn.ping(os.urandom(8))

    def close(self, error_code: int = 0, reason: str = "") -> None:
        if not self._closed:
            self._closed = True
            try:
                self._conn.close_connection(error_code, reason.encode()[:256] or None)
            except h2.exceptions.ProtocolError:
                pass

    @property
    def closed(self) -> bool:
        return self._closed


def _headers(raw: list[tuple[str, str]] | list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[name.lower()] = value
    return out


def _reported_ends(events: list[h2.events.Event]) -> set[int]:
    """The streams whose END_STREAM an event of ``events`` carries (once per read:
    looking the events up for each StreamEnded was quadratic in the read's requests)."""
    return {
        cast(int, getattr(ev, "stream_id"))
        for ev in events
        if getattr(ev, "stream_ended", None) is not None and getattr(ev, "stream_id", None) is not None
    }
