"""``Get("containers")`` (the one-request ``docker ps`` list) through a policy that hides
containers: the policy asks downstream once and leaves out what the caller may not look up,
judging each entry by its name and labels when the rules look at nothing else, by a lookup
per entry when they do (spec/LIBSWARM.md 9.2)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import trio

import libchan
import libswarm
from libswarm import Identity, Message, Service, Verb
from libswarm.backends.policy import Policy
from libswarm.backends.simulator import Simulator
from policy_helpers import OWNER_RULES

OWNER = """
default = "allow"
""" + OWNER_RULES

# a hide rule on a setting a ps entry does not tell: the policy must inspect each container
NO_PRIVILEGED_SEEN = OWNER + """
[[rule]]
name = "privileged-hidden"
action = "hide"
match = { verb = "Attach", on = "engine", privileged = true }
"""

ALICE = Identity(transport="tls", cn="alice")
BOB = Identity(transport="tls", cn="bob")


class _Count(Service):
    """Passes every message on, counting the top-level verbs (and Get args) it sees."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    async def run(self, input, output) -> None:
        async with input:
            async for raw in input:
                msg = Message.from_wire(raw)
                self.seen[" ".join([msg.verb.name, *map(str, msg.args[:1])]) if msg.verb == Verb.Get else msg.verb.name] += 1
                await output.send(raw)


async def _engine(nursery, tmp_path, rules: str):
    (tmp_path / "rules.toml").write_text(rules)
    count = _Count()
    in_s, in_r = libchan.pipe()
    out_s, _ = libchan.pipe()
    nursery.start_soon(libswarm.chain, [Policy(str(tmp_path / "rules.toml"), "--audit", str(tmp_path / "a.jsonl")),
                                        count, Simulator()], in_r, out_s)
    return in_s, count


async def _spawn(engine, who: Identity, name: str, **host) -> None:
    body = {"Image": "busybox", "Cmd": ["true"], "name": name, "HostConfig": host}
    await (await libswarm.Client(engine, identity=who).spawn(json.dumps(body))).aclose()


def _ps(raw) -> list[str]:
    return [e["Names"][0] for e in json.loads(raw)]


async def test_the_list_is_fetched_once_and_filtered_by_labels(tmp_path, nursery):
    engine, count = await _engine(nursery, tmp_path, OWNER)
    with trio.fail_after(20):
        await _spawn(engine, ALICE, "web")
        await _spawn(engine, ALICE, "db")
        await _spawn(engine, BOB, "web")
        count.seen.clear()
        alice = libswarm.Client(engine, identity=ALICE)
        assert sorted(_ps(await alice.get("containers"))) == ["/alice-db", "/alice-web"]
        assert count.seen == Counter({"Get containers": 1})  # no Ls, no lookup per container
        assert _ps(await libswarm.Client(engine, identity=BOB).get("containers")) == ["/bob-web"]
        assert _ps(await libswarm.Client(engine).get("containers")) == []
        # the same containers as the long way round (Ls, filtered by lookups)
        assert sorted(await alice.ls()) == ["alice-db", "alice-web"]


async def test_rules_on_other_settings_look_each_container_up(tmp_path, nursery):
    engine, count = await _engine(nursery, tmp_path, NO_PRIVILEGED_SEEN)
    with trio.fail_after(20):
        await _spawn(engine, ALICE, "web")
        await _spawn(engine, ALICE, "root", Privileged=True)
        await _spawn(engine, BOB, "web")
        count.seen.clear()
        alice = libswarm.Client(engine, identity=ALICE)
        assert _ps(await alice.get("containers")) == ["/alice-web"]
        assert count.seen["Get containers"] == 1 and count.seen["Attach"] == 3  # each one inspected
        assert await alice.ls() == ["alice-web"]


@pytest.mark.parametrize("rules", [OWNER, NO_PRIVILEGED_SEEN])
async def test_a_broken_answer_downstream_is_an_error(tmp_path, nursery, rules):
    """An engine whose list is not JSON: an Error, never an unfiltered answer."""
    (tmp_path / "rules.toml").write_text(rules)
    server = libswarm.Server("broken")

    async def get(*args):
        return "not json" if args == ("containers",) else "{}"

    server.on_get(get)
    in_s, in_r = libchan.pipe()
    out_s, out_r = libchan.pipe()
    nursery.start_soon(libswarm.chain, [Policy(str(tmp_path / "rules.toml"), "--audit", str(tmp_path / "a.jsonl"))],
                       in_r, out_s)
    nursery.start_soon(server.serve, out_r)
    with trio.fail_after(20), pytest.raises(libswarm.RemoteError, match="not a JSON list"):
        await libswarm.Client(in_s, identity=ALICE).get("containers")


# -- docker events ---------------------------------------------------------------------------


async def _events(engine, who: Identity | None) -> list[tuple[str, str]]:
    """``(name, action)`` of the kept container events up to now, as ``who`` may see them."""
    import time

    out = await libswarm.Client(engine, identity=who).watch("events", "since=0", f"until={time.time():.6f}")
    return [(json.loads(m.args[0])["Actor"]["Attributes"]["name"], json.loads(m.args[0])["Action"])
            async for m in out if m.verb == Verb.Set]


@pytest.mark.parametrize("rules", [OWNER, NO_PRIVILEGED_SEEN], ids=["labels", "lookups"])
async def test_events_show_only_visible_containers(tmp_path, nursery, rules):
    engine, _ = await _engine(nursery, tmp_path, rules)
    with trio.fail_after(20):
        await _spawn(engine, BOB, "web")
        await _spawn(engine, ALICE, "web")
        await _spawn(engine, ALICE, "root", Privileged=True)
        mine = {"alice-web"} | ({"alice-root"} if rules == OWNER else set())
        assert {name for name, _ in await _events(engine, ALICE)} == mine
        assert {name for name, _ in await _events(engine, BOB)} == {"bob-web"}
        assert await _events(engine, None) == []


async def test_live_events_of_hidden_containers_are_left_out(tmp_path, nursery):
    engine, _ = await _engine(nursery, tmp_path, OWNER)
    with trio.fail_after(20):
        out = await libswarm.Client(engine, identity=ALICE).watch("events")
        await _spawn(engine, BOB, "web")  # before alice's: had it been let through, it would come first
        await _spawn(engine, ALICE, "web")
        first = json.loads((await out.receive()).args[0])
        assert (first["Actor"]["Attributes"]["name"], first["Action"]) == ("alice-web", "create")
        await out.aclose()
