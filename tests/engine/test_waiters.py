"""engine/waiters.Lot: what the engine needs of trio's ParkingLot, cheaper."""

from __future__ import annotations

import gc
import queue
import threading

import pytest
import trio
import trio.testing

from libchan.engine.waiters import NO_WAITERS, Lot, own_lot


WAYS = {"park": lambda lot: lot.park(), "enter": lambda lot: trio.lowlevel.wait_task_rescheduled(lot.enter())}


@pytest.fixture(params=sorted(WAYS), autouse=True)
def way(request):
    """Every test waits both ways: ``park()``, and ``enter()`` with trio's wait."""
    global _wait
    _wait = WAYS[request.param]
    return request.param


_wait = WAYS["park"]


async def _park(lot: Lot, name: str, woken: list[str], nursery: trio.Nursery) -> trio.CancelScope:
    """A task waits in ``lot`` (appends ``name`` to ``woken`` once woken); its scope."""
    scope = trio.CancelScope()

    async def wait() -> None:
        with scope:
            await _wait(lot)
            woken.append(name)
            return
        woken.append(name + " cancelled")

    nursery.start_soon(wait)
    await trio.testing.wait_all_tasks_blocked()
    return scope


async def test_unpark_wakes_the_longest_waiting_and_unpark_all_the_rest():
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        assert not lot and len(lot) == 0
        for name in "abc":
            await _park(lot, name, woken, nursery)
        assert lot and len(lot) == 3
        lot.unpark()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["a"] and len(lot) == 2
        lot.unpark()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["a", "b"]
        await _park(lot, "d", woken, nursery)
        lot.unpark_all()
        assert not lot
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(woken) == ["a", "b", "c", "d"]  # (trio runs a batch in any order)
        lot.unpark()
        lot.unpark_all()  # (nobody waits: nothing happens)


async def test_a_cancelled_wait_leaves_the_lot_and_is_not_woken_later():
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        await _park(lot, "kept", woken, nursery)
        scope = await _park(lot, "gone", woken, nursery)
        assert len(lot) == 2
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["gone cancelled"] and len(lot) == 1
        lot.unpark()  # (the one left is the one woken)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["gone cancelled", "kept"] and not lot


async def test_each_abort_function_removes_its_own_task():
    """What Lot.enter gives each task removes that task and no other, called in any
    order, also when the lot's reused abort function (for a task entering it empty)
    is handed out again. (Called directly: an abort function that fails inside trio's
    cancellation leaves the run hanging rather than failing.)"""
    lot = Lot()
    aborts: dict[str, object] = {}
    tasks: dict[str, trio.lowlevel.Task] = {}

    async def enter(name: str) -> None:
        tasks[name] = trio.lowlevel.current_task()
        aborts[name] = lot.enter()

    async with trio.open_nursery() as nursery:
        for name in "ab":
            nursery.start_soon(enter, name)
            await trio.testing.wait_all_tasks_blocked()
    assert lot._tasks == [tasks["a"], tasks["b"]]
    assert aborts["a"](None) == trio.lowlevel.Abort.SUCCEEDED and lot._tasks == [tasks["b"]]
    assert aborts["b"](None) == trio.lowlevel.Abort.SUCCEEDED and not lot
    async with trio.open_nursery() as nursery:
        for name in "cd":
            nursery.start_soon(enter, name)
            await trio.testing.wait_all_tasks_blocked()
    assert aborts["d"](None) == trio.lowlevel.Abort.SUCCEEDED and lot._tasks == [tasks["c"]]
    assert aborts["c"](None) == trio.lowlevel.Abort.SUCCEEDED and not lot


async def test_a_task_that_waited_alone_leaves_when_cancelled_with_others_waiting():
    """The task that entered an empty lot (a channel's reader: Lot.enter gives it the
    lot's one abort function, kept for the next) is the one that leaves when cancelled,
    whoever waited before it or joins after it."""
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        await _park(lot, "a", woken, nursery)
        lot.unpark()
        await trio.testing.wait_all_tasks_blocked()
        b = await _park(lot, "b", woken, nursery)  # alone again, after a
        await _park(lot, "c", woken, nursery)
        b.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["a", "b cancelled"] and len(lot) == 1
        lot.unpark()
        await trio.testing.wait_all_tasks_blocked()
        assert woken[-1] == "c" and not lot
        d = await _park(lot, "d", woken, nursery)
        d.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await _park(lot, "e", woken, nursery)
        assert len(lot) == 1
        lot.unpark_all()
        await trio.testing.wait_all_tasks_blocked()
        assert woken[-2:] == ["d cancelled", "e"] and not lot


async def test_a_woken_task_cancelled_before_it_runs_still_returns_from_park():
    """Woken (rescheduled) first, cancelled after: the wait is over, park returns."""
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        scope = await _park(lot, "w", woken, nursery)
        lot.unpark_all()
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
    assert woken == ["w"]


def test_own_lot_makes_a_lot_only_in_place_of_the_shared_empty_one():
    mine = own_lot(NO_WAITERS)
    assert mine is not NO_WAITERS and isinstance(mine, Lot)
    assert own_lot(mine) is mine
    assert not NO_WAITERS


@pytest.mark.parametrize("count", [1, 50])
async def test_many_waiters_each_woken_once(count):
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        for i in range(count):
            await _park(lot, str(i), woken, nursery)
        lot.unpark_all()
        lot.unpark_all()
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(woken, key=int) == [str(i) for i in range(count)]


@pytest.mark.fast_paths
async def test_a_lone_waiter_yields_the_lots_own_trap_made_once(way):
    """On the trio this was written for, the probe of compat/trio_traps succeeds: a
    task that waits alone in a lot yields the lot's trap, the same object wait after
    wait (no new one per message), and is woken and cancelled as with trio's own wait."""
    from libchan.compat.trio_traps import reusable_trap

    assert reusable_trap(lambda _: trio.lowlevel.Abort.SUCCEEDED) is not None
    if way == "enter":
        return  # (enter() leaves the wait to the caller: park() is the one that yields the trap)
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        await _park(lot, "a", woken, nursery)
        trap = lot._trap
        assert trap is not None and trap.abort_func is lot._sole
        lot.unpark()
        await trio.testing.wait_all_tasks_blocked()
        b = await _park(lot, "b", woken, nursery)
        assert lot._trap is trap
        # what b waits in holds the trap (trio's own wait would hold an object of its own)
        assert any(type(r).__name__ == "generator" for r in gc.get_referrers(trap))
        b.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["a", "b cancelled"] and not lot


@pytest.mark.parametrize("leave", ["unpark", "unpark_all", "cancel"])
async def test_a_lot_keeps_no_task_that_left_it(leave):
    """A task that waited alone is not referred to by the lot once it left (woken or
    cancelled): a task that ended must not live on in the lots it waited in."""
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        scope = await _park(lot, "a", woken, nursery)
        assert lot._sole is not None and lot._sole.task is not None
        if leave == "cancel":
            scope.cancel()
        else:
            getattr(lot, leave)()
        await trio.testing.wait_all_tasks_blocked()
    assert woken == (["a cancelled"] if leave == "cancel" else ["a"])
    assert lot._sole.task is None


async def test_a_flag_wakes_every_waiter_once_set_and_lets_later_ones_through():
    from libchan.engine.waiters import Flag

    flag, woken = Flag(), []

    async def wait(name: str) -> None:
        await flag.wait()
        woken.append(name)

    async with trio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(wait, name)
        await trio.testing.wait_all_tasks_blocked()
        assert not flag.is_set() and woken == []
        with trio.move_on_after(0.01) as scope:  # a waiter cancelled meanwhile leaves
            await flag.wait()
        assert scope.cancelled_caught
        flag.set()
        flag.set()  # (once)
        assert flag.is_set()
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(woken) == ["a", "b", "c"]
    await flag.wait()  # set: returns at once
    with trio.CancelScope() as scope:  # (a checkpoint all the same)
        scope.cancel()
        await flag.wait()
    assert scope.cancelled_caught


async def test_a_fifo_lock_goes_to_waiters_in_order_and_skips_cancelled_ones():
    from libchan.engine.waiters import FifoLock

    lock, order = FifoLock(), []
    scopes: dict[str, trio.CancelScope] = {}

    async def take(name: str) -> None:
        with trio.CancelScope() as scope:
            scopes[name] = scope
            async with lock:
                order.append(name)
                assert lock.locked()
                await trio.sleep(0.01)
            return
        order.append(name + " cancelled")

    async with trio.open_nursery() as nursery:
        await lock.__aenter__()
        assert lock.locked()
        for name in "abcd":
            nursery.start_soon(take, name)
            await trio.testing.wait_all_tasks_blocked()
        scopes["b"].cancel()
        await trio.testing.wait_all_tasks_blocked()
        await lock.__aexit__(None, None, None)  # handed to a directly: nobody takes it in between
        assert lock.locked()
    assert order == ["b cancelled", "a", "c", "d"]
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
    with trio.CancelScope() as scope:  # acquiring is a checkpoint
        scope.cancel()
        async with lock:
            pass
    assert scope.cancelled_caught and not lock.locked()


@pytest.mark.fast_paths
async def test_a_woken_task_is_sent_the_shared_woken_value():
    """On the trio this was written for, a lot wakes its tasks without trio's new
    outcome per task (compat/trio_traps.wake_all): what the task is sent is WOKEN, the
    same object every time, and its wait returns None."""
    from libchan.compat import trio_traps

    assert trio_traps.wake_uses_trio_internals
    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        for name in "ab":
            await _park(lot, name, woken, nursery)
        tasks = list(lot._tasks)
        lot.unpark()
        assert tasks[0]._next_send is trio_traps.WOKEN  # (woken, not run yet)
        lot.unpark_all()
        assert tasks[1]._next_send is trio_traps.WOKEN
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(woken) == ["a", "b"]


async def test_instruments_see_every_task_a_lot_wakes():
    """With an instrument that wants task_scheduled installed, a lot wakes its tasks
    through trio's own reschedule: the instrument hears of each."""

    class Scheduled(trio.abc.Instrument):
        def __init__(self) -> None:
            self.tasks: list[trio.lowlevel.Task] = []

        def task_scheduled(self, task: trio.lowlevel.Task) -> None:
            self.tasks.append(task)

    lot, woken = Lot(), []
    async with trio.open_nursery() as nursery:
        for name in "abc":
            await _park(lot, name, woken, nursery)
        waiting = list(lot._tasks)
        instrument = Scheduled()
        trio.lowlevel.add_instrument(instrument)
        try:
            lot.unpark()
            lot.unpark_all()
        finally:
            trio.lowlevel.remove_instrument(instrument)
        await trio.testing.wait_all_tasks_blocked()
    assert instrument.tasks == waiting
    assert sorted(woken) == ["a", "b", "c"]


def test_a_lot_wakes_its_tasks_in_a_guest_run():
    """trio as a guest of another loop (here: a queue of callbacks, in a thread of its
    own) must tick when a task becomes runnable: a lot's wake-ups there go through
    trio's reschedule, which asks for it."""

    async def guest() -> str:
        lot, woken = Lot(), []
        async with trio.open_nursery() as nursery:
            for name in "ab":
                await _park(lot, name, woken, nursery)
            lot.unpark_all()
        return "".join(sorted(woken))

    outcomes: list[object] = []
    failures: list[BaseException] = []

    def host() -> None:
        callbacks: queue.Queue = queue.Queue()
        try:
            trio.lowlevel.start_guest_run(guest, run_sync_soon_threadsafe=callbacks.put, done_callback=outcomes.append)
            while not outcomes:
                callbacks.get(timeout=10)()
        except BaseException as exc:  # (queue.Empty: the guest stopped ticking)
            failures.append(exc)

    thread = threading.Thread(target=host)
    thread.start()
    thread.join(20)
    assert not failures and outcomes[0].unwrap() == "ab"


def test_fast_paths_off_at_import_wake_through_trios_reschedule():
    """LIBCHAN_FAST_PATHS=0 (decided at import) leaves trio's own reschedule in place."""
    import os
    import subprocess
    import sys

    code = (
        "from libchan.compat import trio_traps as t; "
        "print(t.wake_uses_trio_internals, t.wake_all is t._trio_wake_all)"
    )
    for value, expected in (("0", "False True"), ("1", "True False")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "LIBCHAN_FAST_PATHS": value}, check=True).stdout.strip()
        assert out == expected, (value, out)
