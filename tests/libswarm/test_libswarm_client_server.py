"""Every verb and convention of Client/Server, over a pipe and over TCP/TLS sessions in both profiles."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

import libchan
import libswarm
from libswarm import Message, RemoteError, Verb
from swarm_helpers import WIRE_IDS, WIRES, connected


def make_server(record: dict) -> libswarm.Server:
    """An object that implements every verb, recording one-way messages in ``record``."""
    child = libswarm.Server("child").on_get(lambda *a: _const("child state"))
    srv = libswarm.Tree("root").bind("kid", child)
    events = trio.Event()

    async def spawn(*args):
        obj = libswarm.Server("spawned")
        obj.on_get(lambda *a: _const(json.dumps({"args": list(args)})))
        await srv.nursery.start(obj.run)
        return obj

    async def attach(name, req):
        if name:
            return await libswarm.Tree._attach(srv, name, req)
        inbox_s, inbox_r = libchan.pipe()
        await req.ack(inbox_s)
        async for raw in inbox_r:  # echo the input to the output, then end
            m = Message.from_wire(raw)
            await req.log("stdout", m.args[-1])
        await req.log("stderr", b"bye")

    async def start(*args):
        record["started"] = args

    async def stop(*args):
        if args == ("fail",):
            raise RuntimeError("cannot stop: 100% busy")
        record["stopped"] = True

    async def watch(req):
        await req.ack()
        for i in range(3):
            await req.set("tick", str(i))

    async def connect(*args):
        a, b = libchan.stream_pipe()

        async def echo():
            async with a:
                while data := await a.receive_some():
                    await a.send_all(data.upper())

        srv.nursery.start_soon(echo)
        return b

    async def one_way(verb):
        async def h(*args):
            record.setdefault(verb, []).append(args)
            if len(record[verb]) == 1 and verb == "log":
                events.set()
        return h

    async def silent(req):  # closes the reply with no answer
        pass

    async def hang(req):
        await trio.sleep_forever()

    srv.on_spawn(spawn).on_attach(attach).on_start(start).on_stop(stop).on_watch(watch).on_connect(connect)
    srv.on_get(lambda *a: _const("root state" if not a else {"asked": list(a)}))
    record["_one_way"] = one_way
    record["_silent"], record["_hang"] = silent, hang
    return srv


async def _const(v):
    return v


@pytest.mark.slow
@pytest.mark.parametrize("transport,profile", WIRES, ids=WIRE_IDS)
async def test_every_verb(transport, profile, tmp_path):
    record: dict = {}
    srv = make_server(record)
    srv.on_log(await record["_one_way"]("log")).on_error(await record["_one_way"]("error"))
    srv.on_set(await record["_one_way"]("set"))
    with trio.fail_after(20):
        await _every_verb(transport, profile, tmp_path, srv, record)


async def _every_verb(transport, profile, tmp_path, srv, record):
    async with connected(transport, profile, tmp_path, srv) as obj:
        # Ls (Tree): Set of sorted names
        assert await obj.ls() == ["kid"]
        # Get: Set with one value; JSON for dicts
        assert await obj.get() == "root state"
        assert json.loads(await obj.get("a", "b")) == {"asked": ["a", "b"]}
        # Spawn: the Ack carries a working object
        new = await obj.spawn("x", "y")
        assert json.loads(await new.get()) == {"args": ["x", "y"]}
        await new.aclose()
        # Attach(name): navigation to a child
        kid = await obj.child("kid")
        assert await kid.get() == "child state"
        with pytest.raises(RemoteError) as info:
            await obj.attach("nobody")
        assert info.value.text == "not found: nobody"
        # Attach(""): input handle + output stream until it ends
        handle, output = await obj.attach("")
        await handle.log("stdin", b"one")
        assert (await output.receive()).args == ("stdout", b"one")
        await handle.log(b"two")
        await handle.aclose()
        got = await output.collect()
        assert [m.args for m in got] == [("stdout", b"two"), ("stderr", b"bye")]
        # Start / Stop: Ack; a handler error becomes a RemoteError with the text verbatim
        await obj.start("now")
        await obj.stop()
        assert record["started"] == ("now",) and record["stopped"]
        with pytest.raises(RemoteError) as info:
            await obj.stop("fail")
        assert info.value.text == "cannot stop: 100% busy" and info.value.verb is Verb.Stop
        # Watch: Ack then a stream of changes
        changes = await obj.watch()
        assert [m.args for m in await changes.collect()] == [("tick", "0"), ("tick", "1"), ("tick", "2")]
        # Connect: a byte stream attached to the answer
        stream = await obj.connect()
        await stream.send_all(b"hello")
        assert await stream.receive_some() == b"HELLO"
        await stream.aclose()
        # One-way Log / Error / Set
        await obj.log("a line")
        await obj.error("bad thing")
        await obj.set("k", "v")
        with trio.fail_after(5):
            while len(record.get("set", [])) < 1 or len(record.get("error", [])) < 1 or len(record.get("log", [])) < 1:
                await trio.sleep(0.01)
        assert record["log"] == [("a line",)] and record["error"] == [("bad thing",)] and record["set"] == [("k", "v")]
        # unhandled verb
        with pytest.raises(RemoteError) as info:
            await obj.call(Verb.File)
        assert info.value.text == "not implemented: File"
        # a reply channel closed with no answer: NoReplyError, not a hang
        srv.on(Verb.Watch, record["_silent"])
        with pytest.raises(libswarm.NoReplyError):
            await obj.watch()
        # an object that never answers: the Client timeout bounds the wait
        srv.on(Verb.Ls, record["_hang"])
        obj.timeout = 0.2
        with pytest.raises(libswarm.ReplyTimeoutError):
            await obj.ls()


async def test_unreachable_and_unexpected():
    s, r = libchan.pipe()
    await r.aclose()
    with pytest.raises(libswarm.UnreachableError):
        await libswarm.Client(s).ls()
    # an object answering with the wrong verb
    srv = libswarm.Server().on(Verb.Ls, lambda req: req.ack())
    srv.on(Verb.Get, lambda req: req.set("a", "b"))
    async with srv:
        c = libswarm.Client(srv.sender())
        with pytest.raises(libswarm.UnexpectedReplyError):
            await c.ls()
        with pytest.raises(libswarm.UnexpectedReplyError):
            await c.get()


async def test_bad_message_gets_an_error_reply():
    srv = libswarm.Server()
    async with srv:
        h = srv.sender()
        ret, replies = libchan.pipe()
        await h.send({"Verb": 77, "Args": [], "Ret": ret})
        m = Message.from_wire(await replies.receive())
        assert m.verb is Verb.Error and "unrecognised verb" in m.text
        with pytest.raises(trio.EndOfChannel):
            await replies.receive()


async def test_concurrency_is_bounded():
    running = 0
    peak = 0
    gate = trio.Event()

    async def slow(req):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        await req.ack()

    srv = libswarm.Server(max_concurrency=2).on(Verb.Start, slow)
    async with srv, trio.open_nursery() as nursery:
        c = libswarm.Client(srv.sender())
        for _ in range(5):
            nursery.start_soon(c.start)
        await trio.sleep(0.1)
        assert running == 2
        gate.set()
    assert peak == 2


async def test_server_stop_answers_a_caller_outside():
    async def hang(req):
        await trio.sleep_forever()

    srv = libswarm.Server().on(Verb.Get, hang)
    async with trio.open_nursery() as outer:
        inner = trio.CancelScope()

        async def run_server(task_status=trio.TASK_STATUS_IGNORED):
            with inner:
                await srv.run(task_status=task_status)

        await outer.start(run_server)
        c = libswarm.Client(srv.sender())
        outer.start_soon(lambda: _cancel_later(inner))
        with trio.fail_after(5):
            with pytest.raises(RemoteError) as info:
                await c.get()
        assert info.value.text == "Get: interrupted: server stopped"
        # and the handle is dead now
        with pytest.raises((libswarm.UnreachableError, libswarm.NoReplyError)):
            await c.get()


async def _cancel_later(scope):
    await trio.sleep(0.05)
    scope.cancel()


async def test_fresh_handle_answers_the_first_plain_get_only():
    """``Server.fresh_handle``: the first request, when it is ``Get()``, gets the state given;
    every later request (and a first one that is not a plain ``Get()``) goes to the handler,
    and the handle is bound to the identity like any handle an answer gives out."""
    asked = []

    async def get(req):
        asked.append((tuple(req.args), req.identity))
        await req.set("live")

    alice = libswarm.Identity(transport="unix", uid=1000)
    srv = libswarm.Server().on(Verb.Get, get)
    async with srv:
        c = libswarm.Client(srv.fresh_handle(alice, "looked up"))
        assert await c.get() == "looked up"
        assert asked == []
        assert await c.get() == "live"
        assert asked == [((), alice)]
        asked.clear()
        c2 = libswarm.Client(srv.fresh_handle(alice, "looked up"))
        assert await c2.get("stats") == "live"  # not a plain Get(): the state is dropped
        assert await c2.get() == "live"
        assert [a for a, _ in asked] == [("stats",), ()]


async def test_a_server_is_in_use_while_a_handle_or_a_served_receiver_is_open():
    """``Server.in_use`` (what lets dockerclient forget a container's object): true from the
    moment a handle is made (before its task runs) until it is closed and its requests are
    done, and while ``serve(receiver)`` runs; the three kinds of handle count alike."""
    release = trio.Event()

    async def get(req):
        await release.wait()
        await req.set("done")

    alice = libswarm.Identity(transport="unix", uid=1000)
    srv = libswarm.Server().on(Verb.Get, get)
    async with srv:
        assert not srv.in_use
        for make in (srv.sender, lambda: srv.fresh_handle(alice, "state"), lambda: srv._bound_sender(alice)):
            handle = make()
            assert srv.in_use  # (its task has not run yet)
            await trio.testing.wait_all_tasks_blocked()
            assert srv.in_use
            await handle.aclose()
            await trio.testing.wait_all_tasks_blocked()
            assert not srv.in_use
        c = libswarm.Client(srv.sender())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.get, "x")
            await trio.testing.wait_all_tasks_blocked()
            await c.aclose()  # the handle closed, its request still running
            await trio.testing.wait_all_tasks_blocked()
            assert srv.in_use
            release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert not srv.in_use
        send, recv = libchan.pipe()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(srv.serve, recv)
            await trio.testing.wait_all_tasks_blocked()
            assert srv.in_use
            await send.aclose()
        assert not srv.in_use


async def test_dockerclient_demux_merges_what_has_arrived():
    """Consecutive frames of one stream in what has arrived come out as one payload; a
    frame cut across reads waits for its end; the order of stdout and stderr is kept."""
    from libswarm.backends.dockerclient import demux

    def frame(kind, data):
        return bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data

    reads = [frame(1, b"a\n") + frame(1, b"b\n") + frame(2, b"e\n") + frame(1, b"c\n")[:5],
             frame(1, b"c\n")[5:] + frame(1, b"") + frame(1, b"d\n"), frame(2, b"f\n")]

    async def chunks():
        for r in reads:
            yield r

    got = [x async for x in demux(chunks(), tty=False)]
    assert got == [("stdout", b"a\nb\n"), ("stderr", b"e\n"), ("stdout", b"c\nd\n"), ("stderr", b"f\n")]
    assert b"".join(p for t, p in got if t == "stdout") == b"a\nb\nc\nd\n"


async def test_dockerclient_keeps_a_get_connection_and_survives_its_close(tmp_path):
    """dockerclient's HTTP: a GET answered in full leaves its connection for the next GET;
    a kept connection the engine closed meanwhile is dropped and the GET made on a new one;
    other requests still get a connection of their own."""
    from libswarm.backends.dockerclient import _HTTP

    sock = str(tmp_path / "engine.sock")
    accepted = 0
    close_after_one = True

    async def handle(stream):
        nonlocal accepted
        accepted += 1
        buf = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                body = json.dumps({"seen": line, "connection": accepted}).encode()
                # (decided before the answer goes: once the client has it, the test goes on)
                closing = close_after_one or b"Connection: close" in head
                await stream.send_all(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                if closing:
                    return

    listener_sock = trio.socket.socket(trio.socket.AF_UNIX)
    await listener_sock.bind(sock)
    listener_sock.listen(16)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, [trio.SocketListener(listener_sock)])
        http = _HTTP(f"unix://{sock}", None)
        status, _, first = await http.request("GET", "/containers/a/json")  # pings first: /_ping, then this
        assert status == 200 and json.loads(first)["seen"] == "GET /v1.41/containers/a/json HTTP/1.1"
        assert accepted == 2
        # the engine closed both after one answer: the kept one is dropped, the GET made again
        status, _, again = await http.request("GET", "/containers/a/json")
        assert status == 200 and json.loads(again)["connection"] == 3
        close_after_one = False
        await http.request("GET", "/containers/b/json")
        for _ in range(3):
            _, _, data = await http.request("GET", "/containers/c/json")
        assert json.loads(data)["connection"] == 4 and accepted == 4  # one connection for all four
        status, _, data = await http.request("POST", "/containers/c/start")
        assert accepted == 5  # not on the kept connection
        nursery.cancel_scope.cancel()
