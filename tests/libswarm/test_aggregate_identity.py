"""The caller's identity crosses an ``aggregate``: the requests it makes to its children on a
caller's behalf carry that caller's ``Identity``, so a policy *behind* it (here: the children
are policies, whose output is the aggregate's, i.e. the simulator) decides as that caller. A
handle the aggregate gives out is the identity of whoever obtained it (spec/LIBSWARM.md 9.6)."""

from __future__ import annotations

import json

import pytest
import trio

import libchan
import libswarm
from libswarm import Identity
from libswarm.backends.aggregate import Aggregate
from libswarm.backends.policy import Policy
from libswarm.backends.simulator import Simulator
from policy_helpers import OWNER_RULES

RULES = """
default = "allow"
""" + OWNER_RULES

ALICE = Identity(transport="tls", cn="alice")
BOB = Identity(transport="tls", cn="bob")


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


@pytest.fixture
async def engine(tmp_path, nursery):
    """``aggregate 'policy' -> simulator``: the send end of the chain."""
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    audit = tmp_path / "audit.jsonl"
    in_s, in_r = libchan.pipe()
    out_s, _ = libchan.pipe()
    aggregate = Aggregate(Policy(str(rules), "--audit", str(audit)))
    nursery.start_soon(libswarm.chain, [aggregate, Simulator()], in_r, out_s)
    yield in_s
    await in_s.aclose()


async def test_a_policy_behind_aggregate_sees_the_caller(engine):
    with trio.fail_after(20):
        alice, bob, anon = (libswarm.Client(engine, identity=i) for i in (ALICE, BOB, None))
        web = await alice.spawn(json.dumps({"Image": "busybox", "Cmd": ["true"], "name": "web"}))
        assert json.loads(await web.get())["Name"] == "/alice-web"
        await web.aclose()
        assert _names(await alice.ls()) == ["alice-web"]
        assert _names(await bob.ls()) == [] and _names(await anon.ls()) == []
        ps = json.loads(await alice.get("containers"))
        assert [e["Names"] for e in ps] == [["/alice-web"]]
        assert json.loads(await bob.get("containers")) == []
        with pytest.raises(libswarm.RemoteError, match="(?i)no such container: alice-web"):
            await bob.child("alice-web")
        assert json.loads(await (await alice.child("alice-web")).get())["Name"] == "/alice-web"


async def test_a_handle_from_aggregate_is_its_obtainers(engine):
    with trio.fail_after(20):
        alice = libswarm.Client(engine, identity=ALICE)
        web = await alice.spawn(json.dumps({"Image": "busybox", "Cmd": ["true"], "name": "web"}))
        await web.aclose()
        # alice's handle on the aggregate itself lists what alice may see
        mine = (await alice.attach("")).handle
        assert mine is not None and _names(await mine.ls()) == ["alice-web"]
        # bob's handle stays bob's, whatever identity its messages state
        theirs = (await libswarm.Client(engine, identity=BOB).attach("")).handle
        assert theirs is not None
        forged = libswarm.Client(theirs.sender, identity=ALICE)
        assert _names(await forged.ls()) == []
        ret, replies = libchan.pipe()
        await theirs.sender.send(libswarm.Message(libswarm.Verb.Ls, (), ret, None, ALICE).to_wire())
        answer = libswarm.Message.from_wire(await replies.receive())
        assert answer.verb == libswarm.Verb.Set and answer.args == ()
