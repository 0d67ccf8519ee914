"""``dockerserver``: serve the Docker Engine HTTP API, turning requests into libswarm verbs.

Args: ``[URL] [--tlscert=F --tlskey=F [--tlsverify --tlscacert=F]]``; ``URL`` is
``unix:///PATH``, ``tcp://HOST:PORT`` or ``tls://HOST:PORT`` (default
``tcp://127.0.0.1:4243``, the original's port); ``tcp://`` with ``--tlscert``/``--tlskey``
is TLS too. ``--tlsverify`` with ``--tlscacert`` requires
client certificates signed by that CA (the docker CLI's ``--tlsverify``).

Every HTTP request becomes libswarm requests sent on the service's **output** (the next
stage of the chain: an engine such as ``simulator`` or ``dockerclient``); the replies
become Docker-shaped responses. The mapping (which verb for which endpoint, exit
status, kill signals, removal, wait) is spec/DOCKER.md. HTTP is h11 over trio; the
attach endpoint upgrades the connection (``101 UPGRADED``) and speaks Docker's raw
stream: stdin from the client, stdout/stderr multiplexed in 8-byte-header frames.
Failures are Docker errors: ``{"message": ...}`` with 404 (no such container), 409
(conflicts, not running), 400 (bad input), 403 (refused by a ``policy`` stage) or 500.

Each request carries the identity of its connection (spec/LIBSWARM.md 9.6): the subject and
SANs of a verified TLS client certificate, the uid/gid/pid of a unix-socket peer
(``SO_PEERCRED``), or the TCP peer's address.

The input of the service is served by a :class:`libswarm.Server` with no handlers
(requests arriving from upstream are answered ``not implemented``).

This module is the service (arguments, listening sockets, one task per connection); the
HTTP side, the routes, the endpoints and the streams are in :mod:`libswarm.backends._docker`.
"""

from __future__ import annotations

import functools
import ssl
import sys
from typing import Any

import trio

from .._client import Client
from .._errors import UsageError
from .._identity import identity_of_stream
from .._server import Server
from .._service import Service
from ._docker.address import TLSOptions, parse_tls_options, parse_url
from ._docker.engine import Engine, status_for
from ._docker.formats import human_duration, parse_time
from ._docker.http import DEFAULT_LIMITS, Limits, refuse_connection, serve_connection
from ._docker.routes import dispatch
from ._docker.streams import frame
from ._docker.versions import API_VERSION, MIN_API_VERSION
from libchan.unix_path import clear_stale_socket, path_identity, remove_if_ours

__all__ = [
    "DockerServer", "API_VERSION", "MIN_API_VERSION", "parse_url", "frame", "status_for", "human_duration",
    "parse_time",
]

DEFAULT_URL = "tcp://127.0.0.1:4243"


def _server_ssl_context(opts: TLSOptions) -> ssl.SSLContext | None:
    if not (opts.tlscert or opts.tlskey or opts.tls or opts.tlsverify):
        return None
    if not (opts.tlscert and opts.tlskey):
        raise UsageError("dockerserver: TLS needs --tlscert and --tlskey")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(opts.tlscert, opts.tlskey)
        if opts.tlsverify:
            if not opts.tlscacert:
                raise UsageError("dockerserver: --tlsverify needs --tlscacert")
            ctx.load_verify_locations(opts.tlscacert)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"dockerserver: cannot load TLS files: {exc}") from None
    return ctx


class DockerServer(Service):
    """The Docker API front end (see the module docstring and spec/DOCKER.md)."""

    def __init__(self, *args: str, limits: Limits | None = None) -> None:
        opts = parse_tls_options(list(args), "dockerserver")
        if len(opts.args) > 1:
            raise UsageError(f"dockerserver: expected at most one URL, got {len(opts.args)}")
        self.url = opts.args[0] if opts.args else DEFAULT_URL
        self.scheme, self.host, self.port = parse_url(self.url)
        self.ssl_context = _server_ssl_context(opts)
        if self.scheme == "tls" and self.ssl_context is None:
            raise UsageError("dockerserver: tls:// needs --tlscert and --tlskey")
        self.addresses: list[str] = []
        """The URLs actually listened on (a tcp port 0 is resolved), once :attr:`ready` is set."""
        self.ready = trio.Event()
        #: What one client may make this front end hold or do (spec/DOCKER.md "Limits").
        self.limits = limits or DEFAULT_LIMITS
        self.engine: Client | None = None
        """The next stage of the chain (the service's output), while the service runs."""
        self._unix_file: tuple[int, int] | None = None  # (the socket file we bound: removed at the end if still ours)

    async def run(self, input: trio.abc.ReceiveChannel[Any], output: trio.abc.SendChannel[Any]) -> None:
        self.engine = Client(output)
        execs: dict[str, Client] = {}
        listeners = await self._listen()

        limits = self.limits
        open_connections = 0

        async def handle(stream: trio.abc.Stream) -> None:
            nonlocal open_connections
            if open_connections >= limits.max_connections:
                await refuse_connection(stream, 503, f"too many connections (at most {limits.max_connections})")
                return
            open_connections += 1
            try:
                try:
                    with trio.fail_after(limits.head_timeout):
                        identity = await identity_of_stream(stream)
                except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
                    await trio.aclose_forcefully(stream)
                    return
                engine = Engine(Client(output, identity=identity), execs)
                await serve_connection(stream, functools.partial(dispatch, engine), limits)
            finally:
                open_connections -= 1

        try:
            async with Server("dockerserver") as upstream, trio.open_nursery() as nursery:
                nursery.start_soon(upstream.serve, input)
                self.ready.set()
                print(f"dockerserver: listening on {' '.join(self.addresses)}", file=sys.stderr, flush=True)
                await trio.serve_listeners(handle, listeners, handler_nursery=nursery)
        finally:
            if self.scheme == "unix":
                remove_if_ours(self.host, self._unix_file)

    async def _listen(self) -> list[trio.abc.Listener[trio.abc.Stream]]:
        listeners: list[trio.abc.Listener[trio.abc.Stream]]
        if self.scheme == "unix":
            path = self.host
            clear_stale_socket(path)
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            try:
                await sock.bind(path)
                self._unix_file = path_identity(path)
            except OSError as exc:
                sock.close()
                raise UsageError(f"dockerserver: cannot listen on {self.url}: {exc.strerror or exc}") from None
            sock.listen(128)
            self.addresses = [f"unix://{path}"]
            listeners = [trio.SocketListener(sock)]
        else:
            try:
                tcp = await trio.open_tcp_listeners(self.port, host=self.host)
            except OSError as exc:
                raise UsageError(f"dockerserver: cannot listen on {self.url}: {exc.strerror or exc}") from None
            self.addresses = []
            for lst in tcp:
                host, port = lst.socket.getsockname()[:2]
                self.addresses.append(f"tcp://{'[' + host + ']' if ':' in host else host}:{port}")
            listeners = list(tcp)
        if self.ssl_context is not None:
            listeners = [trio.SSLListener(lst, self.ssl_context, https_compatible=True) for lst in listeners]
        return listeners
