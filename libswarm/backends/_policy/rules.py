"""The rules file: TOML (``tomllib``) read into a :class:`RuleSet`, checked, and applied.

::

    default = "deny"                       # or "allow": when no rule decides
    default_reason = "not allowed here"    # optional

    [[rule]]
    name = "no-privileged"
    action = "deny"                        # allow | deny | hide | rewrite
    reason = "privileged containers are not allowed"
    match = { verb = "Spawn", on = "engine", privileged = true }

Rules are tried in order. A ``rewrite`` rule that matches changes the request's body and
the evaluation goes on with the changed request; the first ``allow``, ``deny`` or ``hide``
rule that matches decides; none: ``default``. A ``hide`` rule is only tried on requests that
concern an existing container (its lookup, ``Attach(NAME)`` on the engine, and requests on
a container or exec object). A file that cannot be used raises
:class:`RulesError` naming the file, the line and the reason; rules that can never match
or never decide are reported in :attr:`RuleSet.warnings`. spec/LIBSWARM.md 9 is the reference.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import secrets
import tomllib
from typing import Any

from ..._errors import UsageError
from ..._verbs import Verb
from . import conditions as cond
from .conditions import KEYS, ConditionError, Query
from .facts import facts_of_create, normalize_cap

__all__ = ["RulesError", "Rule", "RuleSet", "Decision", "parse_rules", "load_rules", "ACTIONS", "REWRITE_KEYS"]

ACTIONS = ("allow", "deny", "hide", "rewrite")
REWRITE_KEYS = ("add_labels", "readonly_rootfs", "drop_caps", "user", "name_prefix", "security_opt")
_RULE_KEYS = ("name", "action", "reason", "description", "match", "unless", "rewrite")
_TOP_KEYS = ("default", "default_reason", "rule")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DEFAULT_REASON = "not allowed by the rules"


class RulesError(UsageError):
    """A rules file that cannot be used: ``path:line: reason``."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    action: str
    reason: str
    match: dict[str, Any]
    unless: dict[str, Any] | None
    rewrite: dict[str, Any]
    line: int

    def matches(self, q: Query) -> bool:
        if not all(cond.test(k, v, q) for k, v in self.match.items()):
            return False
        return self.unless is None or not all(cond.test(k, v, q) for k, v in self.unless.items())

    def pairs(self) -> set[tuple[Verb, str]]:
        """The (verb, object) pairs this rule's match admits."""
        verbs = self.match.get("verb", cond.ALL_VERBS)
        objs = self.match.get("on", cond.OBJECTS)
        return {(v, o) for v in verbs for o in objs}


@dataclasses.dataclass
class Decision:
    action: str
    """``allow``, ``deny`` or ``hide``."""
    rule: str | None
    """The deciding rule's name; None for the default."""
    reason: str
    rewrites: list[str]
    """The rewrite rules applied, in order."""

    @property
    def text(self) -> str:
        """The refusal as the caller sees it: ``policy: REASON (rule NAME)``."""
        return f"policy: {self.reason} ({'rule ' + self.rule if self.rule else 'default'})"


class RuleSet:
    """Parsed rules (see the module docstring); :meth:`decide` applies them."""

    def __init__(self, rules: list[Rule], default: str, default_reason: str, path: str,
                 warnings: list[str]) -> None:
        self.rules = rules
        self.default = default
        self.default_reason = default_reason
        self.path = path
        self.warnings = warnings
        self._facts_needed: dict[tuple[Verb, str], bool] = {}

    def needs_facts(self, verb: Verb, on: str) -> bool:
        """Whether some rule may look at a container's settings for this kind of request
        (so the policy fetches them only when they can matter)."""
        key = (verb, on)
        if key not in self._facts_needed:
            self._facts_needed[key] = any(
                key in r.pairs() and (any(KEYS[k].group == "container" for k in r.match)
                                      or any(KEYS[k].group == "container" for k in (r.unless or {})))
                for r in self.rules)
        return self._facts_needed[key]

    def fact_keys(self, verb: Verb, on: str) -> frozenset[str]:
        """The container keys (``labels``, ``name``, ``privileged``...) that some rule may look
        at for this kind of request (empty: the container's settings never matter)."""
        key = (verb, on)
        return frozenset(k for r in self.rules if key in r.pairs()
                         for k in (*r.match, *(r.unless or {})) if KEYS[k].group == "container")

    def decide(self, q: Query) -> Decision:
        rewrites: list[str] = []
        for rule in self.rules:
            if rule.action == "hide" and not _concerns_container(q.verb, q.on):
                continue
            if not rule.matches(q):
                continue
            if rule.action == "rewrite":
                if q.body is None:
                    continue
                try:
                    q.body = apply_rewrite(rule.rewrite, q)
                except ConditionError as exc:
                    return Decision("deny", rule.name, str(exc), rewrites)
                if q.on == "engine":
                    q.facts = facts_of_create(q.body)
                    q.target = str(q.body.get("name") or q.target)
                elif q.facts is not None and "user" in rule.rewrite:
                    q.facts = dataclasses.replace(q.facts, user=str(q.body.get("User") or ""))
                rewrites.append(rule.name)
                continue
            return Decision(rule.action, rule.name, rule.reason, rewrites)
        return Decision(self.default, None, self.default_reason, rewrites)


def _concerns_container(verb: Verb, on: str) -> bool:
    """The requests a ``hide`` rule applies to: a lookup, and requests on a container or exec."""
    return on != "engine" or verb == Verb.Attach


# -- rewriting ----------------------------------------------------------------------


def _value(template: str, q: Query) -> str:
    v = cond.expand(template, q.identity, glob=False)
    if v is None:
        raise ConditionError(f"cannot rewrite: the caller ({q.identity.name}) has no value for {template!r}")
    return v


def apply_rewrite(rw: dict[str, Any], q: Query) -> dict[str, Any]:
    """A rewritten copy of ``q.body``: a create body on the engine, an exec body on a container
    (where only ``user`` applies)."""
    assert q.body is not None
    body = copy.deepcopy(q.body)
    if "user" in rw:
        body["User"] = _value(rw["user"], q)
    if q.on != "engine":
        return body
    host = body.get("HostConfig")
    if not isinstance(host, dict):
        host = body["HostConfig"] = {}
    if "add_labels" in rw:
        old = body.get("Labels")
        labels: dict[str, Any] = old if isinstance(old, dict) else {}
        body["Labels"] = {**labels, **{k: _value(v, q) for k, v in rw["add_labels"].items()}}
    if rw.get("readonly_rootfs"):
        host["ReadonlyRootfs"] = True
    if "drop_caps" in rw:
        drop = [normalize_cap(c) for c in rw["drop_caps"]]
        add = [c for c in (host.get("CapAdd") or []) if isinstance(c, str)]
        host["CapAdd"] = [] if "ALL" in drop else [c for c in add if normalize_cap(c) not in drop]
        have = [c for c in (host.get("CapDrop") or []) if isinstance(c, str)]
        host["CapDrop"] = have + [c for c in drop if c not in {normalize_cap(h) for h in have}]
    if "security_opt" in rw:
        opts = [o for o in (host.get("SecurityOpt") or []) if isinstance(o, str)]
        host["SecurityOpt"] = opts + [o for o in rw["security_opt"] if o not in opts]
    if "name_prefix" in rw:
        prefix = re.sub(r"[^a-zA-Z0-9_.-]", "_", _value(rw["name_prefix"], q))
        name = str(body.get("name") or "")
        head, sep, last = name.rpartition("/")
        if not last:
            last = prefix + secrets.token_hex(6)
        elif not last.startswith(prefix):
            last = prefix + last
        body["name"] = head + sep + last
    return body


def _parse_rewrite(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConditionError("rewrite must be a table")
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key not in REWRITE_KEYS:
            raise ConditionError(f"unknown rewrite key {key!r}{_did_you_mean(key, REWRITE_KEYS)}")
        if key == "add_labels":
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                raise ConditionError("rewrite add_labels must be a table of label = text")
            for x in v.values():
                cond.check_template(x)
            out[key] = dict(v)
        elif key == "readonly_rootfs":
            if v is not True:
                raise ConditionError("rewrite readonly_rootfs can only be true")
            out[key] = True
        elif key in ("drop_caps", "security_opt"):
            if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
                raise ConditionError(f"rewrite {key} must be a non-empty list of text")
            out[key] = list(v)
        else:  # user, name_prefix
            if not isinstance(v, str) or not v:
                raise ConditionError(f"rewrite {key} must be non-empty text")
            cond.check_template(v)
            out[key] = v
    if not out:
        raise ConditionError("rewrite is empty: nothing to change")
    return out


# -- parsing ------------------------------------------------------------------------


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Lines:
    """Finds the line of a rule or key in the file's text (tomllib gives no positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.starts = [i + 1 for i, line in enumerate(self.lines) if re.match(r"^\s*\[\[\s*rule\s*\]\]", line)]

    def rule(self, index: int) -> int:
        return self.starts[index] if index < len(self.starts) else max(len(self.lines), 1)

    def key(self, index: int | None, key: str) -> int:
        if index is None:
            lo, hi = 1, (self.starts[0] - 1 if self.starts else len(self.lines))
        else:
            lo = self.rule(index)
            hi = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.lines)
        rx = re.compile(r'(?:^|[\s{,.\[])"?' + re.escape(key) + r'"?\s*(?:=|\])')
        for n in range(lo, hi + 1):
            line = self.lines[n - 1] if 0 < n <= len(self.lines) else ""
            if rx.search(line.split("#", 1)[0]):
                return n
        return lo if index is not None else 1


def _conditions(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConditionError(f"{where} must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise ConditionError(f"unknown {where} key {key!r}{_did_you_mean(key, list(KEYS))}")
        try:
            out[key] = cond.parse_value(key, value)
        except ConditionError as exc:
            raise ConditionError(f"{where} key {key!r}: {exc}") from None
    return out


def parse_rules(text: str, path: str = "<rules>") -> RuleSet:
    """Parse a rules file's text (``path`` names it in errors and warnings)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else 1
        reason = re.sub(r"\s*\(at (?:line \d+, column \d+|end of document)\)", "", msg)
        raise RulesError(path, line, f"invalid TOML: {reason}" + (f" (column {m.group(2)})" if m else "")) from None
    lines = _Lines(text)
    for key in data:
        if key not in _TOP_KEYS:
            raise RulesError(path, lines.key(None, key), f"unknown key {key!r}{_did_you_mean(key, _TOP_KEYS)}")
    default = data.get("default", "deny")
    if default not in ("allow", "deny"):
        raise RulesError(path, lines.key(None, "default"), f'default must be "allow" or "deny", not {default!r}')
    default_reason = data.get("default_reason", _DEFAULT_REASON)
    if not isinstance(default_reason, str) or not default_reason:
        raise RulesError(path, lines.key(None, "default_reason"), "default_reason must be non-empty text")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RulesError(path, lines.key(None, "rule"), "rule must be an array of tables: write each as [[rule]]")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        rules.append(_rule(raw, i, lines, path, seen))
    return RuleSet(rules, default, default_reason, path, _warnings(rules, path))


def _rule(raw: Any, i: int, lines: _Lines, path: str, seen: dict[str, int]) -> Rule:
    where = lines.rule(i)
    if not isinstance(raw, dict):
        raise RulesError(path, where, "a rule must be a table")
    label = f'rule "{raw["name"]}"' if isinstance(raw.get("name"), str) else f"rule {i + 1}"

    def fail(key: str | None, reason: str) -> RulesError:
        return RulesError(path, lines.key(i, key) if key else where, f"{label}: {reason}")

    for key in raw:
        if key not in _RULE_KEYS:
            raise fail(key, f"unknown key {key!r}{_did_you_mean(key, _RULE_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name" if "name" in raw else None,
                   "every rule needs a name of letters, digits and _.- (name = \"no-privileged\")")
    if name in seen:
        raise fail("name", f"the name is already used by the rule at line {seen[name]}")
    seen[name] = where
    action = raw.get("action")
    if action not in ACTIONS:
        raise fail("action" if "action" in raw else None,
                   f"action must be one of {', '.join(ACTIONS)}" + (f", not {action!r}" if action is not None else ""))
    reason = raw.get("reason", "not allowed" if action in ("deny", "hide") else "")
    if not isinstance(reason, str) or (action in ("deny", "hide") and not reason):
        raise fail("reason", "reason must be non-empty text")
    if "reason" in raw and action not in ("deny", "hide"):
        raise fail("reason", f"a reason is only for deny and hide rules, not {action}")
    if not isinstance(raw.get("description", ""), str):
        raise fail("description", "description must be text")
    try:
        match = _conditions(raw.get("match", {}), "match")
    except ConditionError as exc:
        raise RulesError(path, _key_line(lines, i, exc, "match"), f"{label}: {exc}") from None
    unless = None
    if "unless" in raw:
        try:
            unless = _conditions(raw["unless"], "unless")
        except ConditionError as exc:
            raise RulesError(path, _key_line(lines, i, exc, "unless"), f"{label}: {exc}") from None
    rewrite: dict[str, Any] = {}
    if action == "rewrite":
        if "rewrite" not in raw:
            raise fail(None, "a rewrite rule needs a rewrite table (rewrite = { user = \"1000\" })")
        try:
            rewrite = _parse_rewrite(raw["rewrite"])
        except ConditionError as exc:
            raise RulesError(path, _key_line(lines, i, exc, "rewrite"), f"{label}: {exc}") from None
    elif "rewrite" in raw:
        raise fail("rewrite", f"a rewrite table is only for rewrite rules, not {action}")
    return Rule(name, action, reason, match, unless, rewrite, where)


def _key_line(lines: _Lines, i: int, exc: Exception, section: str) -> int:
    m = re.search(r"key '([^']+)'", str(exc))
    return lines.key(i, m.group(1)) if m else lines.key(i, section)


def load_rules(path: str) -> RuleSet:
    """Read and parse a rules file (:class:`RulesError` when it cannot be used)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise RulesError(path, 0, f"cannot read the rules: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise RulesError(path, line, "invalid TOML: not UTF-8") from None
    return parse_rules(text, path)


# -- load-time warnings ---------------------------------------------------------------


def _never(rule: Rule) -> str | None:
    """Why ``rule`` can never match, or None."""
    for section, table in (("match", rule.match), ("unless", rule.unless or {})):
        for key, value in table.items():
            if cond.empty(key, value) and section == "match":
                return f"match key {key!r} is an empty list, which matches nothing"
    m = rule.match
    if any(KEYS[k].group == "container" for k in m) and not any(cond.carries_facts(v, o) for v, o in rule.pairs()):
        keys = ", ".join(k for k in m if KEYS[k].group == "container")
        return (f"it looks at a container's settings ({keys}) but matches only requests that carry none "
                "(those are Spawn and Attach on the engine, and every request on a container or exec)")
    if rule.action == "hide" and not any(_concerns_container(v, o) for v, o in rule.pairs()):
        return "a hide rule applies only to container lookups (Attach on the engine) and requests on a container"
    certs = [k for k in ("cn", "subject", "san") if k in m]
    if m.get("anonymous") is True and (certs or "uid" in m or "gid" in m):
        return "anonymous = true contradicts its other identity conditions"
    if certs and "transport" in m and "tls" not in m["transport"]:
        return f"{certs[0]} is only known for tls callers, and transport excludes tls"
    if ("uid" in m or "gid" in m) and "transport" in m and not m["transport"] & {"unix", "tls"}:
        return "uid and gid are only known for unix-socket callers"
    if rule.unless is not None and all(cond.implies(k, v, m.get(k)) for k, v in rule.unless.items()):
        return "its unless table holds whenever its match does"
    return None


def _warnings(rules: list[Rule], path: str) -> list[str]:
    out: list[str] = []
    for j, rule in enumerate(rules):
        why = _never(rule)
        if why is not None:
            out.append(f'{path}:{rule.line}: rule "{rule.name}" can never match: {why}')
            continue
        for earlier in rules[:j]:
            if earlier.action == "rewrite" or earlier.unless is not None or _never(earlier) is not None:
                continue
            if all(cond.implies(k, v, rule.match.get(k)) for k, v in earlier.match.items()):
                out.append(f'{path}:{rule.line}: rule "{rule.name}" is shadowed by rule "{earlier.name}" '
                           f"(line {earlier.line}), which matches every request it matches")
                break
        else:
            if rule.action == "rewrite" and not any(v == Verb.Spawn for v, _ in rule.pairs()):
                out.append(f'{path}:{rule.line}: rule "{rule.name}" never rewrites anything: '
                           "only Spawn requests have a body to rewrite")
    return out
