"""Tasks of an object that has no nursery of its own, run in its host's nursery.

A server's session runs in its own task (its handler's), inside the server's nursery, and
now and then needs a task besides (its expiry task while a reference waits, a forwarder
for a local channel sent in a message, a watchdog): a nursery of its own for them costs
every idle session about 1.1 KB (the nursery, its cancel scope and its ``CancelStatus``)
though most sessions never start one (issue 17: memory per idle session).

:class:`HostedTasks` starts them in the host's nursery instead (the server's, which
outlives its sessions), each in a cancel scope of its own, and keeps the structure a
nursery gives: :meth:`aclose` cancels those running and waits until every one of them
has ended, so none outlives the session's ``async with``. A task that raises does not
take the host's other tasks with it: ``on_error`` gets the exception (the session logs it
and ends).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

from .waiters import NO_WAITERS, own_lot

__all__ = ["HostedTasks"]


class HostedTasks:
    """``start_soon`` as a nursery's, into ``host``; :meth:`aclose` cancels and waits."""

    __slots__ = ("_host", "_on_error", "_scopes", "_count", "_closed", "_lot")

    def __init__(self, host: trio.Nursery, on_error: Callable[[BaseException], None]) -> None:
        self._host = host
        self._on_error = on_error
        self._scopes: dict[trio.CancelScope, None] = {}
        self._count = 0  # started and not ended (those not yet running included)
        self._closed = False
        self._lot = NO_WAITERS

    @property
    def running(self) -> int:
        """Tasks started and not ended."""
        return self._count

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the host's nursery (RuntimeError once closed)."""
        if self._closed:
            raise RuntimeError("these tasks are closed")
        self._host.start_soon(self._run, fn, args, name=fn)
        self._count += 1

    async def _run(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            if self._closed:
                return  # (closed before it ran)
            with trio.CancelScope() as scope:
                self._scopes[scope] = None
                try:
                    await fn(*args)
                except Exception as exc:
                    self._on_error(exc)
                finally:
                    del self._scopes[scope]
        finally:
            self._count -= 1
            if not self._count:
                self._lot.unpark_all()

    async def aclose(self) -> None:
        """No more tasks; cancel those running and wait until all have ended (shielded:
        as a nursery's end, it waits whatever cancels the caller)."""
        self._closed = True
        for scope in list(self._scopes):
            scope.cancel()
        with trio.CancelScope(shield=True):
            while self._count:
                lot = self._lot = own_lot(self._lot)
                await lot.park()
