"""trio's internals: a deadline without a cancel scope.

A connection's task reads until its next keepalive tick, a few seconds away: with trio's
public API that is a ``CancelScope`` with a deadline around each read, a scope and its
``CancelStatus`` (two sets) for as long as the connection is idle: about 0.85 KB of every
idle connection, on each side (issue 17: memory per idle session).

:class:`Alarm` puts itself in the heap where trio's run loop keeps the deadlines of cancel
scopes, and when trio's clock reaches its deadline the run loop calls it as it would cancel
a scope: the alarm calls its callback (which must be quick and must not raise: it runs in
trio's run loop, outside any task), and the callback wakes whom it needs to. One alarm
serves a connection for its whole life; setting the next deadline makes nothing new but
trio's heap entry.

The deadline heap is private to trio (written for trio 0.25 to 0.35, whose run loop
keeps a ``Deadlines`` heap of ``(deadline, id, scope)`` and calls ``scope.cancel()`` --
``scope._cancel(reason)`` since 0.31 -- for each entry whose deadline is still the
scope's ``_registered_deadline``; pyproject bounds trio): :func:`make_alarm` checks what
it uses and answers None otherwise (another trio), and the caller
uses a cancel scope with a deadline (as it does with fast paths off).
"""

from __future__ import annotations

import math
from typing import Any, Callable

__all__ = ["Alarm", "make_alarm"]

_INF = math.inf


class Alarm:
    """Calls ``callback()`` from trio's run loop once trio's clock reaches the deadline
    given to :meth:`set` (unless :meth:`clear` came first). Each :meth:`set` arms it
    once."""

    __slots__ = ("_deadlines", "_runner", "_callback", "_registered_deadline")

    def __init__(self, runner: Any, callback: Callable[[], None]) -> None:
        self._runner = runner
        self._deadlines = runner.deadlines
        self._callback: Callable[[], None] | None = callback
        #: (the name is what trio's heap compares an entry's deadline with: inf = unarmed)
        self._registered_deadline = _INF

    @property
    def deadline(self) -> float:
        """The armed deadline (``inf`` when not armed)."""
        return self._registered_deadline

    def set(self, deadline: float) -> None:
        """Arm for ``deadline`` (trio's clock), instead of any deadline armed before."""
        old = self._registered_deadline
        if deadline == old or self._callback is None:
            return
        if old != _INF:
            self._deadlines.remove(old, self)  # (its heap entry is stale from now on)
        self._registered_deadline = deadline
        if deadline != _INF:
            self._deadlines.add(deadline, self)
            if self._runner.is_guest:  # (a host loop sleeping until the old deadline)
                self._runner.force_guest_tick_asap()

    def clear(self) -> None:
        """Disarm (trio drops the stale heap entry when it meets it)."""
        if self._registered_deadline != _INF:
            self._deadlines.remove(self._registered_deadline, self)
            self._registered_deadline = _INF

    def close(self) -> None:
        """Disarm for good and let go of the callback (a stale heap entry keeps this
        object until its deadline passes, not what the callback holds)."""
        self.clear()
        self._callback = None

    def _cancel(self, _reason: object = None) -> None:
        # trio's run loop: the deadline passed. (A scope's cancel removes it from the
        # heap's count of live entries: so does this.)
        self.clear()
        callback = self._callback
        if callback is not None:
            callback()

    cancel = _cancel  # (trio before 0.31 calls scope.cancel())


def _probe_runner() -> Any:
    try:
        from trio._core import _run
    except ImportError:  # pragma: no cover - a trio that moved its modules
        return None
    runner = getattr(getattr(_run, "GLOBAL_RUN_CONTEXT", None), "runner", None)
    deadlines = getattr(runner, "deadlines", None)
    cls: Any = type(deadlines)
    if cls.__name__ != "Deadlines" or not isinstance(getattr(deadlines, "_heap", None), list):
        return None  # pragma: no cover - another trio
    for name in ("add", "remove", "expire", "next_deadline"):
        if not callable(getattr(deadlines, name, None)):
            return None  # pragma: no cover
    if not isinstance(getattr(deadlines, "_active", None), int) or not hasattr(runner, "force_guest_tick_asap"):
        return None  # pragma: no cover
    names = cls.expire.__code__.co_names
    if "_registered_deadline" not in names or not ("cancel" in names or "_cancel" in names):
        return None  # pragma: no cover - a run loop that expires deadlines another way
    return runner


def make_alarm(callback: Callable[[], None]) -> Alarm | None:
    """An :class:`Alarm` for the running trio calling ``callback``, or None where trio
    does not keep its deadlines as expected: then use a cancel scope with a deadline.
    (The caller decides whether fast paths allow it.)"""
    runner = _probe_runner()
    return None if runner is None else Alarm(runner, callback)
