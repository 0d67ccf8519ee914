"""The in-memory transport: pipe() and stream_pipe() behave like trio memory channels / streams."""

import math

import pytest
import trio

import libchan


async def test_pipe_send_receive_and_end():
    s, r = libchan.pipe(10)
    await s.send({"a": 1})
    await s.send([1, 2])
    await s.aclose()
    assert [m async for m in r] == [{"a": 1}, [1, 2]]
    with pytest.raises(trio.EndOfChannel):
        await r.receive()


async def test_pipe_receiver_closed_breaks_sender():
    s, r = libchan.pipe()
    await r.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await s.send(1)
    with pytest.raises(trio.ClosedResourceError):
        await r.receive()


async def test_pipe_is_rendezvous_by_default():
    s, r = libchan.pipe()
    with trio.move_on_after(0.1) as scope:
        await s.send(1)
    assert scope.cancelled_caught


def test_pipe_rejects_bad_buffer():
    with pytest.raises(ValueError):
        libchan.pipe(-1)
    libchan.pipe(math.inf)


async def test_pipe_types_are_the_public_abcs():
    s, r = libchan.pipe()
    assert isinstance(s, libchan.Sender) and isinstance(r, libchan.Receiver)
    assert isinstance(s, trio.abc.SendChannel) and isinstance(r, trio.abc.ReceiveChannel)


async def test_stream_pipe_duplex_and_half_close():
    a, b = libchan.stream_pipe()
    assert isinstance(a, trio.abc.HalfCloseableStream)
    await a.send_all(b"ping")
    assert await b.receive_some() == b"ping"
    await a.send_eof()
    assert await b.receive_some() == b""
    await b.send_all(b"still open")
    assert await a.receive_some(5) == b"still"
    assert await a.receive_some() == b" open"
    with pytest.raises(trio.ClosedResourceError):
        await a.send_all(b"x")


async def test_stream_pipe_backpressure_and_broken():
    a, b = libchan.stream_pipe(max_buffer=10)
    with trio.move_on_after(0.1) as scope:
        await a.send_all(b"x" * 100)
    assert scope.cancelled_caught
    await b.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await a.send_all(b"y")


async def test_read_only_write_only_wrappers():
    a, b = libchan.stream_pipe()
    ro, wo = libchan.ReadOnly(a), libchan.WriteOnly(b)
    assert ro.readable and not ro.writable and wo.writable and not wo.readable
    with pytest.raises(trio.ClosedResourceError):
        await ro.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await wo.receive_some()
    await wo.send_all(b"data")
    await wo.send_eof()
    assert await ro.receive_some() == b"data"
    assert await ro.receive_some() == b""


def test_immutable_view_shares_bytes_and_copies_everything_else():
    from libchan.stream import immutable_view

    data = b"abcdef"
    assert immutable_view(data).obj is data
    view = memoryview(data)[1:4]
    assert immutable_view(view) is view  # a view of bytes: as it is, no copy
    shared = bytearray(b"xyz")
    copied = immutable_view(memoryview(shared))
    shared[0] = 0
    assert bytes(copied) == b"xyz"  # a bytearray can change: copied once
    assert bytes(immutable_view(memoryview(data)[::2])) == b"ace"  # strided: copied, contiguous
    assert immutable_view(memoryview(data).cast("B", shape=[2, 3])).ndim == 1


@pytest.mark.parametrize("transport", ["pipe", "tcp", "tls"])
async def test_byte_streams_take_any_buffer_and_keep_what_was_sent(transport, tmp_path):
    """send_all of bytes, views of bytes (strided too), bytearrays changed right after
    the call and typed arrays: the reader gets exactly the bytes given, over a stream
    pipe and over sessions (where a spliced stream pipe hands its views on)."""
    import array

    from helpers import session_pair

    blob = bytes(range(256)) * 1024
    mutable = bytearray(b"m" * 100_000)
    sends = [blob, memoryview(blob)[5:70_000], memoryview(blob)[::3], mutable, array.array("i", range(1000))]
    expected = b"".join(bytes(s) for s in sends)

    async def write_all(stream) -> None:
        for data in sends:
            await stream.send_all(data)
            if data is mutable:
                mutable[:] = b"X" * len(mutable)  # after send_all returned: must not show
        await stream.send_eof()

    async def read_all(stream) -> bytes:
        got = bytearray()
        while chunk := await stream.receive_some(50_000):
            got += chunk
        return bytes(got)

    with trio.fail_after(20):
        if transport == "pipe":
            a, b = libchan.stream_pipe()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_all, a)
                assert await read_all(b) == expected
            return
        async with session_pair(transport, tmp_path) as (cli, srv):
            a, b = libchan.stream_pipe()
            sender = await cli.open_sender()
            await sender.send({"stream": libchan.ReadOnly(b)})
            received = await (await srv.accept_receiver()).receive()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_all, a)
                assert await read_all(received["stream"]) == expected
