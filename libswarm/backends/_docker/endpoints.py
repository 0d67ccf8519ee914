"""The endpoints that answer with one body: Docker JSON in, libswarm verbs out, Docker JSON back.

Each is ``async def endpoint(engine, request, response)``; :mod:`.routes` picks it. Errors
are raised (:class:`~.http.HTTPError`, or a libswarm error whose text gives the status).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..._client import Client
from ..._errors import RemoteError
from ..._verbs import Verb
from .engine import Engine
from .formats import add_inspect_defaults, has_inspect_defaults, info_data, truthy, version_data
from .http import APIRequest, HTTPError, Response

__all__ = [
    "not_found", "not_implemented", "ping", "version", "info", "ps", "create", "inspect", "start", "stop", "restart", "kill",
    "remove", "resize", "pause", "unpause", "rename",
]

# a container name: Docker's rule, optionally behind aggregate labels ("1/web", "0/1/web")
_NAME = re.compile(r"^/?(?:[a-zA-Z0-9][a-zA-Z0-9_.-]*/)*[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


async def not_found(engine: Engine, req: APIRequest, resp: Response) -> None:
    raise HTTPError(404, "page not found")


async def not_implemented(engine: Engine, req: APIRequest, resp: Response) -> None:
    """A Docker API endpoint this front end does not answer: say so (the docker CLI
    prints ``Error response from daemon: <message>``)."""
    raise HTTPError(501, f"libswarm dockerserver does not implement {req.method} {req.path}")


async def ping(engine: Engine, req: APIRequest, resp: Response) -> None:
    await resp.send(200, b"OK", "text/plain; charset=utf-8",
                    [("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
                     ("Pragma", "no-cache")])


async def version(engine: Engine, req: APIRequest, resp: Response) -> None:
    await resp.json(200, version_data())


async def info(engine: Engine, req: APIRequest, resp: Response) -> None:
    data = await engine.info()
    if "ServerVersion" in data:  # a real engine behind dockerclient: its info, as is
        await resp.json(200, data)
        return
    if not all(k in data for k in ("Containers", "ContainersRunning")):
        cs = await engine.summaries()
        running = sum(c.get("State") in ("running", "paused") for c in cs)
        data.update(Containers=len(cs), ContainersRunning=running, ContainersStopped=len(cs) - running)
    await resp.json(200, info_data(data))


_PS_FILTERS = ("status", "name", "id", "label", "exited", "ancestor", "before", "since")
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


async def ps(engine: Engine, req: APIRequest, resp: Response) -> None:
    query = req.query
    filters: dict[str, list[str]] = {}
    if query.get("filters"):
        try:
            raw = json.loads(query["filters"])
            if not isinstance(raw, dict):
                raise ValueError
            for key, v in raw.items():  # {"k": ["v"]} or the newer {"k": {"v": true}}
                filters[str(key)] = [str(x) for x in (v if isinstance(v, (list, dict)) else [v])]
        except ValueError:
            raise HTTPError(400, "invalid filter") from None
    for key, values in filters.items():
        if key not in _PS_FILTERS:
            raise HTTPError(400, f"invalid filter '{key}'")
        for v in values:
            if key == "status" and v not in _STATUSES:
                raise HTTPError(400, f"invalid filter 'status={v}'")
            if key == "exited" and not v.lstrip("-").isdigit():
                raise HTTPError(400, f"invalid filter 'exited={v}'")
    cs = every = sorted(await engine.summaries(), key=lambda c: int(c.get("Created") or 0), reverse=True)
    limit = int(query.get("limit") or -1) if (query.get("limit") or "-1").lstrip("-").isdigit() else -1
    # without all=1: the running (and paused) ones, unless a state is asked for or a limit
    # given (docker ps -n N: the last N created, in every state)
    if not truthy(query.get("all")) and not filters.get("status") and not filters.get("exited") and limit <= 0:
        cs = [c for c in cs if c["State"] in ("running", "paused", "restarting")]
    cs = [c for c in cs if _matches(c, filters)]
    for key in ("before", "since"):  # created before/after that container (which is not listed)
        for ref in filters.get(key, []):
            at = next((i for i, c in enumerate(every) if c["Id"].startswith(ref) or ref.lstrip("/") in
                       [n.lstrip("/") for n in c["Names"]]), None)
            if at is None:
                raise HTTPError(404, f"No such container: {ref}")
            keep = {c["Id"] for c in (every[at + 1:] if key == "before" else every[:at])}
            cs = [c for c in cs if c["Id"] in keep]
    if limit > 0:
        cs = cs[:limit]
    await resp.json(200, cs)


def _matches(c: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Whether ``docker ps`` entry ``c`` passes ``filters`` (values of one key: any; keys: all)."""
    names = [n.lstrip("/") for n in c["Names"]]
    labels = c.get("Labels") or {}
    for key, values in filters.items():
        if not values:
            continue
        if key == "status":
            ok = c["State"] in values
        elif key == "name":  # a regular expression on the name, with or without its "/"
            ok = any(re.search(v, "/" + n) or re.search(v, n) for v in values for n in names)
        elif key == "id":
            ok = any(c["Id"].startswith(v) for v in values)
        elif key == "label":  # "key" or "key=value"
            ok = all((k in labels) if not eq else labels.get(k) == val
                     for k, eq, val in (v.partition("=") for v in values))
        elif key == "exited":
            ok = c["State"] == "exited" and str(_exit_code(c)) in values
        elif key == "ancestor":
            image, image_id = _untagged(str(c.get("Image") or "")), str(c.get("ImageID") or "")
            ok = any(_untagged(v) == image or (image_id and image_id.removeprefix("sha256:").startswith(
                v.removeprefix("sha256:"))) for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


def _untagged(image: str) -> str:
    return image.removesuffix(":latest").removeprefix("docker.io/").removeprefix("library/")


def _exit_code(c: dict[str, Any]) -> int:
    m = re.match(r"^Exited \((-?\d+)\)", str(c.get("Status") or ""))
    return int(m.group(1)) if m else 0


async def create(engine: Engine, req: APIRequest, resp: Response) -> None:
    try:
        config = json.loads(req.body) if req.body.strip() else {}
    except ValueError as exc:
        raise HTTPError(400, f"invalid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise HTTPError(400, "invalid JSON: not an object")
    name = req.query.get("name")
    if name:
        if not _NAME.match(name):
            raise HTTPError(400, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        config["name"] = name.lstrip("/")
    if not config.get("Image"):
        raise HTTPError(400, "No command specified" if not config.get("Cmd") else "config: Image is required")
    child = await engine.client.spawn(json.dumps(config))
    try:
        data = await engine.inspect(child)
    finally:
        await child.aclose()
    await resp.json(201, {"Id": data.get("Id", ""), "Warnings": []})


async def inspect(engine: Engine, req: APIRequest, resp: Response) -> None:
    async with engine.lookup(req.ref) as (c, state):
        data, text = await engine.inspect_text(c, state)
    if has_inspect_defaults(data):  # (a Docker engine's): its own text, not decoded and made again
        await resp.send(200, text if text.endswith(b"\n") else text + b"\n", "application/json")
        return
    await resp.json(200, add_inspect_defaults(data))


async def start(engine: Engine, req: APIRequest, resp: Response) -> None:
    async with engine.container(req.ref) as c:
        try:
            await c.start()
        except RemoteError as exc:
            if "already running" in exc.text:
                await resp.send(304)
                return
            raise
    await resp.send(204)


async def stop(engine: Engine, req: APIRequest, resp: Response) -> None:
    query = req.query
    async with engine.container(req.ref) as c:
        state = (await engine.inspect(c)).get("State") or {}
        if not state.get("Running"):
            await resp.send(304)
            return
        words = [f"time={query['t']}"] if query.get("t") else []
        await c.stop(*words)
    await resp.send(204)


async def restart(engine: Engine, req: APIRequest, resp: Response) -> None:
    query = req.query
    async with engine.container(req.ref) as c:
        state = (await engine.inspect(c)).get("State") or {}
        if state.get("Running"):
            await c.stop(*([f"time={query['t']}"] if query.get("t") else []))
        await c.start()
    await resp.send(204)


async def kill(engine: Engine, req: APIRequest, resp: Response) -> None:
    async with engine.container(req.ref) as c:
        try:
            await c.stop(f"signal={req.query.get('signal') or 'SIGKILL'}")
        except RemoteError as exc:
            if "is not running" in exc.text:
                raise HTTPError(409, f"Cannot kill container: {req.ref}: {exc.text}") from None
            raise
    await resp.send(204)


async def remove(engine: Engine, req: APIRequest, resp: Response) -> None:
    async with engine.container(req.ref) as c:
        await c.stop("rm", *(["force"] if truthy(req.query.get("force")) else []))
    await resp.send(204)


def terminal_size(req: APIRequest) -> tuple[int, int]:
    """``?h=ROWS&w=COLS`` of a resize request (Docker: 400 unless both are numbers)."""
    try:
        return int(req.query.get("h", "")), int(req.query.get("w", ""))
    except ValueError:
        raise HTTPError(400, "invalid terminal size: h and w must be integers") from None


async def set_size(handle: Client, rows: int, cols: int) -> None:
    """``Set("size", ROWS, COLS)`` as a request (spec/LIBSWARM.md 6.11). An object that does not
    take it (``not implemented``, an unknown Set) keeps its size: a resize is never fatal."""
    try:
        _, rest = await handle.call(Verb.Set, "size", str(rows), str(cols))
    except RemoteError as exc:
        if "not implemented" in exc.text or "unknown Set" in exc.text:
            return
        raise
    await rest.aclose()


async def resize(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``C.Set("size", ROWS, COLS)`` (spec/LIBSWARM.md 6.11)."""
    rows, cols = terminal_size(req)
    async with engine.container(req.ref) as c:
        await set_size(c, rows, cols)
    await resp.send(200, b"", "text/plain; charset=utf-8")


async def pause(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``C.Stop("pause")`` (spec/LIBSWARM.md 6.5)."""
    async with engine.container(req.ref) as c:
        await c.stop("pause")
    await resp.send(204)


async def unpause(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``C.Start("unpause")`` (spec/LIBSWARM.md 6.5)."""
    async with engine.container(req.ref) as c:
        await c.start("unpause")
    await resp.send(204)


async def rename(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``E.Ls()`` (a name listed anywhere is taken: 409), then ``C.Set("name", NEW)`` as a
    request, answered ``Ack`` (spec/LIBSWARM.md 6.5)."""
    new = req.query.get("name") or ""
    if not new:
        raise HTTPError(400, "Neither old nor new names may be empty")
    if not _NAME.match(new) or "/" in new.lstrip("/"):
        raise HTTPError(400, f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    new = new.lstrip("/")
    # the engine decides, but behind an aggregate the container's own child cannot see the
    # others' names: a name the engine lists anywhere is taken (bare names stay unambiguous)
    listed = [n.decode() if isinstance(n, bytes) else str(n) for n in await engine.client.ls()]
    if any(n == new or n.endswith("/" + new) for n in listed):
        raise HTTPError(409, f'Conflict. The container name "/{new}" is already in use. '
                             "You have to remove (or rename) that container to be able to reuse that name.")
    async with engine.container(req.ref) as c:
        _, rest = await c.call(Verb.Set, "name", new)
        await rest.aclose()
    await resp.send(204)
