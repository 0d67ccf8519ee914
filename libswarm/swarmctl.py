"""``swarmctl``: send one libswarm verb to a chain served by ``swarmd 'listen URL' ...``.

    swarmctl [--cert F --key F --ca F] [--timeout S] URL VERB [ARGS...]

URL is ``tcp://HOST:PORT``, ``tls://HOST:PORT`` (the server is verified against
``--ca``; ``--cert``/``--key`` present the client certificate a tls listen demands) or
``unix:///PATH``. Verbs (``NAME`` navigates to a child with ``Attach(NAME)`` first; without
it the verb goes to the object the listen serves, e.g. the engine):

    ls [ARGS...]               the names, one per line
    spawn ARGS...              Spawn(ARGS) (e.g. a Docker create JSON with "name"); prints
                               the new child's name (from its Get)
    get [NAME [ARGS...]]       the value (bytes written raw, e.g. get web stdout)
    start [NAME [ARGS...]]     Start; stop [NAME [ARGS...]]: Stop
    attach [--logs] [NAME]     stream the object's stdout/stderr until it ends or Ctrl-C
    watch [NAME]               print each change (one line per message) until Ctrl-C
    log [NAME] TEXT...         a one-way Log (to a container: its stdin)
    call VERB [ARGS...]        any verb; prints each reply as "Verb arg..." lines

Errors (an Error answer, a dead connection, no answer within --timeout, 30 s by
default) are one line on stderr and exit status 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Sequence

from ._errors import LibswarmError, RemoteError, UsageError

# trio, libchan and the client are imported once there is a verb to send, so that
# --help starts in a few tens of milliseconds (bench/startup.py).
if TYPE_CHECKING:
    from ._client import Client
    from .backends._remote import RemoteOptions

__all__ = ["main"]

USAGE = __doc__.split("\n\n", 1)[1]
DEFAULT_TIMEOUT = 30.0


class CtlError(Exception):
    pass


def _text(a: Any) -> str:
    return a.decode("utf-8", "replace") if isinstance(a, bytes) else a


def _write(stream: Any, chunk: Any) -> None:
    data = chunk if isinstance(chunk, bytes) else chunk.encode()
    stream.flush()
    stream.buffer.write(data)
    stream.buffer.flush()


async def _target(root: Client, args: list[str]) -> tuple[Client, list[str], bool]:
    """``[NAME, ARGS...]`` -> (the child's Client or root, the rest, whether it is a child)."""
    if args and args[0]:
        return await root.child(args[0]), args[1:], True
    return root, args[1:], False


async def run(url: str, ssl: Any, timeout: float, verb: str, args: list[str]) -> int:
    import libchan

    from ._client import Client
    from ._verbs import Verb

    async with libchan.connect(url, ssl=ssl) as session:
        root = Client(await session.open_sender(), timeout=timeout)
        out = sys.stdout
        if verb == "ls":
            for name in await root.ls(*args):
                print(_text(name), file=out, flush=True)
        elif verb == "spawn":
            child = await root.spawn(*args)
            name = ""
            try:
                info = json.loads(_text(await child.get()))
                name = (info.get("Name") or info.get("Id") or "").lstrip("/")
            except (LibswarmError, ValueError, AttributeError):
                pass
            print(name or "(spawned)", file=out, flush=True)
            await child.aclose()
        elif verb == "get":
            obj, rest, _ = await _target(root, args)
            value = await obj.get(*rest)
            if isinstance(value, bytes):
                _write(out, value)
            else:
                print(value, file=out, flush=True)
        elif verb in ("start", "stop"):
            obj, rest, _ = await _target(root, args)
            await (obj.start(*rest) if verb == "start" else obj.stop(*rest))
        elif verb == "attach":
            logs = "--logs" in args
            args = [a for a in args if a != "--logs"]
            if len(args) > 1:
                raise CtlError("usage: swarmctl URL attach [--logs] [NAME]")
            obj, _, _ = await _target(root, args)
            _, output = await obj.attach("", *(["logs"] if logs else []))
            async with output:
                async for msg in output:
                    if msg.verb == Verb.Error:
                        raise RemoteError(msg.text)
                    if msg.verb == Verb.Log and len(msg.args) == 2 and msg.args[0] in ("stdout", "stderr"):
                        _write(out if msg.args[0] == "stdout" else sys.stderr, msg.args[1])
                    elif msg.verb == Verb.Log:
                        print(" ".join(_text(a) for a in msg.args), file=sys.stderr, flush=True)
        elif verb == "watch":
            obj, rest, _ = await _target(root, args[:1])
            changes = await obj.watch(*args[1:])
            async with changes:
                async for msg in changes:
                    if msg.verb == Verb.Error:
                        raise RemoteError(msg.text)
                    print(" ".join(_text(a) for a in msg.args), file=out, flush=True)
        elif verb == "log":
            if not args:
                raise CtlError("usage: swarmctl URL log [NAME] TEXT...")
            obj, rest, _ = await _target(root, args) if len(args) > 1 else (root, args, False)
            await obj.log(*rest)
        elif verb == "call":
            if not args:
                raise CtlError("usage: swarmctl URL call VERB [ARGS...]")
            try:
                v = Verb.parse(args[0])
            except ValueError as exc:
                raise CtlError(str(exc)) from None
            first, replies = await root.call(v, *args[1:])
            print(" ".join([first.verb.name, *(_text(a) for a in first.args)]), file=out, flush=True)
            async with replies:
                async for msg in replies:
                    print(" ".join([msg.verb.name, *(_text(a) for a in msg.args)]), file=out, flush=True)
        else:
            raise CtlError(f"unknown verb {verb!r} (see swarmctl --help)")
        await root.aclose()
    return 0


def parse_args(args: list[str]) -> tuple[RemoteOptions, float, str, list[str]]:
    # options come before the URL; everything after the verb belongs to it
    head: list[str] = []
    timeout = DEFAULT_TIMEOUT
    i = 0
    while i < len(args) and args[i].startswith("--"):
        a = args[i]
        name, eq, value = a.partition("=")
        if name == "--timeout":
            if not eq:
                i += 1
                if i >= len(args):
                    raise CtlError("--timeout needs a value")
                value = args[i]
            try:
                timeout = float(value)
            except ValueError:
                raise CtlError(f"bad --timeout {value!r}") from None
        else:
            head.append(a)
            if not eq and name in ("--cert", "--key", "--ca"):
                i += 1
                if i < len(args):
                    head.append(args[i])
        i += 1
    rest = args[i:]
    if len(rest) < 2:
        raise CtlError("usage: swarmctl [--cert F --key F --ca F] [--timeout S] URL VERB [ARGS...] (see --help)")
    url, verb, verb_args = rest[0], rest[1].lower(), rest[2:]
    import libchan

    from .backends._remote import RemoteOptions, parse_options

    try:
        opts, _ = parse_options(head, "see swarmctl --help")
        address = libchan.parse_url(url)
    except (UsageError, ValueError) as exc:
        raise CtlError(str(exc)) from None
    o = RemoteOptions(url, opts.get("--cert"), opts.get("--key"), opts.get("--ca"), address.scheme)
    if o.scheme != "tls" and opts:
        raise CtlError("--cert/--key/--ca are only for tls:// URLs")
    if (o.cert is None) != (o.key is None):
        raise CtlError("--cert and --key go together")
    return o, timeout, verb, verb_args


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _one_line(exc: BaseException) -> str:
    from .backends._remote import describe

    return " ".join(exc.text.split()) if isinstance(exc, RemoteError) else describe(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    status = _main(args)
    if argv is None:
        sys.exit(status)
    return status


def _main(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    import trio

    from .backends._remote import client_context

    try:
        o, timeout, verb, verb_args = parse_args(args)
        ssl = client_context(o, "swarmctl") if o.scheme == "tls" else None
    except (CtlError, UsageError) as exc:
        print(f"swarmctl: {exc}", file=sys.stderr)
        return 1
    try:
        return trio.run(run, o.url, ssl, timeout, verb, verb_args)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # noqa: BLE001 -- one line, never a traceback
        leaves = _leaves(exc)
        if any(isinstance(e, KeyboardInterrupt) for e in leaves):
            return 130
        if any(isinstance(e, SystemExit) for e in leaves):
            raise
        if isinstance(leaves[0], BrokenPipeError):
            return 1
        print(f"swarmctl: {_one_line(leaves[0])}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    main()
