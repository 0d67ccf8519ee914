"""The trio side of rexec (:mod:`libchan.examples.rexec`): the server, the trio client
(both profiles: the command line uses it for ``--profile spdy``, programs through
:func:`remote_exec` and :func:`run_client`) and the demo.

:mod:`libchan.examples.rexec` re-exports these names and imports this module when one of
them is first used, so that its h2 client (:func:`~libchan.examples.rexec.run_client_sync`)
starts without importing trio.
"""

from __future__ import annotations

import functools
import os
import shlex
import signal
import ssl
import subprocess
import tempfile
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import trio

import libchan

from ..closing import aclose_quietly
from ._rexec_common import (
    CLIENT_FAILURES,
    EXIT_USAGE,
    GO_STATUS_CANNOT_START,
    GO_STATUS_SIGNALED,
    OUTPUT_GRACE,
    Log,
    RexecError,
    UsageError,
    _describe,
    _leaf,
    _quiet,
    _stderr_log,
    client_ssl_context,
    dup_stdio,
    server_ssl_context,
    status_of,
)

__all__ = ["execute", "handle_session", "serve", "remote_exec", "run_client", "run_demo"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

# ----------------------------------------------------------------------------------------
# Server side
# ----------------------------------------------------------------------------------------


def _field(msg: dict[Any, Any], name: str) -> Any:
    """``msg[name]``, also accepting Go's capitalised field names (``Cmd``, ``StatusChan``)."""
    for key in (name, name.capitalize(), "StatusChan" if name == "status" else None):
        if key is not None and key in msg:
            return msg[key]
    return None


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
    await aclose_quietly(stream)


async def _send_status(status: Any, code: int, *, go_shaped: bool = False) -> None:
    if status is None:
        return
    try:
        # Go's client decodes the reply into ``CommandResponse{Status int}``: msgpack
        # matches struct fields by their exact name, so it must be "Status" there.
        await status.send({"Status" if go_shaped else "status": code})
    except (*_GONE, libchan.LibchanError):
        pass
    await aclose_quietly(status)


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
        await aclose_quietly(proc_stdin)


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
            await aclose_quietly(s)
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
                await aclose_quietly(pipe)
        await _end(stdout)
        await _end(stderr)
        await aclose_quietly(stdin)
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
    return status_of(reply)


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
            await aclose_quietly(s)


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


#: What a failed run of the trio client or the demo may raise (anything else is a bug).
_FAILURES = (*CLIENT_FAILURES, trio.BrokenResourceError)


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
