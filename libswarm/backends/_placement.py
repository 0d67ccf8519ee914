"""The classic Docker Swarm scheduler's placement, for ``aggregate``: filters and strategies.

Pure functions over :class:`Node` snapshots (what each child reported just before a
``Spawn``); ``aggregate`` gathers the snapshots and asks :func:`place` for an order.

Filters (classic Swarm's words), read from a create body:

* ``constraint:KEY==VALUE`` / ``KEY!=VALUE`` on the child: ``node`` (its position label, its
  ``node=`` label or its engine's ``Name``: dockerd's hostname), its labels (``zone=a`` before the spec, and the engine's own
  ``Labels`` from its ``Get()``: ``dockerd --label``), ``storagedriver``,
  ``operatingsystem``, ``kernelversion`` from its info;
* ``affinity:container==NAME_OR_ID`` (a child that holds that container), ``affinity:image==REF``
  (a child that has that image), ``affinity:LABEL==VALUE`` (a child holding a container with
  that label); ``!=`` is the opposite (anti-affinity).

VALUE is a glob (``fnmatch``: ``*``, ``?``, ``[...]``) or ``/REGEX/``; comparisons ignore case,
as classic Swarm's did. ``==~`` / ``!=~`` is a *soft* expression: dropped when no child
satisfies it. They come from the ``Env`` entries ``constraint:...`` and ``affinity:...``
(``docker run -e constraint:zone==a``; removed from the environment) and from the labels
``com.docker.swarm.constraints`` and ``com.docker.swarm.affinities`` (JSON lists of
expressions, ``["zone==a"]``), where they are all written back, as classic Swarm did.

The ``port`` filter: a container asking for fixed host ports (``-p 8080:80``:
``HostConfig.PortBindings`` with a ``HostPort``) leaves out a child where a running container
holds one of them (its ``docker ps`` ``Ports``, or the ``PortBindings`` of its inspect), for the
same protocol and an overlapping address (``0.0.0.0``/``::``/none overlaps every address).

The ``resources`` filter: a child that reports its capacity (``NCPU`` and ``MemTotal`` in its
``Get()``) is left out when the new container's ``--cpus`` (``HostConfig.NanoCpus``) or
``--memory``/``--memory-reservation`` do not fit beside what its running containers reserve.
"""

from __future__ import annotations

import fnmatch
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from .._errors import RemoteError

__all__ = ["Expr", "Node", "parse_expr", "take_expressions", "place", "STRATEGIES",
           "CONSTRAINTS_LABEL", "AFFINITIES_LABEL"]

STRATEGIES = ("spread", "binpack", "random")
CONSTRAINTS_LABEL = "com.docker.swarm.constraints"
AFFINITIES_LABEL = "com.docker.swarm.affinities"

_EXPR = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)(~?)\s*(.*?)\s*$")


@dataclass
class Expr:
    kind: str  # "constraint" or "affinity"
    key: str
    equal: bool
    soft: bool
    value: str
    text: str  # as written, without the kind

    def __str__(self) -> str:
        return f"{self.kind}:{self.text}"

    def matches(self, candidate: str | None) -> bool:
        if candidate is None:
            return False
        v = self.value
        if len(v) >= 2 and v.startswith("/") and v.endswith("/"):
            try:
                return re.search(v[1:-1], candidate, re.IGNORECASE) is not None
            except re.error:
                return False
        return fnmatch.fnmatchcase(candidate.lower(), v.lower())


def parse_expr(kind: str, text: str) -> Expr:
    m = _EXPR.match(text)
    if not m or not m.group(4):
        raise RemoteError(f"invalid {kind} expression: {text!r} (KEY==VALUE or KEY!=VALUE, "
                          "optionally ==~/!=~ for a soft one)")
    return Expr(kind, m.group(1), m.group(2) == "==", bool(m.group(3)), m.group(4), text.strip())


def take_expressions(config: dict[str, Any]) -> list[Expr]:
    """The filters of a create body: ``Env`` ``constraint:``/``affinity:`` entries are
    removed and every expression is written into the two labels."""
    exprs: dict[str, list[str]] = {"constraint": [], "affinity": []}
    labels = config.get("Labels") if isinstance(config.get("Labels"), dict) else {}
    for kind, label in (("constraint", CONSTRAINTS_LABEL), ("affinity", AFFINITIES_LABEL)):
        raw = (labels or {}).get(label)
        if raw:
            try:
                items = json.loads(raw)
            except ValueError:
                items = [raw]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise RemoteError(f"invalid label {label}: a JSON list of expressions, e.g. [\"zone==a\"]")
            exprs[kind] += items
    env = config.get("Env")
    if isinstance(env, list):
        kept = []
        for e in env:
            if isinstance(e, str) and e.startswith(("constraint:", "affinity:")):
                kind, text = e.split(":", 1)
                if text not in exprs[kind]:
                    exprs[kind].append(text)
            else:
                kept.append(e)
        config["Env"] = kept
    parsed = [parse_expr(kind, t) for kind in ("constraint", "affinity") for t in exprs[kind]]
    if parsed:
        labels = dict(labels or {})
        for kind, label in (("constraint", CONSTRAINTS_LABEL), ("affinity", AFFINITIES_LABEL)):
            if exprs[kind]:
                labels[label] = json.dumps(exprs[kind])
        config["Labels"] = labels
    return parsed


@dataclass
class Node:
    """One child as the scheduler sees it."""

    index: int
    label: str  # the position label: 0, 1, ...
    labels: dict[str, str] = field(default_factory=dict)  # spec labels, then the engine's
    info: dict[str, Any] = field(default_factory=dict)
    containers: list[dict[str, Any]] = field(default_factory=list)  # docker ps entries
    images: list[dict[str, Any]] | None = None  # Get("images"), when an image affinity asks
    cpus: float | None = None  # capacity (NCPU), when reported
    memory: int | None = None  # capacity (MemTotal), when reported
    reserved_cpus: float = 0.0
    reserved_memory: int = 0
    ports: set[tuple[str, int, str]] = field(default_factory=set)  # host ports held: (address, port, protocol)

    @property
    def running(self) -> int:
        return sum(1 for c in self.containers if str(c.get("State", "")).lower() in ("running", "paused", "restarting"))

    def attribute(self, key: str) -> list[str]:
        """The values a constraint's KEY can match on this child."""
        if key == "node":  # its position label, its node= label, its engine's name (dockerd's hostname)
            return [self.label] + [str(v) for v in (self.labels.get("node"), self.info.get("Name")) if v]
        if key in self.labels:
            return [self.labels[key]]
        field_of = {"storagedriver": "Driver", "operatingsystem": "OperatingSystem",
                    "kernelversion": "KernelVersion"}
        if key in field_of and self.info.get(field_of[key]) is not None:
            return [str(self.info[field_of[key]])]
        return []

    def has_container(self, e: Expr) -> bool:
        for c in self.containers:
            names = [str(n).lstrip("/").split("/")[-1] for n in (c.get("Names") or [])]
            cid = str(c.get("Id", ""))
            if any(e.matches(n) for n in names) or e.matches(cid) or (
                    len(e.value) >= 4 and cid.startswith(e.value.lower())):
                return True
        return False

    def has_image(self, e: Expr) -> bool:
        refs: list[str] = [str(c.get("Image", "")) for c in self.containers]
        for img in self.images or []:
            refs += [str(t) for t in img.get("RepoTags") or []]
            iid = str(img.get("Id", ""))
            refs += [iid, iid.removeprefix("sha256:")[:12]]
        names = set(refs) | {r[: -len(":latest")] for r in refs if r.endswith(":latest")}
        return any(e.matches(r) for r in names if r)

    def has_labelled(self, e: Expr) -> bool:
        return any(e.matches(str((c.get("Labels") or {}).get(e.key))) for c in self.containers
                   if e.key in (c.get("Labels") or {}))

    def satisfies(self, e: Expr) -> bool:
        if e.kind == "constraint":
            hit = any(e.matches(v) for v in self.attribute(e.key))
        elif e.key == "container":
            hit = self.has_container(e)
        elif e.key == "image":
            hit = self.has_image(e)
        else:
            hit = self.has_labelled(e)
        return hit if e.equal else not hit

    def hold_ports(self, entry: dict[str, Any] | None = None, inspect: dict[str, Any] | None = None) -> None:
        """Count the host ports a running container holds: a ``docker ps`` entry's ``Ports``
        or an inspect's ``HostConfig.PortBindings``."""
        for p in (entry or {}).get("Ports") or []:
            if isinstance(p, dict) and isinstance(p.get("PublicPort"), int) and p["PublicPort"]:
                self.ports.add((str(p.get("IP") or ""), p["PublicPort"], str(p.get("Type") or "tcp")))
        if inspect is not None:
            self.ports |= set(host_ports(inspect))

    def port_taken(self, want: tuple[str, int, str]) -> bool:
        ip, port, proto = want
        return any(port == p and proto == pr and (_any_address(ip) or _any_address(i) or ip == i)
                   for i, p, pr in self.ports)

    def fits(self, cpus: float, memory: int) -> bool:
        if self.cpus is not None and cpus and self.reserved_cpus + cpus > self.cpus + 1e-9:
            return False
        if self.memory is not None and memory and self.reserved_memory + memory > self.memory:
            return False
        return True

    def load(self, cpus: float, memory: int) -> float:
        """Classic Swarm's weight: the mean of the CPU and memory fractions reserved once
        the new container is placed (0 where the child reports no capacity)."""
        parts = []
        if self.cpus:
            parts.append((self.reserved_cpus + cpus) / self.cpus)
        if self.memory:
            parts.append((self.reserved_memory + memory) / self.memory)
        return sum(parts) / len(parts) if parts else 0.0


def requested(config: dict[str, Any]) -> tuple[float, int]:
    """The CPUs and memory bytes a create body reserves."""
    hc = config.get("HostConfig") if isinstance(config.get("HostConfig"), dict) else {}
    cpus = float((hc or {}).get("NanoCpus") or 0) / 1e9
    memory = max(int((hc or {}).get("Memory") or 0), int((hc or {}).get("MemoryReservation") or 0))
    return cpus, memory


def _any_address(ip: str) -> bool:
    return ip in ("", "0.0.0.0", "::", "[::]")


def host_ports(config: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The fixed host ports a create body (or an inspect) binds: ``(address, port, protocol)``
    from ``HostConfig.PortBindings`` entries with a single ``HostPort`` (``-p 8080:80``; a
    range or an empty one is the engine's choice, left alone)."""
    hc = config.get("HostConfig") if isinstance(config.get("HostConfig"), dict) else {}
    bindings = (hc or {}).get("PortBindings")
    out = []
    for key, wanted in bindings.items() if isinstance(bindings, dict) else ():
        proto = str(key).partition("/")[2] or "tcp"
        for b in wanted if isinstance(wanted, list) else []:
            port = str((b or {}).get("HostPort") or "") if isinstance(b, dict) else ""
            if port.isdigit() and int(port):
                out.append((str(b.get("HostIp") or ""), int(port), proto))
    return out


def unsatisfied(conditions: list[str]) -> RemoteError:
    return RemoteError("unable to find a node that satisfies the following conditions "
                       + " ".join(f"[{c}]" for c in conditions))


def place(nodes: list[Node], exprs: list[Expr], strategy: str, config: dict[str, Any]) -> list[int]:
    """The child indexes to try, best first; :func:`unsatisfied` when the filters leave none."""
    cpus, memory = requested(config)
    candidates = list(nodes)
    for e in exprs:
        kept = [n for n in candidates if n.satisfies(e)]
        if not kept and e.soft:
            continue
        if not kept:
            raise unsatisfied([str(e)])
        candidates = kept
    for binding in host_ports(config):
        kept = [n for n in candidates if not n.port_taken(binding)]
        if not kept:
            ip, port, proto = binding
            raise unsatisfied([f"port: {ip + ':' if ip else ''}{port}/{proto}"])
        candidates = kept
    if cpus or memory:
        kept = [n for n in candidates if n.fits(cpus, memory)]
        if not kept:
            want = ", ".join(w for w in (f"{cpus:g} CPUs" if cpus else "", f"{memory} bytes of memory" if memory else "") if w)
            raise unsatisfied([f"resources: {want}"])
        candidates = kept
    if strategy == "random":
        random.shuffle(candidates)
        return [n.index for n in candidates]
    if strategy == "binpack":
        candidates.sort(key=lambda n: (-n.load(cpus, memory), -n.running, -len(n.containers), n.index))
    else:  # spread
        candidates.sort(key=lambda n: (n.load(cpus, memory), n.running, len(n.containers), n.index))
    return [n.index for n in candidates]
