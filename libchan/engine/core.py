"""The libchan session: channels and byte streams multiplexed on one or more links.

A :class:`Session` turns multiplexer streams into Senders, Receivers and byte
streams, keeps the reference table (which stream a reference in a message
names), forwards local objects put into messages, and says its own close end to
end. The wire rules are in ``spec/PROTOCOL.md``; in short, for HTTP/2:

* every request carries ``libchan-session: <id>``; the path says its role:
  ``/libchan/v1/session`` (the control stream whose end is the session's end),
  ``/libchan/v1/park`` (a parked request the server answers when it opens a
  stream) and ``/libchan/v1/stream`` (a stream the client opens);
* ``libchan-ref``, ``libchan-type`` and ``libchan-parent-ref`` name a stream,
  on the client's request or on the server's answer to a parked request.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from typing import Any

import trio

from ..channel import Receiver, Sender
from ..config import Config
from ..errors import (
    LocalProtocolError,
    RemoteProtocolError,
    SessionClosedError,
    UnresolvedReferenceError,
)
from ..forward import forward
from ..h2_requests import CONTENT_TYPE, PATH_PARK, PATH_SESSION, PATH_STREAM, request_headers
from ..pipe import PipeSender
from ..peerlog import peer_log
from ..messages.cbor_codec import TAGS
from .budget import Account
from .hosted import HostedTasks
from .link import Link
from ..spdy_like.mux import StreamOpened
from .netstream import CANCEL, NetReceiver, NetSender, NetStream, facade_for
from .profiles import get_profile
from .waiters import NO_WAITERS, own_lot

__all__ = ["SessionCore", "refusal_without_session"]

log = logging.getLogger("libchan")

PROTOCOL_ERROR = 1
REFUSED_STREAM = 7
ENHANCE_YOUR_CALM = 11


class SessionCore:
    """The engine of one :class:`libchan.Session`: what its links, streams and facades call.

    The public :class:`libchan.Session` holds one and forwards its few public operations.
    Server side, one core may be fed by links shared by a server (:mod:`libchan.transport`).

    Its methods without a leading underscore are the engine's seams: the link
    calls ``accept_stream``, ``on_answered``, ``on_reset``; a stream calls
    ``stream_done``, ``on_control_*``; the facades call ``encode``/``decode`` and
    ``open_and_forward``.
    """

    # (slots: one per session, thousands of idle ones; its __dict__ was 1.6 KB)
    __slots__ = ("_accept_lot", "_accept_queue", "_account", "_anonymous", "_authority",
        "closed_reason", "closing", "codec", "config", "_control", "_encoded_objects", "_entered",
        "_expiring", "_had_stream", "_host", "_links", "_nursery", "_nursery_cm", "_own_link",
        "_park_failures", "_park_lot", "_park_managing", "_park_target", "_parks", "_parks_outstanding", "_peer",
        "_peer_closed_gracefully", "profile", "refs", "_scheme", "server_side", "session_id",
        "short_bytes_below", "short_bytes_heads", "_streams", "_transport")

    def __init__(
        self,
        stream: trio.abc.Stream | None = None,
        *,
        server_side: bool = False,
        config: Config | None = None,
        authority: str = "libchan",
        scheme: str = "http",
        session_id: str | None = None,
        profile: str = "h2",
        anonymous: bool = False,
        account: Account | None = None,
        peer: str = "the peer",
        host: trio.Nursery | None = None,
    ) -> None:
        self.config = config or Config()
        #: A server's nursery: a session without a connection of its own runs its tasks
        #: there (engine/hosted.py), not in a nursery of its own.
        self._host = host if stream is None else None
        #: A server's Go-profile connection (the session's own link): its budget account.
        self._account = account
        self._peer = peer
        self.server_side = server_side
        self.profile = get_profile(profile)
        self.session_id = session_id or (
            None if server_side or not self.profile.control_stream else secrets.token_urlsafe(16)
        )
        self._transport = stream
        self._authority = authority
        self._scheme = scheme
        self._anonymous = anonymous
        self.codec = self.profile.make_codec(self.config)
        #: NetSender's shortcut for short bytes messages (see the profile's short_bytes_framing).
        self.short_bytes_below, self.short_bytes_heads = self.profile.short_bytes_framing(self.config.max_message_size)
        if not self.config.fast_paths:
            self.short_bytes_below = 0
        from ..messages.refs import RefTable

        self.refs: RefTable[NetStream] = RefTable(
            local_parity=(0 if server_side else 1) if self.profile.ref_parity else None,
            timeout=self.config.reference_timeout,
            max_pending=self.config.max_pending_references,
        )
        self.closed_reason: str | None = None
        self._peer_closed_gracefully = False
        self.closing = False
        self._streams: set[NetStream] = set()
        self._accept_queue: deque[NetReceiver] = _NO_RECEIVERS
        self._accept_lot = NO_WAITERS  # (lots made when first waited in: waiters.py)
        #: server: parked requests, oldest first (a dict: a finished park leaves it in O(1))
        self._parks: dict[NetStream, None] = {}
        self._park_lot = NO_WAITERS
        self._parks_outstanding = 0  # client
        #: client: parked requests to keep: ``park_pool_initial`` until the server first
        #: opens a stream through one, then ``park_pool_size`` (spec 7.3)
        self._park_target = min(self.config.park_pool_initial, self.config.park_pool_size)
        self._park_managing = False  # client: the park manager runs (only while the pool is short)
        self._park_failures = 0
        self._expiring = False  # the expiry task runs (only while something can expire)
        self._control: NetStream | None = None
        self._links: set[Link] = set()
        self._own_link: Link | None = None
        self._nursery: trio.Nursery | HostedTasks | None = None
        self._nursery_cm: Any = None
        self._entered = False
        self._had_stream = False
        self._encoded_objects: list[tuple[NetStream, str, Any]] | None = None

    # -- public API ----------------------------------------------------------------
    async def __aenter__(self) -> SessionCore:
        if self._entered:
            raise RuntimeError("a Session can be entered only once")
        self._entered = True
        if self._host is not None:
            self._nursery = HostedTasks(self._host, self._task_failed)
        else:
            self._nursery_cm = trio.open_nursery()
            self._nursery = await self._nursery_cm.__aenter__()
        try:
            if self._transport is not None:
                assert isinstance(self._nursery, trio.Nursery)
                link = Link(
                    self._transport,
                    self._make_mux(),
                    self.config,
                    on_stream_opened=self._route_single,
                    on_closed=self._link_closed,
                    keepalive_data=self.profile.keepalive_data,
                    account=self._account,
                    peer=self._peer,
                )
                self._own_link = link
                self._links.add(link)
                await self._nursery.start(link.run)
            self._expiry_due()  # (a server's first request may have named a reference)
            if self.server_side and self.profile.control_stream and not self._anonymous and self._control is None:
                # (a server session is usually made by its control request: no watchdog then)
                self._nursery.start_soon(self._control_watchdog)
            if not self.server_side and not self.profile.control_stream and self._own_link is not None:
                # A SPDY client says nothing until it opens a stream; a PING (which a
                # Go server echoes) lets a server that sniffs the protocol start at once.
                self._own_link.ping()
            if not self.server_side and self.profile.control_stream:
                assert self._own_link is not None
                control = NetStream(self, role="control")
                self._control = control
                self._streams.add(control)
                await self._own_link.open_stream(control, self._request_headers(PATH_SESSION))
                self._parks_wanted()
        except BaseException:
            await self._end_tasks()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            await self.aclose()
        finally:
            await self._end_tasks()
        return None

    async def _end_tasks(self) -> None:
        """Cancel the session's tasks and wait until they ended."""
        tasks = self._nursery
        if isinstance(tasks, HostedTasks):
            await tasks.aclose()
            return
        assert tasks is not None
        tasks.cancel_scope.cancel()
        # Background tasks never raise; the body's own exception (if any)
        # propagates unwrapped, as it would from a plain ``async with``.
        await self._nursery_cm.__aexit__(None, None, None)

    def _task_failed(self, exc: BaseException) -> None:
        """A task of a session without a nursery of its own raised (a bug: they do
        not): logged, and the session ends, as it would with a nursery."""
        log.error("libchan session task failed (session from %s)", self._peer, exc_info=exc)
        if self.closed_reason is None:
            self._close_by_peer(f"internal error: {exc!r}", graceful=False)

    @property
    def closed(self) -> bool:
        """True once the session ended (either side closed it, or the connection broke)."""
        return self.closed_reason is not None

    async def open_sender(self) -> Sender:
        """Open a new top-level channel to the peer and return its Sender.

        The peer receives the matching Receiver from :meth:`accept_receiver`.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        ns = NetStream(self, role="stream", kind="receiver", opener=True, ref=self.refs.allocate())
        self._streams.add(ns)
        await self._open(ns, "receiver", None)
        return NetSender(ns)

    async def accept_receiver(self) -> Receiver:
        """Wait for the peer's next top-level channel and return its Receiver.

        Raises :class:`trio.EndOfChannel` once the peer closed the session
        gracefully, :class:`~libchan.SessionClosedError` if it broke, and
        :class:`trio.ClosedResourceError` after this side closed it.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._accept_queue:
                receiver = self._accept_queue.popleft()
                if not self._accept_queue:
                    self._accept_queue = _NO_RECEIVERS
                await trio.lowlevel.cancel_shielded_checkpoint()
                return receiver
            if self.closing and not self._peer_closed_gracefully and self.closed_reason == "closed by this side":
                raise trio.ClosedResourceError("this session was closed")
            if self.closed_reason is not None:
                if self._peer_closed_gracefully:
                    raise trio.EndOfChannel
                raise SessionClosedError(self.closed_reason)
            lot = self._accept_lot = own_lot(self._accept_lot)
            await lot.park()

    async def aclose(self, reason: str = "closed by this side") -> None:
        """Close the session: flush, tell the peer, fail everything pending."""
        if self.closing:
            await trio.lowlevel.checkpoint()
            return
        self.closing = True
        with trio.CancelScope(shield=True):
            if self.closed_reason is None:
                for link in list(self._links):
                    await link.drain(self.config.close_timeout)
            already = self.closed_reason is not None
            self._mark_closed(reason)
            if not already:
                # Say it end to end: end (client) or answer-and-end (server) the control stream.
                control = self._control
                if control is not None and not control.done:
                    control.request_end()
                    for link in list(self._links):
                        await link.drain(min(1.0, self.config.close_timeout))
                for ns in list(self._streams):
                    if ns is not control and not ns.done:
                        ns_link = ns.link
                        ns.fail(SessionClosedError(reason))
                        if ns_link is not None and ns.stream_id is not None and self.profile.control_stream:
                            ns_link.reset_stream(ns, CANCEL)
                for link in list(self._links):
                    await link.drain(min(1.0, self.config.close_timeout))
            self._accept_lot.unpark_all()
            self._park_lot.unpark_all()
            control = self._control
            if control is not None and not control.done and control.link is not None and control.link.alive:
                # The peer ends its half of the control stream once it has seen ours,
                # i.e. after everything we sent; a server that ended its direction with
                # the end marker sends its END_STREAM then. Either way, once both
                # halves ended nothing is in flight.
                with trio.move_on_after(self.config.close_timeout):
                    while not control.in_ended and not control.done and control.link is not None:
                        await control.recv_waiters().park()
                    while not control.out_ended and not control.done and control.link is not None:
                        await control.send_waiters().park()
            if self._own_link is not None:
                linger = control is None or not control.in_ended
                await self._own_link.aclose(reason, linger=linger)
            if self._control is not None and not self._control.done:
                self._control.fail(SessionClosedError(reason))

    # -- internals: closing ------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closing and self.closed_reason == "closed by this side":
            raise trio.ClosedResourceError("this session was closed")
        if self.closed_reason is not None:
            raise SessionClosedError(self.closed_reason)

    def _mark_closed(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._accept_lot.unpark_all()
        self._park_lot.unpark_all()

    def _close_by_peer(self, reason: str, *, graceful: bool) -> None:
        if self.closed_reason is not None:
            return
        self._peer_closed_gracefully = graceful
        self._mark_closed(reason)
        control = self._control
        for ns in list(self._streams):
            if ns is control or ns.done:
                continue
            link = ns.link
            ns.fail(SessionClosedError(reason))
            if link is not None and ns.stream_id is not None and link.alive and self.profile.control_stream:
                link.reset_stream(ns, CANCEL)
        if control is not None and not control.done:
            control.request_end()
        if self._own_link is not None and self._nursery is not None and not self.server_side:
            self._nursery.start_soon(self._own_link.aclose, reason)

    def _link_closed(self, link: Link, reason: str) -> None:
        self._links.discard(link)
        control = self._control
        if link is self._own_link or (control is not None and control.link is link):
            # Without a control stream (Go profile) the peer's GOAWAY is its close.
            graceful = not self.profile.control_stream and link.peer_goaway
            self._close_by_peer(
                "the peer closed the session" if graceful else reason, graceful=graceful
            )

    def on_control_failed(self, reason: str) -> None:
        self._close_by_peer(f"protocol error on the session's control stream: {reason}", graceful=False)

    def on_control_ended(self, ns: NetStream) -> None:
        self._close_by_peer("the peer closed the session", graceful=True)

    # -- internals: links and routing --------------------------------------------------
    def _make_mux(self) -> Any:
        return self.profile.make_mux(client_side=not self.server_side, config=self.config)

    def _route_single(self, link: Link, ev: StreamOpened) -> None:
        """Server side of a Session over one stream: all requests belong to it."""
        if not self.profile.parks:
            self._accept_peer_stream(link, ev)
            return
        if not self.server_side:
            link.reset_id(ev.stream_id, REFUSED_STREAM)
            return
        sid = ev.headers.get("libchan-session")
        if sid is not None:
            if self.session_id is None:
                self.session_id = sid
            elif sid != self.session_id:
                link.refuse(ev.stream_id, [(":status", "421")])
                return
        self.accept_stream(link, ev)

    def accept_stream(self, link: Link, ev: StreamOpened) -> None:
        """A request for this session arrived on ``link`` (server side)."""
        self._accept_stream(link, ev)
        if self._anonymous and not self._streams and self.closed_reason is None:
            # Its one request is over already (refused, or failed at once because its
            # connection ended in the same read): nothing will end it later.
            self._close_by_peer("the request is complete", graceful=True)

    def _accept_stream(self, link: Link, ev: StreamOpened) -> None:
        ns: NetStream | None
        self._links.add(link)
        headers = ev.headers
        path = headers.get(":path", "")
        if self.closed_reason is not None:
            link.refuse(ev.stream_id, [(":status", "410")])
            return
        if headers.get(":method", "POST") != "POST":
            link.refuse(ev.stream_id, [(":status", "405"), ("allow", "POST")])
            return
        anonymous = "libchan-session" not in headers
        if len(self._streams) >= self.config.max_streams:
            link.reset_id(ev.stream_id, REFUSED_STREAM)
            return
        if not anonymous and path == PATH_SESSION:
            if self._control is not None:
                link.refuse(ev.stream_id, [(":status", "409")])
                return
            ns = NetStream(self, role="control")
            self._control = ns
            self._streams.add(ns)
            ns.bind(link, ev.stream_id, can_send=False)
            link.answer(ns, [(":status", "200"), ("content-type", CONTENT_TYPE)])
            return
        if not anonymous and path == PATH_PARK:
            ns = NetStream(self, role="park")
            self._streams.add(ns)
            ns.bind(link, ev.stream_id, can_send=False)
            self._parks[ns] = None
            self._park_lot.unpark()
            return
        if anonymous:
            kind, ref, parent = "receiver", None, None
        elif path != PATH_STREAM:
            link.refuse(ev.stream_id, [(":status", "404")])
            return
        else:
            try:
                kind, ref, parent = _stream_headers(headers)
            except RemoteProtocolError as exc:
                peer_log(log, logging.WARNING, "refusing stream: %s", exc)
                link.refuse(ev.stream_id, [(":status", "400")])
                return
        ns = self._arrived(kind, ref, parent)
        if ns is None:
            link.reset_id(ev.stream_id, PROTOCOL_ERROR)
            return
        self._had_stream = True  # (before bind: on a connection that just ended, the stream ends at once)
        ns.bind(link, ev.stream_id, can_send=False)
        link.answer(ns, [(":status", "200"), ("content-type", CONTENT_TYPE)])

    def _accept_peer_stream(self, link: Link, ev: StreamOpened) -> None:
        """A stream the peer opened, in a profile where both sides open streams (Go)."""
        headers = ev.headers
        if self.closed_reason is not None:
            link.reset_id(ev.stream_id, REFUSED_STREAM)
            return
        if len(self._streams) >= self.config.max_streams:
            link.reset_id(ev.stream_id, REFUSED_STREAM)
            return
        try:
            ref = _header_int(headers, "libchan-ref")
            parent = _header_int(headers, "libchan-parent-ref")
            if ref is None:
                raise RemoteProtocolError("stream without a libchan-ref header")
            if parent == 0:
                raise RemoteProtocolError("libchan-parent-ref must not be 0")
        except RemoteProtocolError as exc:
            peer_log(log, logging.WARNING, "refusing stream: %s", exc)
            link.refuse(ev.stream_id, [(":status", "200")], reset=CANCEL)
            return
        ns = self._arrived("receiver" if parent is None else None, ref, parent)
        if ns is None:
            link.reset_id(ev.stream_id, PROTOCOL_ERROR)
            return
        ns.bind(link, ev.stream_id, can_send=False)
        link.answer(ns, [(":status", "200")])

    def _arrived(self, kind: str | None, ref: int | None, parent: int | None) -> NetStream | None:
        """A stream opened by the peer arrived: pair it with its reference or queue it."""
        if parent is None:
            if kind != "receiver":
                assert kind is not None
                peer_log(log, logging.WARNING, "refusing a top-level %s stream (only channels to receive are allowed)", kind)
                return None
            ns = NetStream(self, role="stream", kind=kind, opener=False, ref=ref)
            self._streams.add(ns)
            if self._accept_queue is _NO_RECEIVERS:
                self._accept_queue = deque()
            self._accept_queue.append(NetReceiver(ns))
            self._accept_lot.unpark()
            return ns
        assert ref is not None
        fresh = NetStream(self, role="stream", kind=kind, opener=False, ref=ref)
        try:
            token = self.refs.arrived(ref, kind, fresh, trio.current_time())
        except RemoteProtocolError as exc:
            peer_log(log, logging.WARNING, "refusing stream: %s", exc)
            return None
        if token is None:
            self._streams.add(fresh)
            self._expiry_due()
            return fresh
        return token

    def on_answered(self, ns: NetStream, headers: dict[str, str]) -> None:
        """Response headers arrived for a request we (the client) made."""
        status = headers.get(":status", "")
        if ns.role == "control":
            if status != "200":
                self._close_by_peer(f"the server refused the session (HTTP status {status})", graceful=False)
            return
        if ns.role == "park":
            self._parks_outstanding -= 1
            if status == "200" and "libchan-ref" in headers:
                self._park_target = self.config.park_pool_size  # (the server opens streams)
            self._parks_wanted()
            if status != "200" or "libchan-ref" not in headers:
                self._park_failures += 1
                ns.reset(CANCEL)
                return
            self._park_failures = 0
            try:
                kind, ref, parent = _stream_headers(headers)
            except RemoteProtocolError as exc:
                peer_log(log, logging.WARNING, "server answered a parked request badly: %s", exc)
                ns.reset(PROTOCOL_ERROR)
                return
            link, sid = ns.link, ns.stream_id
            assert link is not None and sid is not None
            target = self._arrived(kind, ref, parent)
            if target is None:
                ns.reset(PROTOCOL_ERROR)
                return
            # The parked stream becomes ``target``.
            ns.done = True
            self._streams.discard(ns)
            link.unschedule(ns)
            target.bind(link, sid, can_send=True)
            target.last_sent = ns.last_sent
            return
        if status != "200":
            ns.fail(trio.BrokenResourceError(f"the peer refused the stream (HTTP status {status})"))
            if ns.link is not None:
                ns.link.reset_stream(ns, CANCEL)

    def on_reset(self, ns: NetStream, code: int, remote: bool) -> None:
        if ns.role == "control":
            ns.on_reset(code, remote)
            self._close_by_peer(f"the peer aborted the session (HTTP/2 error code {code})", graceful=False)
            return
        if ns.role == "park":
            if ns in self._parks:
                del self._parks[ns]
            elif not self.server_side:
                self._parks_outstanding -= 1
                self._park_failures += 1
                self._parks_wanted()
        ns.on_reset(code, remote)

    def stream_done(self, ns: NetStream) -> None:
        self._streams.discard(ns)
        if ns.role == "park":
            self._parks.pop(ns, None)  # its connection went away before it was used
        # (a stream that ended before any message named it stays in the reference table,
        # complete, until its reference arrives or reference_timeout: through a proxy it
        # may arrive whole before the message, spec 10.4)
        if self._anonymous and self._had_stream and not self._streams:
            self._close_by_peer("the request is complete", graceful=True)

    # -- internals: opening streams -----------------------------------------------------
    def _request_headers(self, path: str) -> list[tuple[str, str]]:
        assert self.session_id is not None
        return request_headers(self._scheme, self._authority, path, self.session_id)

    async def _open(self, ns: NetStream, kind: str, parent_ref: int | None) -> None:
        if not self.profile.kind_in_headers:
            # Go profile: either side opens with SYN_STREAM; the kind travels in the message.
            headers = [("libchan-ref", str(ns.ref))]
            if parent_ref is not None:
                headers.append(("libchan-parent-ref", str(parent_ref)))
            link = self._own_link
            if link is None or not link.alive:
                raise SessionClosedError(self.closed_reason or "connection lost")
            await link.open_stream(ns, headers)
            return
        ident = [("libchan-ref", str(ns.ref)), ("libchan-type", kind)]
        if parent_ref is not None:
            ident.append(("libchan-parent-ref", str(parent_ref)))
        if not self.server_side:
            link = self._own_link
            if link is None or not link.alive:
                raise SessionClosedError(self.closed_reason or "connection lost")
            await link.open_stream(ns, self._request_headers(PATH_STREAM) + ident)
            return
        park = await self._take_park()
        park_link, sid = park.link, park.stream_id
        assert park_link is not None and sid is not None
        park.done = True
        self._streams.discard(park)
        park_link.unschedule(park)
        ns.bind(park_link, sid, can_send=False)
        ns.last_sent = park.last_sent
        park_link.answer(ns, [(":status", "200"), ("content-type", CONTENT_TYPE)] + ident)

    async def _take_park(self) -> NetStream:
        if self._anonymous:
            raise LocalProtocolError(
                "this peer cannot receive streams from the server (it sent no libchan session header,"
                " so it keeps no parked requests)"
            )
        with trio.move_on_after(self.config.open_timeout):
            while True:
                self._check_open()
                while self._parks:
                    park = next(iter(self._parks))
                    del self._parks[park]
                    if not park.done and park.link is not None and park.link.alive:
                        return park
                lot = self._park_lot = own_lot(self._park_lot)
                await lot.park()
        raise trio.BrokenResourceError(
            f"no parked request from the client within {self.config.open_timeout}s; cannot open a stream"
        )

    async def _control_watchdog(self) -> None:
        """Server: a session whose client opens no control stream in time ends (spec 6.7).

        Without it, a session made by a park or stream request alone (its control stream
        lost, or never sent) would keep its handler running forever.
        """
        timeout = self.config.control_timeout
        await trio.sleep(timeout)
        if self._control is None and self.closed_reason is None:
            self._close_by_peer(f"the client opened no control stream within {timeout:g} s", graceful=False)

    def _parks_wanted(self) -> None:
        """Client: a parked request was used or failed: make sure the park manager runs."""
        if not self._park_managing and self._nursery is not None and self.closed_reason is None:
            if self._parks_outstanding < self._park_target:
                self._park_managing = True
                self._nursery.start_soon(self._park_manager)

    async def _park_manager(self) -> None:
        """Client: keep ``_park_target`` parked requests open for the server. It runs
        only while the pool is short (a task costs an idle session 2 KB): when the pool
        is full it returns, and :meth:`_parks_wanted` starts it again."""
        link = self._own_link
        assert link is not None
        try:
            while self.closed_reason is None and link.alive:
                if self._parks_outstanding >= self._park_target:
                    return
                if self._park_failures > 2:
                    await trio.sleep(min(5.0, 0.2 * self._park_failures))
                ns = NetStream(self, role="park")
                self._streams.add(ns)
                self._parks_outstanding += 1
                try:
                    await link.open_stream(ns, self._request_headers(PATH_PARK))
                except trio.BrokenResourceError:
                    return
        finally:
            self._park_managing = False

    # -- internals: messages ----------------------------------------------------------
    def on_reference(self, kind: str, ref: int) -> Any:
        """A decoded message names the peer's stream ``ref``: the object the application gets."""
        token = NetStream(self, role="stream", kind=kind, opener=False, ref=ref)
        existing = self.refs.claim(ref, kind, token, trio.current_time())
        if existing is None:
            self._streams.add(token)
            self._expiry_due()
            return facade_for(token, kind, opener=False)
        if existing.kind is None:  # Go profile: the stream came first, with no kind
            existing.set_kind(kind, opener=False)
        return facade_for(existing, kind, opener=False)

    def decode(self, payload: bytes) -> Any:
        """Decode one message payload (HTTP/2 profile), pairing its references."""
        return self.codec.decode(payload, self.on_reference)

    def encode(self, value: Any) -> tuple[bytes, list[tuple[NetStream, str, Any]]]:
        """Encode a message; return the payload and the streams to open for the objects in it."""
        if self.closed_reason is not None or self.closing:
            self._check_open()
        if type(value) is bytes:
            return self.codec.encode(value, self._on_object), _NO_OBJECTS  # holds no channel
        new: list[tuple[NetStream, str, Any]]
        self._encoded_objects = new = []
        try:
            return self.codec.encode(value, self._on_object), new
        finally:
            self._encoded_objects = None

    def _on_object(self, kind: str, obj: Any) -> int:
        """The encoder met a channel or byte stream: give it a stream and a reference."""
        ref = self.refs.allocate()
        ns = NetStream(self, role="stream", kind=kind, opener=True, ref=ref)
        assert self._encoded_objects is not None
        self._encoded_objects.append((ns, kind, obj))
        return ref

    async def open_and_forward(self, new: list[tuple[NetStream, str, Any]], parent: NetStream) -> None:
        """Open the stream of every object a message holds and start forwarding to/from it."""
        for ns, kind, obj in new:
            self._streams.add(ns)
            await self._open(ns, kind, parent.ref)
            if kind == "sender" and isinstance(obj, PipeSender) and self.config.fast_paths:
                ns.splice = obj
                obj._shared.source = ns
            assert self._nursery is not None
            self._nursery.start_soon(forward, obj, facade_for(ns, kind, opener=True), kind, self.config.fast_paths)

    def _expiry_due(self) -> None:
        """Something in the reference table may expire (a reference waits for its stream,
        or a stream for the message naming it): make sure the expiry task runs. It runs
        only while there is something to expire (a task costs an idle session 2 KB)."""
        if not self._expiring and self._nursery is not None and self.closed_reason is None:
            if self.refs.next_deadline() is not None:
                self._expiring = True
                self._nursery.start_soon(self._expiry_task)

    async def _expiry_task(self) -> None:
        try:
            while self.closed_reason is None:
                deadline = self.refs.next_deadline()
                if deadline is None:
                    return  # (_expiry_due starts it again)
                await trio.sleep_until(deadline)
                self._expire()
        finally:
            self._expiring = False

    def _expire(self) -> None:
        for e in self.refs.expire(trio.current_time()):
            ns: NetStream = e.item
            if e.what == "reference":
                ns.fail(
                    UnresolvedReferenceError(
                        f"the peer referenced {e.kind} {e.ref} but its stream did not arrive"
                        f" within {self.config.reference_timeout}s"
                    )
                )
            else:
                peer_log(log, logging.WARNING, "stream with reference %d arrived but no message named it; resetting", e.ref)
                link = ns.link
                ns.fail(RemoteProtocolError(f"stream {e.ref} was never referenced"))
                if link is not None and ns.stream_id is not None:
                    link.reset_stream(ns, PROTOCOL_ERROR)


_NO_OBJECTS: list[tuple[NetStream, str, Any]] = []  # never appended to
#: The accept queue of every session with no channel waiting to be accepted (an empty
#: deque is 760 bytes); never appended to: _arrived gives a session a deque of its own.
_NO_RECEIVERS: deque[NetReceiver] = deque()


def refusal_without_session(headers: dict[str, str]) -> list[tuple[str, str]] | None:
    """The answer to a request that is refused whatever the state of its session
    (spec 5.1: 405, then 404 and 400 for a request naming a session), or None.

    A server answers these before it looks its session up, so that a request it
    refuses never creates a session (and never starts a session handler): a peer
    sending GETs must not leave a session behind for each one."""
    if headers.get(":method", "POST") != "POST":
        return [(":status", "405"), ("allow", "POST")]
    if "libchan-session" not in headers:
        return None  # anonymous: any path is a channel (7.4)
    path = headers.get(":path", "")
    if path not in (PATH_SESSION, PATH_PARK, PATH_STREAM):
        return [(":status", "404")]
    if path == PATH_STREAM:
        try:
            _stream_headers(headers)
        except RemoteProtocolError as exc:
            peer_log(log, logging.WARNING, "refusing stream: %s", exc)
            return [(":status", "400")]
    return None


def _stream_headers(headers: dict[str, str]) -> tuple[str, int, int | None]:
    kind = headers.get("libchan-type")
    if kind not in TAGS:
        raise RemoteProtocolError(f"bad or missing libchan-type header: {kind!r}")
    ref = _header_int(headers, "libchan-ref")
    if ref is None:
        raise RemoteProtocolError("missing libchan-ref header")
    return kind, ref, _header_int(headers, "libchan-parent-ref")


def _header_int(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    if not (0 < len(value) <= 20 and value.isascii() and value.isdigit()) or int(value) >= 2**64:
        raise RemoteProtocolError(f"bad {name} header: {value!r} (expected a decimal number)")
    return int(value)
