"""Every Config limit (``-k limit``): a typed error to the application, the right reaction toward
the peer (checked with a raw HTTP/2 client), never unbounded memory; and no growth of file
descriptors, tasks or memory over thousands of channels, byte streams and sessions."""

from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc

import cbor2
import h2.events
import pytest
import trio
import trio.testing

import libchan
from libchan.messages.framing import encode_frame
from helpers import served, session_pair
from rawh2 import RawH2Client

SESSION = "limit-session"


def count_tasks() -> int:
    def rec(task: trio.lowlevel.Task) -> int:
        return 1 + sum(rec(c) for n in task.child_nurseries for c in n.child_tasks)

    return rec(trio.lowlevel.current_root_task())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _hdrs(ref=None, kind="receiver", parent=None, path="/libchan/v1/stream"):
    h = [("libchan-session", SESSION)]
    if ref is not None:
        h += [("libchan-ref", str(ref)), ("libchan-type", kind)]
    if parent is not None:
        h.append(("libchan-parent-ref", str(parent)))
    return path, h


async def _server(tmp_path, config):
    """(host, port, recv) of a TCP server whose sessions' first channels land in ``recv``."""


class RawServer:
    def __init__(self, url, recv):
        self.host, port = url[len("tcp://"):].rsplit(":", 1)
        self.port = int(port)
        self.recv = recv

    async def client(self, control=True) -> RawH2Client:
        c = await RawH2Client.open(self.host, self.port)
        if control:
            await c.request("/libchan/v1/session", b"", [("libchan-session", SESSION)], end=False)
        return c


def raw_served(tmp_path, config):
    send, recv = trio.open_memory_channel(100)

    async def handler(session):
        async for receiver in session:
            await send.send((session, receiver))

    class _CM:
        async def __aenter__(self):
            self._cm = served("tcp", handler, tmp_path, config)
            url, _ = await self._cm.__aenter__()
            return RawServer(url, recv)

        async def __aexit__(self, *exc):
            return await self._cm.__aexit__(*exc)

    return _CM()


async def _reset_of(client: RawH2Client, sid: int) -> int:
    ev = await client.wait_for(
        lambda e: (isinstance(e, h2.events.StreamReset) and e.stream_id == sid)
        or isinstance(e, h2.events.ConnectionTerminated)
    )
    if isinstance(ev, h2.events.ConnectionTerminated):
        raise AssertionError(f"connection-level GOAWAY({ev.error_code}) instead of RST_STREAM on stream {sid}")
    return int(ev.error_code)


# -- max_message_size -------------------------------------------------------------------------


async def test_limit_message_size_raw_h2_gets_enhance_your_calm(tmp_path):
    config = libchan.Config(max_message_size=1000)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            sid = await client.request(path, encode_frame(cbor2.dumps("ok")) + encode_frame(cbor2.dumps("z" * 5000)), h, end=False)
            _, receiver = await srv.recv.receive()
            assert await receiver.receive() == "ok"
            with pytest.raises(libchan.MessageTooLargeError) as info:
                await receiver.receive()
            assert not info.value.local and info.value.limit == 1000
            assert await _reset_of(client, sid) == 11  # ENHANCE_YOUR_CALM
            await client.aclose()


async def test_limit_message_size_announced_huge_frame_is_refused_without_buffering(tmp_path):
    """A frame header announcing 2**40 bytes is refused at once; the bytes that follow are not kept."""
    config = libchan.Config(max_message_size=1 << 20)
    with trio.fail_after(15):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                sid = await client.request(path, b"\x5b" + (1 << 40).to_bytes(8, "big") + b"\0" * 10000, h, end=False)
                _, receiver = await srv.recv.receive()
                with pytest.raises(libchan.MessageTooLargeError):
                    await receiver.receive()
                assert await _reset_of(client, sid) == 11
                peak = tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()
            assert peak < 8 * 1024 * 1024, peak
            await client.aclose()


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_limit_message_size_between_sessions(tmp_path, profile):
    server_config = libchan.Config(max_message_size=10_000)
    with trio.fail_after(15):
        async with session_pair("tcp", tmp_path, config=libchan.Config(), server_config=server_config, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send("small")
            await sender.send(b"b" * 50_000)
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == "small"
            with pytest.raises(libchan.MessageTooLargeError):
                await receiver.receive()
            # the peer learns: its channel is reset (h2) / the stream is gone (spdy)
            with pytest.raises(trio.BrokenResourceError):
                with trio.fail_after(5):
                    while True:
                        await sender.send("more")
                        await trio.sleep(0.01)
            # the session goes on
            other = await cli.open_sender()
            await other.send("still fine")
            assert await (await srv.accept_receiver()).receive() == "still fine"


# -- max_streams ------------------------------------------------------------------------------


async def test_limit_concurrent_streams_refused_with_refused_stream(tmp_path):
    config = libchan.Config(max_streams=8)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()  # control stream: 1 of 8
            sids = []
            for ref in range(1, 2 * 12, 2):  # 12 more channels, all before reading the server's SETTINGS
                path, h = _hdrs(ref)
                sids.append(await client.request(path, encode_frame(cbor2.dumps(ref)), h, end=False))
            codes = [await _reset_of(client, sid) for sid in sids[7:]]
            assert set(codes) == {7}, codes  # REFUSED_STREAM
            for _ in range(7):
                await srv.recv.receive()
            await client.aclose()


async def test_limit_concurrent_streams_connection_survives_or_ends_cleanly(tmp_path):
    """Whatever the reaction, exceeding max_streams never crashes the server; others still work."""
    config = libchan.Config(max_streams=8)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            for ref in range(1, 2 * 12, 2):
                path, h = _hdrs(ref)
                await client.request(path, encode_frame(cbor2.dumps(ref)), h, end=False)
            try:
                await client.wait_for(lambda e: isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)))
            except (EOFError, trio.BrokenResourceError):
                pass
            await client.aclose()
            other = await RawH2Client.open(srv.host, srv.port)
            await other.request("/", encode_frame(cbor2.dumps("works")))
            while True:
                _, receiver = await srv.recv.receive()
                try:
                    if await receiver.receive() == "works":
                        break
                except (trio.BrokenResourceError, trio.EndOfChannel):
                    continue
            await other.aclose()


async def test_limit_concurrent_streams_between_sessions_queue_not_fail(tmp_path):
    """Our own client honours a small server limit by waiting (spec 4.2): 30 channels, limit 8."""
    server_config = libchan.Config(max_streams=8)
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, server_config=server_config) as (cli, srv):
            got = []

            async def drain():
                async with trio.open_nursery() as n:
                    for _ in range(30):
                        r = await srv.accept_receiver()

                        async def one(r=r):
                            async for m in r:
                                got.append(m)

                        n.start_soon(one)

            async def send(i):
                s = await cli.open_sender()
                await s.send(i)
                await s.aclose()

            async with trio.open_nursery() as n:
                n.start_soon(drain)
                async with trio.open_nursery() as senders:
                    for i in range(30):
                        senders.start_soon(send, i)
            assert sorted(got) == list(range(30))


# -- max_streams per connection (RFC 9113 5.1.2) -----------------------------------------------


async def _answer_of(client: RawH2Client, sid: int) -> tuple[str, int]:
    """("status", HTTP status) or ("reset", error code): the server's first reaction on ``sid``."""
    ev = await client.wait_for(
        lambda e: (isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset)) and e.stream_id == sid)
        or isinstance(e, h2.events.ConnectionTerminated)
    )
    if isinstance(ev, h2.events.ConnectionTerminated):
        raise AssertionError(f"connection-level GOAWAY({ev.error_code}) instead of an answer on stream {sid}")
    if isinstance(ev, h2.events.StreamReset):
        return "reset", int(ev.error_code)
    return "status", int(dict(ev.headers)[":status"])


OK, REFUSED = ("status", 200), ("reset", 7)


async def _open_control(client: RawH2Client, session: str) -> int:
    return await client.request("/libchan/v1/session", b"", [("libchan-session", session)], end=False)


async def test_limit_streams_per_connection_one_session(tmp_path):
    """max_streams=5: the control stream and four channels of one session fill the
    connection; the sixth stream is refused, the connection and the others go on, and
    once one stream closes a new one is accepted."""
    with trio.fail_after(10):
        async with raw_served(tmp_path, libchan.Config(max_streams=5)) as srv:
            client = await RawH2Client.open(srv.host, srv.port)
            sids = [await _open_control(client, SESSION)]
            for ref in range(1, 9, 2):
                path, h = _hdrs(ref)
                sids.append(await client.request(path, encode_frame(cbor2.dumps(ref)), h, end=False))
            path, h = _hdrs(9)
            sixth = await client.request(path, encode_frame(cbor2.dumps(9)), h, end=False)
            assert [await _answer_of(client, sid) for sid in sids] == [OK] * 5
            assert await _answer_of(client, sixth) == REFUSED
            got = [await (await srv.recv.receive())[1].receive() for _ in range(4)]
            assert sorted(got) == [1, 3, 5, 7]
            # one channel closes (the client resets it): a new stream is accepted again
            client.conn.reset_stream(sids[1], 8)
            path, h = _hdrs(11)
            again = await client.request(path, encode_frame(cbor2.dumps(11)), h, end=False)
            assert await _answer_of(client, again) == OK
            assert await (await srv.recv.receive())[1].receive() == 11
            await client.aclose()


async def test_limit_streams_per_connection_six_sessions(tmp_path):
    """max_streams=5 counts the streams of one connection whatever their sessions: five
    sessions' control streams fill it and a sixth session's is refused (each session holds
    one stream, far below its own limit); a second connection has its own five; once a
    stream closes on the first connection a new one is accepted there."""
    with trio.fail_after(10):
        async with raw_served(tmp_path, libchan.Config(max_streams=5)) as srv:
            client = await RawH2Client.open(srv.host, srv.port)
            sids = [await _open_control(client, f"session-{i}") for i in range(5)]
            sixth = await _open_control(client, "session-5")
            assert [await _answer_of(client, sid) for sid in sids] == [OK] * 5
            assert await _answer_of(client, sixth) == REFUSED
            other = await RawH2Client.open(srv.host, srv.port)
            theirs = [await _open_control(other, f"other-{i}") for i in range(5)]
            assert [await _answer_of(other, sid) for sid in theirs] == [OK] * 5
            # the refused stream made no session: it can be opened again later
            client.conn.reset_stream(sids[0], 8)  # aborts session-0 and closes its stream
            again = await _open_control(client, "session-5")
            assert await _answer_of(client, again) == OK
            path, h = _hdrs(1)  # and its channel, the sixth stream again: refused
            h = [("libchan-session", "session-5")] + h[1:]
            client.ignore_peer_stream_limit()  # (it has the server's SETTINGS by now)
            assert await _answer_of(client, await client.request(path, b"", h, end=False)) == REFUSED
            await other.aclose()
            await client.aclose()


async def test_limit_streams_per_session_across_connections(tmp_path):
    """The session's own limit stays: one session whose streams come over two connections
    (as through a proxy) holds at most max_streams=5 streams, though neither connection
    reaches its limit (3 + 3)."""
    with trio.fail_after(10):
        async with raw_served(tmp_path, libchan.Config(max_streams=5)) as srv:
            first = await RawH2Client.open(srv.host, srv.port)
            second = await RawH2Client.open(srv.host, srv.port)
            answers = [await _answer_of(first, await _open_control(first, SESSION))]
            for client, refs in ((first, (1, 3)), (second, (5, 7, 9))):
                for ref in refs:
                    path, h = _hdrs(ref)
                    answers.append(await _answer_of(client, await client.request(path, encode_frame(cbor2.dumps(ref)), h, end=False)))
            assert answers == [OK] * 5 + [REFUSED]
            await first.aclose()
            await second.aclose()


async def test_limit_streams_per_connection_anonymous_requests(tmp_path):
    """Six anonymous requests (six sessions) on one connection with max_streams=5: the
    sixth is refused and starts no session; a request whose both halves ended frees its
    place."""
    with trio.fail_after(10):
        async with raw_served(tmp_path, libchan.Config(max_streams=5)) as srv:
            client = await RawH2Client.open(srv.host, srv.port)
            sids = [await client.request("/", encode_frame(cbor2.dumps(i)), end=False) for i in range(5)]
            sixth = await client.request("/", encode_frame(cbor2.dumps(5)), end=False)
            assert [await _answer_of(client, sid) for sid in sids] == [OK] * 5
            assert await _answer_of(client, sixth) == REFUSED
            got = [await (await srv.recv.receive())[1].receive() for _ in range(5)]
            assert sorted(got) == [0, 1, 2, 3, 4]
            # the first request ends; the server ends its response: the stream is closed
            client.conn.end_stream(sids[0])
            await client.flush()
            await client.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == sids[0])
            again = await client.request("/", encode_frame(cbor2.dumps(6)), end=False)
            assert await _answer_of(client, again) == OK
            assert await (await srv.recv.receive())[1].receive() == 6
            assert srv.recv.statistics().current_buffer_used == 0  # no session for the refused one
            await client.aclose()


# -- pending references and their timeout --------------------------------------------------------


async def test_limit_pending_references(tmp_path):
    config = libchan.Config(max_pending_references=3, reference_timeout=30)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            refs = {f"r{i}": cbor2.CBORTag(41401, 101 + 2 * i) for i in range(5)}
            sid = await client.request(path, encode_frame(cbor2.dumps("first")) + encode_frame(cbor2.dumps(refs)), h, end=False)
            _, receiver = await srv.recv.receive()
            assert await receiver.receive() == "first"
            with pytest.raises(libchan.RemoteProtocolError, match="more than 3 references"):
                await receiver.receive()
            assert await _reset_of(client, sid) == 1  # PROTOCOL_ERROR
            await client.aclose()


async def test_limit_pending_unclaimed_streams(tmp_path):
    """Streams that no message names count too: beyond the limit they are refused with PROTOCOL_ERROR."""
    config = libchan.Config(max_pending_references=3, reference_timeout=30)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            await client.request(path, encode_frame(cbor2.dumps("parent")), h, end=False)
            sids = []
            for i in range(5):
                path, h = _hdrs(101 + 2 * i, kind="receiver", parent=1)
                sids.append(await client.request(path, b"", h, end=False))
            assert await _reset_of(client, sids[3]) == 1
            assert await _reset_of(client, sids[4]) == 1
            await client.aclose()


@pytest.mark.slow
async def test_limit_reference_timeout_both_ways(tmp_path):
    config = libchan.Config(reference_timeout=0.5)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            await client.request(path, encode_frame(cbor2.dumps({"c": cbor2.CBORTag(41401, 7)})), h, end=False)
            _, receiver = await srv.recv.receive()
            chan = (await receiver.receive())["c"]
            start = trio.current_time()
            with pytest.raises(libchan.UnresolvedReferenceError):
                await chan.receive()
            assert 0.4 < trio.current_time() - start < 3
            # a stream that arrives but is never named: reset with PROTOCOL_ERROR after the timeout
            path, h = _hdrs(9, kind="receiver", parent=1)
            sid = await client.request(path, b"", h, end=False)
            assert await _reset_of(client, sid) == 1
            await client.aclose()


# -- header size ---------------------------------------------------------------------------------


async def _header_reaction(srv: RawServer, size: int):
    client = await srv.client(control=False)
    path, h = _hdrs(1, path="/libchan/v1/stream")
    sid = await client.request(path, b"", h + [("x-big", "v" * size)], end=False)
    try:
        ev = await client.wait_for(
            lambda e: isinstance(e, (h2.events.ConnectionTerminated, h2.events.ResponseReceived, h2.events.StreamReset))
        )
    except (EOFError, trio.BrokenResourceError):
        ev = None  # the server closed (or reset) the connection
    await client.aclose()
    return ev, sid


async def test_limit_header_list_size_default_is_connection_error(tmp_path):
    with trio.fail_after(10):
        async with raw_served(tmp_path, libchan.Config()) as srv:
            ev, _ = await _header_reaction(srv, 100 * 1024)
            # a connection error: GOAWAY(ENHANCE_YOUR_CALM) (spec 4.3), or the connection closed
            # before the GOAWAY could be read (the server does not wait for our unread bytes)
            assert ev is None or (isinstance(ev, h2.events.ConnectionTerminated) and ev.error_code == 11), ev


async def test_limit_header_list_size_configured_is_enforced(tmp_path):
    config = libchan.Config(max_header_list_size=4096)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            ev, _ = await _header_reaction(srv, 10 * 1024)
            assert ev is None or (isinstance(ev, h2.events.ConnectionTerminated) and ev.error_code == 11), ev


# -- nesting depth ---------------------------------------------------------------------------------


def _nested(depth: int):
    v = "core"
    for _ in range(depth):
        v = [v]
    return v


async def test_limit_nesting_depth_raw_h2_gets_protocol_error(tmp_path):
    config = libchan.Config(max_nesting_depth=10)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            body = encode_frame(cbor2.dumps(_nested(10))) + encode_frame(cbor2.dumps(_nested(11)))
            sid = await client.request(path, body, h, end=False)
            _, receiver = await srv.recv.receive()
            assert await receiver.receive() == _nested(10)
            with pytest.raises(libchan.RemoteProtocolError):
                await receiver.receive()
            assert await _reset_of(client, sid) == 1
            await client.aclose()


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_limit_nesting_depth_between_sessions(tmp_path, profile):
    server_config = libchan.Config(max_nesting_depth=10)
    with trio.fail_after(10):
        async with session_pair("tcp", tmp_path, config=libchan.Config(), server_config=server_config, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send(_nested(9))
            await sender.send(_nested(50))
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == _nested(9)
            with pytest.raises(libchan.RemoteProtocolError):
                await receiver.receive()


# -- no growth over many channels, byte streams and sessions -----------------------------------------


def _measure():
    gc.collect()
    return open_fds(), count_tasks(), tracemalloc.get_traced_memory()[0]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_limit_10000_channels_and_byte_streams_no_growth(tmp_path, profile):
    """10,000 streams on one session: 5,000 channels plus 5,000 byte streams (each carried
    by its own channel), opened, used and closed. LIBCHAN_LIMIT_TOTAL changes the count.
    (This found h2 keeping 2**16 closed stream ids per connection: several MB.)"""
    total, batch = int(os.environ.get("LIBCHAN_LIMIT_TOTAL", "10000")), 100
    with trio.fail_after(60 * max(1, total // 5000)):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):

            async def server_side():
                async with trio.open_nursery() as n:
                    while True:
                        try:
                            r = await srv.accept_receiver()
                        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                            return

                        async def serve_one(r=r):
                            async for msg in r:
                                if "stream" in msg:
                                    bs = msg["stream"]
                                    data = await bs.receive_some()
                                    await bs.send_all(data.upper())
                                    await bs.aclose()
                                else:
                                    await msg["reply"].send(msg["i"])
                                    await msg["reply"].aclose()

                        n.start_soon(serve_one)

            async def one(i):
                sender = await cli.open_sender()
                if i % 2:
                    mine, theirs = libchan.stream_pipe()
                    await sender.send({"stream": theirs})
                    await mine.send_all(b"abc")
                    assert await mine.receive_some() == b"ABC"
                    await mine.aclose()
                else:
                    reply, replies = libchan.pipe()
                    await sender.send({"i": i, "reply": reply})
                    assert await replies.receive() == i
                    await replies.aclose()
                await sender.aclose()

            async def run_batches(start, stop):
                for b in range(start, stop, batch):
                    async with trio.open_nursery() as n:
                        for i in range(b, min(b + batch, stop)):
                            n.start_soon(one, i)

            async with trio.open_nursery() as outer:
                outer.start_soon(server_side)
                tracemalloc.start()
                try:
                    await run_batches(0, 1000)  # warm-up: caches, pools, first-use allocations
                    await trio.sleep(0.5)
                    fds0, tasks0, mem0 = _measure()
                    await run_batches(1000, total)
                    await trio.sleep(0.5)
                    fds1, tasks1, mem1 = _measure()
                finally:
                    tracemalloc.stop()
                assert fds1 <= fds0, (fds0, fds1)
                assert tasks1 <= tasks0 + 2, (tasks0, tasks1)
                assert mem1 - mem0 < 2 * 1024 * 1024, f"memory grew by {mem1 - mem0} bytes over the measured streams"
                assert len(cli._core._streams) < 10 and len(srv._core._streams) < 10, (len(cli._core._streams), len(srv._core._streams))
                outer.cancel_scope.cancel()


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["tcp"])
async def test_limit_1000_sessions_no_growth(tmp_path, transport):
    async def handler(session):
        async for receiver in session:
            async for msg in receiver:
                await msg["reply"].send(msg["n"] + 1)
                await msg["reply"].aclose()

    async def one(url, profile, n):
        async with libchan.connect(url, profile=profile) as s:
            sender = await s.open_sender()
            reply, replies = libchan.pipe()
            await sender.send({"n": n, "reply": reply})
            assert await replies.receive() == n + 1
            await sender.aclose()

    with trio.fail_after(90):
        async with served(transport, handler, tmp_path) as (url, _):
            tracemalloc.start()
            try:
                for n in range(100):
                    await one(url, ("h2", "spdy")[n % 2], n)
                await trio.sleep(0.5)
                fds0, tasks0, mem0 = _measure()
                for n in range(100, 1000):
                    await one(url, ("h2", "spdy")[n % 2], n)
                await trio.sleep(0.5)
                fds1, tasks1, mem1 = _measure()
            finally:
                tracemalloc.stop()
            assert fds1 <= fds0, (fds0, fds1)
            assert tasks1 <= tasks0, (tasks0, tasks1)
            assert mem1 - mem0 < 2 * 1024 * 1024, f"memory grew by {mem1 - mem0} bytes over 900 sessions"


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_limit_one_descriptor_per_connection(tmp_path, transport):
    """A connection costs one descriptor on each side (the socket), not two (no duplicate
    of it for direct I/O): a server runs out of descriptors at the connections it can hold."""

    async def handler(session):
        async for receiver in session:
            async for msg in receiver:
                pass

    n = 20
    async with served(transport, handler, tmp_path) as (url, client_ssl):
        async with libchan.connect(url, ssl=client_ssl) as warm:  # (lazy imports, the listener's first accept)
            s = await warm.open_sender()
            await s.send("warm")
            await s.aclose()
        before = open_fds()
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(n):
                session = await stack.enter_async_context(libchan.connect(url, ssl=client_ssl))
                sender = await session.open_sender()
                await sender.send("hello")  # the connection is in use: direct I/O has taken over
                await sender.aclose()
            await trio.sleep(0.1)
            during = open_fds()
        # client socket + server socket per connection
        assert during - before <= 2 * n + 2, f"{(during - before) / n:.1f} descriptors per connection"


async def test_limit_link_keeps_unread_counts_without_scanning_its_streams(tmp_path, profile):
    """What a connection's streams hold unread, and how many hold more than a stream window,
    is kept as it changes (no scan of every stream per read: linear work per connection),
    and always equals what a scan would find."""
    config = libchan.Config(stream_window=65536)

    def check(link):
        live = list(link.streams.values())
        assert link.unread == sum(ns.held for ns in live)
        assert link.streams_over == sum(1 for ns in live if ns.held > link.hold_limit)

    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, config) as (client, server):
            senders = [await client.open_sender() for _ in range(6)]
            receivers = [await server.accept_receiver() for _ in senders]
            for i, sender in enumerate(senders):
                for k in range(4):
                    await sender.send(b"x" * (20_000 if i % 2 else 100))
            await trio.sleep(0.3)
            (link,) = server._core._links
            check(link)
            assert link.unread > 0
            for r in receivers[:3]:
                for _ in range(4):
                    await r.receive()
            check(link)
            for s in senders[:2]:
                await s.aclose()
            await receivers[4].aclose()  # unread messages dropped
            await trio.sleep(0.2)
            check(link)
            for s in senders[2:]:
                await s.aclose()
            for r in receivers[3:]:
                with contextlib.suppress(trio.ClosedResourceError):
                    async for _ in r:
                        pass
            await trio.sleep(0.2)
            check(link)
            assert link.unread == 0 and link.streams_over == 0


async def test_limit_unclaimed_stream_that_completed_waits_for_its_reference(tmp_path):
    """Through a proxy a nested stream may arrive whole (data and END_STREAM) before the message
    that names it (spec 10.4): it waits, complete, for its reference (up to
    reference_timeout) instead of being forgotten when it ended (the message's reference
    then never resolved: a flaky hang through haproxy)."""
    config = libchan.Config(reference_timeout=3)
    with trio.fail_after(10):
        async with raw_served(tmp_path, config) as srv:
            client = await srv.client()
            path, h = _hdrs(1)
            top = await client.request(path, b"", h, end=False)
            session, receiver = await srv.recv.receive()
            path, h = _hdrs(3, kind="receiver", parent=1)
            await client.request(path, encode_frame(cbor2.dumps("deep")) + encode_frame(cbor2.dumps("er")), h, end=True)
            for _ in range(20):  # the server has the whole stream, and no message named it yet
                await trio.sleep(0.01)
            client.conn.send_data(top, encode_frame(cbor2.dumps({"more": cbor2.CBORTag(41401, 3)})))
            await client.flush()
            msg = await receiver.receive()
            assert isinstance(msg["more"], libchan.Receiver)
            assert [m async for m in msg["more"]] == ["deep", "er"]
            await client.aclose()


@pytest.mark.fast_paths  # (a waiting task reads the connection itself only on the fast paths)
async def test_limit_go_profile_waiting_reader_does_not_read_past_the_pause(tmp_path, monkeypatch):
    """Go profile (no flow control): while one stream holds more than its window unread,
    the connection is not read -- neither by its reader task nor by an application task
    waiting for another stream (which otherwise reads the connection itself): what the
    unread stream holds stays within its window and one read, however much its peer
    sends (TCP's buffers hold the rest)."""
    config = libchan.Config(stream_window=65535)
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, config=config, profile="spdy") as (cli, srv):
            flood, other = await cli.open_sender(), await cli.open_sender()
            await flood.send("first")
            await other.send("first")
            unread = await srv.accept_receiver()  # (never read past here)
            waiting = await srv.accept_receiver()
            assert await unread.receive() == "first" and await waiting.receive() == "first"
            link = unread._ns.link
            paused_reads = []
            read_for = type(link).read_for

            async def counting_read_for(self, ns):
                if self is link and link.streams_over:
                    paused_reads.append(unread._ns.held)
                await read_for(self, ns)

            monkeypatch.setattr(type(link), "read_for", counting_read_for)
            got = []

            async def wait_for_other() -> None:
                got.append(await waiting.receive())

            async with trio.open_nursery() as nursery:
                with trio.move_on_after(1):  # until TCP's buffers are full
                    while True:
                        await flood.send(b"x" * 1000)
                assert link.streams_over  # (it did hold past its window: reading paused)
                nursery.start_soon(wait_for_other)  # a task that waits, and would read
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert paused_reads == []  # it did not read while paused
                held = unread._ns.held
                assert held <= 65535 + 256 * 1024 + 2000, held  # the window, one read, one message
                assert got == []
                nursery.cancel_scope.cancel()
