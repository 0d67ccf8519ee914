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
(conflicts, not running), 400 (bad input) or 500.

The input of the service is served by a :class:`libswarm.Server` with no handlers
(requests arriving from upstream are answered ``not implemented``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import ssl
import stat
import struct
import sys
import time
import urllib.parse
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import h11
import trio

from .._client import Client
from .._errors import LibswarmError, RemoteError, UsageError
from .._server import Server
from .._service import Service
from .._verbs import Verb

__all__ = ["DockerServer", "API_VERSION", "MIN_API_VERSION", "parse_url", "frame", "status_for"]

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
VERSION = "20.10.0-libswarm"
DEFAULT_URL = "tcp://127.0.0.1:4243"
RAW_STREAM = "application/vnd.docker.raw-stream"
MUX_STREAM = "application/vnd.docker.multiplexed-stream"
ZERO_TIME = "0001-01-01T00:00:00Z"
STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


# -- shared helpers (also used by dockerclient) ------------------------------


def parse_url(url: str) -> tuple[str, str, int]:
    """``unix:///p`` -> ``("unix", "/p", 0)``; ``tcp://h:p``/``tls://h:p`` -> ``(scheme, h, p)``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UsageError(f"invalid URL {url!r}: expected unix:///PATH, tcp://HOST:PORT or tls://HOST:PORT")
    if scheme == "unix":
        path = "/" + rest.lstrip("/") if rest.startswith("/") else rest
        if not path:
            raise UsageError(f"invalid URL {url!r}: no socket path")
        return "unix", path, 0
    if scheme in ("tcp", "tls", "http", "https"):
        host, _, port = rest.rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"invalid URL {url!r}: expected {scheme}://HOST:PORT")
        return ("tls" if scheme in ("tls", "https") else "tcp"), host.strip("[]"), int(port)
    raise UsageError(f"invalid URL {url!r}: unsupported scheme {scheme!r}")


def parse_tls_options(words: list[str], who: str) -> dict[str, Any]:
    """``--tlsverify --tlscacert=F --tlscert=F --tlskey=F`` (also ``--opt F``) -> dict."""
    opts: dict[str, Any] = {"tlsverify": False, "tlscacert": None, "tlscert": None, "tlskey": None, "tls": False}
    rest: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        key = name.lstrip("-")
        if name.startswith("--") and key in ("tlsverify", "tls"):
            opts[key] = True
        elif name.startswith("--") and key in ("tlscacert", "tlscert", "tlskey"):
            if not eq:
                i += 1
                if i >= len(words):
                    raise UsageError(f"{who}: {name} needs a value")
                value = words[i]
            opts[key] = value
        elif w.startswith("--"):
            raise UsageError(f"{who}: unknown option {w}")
        else:
            rest.append(w)
        i += 1
    opts["args"] = rest
    return opts


def frame(stream: str, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: ``[id, 0, 0, 0, len BE32] + data``."""
    return struct.pack(">BxxxL", STREAM_IDS[stream], len(data)) + data


def status_for(text: str) -> int:
    """The HTTP status a Docker daemon gives for an error with this text."""
    t = text.lower()
    if "no such" in t or t.startswith("not found"):
        return 404
    if ("conflict" in t or "already in use" in t or "is not running" in t or "container is running" in t
            or "remove a running container" in t
            or "is paused" in t or "is restarting" in t):
        return 409
    if t.startswith("invalid") or "invalid signal" in t or "invalid container" in t or t.startswith("bad parameter"):
        return 400
    return 500


def parse_time(text: str) -> float:
    """Docker's RFC 3339 (nanoseconds allowed) -> seconds since the epoch (0 for the zero time)."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    if not m:
        return 0.0
    base = datetime.datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``, as ``docker ps`` prints it."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() not in ("", "0", "false", "no")


def _go_arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _server_ssl_context(opts: dict[str, Any]) -> ssl.SSLContext | None:
    if not (opts["tlscert"] or opts["tlskey"] or opts["tls"] or opts["tlsverify"]):
        return None
    if not (opts["tlscert"] and opts["tlskey"]):
        raise UsageError("dockerserver: TLS needs --tlscert and --tlskey")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(opts["tlscert"], opts["tlskey"])
        if opts["tlsverify"]:
            if not opts["tlscacert"]:
                raise UsageError("dockerserver: --tlsverify needs --tlscacert")
            ctx.load_verify_locations(opts["tlscacert"])
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"dockerserver: cannot load TLS files: {exc}") from None
    return ctx


# -- one HTTP connection -----------------------------------------------------


class _Conn:
    """An h11 server connection over a trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
                    data = b""
                self.h11.receive_data(data)
                continue
            return event

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            await self.stream.send_all(data)


class _Response:
    """Answers one request: fixed bodies, streamed bodies, or a protocol upgrade."""

    def __init__(self, conn: _Conn, request: h11.Request) -> None:
        self.conn = conn
        self.request = request
        self.started = False
        self.hijacked = False
        self.head = request.method == b"HEAD"

    def _headers(self, content_type: str | None, extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
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
                   extra: list[tuple[str, str]] = ()) -> None:
        self.started = True
        headers = self._headers(content_type if body or content_type else None, extra)
        if status not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        await self.conn.send(h11.Response(status_code=status, headers=headers))
        if body and not self.head and status not in (204, 304):
            await self.conn.send(h11.Data(data=body))
        await self.conn.send(h11.EndOfMessage())

    async def json(self, status: int, obj: Any) -> None:
        await self.send(status, (json.dumps(obj) + "\n").encode(), "application/json")

    async def error(self, status: int, message: str) -> None:
        await self.json(status, {"message": message})

    async def start_stream(self, status: int, content_type: str) -> None:
        self.started = True
        await self.conn.send(h11.Response(status_code=status, headers=self._headers(content_type)))

    async def write(self, data: bytes) -> None:
        if data:
            await self.conn.send(h11.Data(data=data))

    async def end(self) -> None:
        await self.conn.send(h11.EndOfMessage())

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


# -- the service -------------------------------------------------------------

_CONTAINERS = "/containers/"
# a container name: Docker's rule, optionally behind aggregate labels ("1/web", "0/1/web")
_NAME = re.compile(r"^/?(?:[a-zA-Z0-9][a-zA-Z0-9_.-]*/)*[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VERSIONED = re.compile(r"^/v([0-9][0-9.]*)(/.*)$")


class DockerServer(Service):
    """The Docker API front end (see the module docstring and spec/DOCKER.md)."""

    def __init__(self, *args: str) -> None:
        opts = parse_tls_options(list(args), "dockerserver")
        if len(opts["args"]) > 1:
            raise UsageError(f"dockerserver: expected at most one URL, got {len(opts['args'])}")
        self.url = opts["args"][0] if opts["args"] else DEFAULT_URL
        self.scheme, self.host, self.port = parse_url(self.url)
        self.ssl_context = _server_ssl_context(opts)
        if self.scheme == "tls" and self.ssl_context is None:
            raise UsageError("dockerserver: tls:// needs --tlscert and --tlskey")
        self.addresses: list[str] = []
        """The URLs actually listened on (a tcp port 0 is resolved), once :attr:`ready` is set."""
        self.ready = trio.Event()
        self.engine: Client | None = None

    # -- service ------------------------------------------------------------

    async def run(self, input: Any, output: Any) -> None:
        self.engine = Client(output)
        listeners = await self._listen()
        try:
            async with Server("dockerserver") as upstream, trio.open_nursery() as nursery:
                nursery.start_soon(upstream.serve, input)
                self.ready.set()
                print(f"dockerserver: listening on {' '.join(self.addresses)}", file=sys.stderr, flush=True)
                await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)
        finally:
            if self.scheme == "unix":
                try:
                    os.unlink(self.host)
                except OSError:
                    pass

    async def _listen(self) -> list[trio.abc.Listener[Any]]:
        if self.scheme == "unix":
            path = self.host
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)
            except FileNotFoundError:
                pass
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            try:
                await sock.bind(path)
            except OSError as exc:
                sock.close()
                raise UsageError(f"dockerserver: cannot listen on {self.url}: {exc.strerror or exc}") from None
            sock.listen(128)
            self.addresses = [f"unix://{path}"]
            listeners: list[Any] = [trio.SocketListener(sock)]
        else:
            try:
                listeners = list(await trio.open_tcp_listeners(self.port, host=self.host))
            except OSError as exc:
                raise UsageError(f"dockerserver: cannot listen on {self.url}: {exc.strerror or exc}") from None
            scheme = "tcp"
            self.addresses = []
            for lst in listeners:
                host, port = lst.socket.getsockname()[:2]
                self.addresses.append(f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}")
        if self.ssl_context is not None:
            listeners = [trio.SSLListener(lst, self.ssl_context, https_compatible=True) for lst in listeners]
        return listeners

    async def _handle(self, stream: trio.abc.Stream) -> None:
        conn = _Conn(stream)
        try:
            while True:
                event = await conn.next_event()
                if not isinstance(event, h11.Request):
                    break
                body = bytearray()
                while True:
                    ev = await conn.next_event()
                    if isinstance(ev, h11.Data):
                        body += ev.data
                    elif isinstance(ev, h11.EndOfMessage) or ev is h11.PAUSED:
                        break
                    else:
                        return
                resp = _Response(conn, event)
                await self._dispatch(event, bytes(body), resp)
                if resp.hijacked:
                    return
                if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
                    conn.h11.start_next_cycle()
                else:
                    break
        except (h11.RemoteProtocolError, h11.LocalProtocolError):
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass
        finally:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                try:
                    await stream.aclose()
                except Exception:
                    pass

    async def _dispatch(self, request: h11.Request, body: bytes, resp: _Response) -> None:
        target = request.target.decode("latin-1")
        path, _, qs = target.partition("?")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(qs, keep_blank_values=True).items()}
        method = request.method.decode()
        m = _VERSIONED.match(path)
        try:
            if m:
                version, path = m.group(1), m.group(2)
                if _version_tuple(version) > _version_tuple(API_VERSION):
                    raise HTTPError(400, f"client version {version} is too new. "
                                         f"Maximum supported API version is {API_VERSION}")
                if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
                    raise HTTPError(400, f"client version {version} is too old. Minimum supported API "
                                         f"version is {MIN_API_VERSION}, please upgrade your client to a newer version")
            handler = self._route(method, path)
            await handler(path, query, body, resp)
        except HTTPError as exc:
            if not resp.started:
                await resp.error(exc.status, exc.message)
        except LibswarmError as exc:
            if not resp.started:
                text = exc.text if isinstance(exc, RemoteError) else str(exc)
                await resp.error(status_for(text), text)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError):
            raise
        except Exception as exc:
            if not resp.started:
                await resp.error(500, f"dockerserver: {type(exc).__name__}: {exc}")

    def _route(self, method: str, path: str) -> Callable[..., Any]:
        if path == "/_ping" and method in ("GET", "HEAD"):
            return self._ping
        if path == "/version" and method == "GET":
            return self._version
        if path == "/info" and method == "GET":
            return self._info
        if path == "/containers/json" and method == "GET":
            return self._ps
        if path == "/containers/create" and method == "POST":
            return self._create
        if path.startswith(_CONTAINERS):
            # like Docker's router ({name:.*}), a reference may contain "/": an
            # aggregate's LABEL/name. The action is the last segment; DELETE has none.
            rest = path[len(_CONTAINERS):]
            ref, _, action = rest.rpartition("/")
            handler = {
                ("GET", "json"): self._inspect,
                ("POST", "start"): self._start,
                ("POST", "stop"): self._stop,
                ("POST", "restart"): self._restart,
                ("POST", "kill"): self._kill,
                ("POST", "wait"): self._wait,
                ("POST", "attach"): self._attach,
                ("GET", "logs"): self._logs,
                ("POST", "resize"): self._resize,
            }.get((method, action)) if ref else None
            if handler is not None:
                return handler
            if method == "DELETE" and rest:
                return self._remove
        if path == "/images/json" and method == "GET":
            return self._images
        if re.match(r"^/images/.+/json$", path) and method == "GET":
            return self._image_inspect
        return self._not_found

    # -- plumbing -----------------------------------------------------------

    @property
    def _engine(self) -> Client:
        assert self.engine is not None
        return self.engine

    @staticmethod
    def _ref(path: str, action: bool = True) -> str:
        """The container reference of ``/containers/REF/ACTION`` (``action=False``: ``/containers/REF``)."""
        rest = path[len(_CONTAINERS):]
        return urllib.parse.unquote(rest.rpartition("/")[0] if action else rest)

    @asynccontextmanager
    async def _container(self, ref: str) -> AsyncIterator[Client]:
        """A handle on container ``ref`` (HTTP 404 with Docker's text if there is none)."""
        try:
            handle = await self._engine.child(ref)
        except RemoteError as exc:
            if status_for(exc.text) == 404:
                raise HTTPError(404, f"No such container: {ref}") from None
            raise
        try:
            yield handle
        finally:
            await handle.aclose()

    async def _inspect_of(self, c: Client) -> dict[str, Any]:
        raw = await c.get()
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise HTTPError(500, "engine: inspect data is not a JSON object")
        return data

    async def _engine_info(self) -> dict[str, Any]:
        try:
            raw = await self._engine.get()
            data = json.loads(raw)
            return data if isinstance(data, dict) else {}
        except (LibswarmError, ValueError):
            return {}

    async def _all_containers(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name as the engine lists it, inspect data)`` for every container.

        The listed name is the one to show and to address the container by: behind an
        ``aggregate`` it may be ``LABEL/name`` while the inspect data says ``/name``.
        """
        names = await self._engine.ls()
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for name in names:
            name = name.decode() if isinstance(name, bytes) else name
            try:
                async with self._container(name) as c:
                    data = await self._inspect_of(c)
            except (HTTPError, LibswarmError, ValueError):
                continue  # removed meanwhile
            found.setdefault(str(data.get("Id", name)), (name, data))
        return list(found.values())

    # -- endpoints ----------------------------------------------------------

    async def _not_found(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        raise HTTPError(404, "page not found")

    async def _ping(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        await resp.send(200, b"OK", "text/plain; charset=utf-8",
                        [("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
                         ("Pragma", "no-cache")])

    def _version_data(self) -> dict[str, Any]:
        details = {
            "ApiVersion": API_VERSION, "Arch": _go_arch(), "BuildTime": "2014-08-01T00:00:00.000000000+00:00",
            "Experimental": "false", "GitCommit": "libswarm", "GoVersion": "python" + platform.python_version(),
            "KernelVersion": platform.release(), "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
        }
        return {
            "Platform": {"Name": "libswarm dockerserver"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
            "Version": VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "libswarm", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": _go_arch(),
            "KernelVersion": platform.release(), "BuildTime": details["BuildTime"],
        }

    async def _version(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        await resp.json(200, self._version_data())

    async def _info(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        engine = await self._engine_info()
        if "ServerVersion" in engine:  # a real engine behind dockerclient: its info, as is
            await resp.json(200, engine)
            return
        if not all(k in engine for k in ("Containers", "ContainersRunning")):
            cs = [data for _, data in await self._all_containers()]
            running = sum(bool((c.get("State") or {}).get("Running")) for c in cs)
            engine.update(Containers=len(cs), ContainersRunning=running, ContainersStopped=len(cs) - running)
        driver = str(engine.get("Driver", "libswarm"))
        info = {
            "ID": "libswarm", "Containers": engine["Containers"], "ContainersRunning": engine["ContainersRunning"],
            "ContainersPaused": 0, "ContainersStopped": engine.get("ContainersStopped",
                                                                   engine["Containers"] - engine["ContainersRunning"]),
            "Images": 0, "Driver": driver, "DriverStatus": [["Backend", driver]],
            "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": []},
            "MemoryLimit": False, "SwapLimit": False, "KernelMemory": False, "CpuCfsPeriod": False,
            "CpuCfsQuota": False, "CPUShares": False, "CPUSet": False, "PidsLimit": False,
            "IPv4Forwarding": False, "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
            "NFd": 0, "OomKillDisable": False, "NGoroutines": 0,
            "SystemTime": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
            "LoggingDriver": "libswarm", "CgroupDriver": "none", "CgroupVersion": "1", "NEventsListener": 0,
            "KernelVersion": platform.release(), "OperatingSystem": "libswarm", "OSVersion": "",
            "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
                               "InsecureRegistryCIDRs": [], "IndexConfigs": {}, "Mirrors": None},
            "NCPU": os.cpu_count() or 1, "MemTotal": 0, "GenericResources": None, "DockerRootDir": "",
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": platform.node(), "Labels": [],
            "ExperimentalBuild": False, "ServerVersion": VERSION, "Runtimes": {}, "DefaultRuntime": "libswarm",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": [], "Warnings": None,
        }
        await resp.json(200, info)

    @staticmethod
    def _summary(data: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        state = data.get("State") or {}
        config = data.get("Config") or {}
        status = state.get("Status") or ("running" if state.get("Running") else "exited")
        now = time.time()
        if status == "running":
            text = "Up " + human_duration(now - parse_time(state.get("StartedAt", "")))
        elif status == "exited" and parse_time(state.get("FinishedAt", "")):
            text = f"Exited ({state.get('ExitCode', 0)}) {human_duration(now - parse_time(state['FinishedAt']))} ago"
        elif status == "exited":
            text = f"Exited ({state.get('ExitCode', 0)})"
        else:
            text = status.capitalize()
        command = " ".join([data.get("Path") or ""] + list(data.get("Args") or [])).strip()
        return {
            "Id": data.get("Id", ""),
            "Names": ["/" + name.lstrip("/") if name else data.get("Name") or ""],
            "Image": config.get("Image") or data.get("Image", ""),
            "ImageID": data.get("Image", ""),
            "Command": command,
            "Created": int(parse_time(data.get("Created", ""))),
            "Ports": [],
            "Labels": config.get("Labels") or {},
            "State": status,
            "Status": text,
            "HostConfig": {"NetworkMode": (data.get("HostConfig") or {}).get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": (data.get("NetworkSettings") or {}).get("Networks") or {}},
            "Mounts": data.get("Mounts") or [],
        }

    async def _ps(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        found = await self._all_containers()
        found.sort(key=lambda nd: parse_time(nd[1].get("Created", "")), reverse=True)
        cs = [self._summary(d, n) for n, d in found]
        if not _truthy(query.get("all")):
            cs = [c for c in cs if c["State"] == "running"]
        filters = {}
        if query.get("filters"):
            try:
                filters = json.loads(query["filters"])
            except ValueError:
                raise HTTPError(400, "invalid filter") from None

        def values(key: str) -> list[str]:
            v = filters.get(key) or []
            return list(v) if isinstance(v, (list, dict)) else [v]

        if values("status"):
            cs = [c for c in cs if c["State"] in values("status")]
        if values("name"):
            cs = [c for c in cs if any(re.search(n, c["Names"][0].lstrip("/")) for n in values("name"))]
        if values("id"):
            cs = [c for c in cs if any(c["Id"].startswith(i) for i in values("id"))]
        limit = int(query.get("limit") or -1) if (query.get("limit") or "-1").lstrip("-").isdigit() else -1
        if limit > 0:
            cs = cs[:limit]
        await resp.json(200, cs)

    async def _create(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        try:
            config = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            raise HTTPError(400, f"invalid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise HTTPError(400, "invalid JSON: not an object")
        name = query.get("name")
        if name:
            if not _NAME.match(name):
                raise HTTPError(400, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            config["name"] = name.lstrip("/")
        if not config.get("Image"):
            raise HTTPError(400, "No command specified" if not config.get("Cmd") else "config: Image is required")
        child = await self._engine.spawn(json.dumps(config))
        try:
            data = await self._inspect_of(child)
        finally:
            await child.aclose()
        await resp.json(201, {"Id": data.get("Id", ""), "Warnings": []})

    async def _inspect(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        async with self._container(self._ref(path)) as c:
            data = await self._inspect_of(c)
        data.setdefault("Mounts", [])
        data.setdefault("RestartCount", 0)
        data.setdefault("Platform", "linux")
        data.setdefault("HostConfig", {})
        ns = data.setdefault("NetworkSettings", {})
        if isinstance(ns, dict):
            ns.setdefault("Ports", {})
            ns.setdefault("Networks", {})
        state = data.get("State")
        if isinstance(state, dict):
            state.setdefault("OOMKilled", False)
            state.setdefault("Dead", False)
        await resp.json(200, data)

    async def _start(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        async with self._container(self._ref(path)) as c:
            try:
                await c.start()
            except RemoteError as exc:
                if "already running" in exc.text:
                    await resp.send(304)
                    return
                raise
        await resp.send(204)

    async def _stop(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        async with self._container(self._ref(path)) as c:
            state = (await self._inspect_of(c)).get("State") or {}
            if not state.get("Running"):
                await resp.send(304)
                return
            words = [f"time={query['t']}"] if query.get("t") else []
            await c.stop(*words)
        await resp.send(204)

    async def _restart(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        async with self._container(self._ref(path)) as c:
            state = (await self._inspect_of(c)).get("State") or {}
            if state.get("Running"):
                await c.stop(*([f"time={query['t']}"] if query.get("t") else []))
            await c.start()
        await resp.send(204)

    async def _kill(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        ref = self._ref(path)
        async with self._container(ref) as c:
            try:
                await c.stop(f"signal={query.get('signal') or 'SIGKILL'}")
            except RemoteError as exc:
                if "is not running" in exc.text:
                    raise HTTPError(409, f"Cannot kill container: {ref}: {exc.text}") from None
                raise
        await resp.send(204)

    async def _remove(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        async with self._container(self._ref(path, action=False)) as c:
            await c.stop("rm", *(["force"] if _truthy(query.get("force")) else []))
        await resp.send(204)

    async def _resize(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        async with self._container(self._ref(path)):
            pass
        await resp.send(200, b"", "text/plain; charset=utf-8")

    async def _images(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        await resp.json(200, [])

    async def _image_inspect(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        name = urllib.parse.unquote(path[len("/images/"):-len("/json")])
        raise HTTPError(404, f"No such image: {name}")

    # -- streaming endpoints ------------------------------------------------

    async def _until_client_gone(self, resp: _Response, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` when the client closes its connection (streamed responses)."""
        try:
            while True:
                data = await resp.conn.stream.receive_some(65536)
                if not data:
                    break
                resp.conn.h11.receive_data(data)
        except Exception:
            pass
        scope.cancel()

    async def _wait(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        condition = query.get("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise HTTPError(400, f"invalid condition: {condition!r}")
        async with self._container(self._ref(path)) as c:
            events = await c.watch()
            result: dict[str, Any] | None = None
            await resp.start_stream(200, "application/json")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._until_client_gone, resp, nursery.cancel_scope)
                code: int | None = None
                error: str | None = None
                try:
                    async for msg in events:
                        if msg.verb == Verb.Error:
                            error = msg.text
                            break
                        if msg.verb != Verb.Set or len(msg.args) < 2:
                            continue
                        event = str(msg.args[0])
                        try:
                            state = (json.loads(msg.args[1]).get("State") or {})
                        except (ValueError, AttributeError):
                            state = {}
                        if event == "state":
                            if condition == "not-running" and not state.get("Running"):
                                code = int(state.get("ExitCode", 0))
                                break
                        elif event == "die":
                            code = int(state.get("ExitCode", 0))
                            if condition != "removed":
                                break
                        elif event == "destroy":
                            if code is None:
                                code = int(state.get("ExitCode", 0))
                            break
                except LibswarmError as exc:
                    error = str(exc)
                finally:
                    await events.aclose()
                if code is not None and (error is None):
                    result = {"StatusCode": code, "Error": None}
                elif error is None and condition == "removed":
                    result = {"StatusCode": code or 0, "Error": None}
                else:
                    result = {"StatusCode": -1, "Error": {"Message": error or "container watch ended"}}
                nursery.cancel_scope.cancel()
            await resp.write((json.dumps(result) + "\n").encode())
            await resp.end()

    async def _logs(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        want = {t for t in ("stdout", "stderr") if _truthy(query.get(t))}
        if not want:
            raise HTTPError(400, "Bad parameters: you must choose at least one stream")
        tail = query.get("tail", "all")
        lines = int(tail) if tail.isdigit() else None
        async with self._container(self._ref(path)) as c:
            data = await self._inspect_of(c)
            tty = bool((data.get("Config") or {}).get("Tty"))
            pack = (lambda tag, d: d) if tty else frame
            status = (data.get("State") or {}).get("Status")
            current: dict[str, bytes] = {}
            for tag in ("stdout", "stderr"):
                value = await c.get(tag)
                current[tag] = value if isinstance(value, bytes) else value.encode()
            if status == "exited":  # the whole output, in order: Attach with logs ends at once
                chunks = await self._replay(c)
            else:
                chunks = [(t, current[t]) for t in ("stdout", "stderr")]
            if not _truthy(query.get("follow")) or status != "running":
                out = b"".join(pack(t, d) for t, d in _tail_chunks(chunks, lines) if t in want and d)
                await resp.send(200, out, RAW_STREAM)
                return
            # follow: replay + live through Attach("", "logs"); skip what tail drops
            skip = {t: len(current[t]) - len(_tail(current[t], lines)) for t in current}
            handle, output = await c.attach("", "logs", "nostdin")
            await resp.start_stream(200, RAW_STREAM)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._until_client_gone, resp, nursery.cancel_scope)
                    async for msg in output:
                        if msg.verb != Verb.Log or len(msg.args) != 2:
                            continue
                        tag, chunk = str(msg.args[0]), msg.args[1]
                        chunk = chunk if isinstance(chunk, bytes) else chunk.encode()
                        if skip.get(tag, 0):
                            n = min(skip[tag], len(chunk))
                            skip[tag] -= n
                            chunk = chunk[n:]
                        if tag in want and chunk:
                            await resp.write(pack(tag, chunk))
                    nursery.cancel_scope.cancel()
            finally:
                await output.aclose()
                if handle is not None:
                    await handle.aclose()
            await resp.end()

    async def _replay(self, c: Client) -> list[tuple[str, bytes]]:
        handle, output = await c.attach("", "logs", "nostdin")
        chunks = []
        try:
            with trio.move_on_after(10):
                async for msg in output:
                    if msg.verb == Verb.Log and len(msg.args) == 2:
                        chunk = msg.args[1]
                        chunks.append((str(msg.args[0]), chunk if isinstance(chunk, bytes) else chunk.encode()))
        finally:
            await output.aclose()
            if handle is not None:
                await handle.aclose()
        return chunks

    async def _attach(self, path: str, query: dict, body: bytes, resp: _Response) -> None:
        want = {t for t in ("stdout", "stderr") if _truthy(query.get(t))}
        use_stdin = _truthy(query.get("stdin"))
        async with self._container(self._ref(path)) as c:
            data = await self._inspect_of(c)
            tty = bool((data.get("Config") or {}).get("Tty"))
            words = (["logs"] if _truthy(query.get("logs")) else []) + ([] if use_stdin else ["nostdin"]) + ["next"]
            handle, output = await c.attach("", *words)
            stream, leftover = await resp.upgrade()
            client_done = trio.Event()

            async def read_client() -> None:
                # stdin, or (without stdin=1) whatever the client sends, such as its TLS
                # close_notify: read it all so closing never resets the connection
                try:
                    if use_stdin and leftover:
                        await handle.log("stdin", leftover)
                    while True:
                        try:
                            chunk = await stream.receive_some(65536)
                        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
                            chunk = b""
                        if not chunk:
                            break
                        if use_stdin:
                            await handle.log("stdin", chunk)
                except LibswarmError:
                    pass
                finally:
                    client_done.set()
                    if use_stdin:
                        await handle.aclose()  # end of the client's stdin: the container's stdin ends

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read_client)
                    try:
                        async for msg in output:
                            if msg.verb != Verb.Log or len(msg.args) != 2:
                                continue
                            tag, chunk = str(msg.args[0]), msg.args[1]
                            chunk = chunk if isinstance(chunk, bytes) else chunk.encode()
                            if tag in want and chunk:
                                await stream.send_all(chunk if tty else frame(tag, chunk))
                    except LibswarmError:
                        pass
                    # the output ended: half-close where the transport can, then give the
                    # client a moment to finish (a full close with unread input is a reset)
                    if isinstance(stream, trio.SocketStream):
                        try:
                            await stream.send_eof()
                        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            pass
                    with trio.move_on_after(2):
                        await client_done.wait()
                    nursery.cancel_scope.cancel()
            finally:
                await output.aclose()
                if not use_stdin or not client_done.is_set():
                    await handle.aclose()


def _tail_chunks(chunks: list[tuple[str, bytes]], lines: int | None) -> list[tuple[str, bytes]]:
    """The last ``lines`` lines over both streams (None: everything)."""
    if lines is None:
        return chunks
    split = [(t, line) for t, d in chunks for line in d.splitlines(keepends=True)]
    return split[len(split) - lines:] if lines else []


def _tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])
