"""SPDY/3 DATA frames passed on as they arrive (``FrameParser(stream_data=True)``, what the
Go-profile multiplexer uses): a peer announcing a 16 MiB frame costs no 16 MiB buffer
(``-k limit``), and any split of the input gives the same data and control frames as
whole-frame parsing (``-k fuzz``)."""

from __future__ import annotations

import random

import pytest

from libchan.spdy_like.spdy3 import Data, FrameParser, FrameWriter, Ping, Spdy3ProtocolError, SynStream

MiB = 1024 * 1024


def _wire() -> tuple[bytes, list]:
    w = FrameWriter()
    frames = [
        SynStream(1, [("x", "y")]),
        Data(1, b"a" * 70_000),
        Ping(2),
        Data(3, b""),
        Data(1, b"b" * 5, fin=True),
        Data(3, b"c" * 300_000, fin=True),
    ]
    return b"".join(w.serialize(f) for f in frames), frames


def _summary(frames) -> tuple[dict[int, bytes], list, list]:
    data: dict[int, bytes] = {}
    fins = []
    control = []
    for f in frames:
        if isinstance(f, Data):
            data[f.stream_id] = data.get(f.stream_id, b"") + f.data
            if f.fin:
                fins.append(f.stream_id)
        else:
            control.append(f)
    return data, fins, control


def test_limit_spdy_announced_huge_data_frame_is_not_buffered():
    parser = FrameParser(stream_data=True)
    header = (1).to_bytes(4, "big") + (16 * MiB - 1).to_bytes(4, "big")  # stream 1, no FIN
    out = parser.feed(header + b"z" * MiB)
    assert [(type(f), f.stream_id, len(f.data), f.fin) for f in out] == [(Data, 1, MiB, False)]
    assert parser.buffered_bytes == 0
    rest = parser.feed(b"z" * (15 * MiB - 1))
    assert sum(len(f.data) for f in rest) == 15 * MiB - 1 and parser.buffered_bytes == 0
    whole = FrameParser()
    assert whole.feed(header + b"z" * MiB) == [] and whole.buffered_bytes == MiB + 8  # (the old way)


def test_limit_spdy_connection_ending_inside_a_streamed_data_frame_is_an_error():
    parser = FrameParser(stream_data=True)
    parser.feed((1).to_bytes(4, "big") + (1000).to_bytes(4, "big") + b"x" * 10)
    with pytest.raises(Spdy3ProtocolError, match="inside a DATA frame"):
        parser.feed_eof()


@pytest.mark.parametrize("seed", range(20))
def test_fuzz_spdy_stream_data_any_split_same_frames(seed):
    wire, sent = _wire()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(wire)), 40))
    parser = FrameParser(stream_data=True)
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)]):
        got += parser.feed(wire[a:b])
    parser.feed_eof()
    assert _summary(got) == _summary(sent)
    # a FIN comes once per stream, on its last piece, and no piece is empty but an empty frame
    assert all(f.data or f.fin or f.stream_id == 3 for f in got if isinstance(f, Data))


def test_limit_go_partial_message_footprint_covers_what_is_held():
    """The Go-profile message decoder holds a partial message twice: its own pieces, and
    msgpack's Unpacker buffer that finds where it ends (grown by doubling). Its footprint,
    what the budget charges, covers all of it (measured with tracemalloc, which sees both),
    without counting much more; once the message is out, a grown Unpacker is let go of."""
    import tracemalloc

    from libchan.messages.bodies import GoMessages
    from libchan.messages.msgpack_codec import MsgpackCodec, MsgpackStreamDecoder

    mib = 1 << 20
    tracemalloc.start()
    try:
        body = GoMessages(MsgpackStreamDecoder(MsgpackCodec(max_message_size=16 * mib, max_depth=16), lambda k, r: None))
        base = tracemalloc.get_traced_memory()[0]
        items, _ = body.feed(b"\xc6" + (16 * mib - 64).to_bytes(4, "big"))
        for _ in range(60):  # 15 MiB in reads of 256 KiB
            items, _ = body.feed(b"p" * (256 * 1024))
            held = tracemalloc.get_traced_memory()[0] - base
            assert items == [] and body.footprint >= held > 0
        assert body.buffered == 5 + 15 * mib
        assert body.footprint < 1.3 * held
        items, _ = body.feed(b"q" * (mib - 64))
        assert [len(v) for v, _ in items] == [16 * mib - 64]
        del items
        assert body.at_boundary() and body.footprint == 0
        assert tracemalloc.get_traced_memory()[0] - base < 256 * 1024
    finally:
        tracemalloc.stop()


def test_a_read_inside_a_streamed_data_frame_is_passed_on_uncopied():
    """A read that is all payload of a DATA frame already begun is passed on as it came
    (the same object: a bulk byte stream's 256 KiB reads are not copied again), and one
    that ends the frame and goes on splits there."""
    w = FrameWriter()
    parser = FrameParser(stream_data=True)
    wire = w.serialize(Data(1, b"a" * 300_000)) + w.serialize(Ping(2))
    first = parser.feed(wire[:1000])
    middle = wire[1000:200_000]
    second = parser.feed(middle)
    assert len(second) == 1 and second[0].data is middle
    rest = parser.feed(wire[200_000:])
    assert _summary(first + second + rest) == _summary([Data(1, b"a" * 300_000), Ping(2)])


def test_go_profile_large_data_frames_go_out_as_their_pieces():
    """The Go-profile multiplexer hands a large DATA frame out as its header and the
    payload's own pieces (gathered by the write, not copied), after the frames queued
    before it; the bytes are FrameWriter's."""
    from libchan.spdy_like.spdymux import SpdyMultiplexer

    mux = SpdyMultiplexer(client_side=True)
    sid = mux.open_stream([("x", "y")])
    big = [b"p" * 40_000, memoryview(b"q" * 30_000)]
    mux.send_data_parts(sid, big)
    mux.send_data_parts(sid, [b"small"])
    chunks = mux.data_chunks()
    assert any(c is big[0] for c in chunks) and any(c is big[1] for c in chunks)
    w = FrameWriter()
    expected = [SynStream(sid, [("x", "y")]), Data(sid, b"p" * 40_000 + b"q" * 30_000), Data(sid, b"small")]
    assert b"".join(chunks) == b"".join(w.serialize(f) for f in expected)
    assert not mux.has_output() and mux.data_chunks() == []
    mux.send_data_parts(sid, big, end_stream=True)
    tail = mux.data_to_send()
    assert tail == w.serialize(Data(sid, b"p" * 40_000 + b"q" * 30_000)) + w.serialize(Data(sid, b"", fin=True))
