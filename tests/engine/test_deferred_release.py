"""Bytes a reader took are accounted for a run of takes at once (NetStream._take), never
past a limit: the window is acknowledged, a paused Go-profile connection resumes (for a
task that waits already, too), the connection's window is withheld and the budget ends a
connection at exactly the take where counting every message at once would have done it."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import libchan
from libchan.engine.budget import Budget
from helpers import session_pair

WINDOW = 65536
SIZE = 1000


async def _all_arrived(ns, count: int) -> int:
    """Wait until ``ns``'s inbox holds ``count`` items; their wire size (all equal)."""
    with trio.fail_after(5):
        while len(ns.inbox) < 2 * count:
            await trio.sleep(0.01)
    wires = set(list(ns.inbox)[1::2])
    assert len(wires) == 1, wires
    return wires.pop()


@asynccontextmanager
async def _waiting(tmp_path, config: libchan.Config, count: int, size: int):
    """A session pair whose server channel holds ``count`` messages of ``size`` bytes,
    unread: yields (its Receiver, its NetStream, the wire size of one message)."""
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, config) as (cli, srv):
            sender = await cli.open_sender()
            for _ in range(count):
                await sender.send(b"x" * size)
            receiver = await srv.accept_receiver()
            ns = receiver._ns
            yield receiver, ns, await _all_arrived(ns, count)


def _first_take_at_or_under(count: int, wire: int, limit: int) -> int:
    """How many takes of ``count`` items of ``wire`` bytes bring what is held to ``limit``."""
    return next(k for k in range(count + 1) if (count - k) * wire <= limit)


@pytest.mark.fast_paths  # (with fast paths off every take is accounted for at once)
async def test_deferred_release_defers_and_counts_stay_consistent(tmp_path):
    """Takes from a full inbox leave their bytes in ``held`` (as ``released``) and in the
    link's ``unread``, consistently, and the last take (inbox empty) accounts for all."""
    async with _waiting(tmp_path, libchan.Config(stream_window=WINDOW), 20, 100) as (receiver, ns, wire):
        link = ns.link
        account = ns.account
        assert account is not None
        used = account.used
        for i in range(1, 20):
            await receiver.receive()
            assert ns.held == 19 * wire  # (the first take was accounted for: data had come)
            assert ns.released == (i - 1) * wire  # (the others not yet)
            assert link.unread == sum(s.held for s in link.streams.values())
        assert account.used == used - wire
        assert ns in link.releasing
        await receiver.receive()  # the last one: the inbox is empty
        assert ns.released == 0 and ns.held == 0 and link.unread == 0
        assert ns not in link.releasing
        assert account.used == used - 20 * wire


async def test_deferred_release_off_accounts_every_take(tmp_path):
    """With fast paths off, every take is accounted for as it happens."""
    config = libchan.Config(stream_window=WINDOW, fast_paths=False)
    async with _waiting(tmp_path, config, 20, 100) as (receiver, ns, wire):
        for i in range(1, 21):
            await receiver.receive()
            assert ns.released == 0 and ns.held == (20 - i) * wire


async def test_deferred_release_window_acknowledged_at_the_exact_take(tmp_path):
    """A stream holding more than half its window gets its WINDOW_UPDATE at the take that
    brings what it holds to half the window, not a run of takes later."""
    count = 60
    async with _waiting(tmp_path, libchan.Config(stream_window=WINDOW), count, SIZE) as (receiver, ns, wire):
        half = WINDOW // 2
        assert count * wire > half and ns.owed >= WINDOW // 4  # (owed, not acknowledged)
        exact = _first_take_at_or_under(count, wire, half)
        for _ in range(exact - 1):
            await receiver.receive()
        assert ns.owed >= WINDOW // 4  # one take short: still owed
        await receiver.receive()
        assert ns.owed == 0  # acknowledged at this take
        assert ns.held - ns.released == (count - exact) * wire


@asynccontextmanager
async def _go_paused(tmp_path):
    """Go profile: a session pair whose server channel ``unread`` holds more than its
    window (the connection's reading paused) and whose channel ``waiting`` has a message
    ("after") held back in the socket: yields (unread, waiting, unread's NetStream, the
    count of messages it holds, their wire size)."""
    config = libchan.Config(stream_window=WINDOW)
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, config=config, profile="spdy") as (cli, srv):
            flood, other = await cli.open_sender(), await cli.open_sender()
            await flood.send("first")
            await other.send("first")
            unread = await srv.accept_receiver()
            waiting = await srv.accept_receiver()
            assert await unread.receive() == "first" and await waiting.receive() == "first"
            ns = unread._ns
            for _ in range(90):
                await flood.send(b"x" * SIZE)
            with trio.fail_after(5):
                while not ns.link.streams_over:
                    await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked(0.05)  # (reading paused)
            await other.send("after")  # (now: not in the read that paused it)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert not waiting._ns.inbox  # (not read)
            count = len(ns.inbox) // 2
            yield unread, waiting, ns, count, await _all_arrived(ns, count)


@pytest.mark.fast_paths  # (a waiting task reads the connection itself only on the fast paths)
async def test_deferred_release_go_profile_resumes_reading_at_the_exact_take(tmp_path):
    """Go profile (no flow control): while a stream holds more than its window the
    connection is not read; a task waiting for another stream reads it again as soon as
    the application read the first down to its window -- at that very take."""
    async with _go_paused(tmp_path) as (unread, waiting, ns, count, wire):
        link = ns.link
        assert count * wire > WINDOW
        exact = _first_take_at_or_under(count, wire, WINDOW)  # (at least 1: reading paused)
        for _ in range(exact - 1):
            await unread.receive()
        with trio.move_on_after(0.3):
            await waiting.receive()
            pytest.fail("the connection was read while the stream held more than its window")
        assert link.streams_over
        await unread.receive()  # this take brings it to its window
        assert not link.streams_over
        with trio.fail_after(5):
            assert await waiting.receive() == "after"


@pytest.mark.fast_paths  # (takes defer only on the fast paths)
async def test_deferred_release_exact_while_the_connection_window_is_withheld(tmp_path):
    """Bytes a reader took before the server started withholding the connection's window
    are accounted for when it decides to (on exact figures), though their stream got no
    data since; and no take defers while it withholds (its relief is judged per take)."""
    MiB = 2**20
    config = libchan.Config(connection_buffer=MiB, server_buffer=8 * MiB, stream_window=4 * MiB)
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, config) as (cli, srv):
            first, second = await cli.open_sender(), await cli.open_sender()
            for _ in range(40):
                await first.send(b"x" * SIZE)
            taken_from = await srv.accept_receiver()
            ns = taken_from._ns
            await _all_arrived(ns, 40)
            account, link = ns.account, ns.link
            for _ in range(10):
                await taken_from.receive()
            assert ns.released > 0 and ns in link.releasing  # (deferred)
            assert not account.withholding
            with trio.move_on_after(1):  # the other stream, until the window is withheld
                while True:
                    await second.send(b"x" * SIZE)
            assert account.withholding
            assert ns.released == 0 and not link.releasing  # accounted for when it decided
            while len(ns.inbox):
                await taken_from.receive()
                assert ns.released == 0 or not account.withholding  # exact while withholding
            flooded = await srv.accept_receiver()
            with trio.fail_after(5):
                while account.withholding:
                    await flooded.receive()
                    assert flooded._ns.released == 0 or not account.withholding
            assert account.used < account.soft


def _pending(account, taken: int) -> list[int]:
    """``account``'s exact(): ``taken`` bytes (already charged) are released then."""
    left = [taken]

    def exact() -> None:
        n, left[0] = left[0], 0
        if n:
            account.charge(-n)

    account.exact = exact
    return left


def test_deferred_release_budget_judges_its_own_account_exactly():
    """Budget.check asks the account over its limit for its exact figures first: bytes
    its readers took, not accounted for yet, do not end the connection."""
    budget = Budget(server_buffer=4096, per_connection=1024, connection_window=65535, max_connections=4)
    account = budget.open_account("a")
    assert account is not None
    ended: list[str] = []
    account.on_over = ended.append
    left = _pending(account, 600)
    account.charge(1100)  # over 1024, but 600 of it were taken: it holds 500
    assert ended == [] and account.used == 500 and left == [0]
    account.charge(600)  # 1100 now, exactly: over
    assert len(ended) == 1 and "connection_buffer" in ended[0], ended


def test_deferred_release_budget_judges_every_account_exactly():
    """Over the server's total, every account gives its exact figures before the
    greediest is chosen: one that only seems greediest is not ended."""
    budget = Budget(server_buffer=4096, per_connection=2048, connection_window=65535, max_connections=4)
    a, b = budget.open_account("a"), budget.open_account("b")
    assert a is not None and b is not None
    ended: list[str] = []
    a.on_over = b.on_over = ended.append
    left = _pending(b, 900)
    b.charge(1500)
    a.charge(1000)  # 2500 > 2048: b seems to hold the most, but holds 600
    assert ended == [] and budget.used == 1600 and left == [0]
    b.charge(900)  # 2500 again, exactly: b holds the most
    assert len(ended) == 1 and "holds the most: 1500" in ended[0], ended


async def test_deferred_release_go_profile_resumes_for_a_task_already_waiting(tmp_path):
    """Go profile: while a stream holds more than its window the connection is not read; a
    task already waiting for another stream gets its message as soon as the application
    read the first stream back to its window (not only once it read it down to half)."""
    async with _go_paused(tmp_path) as (unread, waiting, ns, count, wire):
        link = ns.link
        got = []

        async def wait_for_other() -> None:
            got.append(await waiting.receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_other)  # waits from now on (reading is paused)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert got == []
            exact = _first_take_at_or_under(count, wire, WINDOW)
            assert (count - exact) * wire > WINDOW // 2  # (still more than half the window)
            for _ in range(exact):
                await unread.receive()
            assert not link.streams_over
            # (its message is in the socket already: once every task waits, it has it --
            # not only after the next keepalive tick interrupts the pause)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert got == ["after"]
