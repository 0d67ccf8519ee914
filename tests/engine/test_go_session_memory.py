"""What a Go-profile (SPDY/3.1 + msgpack) session keeps for its whole life (issue 17: memory
per idle session). Each end held zlib's default deflate state for its header blocks (262 KB:
a 32 KiB window and 128 KiB of hash chains, for blocks of a few dozen bytes) and a
msgpack.Packer whose buffer starts at 256 KiB and stays as large as the largest value it
packed: about 1 MB of heap per session for both ends, where an h2 session takes 37 KB."""

from __future__ import annotations

import gc
import tracemalloc
import zlib

import msgpack
import pytest
import trio

import libchan
from libchan.messages.msgpack_codec import MsgpackCodec
from libchan.spdy_like.spdy3 import Data, FrameParser, FrameWriter, Ping, SynReply, SynStream
from libchan.spdy_like.spdy3_dictionary import SPDY3_DICTIONARY


def _traced(make):
    """(what ``make()`` returns, the bytes it allocated that are still held)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        kept = make()
        gc.collect()
        return kept, tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def test_a_header_compression_context_costs_kilobytes():
    """A writer and the parser of its output, ten header blocks through them, hold under 40 KB
    together (zlib's defaults: about 300 KB)."""

    def make():
        writer, parser = FrameWriter(), FrameParser()
        for sid in range(1, 20, 2):
            frames = parser.feed(writer.serialize(SynStream(sid, {"libchan-ref": str(sid), "x": "y" * 40})))
            assert frames[0].header("libchan-ref") == str(sid)
        return writer, parser

    _, held = _traced(make)
    assert held < 40 * 1024, held


def test_no_compression_context_before_the_first_header_block():
    """A connection that opens no stream (an idle session) never makes its zlib contexts:
    a writer and a parser that carried only DATA and PINGs hold almost nothing."""

    def make():
        writer, parser = FrameWriter(), FrameParser()
        for sid in (1, 3):
            assert parser.feed(writer.serialize(Data(sid, b"x" * 10)))[0].data == b"x" * 10
        parser.feed(writer.serialize(Ping(1)))
        return writer, parser

    _, held = _traced(make)
    assert held < 2 * 1024, held


def test_our_header_blocks_decode_with_a_32k_window_reader():
    """What Go's reader (and zlib's default inflater) does with our smaller window."""
    writer = FrameWriter()
    inflater = zlib.decompressobj(15, zdict=SPDY3_DICTIONARY)
    for sid in (1, 3, 5):
        wire = writer.serialize(SynReply(sid, {":status": "200", "libchan-ref": str(sid)}))
        plain = inflater.decompress(wire[12:])
        assert b"libchan-ref" in plain and str(sid).encode() in plain


def test_the_parser_reads_blocks_of_the_largest_window():
    """Go compresses with a 32 KiB window; the parser's inflater takes the window the
    stream's header names (here blocks that refer back further than 2 KiB)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=SPDY3_DICTIONARY)
    parser = FrameParser()
    for sid in (1, 3):
        headers = {"libchan-ref": str(sid), "x": "7" * 3000}
        fixed = FrameWriter().serialize(SynStream(sid, {}))[8:18]  # (stream ids, priority)
        block = deflater.compress(_plain_block(headers)) + deflater.flush(zlib.Z_SYNC_FLUSH)
        body = fixed + block
        [got] = parser.feed(bytes.fromhex("80030001") + len(body).to_bytes(4, "big") + body)
        assert got.header("libchan-ref") == str(sid) and got.header("x") == "7" * 3000


def _plain_block(headers: dict[str, str]) -> bytes:
    out = len(headers).to_bytes(4, "big")
    for k, v in headers.items():
        out += len(k).to_bytes(4, "big") + k.encode() + len(v).to_bytes(4, "big") + v.encode()
    return out


def test_the_msgpack_codec_keeps_no_buffer():
    """The codec holds no buffer of its own: not at its making (msgpack.Packer: 256 KiB),
    not after encoding a 1 MiB value (the Packer's buffer grew to it and stayed)."""

    def make():
        codec = MsgpackCodec(max_message_size=4 << 20, max_depth=16)
        assert len(codec.encode({"data": b"x" * (1 << 20), "s": "é" * 1000}, lambda k, o: 0)) > 1 << 20
        return codec

    _, held = _traced(make)
    assert held < 16 * 1024, held


@pytest.mark.parametrize("n", [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000])
def test_msgpack_headers_match_msgpacks_own(n):
    """Strings, bytes, maps and arrays of every header size are encoded as msgpack (with
    bin types) encodes them."""
    codec = MsgpackCodec(max_message_size=1 << 30, max_depth=8)
    for value in ("a" * n, "é" * n, b"b" * n, {str(i): None for i in range(n)}, [None] * n, [1.5, -0.25] * (n // 2)):
        assert codec.encode(value, lambda k, o: 0) == msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize("with_channel, limit", [(False, 60 * 1024), (True, 120 * 1024)])
async def test_a_go_profile_session_costs_tens_of_kilobytes(with_channel, limit):
    """Ten idle Go-profile sessions (both ends in this process), connected only or having
    carried a channel and its message: under 60 KB and 120 KB of heap each, both ends
    (was about 1 MB either way)."""
    sessions = 10
    done = trio.Event()
    up: list[int] = []

    async def handler(session: libchan.Session) -> None:
        if with_channel or not up:
            receiver = await session.accept_receiver()
            assert await receiver.receive() == {"hello": "world"}
        up.append(1)
        await done.wait()

    async def hold(url: str, started, channel: bool) -> None:
        async with libchan.connect(url, profile="spdy") as session:
            if channel:
                sender = await session.open_sender()
                await sender.send({"hello": "world"})
            started.set()
            await done.wait()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            [url] = await nursery.start(libchan.serve, "tcp://127.0.0.1:0", handler)
            warm = trio.Event()
            nursery.start_soon(hold, url, warm, True)  # (what the first session makes once: with a channel)
            await warm.wait()
            while len(up) < 1:
                await trio.sleep(0.01)
            gc.collect()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                for _ in range(sessions):
                    started = trio.Event()
                    nursery.start_soon(hold, url, started, with_channel)
                    await started.wait()
                while len(up) < sessions + 1:
                    await trio.sleep(0.01)
                await trio.sleep(0.2)
                gc.collect()
                per_session = (tracemalloc.get_traced_memory()[0] - base) / sessions
            finally:
                tracemalloc.stop()
            done.set()
            nursery.cancel_scope.cancel()
    assert per_session < limit, per_session
