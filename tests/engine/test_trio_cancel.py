"""compat/trio_cancel: the cancellation point of every send and receive.

``must_checkpoint()`` (with trio's internals) must answer what
``trio.lowlevel.checkpoint_if_cancelled`` decides, and count the cancel point when it answers
False; without them it answers True (a full checkpoint every time). A send or receive that
finds its message ready must still raise ``Cancelled`` in a cancelled scope, without taking
(or sending) the message, either way.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from libchan.compat import trio_cancel
from helpers import session_pair

FAST = trio_cancel._make()


@pytest.mark.fast_paths
def test_the_fast_function_is_chosen_with_fast_paths_on():
    assert trio_cancel.uses_trio_internals
    assert FAST is not None
    assert trio_cancel.must_checkpoint.__code__ is FAST.__code__


def test_without_trios_internals_every_call_is_a_full_checkpoint():
    assert trio_cancel._always() is True


async def test_a_false_answer_counts_a_cancel_point_as_trios_does():
    """(trio.testing.assert_checkpoints wants a cancel point and a schedule point; the
    byte streams' conformance checks in test_stream_conformance need this count.)"""
    assert FAST is not None
    task = trio.lowlevel.current_task()
    before = task._cancel_points
    assert not FAST()
    assert task._cancel_points == before + 1
    await trio.lowlevel.checkpoint_if_cancelled()
    assert task._cancel_points == before + 2  # (what trio's own does)


async def test_it_answers_as_trio_decides(autojump_clock):
    pending = FAST
    assert pending is not None

    async def would_cancel() -> bool:
        """What a checkpoint would do now, asked of trio itself."""
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:
            return True
        return False

    # (would_cancel raises inside a cancelled scope: ask pending() first each time)
    assert not pending()
    with trio.CancelScope() as scope:
        scope.cancel()
        assert pending()
        with trio.CancelScope(shield=True):
            assert not pending()
            assert not await would_cancel()
        assert await would_cancel()
    assert not pending()
    with trio.move_on_after(1):
        assert not pending()
        await trio.sleep(2)  # the deadline passes while it sleeps: cancelled there
    with trio.CancelScope(deadline=trio.current_time() - 1):
        assert pending()
        assert await would_cancel()
    outer = trio.CancelScope()
    with outer:
        with trio.CancelScope():
            outer.cancel()
            assert pending()  # a cancelled enclosing scope counts
    assert not pending()


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_a_ready_message_is_not_taken_by_a_cancelled_receive_or_send(tmp_path, profile):
    with trio.fail_after(20):
        async with session_pair("tcp", tmp_path, profile=profile) as (cli, srv):
            sender = await cli.open_sender()
            await sender.send(0)
            receiver = await srv.accept_receiver()
            assert await receiver.receive() == 0
            for i in (1, 2, 3):
                await sender.send(i)
            while not receiver._ns.inbox:  # all three are waiting in the inbox
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                await receiver.receive()
            assert scope.cancelled_caught
            with trio.CancelScope() as scope:
                scope.cancel()
                async for _msg in receiver:
                    pytest.fail("async for took a message in a cancelled scope")
            assert scope.cancelled_caught
            with trio.CancelScope() as scope:
                scope.cancel()
                await sender.send("never")
            assert scope.cancelled_caught
            await sender.send(4)
            await sender.aclose()
            assert [msg async for msg in receiver] == [1, 2, 3, 4]
