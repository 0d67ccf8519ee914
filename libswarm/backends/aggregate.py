"""``aggregate``: one engine made of several child services.

Args: ``[--timeout=SECONDS] [--retry=SECONDS] [--strategy=spread|binpack|random] SPEC...``:
each SPEC is a full service spec such as ``"simulator web db"`` or ``"exec /bin/cat"``
(split again with go-shlex's rules, so aggregates nest), optionally preceded by the child's
labels as ``KEY=VALUE`` words (``"zone=a node=hostA dockerclient tcp://a:2376"``; a value
has no spaces or quotes). Children are labelled by position: ``0``, ``1``, ...
(default timeout 10 s). Each child runs as a service with its own input; the
children's outputs are merged into the aggregate's output.

A child that fails to answer ``Ls`` or ``Get``, or is silent past the timeout, is
*down*: for the next ``--retry`` seconds (default 30) requests skip it at once instead
of waiting for it again, then it is asked again, and used again if it answers. A down
child costs the timeout at most once per retry period.

Requests on the aggregate's input:

* ``Ls()`` -- every child that is up is asked in parallel; the names are merged in
  child order (a child that fails is left out; only if no child answers is the
  request answered ``Error``). A name that only one child has is kept as is; a name that several
  children have is listed once per child as ``LABEL/name`` (``0/web``, ``1/web``),
  so names never collide. Nested aggregates give ``1/0/web``.
* ``Spawn(args)`` -- placement, as classic Docker Swarm's scheduler (``_placement.py``).
  A config whose ``"name"`` is ``LABEL/name`` goes to child ``LABEL`` (as ``name``),
  which alone decides whether the name is free (so the same name can be created on
  several children, which ``Ls`` then lists as ``LABEL/name``); it must still satisfy the
  filters. Otherwise every child that is up is looked at (its ``docker ps`` entries by
  ``Get("containers")``, else its ``Ls``; its ``Get()`` info) and:

  - **filters** leave out the children that do not satisfy them, in order; when one leaves
    none, the spawn fails ``unable to find a node that satisfies the following conditions
    [constraint:zone==c]`` (classic Swarm's words, naming that filter):
    ``constraint:KEY==VALUE`` / ``KEY!=VALUE`` on the child's labels (the ``KEY=VALUE`` words
    before its spec, then the ``Labels`` of its own ``Get()``: ``dockerd --label``), ``node``
    (its position label, its ``node=`` label or its engine's ``Name``: dockerd's hostname), ``storagedriver``, ``operatingsystem``,
    ``kernelversion``; ``affinity:container==NAME_OR_ID`` (the child holding that container;
    an id prefix of 4+ characters), ``affinity:image==REF`` (a child with that image, by
    ``Get("images")``), ``affinity:LABEL==VALUE`` (a child holding a container with that
    label); ``!=`` is the opposite. VALUE is a glob or ``/REGEX/``, case ignored; ``==~`` and
    ``!=~`` are soft (dropped when no child satisfies them). They are read from the ``Env``
    entries ``constraint:...``/``affinity:...`` (``docker run -e constraint:zone==a``: removed
    from the environment) and from the labels ``com.docker.swarm.constraints`` and
    ``com.docker.swarm.affinities`` (JSON lists, ``["zone==a"]``), into which all of them are
    written on the container, as classic Swarm did. Then **ports**: a container asking for a
    fixed host port (``-p 8080:80``) leaves out a child where a running container holds it
    (its ``docker ps`` ``Ports`` or its inspect's ``PortBindings``; same protocol, overlapping
    address): ``[port: 8080/tcp]`` when none is left. Then **resources**: a child whose
    ``Get()`` reports ``NCPU`` and ``MemTotal`` is left out when the new container's
    ``HostConfig.NanoCpus`` (``--cpus``) or ``Memory``/``MemoryReservation`` do not fit beside
    what its running containers reserve (read from their inspects);
  - the **strategy** orders the rest: ``spread`` (default) the least loaded first -- the
    mean of its reserved CPU and memory fractions (where it reports a capacity), then its
    running containers, then all its containers, ties to the lowest label; ``binpack`` the
    most loaded first (same keys, reversed; ties to the lowest label); ``random`` any order.

  The first in that order that spawns it gets it; a child answering ``not implemented``
  (e.g. an ``exec``) or failing to answer is skipped for the next one. A bare name already
  listed by any child is refused with Docker's ``Conflict.`` error (bare names stay
  unambiguous).
* ``Attach(name, ...)`` -- ``""``: ``Ack`` with the aggregate itself. ``LABEL/name``
  or a name one child lists: the request is handed to that child, which answers
  directly (its errors arrive verbatim). A name two children list: ``Error``
  (ambiguous). Otherwise (e.g. an id) every child is asked and the single one that
  knows it answers.
* ``Get()`` -- ``{"Driver": "aggregate", "Children": [{"Label", "Spec", "State", "Info"}]}``,
  ``Info`` being each child's own ``Get`` (parsed if JSON), ``State`` ``"up"`` or
  ``"down: <why>"`` (then ``Info`` is null).
* ``Start()``/``Stop()`` -- sent to every child in parallel.
* images (spec/LIBSWARM.md 6.2): ``Get("images")`` merges the children's lists (one
  entry per image id); ``Get("image", REF)`` is the first child's that has it;
  ``Start("pull", REF)`` pulls on every child; ``Start("tag", SRC, DST)`` and
  ``Stop("rmi", REF[, "force"])`` go to the children that have ``SRC``/``REF``
  (``No such image`` when none has it), the rmi answers concatenated.
* ``Get("containers")`` merges the children's ``docker ps`` entries (newest first; a name
  several children have is ``/LABEL/name``, as ``Ls`` lists it); a child that does not
  know the word makes it ``not implemented`` (the caller then asks the long way).
* ``Get("networks")``/``Get("volumes")`` merge the children's lists (one entry per
  name, the first child's); ``Get("network", REF)``/``Get("volume", NAME)`` is the first
  child's that has it (spec/LIBSWARM.md 6.6).
* ``Watch()`` -- ``Ack``, then the merged change streams of the children that support it.

Fan-out calls run in parallel, each bounded by the timeout. Where a request needs
every child (``Start``, ``Stop``) and one fails (answers ``Error``, died, or is silent
past the timeout) the request is answered ``Error("child LABEL (SPEC): <original
text>")``; nothing waits forever.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any, Awaitable, Callable

import trio

import libchan

from .._client import Client
from .._errors import LibswarmError, RemoteError, UsageError
from .._message import Message
from libchan.closing import aclose_quietly

from .._server import Request, Server
from .._service import Service, run_service
from .._verbs import Verb
from . import _placement

__all__ = ["Aggregate"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRY = 30.0


async def _nothing() -> None:
    await trio.lowlevel.checkpoint()


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _entry_name(e: dict[str, Any]) -> str:
    return str((e.get("Names") or [""])[0]).lstrip("/")


_LABEL_WORD = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-/]*)=([^\s'\"]*)(\s+|$)")


class _Health:
    """Whether a child answers: down children are skipped until ``down_until``."""

    __slots__ = ("down_until", "reason")

    def __init__(self) -> None:
        self.down_until = -math.inf
        self.reason = ""

    def is_down(self) -> bool:
        return trio.current_time() < self.down_until


class Aggregate(Service):
    """Fan-out over child services (see the module docstring).

    Args are spec strings; from Python, :class:`~libswarm.Service` instances are
    accepted too.
    """

    def __init__(self, *args: Any, timeout: float | None = None, retry: float | None = None) -> None:
        from . import from_spec

        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.retry = DEFAULT_RETRY if retry is None else retry
        self.children: list[Service] = []
        self.specs: list[str] = []
        self.child_labels: list[dict[str, str]] = []
        self.strategy = "spread"
        for a in args:
            if isinstance(a, str) and a.startswith("--strategy="):
                self.strategy = a.split("=", 1)[1]
                if self.strategy not in _placement.STRATEGIES:
                    raise UsageError(f"aggregate: bad {a} (spread, binpack or random)")
                continue
            if isinstance(a, str) and a.startswith(("--timeout=", "--retry=")):
                try:
                    value = float(a.split("=", 1)[1])
                except ValueError:
                    raise UsageError(f"aggregate: bad {a}") from None
                if not value > 0:
                    raise UsageError(f"aggregate: bad {a} (a positive number of seconds)")
                if a.startswith("--timeout="):
                    self.timeout = value
                else:
                    self.retry = value
                continue
            if isinstance(a, Service):
                self.children.append(a)
                self.specs.append(type(a).__name__.lower())
                self.child_labels.append({})
            elif isinstance(a, str):
                labels: dict[str, str] = {}
                spec = a
                while m := _LABEL_WORD.match(spec):  # "zone=a dockerclient ...": the child's labels
                    labels[m.group(1)] = m.group(2)
                    spec = spec[m.end():]
                if not spec.strip():
                    raise UsageError("aggregate: empty backend string" if not labels else
                                     f"aggregate: labels without a backend: {a!r}")
                self.children.append(from_spec(spec))
                self.specs.append(a)
                self.child_labels.append(labels)
            else:
                raise UsageError(f"aggregate: not a spec: {a!r}")
        if not self.children:
            raise UsageError("aggregate: usage: aggregate [--timeout=S] [--retry=S] [--strategy=spread|binpack|random] "
                             "'[KEY=VALUE ...] SERVICE ARG...' ...")
        self.labels = [str(i) for i in range(len(self.children))]
        self.health = [_Health() for _ in self.children]
        self.clients: list[Client] = []
        self.server = Server("aggregate")
        self.server.on_ls(self._ls).on_spawn(self._spawn).on_attach(self._attach)
        self.server.on_get(self._get).on_start(self._start).on(Verb.Stop, self._stop).on_watch(self._watch)

    async def run(self, input: Any, output: Any) -> None:
        async with trio.open_nursery() as nursery:
            for child in self.children:
                in_s, in_r = libchan.pipe()
                out_s, out_r = libchan.pipe()
                nursery.start_soon(self._run_child, child, in_r, out_s)
                nursery.start_soon(self._merge, out_r, output)
                self.clients.append(Client(in_s, timeout=self.timeout))
            async with self.server:
                await self.server.serve(input)
            for c in self.clients:
                await c.aclose()

    async def _run_child(self, child: Service, input: Any, output: Any) -> None:
        try:
            await run_service(child, input, output)
        except Exception:
            pass  # its input is closed now: requests to it fail with an Error

    async def _merge(self, src: Any, output: Any) -> None:
        async with src:
            async for raw in src:
                try:
                    await output.send(raw)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    # -- fan-out --------------------------------------------------------------

    def _who(self, i: int) -> str:
        return f"child {self.labels[i]} ({self.specs[i]})"

    def _mark_down(self, i: int, reason: str) -> None:
        h = self.health[i]
        h.down_until = trio.current_time() + self.retry
        h.reason = reason

    async def _gather(
        self, fn: Callable[[Client], Awaitable[Any]], *, tolerate: bool = False, probe: bool = False
    ) -> tuple[list[Any], list[tuple[int, str]]]:
        """Call ``fn`` on every child in parallel. Down children are not asked (their
        error is that they are down). A child silent past the timeout, or unreachable,
        is marked down; with ``probe`` (a request every live child answers: Ls, Get)
        any failure marks it down, and a success marks it up."""
        results: list[Any] = [None] * len(self.clients)
        errors: list[tuple[int, str]] = []

        async def one(i: int) -> None:
            h = self.health[i]
            if h.is_down():
                errors.append((i, h.reason))  # (down: asked again once the retry period is over)
                return
            try:
                with trio.fail_after(self.timeout):
                    results[i] = await fn(self.clients[i])
            except RemoteError as exc:
                errors.append((i, exc.text))
                if probe and not exc.text.startswith("not implemented"):
                    self._mark_down(i, exc.text)
                return
            except LibswarmError as exc:
                errors.append((i, str(exc)))
                self._mark_down(i, str(exc))
                return
            except trio.TooSlowError:
                errors.append((i, f"no reply within {self.timeout} s"))
                self._mark_down(i, f"no reply within {self.timeout} s")
                return
            if probe:
                h.down_until = -math.inf

        async with trio.open_nursery() as nursery:
            for i in range(len(self.clients)):
                nursery.start_soon(one, i)
        errors.sort()
        if errors and not tolerate:
            i, text = errors[0]
            raise RemoteError(f"{self._who(i)}: {text}")
        return results, errors

    async def _lists(self, tolerate: bool = False) -> tuple[list[list[str] | None], list[tuple[int, str]]]:
        async def ls(c: Client) -> list[str]:
            return [n.decode() if isinstance(n, bytes) else n for n in await c.ls()]
        return await self._gather(ls, tolerate=tolerate, probe=True)

    # -- verbs ----------------------------------------------------------------

    async def _ls(self, *args: Any) -> list[str]:
        lists, errors = await self._lists(tolerate=True)
        if all(names is None for names in lists):
            i, text = errors[0]
            raise RemoteError(f"{self._who(i)}: {text}")
        counts = Counter(n for names in lists for n in (names or []))
        return [n if counts[n] == 1 else f"{self.labels[i]}/{n}" for i, names in enumerate(lists) for n in (names or [])]

    def _split(self, name: str) -> tuple[int, str] | None:
        if "/" in name:
            label, rest = name.split("/", 1)
            if label in self.labels:
                return self.labels.index(label), rest
        return None

    async def _spawn(self, *args: Any) -> Any:
        target: int | None = None
        name: str | None = None
        config: dict[str, Any] | None = None
        exprs: list[_placement.Expr] = []
        if len(args) == 1 and isinstance(args[0], str) and args[0].lstrip().startswith("{"):
            try:
                config = json.loads(args[0])
            except ValueError as exc:
                raise RemoteError(f"invalid container config: {exc}") from None
            if isinstance(config, dict):
                exprs = _placement.take_expressions(config)
                if isinstance(config.get("name"), str):
                    name = config["name"]
                    split = self._split(name)
                    if split is not None:
                        target, name = split
                        config["name"] = name
                args = (json.dumps(config),)
        if target is not None and not exprs:
            order = [target]  # that child alone decides (its own Conflict error comes back verbatim)
        else:
            nodes, errors = await self._nodes(need_images=any(e.key == "image" for e in exprs if e.kind == "affinity"),
                                              need_ports=bool(_placement.host_ports(config or {})))
            if name is not None and target is None:
                for node in nodes:
                    if any(_entry_name(e) == name.lstrip("/") for e in node.containers):
                        raise RemoteError(f'Conflict. The name "/{name.lstrip("/")}" is already in use '
                                          f'(in {self._who(node.index)})')
            if not nodes:
                i, text = errors[0]
                raise RemoteError(f"{self._who(i)}: {text}")
            order = _placement.place(nodes, exprs, self.strategy, config if isinstance(config, dict) else {})
            if target is not None:
                if target not in order:
                    _placement.place([n for n in nodes if n.index == target], exprs, self.strategy, config or {})
                    raise RemoteError(f"{self._who(target)} is down")
                order = [target]
        last = ""
        for i in order:
            try:
                with trio.fail_after(self.timeout):
                    handle = await self.clients[i].spawn(*args)
            except trio.TooSlowError:
                self._mark_down(i, f"no reply within {self.timeout} s")
                last = f"{self._who(i)}: no reply within {self.timeout} s"
                if target is None:
                    continue  # placement: the next child
                raise RemoteError(last) from None
            except RemoteError as exc:
                if exc.text.startswith("not implemented") and target is None:
                    last = f"{self._who(i)}: {exc.text}"
                    continue
                raise RemoteError(exc.text if target is not None else f"{self._who(i)}: {exc.text}") from None
            except LibswarmError as exc:
                self._mark_down(i, str(exc))
                last = f"{self._who(i)}: {exc}"
                if target is None:
                    continue
                raise RemoteError(last) from None
            return handle.sender
        raise RemoteError(f"no child can spawn ({last})")

    async def _nodes(self, need_images: bool = False, need_ports: bool = False,
                     ) -> tuple[list[_placement.Node], list[tuple[int, str]]]:
        """A snapshot of every child that is up, for placement: its containers (``docker ps``
        entries, or just the names of its ``Ls``), its info, its labels, its capacity and what
        its running containers reserve and the host ports they hold (their inspects, only where
        it reports a capacity or the new container asks for fixed host ports)."""

        async def snapshot(c: Client) -> _placement.Node:
            i = self.clients.index(c)
            names = [n.decode() if isinstance(n, bytes) else n for n in await c.ls()]
            node = _placement.Node(i, self.labels[i], dict(self.child_labels[i]))
            try:
                entries = _json(await c.get("containers"))
                node.containers = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
            except RemoteError:
                node.containers = [{"Names": ["/" + n]} for n in names]
            try:
                info = _json(await c.get())
                node.info = info if isinstance(info, dict) else {}
            except RemoteError:
                pass
            engine_labels = node.info.get("Labels")
            for item in engine_labels if isinstance(engine_labels, list) else []:
                if isinstance(item, str) and "=" in item:
                    k, v = item.split("=", 1)
                    node.labels.setdefault(k, v)
            if need_images:
                try:
                    images = _json(await c.get("images"))
                    node.images = images if isinstance(images, list) else []
                except RemoteError:
                    node.images = []
            ncpu, mem = node.info.get("NCPU"), node.info.get("MemTotal")
            if isinstance(ncpu, (int, float)) and ncpu > 0 and isinstance(mem, int) and mem > 0:
                node.cpus, node.memory = float(ncpu), mem
            if node.cpus is None and not need_ports:
                return node
            for e in node.containers:
                if str(e.get("State", "")).lower() not in ("running", "paused", "restarting"):
                    continue
                node.hold_ports(entry=e)
                try:
                    h = await c.child(str(e.get("Id") or _entry_name(e)))
                    inspect = _json(await h.get())
                    await h.aclose()
                except RemoteError:
                    continue
                inspect = inspect if isinstance(inspect, dict) else {}
                cpus, memory = _placement.requested(inspect)
                node.reserved_cpus += cpus
                node.reserved_memory += memory
                node.hold_ports(inspect=inspect)
            return node

        results, errors = await self._gather(snapshot, tolerate=True, probe=True)
        return [n for n in results if n is not None], errors

    async def _attach(self, name: str, req: Request) -> None:
        if not name:
            await req.ack(self.server)
            return
        rest = tuple(req.args[1:])
        split = self._split(name)
        if split is None:
            lists, errors = await self._lists(tolerate=True)
            owners = [i for i, names in enumerate(lists) if names and name in names]
            if len(owners) > 1:
                where = ", ".join(self.labels[i] for i in owners)
                raise RemoteError(f"ambiguous name {name}: in children {where}; use LABEL/{name}")
            if owners:
                split = (owners[0], name)
        if split is not None:
            i, local = split
            await req.forward(self.clients[i].sender, req.message.replace(args=(local, *rest)))
            return
        # not a listed name (an id?): ask every child, the single one that knows it answers
        results, _ = await self._gather(lambda c: c.child(name), tolerate=True)
        found = [r for r in results if r is not None]
        if len(found) != 1:
            for r in found:
                await r.aclose()
            raise RemoteError(f"no such container: {name}" if not found else f"ambiguous name: {name}")
        await req.ack(found[0].sender)

    async def _get(self, *args: Any) -> Any:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words == ["images"]:
            return await self._images()
        if len(words) == 2 and words[0] == "image":
            i, value = (await self._image_owners(words[1]))[0]
            return value
        if words == ["containers"]:
            return await self._containers()
        if words in (["networks"], ["volumes"]):
            return await self._merged(words[0])
        if len(words) == 2 and words[0] in ("network", "volume"):  # the first child that has it
            results, errors = await self._gather(lambda c: c.get(*words), tolerate=True)
            for value in results:
                if value is not None:
                    return value
            raise RemoteError(errors[0][1] if errors else f"No such {words[0]}: {words[1]}")
        if args:
            raise RemoteError(f"aggregate: unknown field: {' '.join(words)!r}")
        results, errors = await self._gather(lambda c: c.get(), tolerate=True, probe=True)
        why = dict(errors)
        infos = []
        for i, value in enumerate(results):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            try:
                value = json.loads(value)
            except (TypeError, ValueError):
                pass
            state = f"down: {why[i]}" if i in why else "up"
            infos.append({"Label": self.labels[i], "Spec": self.specs[i], "State": state, "Info": value})
        return {"Driver": "aggregate", "Children": infos}

    async def _start(self, *args: Any) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        if words[:1] == ["tag"] and len(words) == 3:  # on every child that has the image
            owners = await self._image_owners(words[1])
            await self._gather(lambda c: c.start(*args) if self.clients.index(c) in dict(owners) else _nothing())
            return
        await self._gather(lambda c: c.start(*args))  # Start(), Start("pull", R): every child

    async def _stop(self, req: Request) -> None:
        words = [a.decode() if isinstance(a, bytes) else str(a) for a in req.args]
        if words[:1] != ["rmi"]:
            await self._gather(lambda c: c.stop(*req.args))
            await req.ack()
            return
        owners = dict(await self._image_owners(words[1]))

        async def rmi(c: Client) -> Any:
            if self.clients.index(c) not in owners:
                return None
            first, rest = await c.call(Verb.Stop, *req.args)
            await rest.aclose()
            return json.loads(first.args[0]) if first.args else []

        results, _ = await self._gather(rmi)
        await req.send(Verb.Ack, json.dumps([item for r in results if r for item in r]))

    async def _images(self) -> list[dict[str, Any]]:
        """Every up child's ``Get("images")``, one entry per image id (tags merged)."""
        results, errors = await self._gather(lambda c: c.get("images"), tolerate=True)
        if all(r is None for r in results) and errors:
            i, text = errors[0]
            raise RemoteError(f"{self._who(i)}: {text}")
        merged: dict[str, dict[str, Any]] = {}
        for raw in results:
            try:
                entries = json.loads(raw) if raw is not None else []
            except ValueError:
                continue
            for e in entries if isinstance(entries, list) else []:
                if not isinstance(e, dict):
                    continue
                seen = merged.setdefault(str(e.get("Id")), dict(e))
                if seen is not e:
                    seen["RepoTags"] = sorted(set(seen.get("RepoTags") or []) | set(e.get("RepoTags") or []))
        return list(merged.values())

    async def _containers(self) -> list[dict[str, Any]]:
        """``Get("containers")``: every up child's ``docker ps`` entries, newest first, a
        name several children have shown as ``LABEL/name`` (as ``Ls`` lists it)."""
        results, errors = await self._gather(lambda c: c.get("containers"), tolerate=True)
        for i, text in errors:
            if "unknown field" in text or text.startswith("not implemented"):
                # a child that cannot list in one request: the caller asks the long way
                raise RemoteError(f"not implemented: Get containers ({self._who(i)}: {text})")
        if all(r is None for r in results) and errors:
            i, text = errors[0]
            raise RemoteError(f"{self._who(i)}: {text}")
        lists: list[list[dict[str, Any]]] = []
        for raw in results:
            try:
                entries = json.loads(raw) if raw is not None else []
            except ValueError:
                entries = []
            lists.append([e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else [])

        def name(e: dict[str, Any]) -> str:
            return str((e.get("Names") or [""])[0]).lstrip("/")

        counts = Counter(name(e) for entries in lists for e in entries)
        merged = []
        for i, entries in enumerate(lists):
            for e in entries:
                if counts[name(e)] > 1:
                    e = dict(e, Names=[f"/{self.labels[i]}/{name(e)}"] + list(e.get("Names") or [])[1:])
                merged.append(e)
        merged.sort(key=lambda e: int(e.get("Created") or 0), reverse=True)
        return merged

    async def _merged(self, what: str) -> Any:
        """``Get("networks")`` (a list, one entry per ``Name``) or ``Get("volumes")``
        (``{"Volumes": [...]}``, one entry per ``Name``) of every up child, merged."""
        results, errors = await self._gather(lambda c: c.get(what), tolerate=True)
        if all(r is None for r in results) and errors:
            i, text = errors[0]
            raise RemoteError(f"{self._who(i)}: {text}")
        key = "Name"  # "host" on two children is one row (the first child's)
        merged: dict[str, Any] = {}
        for raw in results:
            try:
                value = json.loads(raw) if raw is not None else None
            except ValueError:
                continue
            entries = value if what == "networks" else (value or {}).get("Volumes") if isinstance(value, dict) else []
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict):
                    merged.setdefault(str(e.get(key)), e)
        if what == "networks":
            return list(merged.values())
        return {"Volumes": list(merged.values()), "Warnings": None}

    async def _image_owners(self, ref: str) -> list[tuple[int, Any]]:
        """``(child index, Get("image", ref) value)`` for each child that has ``ref``, in label
        order; the first child's error (``No such image: ...``) if none has it."""
        results, errors = await self._gather(lambda c: c.get("image", ref), tolerate=True)
        owners = [(i, v) for i, v in enumerate(results) if v is not None]
        if not owners:
            missing = [text for _, text in errors if "no such image" in text.lower()]
            raise RemoteError(missing[0] if missing else f"{self._who(errors[0][0])}: {errors[0][1]}"
                              if errors else f"No such image: {ref}")
        return owners

    async def _watch(self, req: Request) -> None:
        results, _ = await self._gather(lambda c: c.watch(*req.args), tolerate=True)
        await req.ack()
        q_s, q_r = trio.open_memory_channel[Message](math.inf)

        live = [out for out in results if out is not None]
        left = len(live)

        async def pump(out: Any) -> None:
            nonlocal left
            async with out:
                try:
                    async for msg in out:
                        await q_s.send(msg)
                except LibswarmError:
                    pass
            left -= 1
            if not left:  # every child's stream ended (e.g. events --until): so does this one
                await q_s.aclose()

        async with trio.open_nursery() as nursery:
            for out in live:
                nursery.start_soon(pump, out)
            if not live:
                await q_s.aclose()

            async def deliver() -> None:
                async for msg in q_r:
                    await req.send(msg)
                nursery.cancel_scope.cancel()

            nursery.start_soon(deliver)
            # the child streams end when the children go away; stop when the caller leaves
        await aclose_quietly(q_s)
