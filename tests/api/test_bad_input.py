"""Bad input gets a typed error, and nothing else breaks."""

from __future__ import annotations

import cbor2
import h2.events
import pytest
import trio
from hypothesis import given, settings, strategies as st

import libchan
from libchan.messages.cbor_codec import CborCodec
from libchan.messages.framing import FrameDecoder, encode_frame
from helpers import served, session_pair
from rawh2 import RawH2Client


@pytest.fixture
async def server(tmp_path):
    """A TCP server whose sessions' first channels land in a memory channel."""
    send, recv = trio.open_memory_channel(10)

    async def handler(session):
        async for receiver in session:
            await send.send((session, receiver))

    config = libchan.Config(max_message_size=1000, reference_timeout=0.5)
    async with served("tcp", handler, tmp_path, config) as (url, _):
        host, port = url[len("tcp://"):].rsplit(":", 1)
        yield host, int(port), recv


async def _post(host, port, body, headers=(), path="/whatever"):
    client = await RawH2Client.open(host, port)
    sid = await client.request(path, body, list(headers))
    return client, sid


async def _receive_error(recv):
    _, receiver = await recv.receive()
    with pytest.raises(libchan.ProtocolError) as info:
        while True:
            await receiver.receive()
    return info.value


async def _check_still_works(host, port, recv):
    client, _ = await _post(host, port, encode_frame(cbor2.dumps({"ok": True})))
    _, receiver = await recv.receive()
    assert await receiver.receive() == {"ok": True}
    await client.aclose()


@pytest.mark.parametrize(
    "body, expected, text",
    [
        (encode_frame(b"\xff\x00"), libchan.RemoteProtocolError, "malformed"),
        (encode_frame(cbor2.dumps(cbor2.CBORTag(999, 1))), libchan.RemoteProtocolError, "unknown CBOR tag 999"),
        (encode_frame(cbor2.dumps({"set": cbor2.CBORTag(258, [1])})), libchan.RemoteProtocolError, "tag 258"),
        (encode_frame(cbor2.dumps([1, 2])[:-1]), libchan.RemoteProtocolError, "premature end"),
        (encode_frame(cbor2.dumps(1) + b"\x01"), libchan.RemoteProtocolError, "trailing"),
        (encode_frame(cbor2.dumps("x" * 2000)), libchan.MessageTooLargeError, "exceeds the limit of 1000"),
        (b"\x01\x02\x03", libchan.RemoteProtocolError, "framing"),
        (b"\x5a\x00\x00\x00\x10abc", libchan.RemoteProtocolError, "ended in the middle"),
    ],
)
async def test_bad_message_is_a_typed_error_and_the_server_survives(server, body, expected, text):
    host, port, recv = server
    with trio.fail_after(10):
        client, sid = await _post(host, port, encode_frame(cbor2.dumps("good")) + body)
        _, receiver = await recv.receive()
        assert await receiver.receive() == "good"
        with pytest.raises(expected, match=text):
            await receiver.receive()
        if expected is not libchan.RemoteProtocolError or text != "ended in the middle":
            reset = await client.wait_for(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid)
            assert reset.error_code in (1, 11)
        await _check_still_works(host, port, recv)
        await client.aclose()


async def test_reference_that_never_arrives(server):
    host, port, recv = server
    with trio.fail_after(10):
        msg = cbor2.dumps({"chan": cbor2.CBORTag(41401, 7)})
        headers = [("libchan-session", "raw-session-1"), ("libchan-ref", "1"), ("libchan-type", "receiver")]
        client, _ = await _post(host, port, encode_frame(msg), headers, path="/libchan/v1/stream")
        _, receiver = await recv.receive()
        got = await receiver.receive()
        assert isinstance(got["chan"], libchan.Receiver)
        with pytest.raises(libchan.UnresolvedReferenceError, match="did not arrive"):
            await got["chan"].receive()
        await _check_still_works(host, port, recv)
        await client.aclose()


async def test_an_empty_chunk_on_a_byte_stream_is_not_its_end(server):
    """A byte stream's body may hold an empty frame (0x40; libchan never sends one): it
    carries nothing, and receive_some does not return b"" for it (which would tell the
    application that the stream ended while data was still to come)."""
    host, port, recv = server
    with trio.fail_after(10):
        session = [("libchan-session", "raw-session-empty")]
        msg = cbor2.dumps({"s": cbor2.CBORTag(41403, 3)})  # a read-only byte stream, ref 3
        client, _ = await _post(host, port, encode_frame(msg), [*session, ("libchan-ref", "1"), ("libchan-type", "receiver")],
                                path="/libchan/v1/stream")
        body = encode_frame(b"ab") + b"\x40" + encode_frame(b"cd") + b"\x40"
        await client.request("/libchan/v1/stream", body, [*session, ("libchan-ref", "3"), ("libchan-type", "read-stream"),
                                                          ("libchan-parent-ref", "1")])
        _, receiver = await recv.receive()
        stream = (await receiver.receive())["s"]
        got = []
        while chunk := await stream.receive_some():
            got.append(chunk)
        assert got == [b"ab", b"cd"]
        await client.aclose()


async def test_garbage_bytes_close_the_connection_only(server):
    host, port, recv = server
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
        while await stream.receive_some(65536):
            pass  # the server answers with GOAWAY (or nothing) and closes
        await stream.aclose()
        await _check_still_works(host, port, recv)


@pytest.mark.slow
async def test_client_fed_garbage_fails_pending_operations_clearly():
    async def fake_server(stream):
        await stream.receive_some(100)
        await stream.send_all(b"this is not HTTP/2 at all" * 10)
        await trio.sleep(1)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, fake_server, 0)
            port = listeners[0].socket.getsockname()[1]
            async with libchan.connect(f"tcp://127.0.0.1:{port}") as session:
                with pytest.raises(libchan.SessionClosedError, match="protocol error|connection"):
                    await session.accept_receiver()
                with pytest.raises(libchan.SessionClosedError):
                    await session.open_sender()
            nursery.cancel_scope.cancel()


async def test_oversized_message_is_refused_locally(tmp_path):
    config = libchan.Config(max_message_size=100)
    with trio.fail_after(10):
        async with session_pair("tcp", tmp_path, config=config) as (cli, srv):
            sender = await cli.open_sender()
            with pytest.raises(libchan.MessageTooLargeError, match="outgoing message"):
                await sender.send("y" * 500)
            await sender.send("small is fine")
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == "small is fine"


async def test_unencodable_value_is_a_local_error(tmp_path):
    with trio.fail_after(10):
        async with session_pair("memory", tmp_path) as (cli, srv):
            sender = await cli.open_sender()
            for bad in ({1, 2}, object(), 1j):
                with pytest.raises(libchan.LocalProtocolError):
                    await sender.send({"bad": bad})
            await sender.send("still usable")
            assert await (await srv.accept_receiver()).receive() == "still usable"


_codec = CborCodec(max_message_size=1 << 16, max_depth=64)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_message_decoder_random_bytes(data):
    try:
        _codec.decode(data, lambda kind, ref: (kind, ref))
    except (libchan.RemoteProtocolError, libchan.MessageTooLargeError):
        pass


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_frame_decoder_random_chunks(chunks):
    decoder = FrameDecoder(1 << 12)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except (libchan.RemoteProtocolError, libchan.MessageTooLargeError):
        pass


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(_values)
def test_fuzz_codec_round_trip(value):
    payload = _codec.encode(value, lambda kind, obj: 0)
    assert _codec.decode(payload, lambda kind, ref: None) == value
    decoder = FrameDecoder(1 << 16)
    items, free = decoder.feed(b"\xf7" + encode_frame(payload) + b"\xf7")
    assert [p for p, _ in items] == [payload] and free == 2


async def test_unknown_path_of_a_session_is_404(server):
    host, port, recv = server
    with trio.fail_after(10):
        client = await RawH2Client.open(host, port)
        sid = await client.request("/nope", b"", [("libchan-session", "raw-session-2")])
        resp = await client.wait_for(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid)
        assert dict(resp.headers)[":status"] == "404"
        for bad in ("+9", "1_0", "x", "-1"):
            sid = await client.request(
                "/libchan/v1/stream", b"", [("libchan-session", "raw-session-2"), ("libchan-ref", bad), ("libchan-type", "receiver")]
            )
            resp = await client.wait_for(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid)
            assert dict(resp.headers)[":status"] == "400"
        await client.aclose()
        await _check_still_works(host, port, recv)


def _messages_decoder(max_size: int = 1 << 10):
    from libchan.messages.bodies import FramedMessages

    return FramedMessages(max_size, lambda payload: _codec.decode(payload, lambda kind, ref: (kind, ref)))


def _outcome(decoder, feed):
    """What a body decoder makes of one read: items (DecodeFailure by its error's
    type) or the error raised, then its state."""
    try:
        items, _ = feed()
        got = [(type(v.error).__name__ if type(v).__name__ == "DecodeFailure" else v, w) for v, w in items]
    except Exception as exc:  # noqa: BLE001 - compared
        got = type(exc).__name__
    return got, type(decoder.error).__name__, decoder.buffered, decoder.ended


_one_item_reads = st.one_of(
    st.binary(max_size=64),  # anything at all
    _values.map(lambda v: encode_frame(_codec.encode(v, lambda kind, obj: 0))),  # one whole message
    st.binary(max_size=40).map(lambda b: encode_frame(encode_frame(b))),  # a bytes message
    st.tuples(st.integers(0, 40), st.binary(max_size=30)).map(lambda t: encode_frame(b"\x58" + bytes([t[0]]) + t[1])),  # 0x58 head, any length
    st.binary(max_size=40).map(lambda b: encode_frame(b)),  # an item that is not CBOR
    st.sampled_from([encode_frame(b"\x58"), b"\x58\x01\x58", encode_frame(b"\x41"), encode_frame(b"")]),  # cut message heads
    st.binary(max_size=2000).map(lambda b: encode_frame(encode_frame(b))),  # maybe too large
)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=8), _one_item_reads, st.sampled_from([20, 1 << 10]))
def test_one_item_lane_equals_feed(before, data, max_size):
    """FramedMessages.feed_one (the latency lane of NetStream.on_data) gives what feed
    gives, or declines (None) and consumes nothing; after any earlier read."""
    lane, plain = _messages_decoder(max_size), _messages_decoder(max_size)
    for decoder in (lane, plain):
        try:
            decoder.feed(before)
        except Exception:  # noqa: BLE001 - the same for both
            pass
    one = lane.feed_one(data) if lane.error is None else None
    # (plain is fed a memoryview: the general decoding, without feed's run of short messages)
    if one is None:
        assert _outcome(lane, lambda: lane.feed(data)) == _outcome(plain, lambda: plain.feed(memoryview(data)))
        return
    want = _outcome(plain, lambda: plain.feed(memoryview(data)))
    if type(one[0]).__name__ == "DecodeFailure":
        # feed keeps the decode error and returns no item; the lane hands it over
        assert want[0] == [] and want[1] == type(one[0].error).__name__ == type(lane.error).__name__
    else:
        assert want[0] == [(one[0], one[1])]
    assert want[1:] == (type(lane.error).__name__, lane.buffered, lane.ended)
    assert lane.feed_one(data) is None or lane.error is None  # after a decode error: declines


_body_items = st.one_of(
    st.binary(max_size=300).map(lambda b: encode_frame(encode_frame(b))),  # a bytes message (short ones: the lane)
    st.tuples(st.integers(0, 40), st.binary(max_size=30)).map(lambda t: encode_frame(b"\x58" + bytes([t[0]]) + t[1])),  # 0x58 head, any length
    _values.map(lambda v: encode_frame(_codec.encode(v, lambda kind, obj: 0))),  # any message
    st.binary(max_size=30).map(encode_frame),  # an item that may not be CBOR (or is empty)
    st.sampled_from([b"\xf7", b"\xf6", b"\x58", b"\x41", b"\xff"]),  # keepalive, end marker, cut heads, junk
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_body_items, max_size=12), st.lists(st.integers(1, 400), max_size=8), st.sampled_from([20, 1 << 10]))
def test_short_message_run_equals_general_decoding(items, cuts, max_size):
    """FramedMessages.feed takes a run of short bytes messages at the start of a read in
    one pass (_short_bstr_messages); whatever the read holds and however the body is cut,
    it gives what the general decoding gives (the same decoder fed the reads as
    memoryviews, which never take that pass): items, errors, buffered bytes, the end."""
    fast, general = _messages_decoder(max_size), _messages_decoder(max_size)
    for piece in _cut(b"".join(items), cuts):
        got = _outcome(fast, lambda: fast.feed(piece))
        want = _outcome(general, lambda: general.feed(memoryview(piece)))
        assert got == want
        if want[0] in ("RemoteProtocolError", "MessageTooLargeError") or want[1] != "NoneType":
            break


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    """``body`` in reads of the sizes ``cuts`` (the rest as one more read)."""
    pieces, pos = [], 0
    for cut in cuts:
        if pos >= len(body):
            break
        pieces.append(body[pos : pos + cut])
        pos += cut
    pieces.append(body[pos:])
    return pieces


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=70_000).map(encode_frame), st.just(b"\xf7")), max_size=12),
    st.lists(st.integers(1, 100_000), max_size=30),
    st.sampled_from([1 << 10, 1 << 16, 1 << 20]),
)
def test_frame_decoder_any_split_equals_one_read(items, cuts, max_size):
    """However a body is cut into reads (small ones, and large ones that finish an
    item left pending and go on: FrameDecoder._complete_pending), the decoder gives
    the same payloads, free bytes and errors as for one read."""
    body = b"".join(items)

    def decode(pieces):
        decoder = FrameDecoder(max_size)
        got, free = [], 0
        try:
            for piece in pieces:
                items_, f = decoder.feed(piece)
                got += items_
                free += f
            error = type(decoder.error).__name__ if decoder.error else None
        except (libchan.RemoteProtocolError, libchan.MessageTooLargeError) as exc:
            error = type(exc).__name__
        return [bytes(p) for p, _ in got], [w for _, w in got], free, error, decoder.buffered if error is None else None

    pieces = _cut(body, cuts)
    whole = decode([body])
    split = decode(pieces)
    if whole[3] is None:
        assert split == whole
    else:  # an item too large: the same error, after the same or fewer items
        assert split[3] == whole[3] and split[0] == whole[0][: len(split[0])]


async def test_refused_requests_create_no_session(tmp_path):
    """A GET (405), an unknown path (404) or bad stream headers (400) for a session the
    server does not know are answered at once and create no session: no handler starts,
    and nothing stays behind (before, each GET left a session and its handler waiting
    forever, even after the connection closed)."""
    started = []

    async def handler(session):
        started.append(session)
        async for receiver in session:
            async for _ in receiver:
                pass

    cases = [
        ("GET", "/", [], "405"),
        ("GET", "/libchan/v1/session", [("libchan-session", "get-session")], "405"),
        ("POST", "/nope", [("libchan-session", "new-session")], "404"),
        ("POST", "/libchan/v1/stream", [("libchan-session", "new-session"), ("libchan-ref", "x"), ("libchan-type", "receiver")], "400"),
        ("POST", "/libchan/v1/stream", [("libchan-session", "new-session"), ("libchan-ref", "1"), ("libchan-type", "nope")], "400"),
    ]
    with trio.fail_after(10):
        async with served("tcp", handler, tmp_path) as (url, _):
            host, port = url[len("tcp://"):].rsplit(":", 1)
            client = await RawH2Client.open(host, int(port))
            for _ in range(20):
                for method, path, headers, status in cases:
                    sid = client.conn.get_next_available_stream_id()
                    client.conn.send_headers(
                        sid, [(":method", method), (":scheme", "http"), (":authority", "t"), (":path", path), *headers],
                        end_stream=True,
                    )
                    await client.flush()
                    resp = await client.wait_for(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid)
                    assert dict(resp.headers)[":status"] == status, (method, path, headers)
                    assert resp.stream_ended is not None  # answered with END_STREAM, no body
            await client.aclose()
            assert started == []
            await _check_served(url)


async def _check_served(url):
    """A real client still gets its session served (a handler did start for it)."""
    async with libchan.connect(url) as session:
        sender = await session.open_sender()
        await sender.send("hello")
        await sender.aclose()
