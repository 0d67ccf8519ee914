"""compat/trio_alarm.py: a deadline kept in trio's own deadline heap without a cancel
scope, firing as a scope's deadline would (on trio's clock, the mock clock included),
disarmed by clear() and close(), leaving trio's heap consistent; and the links of this
trio tick with it (no cancel scope around their reads) even while their reading is
paused."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import libchan
from libchan.compat.trio_alarm import Alarm, make_alarm
from helpers import session_pair

pytestmark = pytest.mark.fast_paths  # (links use it only with fast paths on)


def _deadlines():
    from trio._core import _run

    return _run.GLOBAL_RUN_CONTEXT.runner.deadlines


def _check_heap() -> None:
    d = _deadlines()
    d._prune()  # (asserts that its count of live entries matches the heap: ours included)
    assert len(d._heap) == d._active


async def test_an_alarm_fires_at_its_deadline_and_not_before(autojump_clock):
    fired: list[float] = []
    alarm = make_alarm(lambda: fired.append(trio.current_time()))
    assert isinstance(alarm, Alarm)
    start = trio.current_time()
    alarm.set(start + 5)
    assert alarm.deadline == start + 5
    await trio.sleep(4.9)
    assert fired == []
    await trio.sleep(0.2)
    assert fired == [start + 5]  # (the mock clock jumps to the deadline exactly)
    assert alarm.deadline == float("inf")  # it fired once and is disarmed
    await trio.sleep(100)
    assert len(fired) == 1
    _check_heap()


async def test_set_moves_the_deadline_and_clear_disarms(autojump_clock):
    fired: list[float] = []
    alarm = make_alarm(lambda: fired.append(trio.current_time()))
    assert alarm is not None
    start = trio.current_time()
    alarm.set(start + 10)
    alarm.set(start + 2)  # earlier
    alarm.set(start + 2)  # (the same again: no second entry)
    await trio.sleep(3)
    assert fired == [start + 2]
    alarm.set(start + 5)
    alarm.set(start + 8)  # later
    await trio.sleep(3)
    assert fired == [start + 2]
    await trio.sleep(3)
    assert fired == [start + 2, start + 8]
    alarm.set(start + 20)
    alarm.clear()
    await trio.sleep(30)
    assert len(fired) == 2
    _check_heap()


async def test_close_disarms_for_good_and_lets_go_of_the_callback(autojump_clock):
    fired = []
    alarm = make_alarm(lambda: fired.append(1))
    assert alarm is not None
    alarm.set(trio.current_time() + 1)
    alarm.close()
    assert alarm._callback is None
    alarm.set(trio.current_time() + 1)  # (a closed alarm stays disarmed)
    await trio.sleep(5)
    assert fired == [] and alarm.deadline == float("inf")
    _check_heap()


async def test_alarms_and_cancel_scopes_share_trios_heap(autojump_clock):
    """Many alarms set, moved and cleared among cancel scopes with deadlines: each
    fires when due, the scopes time out as before, and trio's count of live deadlines
    stays right (its pruning asserts it)."""
    fired: list[int] = []
    alarms = []
    for i in range(300):
        alarm = make_alarm(lambda i=i: fired.append(i))
        assert alarm is not None
        alarms.append(alarm)
    now = trio.current_time()
    for i, alarm in enumerate(alarms):
        alarm.set(now + 1 + i % 7)
        if i % 3 == 0:
            alarm.set(now + 100 + i)  # moved
        if i % 5 == 0:
            alarm.clear()
    timed_out = 0
    for _ in range(20):
        with trio.move_on_after(0.5) as scope:
            await trio.sleep(1)
        timed_out += scope.cancelled_caught
    assert timed_out == 20
    expected = sorted(i for i in range(300) if i % 3 and i % 5)
    assert sorted(fired) == expected
    _check_heap()
    await trio.sleep(500)
    assert sorted(fired) == sorted(i for i in range(300) if i % 5)
    _check_heap()


async def test_an_idle_links_read_has_no_cancel_scope_and_its_tick_is_an_alarm(tmp_path):
    config = libchan.Config(keepalive_interval=0.3, peer_timeout=3)
    async with session_pair("tcp", tmp_path, config=config) as (cli, srv):
        links = [cli._core._own_link, *srv._core._links]
        with trio.fail_after(5):
            while any(link._nursery is not None for link in links):
                await trio.sleep(0.05)
        for link in links:
            assert link._read_scope is None and link._reading_here
            assert isinstance(link._alarm, Alarm) and link._alarm.deadline < trio.current_time() + 1
        await trio.sleep(1)  # ticks: PINGs keep both sides alive
        assert not cli._core.closed and not srv._core.closed
    for link in links:
        assert link._alarm._callback is None  # (closed with the link: it holds nothing)


async def test_ticks_while_reading_is_paused_do_not_take_the_peer_for_dead(tmp_path):
    """Go profile (no flow control): a server whose application does not read stops
    reading the connection; its ticks come while it is paused, and the peer's silence
    then is its own doing, not the peer's: the connection lives on past peer_timeout,
    and everything arrives once the application reads."""
    config = libchan.Config(stream_window=65535, keepalive_interval=0.3, peer_timeout=1.0)
    with trio.fail_after(30):
        async with session_pair("tcp", tmp_path, config=config, profile="spdy") as (cli, srv):
            sender = await cli.open_sender()
            await sender.send(0)
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == 0
            link = receiver._ns.link
            sent = 0
            with trio.move_on_after(1):  # until TCP's buffers are full
                while True:
                    sent += 1
                    await sender.send(sent)
            assert link.streams_over and link._reading_paused
            await trio.sleep(2.5)  # more than peer_timeout, several ticks, all while paused
            assert not srv._core.closed, srv._core.closed_reason
            assert not cli._core.closed, cli._core.closed_reason
            assert link._reading_paused
            for expected in range(1, sent):  # (the last send was cancelled: sent or not)
                assert await receiver.receive() == expected
