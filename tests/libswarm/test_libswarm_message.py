"""The message model and its encoding, alone and through both libchan profiles."""

from __future__ import annotations

import pytest
import trio

import libchan
import libswarm
from libswarm import Message, Verb
from helpers import session_pair

NAMES = ["Ack", "Attach", "Connect", "Error", "File", "Get", "Log", "Ls", "Set", "Spawn", "Start", "Stop", "Watch"]


def test_verb_numbers_and_names():
    assert [v.name for v in Verb] == NAMES
    assert [int(v) for v in Verb] == list(range(13))
    assert str(Verb.Watch) == "Watch"  # the original's String() gave "" here
    assert Verb.parse(12) is Verb.Watch
    assert Verb.parse("watch") is Verb.Watch and Verb.parse("WATCH") is Verb.Watch
    for bad in (13, -1, "", "Nope", True, None, 1.0):
        with pytest.raises(ValueError):
            Verb.parse(bad)


def test_wire_shape_and_round_trip():
    s, _ = libchan.pipe()
    a, _b = libchan.stream_pipe()
    m = Message(Verb.Spawn, ["{}", b"\x00bin"], s, a)
    wire = m.to_wire()
    assert wire == {"Verb": 9, "Args": ["{}", b"\x00bin"], "Ret": s, "Att": a}
    assert Message.from_wire(wire) == m
    assert Message(Verb.Ls).to_wire() == {"Verb": 7, "Args": [], "Ret": None, "Att": None}
    # tolerant decoding: verb names, missing fields, extra keys
    assert Message.from_wire({"Verb": "ls"}) == Message(Verb.Ls)
    assert Message.from_wire({"Verb": 6, "Args": None, "x": 1}) == Message(Verb.Log)


@pytest.mark.parametrize(
    "bad",
    [None, [], {"Args": []}, {"Verb": 99}, {"Verb": "nope"}, {"Verb": 1, "Args": "x"},
     {"Verb": 1, "Args": [1]}, {"Verb": 1, "Ret": "x"}, {"Verb": 1, "Att": 3}],
)
def test_bad_messages(bad):
    with pytest.raises(libswarm.MessageError):
        Message.from_wire(bad)


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_every_verb_round_trips_through_a_session(profile, tmp_path):
    """All 13 verbs, str and bytes args, a Ret and an Att cross a session and work."""
    async with session_pair("memory", tmp_path, profile=profile) as (cli, srv):
        sender = await cli.open_sender()
        receiver = await srv.accept_receiver()
        for verb in Verb:
            ret, replies = libchan.pipe()
            mine, theirs = libchan.stream_pipe()
            await sender.send(Message(verb, ("text", b"\xff\x00"), ret, theirs).to_wire())
            got = Message.from_wire(await receiver.receive())
            assert got.verb is verb and got.args == ("text", b"\xff\x00")
            await got.ret.send(Message(Verb.Ack, (verb.name,)).to_wire())
            await got.ret.aclose()
            assert Message.from_wire(await replies.receive()) == Message(Verb.Ack, (verb.name,))
            with pytest.raises(trio.EndOfChannel):
                await replies.receive()
            await got.att.send_all(b"ping")
            assert await mine.receive_some() == b"ping"
            await mine.aclose()
            await got.att.aclose()
        # a message without ret/att crosses as nulls
        await sender.send(Message(Verb.Log, ("x",)).to_wire())
        assert Message.from_wire(await receiver.receive()) == Message(Verb.Log, ("x",))
