"""URLs to sessions: :func:`connect` and :func:`serve` for tcp://, tls:// and unix://.

* ``tcp://HOST:PORT`` -- cleartext HTTP/2 with prior knowledge;
* ``tls://HOST:PORT`` -- TLS with ALPN ``h2``; certificate verification and
  hostname checking are on by default (pass your own ``ssl.SSLContext`` to
  trust a private CA or to present a client certificate for mutual TLS);
* ``unix:///PATH`` -- cleartext HTTP/2 over a unix socket.
"""

from __future__ import annotations

import logging
import socket as socket_module
import ssl as _ssl
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from .address import ALPN as _ALPN, ALPN_H2, ALPN_SPDY, Address, authority_of, parse_url
from .config import Config
from .diagnosis import describe as _describe
from .diagnosis import closed_verdict, first_bytes_verdict, looks_like_tls, silence_verdict, tls_client_verdict, tls_server_verdict
from .errors import ConnectError, LocalProtocolError, ProtocolError, SessionClosedError
from .accept import serve_listeners
from .peer import Peer, peer_of
from .unix_path import clear_stale_socket, path_identity, remove_if_ours
from .peerlog import peer_log
from .engine.budget import Account, Budget
from .engine.profiles import H2Profile, get_profile
from .engine.link import Link
from .spdy_like.mux import ENHANCE_YOUR_CALM, StreamOpened
from .compat.trio_ssl import pending_output
from .engine.core import REFUSED_STREAM, SessionCore, refusal_without_session
from .session import Session

__all__ = ["connect", "serve", "parse_url", "Address"]

log = logging.getLogger("libchan")


class _PrefixedStream(trio.abc.HalfCloseableStream):
    """A stream whose first bytes were already read (protocol sniffing)."""

    def __init__(self, prefix: bytes, inner: trio.abc.Stream) -> None:
        self._prefix = prefix
        self.inner = inner

    def unwrap_prefix(self) -> tuple[bytes, trio.abc.Stream]:
        """The bytes not yet handed out and the stream under them (nothing is consumed):
        lets the session's link read the socket directly."""
        return self._prefix, self.inner

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            n = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        send_eof = getattr(self.inner, "send_eof", None)
        if send_eof is None:
            await trio.lowlevel.checkpoint()
            return
        await send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def sniff_profile(stream: trio.abc.Stream) -> tuple[str, trio.abc.Stream]:
    """Tell HTTP/2 (its preface) from SPDY/3 (a control frame, first byte 0x80) by the first bytes."""
    data = b""
    while len(data) < 4:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ProtocolError("the peer closed the connection before saying anything")
        data += chunk
        if looks_like_tls(data):
            raise ProtocolError("the client speaks TLS to this plaintext port (it should connect with tcp://)")
        if data[:1] == b"\x80":
            return "spdy", _PrefixedStream(data, stream)
        if not b"PRI ".startswith(data[:4]):
            break
    # HTTP/2 (or garbage, which the HTTP/2 machinery rejects with GOAWAY)
    return "h2", _PrefixedStream(data, stream)


def _client_context(ssl: _ssl.SSLContext | None, profile: str) -> _ssl.SSLContext:
    ctx = ssl if ssl is not None else _ssl.create_default_context()
    ctx.set_alpn_protocols([_ALPN[profile]])
    return ctx


def _server_context(ssl: _ssl.SSLContext | None) -> _ssl.SSLContext:
    """The server's context, with ALPN h2 and spdy/3.1 set on it (it is modified in place)."""
    if ssl is None:
        raise LocalProtocolError("a tls:// server needs ssl= (an SSLContext with its certificate)")
    ssl.set_alpn_protocols([ALPN_H2, ALPN_SPDY])
    return ssl


async def open_transport(
    address: Address,
    *,
    ssl: _ssl.SSLContext | None = None,
    profile: str = "h2",
    handshake_timeout: float = 5.0,
) -> trio.abc.Stream:
    """Open the byte stream for ``address`` (TLS handshake and ALPN check included).

    With ``profile="spdy"`` a server that selects no ALPN protocol is accepted:
    Go libchan's TLS servers do not do ALPN. A TLS failure raises
    :class:`~libchan.ConnectError` naming the likely cause."""
    if address.scheme == "unix":
        return await trio.open_unix_socket(address.path)
    if address.scheme == "tcp":
        return await trio.open_tcp_stream(address.host, address.port)
    ctx = _client_context(ssl, profile)
    stream = await trio.open_ssl_over_tcp_stream(address.host, address.port, ssl_context=ctx, https_compatible=True)
    try:
        try:
            with trio.fail_after(handshake_timeout):
                await stream.do_handshake()
        except trio.TooSlowError:
            raise ConnectError(
                f"{address}: the TLS handshake did not finish within {handshake_timeout:g}s: the server"
                " probably does not speak TLS on this port (use tcp://)"
            ) from None
        except (trio.BrokenResourceError, _ssl.SSLError) as exc:
            verdict = tls_client_verdict(exc)
            if verdict is None:
                raise
            raise ConnectError(f"{address}: {verdict} ({_describe(exc)})") from exc
        selected = stream.selected_alpn_protocol()
        if selected != _ALPN[profile] and not (profile == "spdy" and selected is None):
            if selected is None:
                fix = "it is not a libchan HTTP/2 server; a Go libchan server (no ALPN) needs profile='spdy'"
            else:
                fix = f"it speaks {selected!r}" + (
                    "; connect with profile='spdy'" if selected == ALPN_SPDY else
                    "; connect with profile='h2'" if selected == ALPN_H2 else ""
                )
            raise ConnectError(
                f"{address}: the TLS server did not agree to {_ALPN[profile]} via ALPN"
                f" (it selected {selected!r}): {fix}"
            )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def _await_server(session: Session, address: Address, profile: str, timeout: float) -> None:
    """Wait for the server's first bytes; if they do not come, or show a peer of
    another protocol, end the connection and raise ConnectError saying so."""
    link = session._core._own_link
    assert link is not None
    with trio.move_on_after(timeout):
        await link.wait_first_input()
    verdict = _link_verdict(link, address, profile, timeout)
    if verdict is not None:
        link.abort(verdict)
        raise ConnectError(f"{address}: {verdict}")


def _link_verdict(link: Link, address: Address, profile: str, timeout: float) -> str | None:
    """What the server's first bytes (or their absence, or how the connection ended)
    say about it: None if it looks like the libchan server asked for."""
    verdict: str | None
    if link.first_input is not None:
        verdict = first_bytes_verdict(link.first_input, profile)
    elif link.closed_reason is None:
        verdict = silence_verdict(profile, address.scheme, timeout)
    else:
        verdict = None
        if link.read_error is not None and address.scheme == "tls":
            verdict = tls_client_verdict(link.read_error)
        if verdict is None:
            verdict = closed_verdict(profile, address.scheme, link.closed_reason)
    return verdict


@asynccontextmanager
async def connect(
    url: str,
    *,
    ssl: _ssl.SSLContext | None = None,
    config: Config | None = None,
    profile: str = "h2",
) -> AsyncIterator[Session]:
    """Connect to a libchan server and yield a client :class:`Session`.

    ``async with libchan.connect("tls://host:9323", ssl=ctx) as session: ...``

    ``profile`` is ``"h2"`` (HTTP/2 + CBOR, the default) or ``"spdy"`` (SPDY/3.1 +
    msgpack, what Go libchan speaks).
    """
    address = parse_url(url)
    if profile not in _ALPN:
        raise ValueError(f"unknown libchan profile {profile!r} (use 'h2' or 'spdy')")
    timeout = (config or Config()).handshake_timeout
    stream = await open_transport(address, ssl=ssl, profile=profile, handshake_timeout=timeout)
    authority = authority_of(address)
    scheme = "https" if address.scheme == "tls" else "http"
    session = Session(stream, config=config, authority=authority, scheme=scheme, profile=profile)
    entered = False
    try:
        async with session:
            entered = True
            await _await_server(session, address, profile, timeout)
            yield session
    except trio.BrokenResourceError as exc:
        if entered:
            raise
        # The server's first bytes (a peer of another protocol) may end the connection
        # before the session's control stream is opened: say what they show.
        link = session._core._own_link
        verdict = None if link is None else _link_verdict(link, address, profile, timeout)
        if verdict is None:
            raise
        raise ConnectError(f"{address}: {verdict}") from exc


class _Server:
    """Routes requests from any number of connections to sessions by ``libchan-session``,
    within the server's budget (spec 14.1): connections, sessions, bytes held."""

    def __init__(self, handler: Callable[[Session], Awaitable[Any]], config: Config, nursery: trio.Nursery) -> None:
        self.handler = handler
        self.config = config
        self.nursery = nursery
        self.sessions: dict[str, SessionCore] = {}
        #: The peer address of each HTTP/2 connection (for the log of its sessions).
        self.peers: dict[Link, str] = {}
        self.budget = Budget(
            server_buffer=config.server_buffer,
            per_connection=config.connection_buffer,
            connection_window=config.connection_window,
            max_connections=config.max_connections,
        )
        #: HTTP/2 connections are granted at most half their buffer as connection window.
        self.link_config = replace(config, connection_window=self.budget.window)
        #: The sessions that had requests on each HTTP/2 connection (its end concerns them only).
        self.link_sessions: dict[Link, dict[SessionCore, None]] = {}
        #: Every running session (named, anonymous, Go profile) and the connections it used.
        self.session_links: dict[SessionCore, set[Link]] = {}
        #: Who is at the far end of each HTTP/2 connection, and of each session (its first one's).
        self.link_principals: dict[Link, Peer] = {}
        self.session_principals: dict[SessionCore, Peer] = {}
        #: Connections still in their TLS handshake or first bytes: they count against
        #: max_connections too (each holds a socket, and TLS state), so that peers that
        #: never finish a handshake cannot hold more than that many.
        self.handshaking = 0

    async def handle_connection(self, transport: trio.abc.Stream) -> None:
        peer = peer_name(transport)
        if self.handshaking and self.handshaking + self.budget.connections >= self.config.max_connections:
            peer_log(log, logging.WARNING, "refused a connection from %s: max_connections (%d) reached, %d of them in their handshake",
                     peer, self.config.max_connections, self.handshaking)
            await trio.aclose_forcefully(transport)
            return
        self.handshaking += 1
        try:
            handshaken = await self._handshake(transport, peer)
        except Exception:
            log.exception("libchan connection handler failed")
            return
        finally:
            self.handshaking -= 1
        if handshaken is None:
            return
        transport, profile = handshaken
        try:
            account = self.budget.open_account(peer)
            if account is None:
                await self._refuse_connection(transport, profile, peer, f"max_connections ({self.config.max_connections}) reached")
                return
            try:
                await self._run_connection(transport, profile, peer, account, peer_of(transport))
            finally:
                self.budget.close_account(account)
        except Exception:
            log.exception("libchan connection handler failed")

    async def _handshake(self, transport: trio.abc.Stream, peer: str) -> tuple[trio.abc.Stream, str] | None:
        """The TLS handshake, then the profile (ALPN, or the first bytes): the transport
        to go on with and its profile, or None when the connection was refused (and
        closed), each within ``handshake_timeout``."""
        if isinstance(transport, trio.SSLStream):
            try:
                with trio.fail_after(self.config.handshake_timeout):
                    await transport.do_handshake()
            except (trio.BrokenResourceError, _ssl.SSLError, OSError, trio.TooSlowError) as exc:
                peer_log(log, logging.WARNING, "refused a TLS connection from %s: %s", peer, tls_server_verdict(exc))
                await _send_alert(transport)
                await trio.aclose_forcefully(transport)
                return None
            selected = transport.selected_alpn_protocol()
            if selected not in (None, ALPN_H2, ALPN_SPDY):
                peer_log(log, logging.WARNING, "refused a connection from %s: ALPN %r is neither h2 nor spdy/3.1", peer, selected)
                await trio.aclose_forcefully(transport)
                return None
        else:
            selected = None
        if selected == ALPN_SPDY:
            profile = "spdy"
        elif selected == ALPN_H2:
            profile = "h2"
        else:
            # No ALPN (cleartext, or a TLS client such as Go libchan's that offers none):
            # one port serves both profiles, told apart by the first bytes.
            try:
                with trio.fail_after(self.config.handshake_timeout):
                    profile, transport = await sniff_profile(transport)
            except ProtocolError as exc:
                peer_log(log, logging.WARNING, "refused a connection from %s: %s", peer, exc)
                await trio.aclose_forcefully(transport)
                return None
            except (trio.TooSlowError, trio.BrokenResourceError, _ssl.SSLError, OSError) as exc:
                peer_log(log, logging.INFO, "dropping the connection from %s: %s", peer, _describe(exc) if str(exc) else "it said nothing in time")
                await trio.aclose_forcefully(transport)
                return None
        return transport, profile

    async def _run_connection(self, transport: trio.abc.Stream, profile: str, peer: str, account: Account,
                              principal: Peer) -> None:
        if profile == "spdy":
            # SPDY: one connection is one session.
            if len(self.session_links) >= self.config.max_sessions:
                await self._refuse_connection(transport, profile, peer, f"max_sessions ({self.config.max_sessions}) reached")
                return
            # No window to grant: the connection stops reading while it holds more than
            # half its buffer unread (the other half for partial messages and output).
            account.soft = account.limit // 2
            session = SessionCore(transport, server_side=True, config=self.config, profile="spdy", account=account, peer=peer)
            self.session_links[session] = set()
            self.session_principals[session] = principal
            await self._run_session(session, None, peer)
            return
        c = self.link_config
        mux = H2Profile().make_mux(client_side=False, config=c)
        link = Link(transport, mux, c, on_stream_opened=self._route, on_closed=self._link_closed, account=account, peer=peer)
        self.peers[link] = peer
        self.link_principals[link] = principal
        self.link_sessions[link] = {}
        try:
            await link.run()
        finally:
            self.peers.pop(link, None)
            self.link_principals.pop(link, None)
            self.link_sessions.pop(link, None)

    async def _refuse_connection(self, transport: trio.abc.Stream, profile: str, peer: str, why: str) -> None:
        """Say GOAWAY(ENHANCE_YOUR_CALM) (SPDY: GOAWAY PROTOCOL_ERROR) and close."""
        peer_log(log, logging.WARNING, "refused a connection from %s (GOAWAY ENHANCE_YOUR_CALM): %s", peer, why)
        mux = get_profile(profile).make_mux(client_side=False, config=self.config)
        mux.close(ENHANCE_YOUR_CALM, why)
        try:
            with trio.move_on_after(1):
                await transport.send_all(mux.data_to_send())
                # Lingering close: a socket closed with unread input is reset, and the
                # reset may destroy our GOAWAY before the peer reads it.
                while await transport.receive_some(65536):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, _ssl.SSLError):
            pass
        finally:
            await trio.aclose_forcefully(transport)

    def _route(self, link: Link, ev: StreamOpened) -> None:
        sid = ev.headers.get("libchan-session")
        peer = self.peers.get(link, "an unknown peer")
        if sid is None or sid not in self.sessions:
            # Refused whatever its session: answered without creating one (no handler runs).
            refusal = refusal_without_session(ev.headers)
            if refusal is not None:
                link.refuse(ev.stream_id, refusal)
                return
        found = None if sid is None else self.sessions.get(sid)
        on_link = self.link_sessions.get(link)
        principal = self.link_principals.get(link)
        if on_link is None or principal is None:
            link.reset_id(ev.stream_id, REFUSED_STREAM)  # (the connection is ending)
            return
        if found is not None and not principal.same_principal(self.session_principals.get(found)):
            # Another certificate or unix user naming this session: it cannot join it (the
            # session's handler trusts Session.peer for every channel of the session).
            peer_log(log, logging.WARNING, "refused a stream from %s: session %s belongs to another peer", peer, sid)
            link.reset_id(ev.stream_id, REFUSED_STREAM)
            return
        if found is None and len(self.session_links) >= self.config.max_sessions:
            link.reset_id(ev.stream_id, REFUSED_STREAM)  # no new session: max_sessions (14.1)
            return
        if (found is None or found not in on_link) and len(on_link) >= self.config.max_connection_sessions:
            link.reset_id(ev.stream_id, REFUSED_STREAM)  # no new session here: max_connection_sessions
            return
        if found is None:
            if sid is None:
                session = SessionCore(server_side=True, config=self.config, anonymous=True, host=self.nursery)
            else:
                session = SessionCore(server_side=True, config=self.config, session_id=sid, host=self.nursery)
                self.sessions[sid] = session
            self.session_links[session] = set()
            self.session_principals[session] = principal
            self.nursery.start_soon(self._run_session, session, sid, peer)
        else:
            session = found
        if session not in on_link:
            on_link[session] = None
            self.session_links[session].add(link)
        session.accept_stream(link, ev)

    def _link_closed(self, link: Link, reason: str) -> None:
        # Only the sessions that had requests on this connection can be concerned.
        for session in list(self.link_sessions.pop(link, ())):
            links = self.session_links.get(session)
            if links is not None:
                links.discard(link)
            session._link_closed(link, reason)

    async def _run_session(self, session: SessionCore, sid: str | None, peer: str) -> None:
        try:
            async with session:
                await self.handler(Session._over(session, self.session_principals.get(session)))
        except Exception as exc:
            reason = _client_left(exc, session)
            if reason is None:
                log.exception("libchan session handler failed (session from %s)", peer)
            else:
                # the client went away while the handler was using the session: not a bug
                log.info("libchan session from %s ended while its handler ran: %s", peer, reason)
        finally:
            self.session_principals.pop(session, None)
            if sid is not None and self.sessions.get(sid) is session:
                del self.sessions[sid]
            for link in self.session_links.pop(session, ()):
                on_link = self.link_sessions.get(link)
                if on_link is not None:
                    on_link.pop(session, None)


async def _send_alert(transport: trio.SSLStream[Any]) -> None:
    """Tell the client why its handshake failed (the TLS alert), when trio has not."""
    alert = pending_output(transport) if transport.transport_stream is not None else b""
    if alert:
        with trio.move_on_after(1):
            try:
                await transport.transport_stream.send_all(alert)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


def peer_name(transport: trio.abc.Stream) -> str:
    """The remote address of ``transport`` as text (``HOST:PORT``, a unix socket's
    path or ``unix socket``), looking through TLS and sniffing wrappers."""
    stream: Any = transport
    for _ in range(4):
        inner = getattr(stream, "transport_stream", None) or getattr(stream, "inner", None)
        if inner is None:
            break
        stream = inner
    sock = getattr(stream, "socket", None)
    try:
        name = sock.getpeername() if sock is not None else None
    except OSError:
        name = None
    if isinstance(name, tuple):
        host, port = name[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if name:
        return name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    return "unix socket" if sock is not None and sock.family == getattr(socket_module, "AF_UNIX", None) else "an unknown peer"


def _client_left(exc: BaseException, session: SessionCore) -> str | None:
    """If ``exc`` (what a handler raised) only says that its session ended under it
    (SessionClosedError, alone or in an exception group, or a broken channel of a
    session the peer ended), the reason; else None (a bug in the handler)."""
    if isinstance(exc, BaseExceptionGroup):
        reasons = {_client_left(e, session) for e in exc.exceptions}
        return None if None in reasons else "; ".join(sorted(r for r in reasons if r is not None))
    if isinstance(exc, SessionClosedError):
        return exc.reason
    if isinstance(exc, trio.BrokenResourceError) and session.closed_reason is not None:
        return session.closed_reason
    return None


async def serve(
    url: str,
    handler: Callable[[Session], Awaitable[Any]],
    *,
    ssl: _ssl.SSLContext | None = None,
    config: Config | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve libchan sessions on ``url``; ``await handler(session)`` runs for each one.

    Runs until cancelled. With ``nursery.start(libchan.serve, url, handler)``
    the start value is the list of URLs actually bound (useful with port 0).
    A session ends when its handler returns (or when the peer ends it).
    Handler exceptions are logged to the ``libchan`` logger, not raised.
    """
    address = parse_url(url)
    config = config or Config()
    listeners: list[trio.abc.Listener[Any]]
    bound: list[str] = []
    unix_path: str | None = None
    unix_file: tuple[int, int] | None = None
    if address.scheme == "unix":
        path = address.path
        clear_stale_socket(path)  # (a socket file of an earlier run)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(path)
        unix_file = path_identity(path)
        sock.listen(128)
        unix_path = path
        listeners = [trio.SocketListener(sock)]
        bound.append(str(address))
    else:
        tcp = await trio.open_tcp_listeners(address.port, host=address.host)
        for listener in tcp:
            host, port = listener.socket.getsockname()[:2]
            bound.append(str(Address(address.scheme, host=host, port=port)))
        if address.scheme == "tls":
            ctx = _server_context(ssl)
            listeners = [trio.SSLListener(t, ctx, https_compatible=True) for t in tcp]
        else:
            listeners = list(tcp)
    try:
        async with trio.open_nursery() as nursery:
            server = _Server(handler, config, nursery)
            await nursery.start(partial(serve_listeners, server.handle_connection, listeners, handler_nursery=nursery))
            task_status.started(bound)
    finally:
        if unix_path is not None:
            remove_if_ours(unix_path, unix_file)
