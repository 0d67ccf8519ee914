"""The endpoints that show what an engine has and does: networks, volumes (and, for
containers, ``top``, ``stats``; the engine's ``events``).

Each asks the engine with the words of spec/LIBSWARM.md 6.6-6.7 and gives Docker's JSON.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import trio

from ..._errors import LibswarmError
from ..._verbs import Verb
from .engine import Engine
from .http import json_line, APIRequest, HTTPError, Response

__all__ = ["network_list", "network_inspect", "volume_list", "volume_inspect", "plugin_inspect", "top", "stats", "events"]


async def _get_json(engine: Engine, *words: str) -> Any:
    raw = await engine.client.get(*words)
    try:
        return json.loads(raw)
    except ValueError:
        raise HTTPError(500, f"engine: Get({', '.join(words)}) is not JSON") from None


def _filters(req: APIRequest) -> dict[str, list[str]]:
    if not req.query.get("filters"):
        return {}
    try:
        raw = json.loads(req.query["filters"])
        if not isinstance(raw, dict):
            raise ValueError
        return {str(k): [str(x) for x in (v if isinstance(v, (list, dict)) else [v])] for k, v in raw.items()}
    except ValueError:
        raise HTTPError(400, "invalid filter") from None


def _tail(path: str) -> str:
    return urllib.parse.unquote(path.split("/", 2)[2])


async def network_list(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``E.Get("networks")``; filters ``name`` (substring), ``id`` (prefix), ``driver``."""
    nets = await _get_json(engine, "networks")
    f = _filters(req)
    nets = [n for n in nets if isinstance(n, dict)
            and all(any(v in str(n.get("Name", "")) for v in f["name"]) for _ in [0] if f.get("name"))
            and all(any(str(n.get("Id", "")).startswith(v) for v in f["id"]) for _ in [0] if f.get("id"))
            and all(str(n.get("Driver")) in f["driver"] for _ in [0] if f.get("driver"))]
    await resp.json(200, nets)


async def network_inspect(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``E.Get("network", REF)``."""
    await resp.json(200, await _get_json(engine, "network", _tail(req.path)))


async def volume_list(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``E.Get("volumes")``; filters ``name`` (substring), ``driver``."""
    data = await _get_json(engine, "volumes")
    vols = [v for v in (data.get("Volumes") if isinstance(data, dict) else None) or [] if isinstance(v, dict)]
    f = _filters(req)
    vols = [v for v in vols
            if all(any(n in str(v.get("Name", "")) for n in f["name"]) for _ in [0] if f.get("name"))
            and all(str(v.get("Driver")) in f["driver"] for _ in [0] if f.get("driver"))]
    await resp.json(200, {"Volumes": vols, "Warnings": (data.get("Warnings") if isinstance(data, dict) else None)})


async def volume_inspect(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``E.Get("volume", NAME)``."""
    await resp.json(200, await _get_json(engine, "volume", _tail(req.path)))


async def plugin_inspect(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``GET /plugins/NAME/json``: no engine behind libswarm has plugins (so ``docker
    inspect X`` of a missing X ends with the CLI's ``No such object: X``)."""
    name = urllib.parse.unquote(req.path[len("/plugins/"):-len("/json")])
    raise HTTPError(404, f'plugin "{name}" not found')


async def top(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``C.Get("top"[, ps_args])`` (spec/LIBSWARM.md 6.7)."""
    words = ["top"] + ([req.query["ps_args"]] if req.query.get("ps_args") else [])
    async with engine.container(req.ref) as c:
        raw = await c.get(*words)
    await resp.json(200, _json(raw, "top"))


async def stats(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``C.Get("stats")``: once (``stream=0``, ``docker stats --no-stream``), or a sample a
    second until the client goes or the container does (Docker's stream)."""
    stream = req.query.get("stream", "1").lower() not in ("0", "false", "no")
    async with engine.container(req.ref) as c:
        first = _json(await c.get("stats"), "stats")
        if not stream:
            await resp.json(200, first)
            return
        await resp.start_stream(200, "application/json")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resp.until_client_gone, nursery.cancel_scope)
            sample = first
            while True:
                await resp.write(json_line(sample))
                await trio.sleep(1)
                try:
                    sample = _json(await c.get("stats"), "stats")
                except (LibswarmError, HTTPError):
                    break
            nursery.cancel_scope.cancel()
        await resp.end()


def _json(raw: Any, what: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise HTTPError(500, f"engine: {what} is not JSON") from None


def _event_time(value: str, key: str) -> str:
    try:
        float(value)
    except ValueError:
        raise HTTPError(400, f"invalid value for {key}: {value!r}") from None
    return value


def _event_matches(event: dict[str, Any], f: dict[str, list[str]]) -> bool:
    """Docker's event filters: ``type``, ``event``, ``container`` (id, id prefix or name),
    ``image``, ``label`` (``KEY`` or ``KEY=VALUE``); values of one key: any; keys: all."""
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    kind = str(event.get("Type") or "")
    action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
    for key, values in f.items():
        if not values:
            continue
        if key == "type":
            ok = kind in values
        elif key == "event":
            ok = action in values
        elif key == "container":
            cid = str(actor.get("ID") or event.get("id") or "")
            ok = kind == "container" and any(cid.startswith(v) or attrs.get("name") == v.lstrip("/") for v in values)
        elif key == "image":
            ok = any(attrs.get("image") == v or event.get("from") == v for v in values)
        elif key == "label":
            ok = all((k in attrs) if not eq else attrs.get(k) == val
                     for k, eq, val in (v.partition("=") for v in values))
        else:
            ok = True
        if not ok:
            return False
    return True


async def events(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``E.Watch("events", ["since=T"], ["until=T"])`` (spec/LIBSWARM.md 6.9): Docker's events,
    one JSON object a line, filtered here, until the engine's stream ends (after ``until``)
    or the client goes."""
    f = _filters(req)
    words = ["events"] + [f"{k}={_event_time(req.query[k], k)}" for k in ("since", "until") if req.query.get(k)]
    output = await engine.client.watch(*words)
    try:
        await resp.start_stream(200, "application/json")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resp.until_client_gone, nursery.cancel_scope)
            try:
                async for msg in output:
                    if msg.verb != Verb.Set or len(msg.args) != 1:
                        continue
                    try:
                        event = json.loads(msg.args[0])
                    except ValueError:
                        continue
                    if isinstance(event, dict) and _event_matches(event, f):
                        await resp.write(json_line(event))
            except LibswarmError:
                pass
            nursery.cancel_scope.cancel()
    finally:
        await output.aclose()
    await resp.end()
