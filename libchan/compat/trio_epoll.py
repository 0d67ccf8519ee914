"""trio's internals: waiting for a socket to become readable without trio's per-wait objects.

``trio.lowlevel.wait_readable(sock)`` awaits four coroutines deep (the public function,
the I/O manager's method, its ``_epoll_wait``, ``wait_task_rescheduled``) and makes an
abort closure for every wait. A connection's reader waits that way for as long as the
connection is idle: about 1.3 KB of every idle connection, on each side (issue 17: memory
per idle session), and a busy connection makes them once per read.

:class:`ReadableWait` does, for one socket, what ``_epoll_wait`` does (the waiting task
becomes the descriptor's reader in trio's epoll manager, which then watches it; a
cancelled wait takes it back), with the abort function and the object yielded to the
run loop made once per socket (:mod:`libchan.compat.trio_traps`). It is private to trio
(written for trio 0.25 to 0.35 on Linux, whose I/O manager is ``EpollIOManager``;
pyproject bounds trio): :func:`readable_wait` checks what it uses and answers None
otherwise (another platform, another trio, or fast paths off), and the caller waits with
``trio.lowlevel.wait_readable``. Everything else (``notify_closing``, which wakes the
waiter with ``ClosedResourceError``; a descriptor epoll refuses, which wakes it with
the ``OSError``) is trio's own code, unchanged.
"""

from __future__ import annotations

from typing import Any, Awaitable

import trio

from .trio_traps import reusable_trap, wait_on

__all__ = ["ReadableWait", "readable_wait"]


class ReadableWait:
    """``await wait()``: ``await trio.lowlevel.wait_readable(fd)`` for one descriptor.

    The caller checks the descriptor is still open before each wait (a closed one's
    number may be reused): here it is fixed when made."""

    __slots__ = ("_manager", "_fd", "_trap")

    def __init__(self, manager: Any, fd: int) -> None:
        self._manager = manager
        self._fd = fd
        self._trap = reusable_trap(self._abort)

    def wait(self) -> Awaitable[None]:
        """The waiting task becomes the descriptor's reader (``BusyResourceError`` if
        another task is); the awaitable must be awaited at once."""
        manager = self._manager
        waiters = manager._registered[self._fd]
        if waiters.read_task is not None:
            raise trio.BusyResourceError("another task is already reading this socket")
        waiters.read_task = trio.lowlevel.current_task()
        manager._update_registrations(self._fd)
        return wait_on(self._trap)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        manager = self._manager
        manager._registered[self._fd].read_task = None
        manager._update_registrations(self._fd)
        return trio.lowlevel.Abort.SUCCEEDED


def readable_wait(fd: int) -> ReadableWait | None:
    """A :class:`ReadableWait` for ``fd`` in the running trio, or None if this trio does
    not keep its readers where expected (wait with ``trio.lowlevel.wait_readable``)."""
    try:
        from trio._core import _run
    except ImportError:  # pragma: no cover - a trio that moved its modules
        return None
    runner = getattr(getattr(_run, "GLOBAL_RUN_CONTEXT", None), "runner", None)
    manager = getattr(runner, "io_manager", None)
    if type(manager).__name__ != "EpollIOManager":
        return None  # (another platform's I/O manager)
    registered: Any = getattr(manager, "_registered", None)
    if not callable(getattr(manager, "_update_registrations", None)) or not hasattr(registered, "default_factory"):
        return None  # pragma: no cover - another trio
    if not hasattr(registered.default_factory(), "read_task"):
        return None  # pragma: no cover
    wait = ReadableWait(manager, fd)
    return wait if wait._trap is not None else None
