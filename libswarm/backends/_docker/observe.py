"""The endpoints that show what an engine has and does: networks, volumes (and, for
containers, ``top``, ``stats``; the engine's ``events``).

Each asks the engine with the words of spec/LIBSWARM.md 6.6-6.7 and gives Docker's JSON.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from .engine import Engine
from .http import APIRequest, HTTPError, Response

__all__ = ["network_list", "network_inspect", "volume_list", "volume_inspect", "plugin_inspect"]


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
