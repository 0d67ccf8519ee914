"""The DATA fast path (compat/h2.py, and the lanes in h2mux.py) and direct socket I/O (sockio.py) change nothing observable.

The reference is the same :class:`H2Multiplexer` with the fast path switched off
(``mux._fast = None``; on a real server: ``DataFastPath.usable`` patched to say no),
which is exactly the plain-h2 multiplexer of before. The sans-IO tests run the same
input through both and assert identical events, identical output bytes and identical
h2 state (windows, stream states, ``sendable``), and count the frames the fast path took
so that a test cannot pass by the fast path never running:

1. input split anywhere (every byte boundary, byte by byte, random pieces) gives the same
   events and output; send_data/send_data_parts output is byte-identical to h2's and in
   order with h2's own frames; so are the link's single-frame lanes (a read that is one
   DATA frame, ``receive_sole_data``; a frame a sending task writes itself,
   ``data_header_now``), which every test here drives the way the link does;
2. flow control: the same windows after many fast frames, the same FLOW_CONTROL_ERROR one
   byte past either window, the same exceptions when sending too much;
3. every frame the fast path must not take (unknown/closed/reset streams, DATA before the
   response HEADERS, inside a header block, PADDED, END_STREAM, oversized, content-length)
   gets h2's reaction, sans-IO and against a real server; the one input handled
   differently from plain h2 given the same reads is pinned down in
   test_data_after_the_peers_goaway_in_the_same_read;
4. links on tcp://, unix:// and tls:// write the socket themselves (in-memory streams
   do not), lose nothing when the kernel takes part of a write, and close both descriptors;
5. a hypothesis property: random traffic through a fast client/server pair equals a
   plain-h2 pair, data, events, bytes and windows.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import socket

import h2.exceptions
import hpack
import hyperframe.frame as hf
import pytest
import trio
from hypothesis import HealthCheck, given, settings, strategies as st

import libchan
from libchan.compat import h2 as h2fast
from libchan.spdy_like.h2mux import PREFACE, H2Multiplexer
from libchan.spdy_like.mux import ConnectionEnded, DataReceived, FastLane, StreamOpened, StreamReset
from helpers import served, session_pair

REQUEST = [(":method", "POST"), (":scheme", "http"), (":authority", "test"), (":path", "/x")]
RESPONSE = [(":status", "200")]
PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR = 1, 3, 5, 6


# -- crafting and decoding frames ------------------------------------------------------------
class Peer:
    """Crafts the raw frames of one side of a connection (any frame, valid or not)."""

    def __init__(self) -> None:
        self.enc = hpack.Encoder()

    def preface(self, **settings: int) -> bytes:
        return PREFACE + self.settings(**settings)

    @staticmethod
    def settings(ack: bool = False, **values: int) -> bytes:
        if ack:
            return hf.SettingsFrame(0, flags=["ACK"]).serialize()
        codes = {"initial_window_size": 4, "max_frame_size": 5}
        return hf.SettingsFrame(0, settings={codes[k]: v for k, v in values.items()}).serialize()

    def headers(self, sid: int, extra=(), *, response: bool = False, end_stream: bool = False, end_headers: bool = True) -> bytes:
        block = self.enc.encode([*(RESPONSE if response else REQUEST), *extra])
        flags = (["END_HEADERS"] if end_headers else []) + (["END_STREAM"] if end_stream else [])
        return hf.HeadersFrame(sid, data=block, flags=flags).serialize()

    def header_block(self, sid: int, extra=()) -> tuple[bytes, bytes]:
        """A request header block split over HEADERS and CONTINUATION."""
        block = self.enc.encode([*REQUEST, *extra])
        half = len(block) // 2
        return (
            hf.HeadersFrame(sid, data=block[:half]).serialize(),
            hf.ContinuationFrame(sid, data=block[half:], flags=["END_HEADERS"]).serialize(),
        )

    @staticmethod
    def data(sid: int, payload: bytes, *, end_stream: bool = False, pad: int | None = None, raw_flags: int = 0) -> bytes:
        flags = ["END_STREAM"] if end_stream else []
        if pad is not None:
            flags.append("PADDED")
        frame = hf.DataFrame(sid, data=payload, flags=flags)
        if pad is not None:
            frame.pad_length = pad
        out = bytearray(frame.serialize())
        out[4] |= raw_flags
        return bytes(out)

    @staticmethod
    def raw(ftype: int, flags: int, sid: int, payload: bytes, length: int | None = None) -> bytes:
        n = len(payload) if length is None else length
        return n.to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload

    @staticmethod
    def window_update(sid: int, n: int) -> bytes:
        return hf.WindowUpdateFrame(sid, window_increment=n).serialize()

    @staticmethod
    def rst(sid: int, code: int = 8) -> bytes:
        return hf.RstStreamFrame(sid, error_code=code).serialize()

    @staticmethod
    def ping(opaque: bytes = b"12345678") -> bytes:
        return hf.PingFrame(0, opaque_data=opaque).serialize()

    @staticmethod
    def goaway(last: int, code: int = 0) -> bytes:
        return hf.GoAwayFrame(0, last_stream_id=last, error_code=code).serialize()


def parse_frames(data: bytes) -> list[hf.Frame]:
    """Every frame in ``data`` (a leading client preface is skipped)."""
    if data.startswith(PREFACE):
        data = data[len(PREFACE):]
    frames, pos = [], 0
    while pos < len(data):
        assert len(data) - pos >= 9, "a truncated frame"
        frame, length = hf.Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
        assert len(data) - pos - 9 >= length, "a truncated frame"
        frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    return frames


def describe(frame: hf.Frame) -> tuple:
    name = type(frame).__name__.replace("Frame", "")
    if isinstance(frame, hf.DataFrame):
        return (name, frame.stream_id, tuple(sorted(frame.flags)), bytes(frame.data))
    if isinstance(frame, hf.RstStreamFrame):
        return (name, frame.stream_id, frame.error_code)
    if isinstance(frame, hf.GoAwayFrame):
        return (name, frame.last_stream_id, frame.error_code)
    if isinstance(frame, hf.WindowUpdateFrame):
        return (name, frame.stream_id, frame.window_increment)
    return (name, frame.stream_id, tuple(sorted(frame.flags)))


# -- running a multiplexer with the fast path on and off ---------------------------------------
def make_mux(*, client_side: bool, fast: bool, **kw) -> H2Multiplexer:
    mux = H2Multiplexer(client_side=client_side, **kw)
    if fast:
        assert mux._fast is not None, "the fast path is not usable with this h2"
    else:
        mux._fast = None
    return mux


def link_receive(mux: H2Multiplexer, data: bytes) -> list:
    """What a link makes of one read (Link._process_input): the single-frame lane
    (``receive_sole_data``) when it takes the read, else ``receive_data``."""
    sole = mux.lane.receive_sole_data(data) if mux.lane is not None else None
    if sole is not None:
        return [DataReceived(sole[0], sole[1], len(sole[1]))]
    return mux.receive_data(data)


def link_send(mux: H2Multiplexer, sid: int, data: bytes) -> bytes | None:
    """What a link's sending task does with one message (Link.send_now): the frame's
    bytes to write at once if ``data_header_now`` allows it, else None (sent by h2)."""
    header = mux.lane.data_header_now(sid, len(data)) if mux.lane is not None else None
    return None if header is None else header + data


class FastCount:
    """Counts the DATA frames the fast path accounted for (each direction) on one mux,
    and the reads the single-frame lane took."""

    def __init__(self, mux: H2Multiplexer) -> None:
        self.received = self.sent = self.sole = 0
        sole_data = mux.lane.receive_sole_data

        def counting_sole(data):
            result = sole_data(data)
            self.sole += result is not None
            return result

        mux.lane = FastLane(counting_sole, mux.lane.data_header_now)
        fast = mux._fast
        if fast is None:
            return
        receive, send = fast.receive, fast.send

        def counting_receive(stream_id, length):
            ok = receive(stream_id, length)
            self.received += ok
            return ok

        def counting_send(stream_id, length):
            ok = send(stream_id, length)
            self.sent += ok
            return ok

        fast.receive, fast.send = counting_receive, counting_send


def window_state(mux: H2Multiplexer) -> dict:
    """h2's whole flow-control and stream-state view of ``mux``."""
    conn = mux._conn
    inbound = conn._inbound_flow_control_window_manager
    state = {
        "conn": conn.state_machine.state,
        "conn_out": conn.outbound_flow_control_window,
        "conn_in": (inbound.current_window_size, inbound.max_window_size, inbound._bytes_processed),
        "max_out_frame": conn.max_outbound_frame_size,
        "max_in_frame": conn.max_inbound_frame_size,
    }
    # A closed stream stays in conn.streams until the multiplexer next counts the peer's
    # streams (once per h2 call that opens streams: it depends on how the input was
    # split), then moves to h2's memory of closed streams: the same either way.
    state["closed"] = sorted({sid for sid, st in conn.streams.items() if st.closed} | set(conn._closed_streams))
    for sid, stream in sorted(conn.streams.items()):
        if stream.closed:
            continue
        win = stream._inbound_window_manager
        entry = [stream.state_machine.state, stream.state_machine.headers_received, stream.outbound_flow_control_window,
                 (win.current_window_size, win.max_window_size, win._bytes_processed),
                 stream._expected_content_length, stream._actual_content_length]
        for query in (conn.local_flow_control_window, conn.remote_flow_control_window):
            try:
                entry.append(query(sid))
            except h2.exceptions.H2Error as exc:
                entry.append(type(exc).__name__)
        entry.append(mux.sendable(sid))  # what the link may send: the fast path answers it too
        state[sid] = entry
    return state


def drain(mux: H2Multiplexer, chunks: bool = False) -> bytes:
    """What ``mux`` has to send: by ``data_to_send()``, or joined from ``data_chunks()``
    (the buffers the link hands to a gathering write)."""
    if chunks and hasattr(mux, "data_chunks"):
        return b"".join(mux.data_chunks())
    return mux.data_to_send()


def run_steps(mux: H2Multiplexer, steps: list, split, chunks: bool = False) -> tuple[list, bytes]:
    """Feed ``steps`` (bytes received, or callables acting on ``mux``) to ``mux``.

    Consecutive byte steps form one run of input that ``split(run, boundaries)`` cuts into
    the pieces given to ``receive_data`` (``boundaries``: where the steps' frames start).
    Returns every event (and exception of an action) and every byte ``mux`` sent."""
    events: list = []
    out = [drain(mux, chunks)]
    run: list[bytes] = []

    def flush() -> None:
        if run:
            bounds, pos = [], 0
            for piece in run:
                bounds.append(pos)
                pos += len(piece)
            for piece in split(b"".join(run), bounds):
                events.extend(link_receive(mux, piece))
            run.clear()
            out.append(drain(mux, chunks))

    for step in steps:
        if isinstance(step, bytes):
            run.append(step)
            continue
        flush()
        try:
            step(mux)
        except Exception as exc:  # noqa: BLE001 - recorded and compared
            events.append(("raised", type(exc).__name__))
        out.append(drain(mux, chunks))
    flush()
    return events, b"".join(out)


def whole(data, bounds):
    return [data]


def by_frame(data, bounds):
    """One ``receive_data`` per step (a frame, or whatever bytes the step holds)."""
    return [data[a:b] for a, b in zip(bounds, bounds[1:] + [len(data)])]


def by_byte(data, bounds):
    return [data[i : i + 1] for i in range(len(data))]


def at(*cuts):
    def split(data, bounds):
        points = [0, *cuts, len(data)]
        return [data[a:b] for a, b in zip(points, points[1:]) if b > a]
    return split


def randomly(seed: int, max_piece: int = 40):
    rng = random.Random(seed)

    def split(data, bounds):
        pieces, pos = [], 0
        while pos < len(data):
            n = rng.randint(1, max_piece)
            pieces.append(data[pos : pos + n])
            pos += n
        return pieces
    return split


def is_subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


# -- 1. splitting the input anywhere changes nothing ------------------------------------------------
def client_transcript() -> list:
    """What a client sends a server: every frame type around plain DATA, several streams."""
    p = Peer()
    return [
        p.preface(),
        p.headers(1),
        p.data(1, b"a" * 30),  # DATA right after the preface and the HEADERS opening its stream
        p.data(1, b"b" * 7),
        p.settings(ack=True),
        p.window_update(0, 1000),
        p.headers(3),
        p.data(3, b"c" * 20),
        p.ping(),
        p.data(1, b""),  # an empty DATA frame
        p.data(1, b"d" * 11, raw_flags=0x22),  # flags a DATA frame does not define are ignored
        p.data(3, b"e" * 9, pad=4),  # padded: h2's
        *p.header_block(5),
        p.data(5, b"f" * 5),
        p.data(1, b"g" * 3, end_stream=True),  # END_STREAM: h2's
        p.rst(3),
        p.data(5, b"h" * 40),
        p.window_update(5, 77),
    ]


def server_transcript() -> list:
    """What a server sends a client that opened streams 1, 3 and 5 (END_STREAM on 5)."""
    p = Peer()
    return [
        lambda m: [m.open_stream(REQUEST), m.open_stream(REQUEST), m.open_stream(REQUEST, end_stream=True)],
        p.settings(),
        p.headers(1, response=True),
        p.data(1, b"a" * 25),
        p.headers(3, response=True),
        p.data(3, b"b" * 12),
        p.data(1, b"c" * 4),
        p.settings(ack=True),
        p.headers(5, response=True),
        p.data(5, b"d" * 6),  # half-closed (local) still receives
        p.ping(),
        p.data(3, b"e" * 8, end_stream=True),
        p.data(5, b"f" * 30),
        p.rst(1),
    ]


TRANSCRIPTS = {"client->server": (False, client_transcript), "server->client": (True, server_transcript)}


@pytest.mark.parametrize("direction", TRANSCRIPTS)
def test_any_split_of_the_input_gives_the_same_events_and_output(direction):
    client_side, transcript = TRANSCRIPTS[direction]
    reference = run_steps(make_mux(client_side=client_side, fast=False), transcript(), whole)
    assert any(isinstance(ev, DataReceived) and ev.data for ev in reference[0])
    assert not any(isinstance(ev, ConnectionEnded) for ev in reference[0]), reference[0]
    splits = [whole, by_frame, by_byte] + [randomly(seed) for seed in range(20)]
    total = len(b"".join(s for s in transcript() if isinstance(s, bytes)))
    splits += [at(cut) for cut in range(1, total)]  # every single cut: a frame split at every byte
    splits += [at(cut, cut + 9) for cut in range(1, total - 9, 3)]  # a lone frame header, then the rest
    pure = make_mux(client_side=client_side, fast=False)
    run_steps(pure, transcript(), whole)
    reference_state = window_state(pure)
    for i, split in enumerate(splits):
        mux = make_mux(client_side=client_side, fast=True)
        count = FastCount(mux)
        got = run_steps(mux, transcript(), split, chunks=i % 2 == 1)
        assert got == reference, f"split {split.__name__} #{i}"
        assert window_state(mux) == reference_state
        # plain DATA on an open stream went the fast way; padded/END_STREAM/after-RST, and
        # an empty DATA frame (counted against the flood limits by receive_data), did not
        assert count.received == (5 if client_side else 6), split.__name__


def test_fast_frames_mixed_with_h2_frames_in_one_read_keep_their_order():
    """One read with HEADERS + DATA (new stream), then a read ending in half a frame, the
    rest of it with more frames; all DATA payloads come out whole and in order."""
    p = Peer()
    first = p.preface() + p.headers(1) + p.data(1, b"1" * 10) + p.headers(3) + p.data(3, b"3" * 10) + p.data(1, b"x" * 50)
    second = p.data(1, b"y" * 50) + p.ping() + p.data(3, b"z" * 5)
    cut = len(first) - 20
    for fast in (True, False):
        mux = make_mux(client_side=False, fast=fast)
        ev1 = mux.receive_data(first[:cut])
        ev2 = mux.receive_data(first[cut:] + second[:4])
        ev3 = mux.receive_data(second[4:])
        kinds = [(type(e).__name__, getattr(e, "stream_id", None), getattr(e, "data", None)) for e in ev1 + ev2 + ev3]
        assert kinds == [
            ("WindowOpened", None, None),
            ("StreamOpened", 1, None),
            ("DataReceived", 1, b"1" * 10),
            ("StreamOpened", 3, None),
            ("DataReceived", 3, b"3" * 10),
            ("DataReceived", 1, b"x" * 50),
            ("DataReceived", 1, b"y" * 50),
            ("DataReceived", 3, b"z" * 5),
        ], fast
        assert describe(parse_frames(mux.data_to_send())[-1]) == ("Ping", 0, ("ACK",))


def scripted_exchange(fast: bool) -> tuple[H2Multiplexer, H2Multiplexer, list[bytes], list]:
    """A client and a server mux talking; returns them, the client's output chunks and the
    server's events."""
    c = make_mux(client_side=True, fast=fast, stream_window=200, max_frame_size=16384)
    s = make_mux(client_side=False, fast=fast, stream_window=200, max_frame_size=16384)
    sent: list[bytes] = []
    server_events: list = []

    def pump() -> None:
        for _ in range(10):
            a = drain(c, chunks=fast)  # the fast side as the link drains it
            if a:
                sent.append(a)
                evs = link_receive(s, a)
                server_events.extend(evs)
                for ev in evs:
                    if isinstance(ev, StreamOpened) and not s.closed:
                        s.answer_stream(ev.stream_id, RESPONSE)
            b = s.data_to_send()
            if b:
                link_receive(c, b)
            if not a and not b:
                return
        raise AssertionError("no quiescence")

    one = c.open_stream(REQUEST)
    c.send_data(one, b"A" * 100)  # HEADERS(1) queued by h2, then fast DATA
    c.send_data(one, memoryview(b"B" * 50))
    pump()
    three = c.open_stream(REQUEST)
    c.acknowledge(None, 500)  # WINDOW_UPDATE(0) queued by h2 ...
    c.send_data(three, b"C" * 40)  # ... before this fast DATA
    c.send_data(one, b"D" * 50)  # stream 1 window now exhausted (200)
    c.reset_stream(one)  # RST after the fast DATA
    c.send_data(three, b"E" * 10, end_stream=True)  # h2's DATA with END_STREAM
    five = c.open_stream(REQUEST)
    if hasattr(c, "send_data_parts"):  # one frame from pieces (not joined on the fast path)
        c.send_data_parts(five, [b"F" * 2, memoryview(b"F" * 3)])
    else:
        c.send_data(five, b"F" * 5)
    c.ping()
    c.send_data(five, b"G" * 6)
    c.close()  # GOAWAY after everything
    pump()
    return c, s, sent, server_events


def test_send_data_output_is_byte_identical_to_h2_and_in_order():
    c_fast, s_fast, sent_fast, events_fast = scripted_exchange(True)
    c_pure, s_pure, sent_pure, events_pure = scripted_exchange(False)
    wire = b"".join(sent_fast)
    # PING payloads are random: compare everything else byte for byte
    frames = parse_frames(wire)
    pings = [f for f in frames if isinstance(f, hf.PingFrame)]
    assert len(pings) == 1
    pure_frames = parse_frames(b"".join(sent_pure))
    assert [describe(f) for f in frames] == [describe(f) for f in pure_frames]
    assert wire.replace(pings[0].opaque_data, b"\0" * 8) == b"".join(sent_pure).replace(
        [f for f in pure_frames if isinstance(f, hf.PingFrame)][0].opaque_data, b"\0" * 8
    )
    sequence = [d[:2] for d in map(describe, frames) if d[0] not in ("Settings", "Ping")]
    assert sequence == [
        ("WindowUpdate", 0),  # the connection window of the constructor
        ("Headers", 1),
        ("Data", 1),
        ("Data", 1),
        ("Headers", 3),
        ("WindowUpdate", 0),
        ("Data", 3),
        ("Data", 1),
        ("RstStream", 1),
        ("Data", 3),
        ("Headers", 5),
        ("Data", 5),
        ("Data", 5),
        ("GoAway", 0),
    ]
    datas = [describe(f) for f in frames if isinstance(f, hf.DataFrame)]
    assert [d[3] for d in datas] == [b"A" * 100, b"B" * 50, b"C" * 40, b"D" * 50, b"E" * 10, b"F" * 5, b"G" * 6]
    assert [d[2] for d in datas] == [(), (), (), (), ("END_STREAM",), (), ()]
    # the server saw the same data, in order, and the same events either way
    assert [(e.stream_id, e.data) for e in events_fast if isinstance(e, DataReceived)] == [
        (1, b"A" * 100), (1, b"B" * 50), (3, b"C" * 40), (1, b"D" * 50), (3, b"E" * 10), (5, b"F" * 5), (5, b"G" * 6)
    ]
    assert events_fast == events_pure
    assert window_state(c_fast) == window_state(c_pure)
    assert window_state(s_fast) == window_state(s_pure)


def test_single_frame_lanes_are_byte_identical_to_h2():
    """The link's single-frame lanes: a sending task writes one DATA frame itself
    (``data_header_now``) only when nothing else is queued, and a read that is exactly one
    plain DATA frame skips the event machinery (``receive_sole_data``); wire, events and
    windows equal plain h2's, and both lanes really ran."""

    def exchange(fast: bool):
        c = make_mux(client_side=True, fast=fast, stream_window=300, max_frame_size=16384)
        s = make_mux(client_side=False, fast=fast, stream_window=300, max_frame_size=16384)
        counts = FastCount(c), FastCount(s)
        wire: list[bytes] = []
        events: list = []
        direct = 0

        def flow(src, dst, extra: bytes = b"") -> None:
            out = extra + src.data_to_send()
            if out:
                wire.append(out)
                reads = [PREFACE] if out.startswith(PREFACE) else []
                reads += [f.serialize() for f in parse_frames(out)]  # one read per frame: the sole lane's case
                for read in reads:
                    for ev in link_receive(dst, read):
                        events.append(ev)
                        if isinstance(ev, StreamOpened):
                            dst.answer_stream(ev.stream_id, RESPONSE)
                flow(dst, src)

        def send(mux, sid, data) -> None:
            nonlocal direct
            frame = link_send(mux, sid, data)
            if frame is None:
                try:
                    mux.send_data(sid, data)
                except h2.exceptions.H2Error as exc:
                    events.append(("raised", type(exc).__name__))
                flow(*((c, s) if mux is c else (s, c)))
            else:
                direct += 1
                flow(*((c, s) if mux is c else (s, c)), frame)

        one = c.open_stream(REQUEST)
        flow(c, s)
        send(c, one, b"a" * 10)  # HEADERS long gone: written at once
        send(s, one, b"b" * 20)  # the server's reply, the same way
        c.acknowledge(None, 100)  # a WINDOW_UPDATE queued: the next message goes through h2
        send(c, one, b"c" * 30)
        send(c, one, b"d" * 200)
        send(c, one, b"e" * 100)  # beyond the stream window: refused either way
        s.acknowledge(one, 240)
        flow(s, c)
        send(c, one, b"f" * 50)  # window reopened: at once again
        c.ping()
        send(c, one, b"g" * 5)  # behind the PING
        return wire, events, window_state(c), window_state(s), direct, counts

    fast, pure = exchange(True), exchange(False)
    strip = lambda wire: [describe(f) if not isinstance(f, hf.PingFrame) else "ping" for w in wire for f in parse_frames(w)]  # noqa: E731
    assert strip(fast[0]) == strip(pure[0])
    assert fast[1:4] == pure[1:4]
    assert ("raised", "FlowControlError") in fast[1]
    assert not any(isinstance(ev, ConnectionEnded) for ev in fast[1])
    assert [ev.data[:1] for ev in fast[1] if isinstance(ev, DataReceived)] == [b"a", b"b", b"c", b"d", b"f", b"g"]
    assert fast[4] == 4 and pure[4] == 0  # a, b, d, f were written at once
    assert sum(count.sole for count in fast[5]) >= 6 and sum(count.sole for count in pure[5]) == 0


# -- 2. flow control: the same windows, the same errors ---------------------------------------------
def test_windows_after_many_fast_frames_equal_pure_h2():
    def exchange(fast: bool):
        kw = dict(stream_window=5000, connection_window=100_000, max_frame_size=16384)
        c, s = make_mux(client_side=True, fast=fast, **kw), make_mux(client_side=False, fast=fast, **kw)
        counts = (FastCount(c), FastCount(s))
        rng = random.Random(7)
        states = []
        sids = [c.open_stream(REQUEST) for _ in range(4)]
        unacked = {}
        s.receive_data(c.data_to_send())
        for sid in sids:
            s.answer_stream(sid, RESPONSE)
        c.receive_data(s.data_to_send())
        for i in range(600):
            sid = rng.choice(sids)
            sender, receiver = (c, s) if i % 3 else (s, c)
            n = min(rng.randint(1, 900), sender.sendable(sid))
            if n:
                sender.send_data(sid, bytes([i % 256]) * n)
            for ev in receiver.receive_data(sender.data_to_send()):
                if isinstance(ev, DataReceived):
                    key = (receiver is c, ev.stream_id)
                    unacked[key] = unacked.get(key, 0) + ev.flow_length
            if i % 5 == 0:  # the application consumed what arrived on a stream
                for (is_client, sid2), size in list(unacked.items()):
                    mux = c if is_client else s
                    mux.acknowledge(sid2, size)
                    mux.acknowledge(None, size)
                    del unacked[(is_client, sid2)]
            sender.receive_data(receiver.data_to_send())
            states.append((window_state(c), window_state(s)))
        return states, counts

    fast_states, (cf, sf) = exchange(True)
    pure_states, _ = exchange(False)
    assert len(fast_states) == len(pure_states) == 600
    for i, (a, b) in enumerate(zip(fast_states, pure_states)):
        assert a == b, f"after step {i}"
    assert cf.sent > 300 and sf.sent > 150 and cf.received > 150 and sf.received > 300


def flow_case(stream_window: int, connection_window: int, sizes: list[tuple[int, int]]) -> tuple:
    p = Peer()
    steps = [p.preface(), p.headers(1), p.headers(3)] + [p.data(sid, b"w" * n) for sid, n in sizes]
    results = []
    for fast in (True, False):
        mux = make_mux(client_side=False, fast=fast, stream_window=stream_window,
                       connection_window=connection_window, max_frame_size=65536)
        count = FastCount(mux)
        events, out = run_steps(mux, steps, by_frame)
        results.append((events, out, window_state(mux), count.received))
    (ev, out, state, n_fast), (ev2, out2, state2, _) = results
    assert (ev, out, state) == (ev2, out2, state2)
    return ev, parse_frames(out), n_fast


def test_exactly_the_stream_window_is_accepted_one_byte_more_is_flow_control_error():
    ev, frames, n_fast = flow_case(1000, 1 << 20, [(1, 600), (1, 400)])
    assert not any(isinstance(e, ConnectionEnded) for e in ev) and n_fast == 2
    ev, frames, n_fast = flow_case(1000, 1 << 20, [(1, 600), (1, 401)])
    assert ev[-1].error_code == FLOW_CONTROL_ERROR and not ev[-1].remote
    assert describe(frames[-1]) == ("GoAway", 3, FLOW_CONTROL_ERROR)
    assert n_fast == 1  # the second frame went to h2, which refused it


def test_exactly_the_connection_window_is_accepted_one_byte_more_is_flow_control_error():
    ev, frames, n_fast = flow_case(60000, 65535, [(1, 40000), (3, 25535)])
    assert not any(isinstance(e, ConnectionEnded) for e in ev) and n_fast == 2
    ev, frames, n_fast = flow_case(60000, 65535, [(1, 40000), (3, 25536)])
    assert ev[-1].error_code == FLOW_CONTROL_ERROR
    assert describe(frames[-1]) == ("GoAway", 3, FLOW_CONTROL_ERROR)


def test_sending_beyond_a_window_or_the_frame_size_raises_what_h2_raises():
    def attempt(fast: bool, size: int, peer_window: int, peer_frame: int = 16384):
        c = make_mux(client_side=True, fast=fast)
        p = Peer()
        sid = c.open_stream(REQUEST)
        c.receive_data(p.settings(initial_window_size=peer_window, max_frame_size=peer_frame) + p.headers(sid, response=True))
        count = FastCount(c)
        try:
            c.send_data(sid, b"s" * size)
            result = "sent"
        except h2.exceptions.H2Error as exc:
            result = type(exc).__name__
        return result, c.data_to_send(), window_state(c), count.sent

    for size, window, frame, expected, n_fast in [
        (1000, 1000, 16384, "sent", 1),
        (1001, 1000, 16384, "FlowControlError", 0),
        (16384, 100_000, 16384, "sent", 1),
        (16385, 100_000, 16384, "FrameTooLargeError", 0),
        (65535, 100_000, 70000, "sent", 1),  # the connection window (65535) is the limit
        (65536, 100_000, 70000, "FlowControlError", 0),
    ]:
        fast, pure = attempt(True, size, window, frame), attempt(False, size, window, frame)
        assert fast[:3] == pure[:3]
        assert (fast[0], fast[3]) == (expected, n_fast), (size, window, frame)


def test_sending_where_a_stream_cannot_send_raises_what_h2_raises():
    """DATA on a stream ended, reset (by either side), never opened, or after GOAWAY: the fast
    path declines and h2 raises exactly what it raised before, with the same output."""
    def reset_by_peer(c, sid):
        c.receive_data(Peer.rst(sid))

    def goaway_from_peer(c, sid):
        c.receive_data(Peer.goaway(sid))

    situations = {
        "ended by us": lambda c, sid: c.end_stream(sid),
        "reset by us": lambda c, sid: c.reset_stream(sid),
        "reset by the peer": reset_by_peer,
        "after our GOAWAY": lambda c, sid: c.close(),
        "after the peer's GOAWAY": goaway_from_peer,
        "never opened": None,
    }

    def attempt(fast: bool, name: str, parts: bool):
        c = make_mux(client_side=True, fast=fast)
        p = Peer()
        sid = c.open_stream(REQUEST)
        c.receive_data(p.settings() + p.headers(sid, response=True))
        count = FastCount(c)
        if situations[name] is None:
            sid += 2
        else:
            situations[name](c, sid)
        before = c.sendable(sid)
        try:
            if parts and hasattr(c, "send_data_parts"):
                c.send_data_parts(sid, [b"ab", b"cd"])
            else:
                c.send_data(sid, b"abcd")
            result = "sent"
        except Exception as exc:  # noqa: BLE001 - compared
            result = type(exc).__name__
        return result, before, drain(c), window_state(c), count.sent

    for name in situations:
        for parts in (False, True):
            fast, pure = attempt(True, name, parts), attempt(False, name, parts)
            assert fast[:4] == pure[:4], (name, parts)
            assert fast[0] != "sent" and fast[4] == 0, (name, parts, fast[0])


# -- 3. every non-qualifying frame is h2's: the same events, GOAWAY and RST_STREAM ------------------
def _reset_by_us(m):
    m.reset_stream(1)


def _server_cases() -> dict:
    """Inputs a server gets: ``name: (steps(peer), h2's reaction, DATA frames the fast path takes)``.

    The reaction is ``("GoAway", code)``, ``("RstStream", code)`` (on stream 1), ``("Closed",)``
    (the peer's GOAWAY), ``("Ended", code)`` (a connection error without GOAWAY) or None
    (accepted)."""
    return {
        "never opened stream": (lambda p: [p.preface(), p.headers(1), p.data(3, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        "never opened stream, even id": (lambda p: [p.preface(), p.headers(1), p.data(2, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        "stream 0": (lambda p: [p.preface(), p.headers(1), p.raw(0, 0, 0, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        "closed by END_STREAM on HEADERS": (lambda p: [p.preface(), p.headers(1, end_stream=True), p.data(1, b"x")], ("RstStream", STREAM_CLOSED), 0),
        "closed by END_STREAM on DATA": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.data(1, b"y", end_stream=True), p.data(1, b"z")], ("RstStream", STREAM_CLOSED), 1),
        "reset by the peer": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.rst(1), p.data(1, b"y")], ("RstStream", STREAM_CLOSED), 1),
        "reset by us": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), _reset_by_us, p.data(1, b"y"), p.data(1, b"z")], ("RstStream", STREAM_CLOSED), 1),
        "inside another stream's header block": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), (hb := p.header_block(3))[0], p.data(1, b"y"), hb[1]], ("GoAway", PROTOCOL_ERROR), 1),
        "inside its own header block": (lambda p: [p.preface(), p.headers(1, end_headers=False), p.data(1, b"y")], ("GoAway", PROTOCOL_ERROR), 0),
        "after a completed header block": (lambda p: [p.preface(), *p.header_block(3), p.data(3, b"y")], None, 1),
        "padded": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x" * 10, pad=20), p.data(1, b"y")], None, 1),
        "padded, no padding": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x" * 10, pad=0), p.data(1, b"y")], None, 1),
        "padded, all padding": (lambda p: [p.preface(), p.headers(1), p.raw(0, 0x8, 1, b"\x05" + b"\0" * 5), p.data(1, b"y")], None, 1),
        "padded, pad length beyond the frame": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.raw(0, 0x8, 1, b"\x0a" + b"x" * 5)], ("GoAway", PROTOCOL_ERROR), 1),
        "padded, pad length = frame length": (lambda p: [p.preface(), p.headers(1), p.raw(0, 0x8, 1, b"\x06" + b"x" * 5)], ("GoAway", PROTOCOL_ERROR), 0),
        "padded, empty": (lambda p: [p.preface(), p.headers(1), p.raw(0, 0x8, 1, b"")], ("GoAway", FRAME_SIZE_ERROR), 0),
        "END_STREAM": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.data(1, b"y", end_stream=True)], None, 1),
        "over the max frame size": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.data(1, b"y" * 16385), p.data(1, b"z")], ("GoAway", FRAME_SIZE_ERROR), 1),
        # the length is checked on the frame header, before any of the payload is buffered
        "over the max frame size, only its header arrived": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.raw(0, 0, 1, b"", length=1 << 20)], ("GoAway", FRAME_SIZE_ERROR), 1),
        "a PING over the max frame size after fast DATA": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.raw(6, 0, 0, b"\0" * 20000)], ("GoAway", FRAME_SIZE_ERROR), 1),
        "content-length exceeded": (lambda p: [p.preface(), p.headers(1, [("content-length", "5")]), p.data(1, b"x" * 3), p.data(1, b"x" * 3)], ("GoAway", PROTOCOL_ERROR), 0),
        "content-length short at END_STREAM": (lambda p: [p.preface(), p.headers(1, [("content-length", "10")]), p.data(1, b"x" * 4), p.data(1, b"x" * 4, end_stream=True)], ("GoAway", PROTOCOL_ERROR), 0),
        "content-length met": (lambda p: [p.preface(), p.headers(1, [("content-length", "10")]), p.data(1, b"x" * 4), p.data(1, b"x" * 6, end_stream=True)], None, 0),
        "after the peer's GOAWAY": (lambda p: [p.preface(), p.headers(1), p.data(1, b"x"), p.goaway(1), p.data(1, b"y")], ("Closed",), 1),
        "DATA before SETTINGS": (lambda p: [PREFACE, p.data(1, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        # h2 checks the preface before its error handling: no GOAWAY, the connection just ends
        "bad preface": (lambda p: [PREFACE[:10] + b"X" + PREFACE[11:], p.settings(), p.headers(1), p.data(1, b"x")], ("Ended", PROTOCOL_ERROR), 0),
    }


def _client_cases() -> dict:
    """Inputs a client gets after opening stream 1 (and 3, with END_STREAM)."""
    open_ = lambda m: [m.open_stream(REQUEST), m.open_stream(REQUEST, end_stream=True)]  # noqa: E731
    return {
        "DATA before the response HEADERS": (lambda p: [open_, p.settings(), p.data(1, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        "DATA before the response HEADERS, after another's DATA": (lambda p: [open_, p.settings(), p.headers(3, response=True), p.data(3, b"x"), p.data(1, b"x")], ("GoAway", PROTOCOL_ERROR), 1),
        "DATA on a stream the server never had": (lambda p: [open_, p.settings(), p.data(5, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        "DATA on a server stream never promised": (lambda p: [open_, p.settings(), p.data(2, b"x")], ("GoAway", PROTOCOL_ERROR), 0),
        "DATA after the response's END_STREAM": (lambda p: [open_, p.settings(), p.headers(1, response=True), p.data(1, b"x", end_stream=True), p.data(1, b"y")], ("RstStream", STREAM_CLOSED), 0),
        "response content-length exceeded": (lambda p: [open_, p.settings(), p.headers(1, [("content-length", "2")], response=True), p.data(1, b"xyz")], ("GoAway", PROTOCOL_ERROR), 0),
        "half-closed (local) stream receives": (lambda p: [open_, p.settings(), p.headers(3, response=True), p.data(3, b"x"), p.data(3, b"y", end_stream=True)], None, 1),
    }


CASES = {"server": _server_cases, "client": _client_cases}
#: Cases where plain h2's reaction depends on how the input is split into reads.
SPLIT_DEPENDENT = {"after the peer's GOAWAY"}


def until_goaway(out: bytes) -> bytes:
    """``out`` up to and including its first GOAWAY. After a connection error h2 queues the
    same GOAWAY again for every later read it still parses a frame from (how many depends on
    the reads and on where the previous read stopped); the link stops reading at the first
    one, so only copies of that GOAWAY may follow it."""
    frames = parse_frames(out)
    for i, frame in enumerate(frames):
        if isinstance(frame, hf.GoAwayFrame):
            assert all(describe(f) == describe(frame) for f in frames[i + 1 :]), [describe(f) for f in frames]
            return b"".join(f.serialize() for f in frames[: i + 1])
    return out
ERROR_CASES = [(side, name) for side, make in CASES.items() for name in make()]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: f"{c[0]}: {c[1]}")
def test_non_qualifying_frames_get_exactly_h2s_reaction(case):
    side, name = case

    def run(fast, split):
        steps = CASES[side]()[name][0](Peer())  # fresh frames (HPACK state) each time
        mux = make_mux(client_side=side == "client", fast=fast, max_frame_size=16384)
        count = FastCount(mux)
        events, out = run_steps(mux, steps, split)
        if split is by_frame:  # each DATA frame alone in a read: the single-frame lane's
            assert count.sole == count.received
        return events, out, window_state(mux), count.received

    # One frame per read: events, output bytes and final h2 state are identical.
    fast, pure = run(True, by_frame), run(False, by_frame)
    assert fast[:3] == pure[:3]
    # Any other split: the same output (up to h2's first GOAWAY: see until_goaway) and the
    # same final state as plain h2 given the same reads.
    for split in (whole, by_byte, randomly(1), randomly(2, 7)):
        fast_s, pure_s = run(True, split), run(False, split)
        if name in SPLIT_DEPENDENT and split is not by_byte:
            pure_s = pure  # see test_data_after_the_peers_goaway_in_the_same_read
        assert until_goaway(fast_s[1]) == until_goaway(pure_s[1]), split.__name__
        assert fast_s[2] == pure_s[2], split.__name__
        assert fast_s[3] == fast[3], split.__name__
        # Events of the frames before an error may differ: pure h2 drops every event of a
        # read that ends in a protocol error (as if the error had come alone), the fast path
        # has already reported those before its DATA frames. Its events are a subsequence of
        # the frame-per-read ones and end the same way.
        assert is_subsequence(fast_s[0], pure[0]), split.__name__
        assert fast_s[0][-1:] == pure_s[0][-1:], split.__name__
        if not any(isinstance(e, ConnectionEnded) for e in pure[0]):
            assert fast_s[0] == pure_s[0] == pure[0], split.__name__
    # The expected reaction (so the cases test what they say) and the fast path's share.
    events, out, state, n_fast = fast
    _, expected, expected_fast = CASES[side]()[name]
    frames = [describe(f) for f in parse_frames(out)]
    if expected is None:
        assert not any(f[0] in ("GoAway", "RstStream") for f in frames), frames
        assert not any(isinstance(e, (ConnectionEnded, StreamReset)) for e in events), events
    elif expected[0] == "Closed":
        assert isinstance(events[-1], ConnectionEnded) and events[-1].remote, events
    elif expected[0] == "Ended":
        assert not any(f[0] == "GoAway" for f in frames), frames
        assert isinstance(events[-1], ConnectionEnded) and events[-1].error_code == expected[1], events
    elif expected[0] == "GoAway":
        assert frames[-1][0] == "GoAway" and frames[-1][2] == expected[1], frames
        assert isinstance(events[-1], ConnectionEnded) and events[-1].error_code == expected[1], events
    else:
        assert ("RstStream", 1, expected[1]) in frames, frames
    assert n_fast == expected_fast


def test_data_after_the_peers_goaway_in_the_same_read():
    """The one input whose handling differs from plain h2 fed the same reads (and the reason
    it is accepted): DATA on an open stream after the peer's GOAWAY, in one read.

    RFC 9113 6.8 lets the GOAWAY's sender finish its open streams, but h2's connection
    state machine is CLOSED after receiving GOAWAY and calls any DATA a connection error;
    so plain h2 said PROTOCOL_ERROR (GOAWAY(1), and the peer's GOAWAY event lost) when both
    came in one read, and NO_ERROR (the later DATA ignored) when the DATA came in a later
    read. The fast path hands h2 the frames before a plain DATA frame first, so it behaves
    as the latter whenever that DATA is plain; one with END_STREAM (h2's) still reaches h2
    in the same batch as the GOAWAY, with the old result."""
    def run(fast, split, end_stream=False):
        p = Peer()
        steps = [p.preface(), p.headers(1), p.data(1, b"x"), p.goaway(1), p.data(1, b"y", end_stream=end_stream)]
        mux = make_mux(client_side=False, fast=fast)
        events, out = run_steps(mux, steps, split)
        return events[-1], [describe(f)[0] for f in parse_frames(out)]

    graceful = run(False, by_frame)
    assert graceful[0] == ConnectionEnded(0, "peer sent GOAWAY 0", True) and "GoAway" not in graceful[1]
    assert run(True, whole) == run(True, by_frame) == run(True, by_byte) == graceful
    ended, frames = run(False, whole)
    assert (ended.error_code, ended.remote, frames[-1]) == (PROTOCOL_ERROR, False, "GoAway")
    assert run(True, whole, end_stream=True) == run(False, whole, end_stream=True) == (ended, frames)


# -- 3a. large DATA frames are passed on as they arrive ------------------------------------------
def _merged(events: list) -> list:
    """``events`` with each run of DataReceived on one stream made one (data joined,
    flow lengths summed): what a stream's reader sees is the same either way."""
    out: list = []
    for ev in events:
        if isinstance(ev, DataReceived):
            ev = DataReceived(ev.stream_id, bytes(ev.data), ev.flow_length)  # (a piece may be a view)
            if out and isinstance(out[-1], DataReceived) and out[-1].stream_id == ev.stream_id:
                last = out.pop()
                ev = DataReceived(ev.stream_id, last.data + ev.data, last.flow_length + ev.flow_length)
        out.append(ev)
    return out


def _large_frames() -> list:
    p = Peer()
    rng = random.Random(7)
    return [
        p.preface(),
        p.headers(1),
        p.data(1, rng.randbytes(100_000)),  # streamed
        p.ping(),
        p.headers(3),
        p.data(3, rng.randbytes(40_000)),  # streamed
        p.data(1, b"s" * 10),
        p.data(3, rng.randbytes(32 * 1024)),  # not over 32 KiB: buffered whole, as before
        p.data(1, rng.randbytes(50_000), pad=3),  # padded: h2's, buffered whole
        p.data(3, rng.randbytes(60_000)),
        p.window_update(0, 1000),
    ]


def test_large_data_frames_are_passed_on_as_they_arrive():
    """A plain DATA frame over 32 KiB goes to its stream piece by piece as its payload
    arrives (not buffered until whole: that copied a 1 MiB frame read in 256 KiB pieces
    four times over). Under any split, what each stream gets, the flow lengths, h2's
    windows and states and the output equal plain h2's; the multiplexer itself never
    holds more than a frame header plus 32 KiB of such a frame (the padded one excepted)."""
    steps = _large_frames()
    stream = b"".join(steps)
    pure = make_mux(client_side=False, fast=False, stream_window=4 * 2**20)
    reference, ref_out = run_steps(pure, steps, whole)
    reference_state = window_state(pure)
    padded_at = stream.index(steps[8])
    padded_end = padded_at + len(steps[8])
    splits = [whole, by_frame, at(len(b"".join(steps[:2])) + 9), at(len(b"".join(steps[:2])) + 5)]
    splits += [randomly(seed, max_piece=30_000) for seed in range(12)]
    splits += [randomly(seed, max_piece=700) for seed in range(3)]
    streamed_somewhere = False
    for i, split in enumerate(splits):
        mux = make_mux(client_side=False, fast=True, stream_window=4 * 2**20)
        count = FastCount(mux)
        events: list = []
        out = [drain(mux)]
        pos = 0
        bounds = [len(b"".join(steps[:k])) for k in range(len(steps))]
        for piece in split(stream, bounds):
            events.extend(link_receive(mux, piece))
            pos += len(piece)
            if not padded_at < pos < padded_end:
                assert mux.buffered_input <= 9 + 32 * 1024 + 700, (split.__name__, i, pos, mux.buffered_input)
        out.append(drain(mux))
        assert _merged(events) == _merged(reference), (split.__name__, i)
        assert b"".join(out) == ref_out
        assert window_state(mux) == reference_state
        assert count.received == 5  # every plain DATA frame, streamed or not, accounted once
        datas = [ev for ev in events if isinstance(ev, DataReceived)]
        streamed_somewhere |= len(datas) > 6
    assert streamed_somewhere


def test_a_read_inside_a_large_frame_is_payload_even_if_it_looks_like_a_frame():
    """The single-frame lane (a read that is exactly one DATA frame) does not take a read
    that is the rest of a large frame's payload, however that payload looks."""
    p = Peer()
    inner = p.data(1, b"z" * 40_000)  # the second half of the payload: a valid DATA frame
    outer = p.data(1, os.urandom(50_000) + inner)
    mux = make_mux(client_side=False, fast=True)
    events = link_receive(mux, p.preface() + p.headers(1) + outer[: len(outer) - len(inner)])
    events += link_receive(mux, inner)
    datas = [ev for ev in events if isinstance(ev, DataReceived)]
    assert b"".join(bytes(ev.data) for ev in datas) == outer[9:]
    assert sum(ev.flow_length for ev in datas) == len(outer) - 9
    assert link_receive(mux, p.data(1, b"after")) == [DataReceived(1, b"after", 5)]


def test_views_of_a_read_are_not_kept():
    """A large frame's pieces may be views of the read (no copy); the stream's decoder
    keeps copies only: overwriting the reads afterwards changes nothing it output."""
    from libchan.messages.framing import FrameDecoder, encode_frame

    p = Peer()
    body = os.urandom(90_000)
    payload = encode_frame(body) + encode_frame(b"tail")
    frame = p.data(1, payload)
    mux = make_mux(client_side=False, fast=True)
    reads = [bytearray(p.preface() + p.headers(1) + frame[:40_000]), bytearray(frame[40_000:70_000]), bytearray(frame[70_000:])]
    decoder = FrameDecoder(1 << 20)
    out = []
    for read in reads:
        for ev in mux.receive_data(read):
            if isinstance(ev, DataReceived):
                out += [item for item, _ in decoder.feed(ev.data)[0]]
    assert any(isinstance(x, bytes) for x in out)
    before = b"".join(out)
    for read in reads:
        read[:] = b"\0" * len(read)
    assert b"".join(out) == before == body + b"tail"


def test_closing_inside_a_large_frame_skips_its_rest():
    """Once we closed the connection (GOAWAY), the rest of a large frame passed on in
    pieces is skipped, and the peer's GOAWAY after it is still read."""
    p = Peer()
    frame = p.data(1, os.urandom(100_000))
    mux = make_mux(client_side=False, fast=True)
    mux.receive_data(p.preface() + p.headers(1) + frame[:50_000])
    mux.close()
    assert mux.receive_data(frame[50_000:] + p.goaway(1)) == [ConnectionEnded(0, "peer sent GOAWAY 0", True)]


# -- 3b. the same against a real libchan server ------------------------------------------------------
@pytest.fixture
def pure_h2(monkeypatch):
    """Multiplexers made from now on run without the fast path (plain h2)."""
    def switch_off():
        monkeypatch.setattr(h2fast.DataFastPath, "usable", classmethod(lambda cls, conn: False))
    return switch_off


async def _raw_exchange(host: str, port: int, payload: bytes) -> tuple[list, list, bool]:
    """Send ``payload`` then a PING; the RST_STREAM and GOAWAY frames the server answers
    with until its PING ACK (or until it closes the connection), and whether the ACK came."""
    stream = await trio.open_tcp_stream(host, port)
    marker = b"fastpath"
    await stream.send_all(payload + Peer.ping(marker))
    got = b""
    with trio.move_on_after(5):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            got += chunk
            if any(isinstance(f, hf.PingFrame) and "ACK" in f.flags and f.opaque_data == marker for f in _frames_so_far(got)):
                break
    await stream.aclose()
    frames = [describe(f) for f in parse_frames(got)]
    acked = any(f[0] == "Ping" and f[2] == ("ACK",) for f in frames)
    return [f for f in frames if f[0] == "RstStream"], [f for f in frames if f[0] == "GoAway"], acked


#: The cases that need no local action.
REAL_SERVER_CASES = [k for k, v in _server_cases().items() if not any(callable(s) for s in v[0](Peer()))]


@pytest.mark.fast_paths
async def test_real_server_reacts_to_bad_data_frames_exactly_as_with_plain_h2(tmp_path, pure_h2):
    """Every server case over TCP against ``libchan.serve``, fast path on and off: the same
    RST_STREAMs, the same GOAWAY code, the expected one; the server goes on serving.

    The link sends the GOAWAY of a connection error best effort (spec/PROTOCOL.md 4.5: the
    connection may close first, in roughly one case in six), so a case that expects one
    repeats until one arrives."""
    async def handler(session):
        async for receiver in session:
            pass

    config = libchan.Config(max_frame_size=16384)
    results = {}
    with trio.fail_after(25):
        for mode in ("fast", "pure"):
            if mode == "pure":
                pure_h2()
            async with served("tcp", handler, tmp_path, config) as (url, _):
                host, port = url[len("tcp://"):].rsplit(":", 1)
                for name in REAL_SERVER_CASES:
                    _, expected, _ = _server_cases()[name]
                    if name in SPLIT_DEPENDENT:  # test_data_after_the_peers_goaway_in_the_same_read
                        expected = ("Closed",) if mode == "fast" else ("GoAway", PROTOCOL_ERROR)
                    for _attempt in range(20):
                        rsts, goaways, acked = await _raw_exchange(host, int(port), b"".join(_server_cases()[name][0](Peer())))
                        if goaways or expected is None or expected[0] != "GoAway":
                            break
                    results[mode, name] = (rsts, [f[2] for f in goaways], acked)
                    if expected is None:
                        assert not goaways and acked, (mode, name, results[mode, name])
                    elif expected[0] == "GoAway":
                        assert [f[2] for f in goaways] == [expected[1]] and not acked, (mode, name, results[mode, name])
                    elif expected[0] == "RstStream":
                        assert ("RstStream", 1, expected[1]) in rsts and acked, (mode, name, results[mode, name])
                    else:
                        assert not goaways and not acked, (mode, name, results[mode, name])
                async with libchan.connect(url, config=config) as session:  # still serving
                    sender = await session.open_sender()
                    await sender.send("still fine")
                    await sender.aclose()
                    assert (_links(session)[0].mux._fast is None) == (mode == "pure")
    for name in REAL_SERVER_CASES:
        if name not in SPLIT_DEPENDENT:
            assert results["fast", name] == results["pure", name], name


@pytest.mark.fast_paths
async def test_libchan_client_given_data_before_response_headers_answers_as_with_plain_h2(pure_h2):
    """A raw server sends DATA on the client's control stream before any response HEADERS:
    the client fails with the same protocol error and says GOAWAY(PROTOCOL_ERROR) (best
    effort: tried until it arrives), with the fast path on or off."""
    async def run_once() -> tuple[str, list[tuple]]:
        seen: list[bytes] = []

        async def fake_server(stream):
            got = b""
            while not any(isinstance(f, hf.HeadersFrame) for f in _frames_so_far(got)):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                got += chunk
            p = Peer()
            await stream.send_all(p.settings() + p.data(1, b"too early"))
            with trio.move_on_after(5):
                try:
                    while chunk := await stream.receive_some(65536):
                        got += chunk
                except trio.BrokenResourceError:
                    pass
            seen.append(got)

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, fake_server, 0)
            port = listeners[0].socket.getsockname()[1]
            async with libchan.connect(f"tcp://127.0.0.1:{port}") as session:
                assert (session._core._own_link.mux._fast is None) == bool(pure_mode)
                with pytest.raises(libchan.SessionClosedError) as info:
                    await session.accept_receiver()
            while not seen:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        return str(info.value), [describe(f) for f in _frames_so_far(seen[0]) if isinstance(f, (hf.GoAwayFrame, hf.RstStreamFrame))]

    async def until_goaway_seen() -> tuple[str, list[tuple]]:
        for _ in range(20):
            reason, frames = await run_once()
            if frames:
                break
        return reason, frames

    pure_mode: list = []
    with trio.fail_after(20):
        fast = await until_goaway_seen()
        pure_h2()
        pure_mode.append(True)
        pure = await until_goaway_seen()
    assert fast == pure
    assert "cannot receive data before headers" in fast[0]
    assert fast[1] == [("GoAway", 0, PROTOCOL_ERROR)]


def _frames_so_far(data: bytes) -> list[hf.Frame]:
    """The complete frames at the start of ``data``."""
    if data.startswith(PREFACE):
        data = data[len(PREFACE):]
    pos = 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos : pos + 3], "big")
        if len(data) - pos - 9 < length:
            break
        pos += 9 + length
    return parse_frames(data[:pos])


# -- 4. direct socket I/O ---------------------------------------------------------------------------
def _links(session) -> list:
    return list(session._core._links)


@pytest.mark.fast_paths
@pytest.mark.parametrize("transport", ["tcp", "unix", "tls", "memory"])
async def test_links_use_direct_socket_io_on_sockets_only(transport, profile, tmp_path):
    """TCP, unix and TLS (over a socket: sockio drives trio's SSLStream) read and write the
    socket directly; anything else goes through the trio stream."""
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send("hello")
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == "hello"
            links = _links(cli) + _links(srv)
            assert len(links) == 2 and all(link.io is not None for link in links)
            direct = transport in ("tcp", "unix", "tls")
            assert [link.io.direct for link in links] == [direct, direct]
            assert [link.io.tls for link in links] == [transport == "tls"] * 2
            if direct:  # and the link writes through its own socket object, both ways
                recorders = [RecordingSocket.install(link) for link in links]
                await sender.send("via the socket itself")
                assert await receiver.receive() == "via the socket itself"
                back = await srv.open_sender()
                await back.send("back")
                assert await (await cli.accept_receiver()).receive() == "back"
                await back.aclose()
                assert all(r.writes for r in recorders)
            await sender.aclose()


class RecordingSocket:
    """Wraps a link's writes to its socket (``os.write``/``os.writev`` on the socket's own
    descriptor): records each write's size and result, whatever TransportIO's own API."""

    def __init__(self, io) -> None:
        self.writes: list[tuple[int, int]] = []  # (bytes offered, bytes the kernel took)
        write, writev = io._write, io._writev
        io._write = lambda fd, data: self._record(memoryview(data).nbytes, lambda: write(fd, data))
        io._writev = lambda fd, buffers: self._record(
            sum(memoryview(b).nbytes for b in buffers), lambda: writev(fd, buffers)
        )

    @classmethod
    def install(cls, link) -> "RecordingSocket":
        assert link.io.direct
        return cls(link.io)

    def _record(self, offered: int, write) -> int:
        try:
            n = write()
        except BlockingIOError:
            self.writes.append((offered, 0))
            raise
        self.writes.append((offered, n))
        return n


def _small_socket_buffers(cli, srv, sndbuf: int, rcvbuf: int | None = None) -> None:
    """Shrink the kernel buffers of both ends' sockets."""
    for link in _links(cli) + _links(srv):
        link.io._tsock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if rcvbuf is not None:
            link.io._tsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)


@pytest.mark.fast_paths
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_large_byte_stream_to_a_slow_reader_arrives_intact(transport, profile, tmp_path):
    """16 MiB through small kernel buffers to a reader that pauses: the socket takes only
    part of many writes (the kernel buffer is full) and not one byte is lost or reordered."""
    size = 16 * 1024 * 1024
    rng = random.Random(5)
    blob = rng.randbytes(size)
    with trio.fail_after(25):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            _small_socket_buffers(cli, srv, 32 * 1024, 32 * 1024)
            recorders = [RecordingSocket.install(link) for link in _links(cli)]
            sender = await cli.open_sender()
            mine, theirs = libchan.stream_pipe()
            await sender.send({"stream": theirs})
            receiver = await srv.accept_receiver()
            remote = (await receiver.receive())["stream"]

            async def write():
                view = memoryview(blob)
                for i in range(0, size, 1 << 20):
                    await mine.send_all(view[i : i + (1 << 20)])
                await mine.send_eof()

            digest, total, pauses = hashlib.sha256(), 0, 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                while chunk := await remote.receive_some(65536):
                    digest.update(chunk)
                    if total // (2 << 20) != (total + len(chunk)) // (2 << 20):
                        pauses += 1
                        await trio.sleep(0.05)  # the slow reader: the sender's kernel buffer fills
                    total += len(chunk)
            assert total == size
            assert digest.hexdigest() == hashlib.sha256(blob).hexdigest()
            assert pauses >= 7
            writes = recorders[0].writes
            assert sum(n for _, n in writes) > size
            # the kernel buffer filled up again and again (h2 also sees writes that take
            # nothing: a sending task's own attempt while the buffer is full)
            assert sum(1 for offered, n in writes if 0 < n < offered) >= 8, "no partial writes"
            await sender.aclose()


@pytest.mark.fast_paths
async def test_bursts_into_a_full_socket_keep_their_order(profile, tmp_path):
    """A sending task that finds the writer idle writes to the socket itself; when the
    kernel takes only part (a 64 KiB send buffer, a 200 KB message), the rest waits for the writer
    while the next messages queue behind it: every message arrives, in order."""
    big, small, rounds = b"B" * 200_000, b"s" * 10, 40
    with trio.fail_after(25):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            # (a small receive buffer too would add TCP's delayed-ACK and zero-window
            # stalls of the loopback, 40 ms to seconds per message)
            _small_socket_buffers(cli, srv, 64 * 1024)
            recorder = RecordingSocket.install(_links(cli)[0])
            sender = await cli.open_sender()
            acks_send, acks_receive = trio.open_memory_channel(0)
            got = []

            async def receive():
                async for msg in await srv.accept_receiver():
                    got.append(msg)
                    if msg[1] == 5:
                        await acks_send.send(None)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                for i in range(rounds):  # each burst starts with the writer idle
                    await sender.send([i, 0, big])
                    for k in range(1, 6):
                        await sender.send([i, k, small])
                    await acks_receive.receive()
                await sender.aclose()
            assert [m[:2] for m in got] == [[i, k] for i in range(rounds) for k in range(6)]
            assert all(m[2] == (big if m[1] == 0 else small) for m in got)
            assert sum(1 for offered, n in recorder.writes if n < offered) >= rounds // 2


def _fd_count() -> int:
    gc.collect()  # sockets of earlier tests still waiting to be collected close now
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.fast_paths
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_closing_sessions_closes_their_sockets(transport, profile, tmp_path):
    """25 sessions opened and closed: on both ends the link's socket is closed (direct I/O
    uses the socket's own descriptor, no duplicate of it), and the process has as many
    descriptors as before (the server's ends close when they see EOF)."""
    server_links = set()

    async def handler(session):
        async for receiver in session:
            server_links.update(_links(session))
            async for _ in receiver:
                pass

    with trio.fail_after(25):
        async with served(transport, handler, tmp_path) as (url, _):
            before = _fd_count()
            kept = []
            for i in range(25):
                async with libchan.connect(url, profile=profile) as session:
                    sender = await session.open_sender()
                    await sender.send(i)
                    await sender.aclose()
                    link = session._core._own_link
                    assert link.io.direct
                    assert link.io._tsock is link.transport.socket  # its own descriptor
                    kept.append(link)
            for link in kept:
                assert link.transport.socket.fileno() == -1
            with trio.move_on_after(5):
                while _fd_count() > before:  # the server's ends close once they see EOF
                    await trio.sleep(0.02)
            assert _fd_count() <= before
            assert len(server_links) == 25
            assert all(link.io.direct and link.io._tsock.fileno() == -1 for link in server_links)


async def test_the_peer_sees_eof_when_the_server_ends_a_connection(tmp_path, profile):
    """A raw client says GOAWAY (HTTP/2 or SPDY/3): the server's link ends and closes the
    connection, and the client sees EOF."""
    async def handler(session):
        pass

    with trio.fail_after(10):
        async with served("tcp", handler, tmp_path) as (url, _):
            host, port = url[len("tcp://"):].rsplit(":", 1)
            before = _fd_count()
            for _ in range(5):
                stream = await trio.open_tcp_stream(host, int(port))
                if profile == "h2":
                    p = Peer()
                    await stream.send_all(p.preface() + p.goaway(0))
                else:  # SPDY/3 control frames: SETTINGS (no entries), GOAWAY(0, OK)
                    await stream.send_all(b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x00")
                    await stream.send_all(b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00")
                with trio.fail_after(5):
                    while await stream.receive_some(65536):
                        pass  # EOF: the server closed the connection (its descriptor and the copy)
                await stream.aclose()
            with trio.move_on_after(5):
                while _fd_count() > before:
                    await trio.sleep(0.02)
            assert _fd_count() <= before


# -- 5. property: random traffic through a fast pair equals a pure pair ---------------------------
class Pair:
    """A client and a server multiplexer driven like two links: every output is delivered
    at once (cut into pieces by ``split_seed``'s generator, or whole), a request is answered
    when it arrives, and everything seen or raised is logged."""

    def __init__(self, fast: bool, split_seed: int | None, **kw) -> None:
        self.c = make_mux(client_side=True, fast=fast, **kw)
        self.s = make_mux(client_side=False, fast=fast, **kw)
        self.counts = (FastCount(self.c), FastCount(self.s))
        self.rng = random.Random(split_seed) if split_seed is not None else None
        # the fast pair drains with data_chunks() (the link's gathering write) at random
        self.chunks_rng = random.Random(split_seed) if fast and hasattr(self.c, "data_chunks") else None
        self.sids: list[int] = []
        self.got: dict[tuple[str, int], bytearray] = {}
        self.unacked: dict[tuple[str, int], int] = {}
        self.log: list = []  # every event and every action's outcome
        self.wire: list[bytes] = []
        #: DATA frames a sending task wrote itself (link_send), not yet delivered
        self.direct = {"c": b"", "s": b""}
        self.direct_frames = 0

    def mux(self, side: str) -> H2Multiplexer:
        return self.c if side == "c" else self.s

    def deliver(self) -> None:
        for _ in range(50):
            moved = False
            for side, src, dst in (("c", self.c, self.s), ("s", self.s, self.c)):
                if self.chunks_rng is not None and self.chunks_rng.random() < 0.5:
                    out = b"".join(src.data_chunks())
                else:
                    out = src.data_to_send()
                out, self.direct[side] = self.direct[side] + out, b""  # written at once: first
                if not out:
                    continue
                moved = True
                self.wire.append(out)
                pieces = [out]
                if self.rng is not None:
                    pieces, pos = [], 0
                    while pos < len(out):
                        n = self.rng.choice([1, 2, 9, 10, self.rng.randint(1, 3000)])
                        pieces.append(out[pos : pos + n])
                        pos += n
                other = "s" if side == "c" else "c"
                for piece in pieces:
                    for ev in link_receive(dst, piece):
                        self.log.append((other, ev))
                        if isinstance(ev, StreamOpened) and not dst.closed:
                            dst.answer_stream(ev.stream_id, RESPONSE)
                        elif isinstance(ev, DataReceived):
                            key = (other, ev.stream_id)
                            self.got.setdefault(key, bytearray()).extend(ev.data)
                            self.unacked[key] = self.unacked.get(key, 0) + ev.flow_length
            if not moved:
                return
        raise AssertionError("the pair never went quiet")

    def act(self, op: tuple) -> None:
        kind = op[0]
        try:
            if kind == "open":
                self.sids.append(self.c.open_stream(REQUEST))
            elif self.sids:
                sid = self.sids[op[2] % len(self.sids)]
                mux = self.mux(op[1])
                if kind == "send":
                    room = mux.sendable(sid)
                    n = min(op[3], room)
                    self.log.append(("sendable", op[1], sid, room))
                    if n > 0 or op[4]:
                        payload = bytes((sid * 7 + i) % 251 for i in range(n))
                        if op[5] > 1 and hasattr(mux, "send_data_parts"):  # one frame in pieces
                            cuts = sorted({0, n, *(n * k // op[5] for k in range(1, op[5]))})
                            mux.send_data_parts(sid, [payload[a:b] for a, b in zip(cuts, cuts[1:])] or [b""], end_stream=op[4])
                        elif not op[4] and (frame := link_send(mux, sid, payload)) is not None:
                            self.direct[op[1]] += frame  # the link's sending task writes it
                            self.direct_frames += 1
                        else:
                            mux.send_data(sid, payload, end_stream=op[4])
                        self.log.append(("sent", op[1], sid, n, op[4]))
                elif kind == "ack":  # the application on this side consumed what arrived
                    for key in [k for k in self.unacked if k[0] == op[1]]:
                        size = self.unacked.pop(key)
                        mux.acknowledge(key[1], size)
                        mux.acknowledge(None, size)
                elif kind == "end":
                    mux.end_stream(sid)
                elif kind == "reset":
                    mux.reset_stream(sid)
            elif kind == "close":
                self.c.close()
        except Exception as exc:  # noqa: BLE001 - recorded and compared
            self.log.append(("raised", op, type(exc).__name__))
        self.deliver()

    def state(self) -> tuple:
        return window_state(self.c), window_state(self.s)


_sides = st.sampled_from(["c", "s"])
_send = st.tuples(st.just("send"), _sides, st.integers(0, 7), st.integers(1, 40000) | st.just(0), st.sampled_from([False] * 7 + [True]), st.integers(1, 3))
_ack = st.tuples(st.just("ack"), _sides, st.integers(0, 7))
_ops = st.lists(
    st.one_of(
        _send, _send, _send, _send, _send, _send, _ack, _ack, _ack,
        st.tuples(st.just("open")),
        st.tuples(st.just("open")),
        st.tuples(st.sampled_from(["end", "reset"]), _sides, st.integers(0, 7)),
    ),
    min_size=15,
    max_size=60,
)
_maybe_close = st.sampled_from([[]] * 4 + [[("close",)]])


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.tuples(st.lists(st.tuples(st.just("open")), min_size=1, max_size=3), _ops, _maybe_close).map(lambda t: t[0] + t[1] + t[2]),
    seed=st.integers(0, 2**32 - 1),
    stream_window=st.sampled_from([100, 4000, 65535, 200_000]),
    connection_window=st.sampled_from([65535, 70000, 1 << 20]),
    max_frame_size=st.sampled_from([16384, 20000]),
)
def test_random_traffic_through_fast_pair_equals_pure_h2_pair(ops, seed, stream_window, connection_window, max_frame_size):
    kw = dict(stream_window=stream_window, connection_window=connection_window, max_frame_size=max_frame_size)
    fast = Pair(True, seed, **kw)
    pure = Pair(False, seed, **kw)  # the same cuts
    pure_whole = Pair(False, None, **kw)  # every output in one read
    for op in ops:
        for pair in (fast, pure, pure_whole):
            pair.act(op)
        assert fast.state() == pure.state(), op
        assert fast.log == pure.log, op
    assert fast.got == pure.got == pure_whole.got
    assert fast.state() == pure_whole.state()
    assert fast.wire == pure.wire
    # the fast path ran: every DATA frame without flags that was sent went its way
    plain = sum(1 for chunk in fast.wire for f in parse_frames(chunk) if isinstance(f, hf.DataFrame) and not f.flags)
    assert fast.counts[0].sent + fast.counts[1].sent == plain
    assert pure.counts[0].sent == pure.counts[1].sent == 0
    assert pure.direct_frames == pure.counts[0].sole == pure.counts[1].sole == 0
