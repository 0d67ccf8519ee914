"""``swarmd``: compose libswarm services into a chain, like a unix pipeline.

    swarmd                                  list the backends (name and one line each)
    swarmd 'SPEC' ['SPEC' ...]              run a chain, left to right
    swarmd 'BACKEND --help'                 a backend's own help (its module docstring)
    swarmd -h|--help, swarmd -v|--version

Each SPEC is one shell word holding ``BACKEND ARG...``, split with go-shlex's rules
(:mod:`libswarm.goshlex`, as the original swarmd did), so it is usually quoted:
``swarmd 'listen unix:///tmp/swarm.sock' 'aggregate "simulator" "exec /bin/cat"'``.

Wiring (the original ``cmdDaemon``, spec/LIBSWARM.md §8.4): every spec is parsed and instantiated
first (so a bad chain fails before anything runs); then each stage's output is
connected to the next stage's input before any stage starts (attach before start:
nothing is lost), the first stage's input is closed at once, and the last stage's
output goes to swarmd's sink:

* ``Log(args...)`` is printed on stdout (args joined by spaces); stdio chunks
  ``Log("stdout"|"stderr", chunk)`` are written raw to swarmd's stdout/stderr;
* ``Error(text)`` is fatal: ``swarmd: fatal: <text>`` on stderr, the chain is shut
  down, exit status 1;
* any other request is answered ``Error("not implemented: <Verb>")``.

swarmd exits 0 when every stage has ended. SIGTERM shuts the chain down (services
cancelled: processes of ``exec`` get SIGTERM then SIGKILL after 5 s, unix sockets of
``listen`` are removed) and exits 0; SIGINT (Ctrl-C) does the same and exits 130
(128 + SIGINT, the shell convention). A second signal during shutdown exits at once.

Errors before the chain runs (bad quoting, an unknown backend, bad backend args, TLS
files that cannot be read) and errors while it runs (e.g. an address in use) are one
line on stderr (``swarmd: ...``) and exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import TYPE_CHECKING, Any, Sequence

from .goshlex import ShlexError, split

# trio, libchan and the backends are imported where a chain is built or run, so that
# --help and --version start in a few tens of milliseconds (bench/startup.py).
if TYPE_CHECKING:
    import trio

    from ._message import Message
    from ._service import Service

__all__ = ["main", "parse_spec", "describe_backends", "VERSION"]

USAGE = """\
usage: swarmd [-h|--help] [-v|--version] ['BACKEND ARG...' ...]

Compose distributed systems from lightweight services.

With no arguments, list the backends; 'BACKEND --help' (or -h) describes one, with its
arguments. Otherwise run the services given, each one
quoted as a single word, as a pipeline: the output of each is connected to the
input of the next (requests travel left to right, replies come back). Specs are
split with go-shlex's rules ("..." allows \\-escapes, '...' is literal), so specs
nest: swarmd 'listen unix:///tmp/s.sock' 'aggregate "simulator" "exec /bin/cat"'.

Log messages reaching the end of the chain are printed; an Error is fatal (exit 1).
SIGTERM stops the chain and exits 0, SIGINT (Ctrl-C) exits 130.
"""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("libchan-trio")
    except Exception:
        import libchan

        return libchan.__version__


def _the_version() -> str:
    value = globals().get("VERSION")
    if not isinstance(value, str):
        value = globals()["VERSION"] = _version()
    return value


def __getattr__(name: str) -> Any:
    if name == "VERSION":  # looked up in the package metadata when first asked for (PEP 562)
        return _the_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


VERSION: str


class SwarmdError(Exception):
    """A one-line error for the user."""


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"NAME ARG..."`` -> ``(name, args)``, split with go-shlex (the original ``parseCmd``)."""
    try:
        words = split(spec)
    except ShlexError as exc:
        raise SwarmdError(f"parse: {exc}") from None
    if not words:
        raise SwarmdError("parse error: empty command")
    return words[0], words[1:]


def instantiate(spec: str) -> Service:
    from . import backends

    name, args = parse_spec(spec)
    try:
        factory = backends.get(name)
    except backends.UnknownBackendError as exc:
        raise SwarmdError(str(exc)) from None
    try:
        return factory(*args)
    except Exception as exc:
        raise SwarmdError(f"spawn {name}: {_one_line(exc)}") from None


def describe_backends() -> list[tuple[str, str]]:
    """``[(name, one-line description)]`` of every registered backend."""
    from . import backends

    out = []
    for name in backends.available():
        try:
            factory = backends.get(name)
            doc = sys.modules[factory.__module__].__doc__ or factory.__doc__ or ""
        except Exception:
            doc = ""
        line = doc.strip().splitlines()[0] if doc.strip() else ""
        line = re.sub(r"^``[\w-]+``\s*:\s*", "", line).replace("``", "")
        out.append((name, line))
    return out


def _one_line(exc: BaseException) -> str:
    from .backends._remote import describe

    return describe(exc)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


class Daemon:
    """One swarmd run: the chain, the sink, and signal handling."""

    def __init__(self, services: Sequence[Service], *, out: Any = None, err: Any = None) -> None:
        self.services = list(services)
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.fatal: str | None = None
        self.signal: int | None = None

    async def run(self) -> int:
        import trio

        import libchan

        from ._service import chain

        sink_s, sink_r = libchan.pipe()
        work = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._signals, work)
            with work:
                async with trio.open_nursery() as stages:
                    stages.start_soon(chain, self.services, None, sink_s)
                    stages.start_soon(self._sink, sink_r, work)
            nursery.cancel_scope.cancel()  # the chain ended: stop listening for signals
        if self.fatal is not None:
            print(f"swarmd: fatal: {self.fatal}", file=self.err, flush=True)
            return 1
        if self.signal == signal.SIGINT:
            return 130
        return 0

    async def _signals(self, work: trio.CancelScope) -> None:
        import trio

        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.signal is not None:
                    # a second signal while shutting down: give up waiting
                    os._exit(130 if signum == signal.SIGINT else 1)
                self.signal = signum
                work.cancel()

    async def _sink(self, receiver: Any, scope: trio.CancelScope) -> None:
        import trio

        from ._message import Message
        from libchan.closing import aclose_quietly
        from ._verbs import Verb

        async with receiver:
            while True:
                try:
                    raw = await receiver.receive()
                except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                try:
                    msg = Message.from_wire(raw)
                except ValueError as exc:
                    print(f"swarmd: dropped a bad message: {exc}", file=self.err, flush=True)
                    continue
                if msg.verb == Verb.Log:
                    self._print_log(msg)
                elif msg.verb == Verb.Error:
                    self.fatal = msg.text or "error"
                    scope.cancel()
                    return
                elif msg.ret is not None:
                    with trio.move_on_after(5):
                        try:
                            await msg.ret.send(Message(Verb.Error, (f"not implemented: {msg.verb.name}",)).to_wire())
                        except Exception:
                            pass
                    await aclose_quietly(msg.ret)

    def _print_log(self, msg: Message) -> None:
        args = msg.args
        if len(args) == 2 and args[0] in ("stdout", "stderr"):
            stream = self.out if args[0] == "stdout" else self.err
            chunk = args[1] if isinstance(args[1], bytes) else args[1].encode()
            buf = getattr(stream, "buffer", None)
            if buf is not None:
                stream.flush()
                buf.write(chunk)
                buf.flush()
            else:
                stream.write(chunk.decode("utf-8", "replace"))
                stream.flush()
            return
        text = " ".join(a.decode("utf-8", "replace") if isinstance(a, bytes) else a for a in args)
        print(text, file=self.out, flush=True)


def list_backends(out: Any) -> None:
    pairs = describe_backends()
    width = max(len(n) for n, _ in pairs)
    for name, line in pairs:
        print(f"{name.ljust(width)}  {line}".rstrip(), file=out)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: returns (and exits with) the status."""
    args = list(sys.argv[1:] if argv is None else argv)
    status = _main(args)
    if argv is None:
        sys.exit(status)
    return status


def _main(args: list[str]) -> int:
    specs: list[str] = []
    options_done = False
    for a in args:
        if not options_done and a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if not options_done and a in ("-v", "--version"):
            print(f"swarmd version {_the_version()}")
            return 0
        if not options_done and a == "--":
            options_done = True
            continue
        if not options_done and a.startswith("-") and len(a) > 1:
            print(f"swarmd: unknown option {a} (see swarmd --help)", file=sys.stderr)
            return 1
        specs.append(a)
    if not specs:
        list_backends(sys.stdout)
        return 0
    for spec in specs:  # 'BACKEND --help' (or -h): the backend's own description
        try:
            name, spec_args = parse_spec(spec)
        except SwarmdError:
            continue  # (reported below)
        if spec_args[:1] in (["--help"], ["-h"]):
            from . import backends

            try:
                sys.stdout.write(backends.help_text(name))
            except backends.UnknownBackendError as exc:
                print(f"swarmd: {exc}", file=sys.stderr)
                return 1
            return 0
    try:
        services = [instantiate(spec) for spec in specs]
    except SwarmdError as exc:
        print(f"swarmd: {exc}", file=sys.stderr)
        return 1
    import trio

    daemon = Daemon(services)
    try:
        return trio.run(daemon.run)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # noqa: BLE001 -- one line, never a traceback
        leaves = [e for e in _leaves(exc) if not isinstance(e, trio.Cancelled)]
        if any(isinstance(e, KeyboardInterrupt) for e in leaves):
            return 130
        if any(isinstance(e, SystemExit) for e in leaves):
            raise
        first = leaves[0] if leaves else exc
        print(f"swarmd: {_one_line(first)}", file=sys.stderr)
        if os.environ.get("SWARMD_TRACEBACK"):
            raise
        return 1


if __name__ == "__main__":
    main()
