"""rexec: run a command on a remote server, with its stdio streamed live both ways.

A port of Go libchan's ``examples/rexec``. The client sends one message::

    {"cmd": "cat", "args": [...],
     "stdin":  ReadOnly(local stdin),     # the server reads it
     "stdout": WriteOnly(local stdout),   # the server writes it
     "stderr": WriteOnly(local stderr),
     "status": Sender}                    # the server sends {"status": int} on it

and the server runs the command, copies bytes between the three byte streams
and the process' pipes as they come, and, once the command exited and its
output ended, sends its exit status.

With ``--profile spdy`` the client speaks Go libchan's wire (SPDY/3.1 +
msgpack) and sends the message Go's rexec client sends, which is what Go's
rexec server decodes into its ``RemoteCommand`` struct::

    {"Cmd": "cat", "Args": [...],
     "Stdin": <duplex>, "Stdout": <duplex>, "Stderr": <duplex>,   # msgpack ext 1
     "StatusChan": Sender}                # the server sends {"Status": int} on it

(Go sends its ``*os.File`` stdio as duplex streams; reading its stdout fails at
once, so that stream's client-to-server half ends at once, and so does ours.)
The server accepts both profiles on one port and both shapes of message, and
answers a Go-shaped request with ``{"Status": n}`` (Go's client decodes the
reply into ``CommandResponse{Status int}``, matching field names exactly).

Go's own programs (``examples/rexec/client.go`` and ``rexec_server/server.go``)
use 127.0.0.1:9323 (the server listens on localhost:9323); their TLS is
switched on by ``USE_TLS=1`` (client: no certificate check, no ALPN) and by
``TLS_CERT``/``TLS_KEY`` (server, no client certificates). So, against them::

    python -m libchan.examples.rexec server --listen tcp://127.0.0.1:9323
    python -m libchan.examples.rexec server --listen tls://127.0.0.1:9323 --cert C --key K
    python -m libchan.examples.rexec client --profile spdy --connect tcp://127.0.0.1:9323 cat
    python -m libchan.examples.rexec client --profile spdy --connect tls://127.0.0.1:9323 --ca CA cat

The h2 client runs without trio. Start-up is most of a short command's time, and
``import trio`` alone was about half of it (the client took some 190 ms to run
``true``): :func:`run_client_sync`, what ``client`` runs unless ``--profile spdy``,
drives libchan's sans-IO HTTP/2, framing and CBOR cores over a blocking socket and
``poll`` (:mod:`libchan.oneshot`) and sends the same lower-case message as
:func:`remote_exec`, with the same flow control, timeouts and error messages. The
server, ``demo``, ``--profile spdy`` and the async API (:func:`remote_exec`,
:func:`run_client`, :func:`serve`...) are trio code, in ``_rexec_trio.py``, imported
when first used.

Command lines::

    python -m libchan.examples.rexec server --listen tcp://127.0.0.1:9323
    echo hi | python -m libchan.examples.rexec client --connect tcp://127.0.0.1:9323 cat
    python -m libchan.examples.rexec demo                       # mutual TLS, one process
    python -m libchan.examples.rexec demo sh -c 'uname -a; exit 7'

With TLS, both sides take ``--cert F --key F --ca F``: the server presents
``--cert``/``--key`` and, given ``--ca``, *requires* a client certificate
signed by that CA (mutual TLS); the client verifies the server against
``--ca`` (the system trust store without it) and presents ``--cert``/``--key``.

Statuses the server answers (on the status channel):

=========================  ==========================  ===============================
what happened              lower-case request (h2      Go-shaped request (``Cmd`` ...
                           client's default)           ``StatusChan``: Go's clients,
                                                       ours with ``--profile spdy``)
=========================  ==========================  ===============================
the command exited with N  N                           N
killed by signal N         128+N                       -1 (as Go's server)
cannot start: not found    127                         10 (as Go's server)
cannot start: other error  126                         10 (as Go's server)
bad request (no ``cmd``)   2                           10 (Go's server: empty ``Cmd``)
=========================  ==========================  ===============================

A Go-shaped request is answered as Go's ``rexec_server`` answers it, so a Go client
sees the same status from either server; the lower-case one keeps the shell's
conventions. Either way, a command that cannot start also gets a one-line
``rexec: CMD: reason`` on its stderr stream (Go's server only logs it).

Exit statuses:

* ``client`` exits with the remote command's status (see the table above: a
  command killed by signal N gives 128+N, a command that cannot be found 127,
  one that cannot be run 126; from a Go-shaped answer, 10 when it could not
  start). The status -1 (Go's "killed by a signal") prints ``remote command
  was killed by a signal (status -1)`` on stderr and exits 255, as Go's client
  does (``os.Exit(-1)``). 255 also if the client itself failed (connection
  refused, TLS failure, the server went away before sending a status, any
  other status outside 0..255, each with a one-line message); 2 for usage
  errors (bad arguments or URL, missing certificate files).
* ``demo`` exits 0 when the round trip worked, whatever the remote status was
  (it prints that status on its last line), 1 if it did not, 2 for usage errors.
* ``server`` runs until interrupted; 1 if it cannot listen, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import select
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

import libchan

from ._rexec_common import (  # re-exported: tests and programs use them
    CLIENT_FAILURES,
    DEFAULT_DEMO_COMMAND,
    EXIT_CLIENT_FAILURE,
    EXIT_REMOTE_SIGNALED,
    EXIT_USAGE,
    GO_STATUS_CANNOT_START,
    GO_STATUS_SIGNALED,
    OUTPUT_GRACE,
    RexecError,
    UsageError,
    _describe,
    _quiet,
    _stderr_log,
    client_ssl_context,
    dup_stdio,
    server_ssl_context,
    status_of,
)

# The trio side (server, trio client, demo) is in ._rexec_trio, imported when first
# needed: the h2 client (run_client_sync) runs without trio, for its start-up time.
if TYPE_CHECKING:
    import ssl

    from libchan.oneshot import BlockingClient

    from ._rexec_trio import execute, handle_session, remote_exec, run_client, run_demo, serve

__all__ = [
    "RexecError",
    "UsageError",
    "execute",
    "handle_session",
    "serve",
    "remote_exec",
    "run_client",
    "run_client_sync",
    "dup_stdio",
    "run_demo",
    "server_ssl_context",
    "client_ssl_context",
    "main",
]

PROG = "python -m libchan.examples.rexec"


# ----------------------------------------------------------------------------------------
# Client side without trio (the h2 profile)
# ----------------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting if it was left non-blocking."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def run_client_sync(
    url: str,
    argv: Sequence[str],
    *,
    ssl: ssl.SSLContext | None = None,
    fds: tuple[int | None, int | None, int | None] | None = None,
    config: libchan.Config | None = None,
) -> int:
    """:func:`run_client` for the h2 profile, blocking and without trio; what the command
    line's client runs (``import trio`` alone would be about half of its start-up).

    It drives libchan's sans-IO HTTP/2 and CBOR cores over a blocking socket
    (:mod:`libchan.oneshot`) and sends the lower-case message of :func:`remote_exec`.
    ``fds`` are (stdin, stdout, stderr) descriptors, closed at the end (default:
    duplicates of 0, 1 and 2). Returns the remote status; raises :class:`RexecError`
    if no status came back, ``ConnectError`` (an ``OSError``) if the connection could
    not be made.
    """
    from libchan import oneshot

    if not argv:
        raise ValueError("argv must name a command")
    if fds is None:
        fds = dup_stdio()
    try:
        client = oneshot.connect(url, ssl=ssl, config=config)
        try:
            return _exec_sync(client, argv, fds)
        finally:
            client.close()
    finally:
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _exec_sync(client: BlockingClient, argv: Sequence[str], fds: tuple[int | None, int | None, int | None]) -> int:
    from libchan.h2_requests import PATH_STREAM
    from libchan.oneshot import CANCEL, PROTOCOL_ERROR, Ref, Stream

    in_fd, out_fd, err_fd = fds
    # Numbers as the trio client allocates them: the channel, then the message's references.
    top_ref = client.allocate_ref()
    top = client.open_stream(PATH_STREAM, "receiver", ref=top_ref)

    def nested(kind: str) -> Stream:
        st: Stream = client.open_stream(PATH_STREAM, kind, ref=client.allocate_ref(), parent_ref=top_ref)
        return st

    msg: dict[str, Any] = {"cmd": argv[0], "args": list(argv[1:])}
    stdin = nested("read-stream")
    msg["stdin"] = Ref("read-stream", stdin.ref or 0)
    sinks: list[Stream] = []
    for name, fd in (("stdout", out_fd), ("stderr", err_fd)):
        if fd is None:
            continue  # (as remote_exec: no sink, no stream)
        sink = nested("write-stream")

        def write(data: bytes, fd: int = fd, sink: Stream = sink) -> None:
            if sink.error is not None:
                return
            try:
                _write_all(fd, data)
            except OSError as exc:  # closed stdout (EPIPE): this output is dropped from now on
                client.reset(sink, CANCEL, f"local output failed: {exc}")

        sink.on_item = write
        sinks.append(sink)
        msg[name] = Ref("write-stream", sink.ref or 0)
    status = nested("sender")
    msg["status"] = Ref("sender", status.ref or 0)
    replies: list[Any] = []

    def on_status(payload: bytes) -> None:
        try:
            replies.append(client.decode(payload))
        except libchan.LibchanError as exc:
            client.reset(status, PROTOCOL_ERROR, str(exc))

    status.on_item = on_status
    client.send_message(top, msg)
    client.end(top)
    if in_fd is None:
        client.end(stdin)  # the command reads end-of-file at once

    grace_end: float | None = None
    while True:
        now = time.monotonic()
        if replies:
            # The server ended stdout/stderr before it sent the status; let the last
            # bytes arrive (they may come on other streams, after the status).
            if grace_end is None:
                grace_end = now + OUTPUT_GRACE
            if all(s.in_ended for s in sinks) or now >= grace_end or client.closed_reason is not None:
                break
        elif top.status not in (None, "200"):
            raise RexecError(f"the server refused the request ({top.error})")
        elif status.in_ended or client.closed_reason is not None:
            err = _closed_error(client)
            if err is not None:
                raise err
            why = client.closed_reason or status.error
            raise RexecError(
                "the server sent no exit status" + (f" ({why})" if why else " (it closed the status channel)")
            )
        want_stdin = in_fd is not None and client.sendable(stdin) > 0
        wait = grace_end - now if grace_end is not None else 3600.0
        ready = client.poll(wait, (in_fd,) if want_stdin and in_fd is not None else ())
        if ready and in_fd is not None:
            n = client.sendable(stdin)
            if n <= 0:
                continue
            try:
                data = os.read(in_fd, n)
            except BlockingIOError:
                continue
            except OSError:
                data = b""  # (a terminal gone: its end)
            if data:
                client.send_bytes(stdin, data)
            else:
                client.end(stdin)
    reply = replies[0]
    return status_of(reply)


def _closed_error(client: BlockingClient) -> OSError | None:
    from libchan.oneshot import closed_error

    return closed_error(client)

# ----------------------------------------------------------------------------------------
# TLS
# ----------------------------------------------------------------------------------------


def _tls_options(args: argparse.Namespace, url: str, *, server: bool) -> ssl.SSLContext | None:
    try:
        address = libchan.parse_url(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    given = [f"--{n}" for n in ("cert", "key", "ca") if getattr(args, n) is not None]
    if address.scheme != "tls":
        if given:
            raise UsageError(f"{', '.join(given)} only apply to tls:// URLs, not {url}")
        return None
    if args.key is not None and args.cert is None:
        raise UsageError("--key needs --cert")
    if server:
        if args.cert is None:
            raise UsageError("a tls:// server needs --cert (and --key unless the cert file holds it)")
        return server_ssl_context(args.cert, args.key, args.ca)
    return client_ssl_context(args.ca, args.cert, args.key)


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Run commands on a remote server over libchan, stdio streamed live both ways "
        "(a port of Go libchan's examples/rexec).",
        epilog="URLs: tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH.",
    )
    sub = p.add_subparsers(dest="mode", required=True, metavar="{server,client,demo}", parser_class=_Parser)

    def tls(sp: argparse.ArgumentParser, server: bool) -> None:
        g = sp.add_argument_group("TLS (tls:// URLs only)")
        if server:
            g.add_argument("--cert", metavar="F", help="server certificate chain (PEM)")
            g.add_argument("--key", metavar="F", help="its private key (PEM; default: in --cert)")
            g.add_argument("--ca", metavar="F", help="require client certificates signed by this CA (mutual TLS)")
        else:
            g.add_argument("--cert", metavar="F", help="client certificate chain to present (PEM)")
            g.add_argument("--key", metavar="F", help="its private key (PEM; default: in --cert)")
            g.add_argument("--ca", metavar="F", help="verify the server against this CA (default: system roots)")

    def profile(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--profile",
            choices=("h2", "spdy"),
            default="h2",
            help="wire profile: h2 (HTTP/2 + CBOR, default) or spdy (SPDY/3.1 + msgpack, Go libchan's;"
            " the request is then Go-shaped, so Go's rexec server understands it)",
        )

    s = sub.add_parser("server", help="serve: run the commands clients send", description="Serve rexec requests.")
    s.add_argument("--listen", required=True, metavar="URL", help="where to listen (port 0: any free port)")
    s.add_argument("-q", "--quiet", action="store_true", help="do not log commands to stderr")
    tls(s, server=True)

    c = sub.add_parser(
        "client",
        help="run CMD [ARGS...] on a server",
        description="Run CMD [ARGS...] on the server with this process' stdin, stdout and stderr; "
        "exit with its status (255 if the client failed).",
    )
    c.add_argument("--connect", required=True, metavar="URL", help="the server's URL")
    profile(c)
    tls(c, server=False)
    c.add_argument("cmd", metavar="CMD", help="the command to run remotely")
    c.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="its arguments")

    d = sub.add_parser(
        "demo",
        help="server + client in one process over mutual TLS",
        description="Start a server and a client in this process over mutual TLS with throwaway "
        "certificates (trustme), run CMD (default: " + shlex.join(DEFAULT_DEMO_COMMAND) + ") "
        "and print its output and exit status. Exits 0 if the round trip worked, whatever the status.",
    )
    profile(d)
    d.add_argument("cmd", nargs="?", metavar="CMD", help="the command to run remotely")
    d.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="its arguments")
    return p


def _restore_blocking() -> Callable[[], None]:
    """FdStream makes fds non-blocking, which a shared terminal would keep; undo that at exit."""
    saved = {}
    for fd in (0, 1, 2):
        try:
            saved[fd] = os.get_blocking(fd)
        except OSError:
            pass

    def restore() -> None:
        for fd, blocking in saved.items():
            try:
                os.set_blocking(fd, blocking)
            except OSError:
                pass

    return restore


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    prog = f"rexec {args.mode}"
    restore = _restore_blocking()
    try:
        if args.mode == "server":
            ctx = _tls_options(args, args.listen, server=True)
            log = _quiet if args.quiet else _stderr_log("rexec server: ")
            from . import _rexec_trio as rt  # (the trio side)
            import trio

            async def server_main() -> None:
                async with trio.open_nursery() as nursery:
                    urls = await nursery.start(
                        lambda task_status: rt.serve(args.listen, ssl=ctx, log=log, task_status=task_status)
                    )
                    # Always printed (tests and scripts read the bound port from it).
                    print(f"rexec server: listening on {' '.join(urls)}", file=sys.stderr, flush=True)

            try:
                rt._trio_run(server_main)
            except OSError as exc:
                print(f"{prog}: error: cannot listen on {args.listen}: {_describe(exc)}", file=sys.stderr)
                return 1
            return 0

        if args.mode == "client":
            ctx = _tls_options(args, args.connect, server=False)
            command = [args.cmd, *args.args]
            fds = dup_stdio()
            failures: tuple[type[BaseException], ...] = CLIENT_FAILURES
            try:
                if args.profile == "h2":
                    code = run_client_sync(args.connect, command, ssl=ctx, fds=fds)
                else:
                    from . import _rexec_trio as rt  # (the trio side)

                    failures = rt._FAILURES
                    code = rt._trio_run(
                        lambda: rt.run_client(args.connect, command, ssl=ctx, fds=fds, profile=args.profile)
                    )
            except failures as exc:
                # ConnectError already says what was seen and what to try (diagnosis.py).
                print(f"{prog}: error: {args.connect}: {_describe(exc)}", file=sys.stderr)
                return EXIT_CLIENT_FAILURE
            if code == GO_STATUS_SIGNALED:
                print(f"{prog}: remote command was killed by a signal (status {code})", file=sys.stderr)
                return EXIT_REMOTE_SIGNALED
            if not 0 <= code <= 255:
                print(f"{prog}: remote status {code} is not a valid exit status", file=sys.stderr)
                return EXIT_CLIENT_FAILURE
            return code

        command = [args.cmd, *args.args] if args.cmd else list(DEFAULT_DEMO_COMMAND)
        fds = dup_stdio()
        from . import _rexec_trio as rt  # (the trio side)

        try:
            rt._trio_run(lambda: rt.run_demo(command, fds=fds, profile=args.profile))
        except rt._FAILURES as exc:
            print(f"{prog}: error: {_describe(exc)}", file=sys.stderr)
            return 1
        return 0
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


_TRIO_SIDE = ("execute", "handle_session", "serve", "remote_exec", "run_client", "run_demo")


def __getattr__(name: str) -> Any:
    """The trio side's names (PEP 562), imported when first used."""
    if name in _TRIO_SIDE:
        from . import _rexec_trio

        value = getattr(_rexec_trio, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
