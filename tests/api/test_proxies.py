"""The session scenarios through real HTTP/2 reverse proxies: nghttpx and haproxy.

Each test gets (fixture ``proxied``, parametrized over both proxies) a libchan
server on a free port and the proxy, started here as a subprocess, in front of
it with short idle timeouts (``proxies.PROXY_TIMEOUT`` = 4 s: haproxy
``timeout client``/``timeout server``, nghttpx ``--backend-read-timeout``).
Both ends use ``Config(keepalive_interval=1.0)``, so surviving idleness is
proven in seconds.

The test sets ``proxied.handler`` (the server application) and then connects
to ``proxied.url`` (the proxy). The proxy's log is printed at teardown, so a
failing test shows it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Awaitable, Callable

import pytest
import trio

import libchan

from proxies import PROXY_TIMEOUT, Proxy, start_proxy

pytestmark = pytest.mark.slow  # real nghttpx and haproxy processes, 4 s idle timeouts

CONFIG = libchan.Config(keepalive_interval=1.0)
PROXIES = ["nghttpx", "haproxy"]

Handler = Callable[[libchan.Session], Awaitable[Any]]


class Proxied:
    """A libchan server behind a proxy; set ``handler`` before connecting."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.proxy: Proxy | None = None
        self.backend_url = ""
        self.errors: list[BaseException] = []

    @property
    def url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    @property
    def name(self) -> str:
        assert self.proxy is not None
        return self.proxy.name

    async def dispatch(self, session: libchan.Session) -> None:
        assert self.handler is not None, "the test did not set proxied.handler"
        try:
            await self.handler(session)
        except BaseException as exc:  # serve() only logs handler errors; keep them for the test
            self.errors.append(exc)
            raise

    def connect(self) -> Any:
        return libchan.connect(self.url, config=CONFIG)


@pytest.fixture(params=PROXIES)
async def proxied(request: pytest.FixtureRequest) -> Any:
    env = Proxied()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(_serve, env.dispatch)
        env.backend_url = urls[0]
        backend_port = int(urls[0].rsplit(":", 1)[1])
        proxy = await start_proxy(request.param, backend_port)
        env.proxy = proxy
        try:
            yield env
        finally:
            proxy.stop()
            print(f"---- {proxy.name} ({proxy.extra['command']}) log ----")
            print(proxy.log()[-20000:])
            proxy.cleanup()
            nursery.cancel_scope.cancel()


async def _serve(handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    await libchan.serve("tcp://127.0.0.1:0", handler, config=CONFIG, task_status=task_status)


async def wait_session_end(session: libchan.Session) -> None:
    """Keep a server session open until the client ends it (refusing further channels)."""
    try:
        async for _ in session:
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def sample_messages(n: int) -> list[Any]:
    return [
        {"i": i, "text": f"message {i}", "blob": bytes([i % 256]) * (i * 97), "list": [i, -i, i / 2, None, True]}
        for i in range(n)
    ]


# -- (a) client opens a channel and sends ------------------------------------------------
async def test_client_opens_channel_and_sends(proxied: Proxied) -> None:
    messages = sample_messages(60)
    got: list[Any] = []
    done = trio.Event()

    async def handler(session: libchan.Session) -> None:
        receiver = await session.accept_receiver()
        async for msg in receiver:
            got.append(msg)
        done.set()
        await wait_session_end(session)

    proxied.handler = handler
    with trio.fail_after(20):
        async with proxied.connect() as session:
            sender = await session.open_sender()
            for msg in messages:
                await sender.send(msg)
            await sender.aclose()
            await done.wait()
    assert got == messages
    assert not proxied.errors


# -- (b) server opens a top-level channel to the client -----------------------------------
async def test_server_opens_channel_to_client(proxied: Proxied) -> None:
    messages = sample_messages(40)

    async def handler(session: libchan.Session) -> None:
        sender = await session.open_sender()
        for msg in messages:
            await sender.send(msg)
        await sender.aclose()
        await wait_session_end(session)

    proxied.handler = handler
    with trio.fail_after(20):
        async with proxied.connect() as session:
            receiver = await session.accept_receiver()
            got = [msg async for msg in receiver]
    assert got == messages
    assert not proxied.errors


# -- (c) nested channels, created by both sides ---------------------------------------------
async def nest_initiator(top: libchan.Sender, tag: str, log: list[str]) -> None:
    """Side A of a nested exchange started on top-level channel ``top`` (A sends on it).

    depth 1: a Sender created by A (B replies on it), carried on ``top``;
    depth 2: a Receiver created by B, carried on depth 1;
    depth 3: a Sender created by B, carried on depth 2;
    depth 4: a Receiver created by A, carried on depth 3.
    """
    reply_in, reply_out = libchan.pipe()
    await top.send({"depth": 1, "from": tag, "reply": reply_in})
    m2 = await reply_out.receive()
    assert m2["depth"] == 2 and isinstance(m2["inbox"], libchan.Receiver), m2
    log.append(f"{tag}: got depth 2")
    m3 = await m2["inbox"].receive()
    assert m3["depth"] == 3 and isinstance(m3["reply"], libchan.Sender), m3
    log.append(f"{tag}: got depth 3")
    more_in, more_out = libchan.pipe()
    await m3["reply"].send({"depth": 4, "from": tag, "answer": m3["question"] * 2, "more": more_out})
    await more_in.send({"depth": 5, "text": f"deepest from {tag}"})
    await more_in.aclose()
    final = await reply_out.receive()
    assert final == {"done": True, "deepest": {"depth": 5, "text": f"deepest from {tag}"}, "answer_ok": True}, final
    log.append(f"{tag}: done")


async def nest_responder(top: libchan.Receiver, tag: str, log: list[str]) -> None:
    """Side B of the exchange (B receives on the top-level channel)."""
    m1 = await top.receive()
    assert m1["depth"] == 1 and isinstance(m1["reply"], libchan.Sender), m1
    reply = m1["reply"]
    log.append(f"{tag}: got depth 1")
    to_a, inbox = libchan.pipe()
    await reply.send({"depth": 2, "from": tag, "inbox": inbox})
    answers_in, answers_out = libchan.pipe()
    await to_a.send({"depth": 3, "question": 21, "reply": answers_in})
    m4 = await answers_out.receive()
    assert m4["depth"] == 4 and isinstance(m4["more"], libchan.Receiver), m4
    log.append(f"{tag}: got depth 4")
    m5 = await m4["more"].receive()
    log.append(f"{tag}: got depth 5")
    await reply.send({"done": True, "deepest": m5, "answer_ok": m4["answer"] == 42})


async def test_nested_channels_both_sides(proxied: Proxied) -> None:
    log: list[str] = []
    server_done = trio.Event()

    async def handler(session: libchan.Session) -> None:
        async def as_responder() -> None:
            top = await session.accept_receiver()
            await nest_responder(top, "server-B", log)

        async def as_initiator() -> None:
            top = await session.open_sender()
            await nest_initiator(top, "server-A", log)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(as_responder)
            nursery.start_soon(as_initiator)
        server_done.set()
        await wait_session_end(session)

    proxied.handler = handler
    with trio.fail_after(30):
        async with proxied.connect() as session:

            async def as_initiator() -> None:
                top = await session.open_sender()
                await nest_initiator(top, "client-A", log)

            async def as_responder() -> None:
                top = await session.accept_receiver()
                await nest_responder(top, "client-B", log)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(as_initiator)
                nursery.start_soon(as_responder)
            await server_done.wait()
    assert "client-A: done" in log and "server-A: done" in log, log
    assert not proxied.errors


# -- (d) byte streams: 64 MiB each way at the same time -------------------------------------
BULK = 64 * 1024 * 1024
CHUNK = 256 * 1024
STALL_SECONDS = 10.0


class Progress:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last_change = trio.current_time()

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        self.last_change = trio.current_time()

    def __str__(self) -> str:
        return ", ".join(f"{k}={v / 2**20:.2f} MiB" for k, v in sorted(self.counts.items()))


async def pump_both_ways(stream: Any, tag: str, progress: Progress, size: int = BULK) -> tuple[str, str, int]:
    """Write ``size`` random bytes and read to EOF at the same time; return (sent sha256, received sha256, received n)."""
    sent = hashlib.sha256()
    received = hashlib.sha256()
    count = 0

    async def write() -> None:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            sent.update(chunk)
            await stream.send_all(chunk)
            left -= len(chunk)
            progress.add(f"{tag} sent", len(chunk))
        await stream.send_eof()

    async def read() -> None:
        nonlocal count
        while True:
            data = await stream.receive_some(CHUNK)
            if not data:
                return
            received.update(data)
            count += len(data)
            progress.add(f"{tag} received", len(data))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        nursery.start_soon(read)
    return sent.hexdigest(), received.hexdigest(), count


async def _bulk_duplex(proxied: Proxied, client_size: int = BULK, server_size: int = BULK) -> None:
    progress = Progress()
    server_result: dict[str, tuple[str, str, int]] = {}
    server_done = trio.Event()

    async def handler(session: libchan.Session) -> None:
        receiver = await session.accept_receiver()
        msg = await receiver.receive()
        stream = msg["stream"]
        assert isinstance(stream, libchan.ByteStream) and stream.direction == "duplex", stream
        server_result["server"] = await pump_both_ways(stream, "server", progress, server_size)
        server_done.set()
        await wait_session_end(session)

    async def watchdog() -> None:
        while True:
            await trio.sleep(0.5)
            idle = trio.current_time() - progress.last_change
            if idle > STALL_SECONDS:
                raise AssertionError(
                    f"byte stream stalled through {proxied.name}: no byte moved for {idle:.1f}s; {progress}"
                )

    proxied.handler = handler
    with trio.fail_after(90):
        async with proxied.connect() as session:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watchdog)
                sender = await session.open_sender()
                local, remote = libchan.stream_pipe(max_buffer=256 * 1024)
                await sender.send({"stream": remote})
                client_result = await pump_both_ways(local, "client", progress, client_size)
                await server_done.wait()
                nursery.cancel_scope.cancel()
    c_sent, c_recv, c_n = client_result
    s_sent, s_recv, s_n = server_result["server"]
    assert c_n == server_size and s_n == client_size, progress
    assert c_sent == s_recv, "client->server bytes differ"
    assert s_sent == c_recv, "server->client bytes differ"
    assert not proxied.errors


async def test_byte_stream_64mib_both_ways(proxied: Proxied) -> None:
    """Both sides write 64 MiB and read 64 MiB at the same time on one duplex byte stream.

    (The shared notes saw haproxy 2.6 stall on this pattern with a plain h2
    client; with libchan it has not stalled here, so it is not marked xfail.
    Through nghttpx this fails intermittently, see the next test.)
    """
    await _bulk_duplex(proxied)


async def test_byte_stream_server_half_closes_first(proxied: Proxied) -> None:
    """Deterministic form of a race in (d): the server's direction of a duplex
    byte stream ends (send_eof) long before the client's direction does.

    On the wire the server's END_STREAM completes the HTTP *response* while the
    *request* body is still flowing.
    """
    await _bulk_duplex(proxied, client_size=8 * 1024 * 1024, server_size=64 * 1024)


# -- (e) idle channels and parked requests outlive the proxies' idle timeouts ------------------
IDLE_SECONDS = 2.5 * PROXY_TIMEOUT


async def test_idle_channel_and_parked_requests_survive(proxied: Proxied) -> None:
    server_log: list[Any] = []
    server_ok = trio.Event()

    async def handler(session: libchan.Session) -> None:
        receiver = await session.accept_receiver()
        first = await receiver.receive()
        reply = first["reply"]
        await reply.send({"pong": 1})
        second = await receiver.receive()  # arrives after the idle period
        server_log.append(second)
        await reply.send({"pong": 2})
        # A new top-level channel after the idle period: answers a parked request that idled.
        late = await session.open_sender()
        await late.send({"late": True})
        await late.aclose()
        server_ok.set()
        await wait_session_end(session)

    proxied.handler = handler
    with trio.fail_after(IDLE_SECONDS + 30):
        async with proxied.connect() as session:
            sender = await session.open_sender()
            reply_in, reply_out = libchan.pipe()
            await sender.send({"ping": 1, "reply": reply_in})
            assert await reply_out.receive() == {"pong": 1}
            await trio.sleep(IDLE_SECONDS)
            await sender.send({"ping": 2})
            with trio.fail_after(10):
                assert await reply_out.receive() == {"pong": 2}
                late = await session.accept_receiver()
                assert [m async for m in late] == [{"late": True}]
                await server_ok.wait()
    assert server_log == [{"ping": 2}]
    assert not proxied.errors


# -- (f) closing the session is seen end to end --------------------------------------------
async def test_session_close_seen_through_proxy(proxied: Proxied) -> None:
    ready = trio.Event()
    finished = trio.Event()
    outcome: dict[str, Any] = {}

    async def handler(session: libchan.Session) -> None:
        receiver = await session.accept_receiver()
        outcome["first"] = await receiver.receive()

        async def pending_receive() -> None:
            try:
                outcome["pending"] = await receiver.receive()
            except BaseException as exc:
                outcome["pending"] = exc
                outcome["pending_at"] = trio.current_time()
                if isinstance(exc, trio.Cancelled):
                    raise

        async def accept_loop() -> None:
            try:
                async for extra in session:
                    outcome.setdefault("extra", []).append(extra)
                outcome["accept"] = "ended"
            except BaseException as exc:
                outcome["accept"] = exc
                if isinstance(exc, trio.Cancelled):
                    raise
            outcome["accept_at"] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pending_receive)
            nursery.start_soon(accept_loop)
            await trio.sleep(0.2)
            ready.set()
        finished.set()

    proxied.handler = handler
    with trio.fail_after(20):
        async with proxied.connect() as session:
            sender = await session.open_sender()
            await sender.send({"hello": 1})
            await ready.wait()
            await trio.sleep(0.3)
        left_at = trio.current_time()
        with trio.move_on_after(5):
            await finished.wait()
    assert outcome.get("first") == {"hello": 1}
    assert finished.is_set(), f"server did not see the session end within 5 s: {outcome}"
    assert outcome["accept"] == "ended", f"accept_receiver() did not end with EndOfChannel: {outcome['accept']!r}"
    # The client resets its open channel with RST_STREAM(CANCEL) (spec 6.4 (4)). haproxy 2.6
    # forwards a client's reset of a request stream as an empty DATA frame with END_STREAM
    # followed by RST_STREAM(CANCEL), on a backend connection of its own, so the server may see
    # the channel end cleanly before the control stream's END_STREAM (measured; spec 6.4).
    ends = (libchan.SessionClosedError, trio.BrokenResourceError)
    if proxied.name == "haproxy":
        ends += (trio.EndOfChannel,)
    assert isinstance(outcome["pending"], ends), outcome
    assert outcome["accept_at"] - left_at < 5 and outcome["pending_at"] - left_at < 5, outcome
    assert "extra" not in outcome


# -- (g) what a proxy makes of a client's reset (the fact spec 6.4 relies on) -------------
async def _raw_backend(events: list[tuple[str, int]], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A bare h2 server that answers every request 200 and records, per stream, whether
    it saw END_STREAM ("end") or RST_STREAM (("reset", code))."""
    import h2.config
    import h2.connection
    import h2.events

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def serve(stream: trio.SocketStream) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        await stream.send_all(conn.data_to_send())
        while data := await stream.receive_some():
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    conn.send_headers(ev.stream_id, [(":status", "200")])
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    events.append(("end", 0))
                elif isinstance(ev, h2.events.StreamReset):
                    events.append(("reset", ev.error_code))
            await stream.send_all(conn.data_to_send())

    await trio.serve_listeners(serve, listeners)


@pytest.mark.parametrize("proxy_name", PROXIES)
async def test_client_reset_as_the_backend_sees_it(proxy_name: str) -> None:
    """A client resets an open POST through the proxy: nghttpx resets the backend stream;
    haproxy 2.6 ends it cleanly (END_STREAM), then resets it. Spec 6.4 says so; if a
    proxy upgrade changes this, the spec's paragraph is to be measured again."""
    import h2.connection

    events: list[tuple[str, int]] = []
    async with trio.open_nursery() as nursery:
        backend_port = await nursery.start(_raw_backend, events)
        proxy = await start_proxy(proxy_name, backend_port)
        try:
            with trio.fail_after(10):
                stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
                conn = h2.connection.H2Connection()
                conn.initiate_connection()
                conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/c")])
                conn.send_data(1, b"\x41x")  # one frame of a channel body
                await stream.send_all(conn.data_to_send())
                answered = False
                while not answered:
                    for ev in conn.receive_data(await stream.receive_some()):
                        answered = answered or type(ev).__name__ == "ResponseReceived"
                    await stream.send_all(conn.data_to_send())
                conn.reset_stream(1, 8)  # CANCEL
                await stream.send_all(conn.data_to_send())
                while not any(kind == "reset" for kind, _ in events):
                    await trio.sleep(0.01)
                await stream.aclose()
        finally:
            proxy.stop()
            proxy.cleanup()
        nursery.cancel_scope.cancel()
    if proxy_name == "haproxy":
        assert events == [("end", 0), ("reset", 8)], events
    else:
        assert [kind for kind, _ in events] == ["reset"], events
