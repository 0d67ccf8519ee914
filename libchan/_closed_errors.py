"""The errors of libchan that are trio's own: :class:`SessionClosedError` is a
``trio.BrokenResourceError``. Importing them from :mod:`libchan.errors` (where they
are documented and exported) imports this module, and trio, on first use.
"""

from __future__ import annotations

import trio

__all__ = ["SessionClosedError", "broken_error"]


class SessionClosedError(trio.BrokenResourceError):
    """The session this channel or stream belongs to has ended.

    ``reason`` is a human-readable explanation, e.g. ``"peer closed the
    session"`` or ``"connection lost: ..."``.
    """

    __module__ = "libchan.errors"  # where it is documented and imported from

    def __init__(self, reason: str) -> None:
        super().__init__(f"libchan session closed: {reason}")
        self.reason = reason


def broken_error(reason: str | BaseException, default: str = "the other side broke") -> trio.BrokenResourceError:
    """The error a local pipe end raises when what it was forwarded into or from
    broke: a fresh :class:`SessionClosedError` (same reason) when ``reason`` is
    one, so that an end whose session died says so; otherwise a plain
    ``BrokenResourceError`` with ``reason``'s text."""
    if isinstance(reason, SessionClosedError):
        return SessionClosedError(reason.reason)
    return trio.BrokenResourceError(str(reason) or default)
