"""More faults (``-k fault``): peers that vanish mid-message, mid-byte-stream, with a reference
pending, during the TLS handshake or after GOAWAY; peers that stop reading; half-open TLS.

Every pending operation must fail with a clear (typed) error within a bounded time, and no
trio task may be left running afterwards (counted from the root task).
"""

from __future__ import annotations

import ssl
import tracemalloc

import cbor2
import h2.config
import h2.connection
import h2.events
import pytest
import trio

import libchan
from libchan.messages.framing import encode_frame
from libchan.spdy_like.spdy3 import Data, FrameWriter, SynStream
from helpers import certs, served, session_pair

TYPED = (libchan.ProtocolError, trio.BrokenResourceError, trio.EndOfChannel, trio.ClosedResourceError)
BOUND = 5.0  # seconds within which a pending operation must fail


def count_tasks() -> int:
    def rec(task: trio.lowlevel.Task) -> int:
        return 1 + sum(rec(c) for n in task.child_nurseries for c in n.child_tasks)

    return rec(trio.lowlevel.current_root_task())


def task_names() -> list[str]:
    out = []

    def rec(task):
        out.append(task.name)
        for n in task.child_nurseries:
            for c in n.child_tasks:
                rec(c)

    rec(trio.lowlevel.current_root_task())
    return out


async def wait_tasks_back_to(baseline: int, timeout: float = BOUND) -> None:
    with trio.move_on_after(timeout):
        while count_tasks() > baseline:
            await trio.sleep(0.02)
    assert count_tasks() <= baseline, f"{count_tasks() - baseline} task(s) left running: {task_names()}"


async def expect_failure(afn, *args, bound: float = BOUND) -> BaseException:
    """Await ``afn(*args)`` (repeatedly, for receive loops); it must raise a typed error within ``bound``."""
    start = trio.current_time()
    with trio.fail_after(bound):
        try:
            while True:
                result = await afn(*args)
                if result == b"":
                    raise AssertionError("a byte stream whose connection broke reported a clean EOF (b'')")
        except TYPED as exc:
            assert trio.current_time() - start < bound
            return exc


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- a cutting / silencing TCP proxy --------------------------------------------------------------


class Proxy:
    """Forwards TCP both ways; can cut both sockets at once, go silent, or cut after N bytes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = trio.Event()
        self.silent = trio.Event()
        self.budget: dict[str, int | None] = {"c2s": None, "s2c": None}
        self.port = 0

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as n:
            listeners = await n.start(trio.serve_tcp, self._handle, 0)
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self)

    async def _handle(self, client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        async with trio.open_nursery() as n:

            async def pump(src, dst, direction):
                try:
                    while True:
                        data = await src.receive_some(65536)
                        if not data:
                            await dst.send_eof()
                            return
                        if self.silent.is_set():
                            await trio.sleep_forever()
                        budget = self.budget[direction]
                        if budget is not None:
                            data = data[:budget]
                            self.budget[direction] = budget - len(data)
                            if data:
                                await dst.send_all(data)
                            if self.budget[direction] <= 0:
                                self.cut.set()
                                return
                            continue
                        await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    self.cut.set()

            async def cutter():
                await self.cut.wait()
                await trio.aclose_forcefully(client)
                await trio.aclose_forcefully(upstream)
                n.cancel_scope.cancel()

            n.start_soon(pump, client, upstream, "c2s")
            n.start_soon(pump, upstream, client, "s2c")
            n.start_soon(cutter)


# -- vanishing peers ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["h2", "spdy"])
@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_fault_peer_vanishes_mid_message(tmp_path, profile, transport):
    """The server's big message is cut after 100 KB: the client's pending receive fails."""
    big = b"m" * (1024 * 1024)
    sent = trio.Event()

    async def handler(session):
        receiver = await session.accept_receiver()
        reply = (await receiver.receive())["reply"]
        await reply.send({"big": big})
        sent.set()
        with pytest.raises(TYPED):  # returns once the session ended
            await session.accept_receiver()

    with trio.fail_after(20):
        async with served(transport, handler, tmp_path) as (url, client_ssl):
            async with trio.open_nursery() as nursery:
                proxy = await nursery.start(Proxy(_port(url)).run)
                baseline = count_tasks()
                async with libchan.connect(f"{transport}://127.0.0.1:{proxy.port}", ssl=client_ssl, profile=profile) as s:
                    sender = await s.open_sender()
                    mine, theirs = libchan.pipe()
                    await sender.send({"reply": mine})
                    proxy.budget["s2c"] = 100_000  # from now on: 100 KB more, then the connection dies
                    exc = await expect_failure(theirs.receive)
                    assert isinstance(exc, trio.BrokenResourceError), exc
                    with pytest.raises(trio.BrokenResourceError):
                        for _ in range(10):
                            await sender.send("more")
                    with pytest.raises(trio.BrokenResourceError):
                        await s.accept_receiver()
                await wait_tasks_back_to(baseline)
                nursery.cancel_scope.cancel()


@pytest.mark.parametrize("profile", ["h2", "spdy"])
@pytest.mark.parametrize("check_local_end", [False, True])
async def test_fault_peer_vanishes_mid_byte_stream(tmp_path, profile, check_local_end):
    """A byte stream is being read on the server when the connection dies: the read fails (no fake EOF)."""
    got = {}
    reading = trio.Event()
    done = trio.Event()

    async def handler(session):
        receiver = await session.accept_receiver()
        remote = (await receiver.receive())["stream"]
        assert await remote.receive_some() == b"first"
        reading.set()
        try:
            got["exc"] = await expect_failure(remote.receive_some)
        except BaseException as exc:  # noqa: BLE001
            got["exc"] = exc
        done.set()

    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path) as (url, _):
            async with trio.open_nursery() as nursery:
                proxy = await nursery.start(Proxy(_port(url)).run)
                baseline = count_tasks()
                async with libchan.connect(f"tcp://127.0.0.1:{proxy.port}", profile=profile) as s:
                    sender = await s.open_sender()
                    mine, theirs = libchan.stream_pipe()
                    await sender.send({"stream": theirs})
                    await mine.send_all(b"first")
                    await reading.wait()
                    await mine.send_all(b"partial data then the connection dies")
                    await trio.sleep(0.1)
                    proxy.cut.set()
                    await done.wait()
                    assert isinstance(got["exc"], trio.BrokenResourceError), repr(got["exc"])
                    if check_local_end:
                        # our local end of the forwarded stream ends too (EOF or error), in bounded time
                        with trio.fail_after(BOUND):
                            try:
                                while await mine.receive_some():
                                    pass
                            except TYPED:
                                pass
                    else:
                        await mine.aclose()  # lets the forward task end (see the xfail variant)
                await wait_tasks_back_to(baseline)
                nursery.cancel_scope.cancel()


async def _raw_h2(port: int) -> tuple[trio.SocketStream, h2.connection.H2Connection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    return stream, conn


def _req(path: str, extra=()) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", path),
            ("libchan-session", "fault-session"), *extra]


async def test_fault_peer_vanishes_with_reference_pending(tmp_path):
    """A message names a channel whose stream never comes, then the peer vanishes: the
    application's pending receive on that channel fails at once, not after reference_timeout."""
    got = {}
    waiting = trio.Event()
    done = trio.Event()

    async def handler(session):
        receiver = await session.accept_receiver()
        msg = await receiver.receive()
        waiting.set()
        got["exc"] = await expect_failure(msg["chan"].receive)
        done.set()

    config = libchan.Config(reference_timeout=60)
    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            baseline = count_tasks()
            stream, conn = await _raw_h2(_port(url))
            conn.send_headers(1, _req("/libchan/v1/session"))
            conn.send_headers(3, _req("/libchan/v1/stream", [("libchan-ref", "1"), ("libchan-type", "receiver")]))
            conn.send_data(3, encode_frame(cbor2.dumps({"chan": cbor2.CBORTag(41401, 7)})))
            await stream.send_all(conn.data_to_send())
            await waiting.wait()
            await trio.aclose_forcefully(stream)
            await done.wait()
            assert isinstance(got["exc"], trio.BrokenResourceError), repr(got["exc"])
            await wait_tasks_back_to(baseline)


async def test_fault_spdy_peer_vanishes_with_reference_pending(tmp_path):
    got = {}
    waiting = trio.Event()
    done = trio.Event()

    async def handler(session):
        receiver = await session.accept_receiver()
        msg = await receiver.receive()
        waiting.set()
        got["exc"] = await expect_failure(msg["chan"].receive)
        done.set()

    config = libchan.Config(reference_timeout=60)
    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            baseline = count_tasks()
            stream = await trio.open_tcp_stream("127.0.0.1", _port(url))
            w = FrameWriter()
            # {"chan": Receiver ref 3} (ext 5, fixext4) on a top-level channel; stream 3 never comes
            msg = b"\x81\xa4chan\xd6\x05\x00\x00\x00\x03"
            await stream.send_all(w.serialize(SynStream(1, [("libchan-ref", "2")])) + w.serialize(Data(1, msg)))
            await waiting.wait()
            await trio.aclose_forcefully(stream)
            await done.wait()
            assert isinstance(got["exc"], trio.BrokenResourceError), repr(got["exc"])
            await wait_tasks_back_to(baseline)


async def test_fault_peer_vanishes_during_tls_handshake_client_side():
    """The server reads the ClientHello and closes: connect() fails clearly and quickly."""

    async def vanisher(stream):
        await stream.receive_some(100)
        await trio.aclose_forcefully(stream)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, vanisher, 0)
            port = listeners[0].socket.getsockname()[1]
            baseline = count_tasks()
            with pytest.raises((trio.BrokenResourceError, ssl.SSLError, OSError)):
                with trio.fail_after(BOUND):
                    async with libchan.connect(f"tls://127.0.0.1:{port}", ssl=certs().client_ctx(mutual=False)):
                        pass
            await wait_tasks_back_to(baseline)
            nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_fault_silent_peer_during_tls_handshake_client_side():
    async def silent(stream):
        await trio.sleep_forever()

    config = libchan.Config(peer_timeout=1.0, handshake_timeout=1.0, keepalive_interval=0.3)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, silent, 0)
            port = listeners[0].socket.getsockname()[1]
            with pytest.raises(TYPED + (ssl.SSLError, OSError, trio.TooSlowError)) as info:
                with trio.fail_after(BOUND):
                    async with libchan.connect(f"tls://127.0.0.1:{port}", ssl=certs().client_ctx(mutual=False), config=config):
                        pass
            assert not isinstance(info.value, trio.TooSlowError), "connect() hung on a silent TLS server"
            nursery.cancel_scope.cancel()


async def test_fault_client_vanishes_during_tls_handshake_server_side(tmp_path):
    """Half a ClientHello, then the client is gone: the server drops the connection, no task left."""

    async def handler(session):
        raise AssertionError("no session should start")

    with trio.fail_after(15):
        async with served("tls", handler, tmp_path) as (url, _):
            baseline = count_tasks()
            for _ in range(5):
                stream = await trio.open_tcp_stream("127.0.0.1", _port(url))
                # the first bytes of a TLS ClientHello record, then nothing more
                await stream.send_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20)
                await trio.aclose_forcefully(stream)
            await wait_tasks_back_to(baseline)


@pytest.mark.slow
async def test_fault_silent_client_during_tls_handshake_server_side(tmp_path):
    async def handler(session):
        await trio.sleep_forever()

    config = libchan.Config(handshake_timeout=1.0, peer_timeout=1.0, keepalive_interval=0.3)
    with trio.fail_after(15):
        async with served("tls", handler, tmp_path, config) as (url, _):
            baseline = count_tasks()
            stream = await trio.open_tcp_stream("127.0.0.1", _port(url))
            closed = False
            with trio.move_on_after(BOUND):
                closed = (await stream.receive_some(100)) == b""
            await trio.aclose_forcefully(stream)
            assert closed, "the server kept a silent TLS client's connection open"
            await wait_tasks_back_to(baseline)


@pytest.mark.slow
async def test_fault_silent_cleartext_client_is_dropped_after_handshake_timeout(tmp_path):
    async def handler(session):
        await trio.sleep_forever()

    config = libchan.Config(handshake_timeout=1.0)
    with trio.fail_after(15):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            baseline = count_tasks()
            stream = await trio.open_tcp_stream("127.0.0.1", _port(url))
            with trio.fail_after(BOUND):
                assert await stream.receive_some(100) == b""
            await trio.aclose_forcefully(stream)
            await wait_tasks_back_to(baseline)


# -- GOAWAY -----------------------------------------------------------------------------------


async def test_fault_server_goaway_then_silence_fails_client_operations():
    """A (fake) HTTP/2 server answers the session, then sends GOAWAY and keeps the socket open."""
    opened = trio.Event()

    async def fake_server(stream):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        await stream.send_all(conn.data_to_send())
        sent_goaway = False
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    path = dict(ev.headers).get(":path")
                    if path == "/libchan/v1/session":
                        conn.send_headers(ev.stream_id, [(":status", "200")])
                    if path == "/libchan/v1/stream":
                        opened.set()
            if opened.is_set() and not sent_goaway:
                conn.close_connection(0)
                sent_goaway = True
            await stream.send_all(conn.data_to_send())
            if sent_goaway:
                # the socket stays open (until the client closes it): only the GOAWAY says "gone"
                try:
                    while await stream.receive_some(65536):
                        pass
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                return

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, fake_server, 0)
            port = listeners[0].socket.getsockname()[1]
            baseline = count_tasks()
            async with libchan.connect(f"tcp://127.0.0.1:{port}") as s:
                sender = await s.open_sender()
                await opened.wait()
                exc = await expect_failure(s.accept_receiver)
                assert isinstance(exc, libchan.SessionClosedError), repr(exc)
                with pytest.raises(trio.BrokenResourceError):
                    for _ in range(10):
                        await sender.send("x")
                        await trio.sleep(0.01)
                with pytest.raises(trio.BrokenResourceError):
                    await s.open_sender()
            await wait_tasks_back_to(baseline)
            nursery.cancel_scope.cancel()


async def test_fault_client_goaway_then_silence_ends_server_session(tmp_path):
    """A raw client sends GOAWAY and keeps its socket open: the server session ends."""
    got = {}
    waiting = trio.Event()
    done = trio.Event()

    async def handler(session):
        receiver = await session.accept_receiver()
        assert await receiver.receive() == "hello"
        waiting.set()
        got["exc"] = await expect_failure(receiver.receive)
        done.set()

    with trio.fail_after(15):
        async with served("tcp", handler, tmp_path) as (url, _):
            baseline = count_tasks()
            stream, conn = await _raw_h2(_port(url))
            conn.send_headers(1, _req("/libchan/v1/session"))
            conn.send_headers(3, _req("/libchan/v1/stream", [("libchan-ref", "1"), ("libchan-type", "receiver")]))
            conn.send_data(3, encode_frame(cbor2.dumps("hello")))
            await stream.send_all(conn.data_to_send())
            await waiting.wait()
            conn.close_connection(0)
            await stream.send_all(conn.data_to_send())
            await done.wait()  # socket still open
            assert isinstance(got["exc"], trio.BrokenResourceError), repr(got["exc"])
            await trio.aclose_forcefully(stream)
            await wait_tasks_back_to(baseline)


# -- a peer that stops reading ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_fault_peer_stops_reading_backpressure_bounded_memory(profile):
    """A server that accepts and never reads: send() blocks, memory stays bounded, and the blocked
    send fails cleanly once the peer closes the connection."""
    close_peer = trio.Event()

    async def deaf(stream):
        # a server's first bytes (connect() waits for them), then it never reads again
        await stream.send_all(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" if profile == "h2"
                              else b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x00")
        await close_peer.wait()
        await trio.aclose_forcefully(stream)

    config = libchan.Config(send_buffer=256 * 1024, peer_timeout=60)
    chunk = b"x" * 65536
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, deaf, 0)
            port = listeners[0].socket.getsockname()[1]
            async with libchan.connect(f"tcp://127.0.0.1:{port}", config=config, profile=profile) as s:
                sender = await s.open_sender()
                queued = 0
                tracemalloc.start()
                try:
                    base = tracemalloc.get_traced_memory()[0]
                    with trio.move_on_after(2):
                        while queued < 512 * 1024 * 1024:
                            await sender.send(chunk)
                            queued += len(chunk)
                    peak = tracemalloc.get_traced_memory()[1] - base
                finally:
                    tracemalloc.stop()
                assert queued < 32 * 1024 * 1024, f"{queued} bytes accepted by a peer that reads nothing"
                assert peak < 48 * 1024 * 1024, f"memory grew by {peak} bytes"
                # the next send blocks (backpressure) ...
                blocked = trio.Event()
                result = {}

                async def blocked_send():
                    blocked.set()
                    try:
                        while True:
                            await sender.send(chunk)
                    except BaseException as exc:  # noqa: BLE001
                        result["exc"] = exc

                async with trio.open_nursery() as n2:
                    n2.start_soon(blocked_send)
                    await blocked.wait()
                    await trio.sleep(0.3)
                    assert "exc" not in result
                    # ... until the connection closes: then it fails cleanly
                    start = trio.current_time()
                    close_peer.set()
                    with trio.fail_after(BOUND):
                        while "exc" not in result:
                            await trio.sleep(0.02)
                assert isinstance(result["exc"], trio.BrokenResourceError), repr(result["exc"])
                assert trio.current_time() - start < BOUND
            nursery.cancel_scope.cancel()


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_fault_application_stops_reading_backpressure_end_to_end(tmp_path, profile):
    """The server application never reads its channel: flow control (h2) or TCP (spdy) stops the
    client's send; memory stays bounded; closing the server session fails the blocked send."""
    config = libchan.Config(stream_window=256 * 1024, send_buffer=128 * 1024)
    chunk = b"y" * 32768
    with trio.fail_after(30):
        async with session_pair("tcp", tmp_path, config=config, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send("first")
            await srv.accept_receiver()  # accepted, never read
            queued = 0
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                with trio.move_on_after(2):
                    while queued < 256 * 1024 * 1024:
                        await sender.send(chunk)
                        queued += len(chunk)
                peak = tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()
            assert queued < 32 * 1024 * 1024, f"{queued} bytes accepted while nobody reads"
            assert peak < 64 * 1024 * 1024, f"memory grew by {peak} bytes"
            result = {}

            async def blocked_send():
                try:
                    while True:
                        await sender.send(chunk)
                except BaseException as exc:  # noqa: BLE001
                    result["exc"] = exc

            async with trio.open_nursery() as n:
                n.start_soon(blocked_send)
                await trio.sleep(0.3)
                assert "exc" not in result
                await srv.aclose()
                with trio.fail_after(BOUND + 2):
                    while "exc" not in result:
                        await trio.sleep(0.02)
            assert isinstance(result["exc"], trio.BrokenResourceError), repr(result["exc"])


# -- half-open TLS ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_fault_half_open_tls_connection_detected_by_keepalive(tmp_path, profile):
    config = libchan.Config(keepalive_interval=0.3, peer_timeout=1.0)
    entered = trio.Event()

    async def handler(session):
        entered.set()
        await trio.sleep_forever()

    with trio.fail_after(15):
        async with served("tls", handler, tmp_path, config) as (url, client_ssl):
            async with trio.open_nursery() as nursery:
                proxy = await nursery.start(Proxy(_port(url)).run)
                async with libchan.connect(f"tls://127.0.0.1:{proxy.port}", ssl=client_ssl, config=config, profile=profile) as s:
                    sender = await s.open_sender()
                    await sender.send("hello")
                    await entered.wait()
                    mine, theirs = libchan.pipe()
                    proxy.silent.set()  # peer silent from now on, sockets stay open
                    start = trio.current_time()
                    with pytest.raises(libchan.SessionClosedError, match="sent nothing"):
                        await s.accept_receiver()
                    assert trio.current_time() - start < 3
                    with pytest.raises(trio.BrokenResourceError):
                        await sender.send("after")
                nursery.cancel_scope.cancel()
