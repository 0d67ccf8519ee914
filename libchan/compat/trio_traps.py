"""trio's internals: the trap a waiting task yields to trio's run loop, made once; and
waking such a task without the objects trio makes for each wake-up.

``trio.lowlevel.wait_task_rescheduled(abort)`` makes three objects for every wait (a
coroutine, a generator and the ``WaitTaskRescheduled`` it yields to the run loop), and
all three live as long as the wait. With many channels, each read by a task that waits
for its next message, that is three objects per message that live long enough to be
moved into the cyclic collector's oldest generation, and make its full collections,
which walk every stream of every session, come that much more often (issue 17: at
10,000 channels the full collections were a fifth of the server's time).

:func:`reusable_trap` makes the object a task yields once, for an abort function that
stays the same from wait to wait (a lot's :class:`~libchan.engine.waiters._SoleAbort`);
:func:`wait_on` yields it, one generator per wait, and does what
``wait_task_rescheduled`` does with the answer. The yield protocol is private to trio
(written for trio 0.25 to 0.35; pyproject bounds it): the probe checks that the run loop
knows the class by that name, and anything else makes :func:`reusable_trap` answer
None, and the caller uses ``trio.lowlevel.wait_task_rescheduled``. It is off in a
process started with ``LIBCHAN_FAST_PATHS=0`` (it is decided once, at import).

Waking (:func:`wake_all`): ``trio.lowlevel.reschedule(task)`` makes an ``outcome.Value(None)``
for every task it wakes (an attrs object; its ``unwrap`` marks it used), goes through
the run context's thread-local and asks whether an instrument wants ``task_scheduled``
(a ``UserDict`` lookup): with many channels, each read by a task woken for most messages,
that was about a third of a wake-up (``bench/wakeups.py``: 2.4 -> 1.4-1.5 µs per task woken
and run to its next wait). :func:`wake_all` does what trio's ``Runner.reschedule`` does for
each task (its next send, abort function and sleep data, the run queue), with one shared
:data:`WOKEN` in place of the new Value: whatever the task waits in (:func:`wait_on`, or
``wait_task_rescheduled``) calls ``unwrap()`` on what it is sent, and WOKEN's gives None,
every time. Where trio runs as a guest, or any instrument is installed, it calls trio's
``reschedule`` instead (exactly trio's behaviour, instruments and all). The same probe rule:
trio's Task and Runner fields, trio 0.25 to 0.35, off with ``LIBCHAN_FAST_PATHS=0``.
"""

from __future__ import annotations

import collections
import types
from typing import Any, Callable, Generator, Iterable, cast

import trio

from ..config import _fast_paths_default
from .trio_run import choose, run_module

__all__ = ["reusable_trap", "wait_on", "wake_all", "WOKEN"]


def _probe() -> type | None:
    try:
        from trio._core import _run, _traps
    except ImportError:  # pragma: no cover - a trio that moved its modules
        return None
    cls = getattr(_traps, "WaitTaskRescheduled", None)
    if not isinstance(cls, type) or getattr(_run, "WaitTaskRescheduled", None) is not cls:
        return None  # pragma: no cover - a trio whose run loop does not know it by that name
    try:
        trap = cast(Any, cls)(abort_func=_probe)
    except TypeError:  # pragma: no cover
        return None
    if getattr(trap, "abort_func", None) is not _probe:
        return None  # pragma: no cover
    return cls


_TRAP: type | None = _probe() if _fast_paths_default() else None


def reusable_trap(abort: Callable[[Any], trio.lowlevel.Abort]) -> object | None:
    """What a task that waits with ``abort`` yields to trio's run loop, made once for
    every wait with that same function; None where trio is not the one this was
    written for (or fast paths are off): then wait with ``wait_task_rescheduled``."""
    return None if _TRAP is None else _TRAP(abort_func=abort)


@types.coroutine
def wait_on(trap: object) -> Generator[Any, Any, None]:
    """``await wait_on(trap)``: ``await trio.lowlevel.wait_task_rescheduled(abort)``
    for the ``abort`` that ``trap`` was made with (a checkpoint: cancellable; whatever
    the task is rescheduled with is unwrapped, so a cancellation raises here)."""
    (yield trap).unwrap()


class _Woken:
    """What :func:`wake_all` sends a woken task: ``unwrap()`` gives None, as many times as
    asked (an ``outcome.Value`` may be unwrapped once)."""

    __slots__ = ()

    def unwrap(self) -> None:
        return None

    def __repr__(self) -> str:
        return "WOKEN"


#: The one object every task woken by :func:`wake_all` is sent.
WOKEN = _Woken()


def _trio_wake_all(tasks: Iterable[trio.lowlevel.Task]) -> None:
    """:func:`wake_all` without trio's internals: trio's own reschedule, task by task."""
    for task in tasks:
        trio.lowlevel.reschedule(task)


def _make_wake_all() -> Callable[[Iterable[trio.lowlevel.Task]], None] | None:
    """The fast :func:`wake_all`, where trio's task and runner hold what it sets."""
    _run = run_module({"coro", "_next_send_fn", "_next_send", "_abort_func", "custom_sleep_data"},
                      {"runq", "instruments", "is_guest"})
    try:
        from trio._core import _instrumentation

        instruments_are_a_userdict = issubclass(_instrumentation.Instruments, collections.UserDict)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover
        return None
    if _run is None or not instruments_are_a_userdict:
        return None  # pragma: no cover
    context: Any = _run.GLOBAL_RUN_CONTEXT

    def wake_all(tasks: Iterable[trio.lowlevel.Task]) -> None:
        runner = context.runner
        if runner.is_guest or "task_scheduled" in runner.instruments.data:
            _trio_wake_all(tasks)  # (a guest run's tick, the instruments' task_scheduled)
            return
        runq = runner.runq
        for task in cast("Iterable[Any]", tasks):  # (cast once, not per task: it is a call)
            # what Runner.reschedule(task) does, with WOKEN for the new Value(None)
            task._next_send_fn = task.coro.send
            task._next_send = WOKEN
            task._abort_func = None
            task.custom_sleep_data = None
            runq.append(task)

    return wake_all


_WakeAll = Callable[[Iterable[trio.lowlevel.Task]], None]
wake_all, wake_uses_trio_internals = choose(_make_wake_all, cast(_WakeAll, _trio_wake_all))
wake_all.__doc__ = """Reschedule every task of ``tasks`` (each waiting in ``wait_on`` or
``trio.lowlevel.wait_task_rescheduled``, woken once) to return None from its wait, as
``trio.lowlevel.reschedule(task)`` does; without a new outcome per task where trio's
internals allow."""
