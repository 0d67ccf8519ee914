"""Exceptions raised by libswarm."""

from __future__ import annotations

__all__ = [
    "LibswarmError",
    "RemoteError",
    "NoReplyError",
    "ReplyTimeoutError",
    "UnreachableError",
    "UnexpectedReplyError",
    "MessageError",
    "UsageError",
]


class LibswarmError(Exception):
    """Base class of every libswarm error."""


class RemoteError(LibswarmError):
    """The object answered ``Error``; ``text`` is the remote text, verbatim.

    ``verb`` is the verb of the request that failed (None for an Error that
    arrived inside a stream). A :class:`~libswarm.Server` handler that lets a
    RemoteError escape answers with the same text, so an error keeps its
    original wording across any number of hops.
    """

    def __init__(self, text: str, verb: object = None) -> None:
        super().__init__(text)
        self.text = text
        self.verb = verb


class NoReplyError(LibswarmError):
    """The request was delivered but its reply channel ended or broke with no answer.

    This is what a caller sees when the object (or a hop on the way) died,
    was stopped, or closed the reply without replying. ``reason`` says which.
    """

    def __init__(self, reason: str, verb: object = None) -> None:
        super().__init__(f"{verb}: {reason}" if verb is not None else reason)
        self.reason = reason
        self.verb = verb


class ReplyTimeoutError(NoReplyError):
    """No answer arrived within the :class:`~libswarm.Client`'s ``timeout``."""


class UnreachableError(LibswarmError):
    """The request could not be sent: the object's channel is closed or broken."""


class UnexpectedReplyError(LibswarmError):
    """The object answered with a verb or arity the call does not accept."""


class MessageError(LibswarmError, ValueError):
    """A value is not a valid libswarm message (bad verb, args, ret or att)."""


class UsageError(LibswarmError, ValueError):
    """A backend was given arguments it cannot use (the text is a usage line)."""
