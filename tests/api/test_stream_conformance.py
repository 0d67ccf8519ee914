"""trio's own conformance check (``trio.testing.check_half_closeable_stream``) on
every libchan byte stream: stream_pipe() ends, and a byte stream carried inside a
message over a real session (a Session over a TCP socket pair, and serve/connect),
in both wire profiles, whichever side sends the message, with the stream the
sender keeps as either end of the pair."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
import trio
from trio.testing import check_half_closeable_stream

import libchan
from helpers import session_pair


async def test_stream_pipe_passes_trios_check():
    async def maker():
        return libchan.stream_pipe()

    async def clogged_maker():
        # one byte fills each direction: send_all and wait_send_all_might_not_block
        # block until the other end reads
        a, b = libchan.stream_pipe(max_buffer=1)
        await a.send_all(b"x")
        await b.send_all(b"x")
        return a, b

    with trio.fail_after(30):
        await check_half_closeable_stream(maker, None)
        await check_half_closeable_stream(maker, clogged_maker)


async def test_receive_some_rejects_a_max_bytes_that_is_not_an_int():
    """The check's first hang: receive_some(1.5) waited for data instead of raising."""
    a, b = libchan.stream_pipe()
    with trio.fail_after(5):
        with pytest.raises(TypeError):
            await b.receive_some(1.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await b.receive_some(0)


@asynccontextmanager
async def _socket_sessions(profile: str) -> AsyncIterator[tuple[libchan.Session, libchan.Session]]:
    """A client and a server Session over a real TCP connection (no serve/connect)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client_stream = await trio.open_tcp_stream("127.0.0.1", port)
    server_stream = await listeners[0].accept()
    await listeners[0].aclose()
    async with libchan.Session(server_stream, server_side=True, profile=profile) as srv:
        async with libchan.Session(client_stream, profile=profile) as cli:
            yield cli, srv


@pytest.mark.parametrize("kept_first", [True, False], ids=["kept-received", "received-kept"])
@pytest.mark.parametrize("sent_by", ["client", "server"])
@pytest.mark.parametrize("how", ["socket", "serve"])
async def test_session_byte_stream_passes_trios_check(how, sent_by, kept_first, profile, tmp_path):
    """The sender puts one end of a stream_pipe() into a message and keeps the other;
    the pair checked is (the end it kept, the byte stream the receiver got)."""
    with trio.fail_after(60):
        cm = _socket_sessions(profile) if how == "socket" else session_pair("tcp", tmp_path, profile=profile)
        async with cm as (cli, srv):
            sending, receiving = (cli, srv) if sent_by == "client" else (srv, cli)
            sender = await sending.open_sender()
            receiver = await receiving.accept_receiver()

            async def maker():
                given, kept = libchan.stream_pipe()
                await sender.send({"stream": given})
                received = (await receiver.receive())["stream"]
                assert isinstance(received, libchan.ByteStream) and received.direction == "duplex"
                return (kept, received) if kept_first else (received, kept)

            await check_half_closeable_stream(maker, None)
