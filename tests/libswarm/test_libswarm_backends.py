"""Each backend, the registry, Task/Tree and chains (real processes for exec)."""

from __future__ import annotations

import io
import json
import sys

import pytest
import trio

import libchan
import libswarm
from libswarm import RemoteError, Verb, backends
from swarm_helpers import stdio


def test_registry():
    assert backends.available() == [
        "aggregate", "connect", "debug", "dockerclient", "dockerserver", "exec", "fakeclient", "listen", "policy", "simulator", "swarmmode"
    ]
    with pytest.raises(backends.UnknownBackendError):
        backends.get("nope")
    assert isinstance(backends.from_spec("simulator a b"), backends.get("simulator"))
    for bad in ["", "exec", "fakeclient x", "aggregate", "simulator 'bad name'"]:
        with pytest.raises(libswarm.UsageError):
            backends.from_spec(bad)


async def _wait_exit(c: libswarm.Client) -> dict:
    changes = await c.watch()
    async with changes:
        async for m in changes:
            state = json.loads(m.args[1])
            if m.args[0] in ("state", "die") and state["State"]["Status"] == "exited":
                return state
    raise AssertionError("no exit")


async def test_simulator_engine():
    with trio.fail_after(10):
        async with libswarm.open_service(backends.get("simulator")("old")) as (engine, _):
            events = await engine.watch()
            assert await engine.ls() == ["old"]
            web = await engine.spawn(json.dumps({"name": "web", "Image": "busybox", "Cmd": ["sh", "-c", "echo hi; echo oops >&2; exit 3"]}))
            with pytest.raises(RemoteError, match='Conflict. The name "/web" is already in use'):
                await engine.spawn(json.dumps({"name": "web", "Cmd": ["true"]}))
            anon = await engine.spawn("echo", "-n", "plain")
            assert await engine.ls() == ["old", "web", "sim-1"]
            info = json.loads(await web.get())
            assert info["Name"] == "/web" and len(info["Id"]) == 64 and info["State"]["Status"] == "created"
            assert info["Path"] == "sh" and info["Config"]["Image"] == "busybox"
            # attach before start: nothing is lost, stdout and stderr kept apart, the stream ends at exit
            _, out = await web.attach("")
            await web.start()
            assert stdio(await out.collect()) == {"stdout": b"hi\n", "stderr": b"oops\n"}
            state = await _wait_exit(web)
            assert state["State"]["ExitCode"] == 3 and not state["State"]["Running"]
            assert state["State"]["FinishedAt"] != "0001-01-01T00:00:00Z"
            assert await web.get("stdout") == b"hi\n" and await web.get("stderr") == b"oops\n"
            # logs replay after the fact
            _, out = await web.attach("", "logs")
            assert stdio(await out.collect()) == {"stdout": b"hi\n", "stderr": b"oops\n"}
            # navigation by name, /name, id and id prefix
            for ref in ("web", "/web", info["Id"], info["Id"][:12]):
                assert json.loads(await (await engine.child(ref)).get())["Id"] == info["Id"]
            with pytest.raises(RemoteError, match="no such container: ghost"):
                await engine.attach("ghost")
            await anon.start()
            assert (await _wait_exit(anon))["State"]["ExitCode"] == 0
            assert await anon.get("stdout") == b"plain"
            # engine info and events
            info = json.loads(await engine.get())
            assert info["Driver"] == "simulator" and info["Containers"] == 3
            seen = []
            async for m in events:
                seen.append((m.args[0], json.loads(m.args[1])["Name"]))
                if len(seen) == 6:
                    break
            assert seen == [("create", "/web"), ("create", "/sim-1"), ("start", "/web"), ("die", "/web"), ("start", "/sim-1"), ("die", "/sim-1")]
            await events.aclose()


@pytest.mark.parametrize(
    "cmd,code,out,err",
    [
        (["true"], 0, b"", b""),
        (["false"], 1, b"", b""),
        (["/bin/echo", "a", "b"], 0, b"a b\n", b""),
        (["sh", "-c", "exit 42"], 42, b"", b""),
        (["sh", "-c", "echo x; false"], 1, b"x\n", b""),
        (["sh", "-c", "nope; echo after"], 0, b"after\n", b"sh: nope: not found\n"),
        (["cat", "missing"], 1, b"", b"cat: missing: No such file or directory\n"),
        (["sleep", "0.01"], 0, b"", b""),
        (["sleep", "x"], 1, b"", b"sleep: invalid number 'x'\n"),
    ],
)
async def test_simulated_commands(cmd, code, out, err):
    with trio.fail_after(10):
        async with libswarm.open_service(backends.get("simulator")()) as (engine, _):
            c = await engine.spawn(json.dumps({"Cmd": cmd}))
            await c.start()
            state = await _wait_exit(c)
            assert state["State"]["ExitCode"] == code
            assert (await c.get("stdout"), await c.get("stderr")) == (out, err)


async def test_simulator_stdin_stop_and_errors():
    with trio.fail_after(10):
        async with libswarm.open_service(backends.get("simulator")()) as (engine, _):
            cat = await engine.spawn(json.dumps({"name": "cat", "Cmd": ["cat"], "OpenStdin": True}))
            stdin, out = await cat.attach("")
            await cat.start()
            with pytest.raises(RemoteError, match="already running"):
                await cat.start()
            await stdin.log(b"abc")
            assert (await out.receive()).args == ("stdout", b"abc")
            await stdin.log("stdin", "def")
            await stdin.aclose()  # StdinOnce: the end of stdin
            assert stdio(await out.collect()) == {"stdout": b"def"}
            assert (await _wait_exit(cat))["State"]["ExitCode"] == 0
            # sleep + stop -> 137; restart works
            s = await engine.spawn(json.dumps({"Cmd": ["sleep", "100"]}))
            await s.start()
            assert json.loads(await s.get())["State"]["Running"]
            await s.stop()
            st = json.loads(await s.get())["State"]
            assert (st["Status"], st["ExitCode"]) == ("exited", 137)
            await s.stop()  # not running: a no-op
            # unknown command: Docker's error and 127
            bad = await engine.spawn(json.dumps({"Cmd": ["frobnicate"]}))
            with pytest.raises(RemoteError) as info:
                await bad.start()
            assert info.value.text == 'exec: "frobnicate": executable file not found in $PATH'
            assert json.loads(await bad.get())["State"]["ExitCode"] == 127
            with pytest.raises(RemoteError, match="invalid container config"):
                await engine.spawn("{not json")


async def test_exec_process():
    with trio.fail_after(10):
        svc = backends.from_spec(f"exec {sys.executable} -c 'import sys; print(\"out\"); print(\"err\", file=sys.stderr); sys.exit(5)'")
        async with libswarm.open_service(svc) as (proc, output):
            msgs = await output.collect()
            assert stdio(msgs) == {"stdout": b"out\n", "stderr": b"err\n", "exit": b"5"}
            st = json.loads(await proc.get())["State"]
            assert (st["Status"], st["ExitCode"]) == ("exited", 5)
            assert await proc.ls() == []


async def test_exec_stdin_and_stop():
    with trio.fail_after(10):
        async with libswarm.open_service(backends.get("exec")("cat")) as (proc, output):
            await proc.log("stdin", b"hello ")
            await proc.log(b"world")
            await proc.aclose()  # input end -> stdin end -> cat exits
            assert stdio(await output.collect()) == {"stdout": b"hello world", "exit": b"0"}
        svc = backends.get("exec")(json.dumps({"Path": "sleep", "Args": ["100"]}))
        async with libswarm.open_service(svc) as (proc, output):
            while not (st := json.loads(await proc.get())["State"])["Pid"]:
                await trio.sleep(0.01)
            assert st["Running"]
            await proc.stop()
            assert json.loads(await proc.get())["State"]["ExitCode"] == 143  # SIGTERM
            assert stdio(await output.collect()) == {"exit": b"143"}


async def test_exec_missing_binary():
    async with libswarm.open_service(backends.get("exec")("/no/such/binary")) as (proc, output):
        m = await output.receive()
        assert m.verb is Verb.Error and "executable file not found" in m.text
        assert json.loads(await proc.get())["State"]["ExitCode"] == 127


async def test_debug_forwards_and_prints():
    buf = io.StringIO()
    dbg = backends.get("debug")("tap")
    dbg.file = buf
    other = backends.get("debug")()
    assert other.count == 0 and other.label == "debug"  # per-instance state
    with trio.fail_after(10):
        in_s, in_r = libchan.pipe()
        out_s, out_r = libchan.pipe()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(libswarm.chain, [dbg, backends.get("simulator")("x")], in_r, out_s)
            c = libswarm.Client(in_s)
            assert await c.ls() == ["x"]
            x = await c.child("x")  # the handle in the Ack is passed on intact
            assert json.loads(await x.get())["Name"] == "/x"
            with pytest.raises(RemoteError, match="no such container: y"):
                await c.attach("y")
            await c.log("one-way")
            await in_s.aclose()
    text = buf.getvalue()
    assert "[tap] ---> Outbound Message ---> { Verb: Ls, Args: [] }" in text
    assert "[tap] <--- Inbound Message <--- { Verb: Set, Args: [x] }" in text
    assert "{ Verb: Error, Args: [no such container: y] }" in text
    assert dbg.count == 4 and other.count == 0


async def test_fakeclient():
    with trio.fail_after(5):
        async with libswarm.open_service(backends.get("fakeclient")("0.01")) as (fc, output):
            assert (await output.receive()).args == ("fake client starting",)
            assert (await output.receive()).args == ("fake client heartbeat!",)
            with pytest.raises(RemoteError, match="not implemented: Ls"):
                await fc.ls()


async def test_task_attach_before_start():
    async def body(input, output):
        await output.send(libswarm.Message(Verb.Log, ("started",)).to_wire())
        async for raw in input:
            await output.send(raw)

    with trio.fail_after(5):
        async with libswarm.Task(body) as task:
            t = libswarm.Client(task.sender())
            inp, out = await t.attach("")
            with pytest.raises(RemoteError, match="already attached"):
                await t.attach("")
            await t.start()
            with pytest.raises(RemoteError, match="already running"):
                await t.start()
            assert (await out.receive()).args == ("started",)
            await inp.log("echo")
            assert (await out.receive()).args == ("echo",)
            await inp.aclose()
            assert await out.collect() == []  # the output ends when the task returns
            await task.done.wait()


async def test_backend_object_model():
    """The Go model: Spawn a backend via a Task, Attach("") before Start, then talk to its input."""
    with trio.fail_after(5):
        async with libswarm.Tree("backends") as tree:
            for name in backends.available():
                async def spawn(*args, _name=name):
                    task = libswarm.Task(backends.get(_name)(*args))
                    await tree.nursery.start(task.run)
                    return task
                tree.bind(name, libswarm.Server(name).on_spawn(spawn))
            root = libswarm.Client(tree.sender())
            assert await root.ls() == backends.available()
            factory = await root.child("simulator")
            inst = await factory.spawn("a", "b")
            engine, output = await inst.attach("")
            await inst.start()
            assert await engine.ls() == ["a", "b"]
            await engine.aclose()
            assert await output.collect() == []


async def test_exec_stdin_handle_answers_every_verb():
    """Attach(name) on exec gives the stdin handle; a verb it does not take gets an Error, not a hang."""
    with trio.fail_after(10):
        svc = backends.get("exec")(json.dumps({"Path": "sleep", "Args": ["100"]}))
        async with libswarm.open_service(svc) as (proc, output):
            handle, _attached = await proc.attach("")
            with pytest.raises(libswarm.RemoteError, match="not implemented: Stop"):
                await handle.stop()
            await proc.stop()
