"""``simulator``: a complete fake container engine, in memory.

Args: ``[--ncpu=N] [--memory=BYTES] [--label=KEY=VALUE...] [NAME...]``: names of containers
to pre-create (command ``true``, not started); the options only make ``Get()`` report a
capacity (``NCPU``, ``MemTotal``) and engine ``Labels``, as dockerd's info does, for a
scheduler in front (``aggregate``'s strategies and constraints) to read.

The engine (what the service's input serves) answers:

* ``Ls()`` -> ``Set(names...)`` of every container, running or not, in creation order;
* ``Spawn(config_json)`` -> ``Ack(ret=container)``. ``config_json`` is Docker's create
  body (``Image``, ``Cmd``, ``Env``, ``OpenStdin``, ``StdinOnce``, ``Labels``) plus the
  container name as key ``"name"`` (or ``"Name"``), as the original dockerserver passed it.
  ``Spawn("echo", "hi")`` (several plain words) is the same as ``{"Cmd": ["echo", "hi"]}``.
  Without a name one is generated (``sim-<n>``); a taken name is
  ``Error("Conflict. The name \\"/x\\" is already in use by container <id>")``;
* ``Attach("")`` -> ``Ack(ret=engine)``; ``Attach(name)`` -> ``Ack(ret=container)`` where
  ``name`` is a name, ``/name``, an id or a unique id prefix; else ``Error("no such container: x")``;
* ``Get()`` -> engine info JSON (``Driver``, ``Containers``, ``ContainersRunning``,
  ``ContainersStopped``, ``Commands``, ``Images``);
* ``Start()``/``Stop()`` -> ``Ack`` (the engine itself always runs);
* images (spec/LIBSWARM.md 6.2): the store starts with ``busybox``, ``alpine`` and
  ``local/busybox`` (all ``:latest``). ``Get("images")`` -> Docker's image list JSON;
  ``Get("image", REF)`` -> image inspect JSON; ``Start("pull", REF)`` adds a synthetic
  image for any valid name; ``Start("tag", SRC, DST)``; ``Stop("rmi", REF[, "force"])``
  -> ``Ack(<[{"Untagged": ...}, {"Deleted": ...}] JSON>)``. An unknown image is
  ``Error("No such image: REPO:TAG")``, in a create too (so the docker CLI pulls first);
  removing an image a container uses is Docker's ``conflict: ...`` unless forced;
* ``Get("containers")`` -> every container's ``docker ps`` entry, newest first (spec/LIBSWARM.md 6.8);
* ``Get("networks")``/``Get("network", REF)`` -> ``bridge``, ``host``, ``none``;
  ``Get("volumes")``/``Get("volume", NAME)`` -> the volumes its containers named or made
  (spec/LIBSWARM.md 6.6);
* ``Watch()`` -> ``Ack``, then ``Set(event, inspect_json)`` for ``create``/``start``/``die`` of any container.
* ``Watch("events", ["since=T"], ["until=T"])`` -> ``Ack``, then Docker's event JSON as
  ``Set(json)`` (spec/LIBSWARM.md 6.9): the last 1,024 kept for ``since``, live ones after.

A container answers the verbs of :mod:`libswarm._container` (Get/Start/Stop/Attach/Watch/Log),
with these additions (the Docker front end's conventions, spec/DOCKER.md):

* stdin written (``Log``) or ended before ``Start`` is kept and delivered at start, as
  Docker's attach-before-start does;
* ``Stop(words...)``: no words -- stop (exit 137); ``"signal=SIG"`` -- kill with that
  signal (exit 128+N; ``Error("Container <id> is not running")`` when not running);
  ``"rm"`` -- remove (``Error`` if running unless ``"force"`` is also given, which kills it
  first); ``"time=N"`` is accepted and ignored (the simulated commands die at once);
* ``HostConfig.AutoRemove`` in the create body removes the container when it exits (or
  fails to start);
* ``Attach("", "next")`` on an exited container waits for its next run and streams it
  (Docker's attach to a stopped container, ``docker start -a``); without ``next`` the
  output ends at once;
* ``Get("top")``/``Get("stats")``: its processes and plausible resource figures
  (spec/LIBSWARM.md 6.7);
* ``Stop("pause")``/``Start("unpause")`` pause and resume it (its process's stdio waits
  meanwhile); ``Set("name", NEW)`` as a request renames it (spec/LIBSWARM.md 6.5);
  ``Set("size", ROWS, COLS)`` as a request sizes its terminal, or an exec's (6.11: ``stty size``);
* ``HostConfig.PortBindings``/``PublishAllPorts``/``ExposedPorts`` (``-p``, ``-P``,
  ``--expose``) are its ``NetworkSettings.Ports`` while it runs (an empty host port is
  given one from 49153 up); ``Binds``, ``Mounts`` and ``Volumes`` (``-v``, ``--mount``) its
  ``Mounts``;
* a removal sends ``Set("destroy", json)`` to watchers, then ends their Watch streams;
  the container disappears from ``Ls`` and ``Attach(name)``; ``Get()`` inspect data has
  ``HostConfig`` from the create body.

Simulated commands (argv[0] may be a path; its basename is used):

* ``echo [-n] WORDS... [>&2]`` -- prints the words (to stderr with a final ``>&2``); exit 0
* ``cat`` -- copies stdin to stdout until its end; ``cat FILE`` fails (exit 1, no files)
* ``sleep SECONDS`` -- waits (a float); stopped -> exit 137
* ``true`` / ``false`` -- exit 0 / 1
* ``stty size`` -- its terminal's size, ``ROWS COLS`` (``0 0`` until a ``Set("size")``;
  ``stty: standard input: Inappropriate ioctl for device``, exit 1, without a TTY)
* ``sh -c SCRIPT`` -- runs ``;``-separated simulated commands; ``exit [N]`` ends it
  with status N; the status is the last command's
* anything else: Start fails with Docker's ``exec: "x": executable file not found in $PATH``
  and ``State.ExitCode`` 127.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal as _signal
import time
from typing import Any

import trio

from .. import _container
from .._container import CommandNotFound, Container, Stdio
from .._errors import RemoteError, UsageError
from .._server import Request, Server
from .._service import Service
from .._verbs import Verb
from ._docker.formats import container_summary, exec_config, parse_time
from ._images import ImageStore
from ._resources import Ports, Volumes, mounts_for, network_list

__all__ = ["Simulator", "COMMANDS", "simulate"]

COMMANDS = ("cat", "echo", "false", "sh", "sleep", "stty", "true")
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def resolve(argv: list[str]) -> None:
    """Raise :class:`CommandNotFound` unless ``argv[0]`` is a simulated command."""
    if not argv or os.path.basename(argv[0]) not in COMMANDS:
        name = argv[0] if argv else ""
        raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


async def simulate(argv: list[str], stdio: Stdio) -> int:
    """Run one simulated command; return its exit status."""
    try:
        return await _run(argv, stdio)
    except _Exit as e:
        return e.code


async def _run(argv: list[str], stdio: Stdio) -> int:
    prog, args = os.path.basename(argv[0]), argv[1:]
    if prog == "true":
        return 0
    if prog == "false":
        return 1
    if prog == "echo":
        tag = "stdout"
        if args and args[-1] == ">&2":
            tag, args = "stderr", args[:-1]
        newline = "\n"
        if args and args[0] == "-n":
            newline, args = "", args[1:]
        await stdio.write(tag, (" ".join(args) + newline).encode())
        return 0
    if prog == "cat":
        if args and args != ["-"]:
            await stdio.write("stderr", f"cat: {args[0]}: No such file or directory\n".encode())
            return 1
        while chunk := await stdio.read():
            await stdio.write("stdout", chunk)
        return 0
    if prog == "sleep":
        try:
            seconds = float(args[0])
        except (IndexError, ValueError):
            await stdio.write("stderr", f"sleep: invalid number '{' '.join(args)}'\n".encode())
            return 1
        await trio.sleep(seconds)
        return 0
    if prog == "stty":
        if args != ["size"]:
            await stdio.write("stderr", b"stty: only 'stty size' is simulated\n")
            return 1
        if not stdio.tty:
            await stdio.write("stderr", b"stty: standard input: Inappropriate ioctl for device\n")
            return 1
        rows, cols = stdio.tty_size
        await stdio.write("stdout", f"{rows} {cols}\n".encode())
        return 0
    if prog == "sh":
        if len(args) < 2 or args[0] != "-c":
            await stdio.write("stderr", b"sh: only 'sh -c SCRIPT' is simulated\n")
            return 2
        return await _script(args[1], stdio)
    await stdio.write("stderr", f"sh: {prog}: not found\n".encode())
    return 127


async def _script(script: str, stdio: Stdio) -> int:
    lex = shlex.shlex(script, posix=True, punctuation_chars=";")
    lex.wordchars += "&>"
    words = list(lex)
    status = 0
    commands: list[list[str]] = [[]]
    for w in words:
        if w == ";" or set(w) == {";"}:
            commands.append([])
        else:
            commands[-1].append(w)
    for cmd in commands:
        if not cmd:
            continue
        if cmd[0] == "exit":
            try:
                raise _Exit(int(cmd[1]) & 0xFF if len(cmd) > 1 else status)
            except ValueError:
                await stdio.write("stderr", f"sh: exit: Illegal number: {cmd[1]}\n".encode())
                raise _Exit(2) from None
        if os.path.basename(cmd[0]) not in COMMANDS:
            await stdio.write("stderr", f"sh: {cmd[0]}: not found\n".encode())
            status = 127
            continue
        status = await _run(cmd, stdio)
    return status


def parse_config(args: tuple[Any, ...]) -> dict[str, Any]:
    """A Spawn's args -> a create config (one JSON object, or command words)."""
    if len(args) == 1 and isinstance(args[0], str) and args[0].lstrip().startswith("{"):
        try:
            config = json.loads(args[0])
        except ValueError as exc:
            raise RemoteError(f"invalid container config: {exc}") from None
        if not isinstance(config, dict):
            raise RemoteError("invalid container config: not a JSON object")
    else:
        config = {"Cmd": [a.decode() if isinstance(a, bytes) else a for a in args]}
    cmd = config.get("Cmd")
    if isinstance(cmd, str):
        config["Cmd"] = shlex.split(cmd)
    elif cmd is not None and not (isinstance(cmd, list) and all(isinstance(c, str) for c in cmd)):
        raise RemoteError("invalid container config: Cmd must be a list of strings")
    config.setdefault("Image", "busybox")
    return config


class Simulator(Service):
    """The in-memory engine (see the module docstring for its verbs)."""

    driver = "simulator"

    def __init__(self, *args: str) -> None:
        names = []
        self.capacity: dict[str, Any] = {}  # NCPU, MemTotal, Labels: what Get() reports (for schedulers)
        for n in args:
            if n.startswith(("--ncpu=", "--memory=")):
                key, value = n[2:].split("=", 1)
                try:
                    number = float(value) if key == "ncpu" else int(value)
                except ValueError:
                    raise UsageError(f"simulator: bad {n}") from None
                if not number > 0:
                    raise UsageError(f"simulator: bad {n} (a positive number)")
                self.capacity["NCPU" if key == "ncpu" else "MemTotal"] = number
                continue
            if n.startswith("--label="):
                if "=" not in n[len("--label="):]:
                    raise UsageError(f"simulator: bad {n} (--label=KEY=VALUE)")
                self.capacity.setdefault("Labels", []).append(n[len("--label="):])
                continue
            names.append(n)
        for n in names:
            if not _NAME.match(n):
                raise UsageError(f"simulator: invalid container name {n!r}")
        self._initial = tuple(names)
        self.containers: dict[str, Container] = {}  # by id, in creation order
        self._counter = 0
        self._watchers: set[trio.MemorySendChannel[tuple[str, str]]] = set()
        self.events: list[dict[str, Any]] = []
        """The last :data:`KEPT_EVENTS` Docker events (``docker events --since``)."""
        self._event_watchers: set[trio.MemorySendChannel[dict[str, Any]]] = set()
        self.server = Server(self.driver)
        self.server.on_ls(self._ls).on_spawn(self._spawn).on_attach(self._attach)
        self.server.on_get(self._info).on_start(self._engine_start).on(Verb.Stop, self._engine_stop)
        self.server.on_watch(self._watch)
        self.images = ImageStore()
        self.ports = Ports()
        self.volumes = Volumes()

    async def run(self, input: Any, output: Any) -> None:
        async with self.server:
            for name in self._initial:
                await self.create({"Cmd": ["true"], "Image": "busybox", "name": name})
            await self.server.serve(input)

    # -- engine -------------------------------------------------------------

    def find(self, ref: str) -> Container | None:
        """The container named ``ref`` (name, /name, id or unique id prefix)."""
        name = ref[1:] if ref.startswith("/") else ref
        for c in self.containers.values():
            if c.name == name:
                return c
        if ref in self.containers:
            return self.containers[ref]
        matches = [c for i, c in self.containers.items() if i.startswith(ref)] if ref else []
        return matches[0] if len(matches) == 1 else None

    async def create(self, config: dict[str, Any]) -> Container:
        name = config.pop("name", None) or config.pop("Name", None)
        if name is None:
            self._counter += 1
            name = f"sim-{self._counter}"
            while self.find(name):
                self._counter += 1
                name = f"sim-{self._counter}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise RemoteError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        name = name.lstrip("/")
        other = self.find(name)
        if other is not None and other.name == name:
            raise RemoteError(f'Conflict. The name "/{name}" is already in use by container {other.id}')
        image = self.images.get(str(config.get("Image") or ""))  # Docker's 404: the CLI pulls, then retries
        c = SimContainer(self, name=name, config=config, runner=self.runner, resolve=self.resolve,
                         driver=self.driver, on_event=self._on_event)
        c.image_id = image.id
        c.mounts = mounts_for(config, self.volumes)
        c.scope = await self.server.nursery.start(_run_in_scope, c.server.run)
        self.containers[c.id] = c
        self._on_event("create", c)
        return c

    # overridable by subclasses (exec)
    runner = staticmethod(simulate)
    resolve = staticmethod(resolve)

    async def remove(self, c: Container) -> None:
        """Forget ``c``: watchers get ``Set("destroy", json)`` and their streams end;
        its object stops a moment later (requests in progress are answered first)."""
        if self.containers.pop(c.id, None) is None:
            await trio.lowlevel.checkpoint()
            return
        c._event("destroy")
        for w in list(c._watchers):
            w.close()
        c._watchers.clear()
        scope = getattr(c, "scope", None)

        async def stop_later() -> None:
            await trio.sleep(1)
            if scope is not None:
                scope.cancel()

        self.server.nursery.start_soon(stop_later)
        await trio.lowlevel.checkpoint()

    def _on_event(self, event: str, c: Container) -> None:
        self._docker_event(event, c)
        if event == "die" and (c.config.get("HostConfig") or {}).get("AutoRemove") and c.id in self.containers:
            self.server.nursery.start_soon(self.remove, c)
        data = json.dumps(c.inspect())
        for w in list(self._watchers):
            try:
                w.send_nowait((event, data))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._watchers.discard(w)

    async def _noop(self, *args: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def _ls(self, *args: Any) -> list[str]:
        return [c.name for c in self.containers.values()]

    async def _spawn(self, *args: Any) -> Server:
        return (await self.create(parse_config(args))).server

    async def _attach(self, name: str, req: Request) -> None:
        if not name:
            await req.ack(self.server)
            return
        c = self.find(name)
        if c is None:
            raise RemoteError(f"no such container: {name}")
        await req.ack(c.server)

    async def _engine_start(self, *args: Any) -> None:
        """``Start()``: nothing (the engine runs); ``Start("pull", REF)``, ``Start("tag", SRC, DST)``: images."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words[:1] == ["pull"] and len(words) == 2:
            self.images.pull(words[1])
        elif words[:1] == ["tag"] and len(words) == 3:
            self.images.tag(words[1], words[2])
        elif words:
            raise RemoteError(f"simulator: unknown Start words: {' '.join(words)}")
        await trio.lowlevel.checkpoint()

    async def _engine_stop(self, req: Request) -> None:
        """``Stop()``: nothing; ``Stop("rmi", REF[, "force"])``: remove an image, answered
        ``Ack(<Docker's [{"Untagged": ...}, {"Deleted": ...}] JSON>)``."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if not words:
            await req.ack()
            return
        if words[0] != "rmi" or len(words) not in (2, 3) or words[2:] not in ([], ["force"]):
            raise RemoteError(f"simulator: unknown Stop words: {' '.join(words)}")
        img = self.images.get(words[1])
        users = [c.id for c in self.containers.values() if getattr(c, "image_id", None) == img.id]
        done = self.images.remove(words[1], "force" in words[2:], users)
        await req.send(Verb.Ack, json.dumps(done))

    async def _info(self, *args: Any) -> Any:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words == ["images"]:
            return [img.summary() for img in self.images.images.values()]
        if words == ["containers"]:  # docker ps, in one request (spec/LIBSWARM.md 6.8)
            return [container_summary(c.inspect(), c.name) for c in reversed(self.containers.values())]
        if words == ["networks"]:
            return network_list()
        if len(words) == 2 and words[0] == "network":
            found = [n for n in network_list() if words[1] in (n["Name"], n["Id"]) or n["Id"].startswith(words[1])]
            if len(found) != 1:
                raise RemoteError(f"No such network: {words[1]}")
            return found[0]
        if words == ["volumes"]:
            return self.volumes.listing()
        if len(words) == 2 and words[0] == "volume":
            if words[1] not in self.volumes.volumes:
                raise RemoteError(f"get {words[1]}: no such volume")
            return self.volumes.volumes[words[1]]
        if len(words) == 2 and words[0] == "image":
            return self.images.get(words[1]).inspect()
        if words:
            raise RemoteError(f"unknown field: {' '.join(words)!r}")
        running = sum(c.running for c in self.containers.values())
        return {
            "Driver": self.driver,
            "Containers": len(self.containers),
            "ContainersRunning": running,
            "ContainersStopped": len(self.containers) - running,
            "Commands": list(COMMANDS),
            "Images": len(self.images.images),
            **self.capacity,
        }

    def _docker_event(self, action: str, c: Container) -> None:
        """Record and send Docker's event JSON for ``action`` on container ``c``."""
        ns = time.time_ns()
        image = str(c.config.get("Image") or "")
        attrs = {str(k): str(v) for k, v in (c.config.get("Labels") or {}).items()}
        attrs.update(image=image, name=c.name)
        if action == "die":
            attrs["exitCode"] = str(c.exit_code)
        event = {"status": action, "id": c.id, "from": image, "Type": "container", "Action": action,
                 "Actor": {"ID": c.id, "Attributes": attrs}, "scope": "local",
                 "time": ns // 1_000_000_000, "timeNano": ns}
        self.events.append(event)
        del self.events[:-KEPT_EVENTS]
        for w in list(self._event_watchers):
            try:
                w.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._event_watchers.discard(w)

    async def _docker_events(self, req: Request, words: list[str]) -> None:
        """``Watch("events", ["since=T"], ["until=T"])``: Docker's events as ``Set(json)``, the
        kept ones since ``T`` first, then live; after ``until`` the stream ends."""
        opts = {k: v for k, _, v in (w.partition("=") for w in words[1:])}
        try:
            since = float(opts["since"]) if opts.get("since") else None
            until = float(opts["until"]) if opts.get("until") else None
        except ValueError:
            raise RemoteError(f"invalid time value in {' '.join(words)}") from None
        q_s, q_r = trio.open_memory_channel[dict[str, Any]](math.inf)
        past = [e for e in self.events if e["timeNano"] >= since * 1e9] if since is not None else []
        self._event_watchers.add(q_s)  # with no checkpoint since: nothing lost, nothing twice
        try:
            await req.ack()
            for e in past:
                if until is not None and e["timeNano"] > until * 1e9:
                    break
                await req.set(json.dumps(e))
            with trio.move_on_at(trio.current_time() + max(0.0, until - time.time()) if until else math.inf):
                async for e in q_r:
                    if until is not None and e["timeNano"] > until * 1e9:
                        break
                    if since is not None and e["timeNano"] < since * 1e9:
                        continue
                    await req.set(json.dumps(e))
        finally:
            self._event_watchers.discard(q_s)

    async def _watch(self, req: Request) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if words[:1] == ["events"]:
            await self._docker_events(req, words)
            return
        import math

        q_s, q_r = trio.open_memory_channel[tuple[str, str]](math.inf)
        self._watchers.add(q_s)
        try:
            await req.ack()
            async for event, data in q_r:
                await req.set(event, data)
        finally:
            self._watchers.discard(q_s)


KEPT_EVENTS = 1024
"""How many past events the simulator keeps for ``docker events --since``."""


async def _run_in_scope(fn: Any, *, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as n:
            await n.start(fn)
            task_status.started(scope)


def signal_number(name: str) -> int:
    """``"KILL"``, ``"SIGKILL"``, ``"9"`` -> 9 (:class:`RemoteError` if unknown)."""
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    try:
        return int(getattr(_signal, text if text.startswith("SIG") else "SIG" + text))
    except (AttributeError, TypeError, ValueError):
        raise RemoteError(f"invalid signal: {name}") from None


_HARMLESS = {int(getattr(_signal, n)) for n in ("SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH", "SIGSTOP", "SIGTSTP",
                                                "SIGTTIN", "SIGTTOU") if hasattr(_signal, n)}


async def set_size(c: Container, req: Request, words: list[str]) -> None:
    """``Set("size", ROWS, COLS)`` as a request: its terminal's size (spec/LIBSWARM.md 6.11)."""
    try:
        rows, cols = (int(w) for w in words[1:])
        if rows < 0 or cols < 0:
            raise ValueError
    except ValueError:
        raise RemoteError(f"invalid terminal size: {' '.join(words[1:])} (Set(\"size\", ROWS, COLS))") from None
    if isinstance(c, SimContainer) and not c.running:
        raise RemoteError(f"Container {c.id} is not running")
    c.tty_size = (rows, cols)
    await req.ack()


class SimContainer(Container):
    """A simulator container: stdin buffered before start, Stop words (kill, rm)."""

    def __init__(self, engine: Simulator, **kw: Any) -> None:
        super().__init__(**kw)
        self.engine = engine
        self._early: list[bytes] = []
        self._early_end = False
        self._stdio: Stdio | None = None
        self.scope: trio.CancelScope | None = None
        """Cancels the container's server (set by the engine once it runs)."""
        inner = self._runner

        async def runner(argv: list[str], stdio: Stdio) -> int:
            self._stdio = stdio
            return await inner(argv, stdio)

        self._runner = runner
        self.execs: dict[str, SimExec] = {}
        self.server.on_spawn(self._exec).on(Verb.Set, self._set)
        self.paused = False
        self.bound_ports: dict[str, Any] = {}
        """``NetworkSettings.Ports`` while it runs (``-p``, ``-P``)."""
        self.mounts: list[dict[str, Any]] = []
        """Inspect's ``Mounts`` (``-v``, ``--mount``), fixed at create."""
        # PID 1 ignores SIGINT unless an init (--init) runs it
        self.interrupt_kills = bool((self.config.get("HostConfig") or {}).get("Init"))

    async def _exec(self, *args: Any) -> Server:
        """``Spawn(exec_config_json)``: a process in this running container (``docker exec``)."""
        config = exec_config(args)
        if not isinstance(config, dict) or not isinstance(config.get("Cmd"), list) or not config["Cmd"]:
            raise RemoteError("No exec command specified")
        if not self.running:
            raise RemoteError(f"Container {self.id} is not running")
        if self.paused:
            raise RemoteError(f"Container {self.id} is paused, unpause the container before exec")
        e = SimExec(self, config)
        await self.server.nursery.start(e.server.run)
        self.execs[e.id] = e
        while len(self.execs) > 64:  # forget the oldest finished ones
            old = next((k for k, v in self.execs.items() if v.status == "exited"), None)
            if old is None:
                break
            del self.execs[old]
        return e.server

    async def _get(self, *args: Any) -> Any:
        """Adds ``Get("top"[, PS_ARGS])`` and ``Get("stats")`` (spec/LIBSWARM.md 6.7)."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words[:1] == ["top"]:
            if not self.running:
                raise RemoteError(f"Container {self.id} is not running")
            return self.top()
        if words == ["stats"]:
            return self.stats()
        return await super()._get(*args)

    def top(self) -> dict[str, Any]:
        """Docker's ``GET /containers/ID/top`` body: the main process and the running execs."""
        stime = self.started_at[11:16] if len(self.started_at) > 16 else "00:00"
        rows = [["root", str(self.pid or 1), "0", "0", stime, "?", "00:00:00", " ".join(self.cmd)]]
        for e in self.execs.values():
            if e.running:
                rows.append(["root", str(e.pid or 1), str(self.pid or 1), "0", stime, "?", "00:00:00", " ".join(e.cmd)])
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows}

    def stats(self) -> dict[str, Any]:
        """One sample of Docker's ``GET /containers/ID/stats`` (plausible figures: a little
        CPU and memory per running process, the bytes written as network traffic)."""
        procs = (1 + sum(e.running for e in self.execs.values())) if self.running else 0
        t = time.time()
        up = max(0.0, t - parse_time(self.started_at)) if self.running else 0.0
        cpu = int(up * 1e7 * procs)  # about 1% of one CPU per process
        system = int(t * 1e9) * (os.cpu_count() or 1)
        written = sum(len(d) for _, d, _ in self.chunks)
        memory = (2 << 20) * procs + written
        cpu_stats: dict[str, Any] = {"cpu_usage": {"total_usage": cpu, "usage_in_kernelmode": cpu // 4, "usage_in_usermode": cpu - cpu // 4,
                                   "percpu_usage": [cpu]},
                     "system_cpu_usage": system, "online_cpus": os.cpu_count() or 1,
                     "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
        pre = dict(cpu_stats, cpu_usage=dict(cpu_stats["cpu_usage"], total_usage=max(0, cpu - int(1e7 * procs))),
                   system_cpu_usage=system - int(1e9) * (os.cpu_count() or 1))
        stamp = _container.now() if self.running else _container.ZERO_TIME
        return {
            "read": stamp, "preread": stamp, "id": self.id, "name": "/" + self.name,
            "pids_stats": {"current": procs}, "num_procs": 0, "storage_stats": {},
            "blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": []},
            "cpu_stats": cpu_stats if self.running else {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "precpu_stats": pre if self.running else {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {"usage": memory, "limit": 8 << 30, "max_usage": memory, "stats": {"cache": 0}}
            if self.running else {},
            "networks": {"eth0": {"rx_bytes": 0, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
                                  "tx_bytes": written, "tx_packets": len(self.chunks), "tx_errors": 0,
                                  "tx_dropped": 0}} if self.running else {},
        }

    def _event(self, event: str) -> None:
        if event == "die":  # the container's processes die with it
            for e in self.execs.values():
                if e.running and e._scope is not None:
                    e._scope.cancel()
            self.bound_ports = {}
            self._set_paused(False)
        elif event == "start":
            self.bound_ports = self.engine.ports.bind(self.config)
        super()._event(event)

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        if paused and self.unpaused.is_set():
            self.unpaused = trio.Event()
        elif not paused:
            self.unpaused.set()

    async def _set(self, req: Request) -> None:
        """``Set("name", NEW)`` as a request: rename (``docker rename``), answered ``Ack``."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if words[:1] == ["size"]:
            await set_size(self, req, words)
            return
        if len(words) != 2 or words[0] != "name":
            raise RemoteError(f"simulator: unknown Set: {' '.join(words)} (a container takes Set(\"name\", NEW))")
        new = words[1].lstrip("/")
        if not _NAME.match(new) or len(new) < 2:
            raise RemoteError(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if new == self.name:
            raise RemoteError("Renaming a container with the same name as its current name")
        other = self.engine.find(new)
        if other is not None and other.name == new:
            raise RemoteError(f'Conflict. The container name "/{new}" is already in use by container "{other.id}". '
                              "You have to remove (or rename) that container to be able to reuse that name.")
        self.name = new
        self._event("rename")
        await req.ack()

    image_id = ""
    """The id of the image it was created from (``Image`` in its inspect data)."""

    def inspect(self) -> dict[str, Any]:
        data = super().inspect()
        data["HostConfig"] = dict(self.config.get("HostConfig") or {})
        if self.image_id:
            data["Image"] = self.image_id
        data["Mounts"] = [dict(m) for m in self.mounts]
        data["NetworkSettings"]["Ports"] = dict(self.bound_ports)
        data["Config"]["ExposedPorts"] = {k: {} for k in self.bound_ports} or self.config.get("ExposedPorts") or None
        if self.paused:
            data["State"].update(Status="paused", Paused=True)
        return data

    async def write_stdin(self, *args: Any) -> None:
        if not self.running and args:
            data = args[-1]
            self._early.append(data.encode() if isinstance(data, str) else bytes(data))
            await trio.lowlevel.checkpoint()
            return
        await super().write_stdin(*args)

    def close_stdin(self) -> None:
        if not self.running:
            self._early_end = True
            return
        super().close_stdin()

    async def start(self, *args: Any) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words == ["unpause"]:  # docker unpause
            if not self.paused:
                raise RemoteError(f"Container {self.id} is not paused")
            self._set_paused(False)
            self._event("unpause")
            await trio.lowlevel.checkpoint()
            return
        if words:
            raise RemoteError(f"simulator: unknown Start words: {' '.join(words)}")
        try:
            await super().start(*args)
        except RemoteError:
            if (self.config.get("HostConfig") or {}).get("AutoRemove") and self.id in self.engine.containers:
                self.server.nursery.start_soon(self.engine.remove, self)
            raise
        early, self._early = self._early, []
        if self._stdin_s is not None and self.config.get("OpenStdin", False):
            for chunk in early:
                self._stdin_s.send_nowait(chunk)
            if self._early_end:
                self._stdin_s.close()
        self._early_end = False

    async def _attach(self, name: str, req: Request) -> None:
        if "next" not in req.args[1:] or self.status != "exited":
            await super()._attach(name, req)
            return
        # Docker's attach to a stopped container: stream its next run (listeners are
        # only fed while running and closed when the run ends)
        q_s, q_r = trio.open_memory_channel[tuple[str, bytes]](math.inf)
        self._listeners.add(q_s)
        try:
            await req.ack(self._stdin_handle())
            async for tag, data in q_r:
                await req.log(tag, data)
        finally:
            self._listeners.discard(q_s)
            q_s.close()

    async def stop(self, *args: Any) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        opts = {key: value for key, _, value in (w.partition("=") for w in words)}
        if words == ["pause"]:  # docker pause: its process's stdio waits until unpause
            if not self.running:
                raise RemoteError(f"Container {self.id} is not running")
            if self.paused:
                raise RemoteError(f"Container {self.id} is already paused")
            self._set_paused(True)
            self._event("pause")
            await trio.lowlevel.checkpoint()
            return
        if "rm" in opts:
            if self.running:
                if "force" not in opts:
                    raise RemoteError(
                        f'cannot remove container "/{self.name}": container is running: '
                        "stop the container before removing or force remove"
                    )
                await self._kill(int(_signal.SIGKILL))
            await self.engine.remove(self)
            return
        if "signal" in opts:
            signum = signal_number(opts["signal"] or "KILL")
            if not self.running:
                raise RemoteError(f"Container {self.id} is not running")
            if signum not in _HARMLESS:  # signals whose default action is to ignore or stop
                await self._kill(signum)
            return
        await super().stop()

    async def _kill(self, signum: int) -> None:
        if self._stdio is not None:
            self._stdio.killed_code = 128 + signum
        await super().stop()


class SimExec(Container):
    """A ``docker exec`` process in a simulator container: a :class:`Container` (Attach for
    stdio, Start, Watch) whose ``Get()`` is Docker's exec inspect JSON. A command that does
    not exist prints runc's words on its output and exits 126, as with Docker."""

    def __init__(self, container: SimContainer, config: dict[str, Any]) -> None:
        self.container = container
        cfg = {"Cmd": [str(c) for c in config["Cmd"]], "Env": list(config.get("Env") or []),
               "OpenStdin": bool(config.get("AttachStdin")), "StdinOnce": True, "Tty": bool(config.get("Tty")),
               "User": str(config.get("User") or ""), "WorkingDir": str(config.get("WorkingDir") or "")}
        self.attach_stdout = bool(config.get("AttachStdout"))
        self.attach_stderr = bool(config.get("AttachStderr"))
        engine = container.engine

        async def runner(argv: list[str], stdio: Stdio) -> int:
            try:
                engine.resolve(argv)
            except CommandNotFound as exc:
                await stdio.write("stdout", f"OCI runtime exec failed: exec failed: unable to start container "
                                            f"process: {exc}: unknown\r\n".encode())
                return 126
            return await engine.runner(argv, stdio)

        super().__init__(name=f"exec in {container.name}", config=cfg, runner=runner, driver=container.driver)
        self.started = False
        self.server.on(Verb.Set, self._set)

    async def _set(self, req: Request) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if words[:1] != ["size"]:
            raise RemoteError(f"simulator: unknown Set: {' '.join(words)} (an exec takes Set(\"size\", ROWS, COLS))")
        await set_size(self, req, words)

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id, "Running": self.running,
            "ExitCode": self.exit_code if self.status == "exited" else None,
            "ProcessConfig": {"tty": bool(self.config.get("Tty")), "entrypoint": self.cmd[0], "arguments": self.cmd[1:],
                              "privileged": False, "user": self.config.get("User", "")},
            "OpenStdin": bool(self.config.get("OpenStdin")), "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout, "CanRemove": False, "ContainerID": self.container.id,
            "DetachKeys": "", "Pid": self.pid if self.running else 0,
        }

    async def start(self, *args: Any) -> None:
        if self.started:
            raise RemoteError(f"Error: Exec command {self.id} has already run")
        if not self.container.running:
            raise RemoteError(f"Container {self.container.id} is not running")
        self.started = True
        await super().start(*args)
