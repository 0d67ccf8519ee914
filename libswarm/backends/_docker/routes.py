"""Request parsing and routing: which endpoint answers a request, and how failures look.

:func:`dispatch` parses the target (path, query, the optional ``/vN.NN`` API version
prefix), picks the endpoint (:func:`route`), runs it, and turns what it raises into
Docker's error response ``{"message": ...}`` (while nothing was sent yet).
"""

from __future__ import annotations

import re
import ssl
import urllib.parse
from typing import Awaitable, Callable

import h11
import trio

from ..._errors import LibswarmError, RemoteError
from . import endpoints, execs, images, observe, streams
from .engine import Engine, status_for
from .http import APIRequest, HTTPError, Response
from .versions import API_VERSION, MIN_API_VERSION, version_tuple

__all__ = ["Endpoint", "dispatch", "route"]

Endpoint = Callable[[Engine, APIRequest, Response], Awaitable[None]]

_CONTAINERS = "/containers/"
_VERSIONED = re.compile(r"^/v([0-9][0-9.]*)(/.*)$")
_IMAGE = re.compile(r"^/images/(.+?)(/json|/tag)?$")
#: /images/X paths that are other endpoints of Docker's, not an image named X
_IMAGE_OTHER = re.compile(r"^/images/(?:search|get|load|prune|json|create)$|^/images/.+/(?:history|push|get)$")
#: Paths of the Docker Engine API (1.41) outside what :func:`route` answers: a request
#: there is told plainly that this front end does not implement it (501), where a path
#: that is no Docker endpoint at all gets Docker's own 404 "page not found".
_DOCKER_API = re.compile(
    r"^/(?:containers|images|exec|volumes|networks|plugins|nodes|swarm|services|tasks|secrets"
    r"|configs|distribution|system)(?:/.*)?$"
    r"|^/(?:build|build/prune|session|auth|commit|events|info|version|_ping)$"
)

# /containers/REF/ACTION: (method, action) -> endpoint
_CONTAINER_ACTIONS: dict[tuple[str, str], Endpoint] = {
    ("GET", "json"): endpoints.inspect,
    ("POST", "start"): endpoints.start,
    ("POST", "stop"): endpoints.stop,
    ("POST", "restart"): endpoints.restart,
    ("POST", "kill"): endpoints.kill,
    ("POST", "wait"): streams.wait,
    ("POST", "attach"): streams.attach,
    ("GET", "logs"): streams.logs,
    ("POST", "resize"): endpoints.resize,
    ("POST", "exec"): execs.exec_create,
    ("POST", "pause"): endpoints.pause,
    ("POST", "unpause"): endpoints.unpause,
    ("POST", "rename"): endpoints.rename,
    ("GET", "top"): observe.top,
    ("GET", "stats"): observe.stats,
}
_EXEC = re.compile(r"^/exec/[^/]+/(json|start|resize)$")
_EXEC_ACTIONS: dict[tuple[str, str], Endpoint] = {
    ("POST", "start"): execs.exec_start,
    ("GET", "json"): execs.exec_inspect,
    ("POST", "resize"): execs.exec_resize,
}


async def dispatch(engine: Engine, request: h11.Request, body: bytes, resp: Response) -> None:
    """Answer one request (bind ``engine`` to get a :data:`~.http.Dispatch`)."""
    target = request.target.decode("latin-1")
    path, _, qs = target.partition("?")
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(qs, keep_blank_values=True).items()}
    method = request.method.decode()
    m = _VERSIONED.match(path)
    try:
        if m:
            version, path = m.group(1), m.group(2)
            if version_tuple(version) > version_tuple(API_VERSION):
                raise HTTPError(400, f"client version {version} is too new. "
                                     f"Maximum supported API version is {API_VERSION}")
            if version_tuple(version) < version_tuple(MIN_API_VERSION):
                raise HTTPError(400, f"client version {version} is too old. Minimum supported API "
                                     f"version is {MIN_API_VERSION}, please upgrade your client to a newer version")
        handler, ref = route(method, path)
        await handler(engine, APIRequest(method, path, query, body, ref), resp)
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


def route(method: str, path: str) -> tuple[Endpoint, str]:
    """The endpoint for ``method path`` (a path without version prefix) and its container reference."""
    if path == "/_ping" and method in ("GET", "HEAD"):
        return endpoints.ping, ""
    if path == "/version" and method == "GET":
        return endpoints.version, ""
    if path == "/info" and method == "GET":
        return endpoints.info, ""
    if path == "/containers/json" and method == "GET":
        return endpoints.ps, ""
    if path == "/containers/create" and method == "POST":
        return endpoints.create, ""
    if path.startswith(_CONTAINERS):
        # like Docker's router ({name:.*}), a reference may contain "/": an
        # aggregate's LABEL/name. The action is the last segment; DELETE has none.
        rest = path[len(_CONTAINERS):]
        ref, _, action = rest.rpartition("/")
        handler = _CONTAINER_ACTIONS.get((method, action)) if ref else None
        if handler is not None:
            return handler, urllib.parse.unquote(ref)
        if method == "DELETE" and rest:
            return endpoints.remove, urllib.parse.unquote(rest)
    m = _EXEC.match(path)
    if m and (method, m.group(1)) in _EXEC_ACTIONS:
        return _EXEC_ACTIONS[(method, m.group(1))], ""
    if path == "/images/json" and method == "GET":
        return images.image_list, ""
    if path == "/images/create" and method == "POST":
        return images.image_pull, ""
    m = _IMAGE.match(path)
    if m and not _IMAGE_OTHER.match(path):
        action = m.group(2)
        if action == "/json" and method == "GET":
            return images.image_inspect, ""
        if action == "/tag" and method == "POST":
            return images.image_tag, ""
        if action is None and method == "DELETE":
            return images.image_remove, ""
    if method == "GET" and path == "/events":
        return observe.events, ""
    if method == "GET" and path in ("/networks", "/volumes"):
        return (observe.network_list if path == "/networks" else observe.volume_list), ""
    if method == "GET" and re.match(r"^/(networks|volumes)/[^/]+$", path):
        return (observe.network_inspect if path.startswith("/networks/") else observe.volume_inspect), ""
    if method == "GET" and re.match(r"^/plugins/.+/json$", path):
        return observe.plugin_inspect, ""
    if _DOCKER_API.match(path):
        return endpoints.not_implemented, ""
    return endpoints.not_found, ""
