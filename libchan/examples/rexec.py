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
import functools
import os
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
from typing import Any, Awaitable, Callable, NoReturn, Sequence, TypeVar

import trio

import libchan

__all__ = [
    "RexecError",
    "UsageError",
    "execute",
    "handle_session",
    "serve",
    "remote_exec",
    "run_client",
    "dup_stdio",
    "run_demo",
    "server_ssl_context",
    "client_ssl_context",
    "main",
]

PROG = "python -m libchan.examples.rexec"
DEFAULT_DEMO_COMMAND = [
    "sh",
    "-c",
    'echo "hello from $(uname -n), pid $$, user $(id -un 2>/dev/null || echo "?")";'
    ' echo "this line went to stderr" >&2;'
    " exit 3",
]
#: After the exit status arrived, how long to wait for the last output bytes.
OUTPUT_GRACE = 10.0
EXIT_CLIENT_FAILURE = 255
EXIT_USAGE = 2
#: Go's rexec server answers 10 when the command could not start (not found, not
#: executable, empty ``Cmd``); ours does too for a Go-shaped request.
GO_STATUS_CANNOT_START = 10
#: Go's rexec server answers -1 (Go's ``WaitStatus.ExitStatus()``) when the command was
#: killed by a signal; ours does too for a Go-shaped request.
GO_STATUS_SIGNALED = -1
#: The client's exit status when the remote status is -1 (as Go's client: ``os.Exit(-1)``).
EXIT_REMOTE_SIGNALED = 255

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
Log = Callable[[str], None]


class RexecError(Exception):
    """The client could not run the command remotely (a one-line explanation)."""


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


def _stderr_log(prefix: str) -> Log:
    def log(text: str) -> None:
        print(f"{prefix}{text}", file=sys.stderr, flush=True)

    return log


def _quiet(text: str) -> None:
    pass


# ----------------------------------------------------------------------------------------
# Server side
# ----------------------------------------------------------------------------------------


def _field(msg: dict[Any, Any], name: str) -> Any:
    """``msg[name]``, also accepting Go's capitalised field names (``Cmd``, ``StatusChan``)."""
    for key in (name, name.capitalize(), "StatusChan" if name == "status" else None):
        if key is not None and key in msg:
            return msg[key]
    return None


async def _close(obj: Any) -> None:
    if obj is None:
        return
    with trio.CancelScope(shield=True):
        with trio.move_on_after(5):
            try:
                await obj.aclose()
            except Exception:
                pass


async def _say(stream: Any, text: str) -> None:
    if stream is None:
        return
    try:
        await stream.send_all(text.encode("utf-8", "replace"))
    except (*_GONE, OSError):
        pass


async def _end(stream: Any) -> None:
    """Say end-of-file on an output stream, then let it go."""
    if stream is None:
        return
    try:
        send_eof = getattr(stream, "send_eof", None)
        if send_eof is not None:
            await send_eof()
    except (*_GONE, OSError):
        pass
    await _close(stream)


async def _send_status(status: Any, code: int, *, go_shaped: bool = False) -> None:
    if status is None:
        return
    try:
        # Go's client decodes the reply into ``CommandResponse{Status int}``: msgpack
        # matches struct fields by their exact name, so it must be "Status" there.
        await status.send({"Status" if go_shaped else "status": code})
    except (*_GONE, libchan.LibchanError):
        pass
    await _close(status)


def _exit_code(returncode: int, *, go_shaped: bool = False) -> int:
    """The status to answer for a process' return code (negative: killed by that signal)."""
    if returncode < 0:
        return GO_STATUS_SIGNALED if go_shaped else 128 - returncode
    return returncode


async def _pump_stdin(src: Any, proc_stdin: trio.abc.SendStream) -> None:
    """Remote stdin -> the process; closing the process' stdin at the end either way."""
    try:
        while True:
            try:
                data = await src.receive_some(65536)
            except _GONE:
                return
            if not data:
                return
            try:
                await proc_stdin.send_all(data)
            except _GONE:
                # The command closed its stdin (or exited): stop reading ours.
                return
    finally:
        await _close(proc_stdin)


async def execute(msg: Any, *, log: Log = _quiet) -> int | None:
    """Run the command one rexec message asks for; send its exit status; return it.

    ``msg`` is ``{"cmd", "args", "stdin", "stdout", "stderr", "status"}`` (any
    of the streams may be missing or None). Never raises for a bad message, a
    command that cannot run or a peer that went away.
    """
    if not isinstance(msg, dict):
        log(f"ignoring a message that is not a map: {type(msg).__name__}")
        return None
    # A Go client (Go's RemoteCommand struct) names its fields Cmd ... StatusChan;
    # answer it in kind: {"Status": n}.
    go_shaped = "StatusChan" in msg or "Cmd" in msg
    cmd, args = _field(msg, "cmd"), _field(msg, "args")
    stdin, stdout, stderr = _field(msg, "stdin"), _field(msg, "stdout"), _field(msg, "stderr")
    status = _field(msg, "status")
    if args is None:
        args = []
    try:
        if status is not None and not isinstance(status, trio.abc.SendChannel):
            status = None
            raise ValueError("'status' must be a Sender")
        if not isinstance(cmd, str) or not cmd:
            raise ValueError("'cmd' must be a non-empty string")
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
            raise ValueError("'args' must be a list of strings")
        if stdin is not None and not hasattr(stdin, "receive_some"):
            raise ValueError("'stdin' must be a readable byte stream")
        for name, s in (("stdout", stdout), ("stderr", stderr)):
            if s is not None and not hasattr(s, "send_all"):
                raise ValueError(f"{name!r} must be a writable byte stream")
    except ValueError as exc:
        log(f"bad request: {exc}")
        if stderr is not None and hasattr(stderr, "send_all"):
            await _say(stderr, f"rexec: bad request: {exc}\n")
        for s in (stdin, stdout, stderr):
            await _close(s)
        # Go's server cannot start an empty Cmd either: it answers 10.
        code = GO_STATUS_CANNOT_START if go_shaped else EXIT_USAGE
        await _send_status(status, code, go_shaped=go_shaped)
        return code

    argv = [cmd, *args]
    proc: trio.Process | None = None
    try:
        try:
            proc = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout is not None else subprocess.DEVNULL,
                stderr=subprocess.PIPE if stderr is not None else subprocess.DEVNULL,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
            if go_shaped:
                code = GO_STATUS_CANNOT_START
            else:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
            why = getattr(exc, "strerror", None) or str(exc)
            log(f"{shlex.join(argv)}: {why} (status {code})")
            await _say(stderr, f"rexec: {cmd}: {why}\n")
        else:
            log(f"running {shlex.join(argv)} (pid {proc.pid})")
            async with trio.open_nursery() as nursery:
                in_scope = trio.CancelScope()

                async def stdin_task(proc_stdin: trio.abc.SendStream) -> None:
                    with in_scope:
                        await _pump_stdin(stdin, proc_stdin)

                if proc.stdin is not None:
                    nursery.start_soon(stdin_task, proc.stdin)
                async with trio.open_nursery() as outputs:
                    if proc.stdout is not None:
                        outputs.start_soon(libchan.copy_stream, proc.stdout, stdout)
                    if proc.stderr is not None:
                        outputs.start_soon(libchan.copy_stream, proc.stderr, stderr)
                    returncode = await proc.wait()
                in_scope.cancel()
            code = _exit_code(returncode, go_shaped=go_shaped)
            if returncode < 0:
                log(f"{shlex.join(argv)} was killed by signal {-returncode} (status {code})")
            else:
                log(f"{shlex.join(argv)} exited with status {code}")
    finally:
        if proc is not None and proc.returncode is None:
            # Cancelled (the session ended): do not leave the command behind.
            with trio.CancelScope(shield=True):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
                await proc.wait()
            log(f"{shlex.join(argv)} killed: the client went away")
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                await _close(pipe)
        await _end(stdout)
        await _end(stderr)
        await _close(stdin)
    await _send_status(status, code, go_shaped=go_shaped)
    return code


async def handle_session(session: libchan.Session, *, log: Log = _quiet) -> None:
    """libchan.serve handler: run every message of every channel the peer opens.

    Commands run concurrently; when the session ends, the ones still running are killed.
    """
    async with trio.open_nursery() as nursery:

        async def serve_receiver(receiver: libchan.Receiver) -> None:
            try:
                async for msg in receiver:
                    nursery.start_soon(functools.partial(execute, msg, log=log))
            except (*_GONE, libchan.LibchanError) as exc:
                log(f"channel ended: {exc}")

        try:
            async for receiver in session:
                nursery.start_soon(serve_receiver, receiver)
        except (*_GONE, libchan.LibchanError) as exc:
            log(f"session ended: {exc}")
        nursery.cancel_scope.cancel()


async def serve(
    url: str,
    *,
    ssl: ssl.SSLContext | None = None,
    log: Log = _quiet,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve rexec on ``url`` until cancelled; ``nursery.start`` returns the bound URLs."""

    async def handler(session: libchan.Session) -> None:
        await handle_session(session, log=log)

    await libchan.serve(url, handler, ssl=ssl, task_status=task_status)


# ----------------------------------------------------------------------------------------
# Client side
# ----------------------------------------------------------------------------------------


class _Tracked(trio.abc.HalfCloseableStream):
    """A local output sink that says (``done``) when the remote side ended it.

    Sent as a duplex stream (the Go shape), its read half is at end-of-file at
    once, as reading Go's ``*os.File`` stdout fails at once: the server's side
    of the stream sees end-of-file, and may still write.
    """

    def __init__(self, inner: trio.abc.SendStream | None) -> None:
        self.inner = inner  # None: discard what arrives
        self.done = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.inner is None:
            await trio.lowlevel.checkpoint()
            return
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        if self.inner is None:
            await trio.lowlevel.checkpoint()
            return
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        try:
            if self.inner is None:
                await trio.lowlevel.checkpoint()
                return
            send_eof = getattr(self.inner, "send_eof", None)
            if send_eof is not None:
                await send_eof()
            else:
                await self.inner.aclose()
        finally:
            self.done.set()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""  # an output sink has nothing to read

    async def aclose(self) -> None:
        try:
            if self.inner is not None:
                await self.inner.aclose()
        finally:
            self.done.set()


class _Source(trio.abc.HalfCloseableStream):
    """Local stdin as a duplex stream (the Go shape): reads come from ``inner``,
    writes (which no rexec server makes) are dropped."""

    def __init__(self, inner: trio.abc.ReceiveStream) -> None:
        self.inner = inner

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        # The server ended its (unused) direction: keep reading stdin for it.
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def remote_exec(
    session: libchan.Session,
    argv: Sequence[str],
    *,
    stdin: trio.abc.ReceiveStream | None,
    stdout: trio.abc.SendStream | None,
    stderr: trio.abc.SendStream | None,
    go_shaped: bool | None = None,
) -> int:
    """Run ``argv`` on the server of ``session``; return its exit status.

    ``stdin`` is read and sent to the command (None: an empty stdin);
    ``stdout``/``stderr`` receive its output as it comes (None: discarded).
    Returns once the status arrived and the output streams were ended (they
    are closed then). Raises :class:`RexecError` if no status came back.

    ``go_shaped`` (default: true in the ``spdy`` profile) sends the message
    as Go libchan's rexec client does, which Go's rexec server needs::

        {"Cmd": .., "Args": [..], "Stdin": <duplex>, "Stdout": <duplex>,
         "Stderr": <duplex>, "StatusChan": Sender}     -> reply {"Status": n}

    All three stdio streams are then duplex (ext 1, as Go sends its
    ``*os.File`` stdio) and always present (Go's server closes Stdout and
    Stderr without checking them for nil). Otherwise the message is the
    lower-case one, with read-only stdin and write-only stdout/stderr.
    """
    if not argv:
        raise ValueError("argv must name a command")
    if go_shaped is None:
        go_shaped = session.profile == "spdy"
    if stdin is None:
        feed, stdin = libchan.stream_pipe()
        await feed.aclose()  # the command reads end-of-file at once
    sinks = []
    if go_shaped:
        outputs: list[Any] = []
        for sink in (stdout, stderr):
            tracked = _Tracked(sink)
            sinks.append(tracked)
            outputs.append(tracked)  # a trio Stream: sent as duplex (ext 1)
        status_tx, status_rx = libchan.pipe()
        msg: dict[str, Any] = {
            "Cmd": argv[0],
            "Args": list(argv[1:]),
            "Stdin": _Source(stdin),
            "Stdout": outputs[0],
            "Stderr": outputs[1],
            "StatusChan": status_tx,
        }
    else:
        msg = {"cmd": argv[0], "args": list(argv[1:]), "stdin": libchan.ReadOnly(stdin)}
        for name, sink in (("stdout", stdout), ("stderr", stderr)):
            if sink is not None:
                tracked = _Tracked(sink)
                sinks.append(tracked)
                msg[name] = libchan.WriteOnly(tracked)
        status_tx, status_rx = libchan.pipe()
        msg["status"] = status_tx

    sender = await session.open_sender()
    try:
        await sender.send(msg)
    finally:
        await sender.aclose()
    try:
        reply = await status_rx.receive()
    except (trio.EndOfChannel, *_GONE):
        why = session.closed_reason if session.closed else None
        raise RexecError(
            "the server sent no exit status" + (f" ({why})" if why else " (it closed the status channel)")
        ) from None
    finally:
        await status_rx.aclose()
    # The server ended stdout/stderr before it sent the status; let the last
    # bytes reach the local sinks before the caller ends the session.
    with trio.move_on_after(OUTPUT_GRACE):
        for tracked in sinks:
            await tracked.done.wait()
    code = reply.get("status") if isinstance(reply, dict) else None
    if code is None and isinstance(reply, dict):
        code = reply.get("Status")
    if not isinstance(code, int) or isinstance(code, bool):
        raise RexecError(f"the server sent a malformed status: {reply!r}")
    return code


def dup_stdio() -> tuple[int | None, int | None, int | None]:
    """Duplicate fds 0, 1 and 2 (None for one that is not open).

    Call this *before* ``trio.run``: trio opens descriptors of its own, which
    would take the number of a closed fd 0 (as with ``cmd <&-``) and be
    mistaken for stdin.
    """
    fds: list[int | None] = []
    for fd in (0, 1, 2):
        try:
            fds.append(os.dup(fd))
        except OSError:  # fd not open
            fds.append(None)
    return fds[0], fds[1], fds[2]


async def run_client(
    url: str,
    argv: Sequence[str],
    *,
    ssl: ssl.SSLContext | None = None,
    fds: tuple[int | None, int | None, int | None] | None = None,
    profile: str = "h2",
) -> int:
    """Connect to ``url`` and run ``argv`` there with local stdio; return its status.

    ``profile`` is the wire profile: ``"h2"`` or ``"spdy"`` (Go libchan's; the
    message is then Go-shaped, see :func:`remote_exec`).

    ``fds`` are (stdin, stdout, stderr) descriptors that become the client's
    (they are closed at the end); by default duplicates of 0, 1 and 2 (see
    :func:`dup_stdio` for why a program should rather pass them itself).
    """
    if fds is None:
        fds = dup_stdio()
    streams = [trio.lowlevel.FdStream(fd) if fd is not None else None for fd in fds]
    try:
        async with libchan.connect(url, ssl=ssl, profile=profile) as session:
            return await remote_exec(session, argv, stdin=streams[0], stdout=streams[1], stderr=streams[2])
    finally:
        for s in streams:
            await _close(s)


# ----------------------------------------------------------------------------------------
# TLS
# ----------------------------------------------------------------------------------------


def _check_files(**files: str | None) -> None:
    for option, path in files.items():
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"--{option} {path}: no such file")


def server_ssl_context(cert: str, key: str | None = None, ca: str | None = None) -> ssl.SSLContext:
    """Server context presenting ``cert``; with ``ca``, clients must present a cert it signed."""
    _check_files(cert=cert, key=key, ca=ca)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
        if ca is not None:
            ctx.load_verify_locations(cafile=ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot load the TLS certificates: {exc}") from None
    return ctx


def client_ssl_context(ca: str | None = None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """Client context verifying the server against ``ca`` (default: system roots), presenting ``cert``."""
    _check_files(ca=ca, cert=cert, key=key)
    try:
        ctx = ssl.create_default_context(cafile=ca)
        if cert is not None:
            ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot load the TLS certificates: {exc}") from None
    return ctx


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
# Demo
# ----------------------------------------------------------------------------------------


async def run_demo(
    argv: Sequence[str],
    *,
    say: Log | None = None,
    fds: tuple[int | None, int | None, int | None] | None = None,
    profile: str = "h2",
) -> int:
    """Server and client in one process over mutual TLS with throwaway certificates.

    Returns the remote command's exit status.
    """
    try:
        import trustme
    except ImportError:
        raise UsageError("the demo needs the 'trustme' package (pip install trustme)") from None
    if say is None:

        def say(text: str) -> None:
            print(f"demo: {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="rexec-demo-") as tmp:
        ca = trustme.CA(organization_name="rexec demo CA")
        server_cert = ca.issue_cert("127.0.0.1", "localhost", common_name="rexec demo server")
        client_cert = ca.issue_cert("client@rexec-demo.invalid", common_name="rexec demo client")
        paths = {n: os.path.join(tmp, n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}
        ca.cert_pem.write_to_path(paths["ca.pem"])
        for name, cert in (("server", server_cert), ("client", client_cert)):
            cert.private_key_pem.write_to_path(paths[f"{name}.key"])
            for i, pem in enumerate(cert.cert_chain_pems):
                pem.write_to_path(paths[f"{name}.pem"], append=i > 0)
        server_ctx = server_ssl_context(paths["server.pem"], paths["server.key"], paths["ca.pem"])
        client_ctx = client_ssl_context(paths["ca.pem"], paths["client.pem"], paths["client.key"])
        say(f"throwaway CA, server certificate (127.0.0.1, localhost) and client certificate in {tmp}")

        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: serve(
                    "tls://127.0.0.1:0", ssl=server_ctx, log=_stderr_log("demo server: "), task_status=task_status
                )
            )
            say(f"server listening on {urls[0]} (mutual TLS: it requires a client certificate from the CA)")
            # Mutual TLS really is required: a client without a certificate gets nowhere.
            anonymous_ctx = client_ssl_context(paths["ca.pem"])
            try:
                with trio.fail_after(10):
                    await run_client(
                        urls[0], ["true"], ssl=anonymous_ctx, fds=(None, None, None), profile=profile
                    )
            except (*_FAILURES, trio.TooSlowError) as exc:
                say(f"check: a client without a certificate is refused ({_describe(exc)})")
            else:
                raise RexecError("the server accepted a client without a certificate")
            say(f"client (with its certificate, profile {profile}) runs remotely: {shlex.join(argv)}")
            code = await run_client(urls[0], argv, ssl=client_ctx, fds=fds, profile=profile)
            if code == GO_STATUS_SIGNALED:
                say(f"remote command was killed by a signal (status {code})")
            else:
                say(f"remote command exited with status {code}")
            nursery.cancel_scope.cancel()
    return code


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


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    exc = _leaf(exc)
    cause = exc.__cause__ or exc.__context__
    text = str(exc)
    if isinstance(exc, trio.BrokenResourceError) and cause is not None and str(cause):
        text = f"{text}: {cause}" if text else f"connection broken: {cause}"
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        text = f"TLS failure: {text}"
    return " ".join((text or type(exc).__name__).split())


#: What a failed run of the client or demo may raise (anything else is a bug: traceback).
_FAILURES = (RexecError, OSError, trio.BrokenResourceError, libchan.LibchanError, ssl.SSLError)


_T = TypeVar("_T")


def _trio_run(fn: Callable[[], Awaitable[_T]]) -> _T:
    """trio.run, unwrapping a single expected failure from exception groups."""
    try:
        return trio.run(fn)
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if isinstance(leaf, (*_FAILURES, UsageError, KeyboardInterrupt)):
            raise leaf from None
        raise


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

            async def server_main() -> None:
                async with trio.open_nursery() as nursery:
                    urls = await nursery.start(
                        lambda task_status: serve(args.listen, ssl=ctx, log=log, task_status=task_status)
                    )
                    # Always printed (tests and scripts read the bound port from it).
                    print(f"rexec server: listening on {' '.join(urls)}", file=sys.stderr, flush=True)

            try:
                _trio_run(server_main)
            except OSError as exc:
                print(f"{prog}: error: cannot listen on {args.listen}: {_describe(exc)}", file=sys.stderr)
                return 1
            return 0

        if args.mode == "client":
            ctx = _tls_options(args, args.connect, server=False)
            command = [args.cmd, *args.args]
            fds = dup_stdio()
            try:
                code = _trio_run(
                    lambda: run_client(args.connect, command, ssl=ctx, fds=fds, profile=args.profile)
                )
            except _FAILURES as exc:
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
        try:
            _trio_run(lambda: run_demo(command, fds=fds, profile=args.profile))
        except _FAILURES as exc:
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


if __name__ == "__main__":
    sys.exit(main())
