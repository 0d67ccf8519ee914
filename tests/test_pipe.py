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
