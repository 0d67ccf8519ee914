"""Hostile peers, sans-IO (issue 11): frame lengths and header blocks checked on the frame
header, before their bytes are buffered; floods answered with GOAWAY(ENHANCE_YOUR_CALM);
the work of counting streams linear in the streams (spec 14.2, 17, 19.3).

Plain bytes in, events and bytes out: no sockets, no clocks (``now`` is given)."""

from __future__ import annotations

import sys

import h2.stream
import hpack
import hyperframe.frame as hf
import pytest

from libchan.spdy_like.flood import BURST_SECONDS, FloodGuard, FloodLimits
from libchan.spdy_like import h2mux
from libchan.spdy_like.h2mux import PREFACE, H2Multiplexer
from libchan.spdy_like.mux import ConnectionEnded, StreamOpened
from libchan.spdy_like.spdy3 import Data, FrameWriter, Ping, RstStream, SynStream
from libchan.spdy_like.spdymux import SpdyMultiplexer

REQUEST = [(":method", "POST"), (":scheme", "http"), (":authority", "test"), (":path", "/x")]
FRAME_SIZE_ERROR, ENHANCE_YOUR_CALM = 6, 11


def raw(ftype: int, flags: int, sid: int, payload: bytes = b"", length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def start() -> bytes:
    return PREFACE + hf.SettingsFrame(0).serialize()


def goaways(out: bytes) -> list[int]:
    codes, pos = [], 0
    while len(out) - pos >= 9:
        length = int.from_bytes(out[pos : pos + 3], "big")
        if out[pos + 3] == 7:
            codes.append(int.from_bytes(out[pos + 13 : pos + 17], "big"))
        pos += 9 + length
    return codes


def ended(events) -> ConnectionEnded | None:
    return next((e for e in events if isinstance(e, ConnectionEnded)), None)


@pytest.mark.parametrize("fast", [True, False])
def test_limit_oversized_frame_refused_on_its_header_alone(fast):
    """A frame header announcing more than our MAX_FRAME_SIZE is a FRAME_SIZE_ERROR as soon
    as its 9 bytes are in; none of its payload is waited for or kept."""
    mux = H2Multiplexer(client_side=False, max_frame_size=16384, fast_paths=fast)
    mux.data_to_send()
    events = mux.receive_data(start() + raw(0, 0, 1, length=16385))
    assert ended(events) is not None and ended(events).error_code == FRAME_SIZE_ERROR, events
    assert goaways(mux.data_to_send()) == [FRAME_SIZE_ERROR]
    assert mux.receive_data(b"x" * 100_000) == [] and mux.data_to_send() == b""  # nothing read after it


def _header_block_mux(**kw) -> tuple[H2Multiplexer, bytes]:
    mux = H2Multiplexer(client_side=False, max_header_list_size=4096, **kw)
    mux.data_to_send()
    block = hpack.Encoder().encode(REQUEST)
    return mux, start() + raw(1, 0, 1, block)  # HEADERS without END_HEADERS


def test_limit_header_block_bounded_as_continuations_arrive():
    """CONTINUATION frames end the connection with ENHANCE_YOUR_CALM once the block's wire
    bytes pass max_header_list_size + slack, each frame judged on its header: nothing is
    buffered up to END_HEADERS. (Empty CONTINUATIONs count 9 bytes each; h2 also stops
    at its own count of them, with PROTOCOL_ERROR.)"""
    piece = 1000
    mux, first = _header_block_mux()
    assert mux.max_header_block == 4096 + h2mux.HEADER_BLOCK_SLACK
    assert not ended(mux.receive_data(first))
    fed = len(first)
    frame = raw(9, 0, 1, b"\x00" * piece)
    for _ in range(10_000):
        events = mux.receive_data(frame[:9])  # the frame header alone
        if events:
            break
        events = mux.receive_data(frame[9:])
        fed += len(frame)
        if events:
            break
    assert ended(events) is not None and ended(events).error_code == ENHANCE_YOUR_CALM, events
    assert fed <= mux.max_header_block + len(first), fed
    assert goaways(mux.data_to_send()) == [ENHANCE_YOUR_CALM]
    # a legitimate block split over CONTINUATIONs, near max_header_list_size, is accepted
    mux = H2Multiplexer(client_side=False, max_header_list_size=8192)
    mux.data_to_send()
    block = hpack.Encoder().encode([*REQUEST, ("x-big", "v" * 7000)])
    frames = [raw(1, 0, 1, block[:3000]), raw(9, 0, 1, block[3000:6000]), raw(9, 4, 1, block[6000:])]
    events = mux.receive_data(start() + b"".join(frames))
    assert any(isinstance(e, StreamOpened) for e in events), events


def test_limit_token_bucket_and_guard():
    bucket = FloodGuard(FloodLimits(pings=2), now=1000.0)  # 20 tokens, 2 back per second
    assert [bucket.allow("ping", 1000.0) for _ in range(21)] == [True] * 20 + [False]
    assert bucket.allow("ping", 1000.5) and not bucket.allow("ping", 1000.5)  # one back after 0.5 s
    assert sum(bucket.allow("ping", 1005.0) for _ in range(30)) == 9  # 4.5 s: nine more, not more
    assert sum(bucket.allow("ping", 2000.0) for _ in range(30)) == 20  # full again, never fuller
    many = FloodGuard(FloodLimits(streams=5000), now=123456.789)  # small steps on a large clock
    assert sum(many.allow("stream", 123456.789) for _ in range(60_000)) == 50_000
    guard = FloodGuard(FloodLimits(pings=1, resets=1, streams=1, empty=1), now=100.0)
    assert all(guard.allow("ping", 100.0) for _ in range(BURST_SECONDS))
    assert not guard.allow("ping", 100.0) and "PING" in guard.tripped
    assert sum(guard.allow("empty", 100.0) for _ in range(100)) == BURST_SECONDS
    guard.data_sent(3)  # six WINDOW_UPDATEs more
    assert sum(guard.allow("empty", 100.0) for _ in range(100)) == 6


LIMITS = FloodLimits(pings=2, resets=3, streams=4, empty=5)


def _flood(frame_of, count: int, *, step: float = 0.0, client_side: bool = False, fast: bool = True):
    """Feed ``count`` frames (``frame_of(i)``) one read each, ``step`` seconds apart; the
    index at which the connection ended (None: never) and the GOAWAY codes sent."""
    mux = H2Multiplexer(client_side=client_side, flood=LIMITS, fast_paths=fast)
    mux.data_to_send()
    mux.receive_data(start() if not client_side else hf.SettingsFrame(0).serialize(), now=0.0)
    enc = hpack.Encoder()
    for i in range(count):
        if ended(mux.receive_data(frame_of(i, enc), now=i * step)):
            return i, goaways(mux.data_to_send())
        mux.data_to_send()
    return None, goaways(mux.data_to_send())


def _open(i: int, enc: hpack.Encoder, end_stream: bool = False) -> bytes:
    flags = ["END_HEADERS", "END_STREAM"] if end_stream else ["END_HEADERS"]
    return hf.HeadersFrame(2 * i + 1, data=enc.encode(REQUEST), flags=flags).serialize()


FLOODS = {
    "PING": (lambda i, enc: hf.PingFrame(0, opaque_data=b"12345678").serialize(), LIMITS.pings),
    "SETTINGS": (lambda i, enc: hf.SettingsFrame(0).serialize(), LIMITS.pings),
    "rapid reset": (lambda i, enc: _open(i, enc) + hf.RstStreamFrame(2 * i + 1, error_code=8).serialize(), LIMITS.resets),
    "stream churn": (lambda i, enc: _open(i, enc, end_stream=True), LIMITS.streams),
    "empty DATA": (lambda i, enc: (_open(0, enc) if i == 0 else b"") + raw(0, 0, 1), LIMITS.empty),
    "WINDOW_UPDATE": (lambda i, enc: hf.WindowUpdateFrame(0, window_increment=1).serialize(), LIMITS.empty),
    "PRIORITY": (lambda i, enc: hf.PriorityFrame(1, depends_on=0, stream_weight=16).serialize(), LIMITS.empty),
    "unknown frame type": (lambda i, enc: raw(0x42, 0, 0, b"x"), LIMITS.empty),
}


@pytest.mark.parametrize("name", FLOODS)
@pytest.mark.parametrize("fast", [True, False])
def test_limit_flood_ends_connection_with_enhance_your_calm(name, fast):
    frame_of, rate = FLOODS[name]
    at, codes = _flood(frame_of, 1000, fast=fast)
    first_settings = name in ("PING", "SETTINGS")  # (the peer's first SETTINGS is one of the burst)
    assert at == rate * BURST_SECONDS - first_settings, (at, codes)  # the burst passes, the next frame trips
    assert codes == [ENHANCE_YOUR_CALM]
    # at the sustained rate (a bit below it), the same frames never trip
    assert _flood(frame_of, 300, step=1.1 / rate, fast=fast) == (None, [])


def test_limit_flood_ping_acks_and_keepalive_pings_never_trip():
    pings = lambda i, enc: hf.PingFrame(0, opaque_data=b"12345678").serialize()  # noqa: E731
    assert _flood(pings, 500, step=5.0) == (None, [])  # keepalive: one PING every 5 s
    acks = lambda i, enc: hf.PingFrame(0, opaque_data=b"12345678", flags=["ACK"]).serialize()  # noqa: E731
    assert _flood(acks, 200, client_side=True)[0] is None  # (answers are not counted)


def test_limit_window_updates_follow_the_data_we_send():
    """A peer acknowledging each DATA frame we send (stream and connection) never trips."""
    mux = H2Multiplexer(client_side=True, flood=LIMITS)
    sid = mux.open_stream(REQUEST)
    enc = hpack.Encoder()
    mux.receive_data(hf.SettingsFrame(0).serialize() + hf.HeadersFrame(sid, data=enc.encode([(":status", "200")]), flags=["END_HEADERS"]).serialize(), now=0.0)
    for i in range(500):
        mux.send_data(sid, b"x" * 10)
        update = hf.WindowUpdateFrame(sid, window_increment=10).serialize() + hf.WindowUpdateFrame(0, window_increment=10).serialize()
        assert not ended(mux.receive_data(update, now=0.0)), i
        mux.data_to_send()


# -- SPDY/3.1 (the Go profile) ---------------------------------------------------------------


def _spdy(**kw) -> SpdyMultiplexer:
    return SpdyMultiplexer(client_side=False, max_header_list_size=4096, max_data_frame_size=1 << 20, **kw)


@pytest.mark.parametrize(
    "header",
    [
        (0x80030001).to_bytes(4, "big") + (10 + 4096 + 1025).to_bytes(4, "big"),  # SYN_STREAM over the header bound
        (0x80030004).to_bytes(4, "big") + (1 << 20).to_bytes(4, "big"),  # SETTINGS of 1 MiB
        (0x80030006).to_bytes(4, "big") + (5000).to_bytes(4, "big"),  # PING of 5000 bytes (must be 4)
        (0x800300FF).to_bytes(4, "big") + (100_000).to_bytes(4, "big"),  # unknown control type
        (1).to_bytes(4, "big") + ((1 << 20) + 1).to_bytes(4, "big"),  # DATA over max_data_frame_size
    ],
    ids=["SYN_STREAM", "SETTINGS", "PING", "unknown", "DATA"],
)
def test_limit_spdy_oversized_frame_refused_on_its_header_alone(header):
    mux = _spdy()
    events = mux.receive_data(header)  # the 8-byte header, nothing of the payload
    assert ended(events) is not None and not ended(events).remote, events
    assert mux.data_to_send()[:4] == (0x80030007).to_bytes(4, "big")  # GOAWAY


@pytest.mark.parametrize(
    "name, frame_of, rate",
    [
        ("PING", lambda i: Ping(2 * i + 1), LIMITS.pings),
        ("rapid reset", lambda i: [SynStream(2 * i + 1, (("libchan-ref", str(i + 2)),)), RstStream(2 * i + 1, 5)], LIMITS.resets),
        ("churn", lambda i: [SynStream(2 * i + 1, (("libchan-ref", str(i + 2)),), fin=True)], LIMITS.streams),
        ("empty DATA", lambda i: [SynStream(1, (("libchan-ref", "2"),))] * (i == 0) + [Data(1, b"")], LIMITS.empty),
    ],
)
def test_limit_spdy_flood_ends_connection(name, frame_of, rate):
    def run(step):
        writer, mux = FrameWriter(), _spdy(flood=LIMITS)
        for i in range(300):
            frames = frame_of(i)
            data = b"".join(writer.serialize(f) for f in (frames if isinstance(frames, list) else [frames]))
            e = ended(mux.receive_data(data, now=i * step))
            if e is not None:
                assert e.error_code == ENHANCE_YOUR_CALM and "flood" in e.reason
                assert mux.data_to_send()[-16:-12] == (0x80030007).to_bytes(4, "big")  # GOAWAY last
                return i
            mux.data_to_send()
        return None

    assert run(0.0) == rate * BURST_SECONDS
    assert run(1.1 / rate) is None


# -- the work of counting streams ----------------------------------------------------------------


def _stream_checks(n: int) -> int:
    """Calls of h2's ``H2Stream.open``/``closed`` (what counting open streams costs) while a
    server multiplexer takes ``n`` requests, one read each, each with a DATA frame (so
    every request is its own batch for h2), all left open."""
    enc = hpack.Encoder()
    mux = H2Multiplexer(client_side=False, max_concurrent_streams=2 * n)
    mux.receive_data(start())
    reads = [
        hf.HeadersFrame(2 * i + 1, data=enc.encode(REQUEST), flags=["END_HEADERS"]).serialize()
        + hf.DataFrame(2 * i + 1, data=b"x").serialize()
        for i in range(n)
    ]
    counted = (h2.stream.H2Stream.open.fget.__code__, h2.stream.H2Stream.closed.fget.__code__)
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event == "call" and frame.f_code in counted:
            calls += 1

    sys.setprofile(profile)
    try:
        for data in reads:
            mux.receive_data(data)
    finally:
        sys.setprofile(None)
    return calls


def test_limit_streams_of_one_connection_cost_linear_work():
    """Opening N streams on one connection looks at h2's streams O(N) times, not O(N^2)
    (issue 11: 10,000 streams took 16 s; bench/stream_scaling.py shows the time)."""
    checks = _stream_checks(2000)
    assert checks <= 4 * 2000, checks  # (before: about 2000**2 / 2)


@pytest.mark.parametrize("fast", [True, False])
def test_limit_new_streams_per_call_are_bounded(fast):
    """A read holding 100 requests opens at most _NEW_STREAMS_PER_CALL of them per call
    (each may start a session: the link lets other connections run in between), and the
    rest follow on the next calls, in order, none lost."""
    mux = H2Multiplexer(client_side=False, fast_paths=fast)
    mux.data_to_send()
    mux.receive_data(start(), now=0.0)
    enc = hpack.Encoder()
    read = b"".join(_open(i, enc, end_stream=True) for i in range(100))
    opened: list[int] = []
    calls = 0
    events = mux.receive_data(read, now=0.0)
    while True:
        calls += 1
        got = [ev.stream_id for ev in events if isinstance(ev, StreamOpened)]
        assert len(got) <= h2mux._NEW_STREAMS_PER_CALL
        opened += got
        if not mux.input_pending:
            break
        events = mux.receive_data(b"", now=0.0)
    assert opened == [2 * i + 1 for i in range(100)]
    assert calls == -(-100 // h2mux._NEW_STREAMS_PER_CALL)
