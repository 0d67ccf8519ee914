"""The HTTP side of dockerserver: h11 over a trio stream.

:func:`serve_connection` reads one request at a time (keep-alive) and hands it, with its
body and a :class:`Response`, to a dispatch function. A :class:`Response` answers with a
whole body, a streamed body, or by giving up HTTP for Docker's raw stream (attach). Every
response carries the headers a Docker daemon sends (``Api-Version``, ``Server``...).
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import time
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Sequence

import h11
import trio

from . import sockio
from .versions import API_VERSION, VERSION

__all__ = ["HTTPError", "APIRequest", "HTTPConnection", "Response", "Dispatch", "Limits", "DEFAULT_LIMITS", "serve_connection", "refuse_connection", "RAW_STREAM"]

RAW_STREAM = "application/vnd.docker.raw-stream"
"""The content type of Docker's stdio streams (multiplexed frames, or raw for a TTY)."""

_READ_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one client may make the Docker front end hold or do (per connection)."""

    #: Largest request body (a container config is a few KB; ``docker build`` contexts
    #: are not accepted): 413 beyond it, before it is read.
    max_body: int = 4 * 1024 * 1024
    #: Most pieces (chunks of a chunked body, reads) one body may come in: 400 beyond.
    max_body_pieces: int = 16384
    #: Seconds a connection may wait for, or take to send, a request head (idle
    #: keep-alive included): then it is closed (408 if a request had begun).
    head_timeout: float = 60.0
    #: Seconds a request body may take to arrive: 408 beyond.
    body_timeout: float = 60.0
    #: Connections served at once: a connection beyond it is answered 503 and closed.
    max_connections: int = 1024


DEFAULT_LIMITS = Limits()


def json_line(obj: Any, end: str = "\n") -> bytes:
    """``obj`` as the engine writes JSON (Go's encoding/json: no spaces), one line."""
    return (json.dumps(obj, separators=(",", ":")) + end).encode()


def reason(status: int) -> bytes:
    """The reason phrase of ``status`` (``OK`` for 200), as the engine sends it."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class HTTPError(Exception):
    """Answer the request with ``status`` and Docker's ``{"message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class APIRequest:
    """A request as the endpoints see it (parsed by :mod:`.routes`)."""

    method: str
    path: str
    """The path without its ``/vN.NN`` prefix and without the query."""
    query: dict[str, str]
    """Each query parameter once (its last value)."""
    body: bytes
    ref: str = ""
    """The container reference in the path (URL-unquoted), for ``/containers/REF/...`` endpoints."""


class HTTPConnection:
    """An h11 server connection over a trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)

    async def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """The next event; a connection that fails to read counts as closed."""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await sockio.receive_some(self.stream)
                except _READ_ERRORS:
                    data = b""
                self.h11.receive_data(bytes(data))
                continue
            return event

    async def send(self, *events: h11.Event) -> None:
        """Send ``events`` in one write (a head and its body in two, the client would wake
        for the head alone and wait again for the body)."""
        data = b"".join([self.h11.send(event) or b"" for event in events])
        if data:
            await sockio.send_all(self.stream, data)


class Response:
    """Answers one request: fixed bodies, streamed bodies, or a protocol upgrade."""

    def __init__(self, conn: HTTPConnection, request: h11.Request) -> None:
        self.conn = conn
        self.request = request
        self.started = False
        self.hijacked = False
        self.head = request.method == b"HEAD"

    def _headers(self, content_type: str | None, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        h = [
            ("Api-Version", API_VERSION),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            ("Server", f"Docker/{VERSION} (linux)"),
            ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())),
        ]
        if content_type:
            h.append(("Content-Type", content_type))
        h.extend(extra)
        return h

    async def send(self, status: int, body: bytes = b"", content_type: str | None = None,
                   extra: Sequence[tuple[str, str]] = ()) -> None:
        """A whole response: status, headers, ``body`` (none for HEAD, 204 and 304)."""
        self.started = True
        headers = self._headers(content_type if body or content_type else None, extra)
        if status not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        events: list[h11.Event] = [h11.Response(status_code=status, headers=headers, reason=reason(status))]
        if body and not self.head and status not in (204, 304):
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self.conn.send(*events)

    async def json(self, status: int, obj: Any) -> None:
        await self.send(status, json_line(obj), "application/json")

    async def error(self, status: int, message: str) -> None:
        await self.json(status, {"message": message})

    async def start_stream(self, status: int, content_type: str) -> None:
        """Send the head of a streamed response; then :meth:`write` the body and :meth:`end`."""
        self.started = True
        await self.conn.send(h11.Response(status_code=status, headers=self._headers(content_type), reason=reason(status)))

    async def write(self, data: bytes) -> None:
        if data:
            await self.conn.send(h11.Data(data=data))

    async def end(self) -> None:
        await self.conn.send(h11.EndOfMessage())

    async def until_client_gone(self, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` when the client closes its connection (streamed responses)."""
        try:
            while True:
                data = await self.conn.stream.receive_some(65536)
                if not data:
                    break
                self.conn.h11.receive_data(bytes(data))
        except Exception:
            pass
        scope.cancel()

    async def upgrade(self) -> tuple[trio.abc.Stream, bytes]:
        """Switch to Docker's raw stream; return the stream and bytes already received."""
        self.started = self.hijacked = True
        headers = {k.lower(): v.lower() for k, v in self.request.headers}
        if b"upgrade" in headers.get(b"connection", b""):
            await self.conn.send(h11.InformationalResponse(
                status_code=101, reason=b"UPGRADED",
                headers=self._headers(RAW_STREAM, [("Connection", "Upgrade"), ("Upgrade", "tcp")])))
            leftover, _ = self.conn.h11.trailing_data
        else:  # an old client: 200 then the raw stream, no HTTP framing
            head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self._headers(RAW_STREAM)) + "\r\n"
            await self.conn.stream.send_all(head.encode())
            leftover, _ = self.conn.h11.trailing_data if self.conn.h11.their_state is h11.SWITCHED_PROTOCOL else (b"", False)
        return self.conn.stream, bytes(leftover)


Dispatch = Callable[[h11.Request, bytes, Response], Awaitable[None]]
"""``await dispatch(request, body, response)`` answers one request."""


async def serve_connection(stream: trio.abc.Stream, dispatch: Dispatch, limits: Limits = DEFAULT_LIMITS) -> None:
    """Serve the requests of one connection until it closes or is hijacked; then close it.

    Bounded by ``limits``: a body too large is refused (413) before it is read, a head
    or body that does not arrive in time ends the connection (408 once a request had
    begun), and a request that is not HTTP/1.1 gets a 400."""
    conn = HTTPConnection(stream)
    try:
        while True:
            event: Any = None
            with trio.move_on_after(limits.head_timeout):
                event = await conn.next_event()
            if not isinstance(event, h11.Request):
                if event is None and conn.h11.trailing_data[0]:  # a head had begun
                    await _refuse(conn, 408, "the request head did not arrive in time")
                break
            length = _content_length(event)
            if length is not None and length > limits.max_body:
                await _refuse(conn, 413, f"request body too large: {length} bytes (at most {limits.max_body})")
                return
            body = bytearray()
            pieces = 0
            with trio.move_on_after(limits.body_timeout) as body_scope:
                while True:
                    ev = await conn.next_event()
                    if isinstance(ev, h11.Data):
                        body += ev.data
                        pieces += 1
                        if len(body) > limits.max_body:
                            await _refuse(conn, 413, f"request body too large (at most {limits.max_body} bytes)")
                            return
                        if pieces > limits.max_body_pieces:
                            await _refuse(conn, 400, f"request body in too many pieces (more than {limits.max_body_pieces})")
                            return
                    elif isinstance(ev, h11.EndOfMessage) or ev is h11.PAUSED:
                        break
                    else:
                        return
            if body_scope.cancelled_caught:
                await _refuse(conn, 408, "the request body did not arrive in time")
                return
            resp = Response(conn, event)
            await dispatch(event, bytes(body), resp)
            if resp.hijacked:
                return
            if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
                conn.h11.start_next_cycle()
            else:
                break
    except h11.RemoteProtocolError as exc:
        await _refuse(conn, exc.error_status_hint, f"bad request: {exc}")
    except h11.LocalProtocolError:
        pass
    except _READ_ERRORS:
        pass
    finally:
        await _close_quietly(stream)


async def _close_quietly(stream: trio.abc.Stream) -> None:
    """Close a connection we are done with (shielded, at most 2 s, errors ignored)."""
    with trio.move_on_after(2) as scope:
        scope.shield = True
        try:
            await stream.aclose()
        except Exception:
            pass


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(conn: HTTPConnection, status: int, message: str) -> None:
    """Answer ``status`` with Docker's error body, if a response may still be sent, and
    close: the rest of what the client sends is not read."""
    if conn.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = json_line({"message": message})
    head = (
        f"HTTP/1.1 {status} {reason(status).decode()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nApi-Version: {API_VERSION}\r\n"
        f"Server: Docker/{VERSION} (linux)\r\n\r\n"
    ).encode()
    with trio.move_on_after(2):
        try:
            await conn.stream.send_all(head + body)
        except _READ_ERRORS:
            pass


async def refuse_connection(stream: trio.abc.Stream, status: int, message: str) -> None:
    """Answer a connection that is not served (too many) with ``status``, and close it."""
    conn = HTTPConnection(stream)
    try:
        await _refuse(conn, status, message)
    finally:
        await _close_quietly(stream)
