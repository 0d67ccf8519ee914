"""``docker exec``: create, start (the hijacked connection), inspect, resize.

The container's ``Spawn(exec create body)`` gives an exec object (spec/LIBSWARM.md 6.3):
its ``Get()`` is Docker's exec inspect JSON (``ID``, ``Running``, ``ExitCode``...), its
``Attach("")`` the process's stdin handle and output, its ``Start()`` runs it. The front
end keeps the objects it was given by exec id (the last :data:`MAX_EXECS`), as dockerd
keeps its exec instances.
"""

from __future__ import annotations

import json
from typing import Any

from ..._client import Client
from .engine import Engine
from .formats import truthy
from .http import APIRequest, HTTPError, Response
from .endpoints import set_size, terminal_size
from .streams import relay

__all__ = ["exec_create", "exec_start", "exec_inspect", "exec_resize", "MAX_EXECS"]

MAX_EXECS = 256


def _body(req: APIRequest) -> dict[str, Any]:
    try:
        body = json.loads(req.body) if req.body.strip() else {}
    except ValueError as exc:
        raise HTTPError(400, f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: not an object")
    return body


def _exec_id(req: APIRequest) -> str:
    # /exec/ID/ACTION
    return req.path.split("/")[2]


def _lookup(engine: Engine, eid: str) -> Client:
    handle = engine.execs.get(eid)
    if handle is None:
        raise HTTPError(404, f"No such exec instance: {eid}")
    return handle


async def _inspect(handle: Client) -> dict[str, Any]:
    data = json.loads(await handle.get())
    if not isinstance(data, dict):
        raise HTTPError(500, "engine: exec inspect data is not a JSON object")
    return data


async def exec_create(engine: Engine, req: APIRequest, resp: Response) -> None:
    config = _body(req)
    if not config.get("Cmd"):
        raise HTTPError(400, "No exec command specified")
    async with engine.container(req.ref) as c:
        handle = await c.spawn(json.dumps(config))
    try:
        eid = str((await _inspect(handle)).get("ID") or "")
    except BaseException:
        await handle.aclose()
        raise
    engine.execs[eid] = handle
    while len(engine.execs) > MAX_EXECS:
        oldest = next(iter(engine.execs))
        await engine.execs.pop(oldest).aclose()
    await resp.json(201, {"Id": eid})


async def exec_start(engine: Engine, req: APIRequest, resp: Response) -> None:
    handle = _lookup(engine, _exec_id(req))
    body = _body(req)
    if truthy(str(body.get("Detach", ""))):
        await handle.start()
        await resp.send(200, b"", "application/json")
        return
    data = await _inspect(handle)
    tty = bool((data.get("ProcessConfig") or {}).get("tty"))
    use_stdin = bool(data.get("OpenStdin"))
    want = {t for t, key in (("stdout", "OpenStdout"), ("stderr", "OpenStderr")) if data.get(key, True)}
    stdin, output = await handle.attach("", *([] if use_stdin else ["nostdin"]))
    try:
        await handle.start()
    except BaseException:
        await output.aclose()
        if stdin is not None:
            await stdin.aclose()
        raise
    await relay(resp, stdin, output, want, tty, use_stdin)


async def exec_inspect(engine: Engine, req: APIRequest, resp: Response) -> None:
    await resp.json(200, await _inspect(_lookup(engine, _exec_id(req))))


async def exec_resize(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``X.Set("size", ROWS, COLS)`` (spec/LIBSWARM.md 6.11)."""
    handle = _lookup(engine, _exec_id(req))
    rows, cols = terminal_size(req)
    await set_size(handle, rows, cols)
    await resp.send(201, b"", "text/plain; charset=utf-8")
