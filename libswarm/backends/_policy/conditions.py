"""The match keys of the rule language: how each is parsed, tested and compared.

Every key of a rule's ``match`` (and ``unless``) table has a *kind* that says what values it
takes, how a request satisfies it (:func:`test`) and when one condition is at least as
general as another (:func:`implies`, for the shadowed-rule warning). The keys fall in three
groups: the request (``verb``, ``on``, ``args``), the caller (``cn``, ``uid``...) and the
container (``privileged``, ``host_path``...: :mod:`.facts`). spec/LIBSWARM.md 9 documents them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Any, Callable

from ..._identity import Identity
from ..._verbs import Verb
from .facts import Facts, normalize_cap

__all__ = ["KEYS", "Key", "Query", "parse_value", "test", "implies", "expand", "TEMPLATE_FIELDS", "ConditionError",
           "ALL_VERBS", "OBJECTS", "carries_facts"]

ALL_VERBS = frozenset(Verb)
OBJECTS = frozenset({"engine", "container", "exec"})
TRANSPORTS = frozenset({"tls", "unix", "tcp", "none"})
TEMPLATE_FIELDS = ("name", "cn", "subject", "uid", "gid")
_TEMPLATE = re.compile(r"\{([^{}]*)\}")


class ConditionError(ValueError):
    """A value a key does not take (the text says what it takes)."""


@dataclasses.dataclass
class Query:
    """One request as the rules see it."""

    verb: Verb
    on: str
    """``engine`` (the chain's own requests), ``container`` or ``exec`` (requests on a handle)."""
    args: tuple[str, ...]
    identity: Identity
    facts: Facts | None = None
    """The container's settings: a create body's for ``Spawn`` on the engine, the container's
    for a lookup and for every request on a container or exec; None for other requests."""
    body: dict[str, Any] | None = None
    """The body a rewrite changes (``Spawn``'s JSON), or None."""
    target: str = ""


def carries_facts(verb: Verb, on: str) -> bool:
    """Whether a request of ``verb`` on ``on`` is evaluated with a container's facts."""
    return on != "engine" or verb in (Verb.Spawn, Verb.Attach)


def expand(pattern: str, identity: Identity, *, glob: bool) -> str | None:
    """``pattern`` with ``{name}``, ``{cn}``, ``{subject}``, ``{uid}``, ``{gid}`` replaced by the
    caller's; None when the caller has no such field. In a glob, the values are escaped so that
    a ``*`` in a certificate's CN matches only a ``*``."""
    if "{" not in pattern:
        return pattern
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        v = identity.name if m.group(1) == "name" else getattr(identity, m.group(1))
        if v is None:
            missing = True
            return ""
        text = str(v)
        return re.sub(r"([*?\[])", r"[\1]", text) if glob else text

    out = _TEMPLATE.sub(sub, pattern)
    return None if missing else out


def check_template(text: str) -> None:
    for m in _TEMPLATE.finditer(text):
        if m.group(1) not in TEMPLATE_FIELDS:
            raise ConditionError(f"unknown placeholder {{{m.group(1)}}} (known: "
                                 + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS) + ")")


@dataclasses.dataclass(frozen=True)
class Key:
    kind: str
    group: str  # "request" | "identity" | "container"
    getter: Callable[[Query], Any] | None = None


def _fact(attr: str) -> Callable[[Query], Any]:
    return lambda q: getattr(q.facts, attr) if q.facts is not None else None


def _mode(key: str) -> Callable[[Query], Any]:
    return lambda q: q.facts.modes.get(key, "") if q.facts is not None else None


def _ident(attr: str) -> Callable[[Query], Any]:
    return lambda q: getattr(q.identity, attr)


KEYS: dict[str, Key] = {
    "verb": Key("verbs", "request"),
    "on": Key("objects", "request"),
    "args": Key("args", "request"),
    "transport": Key("transports", "identity", _ident("transport")),
    "anonymous": Key("bool", "identity", _ident("anonymous")),
    "cn": Key("glob", "identity", _ident("cn")),
    "subject": Key("glob", "identity", _ident("subject")),
    "san": Key("globs", "identity", _ident("san")),
    "uid": Key("ints", "identity", _ident("uid")),
    "gid": Key("ints", "identity", _ident("gid")),
    "name": Key("glob", "container", _fact("name")),
    "image": Key("image", "container", _fact("image")),
    "user": Key("glob", "container", _fact("user")),
    "user_root": Key("bool", "container", _fact("user_root")),
    "labels": Key("labels", "container", _fact("labels")),
    "privileged": Key("bool", "container", _fact("privileged")),
    "cap_add": Key("caps", "container", _fact("cap_add")),
    "devices": Key("globs", "container", _fact("devices")),
    "device_cgroup_rules": Key("globs", "container", _fact("device_cgroup_rules")),
    "host_path": Key("paths", "container", _fact("host_paths")),
    "host_path_outside": Key("outside", "container", _fact("host_paths")),
    "volume": Key("globs", "container", _fact("volumes")),
    "volumes_from": Key("globs", "container", _fact("volumes_from")),
    "readonly_rootfs": Key("bool", "container", _fact("readonly_rootfs")),
    "security_opt": Key("globs", "container", _fact("security_opt")),
    "host_namespace": Key("bool", "container", _fact("host_namespace")),
    **{k: Key("glob", "container", _mode(k))
       for k in ("pid_mode", "ipc_mode", "network_mode", "uts_mode", "userns_mode", "cgroupns_mode")},
}

_KIND_HELP = {
    "verbs": "a verb name or a list of them (" + ", ".join(v.name for v in Verb) + ")",
    "objects": 'one of "engine", "container", "exec", or a list of them',
    "transports": 'one of "tls", "unix", "tcp", "none", or a list of them',
    "args": "a list of glob patterns, one per argument",
    "bool": "true or false",
    "glob": "a glob pattern or a list of them",
    "image": "a glob pattern or a list of them",
    "globs": "true (any), false (none) or a list of glob patterns",
    "caps": "true (any), false (none) or a list of capability globs",
    "paths": "a list of host paths (a prefix) or globs",
    "outside": "a list of host paths (a prefix) or globs",
    "ints": "an integer or a list of them",
    "labels": "a table of label = glob pattern",
}


def _text_list(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ConditionError(f"must be {what}")
    for v in items:
        check_template(v)
    return tuple(items)


def parse_value(key: str, value: Any) -> Any:
    """Check and normalize the value of match key ``key`` (raises :class:`ConditionError`)."""
    kind = KEYS[key].kind
    what = _KIND_HELP[kind]
    if kind == "verbs":
        names = _text_list(value, what)
        try:
            return frozenset(Verb.parse(n) for n in names)
        except ValueError as exc:
            raise ConditionError(f"{exc}; must be {what}") from None
    if kind in ("objects", "transports"):
        allowed = OBJECTS if kind == "objects" else TRANSPORTS
        names = _text_list(value, what)
        bad = [n for n in names if n not in allowed]
        if bad:
            raise ConditionError(f"unknown value {bad[0]!r}; must be {what}")
        return frozenset(names)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConditionError(f"must be {what}")
        return value
    if kind in ("glob", "image", "args", "paths", "outside"):
        if kind == "args" and not isinstance(value, list):
            raise ConditionError(f"must be {what}")
        if kind in ("paths", "outside") and isinstance(value, str):
            value = [value]
        pats = _text_list(value, what)
        if kind in ("paths", "outside"):
            for p in pats:
                if not p.startswith(("/", "*", "{")):
                    raise ConditionError(f"{p!r} is not an absolute path; must be {what}")
        return pats
    if kind in ("globs", "caps"):
        if isinstance(value, bool):
            return value
        pats = _text_list(value, what)
        return tuple(normalize_cap(p) for p in pats) if kind == "caps" else pats
    if kind == "ints":
        items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise ConditionError(f"must be {what}")
        return frozenset(items)
    if kind == "labels":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConditionError(f"must be {what}")
        for v in value.values():
            check_template(v)
        return tuple(sorted(value.items()))
    raise AssertionError(kind)


def _glob(fact: str, patterns: tuple[str, ...], ident: Identity) -> bool:
    for p in patterns:
        e = expand(p, ident, glob=True)
        if e is not None and fnmatch.fnmatchcase(fact, e):
            return True
    return False


def _under(path: str, pattern: str, ident: Identity) -> bool:
    e = expand(pattern, ident, glob=True)
    if e is None:
        return False
    if any(c in e for c in "*?["):
        return fnmatch.fnmatchcase(path, e)
    base = e.rstrip("/")
    return base == "" or path == base or path.startswith(base + "/")


def _image_forms(image: str) -> tuple[str, ...]:
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return (image,)
    return (image, image + ":latest")


def test(key: str, value: Any, q: Query) -> bool:
    """Whether request ``q`` satisfies ``key = value`` (a parsed value)."""
    spec = KEYS[key]
    kind = spec.kind
    if kind == "verbs":
        return q.verb in value
    if kind == "objects":
        return q.on in value
    if kind == "args":
        if len(q.args) < len(value):
            return False
        return all(_glob(a, (p,), q.identity) for a, p in zip(q.args, value))
    assert spec.getter is not None
    fact = spec.getter(q)
    if fact is None:
        return False
    if kind in ("transports", "ints"):
        return bool(fact in value)
    if kind == "bool":
        return bool(bool(fact) == value)
    if kind == "glob":
        return _glob(str(fact), value, q.identity)
    if kind == "image":
        return any(_glob(form, value, q.identity) for form in _image_forms(str(fact)))
    if kind in ("globs", "caps"):
        if isinstance(value, bool):
            return bool(fact) == value
        if kind == "caps" and "ALL" in fact:
            return True  # CapAdd ALL grants every capability a rule may name
        return any(_glob(f, value, q.identity) for f in fact)
    if kind == "paths":
        return any(_under(p, pat, q.identity) for p in fact for pat in value)
    if kind == "outside":
        return any(not any(_under(p, pat, q.identity) for pat in value) for p in fact)
    if kind == "labels":
        return all(k in fact and _glob(fact[k], (pat,), q.identity) for k, pat in value)
    raise AssertionError(kind)


def implies(key: str, general: Any, specific: Any) -> bool:
    """Whether every request satisfying ``key = specific`` (None: no condition on ``key``)
    satisfies ``key = general``, as far as can be seen from the values' text."""
    kind = KEYS[key].kind
    universe = {"verbs": ALL_VERBS, "objects": OBJECTS, "transports": TRANSPORTS}.get(kind)
    if specific is None:
        return universe is not None and bool(general >= universe)
    if universe is not None or kind == "ints":
        return bool(specific <= general)
    if kind == "bool":
        return bool(general == specific)
    if kind in ("glob", "image"):
        return "*" in general or set(specific) <= set(general)
    if kind == "args":
        return len(general) <= len(specific) and all(g in ("*", s) for g, s in zip(general, specific))
    if kind in ("globs", "caps"):
        if general is True:
            return specific is True or (isinstance(specific, tuple) and bool(specific))
        if isinstance(general, bool) or isinstance(specific, bool):
            return bool(general == specific)
        return "*" in general or set(specific) <= set(general)
    if kind == "paths":
        return "/" in general or set(specific) <= set(general)
    if kind == "outside":
        return set(general) <= set(specific)
    if kind == "labels":
        return set(general) <= set(specific)
    raise AssertionError(kind)


def empty(key: str, value: Any) -> bool:
    """A list that can match nothing (``verb = []``)."""
    kind = KEYS[key].kind
    if kind in ("verbs", "objects", "transports", "ints", "glob", "image", "paths"):
        return len(value) == 0
    if kind in ("globs", "caps"):
        return isinstance(value, tuple) and len(value) == 0
    return False
