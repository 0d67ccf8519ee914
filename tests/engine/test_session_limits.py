"""Keepalives stay invisible, the peer's stream limit is honoured by queueing."""

from __future__ import annotations

import pytest
import trio

import libchan
from helpers import session_pair


@pytest.mark.slow
async def test_keepalives_are_invisible_and_keep_idle_channels_usable(tmp_path):
    config = libchan.Config(keepalive_interval=0.1)
    with trio.fail_after(10):
        async with session_pair("tcp", tmp_path, config=config) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send("before")
            mine, theirs = libchan.stream_pipe()
            await sender.send({"stream": theirs})
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == "before"
            remote = (await receiver.receive())["stream"]
            await trio.sleep(1.0)  # ~10 keepalive intervals on every stream
            await sender.send("after")
            await sender.aclose()
            assert [m async for m in receiver] == ["after"]
            await mine.send_all(b"data")
            await mine.send_eof()
            got = b""
            while chunk := await remote.receive_some():
                got += chunk
            assert got == b"data"


async def test_peer_stream_limit_is_honoured_by_queueing(tmp_path):
    # The server allows 12 concurrent streams: 1 control + 1 parked request + 10 channels.
    server_config = libchan.Config(max_streams=12)
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, server_config=server_config) as (cli, srv):
            received = []

            async def server_side():
                async with trio.open_nursery() as n:
                    for _ in range(40):
                        receiver = await srv.accept_receiver()

                        async def drain(r=receiver):
                            async for m in r:
                                received.append(m)

                        n.start_soon(drain)

            async def one(i):
                sender = await cli.open_sender()
                await sender.send(i)
                await trio.sleep(0.05)  # keep it open a little, so the limit is hit
                await sender.aclose()

            async with trio.open_nursery() as n:
                n.start_soon(server_side)
                async with trio.open_nursery() as clients:
                    for i in range(40):
                        clients.start_soon(one, i)
            assert sorted(received) == list(range(40))


async def test_message_larger_than_the_stream_window_arrives(transport, tmp_path):
    config = libchan.Config(stream_window=65535)
    big = b"z" * (3 * 1024 * 1024)
    with trio.fail_after(20):
        async with session_pair(transport, tmp_path, config=config) as (cli, srv):
            sender = await cli.open_sender()
            async with trio.open_nursery() as n:
                n.start_soon(sender.send, {"big": big})
                receiver = await srv.accept_receiver()
                assert (await receiver.receive())["big"] == big


async def test_server_session_ends_when_the_client_connection_dies(tmp_path):
    """No session close is said: the TCP connection just drops."""
    from helpers import served

    result = {}
    got_session = trio.Event()

    async def handler(session):
        got_session.set()
        try:
            await session.accept_receiver()
        except BaseException as exc:  # noqa: BLE001
            result["exc"] = exc
            raise

    with trio.fail_after(10):
        async with served("tcp", handler, tmp_path) as (url, _):
            port = int(url.rsplit(":", 1)[1])
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            session = libchan.Session(stream)
            await session.__aenter__()
            await got_session.wait()
            await trio.aclose_forcefully(stream)
            with trio.move_on_after(5):
                while "exc" not in result:
                    await trio.sleep(0.05)
            assert isinstance(result.get("exc"), libchan.SessionClosedError), result
            assert "connection" in str(result["exc"])
            await session.__aexit__(None, None, None)
