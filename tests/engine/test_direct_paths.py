"""The short cuts of the fast paths keep the semantics of the long way round.

* A task waiting for its stream reads the connection itself (``Link.read_for``)
  when nobody else does; it must still wake for every change of its stream that
  does not come from the connection (closed locally, session closed).
* A pipe whose sending end was sent away takes its messages straight from the
  session stream (``read_for_pipe``) while the forwarder waits: order and local
  sends must be kept.
* A stream pipe whose reading end was sent away is written to the session by
  the writer itself (``PipeStream._splice_to``): data, EOF, errors and buffer
  reuse must behave as through the forwarder.

Over tcp, unix and tls (all read and written directly: sockio.py), both profiles;
the generic path (in-memory streams) is covered by the rest of the suite.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
import trio.testing

import libchan
from helpers import session_pair
from libchan.engine.netstream import _YIELD_EVERY

PATHS = ["tcp", "unix", "tls"]


async def _read_to_eof(stream, received, max_bytes: int) -> int:
    """Read ``stream`` to its end into the hash ``received``; return the byte count."""
    count = 0
    while True:
        chunk = await stream.receive_some(max_bytes)
        if not chunk:
            return count
        received.update(chunk)
        count += len(chunk)


@pytest.fixture(params=PATHS)
def path(request):
    return request.param


async def _send_read_end(cli, srv, read_end):
    """Send ``read_end`` (a stream pipe end) from ``cli`` in a message; return the byte
    stream the server gets for it (the pipe is then spliced into the session)."""
    sender = await cli.open_sender()
    await sender.send({"data": libchan.ReadOnly(read_end)})
    return (await (await srv.accept_receiver()).receive())["data"]


async def _error_when_closed_while_reading(cli, srv, close) -> tuple[BaseException, float]:
    """Put a consumer into reading the connection itself (it takes a message and
    comes straight back for the next), run ``close(receiver)``; return the error the
    waiting ``receive`` got and how long after ``close`` began it got it."""
    sender = await cli.open_sender()
    await sender.send(1)
    receiver = await srv.accept_receiver()
    assert await receiver.receive() == 1
    got: list[BaseException] = []
    woken_at = 0.0

    async def wait_for_more() -> None:
        nonlocal woken_at
        assert await receiver.receive() == 2
        try:
            await receiver.receive()  # straight back: it reads the connection itself
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            got.append(exc)
            woken_at = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_for_more)
        await trio.sleep(0.05)
        await sender.send(2)
        await trio.sleep(0.2)
        closed_at = trio.current_time()
        await close(receiver)
    assert len(got) == 1
    return got[0], woken_at - closed_at


@pytest.mark.slow
async def test_consumer_reading_wakes_when_its_receiver_is_closed_elsewhere(path, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            error, delay = await _error_when_closed_while_reading(cli, srv, lambda receiver: receiver.aclose())
            # at once: not when some later input (a keepalive) happens to wake it
            assert delay < 1.0
            assert isinstance(error, trio.ClosedResourceError)
            # the connection still works for everything else
            other = await cli.open_sender()
            await other.send("still alive")
            assert await (await srv.accept_receiver()).receive() == "still alive"


@pytest.mark.slow
async def test_consumer_reading_wakes_when_the_session_closes(path, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            error, delay = await _error_when_closed_while_reading(cli, srv, lambda receiver: srv.aclose())
            assert delay < 2.0
            assert isinstance(error, (trio.BrokenResourceError, trio.ClosedResourceError))


async def test_two_tasks_receiving_on_one_channel_get_every_message_once(path, tmp_path, profile):
    n = 400
    with trio.fail_after(20):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            receiver = None
            got: list[int] = []

            async def consume() -> None:
                assert receiver is not None
                async for value in receiver:
                    got.append(value)
                    if len(got) % 7 == 0:
                        await trio.sleep(0)

            await sender.send(-1)
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == -1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                nursery.start_soon(consume)
                for i in range(n):
                    await sender.send(i)
                    if i % 50 == 0:
                        await trio.sleep(0.01)
                await sender.aclose()
            assert sorted(got) == list(range(n))


@pytest.mark.slow
async def test_reply_pipe_keeps_order_and_local_sends(path, tmp_path, profile):
    """Messages forwarded into a pipe arrive in order, whichever path each took
    (directly to the waiting receiver, through the pipe receiver's own read, or
    through the forwarder when the receiver is slow), mixed with local sends."""
    n = 300
    with trio.fail_after(30):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            reply, replies = libchan.pipe()
            sender = await cli.open_sender()
            await sender.send({"reply": reply})
            request = await (await srv.accept_receiver()).receive()
            remote_reply = request["reply"]

            async def server_side() -> None:
                for i in range(n):
                    await remote_reply.send(i)
                    if i % 37 == 0:
                        await trio.sleep(0.005)  # sometimes one at a time, sometimes bursts
                await remote_reply.aclose()

            local: list[str] = []
            remote: list[int] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server_side)
                nursery.start_soon(reply.send, "local")  # the pipe's own sender, still usable here
                async for value in replies:
                    (local if isinstance(value, str) else remote).append(value)
                    if len(remote) % 50 == 25:
                        await trio.sleep(0.05)  # slow receiver: the forwarder takes over
            assert remote == list(range(n))
            assert local == ["local"]


async def test_spliced_stream_pipe_carries_data_eof_and_reused_buffers(path, tmp_path, profile):
    total = 8 * 1024 * 1024
    with trio.fail_after(60):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            a, b = libchan.stream_pipe()
            await a.send_all(b"before the splice ")  # buffered before the forwarder starts
            remote = await _send_read_end(cli, srv, b)
            sent = hashlib.sha256(b"before the splice ")
            received = hashlib.sha256()
            count = 0

            async def read_all() -> None:
                nonlocal count
                count = await _read_to_eof(remote, received, 100_000)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_all)
                buf = bytearray(os.urandom(300_000))
                left = total
                while left:
                    n = min(left, len(buf) if left % 3 else 70_001)
                    piece = memoryview(buf)[:n]
                    await a.send_all(piece)
                    sent.update(piece)
                    buf[:16] = os.urandom(16)  # reused at once: what was sent must not change
                    left -= n
                    if left % 5 == 0:
                        await a.send_all(b"")
                await a.send_eof()
            assert count == total + len(b"before the splice ")
            assert received.hexdigest() == sent.hexdigest()


async def test_spliced_stream_pipe_writer_sees_the_reader_go_away(path, tmp_path, profile):
    with trio.fail_after(20):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            a, b = libchan.stream_pipe()
            remote = await _send_read_end(cli, srv, b)
            await a.send_all(b"x" * 1000)
            assert await remote.receive_some(1000)
            await remote.aclose()
            with pytest.raises(trio.BrokenResourceError):
                for _ in range(1000):
                    await a.send_all(b"y" * 65536)
                    await trio.sleep(0.001)


async def test_spliced_stream_pipe_abort_reaches_the_reader(path, tmp_path, profile):
    with trio.fail_after(20):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            a, b = libchan.stream_pipe()
            remote = await _send_read_end(cli, srv, b)
            await a.send_all(b"some")
            assert await remote.receive_some(100) == b"some"
            a._abort("the writer broke")
            with pytest.raises(trio.BrokenResourceError):
                while await remote.receive_some(100):
                    pass


async def test_spliced_stream_pipe_with_a_writer_waiting_for_room(path, tmp_path, profile):
    """The writer is parked for room in a small pipe buffer when the forwarder drains
    it and switches to splicing: the rest of that send and every later one must go
    one way only (no two tasks sending on the session stream at once), in order."""
    with trio.fail_after(30):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            a, b = libchan.stream_pipe(max_buffer=1024)
            sender = await cli.open_sender()
            sent = hashlib.sha256()
            received = hashlib.sha256()
            count = 0

            async with trio.open_nursery() as nursery:

                async def accept_and_read() -> None:
                    nonlocal count
                    remote = (await (await srv.accept_receiver()).receive())["data"]
                    count = await _read_to_eof(remote, received, 65536)

                nursery.start_soon(accept_and_read)
                first = os.urandom(200_000)
                async with trio.open_nursery() as writers:
                    writers.start_soon(a.send_all, first)  # parks for room at once
                    await trio.sleep(0)
                    await sender.send({"data": libchan.ReadOnly(b)})
                sent.update(first)
                for i in range(40):
                    piece = os.urandom(3000 + i * 997)
                    await a.send_all(piece)
                    sent.update(piece)
                await a.send_eof()
            assert count == 200_000 + sum(3000 + i * 997 for i in range(40))
            assert received.hexdigest() == sent.hexdigest()


@pytest.mark.slow
async def test_consumer_reading_can_be_cancelled_and_the_connection_goes_on(path, tmp_path, profile):
    with trio.fail_after(10):
        async with session_pair(path, tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send(0)
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == 0
            for i in range(1, 6):
                with trio.move_on_after(0.05) as scope:
                    await receiver.receive()  # nothing comes: cancelled while reading
                assert scope.cancelled_caught
                await sender.send(i)
                assert await receiver.receive() == i  # nothing was lost to the cancelled read
            other = await cli.open_sender()
            await other.send("other")
            assert await (await srv.accept_receiver()).receive() == "other"


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_async_for_waits_can_be_cancelled_and_lose_nothing(tmp_path, profile):
    """Tasks in ``async for`` over receivers (NetReceiver.__anext__: one of them reads
    the connection itself, the others wait in their stream's lot for what it reads)
    are cancelled while they wait, at different times; the messages sent afterwards
    all arrive, in order, at new loops over the same receivers, and the loops end
    cleanly when the senders close."""
    k = 3
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            senders = [await cli.open_sender() for _ in range(k)]
            receivers = []
            for s in senders:
                await s.send("first")
                r = await srv.accept_receiver()
                assert await r.receive() == "first"
                receivers.append(r)
            got: dict[int, list] = {i: [] for i in range(k)}

            async def loop(i: int, scope: trio.CancelScope, task_status=trio.TASK_STATUS_IGNORED) -> None:
                with scope:
                    task_status.started()
                    async for msg in receivers[i]:
                        got[i].append(msg)

            for rnd in range(3):
                async with trio.open_nursery() as nursery:
                    scopes = [trio.CancelScope() for _ in range(k)]
                    for i in range(k):
                        await nursery.start(loop, i, scopes[i])
                    await trio.testing.wait_all_tasks_blocked()
                    for i in range(k):  # one at a time: the one reading the connection too
                        scopes[(i + rnd) % k].cancel()
                        await trio.testing.wait_all_tasks_blocked()
                    # (each loop took the message of the round before, then waited)
                    assert all(got[i] == [[r, i] for r in range(rnd)] for i in range(k)), got
                    for i, s in enumerate(senders):
                        await s.send((rnd, i))
            async with trio.open_nursery() as nursery:
                for i in range(k):
                    await nursery.start(loop, i, trio.CancelScope())
                for i, s in enumerate(senders):
                    await s.send("last")
                    await s.aclose()
            assert all(got[i] == [[0, i], [1, i], [2, i], "last"] for i in range(k)), got


@pytest.mark.parametrize("profile_name", ["h2", "spdy"])
async def test_closing_the_sessions_socket_under_it_ends_the_session_cleanly(profile_name):
    """The application closes the trio stream a Session runs on (aclose_forcefully): the
    next direct read waits on a closed descriptor, which must end the session with
    SessionClosedError -- not let trio's ValueError ("file descriptor cannot be a
    negative integer") escape from the link."""
    a, b = trio.socket.socketpair()
    client_stream, server_stream = trio.SocketStream(a), trio.SocketStream(b)
    with trio.fail_after(10):
        async with libchan.Session(client_stream, profile=profile_name) as cli:
            async with libchan.Session(server_stream, server_side=True, profile=profile_name) as srv:
                sender = await cli.open_sender()
                receiver = await srv.accept_receiver()
                await sender.send(b"1")
                assert await receiver.receive() == b"1"
                await trio.aclose_forcefully(server_stream)
                # (the wait woken by the close: "another task closed this fd", trio's own
                # words, on a transport not read directly)
                with pytest.raises(libchan.SessionClosedError, match="socket was (already )?closed|closed this fd"):
                    await receiver.receive()
                assert srv.closed
                with pytest.raises(libchan.SessionClosedError):  # (the client saw the end too)
                    with trio.fail_after(5):
                        while True:
                            await sender.send(b"2")
                            await trio.sleep(0.01)


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_a_task_sending_over_many_channels_yields_as_over_one(tmp_path, profile):
    """Sends and receives that need no waiting yield every _YIELD_EVERY of them, counted for
    the thread and not per stream: a task sending round-robin over 200 channels lets
    other tasks run (among them the link's writer, which puts its messages on the wire
    meanwhile), and so does one receiving round-robin from 200 receivers with messages
    waiting. (Counted per stream, the 4,000 sends below never yielded.)"""
    k, rounds = 200, 20
    async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
        senders = [await cli.open_sender() for _ in range(k)]
        receivers = []
        for s in senders:
            await s.send(b"first")
            r = await srv.accept_receiver()
            assert await r.receive() == b"first"
            receivers.append(r)
        for side, ops in (("send", [s.send for s in senders]), ("receive", [r.receive for r in receivers])):
            other_ran = trio.Event()

            async def other() -> None:
                other_ran.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(other)  # (runs at this task's first yield)
                ran_at = None
                for i in range(k * rounds):
                    await ops[i % k](*((b"m",) if side == "send" else ()))
                    if ran_at is None and other_ran.is_set():
                        ran_at = i
                assert ran_at is not None and ran_at < 2 * _YIELD_EVERY, (side, ran_at)
            if side == "send":
                with trio.fail_after(10):  # all 4,000 arrive (receivers read below)
                    while sum(len(r._ns.inbox) // 2 for r in receivers) < k * rounds:  # (a message and its size)
                        await trio.sleep(0.01)
