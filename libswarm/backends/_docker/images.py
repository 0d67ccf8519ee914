"""The image endpoints: ``docker images``, ``image inspect``, ``pull``, ``tag``, ``rmi``.

The engine's image verbs (spec/LIBSWARM.md 6.2, spec/DOCKER.md 1.2): ``Get("images")``,
``Get("image", REF)``, ``Start("pull", REF)``, ``Start("tag", SRC, DST)``,
``Stop("rmi", REF[, "force"])`` answered ``Ack(<JSON>)``. Errors keep the engine's
words (``No such image: x:latest`` is a 404, ``conflict: ...`` a 409).
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
from typing import Any

from ..._errors import RemoteError
from ..._verbs import Verb
from .engine import Engine
from .formats import truthy
from .http import json_line, APIRequest, HTTPError, Response

__all__ = ["image_list", "image_inspect", "image_pull", "image_tag", "image_remove", "image_ref"]


def image_ref(path: str, suffix: str = "") -> str:
    """The image reference in ``/images/REF[suffix]`` (URL-unquoted; it may contain ``/``)."""
    ref = path[len("/images/"):]
    if suffix:
        ref = ref[:-len(suffix)]
    return urllib.parse.unquote(ref)


def _json(raw: Any, what: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise HTTPError(500, f"engine: {what} is not JSON") from None


def _filters(query: dict[str, str]) -> dict[str, list[str]]:
    if not query.get("filters"):
        return {}
    try:
        raw = json.loads(query["filters"])
    except ValueError:
        raise HTTPError(400, "invalid filter") from None
    if not isinstance(raw, dict):
        raise HTTPError(400, "invalid filter")
    # {"reference": {"busybox": true}} (today's CLI) or {"reference": ["busybox"]}
    return {str(k): list(v) if isinstance(v, (list, dict)) else [str(v)] for k, v in raw.items()}


def _matches(pattern: str, tags: list[str]) -> bool:
    """Docker's ``reference`` filter: a glob on ``repo`` or on ``repo:tag``."""
    for t in tags:
        repo = t.rsplit(":", 1)[0]
        if fnmatch.fnmatchcase(repo, pattern) or fnmatch.fnmatchcase(t, pattern):
            return True
    return False


async def image_list(engine: Engine, req: APIRequest, resp: Response) -> None:
    images = _json(await engine.client.get("images"), "the image list")
    if not isinstance(images, list):
        raise HTTPError(500, "engine: the image list is not a JSON list")
    filters = _filters(req.query)
    patterns = filters.get("reference", [])
    if patterns:  # as dockerd: keep the images with a matching tag, and only those tags
        kept = []
        for i in images:
            tags = [t for t in i.get("RepoTags") or [] if any(_matches(p, [t]) for p in patterns)]
            if tags:
                repos = {t.rsplit(":", 1)[0] for t in tags}
                digests = [d for d in i.get("RepoDigests") or [] if d.split("@", 1)[0] in repos]
                kept.append(dict(i, RepoTags=tags, RepoDigests=digests))
        images = kept
    dangling = filters.get("dangling")
    if dangling:
        want = truthy(dangling[0])
        images = [i for i in images if (not (i.get("RepoTags") or [])) == want]
    images.sort(key=lambda i: int(i.get("Created") or 0), reverse=True)
    await resp.json(200, images)


async def image_inspect(engine: Engine, req: APIRequest, resp: Response) -> None:
    data = _json(await engine.client.get("image", image_ref(req.path, "/json")), "the image inspect data")
    await resp.json(200, data)


async def image_pull(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``POST /images/create?fromImage=R&tag=T``: ``Start("pull", R:T)``, then Docker's progress lines."""
    if req.query.get("fromSrc") is not None:
        raise HTTPError(501, "libswarm dockerserver does not implement POST /images/create?fromSrc (docker import)")
    repo = req.query.get("fromImage") or ""
    if not repo:
        raise HTTPError(400, "invalid reference format: the image name is empty (fromImage)")
    tag = req.query.get("tag") or ""
    if "@" in repo or tag.startswith("sha256:"):
        ref = repo if "@" in repo else f"{repo}@{tag}"
    else:
        last = repo.rsplit("/", 1)[-1]
        ref = repo if ":" in last else f"{repo}:{tag or 'latest'}"
    try:
        before = _json(await engine.client.get("image", ref), "the image inspect data")
    except RemoteError:
        before = None
    await engine.client.start("pull", ref)  # an error here: Docker's error status, nothing sent yet
    after = _json(await engine.client.get("image", ref), "the image inspect data")
    name = ref.rsplit("@", 1)[0] if "@" in ref else ref.rsplit(":", 1)[0]
    name = name[len("docker.io/"):] if name.startswith("docker.io/") else name  # as dockerd says it
    shown = ref[len("docker.io/library/"):] if ref.startswith("docker.io/library/") else ref
    shown = shown[len("docker.io/"):] if shown.startswith("docker.io/") else shown
    short_tag = ref.rsplit("@", 1)[1] if "@" in ref else ref.rsplit(":", 1)[1]
    digest = next(iter(after.get("RepoDigests") or []), "")
    lines: list[dict[str, Any]] = [{"status": f"Pulling from {name}", "id": short_tag}]
    if digest:
        lines.append({"status": "Digest: " + digest.split("@", 1)[-1]})
    same = before is not None and before.get("Id") == after.get("Id")
    lines.append({"status": f"Status: {'Image is up to date' if same else 'Downloaded newer image'} for {shown}"})
    await resp.send(200, b"".join(json_line(line, "\r\n") for line in lines), "application/json")


async def image_tag(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``POST /images/R/tag?repo=X&tag=Y``: ``Start("tag", R, X:Y)``."""
    source = image_ref(req.path, "/tag")
    repo = req.query.get("repo") or ""
    if not repo:
        raise HTTPError(400, "repository name must have at least one component")
    await engine.client.start("tag", source, f"{repo}:{req.query.get('tag') or 'latest'}")
    await resp.send(201)


async def image_remove(engine: Engine, req: APIRequest, resp: Response) -> None:
    """``DELETE /images/R?force=1``: ``Stop("rmi", R[, "force"])``; the Ack carries the answer."""
    words = ["rmi", image_ref(req.path)] + (["force"] if truthy(req.query.get("force")) else [])
    first, rest = await engine.client.call(Verb.Stop, *words)
    await rest.aclose()
    if first.verb != Verb.Ack:
        raise HTTPError(500, f"engine: Stop(rmi) answered {first.verb.name}")
    done = _json(first.args[0], "the image delete answer") if first.args else [{"Untagged": words[1]}]
    await resp.json(200, done)
