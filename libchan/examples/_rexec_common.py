"""What both sides of rexec (:mod:`libchan.examples.rexec`) share: its constants, errors,
TLS contexts and error descriptions. No trio here: the h2 client runs without it, the
trio side (:mod:`._rexec_trio`) imports this module as the command line does.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable

import libchan

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_DEMO_COMMAND",
    "OUTPUT_GRACE",
    "EXIT_CLIENT_FAILURE",
    "EXIT_USAGE",
    "GO_STATUS_CANNOT_START",
    "GO_STATUS_SIGNALED",
    "EXIT_REMOTE_SIGNALED",
    "CLIENT_FAILURES",
    "Log",
    "RexecError",
    "UsageError",
    "dup_stdio",
    "server_ssl_context",
    "client_ssl_context",
    "status_of",
]

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

Log = Callable[[str], None]


class RexecError(Exception):
    """The client could not run the command remotely (a one-line explanation)."""


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


def status_of(reply: Any) -> int:
    """The exit status in the server's answer on the status channel: ``{"status": n}``
    (``{"Status": n}`` from a Go-shaped exchange). RexecError if it holds none."""
    code = reply.get("status") if isinstance(reply, dict) else None
    if code is None and isinstance(reply, dict):
        code = reply.get("Status")
    if not isinstance(code, int) or isinstance(code, bool):
        raise RexecError(f"the server sent a malformed status: {reply!r}")
    return code


def _stderr_log(prefix: str) -> Log:
    def log(text: str) -> None:
        print(f"{prefix}{text}", file=sys.stderr, flush=True)

    return log


def _quiet(text: str) -> None:
    pass


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


def _check_files(**files: str | None) -> None:
    for option, path in files.items():
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"--{option} {path}: no such file")


def server_ssl_context(cert: str, key: str | None = None, ca: str | None = None) -> ssl.SSLContext:
    """Server context presenting ``cert``; with ``ca``, clients must present a cert it signed."""
    import ssl

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
    import ssl

    _check_files(ca=ca, cert=cert, key=key)
    try:
        ctx = ssl.create_default_context(cafile=ca)
        if cert is not None:
            ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot load the TLS certificates: {exc}") from None
    return ctx


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    exc = _leaf(exc)
    cause = exc.__cause__ or exc.__context__
    text = str(exc)
    trio = sys.modules.get("trio")  # (only the trio client raises its errors)
    if trio is not None and isinstance(exc, trio.BrokenResourceError) and cause is not None and str(cause):
        text = f"{text}: {cause}" if text else f"connection broken: {cause}"
    ssl = sys.modules.get("ssl")  # (no TLS error without it)
    if ssl is not None and (isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError)):
        text = f"TLS failure: {text}"
    return " ".join((text or type(exc).__name__).split())


#: What a failed run of the client may raise (anything else is a bug: traceback); the
#: trio client adds trio.BrokenResourceError (_rexec_trio._FAILURES). (ssl.SSLError is
#: an OSError.)
CLIENT_FAILURES = (RexecError, OSError, libchan.LibchanError)
