"""A Docker-like container object, shared by the ``simulator`` and ``exec`` backends.

A :class:`Container` owns a :class:`~libswarm.Server` answering:

* ``Get()`` -> inspect JSON (Docker's ``/containers/{id}/json`` shape, a subset);
  ``Get("stdout")`` / ``Get("stderr")`` -> everything written so far to that stream (bytes);
* ``Start()`` -> runs the command (``Error`` if running, or if the command does not exist:
  then ``State.ExitCode`` is 127 and ``State.Error`` says why, like Docker);
* ``Stop()`` -> stops it and waits for the exit (``Ack``; a no-op when not running);
* ``Attach("" , ["logs"])`` -> ``Ack(ret=stdin)`` then ``Log("stdout"|"stderr", chunk)``
  messages, live (with ``"logs"``: everything written before first), closing when the
  command exits; the stdin handle takes ``Log(chunk)``/``Log("stdin", chunk)``, and
  closing it ends stdin (Docker's StdinOnce) when ``Config.OpenStdin`` is true. The log
  words of spec/LIBSWARM.md 6.4 shape it as ``docker logs`` does: ``nostream`` (the
  replay only), ``timestamps`` (each line begins with the RFC 3339 time it was written
  and a space), ``tail=N`` (the last N lines of the replay), ``since=T``/``until=T``
  (UNIX seconds: only what was written in that window; ``until`` ends the stream);
* ``Log(chunk)``/``Log("stdin", chunk)`` sent to the container itself -> written to stdin;
* ``Watch()`` -> ``Ack``, ``Set("state", <inspect JSON>)`` at once, then
  ``Set("start"|"die", <inspect JSON>)`` on each change;
* ``Ls()`` -> ``Set()`` (a container has no children).
"""

from __future__ import annotations

import datetime
import json
import math
import secrets
import time
from typing import Any, Awaitable, Callable

import trio

import libchan

from ._errors import RemoteError
from ._message import Message
from ._server import Request, Server
from ._verbs import Verb

__all__ = ["Container", "Stdio", "CommandNotFound", "LogOptions", "ZERO_TIME", "now", "rfc3339_nano"]

ZERO_TIME = "0001-01-01T00:00:00Z"


async def _answer_error(ret: Any, text: str) -> None:
    try:
        await ret.send(Message(Verb.Error, (text,)).to_wire())
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    with trio.CancelScope(shield=True):
        try:
            await ret.aclose()
        except Exception:  # noqa: BLE001
            pass


def now() -> str:
    """The current UTC time in Docker's RFC 3339 form."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def rfc3339_nano(t: float) -> str:
    """``t`` (seconds since the epoch) as Docker's log timestamps: RFC 3339, 9 fraction digits, UTC."""
    ns = int(round(t * 1e9))
    base = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


class LogOptions:
    """The log words of an ``Attach`` (spec/LIBSWARM.md 6.4): which captured output to
    replay, and how (``docker logs --tail/--since/--until/--timestamps``)."""

    def __init__(self, words: list[str]) -> None:
        opts = {k: v for k, _, v in (w.partition("=") for w in words)}
        self.timestamps = "timestamps" in opts
        self.nostream = "nostream" in opts
        self.tail: int | None = None
        if opts.get("tail", "").isdigit():
            self.tail = int(opts["tail"])
        self.since = _seconds(opts.get("since"))
        self.until = _seconds(opts.get("until"))

    def select(self, chunks: list[tuple[str, bytes, float]]) -> list[tuple[str, bytes, float]]:
        """The chunks to replay: the last ``tail`` lines (over both streams), then those
        written within ``since``/``until``."""
        if self.tail is not None:
            lines = [(tag, line, t) for tag, data, t in chunks for line in data.splitlines(keepends=True)]
            chunks = lines[len(lines) - self.tail:] if self.tail else []
        return [c for c in chunks if (self.since is None or c[2] >= self.since)
                and (self.until is None or c[2] <= self.until)]

    def shape(self, data: bytes, t: float) -> bytes:
        """``data`` as sent: with ``timestamps``, each line begins with its time."""
        if not self.timestamps:
            return data
        stamp = rfc3339_nano(t).encode() + b" "
        return b"".join(stamp + line for line in data.splitlines(keepends=True))


def _seconds(text: str | None) -> float | None:
    """Docker's ``since``/``until`` (``SECONDS[.NANOS]``); absent or 0: no bound."""
    try:
        value = float(text) if text else 0.0
    except ValueError:
        raise RemoteError(f"invalid time value: {text!r}") from None
    return value or None


class CommandNotFound(Exception):
    """Raised by a runner's resolver: the executable does not exist."""


class Stdio:
    """What a runner sees of its container: stdin to read, stdout/stderr to write."""

    def __init__(self, container: "Container", stdin: trio.MemoryReceiveChannel[bytes]) -> None:
        self._c = container
        self._stdin = stdin
        self._pending = b""
        self.killed_code: int | None = None
        """A runner that is stopped may set the exit code to report (default 137)."""

    @property
    def tty(self) -> bool:
        """Whether its stdio is a terminal (``Config.Tty``)."""
        return self._c.tty

    @property
    def tty_size(self) -> tuple[int, int]:
        """The terminal's size (rows, columns); ``(0, 0)`` until one is set."""
        return self._c.tty_size

    def set_pid(self, pid: int) -> None:
        self._c.pid = pid

    async def write(self, tag: str, data: bytes) -> None:
        """Write ``data`` to ``"stdout"`` or ``"stderr"`` (waits while the container is paused)."""
        await self._c.unpaused.wait()
        if data:
            self._c._emit(tag, bytes(data))

    async def read(self) -> bytes:
        """The next chunk of stdin, ``b""`` at its end (waits while the container is paused)."""
        try:
            chunk = await self._stdin.receive()
            await self._c.unpaused.wait()
            return chunk
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return b""


Runner = Callable[[list[str], Stdio], Awaitable[int]]


class Container:
    """One container: configuration, state, captured output and its :attr:`server`.

    ``runner(argv, stdio)`` runs the command and returns its exit status;
    ``resolve(argv)`` (optional) raises :class:`CommandNotFound` before a start.
    Run the object with ``await nursery.start(container.server.run)``.
    """

    def __init__(
        self,
        *,
        name: str,
        config: dict[str, Any],
        runner: Runner,
        resolve: Callable[[list[str]], None] | None = None,
        driver: str = "libswarm",
        on_event: Callable[[str, "Container"], None] | None = None,
    ) -> None:
        self.id = secrets.token_hex(32)
        self.name = name
        self.config = config
        self.cmd: list[str] = list(config.get("Cmd") or [])
        self.driver = driver
        self.created = now()
        self._runner = runner
        self._resolve = resolve
        self._on_event = on_event
        self.status = "created"
        self.exit_code = 0
        self.pid = 0
        self.error = ""
        self.started_at = ZERO_TIME
        self.finished_at = ZERO_TIME
        self.chunks: list[tuple[str, bytes, float]] = []
        """Everything written: ``(tag, data, time.time() when written)``."""
        self._listeners: set[trio.MemorySendChannel[tuple[str, bytes]]] = set()
        self._watchers: set[trio.MemorySendChannel[tuple[str, str]]] = set()
        self._stdin_s: trio.MemorySendChannel[bytes] | None = None
        self._stdio: Stdio | None = None
        self._scope: trio.CancelScope | None = None
        self.exited = trio.Event()
        self.unpaused = trio.Event()
        """Set unless the container is paused: its process's stdio waits on it."""
        self.unpaused.set()
        self.server = Server(f"container {name}")
        self.server.on_attach(self._attach).on_watch(self._watch)
        self.server.on_get(self._get).on_start(self.start).on_stop(self.stop)
        self.server.on_ls(self._ls).on_log(self.write_stdin)

    # -- state --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.status == "running"

    tty_size: tuple[int, int] = (0, 0)
    """Its terminal's size (rows, columns), as ``Set("size", ROWS, COLS)`` gave it (spec/LIBSWARM.md 6.11)."""

    interrupt_kills = True
    """Whether Ctrl-C on its terminal kills it (a container's PID 1 without ``--init`` ignores SIGINT)."""

    @property
    def tty(self) -> bool:
        """``Config.Tty``: one output stream, a terminal's line discipline (see :meth:`write_stdin`)."""
        return bool(self.config.get("Tty"))

    def output(self, tag: str) -> bytes:
        """Everything written so far to ``tag`` (``"stdout"`` or ``"stderr"``)."""
        return b"".join(d for t, d, _ in self.chunks if t == tag)

    def inspect(self) -> dict[str, Any]:
        """Docker-style inspect data."""
        cfg = {
            "Hostname": self.id[:12],
            "Image": self.config.get("Image", ""),
            "Cmd": self.cmd,
            "Env": list(self.config.get("Env") or []),
            "Tty": self.tty,
            "OpenStdin": bool(self.config.get("OpenStdin", False)),
            "StdinOnce": bool(self.config.get("StdinOnce", True)),
            "AttachStdin": bool(self.config.get("AttachStdin", False)),
            "AttachStdout": True,
            "AttachStderr": True,
            "Labels": dict(self.config.get("Labels") or {}),
        }
        return {
            "Id": self.id,
            "Name": "/" + self.name,
            "Created": self.created,
            "Path": self.cmd[0] if self.cmd else "",
            "Args": self.cmd[1:],
            "Image": self.config.get("Image", ""),
            "Config": cfg,
            "State": {
                "Status": self.status,
                "Running": self.running,
                "Paused": False,
                "Restarting": False,
                "Pid": self.pid if self.running else 0,
                "ExitCode": self.exit_code,
                "Error": self.error,
                "StartedAt": self.started_at,
                "FinishedAt": self.finished_at,
            },
            "HostConfig": {},
            "NetworkSettings": {"Ports": {}},
            "Driver": self.driver,
        }

    def _event(self, event: str) -> None:
        data = json.dumps(self.inspect())
        for w in list(self._watchers):
            try:
                w.send_nowait((event, data))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._watchers.discard(w)
        if self._on_event is not None:
            self._on_event(event, self)

    def _emit(self, tag: str, data: bytes) -> None:
        if self.tty:  # a terminal: stderr and stdout are one stream, "\n" is written "\r\n"
            tag, data = "stdout", data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.chunks.append((tag, data, time.time()))
        for q in list(self._listeners):
            try:
                q.send_nowait((tag, data))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._listeners.discard(q)

    # -- verbs --------------------------------------------------------------

    async def _ls(self, *args: Any) -> list[str]:
        return []

    async def _get(self, *args: Any) -> Any:
        if not args:
            return self.inspect()
        if args[0] in ("stdout", "stderr"):
            return self.output(str(args[0]))
        raise RemoteError(f"unknown field: {args[0]!r}")

    async def write_stdin(self, *args: Any) -> None:
        """Write a ``Log`` chunk (``[chunk]`` or ``["stdin", chunk]``) to stdin, if open."""
        if not args:
            return
        data = args[-1]
        if isinstance(data, str):
            data = data.encode()
        if self.tty and self.running:
            self._terminal_input(bytes(data))
            return
        if self._stdin_s is not None:
            try:
                self._stdin_s.send_nowait(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _terminal_input(self, data: bytes) -> None:
        """Stdin through a terminal (Tty): Enter (``\\r``) is ``\\n``, input is echoed,
        Ctrl-C kills with SIGINT (exit 130; see :attr:`interrupt_kills`), Ctrl-D ends stdin."""
        line = bytearray()
        for byte in data:
            if byte == 3:  # ^C
                self._emit("stdout", bytes(line) + b"^C")
                if not self.interrupt_kills:
                    line.clear()
                    continue
                self._emit("stdout", b"\n")
                if self._stdio is not None:
                    self._stdio.killed_code = 130
                if self._scope is not None:
                    self._scope.cancel()
                return
            if byte == 4:  # ^D
                self._send_stdin(bytes(line))
                self._emit("stdout", bytes(line))
                line.clear()
                self.close_stdin()
                return
            line += b"\n" if byte == 13 else bytes([byte])
        self._emit("stdout", bytes(line))
        self._send_stdin(bytes(line))

    def _send_stdin(self, data: bytes) -> None:
        if data and self._stdin_s is not None:
            try:
                self._stdin_s.send_nowait(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def close_stdin(self) -> None:
        """End stdin (the command reads ``b""``)."""
        if self._stdin_s is not None:
            self._stdin_s.close()

    async def start(self, *args: Any) -> None:
        if self.running:
            raise RemoteError(f"container {self.name} is already running")
        if not self.cmd:
            raise RemoteError("no command specified")
        if self._resolve is not None:
            try:
                self._resolve(self.cmd)
            except CommandNotFound as exc:
                self.exit_code = 127
                self.error = str(exc)
                raise RemoteError(str(exc)) from None
        self._stdin_s, stdin_r = trio.open_memory_channel[bytes](math.inf)
        if not self.config.get("OpenStdin", False):
            self._stdin_s.close()
        stdio = Stdio(self, stdin_r)
        self._stdio = stdio
        self.status = "running"
        self.error = ""
        self.exit_code = 0
        self.started_at = now()
        self.finished_at = ZERO_TIME
        self.exited = trio.Event()
        self._scope = trio.CancelScope()
        self.server.nursery.start_soon(self._body, stdio, self._scope)
        self._event("start")

    async def _body(self, stdio: Stdio, scope: trio.CancelScope) -> None:
        code = 0
        try:
            with scope:
                code = await self._runner(list(self.cmd), stdio)
            if scope.cancelled_caught:
                code = stdio.killed_code if stdio.killed_code is not None else 137
        except Exception as exc:  # a runner bug or an OS error: report it like Docker would
            code = 126
            self.error = str(exc) or type(exc).__name__
        finally:
            self.exit_code = code
            self.status = "exited"
            self.pid = 0
            self.finished_at = now()
            for q in list(self._listeners):
                q.close()
            self._listeners.clear()
            self._event("die")
            self.exited.set()

    async def stop(self, *args: Any) -> None:
        if not self.running or self._scope is None:
            await trio.lowlevel.checkpoint()
            return
        self._scope.cancel()
        await self.exited.wait()

    def listen(self) -> trio.MemoryReceiveChannel[tuple[str, bytes]]:
        """A queue of every ``(tag, chunk)`` written from now on; it ends when the command exits."""
        q_s, q_r = trio.open_memory_channel[tuple[str, bytes]](math.inf)
        if self.status == "exited":
            q_s.close()
        else:
            self._listeners.add(q_s)
        return q_r

    def _stdin_handle(self) -> libchan.PipeSender:
        s, r = libchan.pipe()

        async def pump() -> None:
            async with r:
                try:
                    async for raw in r:
                        try:
                            msg = Message.from_wire(raw)
                        except Exception:
                            continue
                        if msg.verb == Verb.Log:
                            await self.write_stdin(*msg.args)
                        elif msg.ret is not None:
                            # Every request gets an answer: this handle only takes stdin.
                            await _answer_error(
                                msg.ret,
                                f"not implemented: {msg.verb.name} (this is the stdin of {self.name};"
                                " send other verbs to the container)",
                            )
                except trio.BrokenResourceError:
                    return  # the holder went away (e.g. its libchan session ended): stdin stays open
            # Docker's StdinOnce ends stdin with the attach, but not through a terminal: there
            # Ctrl-D ends it, and a client that goes (its detach keys) leaves it open
            if self.config.get("StdinOnce", True) and not self.tty:
                self.close_stdin()

        self.server.nursery.start_soon(pump)
        return s

    async def _attach(self, name: str, req: Request) -> None:
        if name and name not in (self.name, "/" + self.name, self.id) and not self.id.startswith(name):
            raise RemoteError(f"not found: {name}")
        q_s, q_r = trio.open_memory_channel[tuple[str, bytes]](math.inf)
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args[1:]]
        opts = LogOptions(words)
        replay = opts.select(list(self.chunks)) if "logs" in words else []
        if self.status == "exited" or opts.nostream or opts.until is not None:
            q_s.close()
        else:
            self._listeners.add(q_s)
        try:
            await req.ack(self._stdin_handle())
            for tag, data, t in replay:
                await req.log(tag, opts.shape(data, t))
            async for tag, data in q_r:
                await req.log(tag, opts.shape(data, time.time()))
        finally:
            self._listeners.discard(q_s)
            q_s.close()

    async def _watch(self, req: Request) -> None:
        q_s, q_r = trio.open_memory_channel[tuple[str, str]](math.inf)
        self._watchers.add(q_s)
        try:
            await req.ack()
            await req.set("state", json.dumps(self.inspect()))
            async for event, data in q_r:
                await req.set(event, data)
        finally:
            self._watchers.discard(q_s)
