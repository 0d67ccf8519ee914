"""What stays with a connection, a codec or a forwarder after a large message went through
it: nothing of that message's size (issue 17: memory per idle session). A connection's
reader task kept its last read (up to 256 KiB) while it waited for the next; the CBOR
codec kept a copy of the last message it decoded, and cbor2's decoder up to 34 KB after
it; a forwarder kept the last message or chunk it forwarded while it waited for the next."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import trio

import libchan
from libchan.forward import _copy_stream, copy_channel
from libchan.messages.cbor_codec import CborCodec
from helpers import session_pair

BIG = 100_000


def _grown_in(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, *files: str) -> int:
    """Bytes allocated by code in any of ``files`` (their allocating frame) that are held
    at ``after`` and were not at ``before``."""
    filters = [tracemalloc.Filter(True, f"*{f}") for f in files]
    diff = after.filter_traces(filters).compare_to(before.filter_traces(filters), "filename")
    return sum(stat.size_diff for stat in diff)


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_a_connection_keeps_no_read_and_no_message_after_it(tmp_path, profile):
    """A 300 KB message on a channel, read and dropped; the connection idle afterwards:
    nothing that the reads or the decoding allocated for it is still held."""
    files = ("engine/sockio.py", "messages/cbor_codec.py", "messages/msgpack_codec.py", "messages/framing.py")
    tracemalloc.start()
    try:
        with trio.fail_after(20):
            async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
                sender = await cli.open_sender()
                await sender.send({"warm": "up"})  # (what is made once, modules imported on first use)
                receiver = await srv.accept_receiver()
                assert await receiver.receive() == {"warm": "up"}
                await trio.sleep(0.1)
                gc.collect()
                before = tracemalloc.take_snapshot()
                sender = await cli.open_sender()
                await sender.send({"data": b"x" * BIG, "n": 1})
                await trio.sleep(0.2)  # (read by the link's reader task: nobody waits for it yet)
                receiver = await srv.accept_receiver()
                assert len((await receiver.receive())["data"]) == BIG
                await trio.sleep(0.2)  # (every reader back waiting for input)
                gc.collect()
                held = _grown_in(before, tracemalloc.take_snapshot(), *files)
    finally:
        tracemalloc.stop()
    assert held < 16 * 1024, held


def test_the_cbor_codec_keeps_nothing_of_a_large_message():
    codec = CborCodec(max_message_size=1 << 20, max_depth=16)
    payload = codec.encode({"data": b"x" * BIG, "s": "y"}, lambda kind, obj: 0)
    assert codec.decode(codec.encode({"a": 1}, lambda kind, obj: 0), lambda kind, ref: None) == {"a": 1}
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        assert len(codec.decode(payload, lambda kind, ref: None)["data"]) == BIG
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 8 * 1024, held
    assert codec.decode(codec.encode([1, "two"], lambda kind, obj: 0), lambda kind, ref: None) == [1, "two"]


async def test_a_channel_forwarder_keeps_no_message_while_it_waits():
    src_in, src = libchan.pipe()
    dst, dst_out = libchan.pipe()
    tracemalloc.start()
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(copy_channel, src, dst)
                base = tracemalloc.get_traced_memory()[0]
                await src_in.send(bytes(BIG))
                assert len(await dst_out.receive()) == BIG
                await trio.sleep(0.05)  # (the forwarder waits for the next message)
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - base
                await src_in.aclose()
    finally:
        tracemalloc.stop()
    assert held < 16 * 1024, held


async def test_a_byte_stream_copy_keeps_no_chunk_while_it_waits():
    writer, src = libchan.stream_pipe(max_buffer=1 << 20)
    dst, reader = libchan.stream_pipe(max_buffer=1 << 20)
    tracemalloc.start()
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: _copy_stream(src, dst, eof=True, splice=False))
                base = tracemalloc.get_traced_memory()[0]
                await writer.send_all(bytes(BIG))
                got = 0
                while got < BIG:
                    got += len(await reader.receive_some())
                await trio.sleep(0.05)  # (the copy waits for the next chunk)
                gc.collect()
                held = tracemalloc.get_traced_memory()[0] - base
                await writer.send_eof()
                assert await reader.receive_some() == b""
    finally:
        tracemalloc.stop()
    assert held < 16 * 1024, held


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_a_tls_connection_keeps_no_buffer_of_a_large_message(tmp_path):
    """40 TLS sessions, each carrying one 1 MB message (sent as one chunk): afterwards the
    process holds under 480 KB per session, both ends (OpenSSL's memory BIOs, fed the
    whole message or a whole 256 KiB read at once, kept that size: 1.5 MB per session)."""
    from helpers import served

    sessions, messages, size = 40, 1, 1_000_000
    done = trio.Event()
    got: list[int] = []

    async def handler(session: libchan.Session) -> None:
        receiver = await session.accept_receiver()
        total = 0
        for _ in range(messages):
            total += len(await receiver.receive())
        got.append(total)
        await done.wait()

    with trio.fail_after(60):
        async with served("tls", handler, tmp_path) as (url, client_ssl):

            async def hold(started: trio.Event) -> None:
                async with libchan.connect(url, ssl=client_ssl) as session:
                    sender = await session.open_sender()
                    for _ in range(messages):
                        await sender.send(b"x" * size)
                    started.set()
                    await done.wait()

            async with trio.open_nursery() as nursery:
                first = trio.Event()
                nursery.start_soon(hold, first)  # (what the first session makes once)
                await first.wait()
                while len(got) < 1:
                    await trio.sleep(0.01)
                await trio.sleep(0.2)
                gc.collect()
                before = _rss_kb()
                for _ in range(sessions):
                    started = trio.Event()
                    nursery.start_soon(hold, started)
                    await started.wait()
                while len(got) < sessions + 1:
                    await trio.sleep(0.01)
                await trio.sleep(0.3)
                gc.collect()
                per_session = (_rss_kb() - before) / sessions
                done.set()
    assert got == [messages * size] * (sessions + 1)
    # (with fast paths off, trio.SSLStream reads and buffers on its own terms: a looser bound)
    assert per_session < (480 if libchan.Config().fast_paths else 800), per_session
