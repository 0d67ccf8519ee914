"""The next stage of the chain as the Docker API sees it: an engine of named containers.

:class:`Engine` wraps the :class:`libswarm.Client` of dockerserver's output with the
lookups every endpoint needs; :func:`status_for` is the HTTP status a Docker daemon would
give for an engine's error text.
"""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from ..._client import Client
from ..._message import Arg
from ..._errors import LibswarmError, RemoteError
from .http import HTTPError

__all__ = ["Engine", "status_for"]


#: Docker's "not found" texts name what is missing; "no such file or directory" (an engine
#: socket that is not there) is not one of them: that is a 500 with its real cause, or the
#: docker CLI would take it for a missing image and try to pull.
_MISSING = re.compile(
    r"\bno such (?:container|image|exec instance|exec|network|volume|object|node|service|task"
    r"|secret|config|plugin)\b"
)

#: dockerd's other way of saying it: ``network X not found``, ``plugin "X" not found``
_NOT_FOUND = re.compile(r"^(?:network|volume|plugin|secret|config|node|service|task) \S+ not found$")


def status_for(text: str) -> int:
    """The HTTP status a Docker daemon gives for an error with this text."""
    t = text.lower()
    if t.startswith("policy: "):  # refused by a policy stage (backends/policy.py)
        return 403
    if "not a swarm manager" in t or "swarm is not initialized" in t or "node is not part of a swarm" in t:
        return 503  # dockerd's status for swarm requests to a node that cannot answer them
    if _MISSING.search(t) or t.startswith("not found") or _NOT_FOUND.search(t):
        return 404
    if ("conflict" in t or "already in use" in t or "is not running" in t or "container is running" in t
            or "remove a running container" in t
            or "is paused" in t or "is restarting" in t or "already paused" in t or "is not paused" in t):
        return 409
    if t.startswith("invalid") or "invalid signal" in t or "invalid container" in t or t.startswith("bad parameter"):
        return 400
    return 500


class Engine:
    """The engine behind the Docker API: ``client`` calls its verbs."""

    def __init__(self, client: Client, execs: dict[str, Client] | None = None) -> None:
        self.client = client
        self.execs: dict[str, Client] = execs if execs is not None else {}
        """The exec objects the engine gave (``docker exec``), by exec id, oldest first."""

    @asynccontextmanager
    async def container(self, ref: str) -> AsyncIterator[Client]:
        """A handle on container ``ref`` (HTTP 404 with Docker's text if there is none)."""
        async with self.lookup(ref) as (handle, _):
            yield handle

    @asynccontextmanager
    async def lookup(self, ref: str) -> AsyncIterator[tuple[Client, Arg | None]]:
        """:meth:`container`, and the container's inspect text when the engine gave it
        with the handle (spec/LIBSWARM.md 3; None otherwise: ask ``Get()``)."""
        try:
            handle, args = await self.client.lookup(ref)
        except RemoteError as exc:
            if status_for(exc.text) == 404:
                raise HTTPError(404, f"No such container: {ref}") from None
            raise
        try:
            yield handle, args[0] if len(args) == 1 else None
        finally:
            await handle.aclose()

    @staticmethod
    async def inspect(c: Client) -> dict[str, Any]:
        """The inspect data of container ``c`` (``Get()``, a JSON object)."""
        return (await Engine.inspect_text(c))[0]

    @staticmethod
    async def inspect_text(c: Client, state: Arg | None = None) -> tuple[dict[str, Any], bytes]:
        """The inspect data of container ``c`` and its JSON text as the engine gave it
        (``state``: as its lookup gave it, else ``Get()``)."""
        raw = state if state is not None else await c.get()
        text = raw.encode() if isinstance(raw, str) else raw
        data = json.loads(text)
        if not isinstance(data, dict):
            raise HTTPError(500, "engine: inspect data is not a JSON object")
        return data, text

    async def info(self) -> dict[str, Any]:
        """The engine's own ``Get()`` JSON object (``{}`` if it has none)."""
        try:
            raw = await self.client.get()
            data = json.loads(raw)
            return data if isinstance(data, dict) else {}
        except (LibswarmError, ValueError):
            return {}

    async def summaries(self) -> list[dict[str, Any]]:
        """Every container's ``docker ps`` entry, newest first, in one request: ``E.Get("containers")``
        (spec/LIBSWARM.md 6.8). An engine that does not know the word is asked the long
        way: ``Ls()``, then ``Attach(name)`` + ``Get()`` per container."""
        try:
            raw = await self.client.get("containers")
        except RemoteError as exc:
            if "unknown field" not in exc.text and not exc.text.startswith("not implemented"):
                raise
        else:
            try:
                entries = json.loads(raw)
            except ValueError:
                raise HTTPError(500, "engine: Get(containers) is not JSON") from None
            if not isinstance(entries, list):
                raise HTTPError(500, "engine: Get(containers) is not a JSON list")
            return [e for e in entries if isinstance(e, dict)]
        from .formats import container_summary, parse_time
        found = await self.all_containers()
        found.sort(key=lambda nd: parse_time(nd[1].get("Created", "")), reverse=True)
        return [container_summary(data, name) for name, data in found]

    async def all_containers(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name as the engine lists it, inspect data)`` for every container.

        The listed name is the one to show and to address the container by: behind an
        ``aggregate`` it may be ``LABEL/name`` while the inspect data says ``/name``.
        """
        names = await self.client.ls()
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for listed in names:
            name = listed.decode() if isinstance(listed, bytes) else listed
            try:
                async with self.container(name) as c:
                    data = await self.inspect(c)
            except (HTTPError, LibswarmError, ValueError):
                continue  # removed meanwhile
            found.setdefault(str(data.get("Id", name)), (name, data))
        return list(found.values())
