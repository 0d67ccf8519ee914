"""trio's run loop as the compat modules that read it see it: one probe of its Task and
Runner fields (trio 0.25 to 0.35; pyproject bounds it), and the choice between a fast
function and trio's public way, for :mod:`.trio_cancel` and :mod:`.trio_traps`."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ..config import _fast_paths_default

__all__ = ["choose", "run_module"]

F = TypeVar("F", bound=Callable[..., Any])


def choose(make: Callable[[], F | None], fallback: F) -> tuple[F, bool]:
    """``(make(), True)`` where fast paths are on (``LIBCHAN_FAST_PATHS``, read at import)
    and ``make`` found what it reads in trio; else ``(fallback, False)``."""
    if _fast_paths_default():
        fast = make()
        if fast is not None:
            return fast, True
    return fallback, False


def run_module(task_fields: set[str], runner_fields: set[str]) -> Any | None:
    """trio's ``trio._core._run`` module, if its ``Task`` and ``Runner`` are attrs
    classes with (at least) these fields and it has the run context
    (``GLOBAL_RUN_CONTEXT``); else None (the caller keeps to trio's public API)."""
    try:
        import attrs
        from trio._core import _run
    except ImportError:  # pragma: no cover - a trio that moved its run loop
        return None
    try:
        has = {f.name for f in attrs.fields(_run.Task)}
        runner_has = {f.name for f in attrs.fields(_run.Runner)}
        _run.GLOBAL_RUN_CONTEXT  # noqa: B018
    except Exception:  # pragma: no cover - not attrs classes any more, or renamed
        return None
    if not (task_fields <= has and runner_fields <= runner_has):
        return None  # pragma: no cover
    return _run
