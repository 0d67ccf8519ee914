"""Sessions on every transport: channels, nesting, byte streams, close rules, proxying."""

from __future__ import annotations

import datetime
import hashlib
import os

import pytest
import trio

import libchan
from helpers import session_pair

pytestmark = pytest.mark.usefixtures("transport")


def _subdir(tmp_path):
    path = tmp_path / "b"
    path.mkdir(exist_ok=True)
    return path


async def test_top_level_channel_client_to_server(transport, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send({"hello": "world"})
            await sender.send(2)
            await sender.aclose()
            receiver = await srv.accept_receiver()
            assert [m async for m in receiver] == [{"hello": "world"}, 2]
            with pytest.raises(trio.EndOfChannel):
                await receiver.receive()


async def test_top_level_channel_server_to_client(transport, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            for i in range(6):  # more than the parked-request pool: it must refill
                sender = await srv.open_sender()
                await sender.send({"n": i})
                await sender.aclose()
                receiver = await cli.accept_receiver()
                assert await receiver.receive() == {"n": i}
                with pytest.raises(trio.EndOfChannel):
                    await receiver.receive()


DATA = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(2**100),
    1.5,
    float("inf"),
    "text ☃",
    b"\x00\xffbytes",
    [1, [2, [3, []]]],
    {"nested": {"map": [1, {"x": b""}]}, "k": None},
    datetime.datetime(1969, 7, 20, 20, 17, 40, tzinfo=datetime.timezone.utc),
    datetime.datetime(2026, 11, 26, 9, 0, 0, 123456, tzinfo=datetime.timezone.utc),
]


async def test_every_data_type_round_trips(transport, tmp_path, profile):
    # msgpack (the Go profile) has no integers beyond 64 bits.
    data = DATA if profile == "h2" else [v for v in DATA if not (type(v) is int and not -(2**63) <= v < 2**64)]
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            for value in data:
                await sender.send(value)
            await sender.aclose()
            receiver = await srv.accept_receiver()
            assert [m async for m in receiver] == data


async def test_receiver_closing_early_breaks_sender(transport, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send("first")
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == "first"
            await receiver.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await receiver.receive()
            with pytest.raises(trio.BrokenResourceError):
                while True:
                    await sender.send("more")
                    await trio.sleep(0.01)


async def test_closed_sender_raises_closed(transport, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await sender.send(1)


async def _serve_nested(receiver: libchan.Receiver) -> None:
    """Level 1 carries a Sender for replies; the reply carries a Receiver (level 2)
    that we read, whose message carries a Sender (level 3) we answer on."""
    async for msg in receiver:
        reply = msg["reply"]
        inner_send, inner_recv = libchan.pipe()
        await reply.send({"level": 2, "talk": inner_recv})
        async for m in inner_send_messages(inner_send, msg["value"]):
            pass
        await reply.aclose()


async def inner_send_messages(inner_send, value):
    level3_reply, level3_replies = libchan.pipe()
    await inner_send.send({"level": 3, "value": value, "answer": level3_reply})
    await inner_send.aclose()
    got = await level3_replies.receive()
    yield got


async def _client_nested(sender: libchan.Sender) -> None:
    reply, replies = libchan.pipe()
    await sender.send({"value": "deep", "reply": reply})
    first = await replies.receive()
    assert first["level"] == 2
    talk = first["talk"]
    assert isinstance(talk, libchan.Receiver)
    level3 = await talk.receive()
    assert level3["level"] == 3 and level3["value"] == "deep"
    await level3["answer"].send({"answered": True, "by": "level3"})
    await level3["answer"].aclose()
    with pytest.raises(trio.EndOfChannel):
        await talk.receive()


async def test_nested_three_levels_client_initiated(transport, tmp_path, profile):
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            async with trio.open_nursery() as nursery:
                sender = await cli.open_sender()

                async def server_side():
                    await _serve_nested(await srv.accept_receiver())

                nursery.start_soon(server_side)
                await _client_nested(sender)
                await sender.aclose()


async def test_nested_three_levels_server_initiated(transport, tmp_path, profile):
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            async with trio.open_nursery() as nursery:
                sender = await srv.open_sender()

                async def client_side():
                    await _serve_nested(await cli.accept_receiver())

                nursery.start_soon(client_side)
                await _client_nested(sender)
                await sender.aclose()


async def test_received_channels_carry_further_channels(transport, tmp_path, profile):
    """Recursive nesting on net objects: a received Sender is used to send a new pipe end."""
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            back, back_r = libchan.pipe()
            await sender.send({"back": back})
            receiver = await srv.accept_receiver()
            msg = await receiver.receive()
            net_back = msg["back"]
            s2, r2 = libchan.pipe()
            await net_back.send({"more": r2})
            got = await back_r.receive()
            async with trio.open_nursery() as n:
                n.start_soon(s2.send, "level-2 data")
                assert await got["more"].receive() == "level-2 data"


async def test_byte_streams_both_ways_with_half_close(transport, tmp_path, profile):
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            mine, theirs = libchan.stream_pipe()
            await sender.send({"stream": theirs})
            receiver = await srv.accept_receiver()
            remote = (await receiver.receive())["stream"]
            assert isinstance(remote, trio.abc.HalfCloseableStream)
            await mine.send_all(b"from client")
            await mine.send_eof()
            got = b""
            while chunk := await remote.receive_some():
                got += chunk
            assert got == b"from client"
            # our direction is closed; the other one still works
            await remote.send_all(b"from server")
            await remote.send_eof()
            got = b""
            while chunk := await mine.receive_some():
                got += chunk
            assert got == b"from server"


async def test_read_only_and_write_only_streams(transport, tmp_path, profile):
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            src_w, src_r = libchan.stream_pipe()
            sink_w, sink_r = libchan.stream_pipe()
            await sender.send({"in": libchan.ReadOnly(src_r), "out": libchan.WriteOnly(sink_w)})
            receiver = await srv.accept_receiver()
            msg = await receiver.receive()
            rin, rout = msg["in"], msg["out"]
            assert rin.readable and not rin.writable
            assert rout.writable and not rout.readable
            await src_w.send_all(b"input data")
            await src_w.send_eof()
            got = b""
            while chunk := await rin.receive_some():
                got += chunk
            await rout.send_all(got.upper())
            await rout.send_eof()
            out = b""
            while chunk := await sink_r.receive_some():
                out += chunk
            assert out == b"INPUT DATA"


@pytest.mark.slow
async def test_64mib_byte_stream_checked_by_hash(transport, tmp_path, profile):
    size = 64 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    with trio.fail_after(120):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            mine, theirs = libchan.stream_pipe(max_buffer=1024 * 1024)
            await sender.send({"stream": theirs})
            receiver = await srv.accept_receiver()
            remote = (await receiver.receive())["stream"]
            expected = hashlib.sha256(block * 64).hexdigest()
            result = {}

            async def write():
                for _ in range(size // len(block)):
                    await mine.send_all(block)
                await mine.send_eof()

            async def read():
                h, n = hashlib.sha256(), 0
                while chunk := await remote.receive_some(1024 * 1024):
                    h.update(chunk)
                    n += len(chunk)
                result["hash"], result["n"] = h.hexdigest(), n

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                nursery.start_soon(read)
            assert result == {"hash": expected, "n": size}


@pytest.mark.slow
async def test_closing_session_fails_peer_pending_operations(transport, tmp_path, profile):
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await srv.open_sender()
            receiver = await cli.accept_receiver()
            result = {}

            async def pending_receive():
                try:
                    await receiver.receive()
                except BaseException as exc:  # noqa: BLE001
                    result["exc"] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pending_receive)
                await trio.sleep(0.1)
                await srv.aclose()
            assert isinstance(result["exc"], libchan.SessionClosedError), result
            assert "closed the session" in str(result["exc"])
            with pytest.raises(trio.EndOfChannel):
                await cli.accept_receiver()
            with pytest.raises(libchan.SessionClosedError):
                await cli.open_sender()
            with pytest.raises(trio.ClosedResourceError):
                await srv.open_sender()
            with pytest.raises(libchan.SessionClosedError, match="closed by this side"):
                await sender.send(1)


async def test_leaving_the_session_fails_own_pending_operations(transport, tmp_path, profile):
    with trio.fail_after(15):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            sender = await srv.open_sender()
            receiver = await cli.accept_receiver()
            await cli.aclose()
            with pytest.raises((trio.ClosedResourceError, libchan.SessionClosedError)):
                await receiver.receive()
            with pytest.raises(trio.ClosedResourceError):
                await cli.accept_receiver()


@pytest.mark.slow
async def test_backpressure_blocks_sender_when_receiver_does_not_read(transport, tmp_path, profile):
    config = libchan.Config(stream_window=65535, send_buffer=65536)
    with trio.fail_after(20):
        async with session_pair(transport, tmp_path, config=config, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send("hello")
            receiver = await srv.accept_receiver()
            sent = 0
            with trio.move_on_after(1) as scope:
                while True:
                    await sender.send(b"x" * 1000)
                    sent += 1
            assert scope.cancelled_caught, "send never blocked"
            if profile == "h2":
                # bounded: about stream window + send buffer, never the whole stream
                assert sent * 1000 < 65535 + 65536 + 64 * 1024 + 20000
            else:
                # no flow control in SPDY as Go speaks it: the reader stops reading the
                # connection beyond the window, then TCP's buffers fill
                assert sent * 1000 < 16 * 1024 * 1024
            received = 0
            assert await receiver.receive() == "hello"
            async with trio.open_nursery() as nursery:

                async def more():
                    for _ in range(200):
                        await sender.send(b"y" * 1000)
                    await sender.aclose()

                nursery.start_soon(more)
                async for _ in receiver:
                    received += 1
            assert received == sent + 200


async def test_proxying_between_sessions(transport, tmp_path, profile):
    """A channel and a byte stream received from session A are sent on into session B."""
    with trio.fail_after(20):
        async with session_pair(transport, tmp_path, profile=profile) as (a_cli, a_srv):
            async with session_pair(transport, _subdir(tmp_path), profile=profile) as (b_cli, b_srv):
                # origin -> A -> (proxy) -> B -> final
                origin_send, origin_recv = libchan.pipe()
                s_mine, s_theirs = libchan.stream_pipe()
                a_sender = await a_cli.open_sender()
                await a_sender.send({"chan": origin_recv, "bytes": s_theirs})
                got = await (await a_srv.accept_receiver()).receive()
                b_sender = await b_cli.open_sender()
                await b_sender.send({"chan": got["chan"], "bytes": got["bytes"]})
                final = await (await b_srv.accept_receiver()).receive()
                async with trio.open_nursery() as n:
                    n.start_soon(origin_send.send, "end to end")
                    assert await final["chan"].receive() == "end to end"
                await final["bytes"].send_all(b"back")
                assert await s_mine.receive_some() == b"back"
                await s_mine.send_all(b"forth")
                assert await final["bytes"].receive_some() == b"forth"
                # close propagates forward ...
                await origin_send.aclose()
                with pytest.raises(trio.EndOfChannel):
                    await final["chan"].receive()
                await s_mine.send_eof()
                assert await final["bytes"].receive_some() == b""


async def test_backward_close_propagates_through_a_proxy(transport, tmp_path, profile):
    with trio.fail_after(20):
        async with session_pair(transport, tmp_path, profile=profile) as (a_cli, a_srv):
            async with session_pair(transport, _subdir(tmp_path), profile=profile) as (b_cli, b_srv):
                origin_send, origin_recv = libchan.pipe()
                a_sender = await a_cli.open_sender()
                await a_sender.send({"chan": origin_recv})
                got = await (await a_srv.accept_receiver()).receive()
                b_sender = await b_cli.open_sender()
                await b_sender.send({"chan": got["chan"]})
                final = (await (await b_srv.accept_receiver()).receive())["chan"]
                async with trio.open_nursery() as n:
                    n.start_soon(origin_send.send, 1)
                    assert await final.receive() == 1
                await final.aclose()
                with pytest.raises(trio.BrokenResourceError):
                    while True:
                        await origin_send.send(2)
