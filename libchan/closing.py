"""Closing what is no longer needed, whatever state it is in."""

from __future__ import annotations

from typing import Any

import trio

from .pipe import PipeReceiver, PipeSender

__all__ = ["aclose_quietly", "close_at_once"]


def close_at_once(obj: Any) -> bool:
    """Close ``obj`` now if that needs no waiting: an in-memory pipe end (nothing to wait
    for or to fail) or a plain socket stream (what its ``aclose`` does, without the
    checkpoint after). False: ``obj`` is something else, untouched (``await obj.aclose()``)."""
    if isinstance(obj, (PipeSender, PipeReceiver)):
        obj.close()
        return True
    if type(obj) is trio.SocketStream:
        obj.socket.close()
        return True
    return False


async def aclose_quietly(obj: Any) -> None:
    """``await obj.aclose()`` (if ``obj`` is not None), shielded from cancellation, for at
    most 5 seconds, any error ignored: for clean-up paths, where the object may already
    be broken or closed and the caller is leaving anyway."""
    if obj is None or close_at_once(obj):
        return
    with trio.CancelScope(shield=True):
        with trio.move_on_after(5):
            try:
                await obj.aclose()
            except Exception:
                pass
