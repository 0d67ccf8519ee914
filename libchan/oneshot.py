"""A blocking driver of the sans-IO cores for short one-request clients: no trio.

A command-line client that sends one message and waits for its answer (the rexec
client) spends most of its life starting: ``import trio`` alone is about 90 ms.
This module drives the same sans-IO pieces the trio engine drives -- the HTTP/2
multiplexer (:class:`~libchan.spdy_like.h2mux.H2Multiplexer`, so flow control,
settings and limits are the same code), the body framing
(:mod:`libchan.messages.framing`) and the CBOR codec
(:mod:`libchan.messages.cbor_codec`) -- over one blocking socket and
``select.poll``, and imports nothing of trio.

It speaks the HTTP/2 + CBOR profile only (spec/PROTOCOL.md sections 3 to 13) and only
as a client that opens every stream itself: a session (``libchan-session``, the
control stream of section 6.2, the park pool of 7.3), client-opened streams with
their ``libchan-ref``/``libchan-type``/``libchan-parent-ref`` headers (7.1), frames
and keepalives (8, 13), flow control both ways (12: the connection window is
acknowledged as data arrives, a stream's once its data was consumed; what is sent
stays within the peer's windows) and the graceful close of 6.4. The parks are
opened as 7.3 requires, but a stream the server opens by answering one is refused
(RST_STREAM(CANCEL), the park not replaced): a one-request client names no
server-opened stream in its message, so the server has none to open.

The caller owns the loop: :func:`connect` gives a :class:`BlockingClient`;
:meth:`~BlockingClient.open_stream` opens streams, :meth:`~BlockingClient.send_bytes`,
:meth:`~BlockingClient.send_message`, :meth:`~BlockingClient.end` write on them,
:meth:`~BlockingClient.poll` waits for the socket (and the caller's descriptors)
and delivers what arrived to each stream's ``on_item`` callback, and
:meth:`~BlockingClient.close` ends the session.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import time
from typing import TYPE_CHECKING, Any, Callable

import h2.exceptions

from .address import ALPN_H2, Address, authority_of, parse_url
from .config import Config
from .diagnosis import closed_verdict, describe, first_bytes_verdict, silence_verdict, tls_client_verdict
from .h2_requests import PATH_PARK, PATH_SESSION, request_headers
from .errors import ConnectError, LibchanError, MessageTooLargeError, RemoteProtocolError
from .messages.cbor_codec import CborCodec
from .messages.framing import KEEPALIVE, FrameDecoder, frame_header
from .spdy_like.h2mux import H2Multiplexer
from .spdy_like.mux import (
    ConnectionEnded,
    DataReceived,
    MuxEvent,
    StreamAnswered,
    StreamEnded,
    StreamReset,
)

# ssl is imported for tls:// only (it costs a plaintext client's start-up several ms).
if TYPE_CHECKING:
    import ssl as _ssl

__all__ = ["BlockingClient", "ConnectionLost", "Ref", "Stream", "connect", "open_socket"]

CANCEL = 0x8
PROTOCOL_ERROR = 0x1
ENHANCE_YOUR_CALM = 0xB
#: The largest chunk of a byte stream in one frame (spec 8: at most 64 KiB).
MAX_CHUNK = 64 * 1024
#: What h2 raises for a stream that closed meanwhile (a reset later in the same read).
_H2_STREAM_GONE = (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError)
#: Bytes of one socket read.
_READ_SIZE = 256 * 1024


def _session_id() -> str:
    """A fresh session id: 16 random octets, base64url without padding (spec 6.1; what
    secrets.token_urlsafe(16) gives, without importing secrets)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


class ConnectionLost(LibchanError, ConnectionError):
    """The connection or the session ended before the client was done (an ``OSError``)."""


class Ref:
    """A reference to put into a message: the stream ``ref`` of ``kind`` (spec 10.1)."""

    __slots__ = ("kind", "ref")

    def __init__(self, kind: str, ref: int) -> None:
        self.kind = kind
        self.ref = ref


def _kind_of(obj: object) -> str | None:
    return obj.kind if isinstance(obj, Ref) else None


def _no_reference(kind: str, ref: int) -> Any:
    raise RemoteProtocolError(f"a {kind} reference ({ref}) in a message to a client that takes none")


class Stream:
    """One HTTP/2 stream the client opened: its state, as the driver saw it."""

    def __init__(self, client: BlockingClient, stream_id: int, role: str, ref: int | None, max_size: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.role = role  # "control", "park" or a kind ("receiver", "read-stream"...)
        self.ref = ref
        #: The response's ``:status`` once it came.
        self.status: str | None = None
        #: Called with each payload (a message or a chunk of bytes) that arrives.
        self.on_item: Callable[[bytes], None] | None = None
        #: The peer's half ended (END_STREAM or the end marker) or the stream was reset.
        self.in_ended = False
        #: Our half ended (END_STREAM sent) or the stream was reset.
        self.out_ended = False
        #: Why the stream failed (reset by either side, refused, a protocol error), or None.
        self.error: str | None = None
        self.decoder = FrameDecoder(max_size)
        self.last_sent = time.monotonic()
        self._unacked = 0  # bytes consumed and owed a stream WINDOW_UPDATE

    @property
    def finished(self) -> bool:
        return self.in_ended and self.out_ended

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id} {self.role} ref={self.ref} in_ended={self.in_ended} out_ended={self.out_ended}>"


class BlockingClient:
    """A client session of the HTTP/2 profile over one blocking socket (see the module doc)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        address: Address,
        config: Config | None = None,
        session_id: str | None = None,
    ) -> None:
        self.sock = sock
        self.address = address
        self.config = config = config or Config()
        self.session_id = session_id or _session_id()
        self._authority = authority_of(address)
        self._scheme = "https" if address.scheme == "tls" else "http"
        self.mux = H2Multiplexer.for_config(config, client_side=True)
        self.codec = CborCodec(
            max_message_size=config.max_message_size,
            max_depth=config.max_nesting_depth,
            kind_of=_kind_of,
            reference_types=(Ref,),
        )
        self.streams: dict[int, Stream] = {}
        self._next_ref = 1  # a client's reference numbers are odd (spec 10.3)
        #: Why the connection ended (None while it is up).
        self.closed_reason: str | None = None
        #: The server's first bytes (None until they came).
        self.first_input: bytes | None = None
        self.read_error: BaseException | None = None
        now = time.monotonic()
        self._started = now
        self._last_input = now
        self._next_tick = now + config.tick_interval
        self._conn_unacked = 0
        self.control = self.open_stream(PATH_SESSION, "control")
        for _ in range(min(config.park_pool_initial, config.park_pool_size)):
            self.open_stream(PATH_PARK, "park")

    def _tls_pending(self) -> bool:
        """Decrypted input the TLS layer holds (poll cannot see it)."""
        pending = getattr(self.sock, "pending", None)
        return pending is not None and int(pending()) > 0

    # -- opening and writing ----------------------------------------------------------------
    def allocate_ref(self) -> int:
        ref = self._next_ref
        self._next_ref += 2
        return ref

    def open_stream(self, path: str, role: str, *, ref: int | None = None, parent_ref: int | None = None) -> Stream:
        """Open a stream: ``path`` PATH_STREAM with ``role`` a kind and ``ref`` its number
        (``parent_ref`` None: a top-level channel), or the control stream / a park."""
        headers = request_headers(self._scheme, self._authority, path, self.session_id)
        if ref is not None:
            headers += [("libchan-ref", str(ref)), ("libchan-type", role)]
            if parent_ref is not None:
                headers.append(("libchan-parent-ref", str(parent_ref)))
        self._check_alive()
        sid = self.mux.open_stream(headers)
        st = Stream(self, sid, role, ref, self.config.max_message_size)
        self.streams[sid] = st
        return st

    def _check_alive(self) -> None:
        if self.closed_reason is not None:
            raise ConnectionLost(f"connection lost: {self.closed_reason}")

    def sendable(self, st: Stream) -> int:
        """Bytes of chunk that may go on ``st`` now (its frame header excluded): the peer's
        stream and connection windows and frame size allow them."""
        if st.out_ended or self.closed_reason is not None:
            return 0
        room = self.mux.sendable(st.stream_id) - 5  # (a 64 KiB chunk has a 3-byte header; 5 is safe)
        return max(0, min(room, MAX_CHUNK))

    def send_bytes(self, st: Stream, data: bytes) -> None:
        """One frame of ``data`` on ``st`` (at most :meth:`sendable` bytes)."""
        self._send(st, frame_header(len(data)) + data)

    def send_message(self, st: Stream, msg: Any) -> None:
        """Encode ``msg`` (with :class:`Ref` objects for references) and queue it as one frame.
        A message larger than the window waits for it (:meth:`poll`)."""
        payload = self.codec.encode(msg, lambda kind, obj: obj.ref)
        frame = frame_header(len(payload)) + payload
        while len(frame) > 0:
            self._check_alive()
            room = self.mux.sendable(st.stream_id)
            if st.out_ended:
                raise ConnectionLost(f"the stream of the message failed: {st.error or 'ended'}")
            if room <= 0:
                self.poll(self.config.peer_timeout)
                continue
            self._send(st, frame[:room])
            frame = frame[room:]

    def _send(self, st: Stream, data: bytes) -> None:
        self._check_alive()
        try:
            self.mux.send_data(st.stream_id, data)
        except _H2_STREAM_GONE:
            # (reset by the peer in the read being handled: its StreamReset comes next)
            st.out_ended = True
            return
        st.last_sent = time.monotonic()

    def end(self, st: Stream) -> None:
        """End our half of ``st`` (END_STREAM)."""
        if not st.out_ended and self.closed_reason is None:
            st.out_ended = True
            try:
                self.mux.end_stream(st.stream_id)
            except _H2_STREAM_GONE:
                return  # (as in _send)
            st.last_sent = time.monotonic()

    def reset(self, st: Stream, code: int = CANCEL, why: str = "reset by us") -> None:
        if not st.finished:
            if self.closed_reason is None:
                self.mux.reset_stream(st.stream_id, code)
            st.in_ended = st.out_ended = True
            if st.error is None:
                st.error = why

    # -- the loop -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what the multiplexer has queued (blocking)."""
        if self.closed_reason is not None and not self.mux.closed:
            return
        data = self.mux.data_to_send()
        if not data:
            return
        try:
            self.sock.sendall(data)
        except OSError as exc:  # (ssl.SSLError is one)
            if self.closed_reason is None:
                self.read_error = self.read_error or exc
                self._lost(f"sending failed: {describe(exc)}")

    def poll(self, timeout: float, fds: tuple[int, ...] = ()) -> list[int]:
        """Flush, wait at most ``timeout`` seconds for input on the socket or ``fds``, handle
        what the socket brought, do the timers; return those of ``fds`` that are readable."""
        self.flush()
        if self.closed_reason is not None and not fds:
            return []
        now = time.monotonic()
        wait = max(0.0, min(timeout, self._next_tick - now, self._deadline() - now))
        sock_ready = False
        ready: list[int] = []
        if self.closed_reason is None and self._tls_pending():
            sock_ready = True
            wait = 0.0
        poller = select.poll()
        if self.closed_reason is None:
            poller.register(self.sock.fileno(), select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(wait * 1000):
            if fd in fds:
                ready.append(fd)
            else:
                sock_ready = True
        if sock_ready:
            self._read()
        self._timers()
        self.flush()
        return ready

    def _deadline(self) -> float:
        """When something is due if nothing arrives: the server's first bytes, peer_timeout."""
        cfg = self.config
        if self.first_input is None:
            return self._started + cfg.handshake_timeout
        return self._last_input + cfg.peer_timeout

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(_READ_SIZE)
            except BlockingIOError:  # (ssl.SSLWantReadError is one)
                return
            except OSError as exc:  # (ssl.SSLError is one)
                self.read_error = exc
                self._lost(f"connection lost: {describe(exc)}")
                return
            now = time.monotonic()
            if not data:
                self._lost("the server closed the connection")
                return
            self._last_input = now
            if self.first_input is None:
                self.first_input = data
                verdict = first_bytes_verdict(data, "h2")
                if verdict is not None:
                    self._lost(verdict)
                    raise ConnectError(f"{self.address}: {verdict}")
            self._handle(self.mux.receive_data(data, now))
            while self.mux.input_pending and self.closed_reason is None:
                self._handle(self.mux.receive_data(b"", now))
            if not (self._tls_pending()):
                return

    def _timers(self) -> None:
        now = time.monotonic()
        cfg = self.config
        if self.closed_reason is None and now >= self._deadline():
            if self.first_input is None:
                verdict = silence_verdict("h2", self.address.scheme, cfg.handshake_timeout)
                self._lost(verdict)
                raise ConnectError(f"{self.address}: {verdict}")
            self._lost(f"the server sent nothing for {cfg.peer_timeout:g} s (a dead connection)")
        if now < self._next_tick or self.closed_reason is not None:
            return
        # Spec 13: a PING every tick, a keepalive on every half we may send on that was
        # idle for keepalive_interval.
        self._next_tick = now + cfg.tick_interval
        self.mux.ping()
        for st in self.streams.values():
            if not st.out_ended and now - st.last_sent >= cfg.keepalive_interval and self.mux.sendable(st.stream_id) >= 1:
                self._send(st, KEEPALIVE)

    def _lost(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        for st in self.streams.values():
            if not st.finished:
                st.in_ended = st.out_ended = True
                st.error = st.error or reason

    def _handle(self, events: list[MuxEvent]) -> None:
        for ev in events:
            if isinstance(ev, DataReceived):
                self._data(ev)
                continue
            st = self.streams.get(getattr(ev, "stream_id", None) or 0)
            if isinstance(ev, StreamAnswered):
                if st is not None:
                    self._answered(st, ev.headers)
            elif isinstance(ev, StreamEnded):
                if st is not None and not st.in_ended:
                    if not st.decoder.at_boundary():
                        st.error = st.error or "the peer ended its half inside an item"
                    self._peer_ended(st)
            elif isinstance(ev, StreamReset):
                if st is not None and not st.finished:
                    st.in_ended = st.out_ended = True
                    who = "the peer" if ev.remote else "the HTTP/2 layer"
                    st.error = st.error or f"stream reset by {who} (HTTP/2 error code {ev.error_code})"
            elif isinstance(ev, ConnectionEnded):
                self._lost(ev.reason)
        if self._conn_unacked >= self.config.connection_window // 8:
            self.mux.acknowledge(None, self._conn_unacked)
            self._conn_unacked = 0

    def _answered(self, st: Stream, headers: dict[str, str]) -> None:
        st.status = headers.get(":status")
        if st.role == "park":
            # A server-opened stream (7.2): a one-request client names none (module doc).
            self.reset(st, CANCEL, "a park was answered")
            return
        if st.status != "200":
            if st is self.control:
                self._lost(f"the server refused the session (status {st.status})")
                return
            self.reset(st, CANCEL, f"the peer refused the stream (status {st.status})")

    def _peer_ended(self, st: Stream) -> None:
        st.in_ended = True
        if st is self.control:
            # The server ended the session (6.4): every other stream fails.
            self.end(st)
            self._lost("the server closed the session")
            return
        # A side that does not write on a stream ends its half once the peer's ended (10.2);
        # for the ones we write on, the caller ends them when it is done.
        if st.role in ("sender", "write-stream"):
            self.end(st)

    def _data(self, ev: DataReceived) -> None:
        self._conn_unacked += ev.flow_length
        st = self.streams.get(ev.stream_id)
        if st is None:
            self.mux.acknowledge(ev.stream_id, ev.flow_length)  # (spec 4.6)
            return
        if st.in_ended:
            return  # (keepalives after the end marker; no WINDOW_UPDATE there, 12.3)
        try:
            items, _free = st.decoder.feed(ev.data)
        except MessageTooLargeError as exc:
            self.reset(st, ENHANCE_YOUR_CALM, str(exc))
            return
        except RemoteProtocolError as exc:
            self.reset(st, PROTOCOL_ERROR, str(exc))
            return
        for payload, _size in items:
            if st.role in ("control", "park"):
                continue  # frames there are ignored (spec 8)
            if st.on_item is not None:
                st.on_item(payload)
        # Consumed (the callbacks wrote or kept it): owed a WINDOW_UPDATE, paid in batches.
        st._unacked += ev.flow_length
        error = st.decoder.error
        if error is not None:
            code = ENHANCE_YOUR_CALM if isinstance(error, MessageTooLargeError) else PROTOCOL_ERROR
            self.reset(st, code, str(error))
            return
        if st.decoder.ended:
            self._peer_ended(st)
        elif st._unacked >= self.config.stream_window // 8:
            self.mux.acknowledge(st.stream_id, st._unacked)
            st._unacked = 0

    def decode(self, payload: bytes) -> Any:
        """A message that holds no references (a reference is a RemoteProtocolError)."""
        return self.codec.decode(payload, _no_reference)

    # -- the end ------------------------------------------------------------------------------
    def close(self) -> None:
        """End the session gracefully (spec 6.4): END_STREAM on the control stream,
        RST_STREAM(CANCEL) on every other stream not finished, GOAWAY(NO_ERROR); then
        wait briefly for the server to close its side and close the socket."""
        try:
            if self.closed_reason is None:
                self.end(self.control)
                for st in self.streams.values():
                    if st is not self.control and not st.finished:
                        self.reset(st, CANCEL, "the session was closed")
                self.mux.close(0)
                self.flush()
                self._drain()
        finally:
            self.closed_reason = self.closed_reason or "closed"
            try:
                self.sock.close()
            except OSError:
                pass

    def _drain(self) -> None:
        """Half-close and read until the server closes (at most ``close_timeout``, 1 s at
        most): closing a socket with unread input would reset the connection."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + min(1.0, self.config.close_timeout)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not (self._tls_pending()) and not poller.poll(left * 1000):
                return
            try:
                if not self.sock.recv(_READ_SIZE):
                    return
            except OSError:
                return


def open_socket(address: Address, *, ssl: _ssl.SSLContext | None = None, config: Config | None = None) -> socket.socket:
    """A connected blocking socket to ``address``: TCP (TCP_NODELAY), unix, or TLS with
    ALPN ``h2`` (handshake done and checked). Failures are :class:`ConnectError`
    naming the likely cause (as :func:`libchan.connect`'s)."""
    cfg = config or Config()
    try:
        if address.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(cfg.open_timeout)
                sock.connect(address.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), timeout=cfg.open_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(f"could not connect to {address}: {why}") from exc
    if address.scheme != "tls":
        sock.settimeout(cfg.peer_timeout)
        return sock
    import ssl as _ssl

    ctx = ssl if ssl is not None else _ssl.create_default_context()
    ctx.set_alpn_protocols([ALPN_H2])
    try:
        tls = ctx.wrap_socket(sock, server_hostname=address.host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        tls.settimeout(cfg.handshake_timeout)
        try:
            tls.do_handshake()
        except TimeoutError:
            raise ConnectError(
                f"{address}: the TLS handshake did not finish within {cfg.handshake_timeout:g}s: the server"
                " probably does not speak TLS on this port (use tcp://)"
            ) from None
        except OSError as exc:  # (ssl.SSLError is one)
            verdict = tls_client_verdict(exc)
            if verdict is None:
                raise ConnectError(f"{address}: TLS failure: {describe(exc)}") from exc
            raise ConnectError(f"{address}: {verdict} ({describe(exc)})") from exc
        selected = tls.selected_alpn_protocol()
        if selected != ALPN_H2:
            if selected is None:
                fix = "it is not a libchan HTTP/2 server; a Go libchan server (no ALPN) needs profile='spdy'"
            else:
                fix = f"it speaks {selected!r}" + ("; connect with profile='spdy'" if selected == "spdy/3.1" else "")
            raise ConnectError(f"{address}: the TLS server did not agree to h2 via ALPN (it selected {selected!r}): {fix}")
        tls.settimeout(cfg.peer_timeout)
    except BaseException:
        tls.close()
        raise
    return tls


def connect(url: str, *, ssl: _ssl.SSLContext | None = None, config: Config | None = None) -> BlockingClient:
    """Connect to the libchan server at ``url`` (HTTP/2 profile) and start a session: the
    connection preface, the control stream and the parks are queued (written by the
    first :meth:`BlockingClient.poll` or :meth:`~BlockingClient.flush`). ValueError for
    a bad URL, :class:`ConnectError` if the connection cannot be made."""
    address = parse_url(url)
    sock = open_socket(address, ssl=ssl, config=config)
    return BlockingClient(sock, address=address, config=config)


def closed_error(client: BlockingClient) -> ConnectError | None:
    """The ConnectError to raise if the connection ended before the server said
    anything (with the likely cause, as :func:`libchan.connect` names it), else None."""
    if client.first_input is not None or client.closed_reason is None:
        return None
    verdict = None
    if client.read_error is not None and client.address.scheme == "tls":
        verdict = tls_client_verdict(client.read_error)
    if verdict is None:
        verdict = closed_verdict("h2", client.address.scheme, client.closed_reason)
    return ConnectError(f"{client.address}: {verdict}")
