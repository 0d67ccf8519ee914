"""A message that arrives in a read its own consumer made for it (Link.read_for) goes
straight to that consumer: it is never held, so there is nothing to count, charge or
release for it (NetStream._on_data, _take). If it stays in the inbox after all (a local
pipe's reader that hands it to the forwarder), it is held from then on like any other
(NetStream._account_direct). Either way the figures end exact and nothing is lost."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import libchan
from helpers import session_pair

PROFILES = ["h2", "spdy"]


async def _server_channel(cli, srv):
    """A channel client -> server, its first message read: (sender, receiver, its NetStream)."""
    sender = await cli.open_sender()
    await sender.send(b"first")
    receiver = await srv.accept_receiver()
    assert await receiver.receive() == b"first"
    return sender, receiver, receiver._ns


def _hand_over(ns, value: bytes) -> int:
    """What Link.read_for does for a read that brought ``ns`` one message: on_data while
    the link is reading for ``ns``. Returns the message's wire size."""
    wire = ns.session.short_bytes_heads[len(value)] + value
    link = ns.link
    link.reading_for = ns
    try:
        ns.on_data(wire)
    finally:
        link.reading_for = None
    ns.owed -= len(wire)  # (no such DATA came: nothing to acknowledge)
    return len(wire)


@pytest.mark.fast_paths  # (the one-message lane is a fast path)
@pytest.mark.parametrize("profile", PROFILES)
async def test_direct_handover_is_never_held(tmp_path, profile):
    """The message is in the inbox for its consumer's next take only: held, the link's
    unread and the server's account never count it, and the take changes none of them."""
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            _sender, _receiver, ns = await _server_channel(cli, srv)
            link, account = ns.link, ns.account
            used = account.used
            _hand_over(ns, b"x" * 100)
            assert ns.held == 0 and link.unread == 0 and account.used == used
            assert ns._take() == b"x" * 100
            assert not ns.inbox and ns.held == 0 and ns.released == 0 and link.unread == 0
            assert account.used == used and ns not in link.releasing


@pytest.mark.fast_paths
@pytest.mark.parametrize("profile", PROFILES)
async def test_direct_handover_left_in_the_inbox_is_held(tmp_path, profile):
    """A handed-over message that stays in the inbox (_account_direct) is held from then on,
    as if it had come the usual way; its take then releases it."""
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            _sender, _receiver, ns = await _server_channel(cli, srv)
            link, account = ns.link, ns.account
            used = account.used
            wire = _hand_over(ns, b"y" * 50)
            ns._account_direct()
            assert ns.held == wire and link.unread == wire and account.used == used + wire
            ns._account_direct()  # (once only)
            assert ns.held == wire and account.used == used + wire
            assert ns._take() == b"y" * 50
            assert ns.held == 0 and link.unread == 0 and account.used == used


@pytest.mark.parametrize("profile", PROFILES)
async def test_direct_handover_round_trips_keep_exact_figures(tmp_path, profile):
    """Round trips where both ends' tasks read the connection themselves (the server's
    channel read with receive, the client's replies through a local pipe): every echo
    arrives in order, and afterwards nothing is held or charged on either side."""
    with trio.fail_after(30):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            sender, receiver, ns = await _server_channel(cli, srv)
            reply, replies = libchan.pipe()
            await sender.send({"reply": reply})
            back = (await receiver.receive())["reply"]
            used = ns.account.used

            async def echo() -> None:
                async for msg in receiver:
                    await back.send(msg)
                await back.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                for i in range(300):
                    await sender.send(b"%d" % i)
                    assert await replies.receive() == b"%d" % i
                await sender.aclose()
                with pytest.raises(trio.EndOfChannel):
                    await replies.receive()
            for link in (ns.link, sender._ns.link):
                assert all(s.held == 0 and s.released == 0 for s in link.streams.values())
                assert link.unread == 0
            assert ns.account.used <= used


@pytest.mark.parametrize("profile", PROFILES)
async def test_direct_handover_message_and_end_in_one_read(tmp_path, profile):
    """The last message and the end of a channel often come in one read: read by a local
    pipe's receiver for itself, the message is delivered, then the end, every time."""
    with trio.fail_after(30):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            sender, receiver, _ns = await _server_channel(cli, srv)
            for i in range(30):
                reply, replies = libchan.pipe()
                await sender.send({"reply": reply})
                back = (await receiver.receive())["reply"]
                got = []

                async def collect() -> None:
                    async for msg in replies:
                        got.append(msg)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(collect)
                    await back.send(b"hello")  # (then the pipe's reader waits, reading for itself)
                    await trio.testing.wait_all_tasks_blocked(0.01)
                    assert got == [b"hello"]
                    await back.send(b"last %d" % i)
                    await back.aclose()  # (END_STREAM right behind the message)
                assert got == [b"hello", b"last %d" % i]
