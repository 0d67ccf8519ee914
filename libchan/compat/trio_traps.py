"""trio's internals: the trap a waiting task yields to trio's run loop, made once.

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
"""

from __future__ import annotations

import types
from typing import Any, Callable, Generator, cast

import trio

from ..config import _fast_paths_default

__all__ = ["reusable_trap", "wait_on"]


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
