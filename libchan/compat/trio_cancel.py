"""trio's internals: "is the calling task cancelled?" without a coroutine.

Every ``send`` and ``receive`` of a channel is a cancellation point: where a message is
ready (sent at once, or waiting in the inbox) it does what trio's memory channels do,
``await trio.lowlevel.checkpoint_if_cancelled()``, and goes on. That await makes a
coroutine and asks trio for the current task through a ``try``; per message it was a
tenth of what each side of a one-way channel spends (issue 17, goal 2: 0.26 µs of about
1.7 on the receiving side, measured with py-spy and a loop of a million calls).

:func:`must_checkpoint` answers the same question as a plain function (0.12 µs): True when
the calling task is in an effectively cancelled scope, or is trio's main task with a
KeyboardInterrupt pending. The caller then ``await trio.lowlevel.checkpoint()``, which
raises what is pending, as ``checkpoint_if_cancelled`` does; when it answers False it counts
the task's cancel point as trio's function does (``trio.testing.assert_checkpoints`` looks
at that count). The run context, the task's fields and its cancel status are private to trio
(written for trio 0.25 to 0.35; pyproject bounds it): the probe checks that trio's task and
runner classes have the fields it reads. Anything else, or fast paths off
(``LIBCHAN_FAST_PATHS=0``, decided once at import), makes :func:`must_checkpoint` answer True
every time: every send and receive is then a full checkpoint, trio's own rule (what the
public API offers short of ``checkpoint_if_cancelled``'s coroutine).
"""

from __future__ import annotations

from typing import Any, Callable

from .trio_run import choose, run_module

__all__ = ["must_checkpoint", "uses_trio_internals"]


def _always() -> bool:
    """Without trio's internals: every send and receive is a full checkpoint."""
    return True


def _make() -> Callable[[], bool] | None:
    """The fast function, where trio's task, runner and cancel status hold what it reads."""
    _run = run_module({"_cancel_status", "_runner", "_cancel_points"}, {"ki_pending", "main_task"})
    if _run is None or not hasattr(_run.CancelStatus, "effectively_cancelled"):
        return None  # pragma: no cover
    context: Any = _run.GLOBAL_RUN_CONTEXT

    def must_checkpoint() -> bool:
        """The calling task would be cancelled (or interrupted) at a checkpoint now."""
        task = context.task
        if task._cancel_status.effectively_cancelled or (task._runner.ki_pending and task is task._runner.main_task):
            return True
        task._cancel_points += 1  # (as trio's: trio.testing.assert_checkpoints counts it)
        return False

    return must_checkpoint


must_checkpoint, uses_trio_internals = choose(_make, _always)
must_checkpoint.__doc__ = """True when the calling task must ``await trio.lowlevel.checkpoint()``
now: it is cancelled (or interrupted); or always, where trio's internals are not used. A
plain function, no coroutine; a False answer counts as the task's cancel point."""
