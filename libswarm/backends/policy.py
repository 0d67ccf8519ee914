"""``policy``: inspect, rewrite and refuse the requests passing through, by rules.

Args: ``RULES_FILE [--audit FILE]``. ``RULES_FILE`` is TOML (spec/LIBSWARM.md 9); a file
that cannot be used is refused with ``FILE:LINE: reason`` (swarmd exits 1), and rules that can
never match or are shadowed by an earlier rule are reported as ``policy: warning: ...`` lines
on stderr. ``--audit FILE`` appends one JSON line per decision to FILE (default: stderr;
``--audit -`` is stderr too): time, identity, verb, object, target, rule, action.

    swarmd 'dockerserver unix:///run/app.sock' 'policy rules.toml' 'dockerclient unix:///var/run/docker.sock'

Sits anywhere in a chain. Every request arriving on its input is decided by the rules, with
the caller's identity (the message's ``Identity``, set by the entry point: ``dockerserver``'s
TLS client certificate or unix peer credentials; none: anonymous), its verb and args, and for
``Spawn`` the create body (privileged, capabilities, devices, bind mounts and volumes by host
path, namespaces, user, read-only root, security options, image, labels, name):

* allowed: passed on to the output (the next stage); a ``Spawn`` goes on *rewritten* when
  ``rewrite`` rules matched (labels added, read-only root forced, capabilities dropped, a
  user set, the name pinned to a prefix);
* denied: answered ``Error("policy: REASON (rule NAME)")``, which ``dockerserver`` gives the
  docker CLI as a 403 (``Error response from daemon: policy: ...``);
* hidden: a container that a ``hide`` rule matches is left out of ``Ls`` and of the
  one-request ``Get("containers")`` list (asked downstream once, each entry judged by its
  name and labels when the rules need no more), and from ``docker events``
  (``Watch("events")``), and its lookup answers ``No such container: NAME`` (404), so each
  caller sees only its own containers.

The container and exec objects it hands out (``Spawn``, ``Attach(name)``, exec ``Spawn`` on a
container) are its own: every later request on them (start, stop, kill, rm, logs, attach,
wait, exec) is decided too, as the identity that obtained them, with that container's
settings (so ``exec`` as root can be refused). ``kill -HUP`` reads the rules again; a file
with an error is refused and the old rules stay in force; connections are not touched.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from typing import Any, Callable

import trio

import libchan

from .._client import Client
from .._errors import RemoteError, UsageError
from .._identity import ANONYMOUS, Identity
from .._message import Message
from .._server import Request, Server
from .._service import Service
from .._verbs import Verb
from ._policy.audit import Audit
from ._policy.conditions import Query
from ._policy.facts import Facts, facts_of_create, facts_of_inspect
from ._policy.rules import Decision, RulesError, RuleSet, load_rules

__all__ = ["Policy", "RulesError"]

_ONE_WAY = (Verb.Log, Verb.Error, Verb.Set, Verb.Ack)
_PS_FACTS = frozenset({"name", "labels"})
_EVENT_ATTRIBUTES = frozenset({"name", "image", "exitCode", "signal", "execID", "execDuration", "container",
                               "type", "driver", "destination", "read/write", "propagation"})
"""The attributes of a Docker container event that are not the container's labels."""
"""The container keys a ``docker ps`` entry tells as its inspect does (``Names[0]``, ``Labels``)."""
_RELOADERS: list[Callable[[], bool]] = []


def _text(a: Any) -> str:
    return a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)


def _entry_name(e: dict[str, Any]) -> str:
    names = e.get("Names")
    first = names[0] if isinstance(names, list) and names else e.get("Id") or ""
    return str(first).lstrip("/")


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage() -> UsageError:
    return UsageError("policy: usage: policy RULES_FILE [--audit FILE]")


class Policy(Service):
    """The policy stage (see the module docstring)."""

    def __init__(self, *args: str, audit_stream: Any = None, log: Any = None) -> None:
        words = list(args)
        audit_path: str | None = None
        rest: list[str] = []
        while words:
            w = words.pop(0)
            if w == "--audit":
                if not words:
                    raise _usage()
                audit_path = words.pop(0)
            elif w.startswith("--audit="):
                audit_path = w.split("=", 1)[1]
            elif w.startswith("-") and w != "-":
                raise UsageError(f"policy: unknown option {w}; usage: policy RULES_FILE [--audit FILE]")
            else:
                rest.append(w)
        if len(rest) != 1:
            raise _usage()
        self.path = rest[0]
        self.log = log
        self.rules: RuleSet = load_rules(self.path)
        self._warn(self.rules)
        try:
            self.audit = Audit(audit_path, audit_stream)
        except OSError as exc:
            raise UsageError(f"policy: cannot open the audit log {audit_path}: {exc.strerror or exc}") from None
        self.reloads = 0
        self.output: trio.abc.SendChannel[Any] | None = None
        self._nursery: trio.Nursery | None = None

    def _say(self, line: str) -> None:
        print(f"policy: {line}", file=self.log or sys.stderr, flush=True)

    def _warn(self, rules: RuleSet) -> None:
        for w in rules.warnings:
            self._say(f"warning: {w}")

    def reload(self) -> bool:
        """Read the rules file again; keep the old rules if it cannot be used."""
        try:
            rules = load_rules(self.path)
        except RulesError as exc:
            self._say(f"reload refused, the previous rules stay in force: {exc}")
            self.audit.reload(self.path, str(exc))
            return False
        self.rules = rules
        self.reloads += 1
        self._warn(rules)
        self.audit.reopen()
        self.audit.reload(self.path)
        self._say(f"reloaded {self.path} ({len(rules.rules)} rules)")
        return True

    async def run(self, input: trio.abc.ReceiveChannel[Any], output: trio.abc.SendChannel[Any]) -> None:
        self.output = output
        server = Server("policy")
        server.catchall(self._engine_handler(None))
        _RELOADERS.append(self.reload)
        try:
            async with server:
                self._nursery = server.nursery
                server.nursery.start_soon(self._signals)
                await server.serve(input)
        finally:
            _RELOADERS.remove(self.reload)
            self.audit.close()

    async def _signals(self) -> None:
        try:
            with trio.open_signal_receiver(signal.SIGHUP) as signals:
                async for _ in signals:
                    for reload in list(_RELOADERS):
                        reload()
        except RuntimeError:  # not the main thread: no reload by signal (call reload())
            await trio.sleep_forever()

    # -- deciding ------------------------------------------------------------

    def _decide(self, rules: RuleSet, identity: Identity, q: Query) -> Decision:
        d = rules.decide(q)
        self.audit.decision(identity, q, d)
        return d

    @staticmethod
    def _refuse(d: Decision, target: str) -> RemoteError:
        if d.action == "hide" and target:
            return RemoteError(f"No such container: {target}")
        return RemoteError(d.text)

    def _downstream(self, identity: Identity) -> Client:
        assert self.output is not None
        return Client(self.output, identity=identity)

    def _hand_out(self, handler: Callable[[Request], Any], child: Client | None, name: str) -> libchan.PipeSender:
        """A handle whose requests ``handler`` answers; ``child`` is closed when it is."""
        assert self._nursery is not None
        server = Server(name)
        server.catchall(handler)
        s, r = libchan.pipe()

        async def serve() -> None:
            try:
                await server.serve(r)
            finally:
                if child is not None:
                    await child.aclose()

        self._nursery.start_soon(serve)
        return s

    def _engine_handler(self, bound: Identity | None) -> Callable[[Request], Any]:
        async def handle(req: Request) -> None:
            await self._engine(req, bound if bound is not None else (req.identity or ANONYMOUS))
        return handle

    async def _engine(self, req: Request, ident: Identity) -> None:
        rules = self.rules
        msg = req.message
        args = tuple(_text(a) for a in msg.args)
        if req.ret is None and msg.verb in _ONE_WAY:
            assert self.output is not None
            await self.output.send(msg.replace(identity=ident).to_wire())
            return
        if msg.verb == Verb.Spawn:
            await self._spawn(req, rules, ident, args)
        elif msg.verb == Verb.Attach and req.name:
            await self._lookup(req, rules, ident, args)
        else:
            q = Query(msg.verb, "engine", args, ident, target=" ".join(args))
            d = self._decide(rules, ident, q)
            if d.action != "allow":
                raise self._refuse(d, "")
            if msg.verb == Verb.Ls:
                names = await self._downstream(ident).ls(*msg.args)
                await req.set(*[n for n, ok in zip(names, await self._visible(rules, ident, names)) if ok])
            elif msg.verb == Verb.Get and args[:1] == ("containers",) and self._filters_lookups(rules):
                # Every container's ps entry in one answer (spec/LIBSWARM.md 6.8): the list
                # downstream once, less the containers this caller may not look up.
                await req.set(json.dumps(await self._containers(rules, ident, msg.args)))
            elif msg.verb == Verb.Watch and args[:1] in (("events",), ()) and self._filters_lookups(rules):
                await self._watch(req, rules, ident)
            elif msg.verb == Verb.Attach:  # the engine itself: a handle on this policy, as this caller
                await req.ack(self._hand_out(self._engine_handler(ident), None, "policy engine"))
            else:
                assert self.output is not None
                await req.forward(self.output, msg.replace(identity=ident))

    async def _spawn(self, req: Request, rules: RuleSet, ident: Identity, args: tuple[str, ...]) -> None:
        body: dict[str, Any] | None = None
        if len(args) == 1:
            try:
                parsed = json.loads(args[0])
                body = parsed if isinstance(parsed, dict) else None
            except ValueError:
                body = None
        q = Query(Verb.Spawn, "engine", args, ident, facts=facts_of_create(body or {}), body=body,
                  target=str((body or {}).get("name") or ""))
        d = self._decide(rules, ident, q)
        if d.action != "allow":
            raise self._refuse(d, "")
        new_args = (json.dumps(q.body),) if d.rewrites and q.body is not None else req.message.args
        child = await self._downstream(ident).spawn(*new_args)
        proxy = _Object(self, child, ident, "container", q.target, None)
        await req.ack(self._hand_out(proxy.handle, child, f"policy container {q.target}"))

    async def _facts(self, child: Client, keep: "_Object | None" = None) -> Facts:
        raw = await child.get()
        data = json.loads(raw)
        if keep is not None:
            keep.fresh_inspect = raw
        return facts_of_inspect(data if isinstance(data, dict) else {})

    async def _lookup(self, req: Request, rules: RuleSet, ident: Identity, args: tuple[str, ...]) -> None:
        name = req.name
        q = Query(Verb.Attach, "engine", args, ident, target=name)
        down = self._downstream(ident)
        child: Client | None = None
        keep = _Object(self, down, ident, "container", name, None)
        try:
            if rules.needs_facts(Verb.Attach, "engine"):
                child = await down.child(name)
                q.facts = await self._facts(child, keep)
            d = self._decide(rules, ident, q)
            if d.action != "allow":
                raise self._refuse(d, name)
            if child is None:
                child = await down.child(name)
        except BaseException:
            if child is not None:
                await child.aclose()
            raise
        proxy = _Object(self, child, ident, "container", name, q.facts)
        proxy.fresh_inspect = keep.fresh_inspect
        await req.ack(self._hand_out(proxy.handle, child, f"policy container {name}"))

    @staticmethod
    def _filters_lookups(rules: RuleSet) -> bool:
        """Some container may be hidden from (or refused to) some caller."""
        return rules.default != "allow" or any(
            r.action in ("deny", "hide") and (Verb.Attach, "engine") in r.pairs() for r in rules.rules)

    async def _containers(self, rules: RuleSet, ident: Identity, args: tuple[Any, ...]) -> list[Any]:
        """``Get("containers")`` downstream, filtered as ``Ls`` is: an entry is kept when this
        caller may look its container up. Judged from the entry itself (its name and labels)
        when the rules look at nothing else, else by a lookup per entry as ``Ls`` does."""
        raw = await self._downstream(ident).get(*args)
        try:
            entries = json.loads(raw)
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            raise RemoteError("policy: Get(containers): the engine's answer is not a JSON list")
        entries = [e for e in entries if isinstance(e, dict)]
        names = [_entry_name(e) for e in entries]
        if rules.fact_keys(Verb.Attach, "engine") <= _PS_FACTS:
            keep = []
            for e, name in zip(entries, names):
                labels = e.get("Labels")
                facts = Facts(name=name, labels={str(k): str(v) for k, v in labels.items()}
                              if isinstance(labels, dict) else {})
                q = Query(Verb.Attach, "engine", (name,), ident, target=name, facts=facts)
                keep.append(rules.decide(q).action == "allow")
        else:
            keep = await self._visible(rules, ident, names)
        return [e for e, ok in zip(entries, keep) if ok]

    async def _watch(self, req: Request, rules: RuleSet, ident: Identity) -> None:
        """``Watch("events", ...)`` (Docker's events) or ``Watch()`` (changes with the container's
        inspect) downstream, passing on only what concerns containers this caller may look up."""
        out = await self._downstream(ident).watch(*req.message.args)
        await req.ack()
        seen: dict[str, bool] = {}
        async with out:
            async for m in out:
                if m.verb == Verb.Set and m.args:
                    ok = await (self._event_visible(rules, ident, m.args[0], seen) if req.message.args
                                else self._change_visible(rules, ident, m.args))
                    if not ok:
                        continue
                await req.send(m.replace(ret=None, att=None))

    def _judge(self, rules: RuleSet, ident: Identity, name: str, facts: Facts | None) -> bool:
        q = Query(Verb.Attach, "engine", (name,), ident, target=name, facts=facts)
        return rules.decide(q).action == "allow"

    async def _change_visible(self, rules: RuleSet, ident: Identity, args: tuple[Any, ...]) -> bool:
        """A ``Watch()`` change ``Set(event, inspect_json)``: judged by the inspect it carries."""
        try:
            data = json.loads(args[1]) if len(args) > 1 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return False
        facts = facts_of_inspect(data)
        return self._judge(rules, ident, facts.name, facts)

    async def _event_visible(self, rules: RuleSet, ident: Identity, raw: Any, seen: dict[str, bool]) -> bool:
        """A Docker event: one about a container (``Type`` container, or a network event naming
        a ``container``) is shown when this caller may look that container up, judged from the
        event's attributes (its name and labels) when the rules need no more, else by a lookup
        of the container's id (remembered for the stream: a container already gone when its
        first event is judged is not shown). Other events (images, networks, volumes) are shown."""
        try:
            ev = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(ev, dict):
            return False
        actor = _map(ev.get("Actor"))
        attrs = _map(actor.get("Attributes"))
        kind = str(ev.get("Type") or ("container" if ev.get("id") else ""))
        if kind == "container":
            cid = str(actor.get("ID") or ev.get("id") or "")
        elif attrs.get("container"):
            cid = str(attrs["container"])
        else:
            return True
        if kind == "container" and rules.fact_keys(Verb.Attach, "engine") <= _PS_FACTS:
            name = str(attrs.get("name") or cid)
            labels = {str(k): str(v) for k, v in attrs.items() if k not in _EVENT_ATTRIBUTES}
            return self._judge(rules, ident, name, Facts(name=name, labels=labels))
        if cid not in seen:
            seen[cid] = (await self._visible(rules, ident, [cid]))[0]
        return seen[cid]

    async def _visible(self, rules: RuleSet, ident: Identity, names: list[Any]) -> list[bool]:
        """For each listed name, whether ``ident`` may look it up."""
        if not self._filters_lookups(rules):
            return [True] * len(names)
        out = [False] * len(names)
        need = rules.needs_facts(Verb.Attach, "engine")
        down = self._downstream(ident)
        limit = trio.CapacityLimiter(16)

        async def one(i: int, name: str) -> None:
            async with limit:
                q = Query(Verb.Attach, "engine", (name,), ident, target=name)
                if need:
                    try:
                        async with await down.child(name) as c:
                            q.facts = await self._facts(c)
                    except Exception:
                        return  # gone meanwhile, or not a container: not shown
                out[i] = rules.decide(q).action == "allow"

        async with trio.open_nursery() as nursery:
            for i, n in enumerate(names):
                nursery.start_soon(one, i, _text(n))
        return out


class _Object:
    """A container or exec object handed out by the policy, bound to the identity that got it."""

    def __init__(self, policy: Policy, child: Client, ident: Identity, kind: str, name: str,
                 facts: Facts | None) -> None:
        self.policy, self.child, self.ident, self.kind, self.name = policy, child, ident, kind, name
        self._facts = facts
        self.fresh_inspect: Any = None
        """The inspect JSON the lookup just fetched on this handle: it answers the first
        ``Get()`` when no other request came first (saves the engine a second inspect)."""

    async def facts(self) -> Facts:
        if self._facts is None:
            self._facts = await self.policy._facts(self.child)
            if not self.name:
                self.name = self._facts.name
        return self._facts

    async def handle(self, req: Request) -> None:
        policy, rules, ident = self.policy, self.policy.rules, self.ident
        msg = req.message
        args = tuple(_text(a) for a in msg.args)
        q = Query(msg.verb, self.kind, args, ident, target=self.name)
        if rules.needs_facts(msg.verb, self.kind) or (not self.name and self.kind == "container"):
            q.facts = await self.facts()
            q.target = self.name
        exec_body: dict[str, Any] | None = None
        if msg.verb == Verb.Spawn and self.kind == "container" and len(args) == 1:
            try:
                parsed = json.loads(args[0])
                exec_body = parsed if isinstance(parsed, dict) else None
            except ValueError:
                exec_body = None
            if exec_body is not None and exec_body.get("User") and q.facts is not None:
                q.facts = dataclasses.replace(q.facts, user=str(exec_body["User"]))
            q.body = exec_body
        d = policy._decide(rules, ident, q)
        if d.action != "allow":
            raise policy._refuse(d, self.name if self.kind == "container" else "")
        fresh, self.fresh_inspect = self.fresh_inspect, None
        if fresh is not None and msg.verb == Verb.Get and not msg.args:
            await req.set(fresh)
            return
        if msg.verb == Verb.Spawn:
            new_args = (json.dumps(q.body),) if d.rewrites and q.body is not None else msg.args
            handle = await self.child.spawn(*new_args)
            exec_facts = q.facts
            if exec_facts is None and any(rules.needs_facts(v, "exec") for v in Verb):
                exec_facts = await self.facts()
                user = str((q.body or {}).get("User") or "")
                exec_facts = dataclasses.replace(exec_facts, user=user) if user else exec_facts
            obj = _Object(policy, handle, ident, "exec", self.name, exec_facts)
            await req.ack(policy._hand_out(obj.handle, handle, f"policy exec in {self.name}"))
            return
        await req.forward(self.child.sender, Message(msg.verb, msg.args, msg.ret, msg.att, ident))
