"""``dockerclient``: drive one real Docker Engine over its HTTP API, as a libswarm engine.

Args: ``URL [--tlsverify] [--tlscacert=F] [--tlscert=F] [--tlskey=F]``; ``URL`` is
``unix:///var/run/docker.sock``, ``tcp://HOST:PORT`` or ``tls://HOST:PORT`` (``tcp://``
with any TLS option is TLS, like the docker CLI; ``--tlsverify`` checks the engine's
certificate against ``--tlscacert``, client certificate from ``--tlscert/--tlskey``).

The API version is negotiated once: ``GET /_ping``, the engine's ``API-Version`` header
(its current version), then every path is ``/v<version>/...``. HTTP is h11 over trio,
one connection per request (attach and event streams hold theirs), except that a ``GET``
read in full leaves its connection for the next ``GET``.

The engine (the service's input) answers:

* ``Ls()`` -> ``Set(names...)`` of every container (``all=1``), oldest first;
* ``Spawn(create_json)`` -> ``Ack(ret=container)``: the Docker create body, with the
  name as key ``"name"`` (sent as ``?name=``). If the engine answers ``No such image``
  the image is pulled once (``POST /images/create``, errors in the progress stream
  are reported) and the create retried; an image that exists is never pulled;
* ``Attach("")`` -> ``Ack(ret=engine)``; ``Attach(ref)`` -> ``Ack(ret=container)``
  (``GET /containers/ref/json``; a 404 is ``Error("No such container: ref")``); the inspect
  of the lookup is the ``Ack``'s arg, and answers the handle's first request when that is
  ``Get()`` (:meth:`Server.fresh_handle`: ``docker inspect`` costs the engine one request, not two).
  A ``ref`` that is the full id of a container met before is answered at once, no
  inspect (``docker logs`` asks by the id its inspect gave): the engine resolves
  ``/containers/<id>/...`` at the handle's first request as the lookup would have.
  The objects of containers met before are kept while a handle of theirs is open, and
  at most ``max_idle_objects`` (1024) more, the least recently used dropped first (a
  later lookup makes a new one): containers created and removed for months through one
  ``dockerclient`` do not make its memory grow;
* ``Get()`` -> the engine's ``/info`` JSON; ``Get("version")`` -> its ``/version`` JSON;
  ``Get("containers")`` -> ``GET /containers/json?all=1`` (spec/LIBSWARM.md 6.8);
  ``Get("networks")``, ``Get("network", REF)``, ``Get("volumes")``, ``Get("volume", NAME)``
  -> ``GET /networks``, ``/networks/REF``, ``/volumes``, ``/volumes/NAME`` (spec/LIBSWARM.md 6.6);
* ``Start``/``Stop`` -> ``Ack`` (the engine itself is not started or stopped);
* ``Watch("events", ["since=T"], ["until=T"])`` -> ``GET /events``: ``Set(json)`` per event;
* images (spec/LIBSWARM.md 6.2), the engine's answers verbatim: ``Get("images")`` ->
  ``GET /images/json``; ``Get("image", REF)`` -> ``GET /images/REF/json``;
  ``Start("pull", REF)`` -> ``POST /images/create`` (an error in the progress stream is
  the ``Error``); ``Start("tag", SRC, DST)`` -> ``POST /images/SRC/tag``;
  ``Stop("rmi", REF[, "force"])`` -> ``DELETE /images/REF`` answered ``Ack(<its JSON>)``.

A container answers:

* ``Get()`` -> inspect JSON, verbatim; ``Get("stdout"|"stderr")`` -> that stream's logs (bytes);
  ``Get("top"[, PS_ARGS])`` -> ``GET /top?ps_args=``; ``Get("stats")`` -> ``GET /stats?stream=0``
  (the engine's JSON, spec/LIBSWARM.md 6.7);
* ``Start()`` -> ``POST start`` (``Error("container <id> is already running")`` on 304);
  ``Start("unpause")`` -> ``POST unpause``; ``Stop("pause")`` -> ``POST pause``;
  ``Set("name", NEW)`` (a request) -> ``POST rename?name=NEW`` (spec/LIBSWARM.md 6.5);
  ``Set("size", ROWS, COLS)`` (a request; an exec's too) -> ``POST resize?h=ROWS&w=COLS`` (6.11);
* ``Stop(words...)`` -> ``POST stop`` (``time=N`` gives ``?t=N``), ``signal=SIG`` ->
  ``POST kill?signal=SIG``, ``rm`` [``force``] -> ``DELETE`` (``?force=1``);
* ``Attach("", words...)`` -> ``Ack(ret=stdin)`` then ``Log("stdout"|"stderr", chunk)``
  until the stream ends: the attach upgrade (``stream=1&stdin=1&stdout=1&stderr=1``,
  ``logs=1`` with the word ``logs``, no stdin with ``nostdin``), demultiplexed (raw for
  a TTY container, as ``stdout``). ``Log(chunk)`` on the stdin handle is written to the
  connection; closing the handle half-closes it (over TLS: the TCP write side, as the
  docker CLI does), and the engine closes a StdinOnce stdin.
  Without the word ``next``, an exited container replays its logs (with ``logs``) and
  the output ends (a created one streams its first run); with ``next`` it waits for the next run (``docker start -a``).
  ``logs`` with ``nostdin`` (and no ``next``) is ``docker logs``: ``GET /logs`` with the log
  words of spec/LIBSWARM.md 6.4 as its query (``follow`` unless ``nostream``, ``timestamps``,
  ``tail``, ``since``, ``until``): the engine's own selection and timestamps. With the
  word ``raw`` the body goes on as it comes, ``Log("raw", bytes)`` (the engine's framing,
  none for a TTY container), and without ``follow`` (``nostream``) nothing is inspected;
* ``Watch()`` -> ``Ack``, ``Set("state", inspect)``, then ``Set(action, inspect)`` for
  each engine event of the container (``start``, ``die``, ``destroy``...; after a
  ``destroy`` the stream ends, carrying the last known state with the exit code);
* ``Ls()`` -> ``Set()``.

Every engine error becomes ``Error(<the engine's message>)`` (the ``message`` of its
JSON body), so a front end can give the same text and status class back. A connection
that fails is a one-line ``Error`` from the request that met it, saying what to check:
an untrusted engine certificate (``--tlscacert``), a client certificate refused or
missing (``--tlscert/--tlskey``; TLS 1.3 reports it on the first read), a plain
connection to a TLS port (the ping's ``HTTP 400``) -- spec/DOCKER.md §3.
"""

from __future__ import annotations

import json
import re
import ssl
import struct
import urllib.parse
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import h11
import trio

import libchan

from .._errors import RemoteError, UsageError
from .._message import Message
from libchan.closing import aclose_quietly

from .._server import Request, Server
from .._service import Service
from .._verbs import Verb
from ._remote import describe
from ._docker import sockio
from ._docker.address import TLSOptions, parse_tls_options, parse_url
from ._docker.formats import exec_config

__all__ = ["DockerClient", "EngineError"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

_FULL_ID = re.compile(r"[0-9a-f]{64}")
_FULL_ID_BYTES = re.compile(rb"[0-9a-f]{64}")
"""A container's full id (what the docker CLI sends after its inspect: ``docker logs``)."""


class EngineError(RemoteError):
    """The engine answered an error status; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HTTP:
    """A tiny h11 client: one connection per request, except that a ``GET`` answered in
    full leaves its connection open for the next ``GET`` (at most :data:`MAX_IDLE` kept)."""

    MAX_IDLE = 4

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None, client_cert: bool = False) -> None:
        self.scheme, self.host, self.port = parse_url(url)
        self.ssl_context = ssl_context
        self.client_cert = client_cert
        if self.scheme == "tls" and ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        self.prefix: str | None = None
        self._lock = trio.Lock()
        self._idle: list[tuple[trio.abc.Stream, h11.Connection]] = []

    async def connect(self) -> trio.abc.Stream:
        try:
            if self.scheme == "unix":
                stream: trio.abc.Stream = await trio.open_unix_socket(self.host)
            else:
                stream = await trio.open_tcp_stream(self.host, self.port)
            if self.ssl_context is not None:
                ssl_stream = trio.SSLStream(stream, self.ssl_context, server_hostname=self.host,
                                            https_compatible=True)
                await ssl_stream.do_handshake()
                stream = ssl_stream
        except (OSError, ssl.SSLError, trio.BrokenResourceError) as exc:
            raise RemoteError(f"cannot connect to the Docker engine at {self._url()}: {self._why(exc)}") from None
        return stream

    def _url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}" + (" (TLS)" if self.ssl_context and self.scheme != "tls" else "")

    def _why(self, exc: BaseException) -> str:
        """One line for a connection failure; TLS failures say what to check."""
        text = describe(exc)
        upper = text.upper()
        if "CERTIFICATE_VERIFY_FAILED" in upper:
            return f"TLS: the engine's certificate is not trusted (check --tlscacert): {text}"
        if "ALERT_BAD_CERTIFICATE" in upper or "CERTIFICATE_REQUIRED" in upper or "UNKNOWN_CA" in upper:
            given = "" if self.client_cert else " (none was given: --tlscert/--tlskey)"
            return f"TLS: the engine refused our client certificate{given}: {text}"
        if self.ssl_context is not None and isinstance(exc, (ssl.SSLError, trio.BrokenResourceError)):
            return f"TLS: {text}"
        return text

    async def _prefix(self) -> str:
        if self.prefix is not None:  # (known: no lock to take, no scheduler pass)
            return self.prefix
        async with self._lock:
            if self.prefix is None:
                status, headers, body = await self.request("GET", "/_ping", versioned=False)
                version = headers.get("api-version")
                if not version and status not in (200, 404):
                    # not a Docker engine answering (e.g. Go's "Client sent an HTTP request to
                    # an HTTPS server." when TLS options are missing)
                    raise EngineError(status, f"Docker engine at {self._url()}: GET /_ping: HTTP {status}: "
                                              f"{_message(body, status)}")
                if not version:
                    status, _, body = await self.request("GET", "/version", versioned=False)
                    try:
                        version = json.loads(body).get("ApiVersion", "1.24")
                    except (ValueError, AttributeError):
                        raise EngineError(status, f"Docker engine at {self._url()}: GET /version: HTTP {status}: "
                                                  f"not a Docker engine answer") from None
                self.prefix = f"/v{version}"
            return self.prefix

    async def _send_request(self, conn: h11.Connection, stream: trio.abc.Stream, method: str, target: str,
                            body: bytes | None, extra: list[tuple[str, str]], http10: bool = False) -> None:
        headers = [("Host", "docker"), ("User-Agent", "libswarm-dockerclient")] + extra
        if body is not None:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        elif method in ("POST", "PUT"):
            headers.append(("Content-Length", "0"))
        out = conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if http10:  # h11 only writes HTTP/1.1 (but reads a 1.0 answer): the request line says 1.0
            assert body is None, "an HTTP/1.0 request here has no body"
            out = out.replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
        if body:
            out += conn.send(h11.Data(data=body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await sockio.send_all(stream, out)  # one write: head and body

    @staticmethod
    async def _next(conn: h11.Connection, stream: trio.abc.Stream, strict: bool = False) -> Any:
        """The next h11 event; a failing read is the end of the data (``strict``: it raises)."""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await sockio.receive_some(stream)
                except (*_GONE, ssl.SSLError, OSError):
                    if strict:
                        raise
                    data = b""
                conn.receive_data(bytes(data))
                continue
            return event

    async def _response(self, conn: h11.Connection, stream: trio.abc.Stream, what: str) -> Any:
        """Read the response head; failures (TLS alerts, closed connections) are one-line errors."""
        try:
            return await self._next(conn, stream, strict=True)
        except (*_GONE, ssl.SSLError, OSError) as exc:
            raise RemoteError(f"Docker engine at {self._url()}: {what}: {self._why(exc)}") from None
        except h11.ProtocolError:
            raise RemoteError(f"Docker engine at {self._url()}: {what}: the connection was closed "
                              "without a response") from None

    async def target(self, path: str, query: dict[str, Any] | None = None, versioned: bool = True) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return (await self._prefix() if versioned else "") + path + ("?" + urllib.parse.urlencode(q) if q else "")

    @asynccontextmanager
    async def open(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                   versioned: bool = True, http10: bool = False) -> AsyncIterator[tuple[int, dict[str, str], Any]]:
        """Send a request; yield ``(status, headers, chunks)``: ``chunks`` iterates the body.

        ``http10``: ask in HTTP/1.0, so that a streamed body comes as it is, ended by the
        close, rather than chunked: the engine sends each log frame as a chunk of its own,
        and decoding hundreds of chunks cost ``docker logs`` more than the rest of its way.
        """
        target = await self.target(path, query, versioned)
        raw = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        stream = await self.connect()
        conn = h11.Connection(h11.CLIENT)
        try:
            try:
                await self._send_request(conn, stream, method, target, raw, [("Connection", "close")], http10)
            except (*_GONE, ssl.SSLError, OSError, h11.ProtocolError) as exc:
                raise RemoteError(f"Docker engine at {self._url()}: {method} {path}: {self._why(exc)}") from None
            response = await self._response(conn, stream, f"{method} {path}")
            if not isinstance(response, h11.Response):
                raise RemoteError(f"Docker engine at {self._url()}: {method} {path}: no response")
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in response.headers}

            async def chunks() -> AsyncIterator[bytes]:
                # Every Data event already buffered comes out as one piece: the engine
                # writes a chunk per log frame, and a piece per chunk cost a message each
                # further down (``docker logs``).
                while True:
                    try:
                        ev = await self._next(conn, stream)
                    except h11.ProtocolError:
                        return
                    if not isinstance(ev, h11.Data):
                        return
                    parts = [ev.data]
                    while True:
                        try:
                            ev = conn.next_event()
                        except h11.ProtocolError:
                            ev = None
                        if not isinstance(ev, h11.Data):
                            break
                        parts.append(ev.data)
                    yield b"".join(parts)
                    if ev is not h11.NEED_DATA:
                        return

            yield response.status_code, headers, chunks()
        finally:
            await aclose_quietly(stream)

    async def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                      versioned: bool = True) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and body is None:
            return await self._get(await self.target(path, query, versioned), path)
        async with self.open(method, path, query, body, versioned) as (status, headers, chunks):
            data = b"".join([c async for c in chunks])
        return status, headers, data

    async def _get(self, target: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """``GET target`` on a kept connection if there is one (a new one otherwise), read in
        full; the connection is kept for the next when both sides may go on. A kept connection
        the engine has closed meanwhile (no answer at all on it) is dropped and the request
        made again: a GET changes nothing."""
        while True:
            reused = bool(self._idle)
            stream, conn = self._idle.pop() if reused else (await self.connect(), h11.Connection(h11.CLIENT))
            keep = False
            try:
                try:
                    await self._send_request(conn, stream, "GET", target, None, [])
                except (*_GONE, ssl.SSLError, OSError, h11.ProtocolError) as exc:
                    if reused:
                        continue
                    raise RemoteError(f"Docker engine at {self._url()}: GET {path}: {self._why(exc)}") from None
                if reused:
                    try:
                        response = await self._next(conn, stream, strict=True)
                    except (*_GONE, ssl.SSLError, OSError, h11.ProtocolError):
                        continue
                else:
                    response = await self._response(conn, stream, f"GET {path}")
                if not isinstance(response, h11.Response):
                    if reused:
                        continue
                    raise RemoteError(f"Docker engine at {self._url()}: GET {path}: no response")
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in response.headers}
                parts = []
                while True:
                    try:
                        ev = await self._next(conn, stream)
                    except h11.ProtocolError:
                        break
                    if not isinstance(ev, h11.Data):
                        break
                    parts.append(ev.data)
                keep = (isinstance(ev, h11.EndOfMessage) and conn.our_state is h11.DONE
                        and conn.their_state is h11.DONE and len(self._idle) < self.MAX_IDLE)
                if keep:
                    conn.start_next_cycle()
                    self._idle.append((stream, conn))
                return response.status_code, headers, b"".join(parts)
            finally:
                if not keep:
                    await aclose_quietly(stream)

    async def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                   ok: tuple[int, ...] = (200, 201, 204)) -> tuple[int, bytes]:
        """A request whose error statuses raise :class:`EngineError` with the engine's message."""
        status, _, data = await self.request(method, path, query, body)
        if status not in ok:
            raise EngineError(status, _message(data, status))
        return status, data

    async def hijack(self, path: str, query: dict[str, Any],
                     body: Any = None) -> tuple[trio.abc.Stream, bytes, dict[str, str]]:
        """``POST path`` with ``Upgrade: tcp``; return the raw stream, bytes already read, headers."""
        target = await self.target(path, query)
        stream = await self.connect()
        conn = h11.Connection(h11.CLIENT)
        try:
            try:
                await self._send_request(conn, stream, "POST", target,
                                         json.dumps(body).encode() if body is not None else None,
                                         [("Connection", "Upgrade"), ("Upgrade", "tcp")])
            except (*_GONE, ssl.SSLError, OSError) as exc:
                raise RemoteError(f"Docker engine at {self._url()}: attach: {self._why(exc)}") from None
            response = await self._response(conn, stream, "attach")
            headers = ({k.decode().lower(): v.decode("latin-1") for k, v in response.headers}
                       if isinstance(response, (h11.Response, h11.InformationalResponse)) else {})
            if isinstance(response, h11.InformationalResponse) and response.status_code == 101:
                leftover, _ = conn.trailing_data
                return stream, bytes(leftover), headers
            if isinstance(response, h11.Response):
                body = b""
                while isinstance(ev := await self._next(conn, stream), h11.Data):
                    body += ev.data
                raise EngineError(response.status_code, _message(body, response.status_code))
            raise RemoteError(f"Docker engine at {self._url()}: attach: no response")
        except BaseException:
            await aclose_quietly(stream)
            raise


def _quote(ref: str) -> str:
    """An image or container reference in a path (Docker's router takes ``/`` and ``:`` there)."""
    return urllib.parse.quote(ref, safe="/:@")


def _split_ref(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` -> ``(repo, tag)`` (tag ``latest`` by default; a registry port is not a tag)."""
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def _inspected_id(data: bytes) -> str:
    """The ``Id`` of a container's inspect JSON: read where the engine writes it, first
    (``{"Id":"<64 hex>",``), without decoding the rest; decoded in full otherwise."""
    if data[:7] == b'{"Id":"' and data[71:73] == b'",' and _FULL_ID_BYTES.fullmatch(data, 7, 71):
        return data[7:71].decode()
    return str(json.loads(data)["Id"])


def _message(body: bytes, status: int) -> str:
    try:
        data = json.loads(body)
        message = data.get("message") if isinstance(data, dict) else None
        if isinstance(message, str):
            return message
    except ValueError:
        pass
    return body.decode(errors="replace").strip() or f"engine error (HTTP {status})"


async def demux(chunks: AsyncIterator[bytes], tty: bool) -> AsyncIterator[tuple[str, bytes]]:
    """Docker's multiplexed stream (or a raw TTY stream) -> ``(tag, payload)``.

    The frames of one stream that follow each other in what has arrived so far come out as
    one payload: the engine frames its logs line by line, and a message per line through
    the chain cost ``docker logs`` far more than the bytes (nothing waits for more input
    to merge, so a live stream is not delayed).
    """
    if tty:
        async for c in chunks:
            yield "stdout", c
        return
    buf = b""
    async for c in chunks:
        buf = buf + c if buf else c
        pos, end = 0, len(buf)
        tag = ""
        run: list[bytes] = []
        while end - pos >= 8:
            kind, size = _FRAME_HEAD.unpack_from(buf, pos)
            if end - pos - 8 < size:
                break
            payload_tag = "stderr" if kind == 2 else "stdout"
            if size:
                if payload_tag != tag and run:
                    yield tag, b"".join(run)
                    run = []
                tag = payload_tag
                run.append(buf[pos + 8:pos + 8 + size])
            pos += 8 + size
        if run:
            yield tag, b"".join(run)
        buf = buf[pos:]


_FRAME_HEAD = struct.Struct(">BxxxL")


async def _stream_chunks(stream: trio.abc.Stream, first: bytes) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        try:
            data = await stream.receive_some(65536)
        except (*_GONE, ssl.SSLError, OSError):
            return
        if not data:
            return
        yield bytes(data)


async def _half_close(stream: trio.abc.Stream) -> None:
    """End what we send (the container's stdin) but keep reading its output.

    TLS has no half-close: like the docker CLI (its ``tlsClientCon.CloseWrite``), shut the
    write side of the TCP connection under it; the engine reads that as the end of stdin.
    Everything written before has been handed to the socket (``send_all`` returned).
    """
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        await stream.send_eof()


def _client_ssl_context(opts: TLSOptions, url: str) -> ssl.SSLContext | None:
    if not (opts.tls or opts.tlsverify or opts.tlscert or opts.tlscacert or url.startswith("tls://")):
        return None
    ctx = ssl.create_default_context()
    try:
        if opts.tlscacert:
            ctx.load_verify_locations(opts.tlscacert)
        if opts.tlscert or opts.tlskey:
            if not opts.tlscert:
                raise UsageError("dockerclient: --tlskey needs --tlscert")
            ctx.load_cert_chain(opts.tlscert, opts.tlskey)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"dockerclient: cannot load TLS files: {exc}") from None
    if not opts.tlsverify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class DockerClient(Service):
    """One real Docker Engine as a libswarm engine (see the module docstring)."""

    driver = "dockerclient"

    def __init__(self, *args: str) -> None:
        opts = parse_tls_options(list(args), "dockerclient")
        if len(opts.args) != 1:
            raise UsageError(f"dockerclient: spawn takes exactly 1 argument, got {len(opts.args)}")
        self.url = opts.args[0]
        self.http = _HTTP(self.url, _client_ssl_context(opts, self.url), client_cert=bool(opts.tlscert))
        #: The objects of containers met before, least recently used first (see _object).
        self._objects: OrderedDict[str, _Container] = OrderedDict()
        #: Most container objects kept with no handle open (the least recently used go).
        self.max_idle_objects = 1024
        self.server = Server(self.driver)
        self.server.on_ls(self._ls).on_spawn(self._spawn).on_attach(self._attach)
        self.server.on_get(self._get).on_start(self._engine_start).on(Verb.Stop, self._engine_stop)
        self.server.on_watch(self._watch)

    async def _watch(self, req: Request) -> None:
        """``Watch("events", ["since=T"], ["until=T"])`` -> ``GET /events?since=&until=``: each
        of the engine's events as ``Set(json)`` (spec/LIBSWARM.md 6.9); the stream ends with
        the engine's (after ``until``)."""
        await relay_events(self.http, req)

    async def run(self, input: Any, output: Any) -> None:
        async with self.server:
            await self.server.serve(input)

    async def _get(self, *args: Any) -> Any:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if len(words) == 2 and words[0] == "image":
            _, data = await self.http.call("GET", f"/images/{_quote(words[1])}/json")
            return data.decode()
        if len(words) == 2 and words[0] in ("network", "volume"):
            _, data = await self.http.call("GET", f"/{words[0]}s/{urllib.parse.quote(words[1], safe='')}")
            return data.decode()
        what = words[0] if len(words) == 1 else "info" if not words else " ".join(words)
        paths = {"info": "/info", "version": "/version", "images": "/images/json", "networks": "/networks",
                 "volumes": "/volumes", "containers": "/containers/json?all=1"}
        if what not in paths:
            raise RemoteError(f"unknown field: {what!r}")
        path, _, qs = paths[what].partition("?")
        _, data = await self.http.call("GET", path, dict(urllib.parse.parse_qsl(qs)) or None)
        return data.decode()

    async def _engine_start(self, *args: Any) -> None:
        """``Start()``: nothing; ``Start("pull", REF)``; ``Start("tag", SRC, DST)``."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words[:1] == ["pull"] and len(words) == 2:
            await self._pull(words[1])
        elif words[:1] == ["tag"] and len(words) == 3:
            repo, tag = _split_ref(words[2])
            await self.http.call("POST", f"/images/{_quote(words[1])}/tag", {"repo": repo, "tag": tag})
        elif words:
            raise RemoteError(f"dockerclient: unknown Start words: {' '.join(words)}")
        else:
            await trio.lowlevel.checkpoint()

    async def _engine_stop(self, req: Request) -> None:
        """``Stop()``: nothing; ``Stop("rmi", REF[, "force"])`` -> ``Ack(<the engine's delete answer>)``."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if not words:
            await req.ack()
            return
        if words[0] != "rmi" or len(words) not in (2, 3) or words[2:] not in ([], ["force"]):
            raise RemoteError(f"dockerclient: unknown Stop words: {' '.join(words)}")
        _, data = await self.http.call("DELETE", f"/images/{_quote(words[1])}",
                                       {"force": 1 if words[2:] else None})
        await req.send(Verb.Ack, data.decode())

    async def _ls(self, *args: Any) -> list[str]:
        _, data = await self.http.call("GET", "/containers/json", {"all": 1})
        entries = json.loads(data) or []
        entries.sort(key=lambda e: e.get("Created", 0))
        return [(e.get("Names") or ["/" + e.get("Id", "")[:12]])[0].lstrip("/") for e in entries]

    async def _spawn(self, *args: Any) -> Server:
        if len(args) != 1:
            raise RemoteError(f"dockerclient: spawn takes exactly 1 argument (a JSON create body), got {len(args)}")
        try:
            config = json.loads(args[0])
        except ValueError as exc:
            raise RemoteError(f"invalid container config: {exc}") from None
        if not isinstance(config, dict):
            raise RemoteError("invalid container config: not a JSON object")
        name = config.pop("name", None) or config.pop("Name", None)
        query = {"name": name} if name else None
        status, _, data = await self.http.request("POST", "/containers/create", query, config)
        if status == 404 and "no such image" in _message(data, status).lower() and config.get("Image"):
            await self._pull(str(config["Image"]))
            status, _, data = await self.http.request("POST", "/containers/create", query, config)
        if status != 201:
            raise EngineError(status, _message(data, status))
        return await self._container(json.loads(data)["Id"])

    async def _pull(self, image: str) -> None:
        repo, tag = _split_ref(image)
        query = {"fromImage": image} if "@" in image else {"fromImage": repo, "tag": tag}
        async with self.http.open("POST", "/images/create", query) as (status, _, chunks):
            data = b""
            async for c in chunks:
                data += c
        if status != 200:
            raise EngineError(status, _message(data, status))
        for line in data.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item.get("error"):
                raise RemoteError(str(item.get("error")))

    async def _attach(self, name: str, req: Request) -> None:
        if not name:
            await req.ack(self.server)
            return
        known = self._objects.get(name) if _FULL_ID.fullmatch(name) else None
        if known is not None:
            self._objects.move_to_end(name)
            # a container's full id, met before: no inspect. Every request on the handle asks
            # the engine about /containers/<name>/..., which it resolves as the lookup would
            # have (a removed container's first request is its "No such container")
            await req.ack(known.server)
            return
        status, _, data = await self.http.request("GET", f"/containers/{urllib.parse.quote(name, safe='')}/json")
        if status == 404:
            raise EngineError(404, f"No such container: {name}")
        if status != 200:
            raise EngineError(status, _message(data, status))
        obj = await self._object(_inspected_id(data))
        # the inspect just read is in the Ack and answers the handle's first Get() (docker inspect)
        text = data.decode()
        await req.send(Verb.Ack, text, ret=obj.server.fresh_handle(req.identity, text))

    async def _object(self, cid: str) -> "_Container":
        obj = self._objects.get(cid)  # one object per container met, while it is kept
        if obj is not None:
            self._objects.move_to_end(cid)
            return obj
        self._forget_unused(room_for=1)
        obj = self._objects[cid] = _Container(self.http, cid)
        obj.starting = True
        try:
            await self.server.nursery.start(obj.run)
        except BaseException:
            self._objects.pop(cid, None)
            raise
        finally:
            obj.starting = False
        return obj  # (its handle is made before the caller's next checkpoint)

    def _forget_unused(self, room_for: int = 0) -> None:
        """Stop and forget the least recently used objects with no handle open (and not
        starting) while more than ``max_idle_objects`` of them would be kept, counting
        ``room_for`` objects about to be made as such (objects in use do not count).
        (A lookup makes the handle of the object it found or made before its next
        checkpoint: none is forgotten between the two.)"""
        if len(self._objects) + room_for <= self.max_idle_objects:
            return  # (not even counting those in use)
        idle = [
            cid
            for cid, obj in self._objects.items()
            if not obj.starting and obj.server.running and not obj.server.in_use
        ]
        for cid in idle[: max(0, len(idle) + room_for - self.max_idle_objects)]:
            self._objects.pop(cid).scope.cancel()

    async def _container(self, cid: str) -> Server:
        return (await self._object(cid)).server


class _Container:
    """The object for one engine container (a handle; the engine holds the state)."""

    def __init__(self, http: _HTTP, cid: str) -> None:
        self.http = http
        self.id = cid
        #: Cancelled when the client forgets this object (see DockerClient._forget_unused).
        self.scope = trio.CancelScope()
        self.starting = False  # (DockerClient._object starts its server: not to be forgotten)
        self.server = Server(f"container {cid[:12]}")
        self.server.on_get(self._get).on_start(self._start).on_stop(self._stop)
        self.server.on_attach(self._attach).on_watch(self._watch).on_ls(self._ls).on_spawn(self._exec)
        self.server.on(Verb.Set, self._set)

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        """Run its server until the client forgets it (or stops)."""
        with self.scope:
            await self.server.run(task_status=task_status)

    @property
    def path(self) -> str:
        return f"/containers/{self.id}"

    async def _inspect(self) -> dict[str, Any]:
        _, data = await self.http.call("GET", self.path + "/json")
        inspected: dict[str, Any] = json.loads(data)
        return inspected

    async def _ls(self, *args: Any) -> list[str]:
        return []

    async def _get(self, *args: Any) -> Any:
        if not args:
            _, data = await self.http.call("GET", self.path + "/json")
            return data.decode()
        tag = args[0]
        if tag == "top":  # spec/LIBSWARM.md 6.7
            query = {"ps_args": str(args[1])} if len(args) > 1 and args[1] else None
            _, data = await self.http.call("GET", self.path + "/top", query)
            return data.decode()
        if tag == "stats":
            _, data = await self.http.call("GET", self.path + "/stats", {"stream": 0})
            return data.decode()
        if tag not in ("stdout", "stderr"):
            raise RemoteError(f"unknown field: {tag!r}")
        tty = bool(((await self._inspect()).get("Config") or {}).get("Tty"))
        out = b""
        async with self.http.open("GET", self.path + "/logs", {tag: 1}, http10=True) as (status, _, chunks):
            if status != 200:
                raise EngineError(status, _message(b"".join([c async for c in chunks]), status))
            async for t, data in demux(chunks, tty):
                if t == tag or tty:
                    out += data
        return out

    async def _set(self, req: Request) -> None:
        """``Set("name", NEW)`` as a request -> ``POST /rename?name=NEW``, answered ``Ack``."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if words[:1] == ["size"] and len(words) == 3:  # spec/LIBSWARM.md 6.11
            await self.http.call("POST", self.path + "/resize", {"h": words[1], "w": words[2]})
            await req.ack()
            return
        if len(words) != 2 or words[0] != "name":
            raise RemoteError(f"dockerclient: unknown Set: {' '.join(words)} (a container takes Set(\"name\", NEW))")
        await self.http.call("POST", self.path + "/rename", {"name": words[1]})
        await req.ack()

    async def _start(self, *args: Any) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words == ["unpause"]:
            await self.http.call("POST", self.path + "/unpause")
            return
        if words:
            raise RemoteError(f"dockerclient: unknown Start words: {' '.join(words)}")
        status, _ = await self.http.call("POST", self.path + "/start", ok=(204, 304))
        if status == 304:
            raise RemoteError(f"container {self.id} is already running")

    async def _stop(self, *args: Any) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        opts = {key: value for key, _, value in (w.partition("=") for w in words)}
        if words == ["pause"]:
            await self.http.call("POST", self.path + "/pause")
        elif "rm" in opts:
            await self.http.call("DELETE", self.path, {"force": 1 if "force" in opts else None})
        elif "signal" in opts:
            await self.http.call("POST", self.path + "/kill", {"signal": opts["signal"] or None})
        else:
            await self.http.call("POST", self.path + "/stop", {"t": opts.get("time") or None}, ok=(204, 304))

    async def _attach(self, name: str, req: Request) -> None:
        words = {a.decode() if isinstance(a, bytes) else str(a) for a in req.args[1:]}
        opts = {k: v for k, _, v in (w.partition("=") for w in words)}
        raw = "raw" in words and "next" not in words and {"logs", "nostdin"} <= words
        if raw and "nostream" in opts:
            tty, exited = False, False  # docker logs without --follow, as the engine frames it: no inspect
        else:
            data = await self._inspect()
            tty = bool((data.get("Config") or {}).get("Tty"))
            exited = (data.get("State") or {}).get("Status") in ("exited", "dead")
        if "next" not in words and (exited or {"logs", "nostdin"} <= words):
            # logs (docker logs: GET /logs with the log words), and an attach to an exited
            # container without "next": its replay (with "logs") and the end
            query = {"stdout": 1, "stderr": 1, "follow": None if exited or "nostream" in opts else 1,
                     "timestamps": 1 if "timestamps" in opts else None, "tail": opts.get("tail") or None,
                     "since": opts.get("since") or None, "until": opts.get("until") or None}
            s, r = libchan.pipe()
            if "logs" not in words:
                await req.ack(s)
                await r.aclose()
                return
            async with self.http.open("GET", self.path + "/logs", query, http10=True) as (st, _, chunks):
                if st != 200:
                    raise EngineError(st, _message(b"".join([c async for c in chunks]), st))
                await req.ack(s)
                await r.aclose()
                if raw:  # the engine's own stream: multiplexed frames, raw for a TTY container
                    async for chunk in chunks:
                        await req.log("raw", chunk)
                    return
                async for tag, chunk in demux(chunks, tty):
                    await req.log(tag, chunk)
            return
        use_stdin = "nostdin" not in words
        query = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": 1 if use_stdin else None,
                 "logs": 1 if "logs" in words else None}
        stream, leftover, _ = await self.http.hijack(self.path + "/attach", query)
        stdin_s, stdin_r = libchan.pipe()
        await _relay_hijacked(req, stream, leftover, tty, use_stdin, stdin_s, stdin_r, ack=True)

    async def _exec(self, *args: Any) -> Server:
        """``Spawn(exec_config_json)`` -> ``POST /containers/ID/exec``: an exec object."""
        config = exec_config(args)
        _, data = await self.http.call("POST", self.path + "/exec", body=config)
        e = _Exec(self.http, json.loads(data)["Id"], bool(config.get("Tty")))
        await self.server.nursery.start(e.server.run)
        return e.server


    async def _watch(self, req: Request) -> None:
        filters = json.dumps({"container": [self.id], "type": ["container"]})
        async with self.http.open("GET", "/events", {"filters": filters}) as (status, _, chunks):
            if status != 200:
                raise EngineError(status, _message(b"".join([c async for c in chunks]), status))
            last = await self._inspect()
            await req.ack()
            await req.set("state", json.dumps(last))
            buf = b""
            async for c in chunks:
                buf += c
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    action = str(event.get("Action") or event.get("status") or "")
                    action = action.split(":", 1)[0]  # "exec_start: sh" -> "exec_start"
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    try:
                        last = await self._inspect()
                    except RemoteError:
                        if "exitCode" in attrs:
                            state = dict(last.get("State") or {})
                            state.update(Running=False, Status="exited", ExitCode=int(attrs["exitCode"]))
                            last = dict(last, State=state)
                    if action == "die" and "exitCode" in attrs:
                        state = dict(last.get("State") or {})
                        state["ExitCode"] = int(attrs["exitCode"])
                        if state.get("Running"):  # restarted already: keep the die's code
                            state.update(Running=False, Status="exited")
                        last = dict(last, State=state)
                    await req.set(action, json.dumps(last))
                    if action == "destroy":
                        return


async def _relay_hijacked(req: Request, stream: trio.abc.Stream, leftover: bytes, tty: bool, use_stdin: bool,
                          stdin_s: Any, stdin_r: Any, ack: bool) -> None:
    """Relay a hijacked attach/exec connection: ``Log`` on ``stdin_r`` to it (its end half-closes),
    its demultiplexed output to ``req`` as ``Log(tag, chunk)`` (``ack``: first ``Ack(stdin_s)``)."""
    try:
        async with trio.open_nursery() as nursery:

            async def pump_stdin() -> None:
                try:
                    async for raw in stdin_r:
                        try:
                            msg = Message.from_wire(raw)
                        except Exception:
                            continue
                        if msg.verb == Verb.Log and msg.args:
                            chunk = msg.args[-1]
                            if use_stdin:
                                await stream.send_all(chunk if isinstance(chunk, bytes) else chunk.encode())
                    if use_stdin:
                        await _half_close(stream)
                except (*_GONE, ssl.SSLError, OSError):
                    pass

            nursery.start_soon(pump_stdin)
            if ack:
                await req.ack(stdin_s)
            async for tag, chunk in demux(_stream_chunks(stream, leftover), tty):
                await req.log(tag, chunk)
            nursery.cancel_scope.cancel()
    finally:
        await aclose_quietly(stdin_r)
        await aclose_quietly(stream)


class _Exec:
    """One engine exec instance. ``Attach("")`` acks a stdin handle at once and waits for
    ``Start``, which then starts the exec through that attach (Docker's exec start *is* the
    hijacked connection); a ``Start`` with nobody attached is a detached start."""

    def __init__(self, http: _HTTP, eid: str, tty: bool) -> None:
        self.http = http
        self.id = eid
        self.tty = tty
        self._attached: trio.MemorySendChannel[None] | None = None
        self.server = Server(f"exec {eid[:12]}")
        self.server.on_get(self._get).on_start(self._start).on_attach(self._attach).on_ls(self._ls)
        self.server.on(Verb.Set, self._set)

    async def _ls(self, *args: Any) -> list[str]:
        return []

    async def _set(self, req: Request) -> None:
        """``Set("size", ROWS, COLS)`` as a request -> ``POST /exec/ID/resize?h=&w=`` (spec/LIBSWARM.md 6.11)."""
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if words[:1] != ["size"] or len(words) != 3:
            raise RemoteError(f"dockerclient: unknown Set: {' '.join(words)} (an exec takes Set(\"size\", ROWS, COLS))")
        await self.http.call("POST", f"/exec/{self.id}/resize", {"h": words[1], "w": words[2]})
        await req.ack()

    async def _get(self, *args: Any) -> Any:
        _, data = await self.http.call("GET", f"/exec/{self.id}/json")
        return data.decode()

    async def _start(self, *args: Any) -> None:
        if self._attached is not None:
            go, self._attached = self._attached, None
            await go.send(None)
            return
        await self.http.call("POST", f"/exec/{self.id}/start", body={"Detach": True, "Tty": self.tty})

    async def _attach(self, name: str, req: Request) -> None:
        use_stdin = "nostdin" not in req.args[1:]
        go_s, go_r = trio.open_memory_channel[None](1)
        self._attached = go_s
        stdin_s, stdin_r = libchan.pipe()
        await req.ack(stdin_s)
        await go_r.receive()
        stream, leftover, _ = await self.http.hijack(f"/exec/{self.id}/start", {},
                                                     body={"Detach": False, "Tty": self.tty})
        await _relay_hijacked(req, stream, leftover, self.tty, use_stdin, stdin_s, stdin_r, ack=False)


async def relay_events(http: _HTTP, req: Request) -> None:
    """``Watch("events", ["since=T"], ["until=T"])`` -> ``GET /events?since=&until=``: each of
    the engine's events as ``Set(json)`` (spec/LIBSWARM.md 6.9), until the engine's stream ends
    (after ``until``). Shared by every backend over an Engine API (dockerclient, swarmmode)."""
    words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
    if words[:1] != ["events"]:
        raise RemoteError(f"not implemented: Watch {' '.join(words)} (the engine takes Watch(\"events\"))")
    opts = {k: v for k, _, v in (w.partition("=") for w in words[1:])}
    query = {"since": opts.get("since") or None, "until": opts.get("until") or None}
    async with http.open("GET", "/events", query) as (status, _, chunks):
        if status != 200:
            raise EngineError(status, _message(b"".join([c async for c in chunks]), status))
        await req.ack()
        buf = b""
        async for c in chunks:
            buf += c
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    await req.set(line.decode())
