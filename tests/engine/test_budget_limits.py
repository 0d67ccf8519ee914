"""The server's budget (issue 11, spec 14.1): bytes held per connection and for the whole
server, connections, sessions per connection and per server (``-k limit``).

Attacks come from raw HTTP/2 clients (and libchan's Go-profile client); a well-behaved
session established before the attack keeps working after it; the accounting returns to
zero once everything closed (no drift). Budgets are a few MiB so the tests run fast.
"""

from __future__ import annotations

import gc
import logging

import cbor2
import h2.events
import pytest
import trio

import libchan
from libchan.engine.budget import Budget
from libchan.messages.framing import encode_frame, frame_header
from helpers import served
from rawh2 import RawH2Client

MiB = 1024 * 1024
KiB = 1024


def _budgets() -> set[int]:
    gc.collect()
    return {id(o) for o in gc.get_objects() if type(o) is Budget}


def _new_budget(before: set[int]) -> Budget:
    found = [o for o in gc.get_objects() if type(o) is Budget and id(o) not in before]
    assert len(found) == 1, found
    return found[0]


async def _drained(budget: Budget) -> None:
    """Wait until nothing is charged any more (what is left is a leak or drift)."""
    for _ in range(500):
        gc.collect()
        if budget.used == 0 and budget.connections == 0:
            return
        await trio.sleep(0.01)
    raise AssertionError(f"the budget still holds {budget.used} bytes, {budget.connections} connections")


def _host_port(url: str) -> tuple[str, int]:
    host, port = url[len("tcp://"):].rsplit(":", 1)
    return host, int(port)


class Handler:
    """Echoes ``{"n", "reply"}`` messages; a channel whose first message is "hold" is
    not read any more (its data stays unread); partial messages never complete."""

    async def __call__(self, session: libchan.Session) -> None:
        try:
            async with trio.open_nursery() as nursery:
                async for receiver in session:
                    nursery.start_soon(self._serve, session, receiver)
        except (libchan.SessionClosedError, trio.BrokenResourceError, libchan.ProtocolError):
            pass

    async def _serve(self, session: libchan.Session, receiver) -> None:
        try:
            async for msg in receiver:
                if msg == "hold":
                    while not session.closed:  # holds what it does not read, as long as it lives
                        await trio.sleep(0.02)
                    return
                if isinstance(msg, dict) and "reply" in msg:
                    await msg["reply"].send(msg["n"] + 1)
                    await msg["reply"].aclose()
        except (libchan.SessionClosedError, trio.BrokenResourceError, libchan.ProtocolError, trio.ClosedResourceError):
            pass


async def _round_trip(session: libchan.Session, n: int) -> None:
    sender = await session.open_sender()
    reply, replies = libchan.pipe()
    await sender.send({"n": n, "reply": reply})
    assert await replies.receive() == n + 1
    await sender.aclose()


async def _attacker(host: str, port: int, window: int) -> RawH2Client:
    """A raw client that has the server's SETTINGS and at least ``window`` bytes of
    connection window."""
    client = await RawH2Client.open(host, port)
    while client.conn.outbound_flow_control_window < window:
        await client.pump()
    return client


async def _send(client: RawH2Client, sid: int, data: bytes) -> None:
    for i in range(0, len(data), 16 * KiB):
        client.conn.send_data(sid, data[i : i + 16 * KiB])
    await client.flush()


async def _goaway(client: RawH2Client) -> int:
    ev = await client.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
    return int(ev.error_code)


async def _alive(client: RawH2Client) -> None:
    """The connection still answers a PING."""
    client.events.clear()
    client.conn.ping(b"budget!!")
    await client.flush()
    await client.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived))


def _budget_config(**kw) -> libchan.Config:
    # (the connections may hold half of server_buffer together: 4 MiB)
    return libchan.Config(server_buffer=8 * MiB, connection_buffer=4 * MiB, **kw)


async def _greediest_goes(tmp_path, caplog, attack) -> None:
    """Six raw connections each make the server hold ``attack(client, n)`` bytes, the
    first the most; together over server_buffer: that one gets GOAWAY(11), the others
    and a well-behaved session go on, and the accounting drains to zero."""
    before = _budgets()
    caplog.set_level(logging.WARNING, logger="libchan")
    with trio.fail_after(20):
        async with served("tcp", Handler(), tmp_path, _budget_config()) as (url, _):
            budget = _new_budget(before)
            host, port = _host_port(url)
            async with libchan.connect(url) as good:
                await _round_trip(good, 1)
                clients = []
                for i in range(6):
                    client = await _attacker(host, port, 1300 * KiB)
                    await attack(client, 1200 * KiB if i == 0 else 640 * KiB)
                    clients.append(client)
                assert await _goaway(clients[0]) == 11  # ENHANCE_YOUR_CALM
                for client in clients[1:]:
                    await _alive(client)
                assert budget.used <= budget.total
                await _round_trip(good, 2)  # established, well-behaved: goes on
            lines = [r.getMessage() for r in caplog.records if "ENHANCE_YOUR_CALM" in r.getMessage()]
            assert len(lines) == 1 and "server_buffer" in lines[0], lines
            async with libchan.connect(url) as late:  # and new sessions are welcome
                await _round_trip(late, 3)
            for client in clients:
                await client.aclose()
            await _drained(budget)


async def test_limit_server_buffer_partial_messages_greediest_goaway(tmp_path, caplog):
    async def partial(client: RawH2Client, size: int) -> None:
        sid = await client.request("/", b"", end=False)  # anonymous: one session each
        await _send(client, sid, frame_header(4 * MiB) + b"\0" * size)  # never completes

    await _greediest_goes(tmp_path, caplog, partial)


async def test_limit_server_buffer_unread_messages_greediest_goaway(tmp_path, caplog):
    async def unread(client: RawH2Client, size: int) -> None:
        sid = await client.request("/", encode_frame(cbor2.dumps("hold")), end=False)
        await _send(client, sid, encode_frame(cbor2.dumps(b"u" * (64 * KiB))) * (size // (64 * KiB)))

    await _greediest_goes(tmp_path, caplog, unread)


async def test_limit_connection_buffer_queued_output_to_a_peer_that_does_not_read(tmp_path):
    """A client that never grants window while the server's handler sends on three
    channels: the queued bytes exceed connection_buffer, the connection ends with
    GOAWAY(11) and the accounting drains."""
    config = libchan.Config(connection_buffer=512 * KiB, server_buffer=4 * MiB)
    sent = trio.Event()

    async def handler(session: libchan.Session) -> None:
        async def flood(sender) -> None:
            try:
                while True:
                    await sender.send(b"q" * (64 * KiB))
                    sent.set()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        try:
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(flood, await session.open_sender())
        except (libchan.SessionClosedError, trio.BrokenResourceError):
            pass

    before = _budgets()
    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            budget = _new_budget(before)
            client = await RawH2Client.open(*_host_port(url))
            session = [("libchan-session", "deaf")]
            await client.request("/libchan/v1/session", b"", session, end=False)
            for _ in range(3):
                await client.request("/libchan/v1/park", b"", session, end=False)
            code = None
            while code is None:  # read, never acknowledge: the windows stay shut
                data = await client.stream.receive_some(65536)
                assert data, "closed without GOAWAY"
                for ev in client.conn.receive_data(data):
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        code = ev.error_code if code is None else code
                await client.flush()
            assert code == 11 and sent.is_set()
            assert any("connection_buffer" in e for e in budget.ended), budget.ended
            await client.aclose()
            await _drained(budget)


async def test_limit_connection_buffer_window_withheld_not_goaway(tmp_path):
    """A well-behaved peer is slowed, not ended: with connection_buffer 2 MiB the
    connection is granted 1 MiB of window and no more while it holds more than 1 MiB
    unread; a libchan client sending 6 MiB to a reader that starts late is never
    ended, and everything arrives."""
    config = libchan.Config(connection_buffer=2 * MiB, server_buffer=4 * MiB, stream_window=4 * MiB)
    got: list[int] = []
    start = trio.Event()

    async def handler(session: libchan.Session) -> None:
        async for receiver in session:
            await start.wait()
            async for msg in receiver:
                got.append(len(msg))
            return

    before = _budgets()
    with trio.fail_after(20):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            budget = _new_budget(before)
            async with libchan.connect(url) as session:
                sender = await session.open_sender()
                sent = 0
                with trio.move_on_after(0.5):  # (the sender blocks: backpressure)
                    while sent < 96:
                        await sender.send(b"w" * (64 * KiB))
                        sent += 1
                assert sent < 96, "no backpressure"
                assert budget.used <= 2 * MiB and not budget.ended, (budget.used, budget.ended)
                start.set()
                for _ in range(96 - sent):
                    await sender.send(b"w" * (64 * KiB))
                await sender.aclose()
                while len(got) < 96:
                    await trio.sleep(0.01)
            assert not budget.ended
            await _drained(budget)


async def test_limit_server_buffer_go_profile_unread_greediest_goes(tmp_path):
    """Go profile (a connection is one session, no flow control): three connections
    leave messages unread; the one holding the most is ended, the others go on."""
    config = libchan.Config(server_buffer=3 * MiB, connection_buffer=3 * MiB)
    before = _budgets()
    with trio.fail_after(20):
        async with served("tcp", Handler(), tmp_path, config) as (url, _):
            budget = _new_budget(before)
            async with libchan.connect(url, profile="spdy") as good:
                await _round_trip(good, 1)
                async with trio.open_nursery() as nursery:
                    sessions = []
                    for size in (1400 * KiB, 900 * KiB, 900 * KiB):
                        s = await nursery.start(_spdy_holder, url, size)
                        sessions.append(s)
                    while not budget.ended:
                        await trio.sleep(0.01)
                    assert len(budget.ended) == 1 and "server_buffer" in budget.ended[0], budget.ended
                    await _round_trip(good, 2)
                    nursery.cancel_scope.cancel()
            await _drained(budget)


async def _spdy_holder(url: str, size: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
    try:
        async with libchan.connect(url, profile="spdy") as session:
            sender = await session.open_sender()
            await sender.send("hold")
            task_status.started(session)
            for _ in range(size // (64 * KiB)):
                await sender.send(b"s" * (64 * KiB))
            await trio.sleep_forever()
    except (libchan.SessionClosedError, trio.BrokenResourceError):
        pass


# -- connections and sessions -----------------------------------------------------------


async def _settled(client: RawH2Client) -> None:
    await client.wait_for(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))


async def test_limit_max_connections_goaway_then_room_again(tmp_path):
    config = libchan.Config(max_connections=2)
    before = _budgets()
    with trio.fail_after(15):
        async with served("tcp", Handler(), tmp_path, config) as (url, _):
            budget = _new_budget(before)
            host, port = _host_port(url)
            first, second = await RawH2Client.open(host, port), await RawH2Client.open(host, port)
            await _settled(first)
            await _settled(second)
            third = await RawH2Client.open(host, port)
            assert await _goaway(third) == 11
            await third.aclose()
            await _alive(first)
            await first.aclose()
            while True:  # once the first one's end was seen, there is room again
                again = await RawH2Client.open(host, port)
                try:
                    await _alive(again)
                    break
                except EOFError:
                    await again.aclose()
            await again.aclose()
            await second.aclose()
            await _drained(budget)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_limit_max_connections_counts_handshakes(tmp_path, caplog, transport):
    """Connections that never finish their TLS handshake (or never send their first
    bytes) count against max_connections: past it a new one is closed at once, not
    after its own handshake; once they go, there is room again."""
    caplog.set_level(logging.WARNING, logger="libchan")
    config = libchan.Config(max_connections=2, handshake_timeout=60)
    with trio.fail_after(20):  # (far below handshake_timeout: the stalled ones stay)
        async with served(transport, Handler(), tmp_path, config) as (url, client_ssl):
            host, port = _host_port(url)
            stalled = [await trio.open_tcp_stream(host, port) for _ in range(2)]
            while True:  # the server has seen both (a connection it refused reads EOF)
                third = await trio.open_tcp_stream(host, port)
                if await third.receive_some(100) == b"":
                    break
                await third.aclose()  # (cannot happen: a stalled server sends nothing first)
            await third.aclose()
            lines = [r.getMessage() for r in caplog.records if "in their handshake" in r.getMessage()]
            assert lines and "max_connections (2) reached, 2 of them in their handshake" in lines[0]
            for s in stalled:
                await s.aclose()
            while True:  # once the server saw them go, a real client is served
                try:
                    async with libchan.connect(url, ssl=client_ssl) as session:
                        sender = await session.open_sender()
                        await sender.send("hello")
                        break
                except libchan.ConnectError:
                    await trio.sleep(0.05)


async def _answer(client: RawH2Client, sid: int) -> tuple[str, int]:
    ev = await client.wait_for(
        lambda e: isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset)) and e.stream_id == sid
    )
    if isinstance(ev, h2.events.StreamReset):
        return "reset", int(ev.error_code)
    return "status", int(dict(ev.headers)[":status"])


OK, REFUSED = ("status", 200), ("reset", 7)


async def _control(client: RawH2Client, session: str) -> int:
    return await client.request("/libchan/v1/session", b"", [("libchan-session", session)], end=False)


async def test_limit_max_connection_sessions_refused_stream(tmp_path):
    """Two sessions per connection: a third session's request is refused there, the
    first two sessions go on on it, and another connection may carry the third."""
    config = libchan.Config(max_connection_sessions=2)
    before = _budgets()
    with trio.fail_after(15):
        async with served("tcp", Handler(), tmp_path, config) as (url, _):
            budget = _new_budget(before)
            host, port = _host_port(url)
            client = await RawH2Client.open(host, port)
            assert [await _answer(client, await _control(client, f"s{i}")) for i in range(3)] == [OK, OK, REFUSED]
            assert await _answer(client, await client.request("/", b"", end=False)) == REFUSED  # anonymous too
            headers = [("libchan-session", "s0"), ("libchan-ref", "1"), ("libchan-type", "receiver")]
            assert await _answer(client, await client.request("/libchan/v1/stream", b"", headers, end=False)) == OK
            other = await RawH2Client.open(host, port)
            assert await _answer(other, await _control(other, "s2")) == OK
            await client.aclose()
            await other.aclose()
            await _drained(budget)


async def test_limit_max_sessions_refused_stream_then_room_again(tmp_path):
    """Three sessions per server, over two connections: a fourth (named or anonymous)
    is refused; once a session ended, a new one is accepted."""
    config = libchan.Config(max_sessions=3)
    before = _budgets()
    with trio.fail_after(15):
        async with served("tcp", Handler(), tmp_path, config) as (url, _):
            budget = _new_budget(before)
            host, port = _host_port(url)
            a, b = await RawH2Client.open(host, port), await RawH2Client.open(host, port)
            s0 = await _control(a, "s0")
            assert [await _answer(a, s0), await _answer(a, await _control(a, "s1"))] == [OK, OK]
            assert await _answer(b, await _control(b, "s2")) == OK
            assert await _answer(b, await _control(b, "s3")) == REFUSED
            assert await _answer(b, await b.request("/", b"", end=False)) == REFUSED
            async with libchan.connect(url) as refused:  # our own client: the server refused the session
                with trio.fail_after(5):
                    while not refused.closed:
                        await trio.sleep(0.01)
            a.conn.reset_stream(s0, 8)  # s0 aborted: its handler ends, its place is free
            await a.flush()
            while True:
                answer = await _answer(b, await _control(b, "s3"))
                if answer == OK:
                    break
                await trio.sleep(0.01)
            await a.aclose()
            await b.aclose()
            await _drained(budget)


@pytest.mark.parametrize("held_by", ["multiplexer", "stream"])
async def test_limit_server_buffer_partial_frames_count(tmp_path, caplog, held_by):
    """Partial frames (here up to a 2 MiB DATA frame each, never finished) are charged to
    their connection: six of them pass server_buffer and the greediest goes; a
    well-behaved session goes on; the accounting drains to zero. A padded frame is held by
    the multiplexer until it is whole; a plain one (no flags) goes to its stream as it
    arrives, where the item it begins is held."""
    before = _budgets()
    caplog.set_level(logging.WARNING, logger="libchan")
    config = _budget_config(max_frame_size=2 * MiB)
    with trio.fail_after(20):
        async with served("tcp", Handler(), tmp_path, config) as (url, _):
            budget = _new_budget(before)
            host, port = _host_port(url)
            async with libchan.connect(url) as good:
                await _round_trip(good, 1)
                clients = []
                for i in range(6):
                    client = await _attacker(host, port, 0)
                    sid = await client.request("/", b"", end=False)
                    size = 1800 * KiB if i == 0 else 640 * KiB
                    flags = b"\x08" if held_by == "multiplexer" else b"\x00"  # PADDED, or none
                    # padded: pad length 0; plain: a byte string item as long as the frame
                    start = b"\x00" if held_by == "multiplexer" else b"\x5a" + (2 * MiB - 6).to_bytes(4, "big")
                    header = (2 * MiB - 1).to_bytes(3, "big") + b"\x00" + flags + sid.to_bytes(4, "big")
                    await client.stream.send_all(header + start + b"\0" * size)  # most of one DATA frame
                    clients.append(client)
                assert await _goaway(clients[0]) == 11  # ENHANCE_YOUR_CALM
                assert budget.used <= budget.total
                await _round_trip(good, 2)
            lines = [r.getMessage() for r in caplog.records if "ENHANCE_YOUR_CALM" in r.getMessage()]
            assert len(lines) == 1 and "server_buffer" in lines[0], lines
            for client in clients:
                await client.aclose()
            await _drained(budget)


def test_limit_server_buffer_reserve():
    """What a server's connections may hold together: half of server_buffer, as Config
    and spec 14.1 document it; a connection's own limit is at most that much too."""
    from libchan.engine.budget import Budget, held_limit

    assert held_limit(256 * MiB) == 128 * MiB  # the default
    b = Budget(server_buffer=8 * MiB, per_connection=128 * MiB, connection_window=1 * MiB, max_connections=4)
    assert b.total == 4 * MiB and b.per_connection == 4 * MiB


async def test_limit_server_buffer_unread_items_of_ended_connections_go_first(tmp_path, caplog):
    """Clients that send and go away, to a handler that keeps its receivers without
    reading them: what the ended connections hold stays readable, until the server holds
    over its limit; then the largest of those goes (its reader gets an error saying so)
    rather than a live connection, and the budget stays bounded."""
    caplog.set_level(logging.WARNING, logger="libchan")
    before = _budgets()
    kept: list = []

    async def handler(session: libchan.Session) -> None:
        try:
            async for receiver in session:
                kept.append(receiver)  # (not read: kept beyond the session)
        except (libchan.SessionClosedError, trio.BrokenResourceError):
            pass

    chunk, count = b"x" * (64 * KiB), 24  # 1.5 MiB per client; three of them: over 4 MiB
    with trio.fail_after(30):
        async with served("tcp", handler, tmp_path, _budget_config(stream_window=4 * MiB)) as (url, _):
            budget = _new_budget(before)
            for i in range(3):
                async with libchan.connect(url) as session:
                    sender = await session.open_sender()
                    for _ in range(count):
                        await sender.send(chunk)
                    await sender.aclose()
                while len(kept) < i + 1 or budget.connections:  # the server saw it all, and the end
                    await trio.sleep(0.01)
                assert budget.used <= budget.total
            first, second, third = kept
            with pytest.raises(trio.BrokenResourceError, match="unread bytes were dropped"):
                async for _ in first:
                    pass
            for receiver in (second, third):
                assert [len(m) async for m in receiver] == [len(chunk)] * count
            lines = [r.getMessage() for r in caplog.records if "dropping the unread items" in r.getMessage()]
            assert len(lines) == 1, lines
            kept.clear()
            del first, second, third, receiver
            await _drained(budget)
