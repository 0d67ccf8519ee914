"""The Go profile's single-frame lanes (issue 17, goal 1) give exactly what the long way
gives, and decline whatever the long way would treat otherwise.

* SpdyMultiplexer's lane: ``receive_sole_data`` (one DATA frame read whole) against
  ``receive_data``; ``data_header_now`` (a sending task's own DATA frame) against
  ``send_data``;
* GoMessages.feed_one (a read that is one whole msgpack message) against feed.
"""

from __future__ import annotations

import struct

import msgpack
import pytest

from libchan.engine.kinds import kind_of
from libchan.errors import RemoteProtocolError
from libchan.messages.bodies import DecodeFailure, GoMessages
from libchan.messages.msgpack_codec import MsgpackCodec, MsgpackStreamDecoder
from libchan.spdy_like.mux import DataReceived
from libchan.spdy_like.spdy3 import Data, FrameWriter, SynStream
from libchan.spdy_like.spdymux import SpdyMultiplexer


def _data(sid: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", sid, (flags << 24) | len(payload)) + payload


def _server_with_stream(sid: int = 1) -> SpdyMultiplexer:
    mux = SpdyMultiplexer(client_side=False)
    mux.receive_data(FrameWriter().serialize(SynStream(sid, (("libchan-ref", "2"),))))
    mux.answer_stream(sid, [])
    mux.data_to_send()
    return mux


def test_sole_data_frame_is_what_receive_data_reports():
    lane_mux, long_mux = _server_with_stream(), _server_with_stream()
    frame = _data(1, b"hello")
    assert lane_mux.lane is not None
    assert lane_mux.lane.receive_sole_data(frame) == (1, b"hello")
    assert long_mux.receive_data(frame) == [DataReceived(1, b"hello", 5)]


@pytest.mark.parametrize("what, frame", [
    ("FIN", _data(1, b"x", flags=1)),
    ("empty", _data(1, b"")),
    ("two frames", _data(1, b"a") + _data(1, b"b")),
    ("part of a frame", _data(1, b"abc")[:-1]),
    ("unknown stream", _data(3, b"x")),
    ("a control frame", FrameWriter().serialize(SynStream(3, ()))),
])
def test_sole_data_lane_declines_and_consumes_nothing(what, frame):
    mux = _server_with_stream()
    assert mux.lane.receive_sole_data(frame) is None, what
    # the long way still sees the whole of it, from the start
    mux.receive_data(frame)


def test_sole_data_lane_declines_while_a_frame_is_pending():
    mux = _server_with_stream()
    frame = _data(1, b"abcdef")
    mux.receive_data(frame[:10])  # (DATA passed on as it arrives: 4 bytes still to come)
    assert mux.lane.receive_sole_data(_data(1, b"xyz")) is None
    assert mux.receive_data(frame[10:]) == [DataReceived(1, b"cdef", 4)]


def test_data_header_now_writes_what_send_data_writes():
    lane_mux, long_mux = _server_with_stream(), _server_with_stream()
    header = lane_mux.lane.data_header_now(1, 5)
    long_mux.send_data(1, b"hello")
    assert header is not None and header + b"hello" == long_mux.data_to_send()
    assert not lane_mux.has_output()


def test_data_header_now_declines_behind_queued_output_and_on_ended_streams():
    mux = SpdyMultiplexer(client_side=False)
    mux.receive_data(FrameWriter().serialize(SynStream(1, ())))
    mux.answer_stream(1, [])  # SYN_REPLY queued: Go drops DATA that comes before it
    assert mux.lane.data_header_now(1, 5) is None
    mux.data_to_send()
    assert mux.lane.data_header_now(1, 0) is None  # (an empty frame is an end, not data)
    assert mux.lane.data_header_now(3, 5) is None  # unknown stream
    mux.end_stream(1)
    mux.data_to_send()
    assert mux.lane.data_header_now(1, 5) is None


def test_no_lanes_without_fast_paths():
    assert SpdyMultiplexer(client_side=True, fast_paths=False).lane is None


# -- GoMessages.feed_one ---------------------------------------------------------------------

_CODEC = MsgpackCodec(max_message_size=1 << 20, max_depth=32, kind_of=kind_of)


def _body(refs: list | None = None, on_reference=None) -> GoMessages:
    def on_ref(kind, ref):
        if refs is not None:
            refs.append((kind, ref))
        return on_reference(kind, ref) if on_reference else f"<{kind} {ref}>"

    return GoMessages(MsgpackStreamDecoder(_CODEC, on_ref))


def _ref(code: int, ref: int) -> msgpack.ExtType:
    return msgpack.ExtType(code, struct.pack(">I", ref))


@pytest.mark.parametrize("value", [b"x" * 100, {"a": [1, 2, {"b": None}]}, "text", 7, [_ref(1, 4), {"k": _ref(2, 6)}]])
def test_feed_one_gives_what_feed_gives(value):
    data = msgpack.packb(value, use_bin_type=True)
    refs_one: list = []
    refs_feed: list = []
    one = _body(refs_one).feed_one(data)
    items, _free = _body(refs_feed).feed(data)
    assert one is not None and [one] == items
    assert refs_one == refs_feed  # each reference announced once, the same way


@pytest.mark.parametrize("data", [
    msgpack.packb(1) + msgpack.packb(2),  # two messages
    msgpack.packb([1, 2, 3])[:-1],  # part of one
    msgpack.packb({(1, 2): 3}, use_bin_type=True),  # an array as a map key: feed's own way
    msgpack.packb(msgpack.ExtType(99, b"zz")),  # an unknown extension: feed says so
    b"\xc1",  # never used
])
def test_feed_one_declines_and_consumes_nothing(data):
    body = _body()
    assert body.feed_one(data) is None
    assert body.at_boundary()


def test_feed_one_declines_while_a_message_is_pending():
    body = _body()
    whole = msgpack.packb("abcdef")
    assert body.feed(whole[:3]) == ([], 0)
    assert body.feed_one(msgpack.packb(1)) is None
    items, _ = body.feed(whole[3:])
    assert items == [("abcdef", len(whole))]


def test_feed_one_a_refused_reference_fails_that_message_only():
    def refuse(kind, ref):
        raise RemoteProtocolError(f"no such {kind} {ref}")

    body = _body(on_reference=refuse)
    item = body.feed_one(msgpack.packb([_ref(1, 4)]))
    assert item is not None and type(item[0]) is DecodeFailure
    assert body.error is None  # (the stream goes on)
    assert body.feed_one(msgpack.packb("next")) == ("next", 5)
