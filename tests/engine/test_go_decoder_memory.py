"""A Go-profile stream's message decoder holds msgpack's Unpacker -- about 41 KB of parse
stack and a 64 KiB buffer, 25-35 µs to make -- only while a message is partial, and its
footprint (what the budget charges) counts it then. Every stream holding one from its
start made a Go-profile channel cost 46 KB of the server's memory that its budget never
saw: a client naming the default max_streams of them held 460 MB."""

from __future__ import annotations

import tracemalloc

import msgpack
import trio

from libchan.messages import msgpack_codec
from libchan.messages.bodies import GoMessages
from libchan.messages.msgpack_codec import MsgpackCodec, MsgpackStreamDecoder
from helpers import session_pair


def _decoder() -> GoMessages:
    return GoMessages(MsgpackStreamDecoder(MsgpackCodec(max_message_size=1 << 20, max_depth=16), lambda k, r: None))


def test_go_decoder_footprint_covers_the_unpacker_of_a_partial_message():
    """Half a message in: the decoder holds it and an Unpacker, and its footprint covers
    all it holds (tracemalloc sees both); the rest in: the message out, nothing held, a
    footprint of 0, and no more memory than before (beyond one spare Unpacker)."""
    message = msgpack.packb({"key": "v" * 300, "n": list(range(50))})
    msgpack_codec._SPARE_UNPACKERS.clear()  # (a spare left by an earlier test was made before tracing)
    tracemalloc.start()
    try:
        body = _decoder()
        base = tracemalloc.get_traced_memory()[0]
        items, _ = body.feed(message[:200])
        held = tracemalloc.get_traced_memory()[0] - base
        assert items == [] and held > 100 * 1024  # (the Unpacker: its stack and buffer)
        assert body.footprint >= held
        items, _ = body.feed(message[200:])
        assert [v for v, _ in items] == [msgpack.unpackb(message)]
        del items
        assert body.at_boundary() and body.footprint == 0
        assert tracemalloc.get_traced_memory()[0] - base < 130 * 1024  # (a spare, at most)
    finally:
        tracemalloc.stop()


async def test_go_channels_hold_no_unpacker_between_messages(tmp_path):
    """200 Go-profile channels, each given two messages that need the decoder (one read or
    two): afterwards no stream's decoder holds an Unpacker, and the server's budget
    account is back where it was."""
    with trio.fail_after(30):
        async with session_pair("tcp", tmp_path, profile="spdy") as (cli, srv):
            first = await cli.open_sender()
            await first.send({"i": -1})
            receivers = [await srv.accept_receiver()]
            assert await receivers[0].receive() == {"i": -1}
            account = receivers[0]._ns.account
            used = account.used
            senders = []
            for i in range(200):
                sender = await cli.open_sender()
                await sender.send({"i": i})
                await sender.send({"i": i, "again": True})
                senders.append(sender)
            for i in range(200):
                receiver = await srv.accept_receiver()
                assert await receiver.receive() == {"i": i}
                assert await receiver.receive() == {"i": i, "again": True}
                receivers.append(receiver)
            for receiver in receivers:
                decoder = receiver._ns.body._decoder
                assert decoder._unpacker is None and decoder.footprint == 0
            assert account.used == used


def test_go_decoder_spare_unpacker_of_another_size_limit_is_not_used():
    """The Unpacker a decoder let go of is capped at its max_message_size: a decoder with a
    larger limit makes its own rather than take it (it would refuse a message that fits)."""
    small = GoMessages(MsgpackStreamDecoder(MsgpackCodec(max_message_size=1 << 17, max_depth=16), lambda k, r: None))
    message = msgpack.packb({"a": 1})
    assert [v for v, _ in small.feed(message + message[:3])[0]] == [{"a": 1}]
    assert [v for v, _ in small.feed(message[3:])[0]] == [{"a": 1}]  # (at a boundary: its Unpacker is the spare)
    large = GoMessages(MsgpackStreamDecoder(MsgpackCodec(max_message_size=16 << 20, max_depth=16), lambda k, r: None))
    big = msgpack.packb(b"x" * 3_000_000)  # 3 MB (bin 32), fed in 64 KiB reads
    got = []
    for i in range(0, len(big), 65536):
        items, _ = large.feed(big[i : i + 65536])
        got += [v for v, _ in items]
    assert large.error is None and got == [msgpack.unpackb(big)]
