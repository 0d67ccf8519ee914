"""The endpoints that answer with one body: Docker JSON in, libswarm verbs out, Docker JSON back.

Each is ``async def endpoint(engine, request, response)``; :mod:`.routes` picks it. Errors
are raised (:class:`~.http.HTTPError`, or a libswarm error whose text gives the status).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..._errors import RemoteError
from .engine import Engine
from .formats import add_inspect_defaults, container_summary, info_data, parse_time, truthy, version_data
from .http import APIRequest, HTTPError, Response

__all__ = [
    "not_found", "not_implemented", "ping", "version", "info", "ps", "create", "inspect", "start", "stop", "restart", "kill",
    "remove", "resize",
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
        cs = [inspected for _, inspected in await engine.all_containers()]
        running = sum(bool((c.get("State") or {}).get("Running")) for c in cs)
        data.update(Containers=len(cs), ContainersRunning=running, ContainersStopped=len(cs) - running)
    await resp.json(200, info_data(data))


async def ps(engine: Engine, req: APIRequest, resp: Response) -> None:
    query = req.query
    found = await engine.all_containers()
    found.sort(key=lambda nd: parse_time(nd[1].get("Created", "")), reverse=True)
    cs = [container_summary(d, n) for n, d in found]
    if not truthy(query.get("all")):
        cs = [c for c in cs if c["State"] == "running"]
    filters: dict[str, Any] = {}
    if query.get("filters"):
        try:
            filters = json.loads(query["filters"])
        except ValueError:
            raise HTTPError(400, "invalid filter") from None

    def values(key: str) -> list[Any]:
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
    async with engine.container(req.ref) as c:
        data = await engine.inspect(c)
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


async def resize(engine: Engine, req: APIRequest, resp: Response) -> None:
    async with engine.container(req.ref):
        pass
    await resp.send(200, b"", "text/plain; charset=utf-8")
