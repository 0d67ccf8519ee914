"""Where tasks wait for a stream, a connection or a session: :class:`Lot`, lots made
on first use, and :class:`Flag` and :class:`FifoLock` on top of them.

A connection, a session and every stream keep several lots for waits that most of them
never do (room to send, a drain, the first input...). Until a task waits, such a field
holds :data:`NO_WAITERS`, one empty lot shared by all: waking it (``unpark_all``) does
nothing and it is false, like an empty lot of one's own. A task that waits parks in
:func:`own_lot` of it instead, never in the shared lot.
"""

from __future__ import annotations

from functools import partial
from typing import Awaitable, Callable

import trio

from ..compat.trio_traps import reusable_trap, wait_on, wake_all

__all__ = ["FifoLock", "Flag", "Lot", "NO_WAITERS", "own_lot"]


class Lot:
    """What ``trio.lowlevel.ParkingLot`` does for us (``park``, ``unpark``,
    ``unpark_all``, false when nobody waits), with less per wait and per wake-up:
    a list of tasks, no ordered dict, no generator, no per-task bookkeeping.
    Every message to a channel whose reader waits costs one ``park`` and one
    ``unpark_all``; with many channels (one task each) that is once per message.
    ``unpark`` wakes the task that waited longest (``unpark_all`` wakes them all, and trio
    runs a batch in an order of its own); a cancelled wait leaves the lot."""

    __slots__ = ("_tasks", "_sole", "_trap")

    def __init__(self) -> None:
        self._tasks: list[trio.lowlevel.Task] = []
        self._sole: _SoleAbort | None = None
        self._trap: object | None = None  # what a task waiting with _sole yields to trio

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def park(self) -> Awaitable[None]:
        """``await lot.park()``: wait until woken (a checkpoint: cancellable).

        The task joins the lot when park is called (so the await must follow at
        once). A task that waits alone yields the lot's own trap (see
        :mod:`libchan.compat.trio_traps`): one object made per wait, not four."""
        abort = self.enter()
        trap = self._trap
        if trap is not None and abort is self._sole:
            return wait_on(trap)
        return trio.lowlevel.wait_task_rescheduled(abort)

    def enter(self) -> Callable[[object], trio.lowlevel.Abort]:
        """The calling task joins the lot; returns the abort function for
        ``await trio.lowlevel.wait_task_rescheduled(abort)``, which must follow at
        once (:meth:`park` does both).

        (With many channels, each waited on by a task, everything made for a wait
        lives until the channel's next message, long enough for the cyclic
        collector to walk it again and again. A task that waits alone -- a channel's
        reader -- gets the lot's own :class:`_SoleAbort`, made once: nothing new per
        wait; a task that joins others gets a partial.)"""
        task = trio.lowlevel.current_task()
        tasks = self._tasks
        tasks.append(task)
        if len(tasks) == 1:
            sole = self._sole
            if sole is None:
                sole = self._sole = _SoleAbort(tasks)
                self._trap = reusable_trap(sole)
            sole.task = task
            return sole
        return partial(_leave, tasks, task)

    def unpark(self) -> None:
        """Wake the task that waits longest, if any."""
        if self._tasks:
            task = self._tasks.pop(0)
            wake_all((task,))
            sole = self._sole
            if sole is not None and sole.task is task:
                sole.task = None  # (a task that ended must not live on in its lot)

    def unpark_all(self) -> None:
        """Wake every waiting task."""
        tasks = self._tasks
        if tasks:
            wake_all(tasks)  # (rescheduling runs nothing: nobody parks meanwhile)
            tasks.clear()
            sole = self._sole
            if sole is not None:
                sole.task = None  # (a task that ended must not live on in its lot)


def _leave(tasks: list[trio.lowlevel.Task], task: trio.lowlevel.Task, _: object) -> trio.lowlevel.Abort:
    """A cancelled wait: ``task`` leaves the lot (it is still there: a woken task is
    not aborted)."""
    tasks.remove(task)
    return trio.lowlevel.Abort.SUCCEEDED


class _SoleAbort:
    """The abort function of the task that entered its lot while the lot was empty.

    It stays right for that task as long as it waits: ``task`` changes only when a
    task enters the lot empty again, i.e. once that one has left it (woken, or
    aborted), and is None once it left (a task that ended is not kept alive by the
    lots it waited in). It holds the lot's list, not the lot (no cycle to collect)."""

    __slots__ = ("_tasks", "task")

    def __init__(self, tasks: list[trio.lowlevel.Task]) -> None:
        self._tasks = tasks
        self.task: trio.lowlevel.Task | None = None

    def __call__(self, _: object) -> trio.lowlevel.Abort:
        self._tasks.remove(self.task)  # type: ignore[arg-type]
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


#: The shared empty lot (nobody ever parks in it).
NO_WAITERS = Lot()


def own_lot(lot: Lot) -> Lot:
    """``lot`` itself, or a new lot of one's own if ``lot`` is :data:`NO_WAITERS`:
    ``lot = self._x_lot = own_lot(self._x_lot); await lot.park()``."""
    return Lot() if lot is NO_WAITERS else lot


class Flag:
    """What ``trio.Event`` does for us (``set``, ``is_set``, ``wait``) in 48 bytes: a
    connection keeps two (ended, done reading), and an Event with its set of tasks is
    about 270 bytes of every idle connection. It waits in a lot made on first use."""

    __slots__ = ("_set", "_lot")

    def __init__(self) -> None:
        self._set = False
        self._lot = NO_WAITERS

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Set it and wake every task waiting for it (once; later calls do nothing)."""
        if not self._set:
            self._set = True
            self._lot.unpark_all()
            self._lot = NO_WAITERS

    async def wait(self) -> None:
        """Return once it is set (at once if it is; a checkpoint either way)."""
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        lot = self._lot = own_lot(self._lot)
        await lot.park()


class FifoLock:
    """What ``trio.StrictFIFOLock`` does for us (``async with``, ``locked``) in 48
    bytes instead of about 330 (its ParkingLot's ordered dict): tasks get it in the
    order they asked for it, and a release hands it to the next one directly (no
    task can take it in between). A cancelled waiter leaves the queue."""

    __slots__ = ("_held", "_lot")

    def __init__(self) -> None:
        self._held = False
        self._lot = NO_WAITERS

    def locked(self) -> bool:
        return self._held

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._held:
            self._held = True
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        lot = self._lot = own_lot(self._lot)
        await lot.park()  # (woken by release(): it is ours, still held)

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Hand the lock to the task that waits longest, or free it."""
        if not self._held:
            raise RuntimeError("release of a FifoLock that is not held")
        if self._lot:
            self._lot.unpark()
        else:
            self._held = False
