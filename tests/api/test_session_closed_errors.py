"""A local pipe end forwarded into a session whose connection died raises
libchan.SessionClosedError (with the session's reason), like the session's own
channels and streams do, and not a plain trio.BrokenResourceError or a clean end."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import socket

import pytest
import trio

import libchan


@asynccontextmanager
async def _doomed_session(profile: str) -> AsyncIterator[tuple[libchan.Session, libchan.Session, Callable[[], Awaitable[None]]]]:
    """(client, server, drop): sessions over a real TCP connection; ``drop()``
    shuts the connection down under both (the client's session sees its peer vanish)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client_stream = await trio.open_tcp_stream("127.0.0.1", port)
    server_stream = await listeners[0].accept()
    await listeners[0].aclose()

    async def drop() -> None:
        server_stream.socket.shutdown(socket.SHUT_RDWR)
        await trio.lowlevel.checkpoint()

    async with libchan.Session(server_stream, server_side=True, profile=profile) as srv:
        async with libchan.Session(client_stream, profile=profile) as cli:
            yield cli, srv, drop


async def _kept_end_after_drop(profile: str, give: Callable[[], tuple[Any, Any]], use: Callable[[Any], Awaitable[Any]]) -> BaseException:
    """Send ``give()[0]`` in a message from the client, keep ``give()[1]``, drop the
    connection, and return what ``use(kept)`` raised."""
    with trio.fail_after(10):
        async with _doomed_session(profile) as (cli, srv, drop):
            sender = await cli.open_sender()
            receiver = await srv.accept_receiver()
            given, kept = give()
            await sender.send({"x": given})
            await receiver.receive()
            await drop()
            with pytest.raises(trio.BrokenResourceError) as info:
                await use(kept)
            assert cli.closed_reason is not None
            assert isinstance(info.value, libchan.SessionClosedError), repr(info.value)
            assert info.value.reason == cli.closed_reason
            return info.value


async def _receive(r: Any) -> Any:
    return await r.receive()


async def _send_until_it_fails(s: Any) -> None:
    while True:
        await s.send(b"x")
        await trio.sleep(0.001)


async def _read(stream: Any) -> bytes:
    return await stream.receive_some()


async def _write_until_it_fails(stream: Any) -> None:
    while True:
        await stream.send_all(b"x" * 1000)
        await trio.sleep(0.001)


async def test_pipe_receiver_whose_sender_was_forwarded(profile):
    await _kept_end_after_drop(profile, libchan.pipe, _receive)


async def test_pipe_sender_whose_receiver_was_forwarded(profile):
    await _kept_end_after_drop(profile, lambda: libchan.pipe()[::-1], _send_until_it_fails)


async def test_stream_pipe_end_reading_what_the_peer_writes(profile):
    await _kept_end_after_drop(profile, libchan.stream_pipe, _read)


async def test_stream_pipe_end_writing_into_the_session(profile):
    # the kept end's writes go straight into the session (spliced)
    await _kept_end_after_drop(profile, libchan.stream_pipe, _write_until_it_fails)


async def test_stream_pipe_end_writing_through_the_forwarder():
    """Bytes buffered in the pipe before the splice are copied by the forwarder;
    when the session refuses them the writer learns why (a fake session stream
    makes the failure deterministic)."""

    class DeadSessionStream(trio.abc.SendStream):
        async def send_all(self, data: Any) -> None:
            await trio.lowlevel.checkpoint()
            raise libchan.SessionClosedError("connection lost (test)")

        async def wait_send_all_might_not_block(self) -> None:
            await trio.lowlevel.checkpoint()

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    from libchan.forward import copy_stream

    with trio.fail_after(5):
        given, kept = libchan.stream_pipe()
        await kept.send_all(b"buffered before the forwarder ran")
        await copy_stream(given, DeadSessionStream())
        with pytest.raises(libchan.SessionClosedError) as info:
            await kept.send_all(b"more")
        assert info.value.reason == "connection lost (test)"


async def test_stream_pipe_end_behind_read_only(profile):
    def give() -> tuple[Any, Any]:
        given, kept = libchan.stream_pipe()
        return libchan.ReadOnly(given), kept

    await _kept_end_after_drop(profile, give, _write_until_it_fails)


async def test_stream_pipe_end_behind_write_only(profile):
    """Before the fix this one saw a clean end of stream (b"") instead of an error."""

    def give() -> tuple[Any, Any]:
        given, kept = libchan.stream_pipe()
        return libchan.WriteOnly(given), kept

    await _kept_end_after_drop(profile, give, _read)
