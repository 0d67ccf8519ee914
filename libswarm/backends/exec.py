"""``exec``: run a local process as a container-like object.

Args: ``PATH [ARG...]`` (argv, ``PATH`` looked up in ``$PATH``), or one JSON object
``{"Path": "/bin/x", "Args": ["a", "b"]}`` (``Args`` excludes argv[0]). There is no
leading literal ``exec`` word (the original required one).

As a service, ``run(input, output)`` starts the process at once and:

* emits ``Log("stdout", chunk)`` and ``Log("stderr", chunk)`` on its output as the
  process writes them, then ``Log("exit", "<status>")`` when it exits (a signal N
  gives 128+N, Docker style), and closes the output; if it cannot start,
  ``Error(<reason>)`` (status 127) and the output closes; a restart (``Start``) is
  visible through ``Attach("")``/``Watch``/``Get`` only;
* writes every ``Log(chunk)``/``Log("stdin", chunk)`` arriving on its input to the
  process's stdin, and closes stdin when the input ends;
* answers, on its input, the container verbs (``Get`` -> inspect JSON with
  ``State.ExitCode``/``Pid``, ``Get("stdout"|"stderr")``, ``Stop`` (SIGTERM, then
  SIGKILL after ``stop_timeout`` s), ``Attach("")``, ``Watch``, ``Ls`` -> ``Set()``);
  ``Start`` on a process that exited runs it again;
* returns once its input ended and the process exited.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import trio

from .._container import CommandNotFound, Container, Stdio
from .._errors import RemoteError, UsageError
from .._message import Message
from libchan.closing import aclose_quietly
from .._service import Service
from .._verbs import Verb

__all__ = ["Exec", "run_process"]

STOP_TIMEOUT = 5.0


def parse_args(args: tuple[str, ...]) -> list[str]:
    if not args:
        raise UsageError("exec: usage: exec PATH [ARG...] | exec '{\"Path\": PATH, \"Args\": [ARG...]}'")
    if len(args) == 1 and args[0].lstrip().startswith("{"):
        try:
            cfg = json.loads(args[0])
            path, rest = cfg["Path"], list(cfg.get("Args") or [])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"exec: invalid JSON config: {exc}") from None
        if not isinstance(path, str) or not all(isinstance(a, str) for a in rest):
            raise UsageError("exec: Path and Args must be strings")
        return [path, *rest]
    return list(args)


def resolve(argv: list[str]) -> None:
    path = argv[0]
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not found or os.path.isdir(found):
        raise CommandNotFound(f'exec: "{path}": executable file not found in $PATH')


async def run_process(argv: list[str], stdio: Stdio, stop_timeout: float = STOP_TIMEOUT) -> int:
    """Run ``argv`` with piped stdin/stdout/stderr; return its status (128+N for signal N)."""
    proc = await trio.lowlevel.open_process(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdio.set_pid(proc.pid)

    async def pump(stream: trio.abc.ReceiveStream, tag: str) -> None:
        async with stream:
            while chunk := await stream.receive_some(65536):
                await stdio.write(tag, bytes(chunk))

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            async with proc.stdin:
                while data := await stdio.read():
                    await proc.stdin.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with trio.open_nursery() as outer:
            outer.start_soon(feed)
            async with trio.open_nursery() as n:
                n.start_soon(pump, proc.stdout, "stdout")
                n.start_soon(pump, proc.stderr, "stderr")
            code = await proc.wait()
            outer.cancel_scope.cancel()
    finally:
        if proc.returncode is None:  # stopped (cancelled): SIGTERM, then SIGKILL
            with trio.CancelScope(shield=True):
                proc.terminate()
                with trio.move_on_after(stop_timeout):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            rc = proc.returncode
            assert rc is not None  # waited for above
            stdio.killed_code = 128 - rc if rc < 0 else rc
    return 128 - code if code < 0 else code


class Exec(Service):
    """A local process (see the module docstring)."""

    stop_timeout = STOP_TIMEOUT

    def __init__(self, *args: str) -> None:
        self.argv = parse_args(args)
        self.container = Container(
            name=os.path.basename(self.argv[0]) or "exec",
            config={"Cmd": self.argv, "Image": "", "OpenStdin": True, "StdinOnce": True},
            runner=lambda argv, stdio: run_process(argv, stdio, self.stop_timeout),
            resolve=resolve,
            driver="exec",
        )

    async def run(self, input: Any, output: Any) -> None:
        c = self.container
        async with trio.open_nursery() as nursery:
            await nursery.start(c.server.run)
            relay_done = trio.Event()
            listener = c.listen()

            async def relay() -> None:
                try:
                    async for tag, chunk in listener:
                        await output.send(Message(Verb.Log, (tag, chunk)).to_wire())
                    await output.send(Message(Verb.Log, ("exit", str(c.exit_code))).to_wire())
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                finally:
                    await aclose_quietly(output)  # the output ends with the process
                    relay_done.set()

            try:
                await c.start()
            except RemoteError as exc:
                await listener.aclose()
                relay_done.set()
                try:
                    await output.send(Message(Verb.Error, (exc.text,)).to_wire())
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                await aclose_quietly(output)
            else:
                nursery.start_soon(relay)
            await c.server.serve(input)
            c.close_stdin()
            if c.running:
                await c.exited.wait()
            await relay_done.wait()
            nursery.cancel_scope.cancel()
