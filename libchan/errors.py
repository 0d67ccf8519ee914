"""Exceptions raised by libchan.

Following h11/h2, protocol errors say *who* broke the rules:

* :class:`LocalProtocolError` -- our caller asked for something the protocol
  cannot do (a message too large to send, a value that cannot be encoded).
* :class:`RemoteProtocolError` -- the peer sent something invalid (garbage
  bytes, a malformed or truncated message, an unknown tag, a reference that
  never arrives).

Failures of the channel itself use trio's own exceptions, exactly like trio
memory channels: :class:`trio.EndOfChannel` (the sender closed),
:class:`trio.ClosedResourceError` (you closed this end) and
:class:`trio.BrokenResourceError` (the peer or the connection is gone).
:class:`SessionClosedError` is the ``BrokenResourceError`` raised for every
pending operation when a session ends; its ``reason`` says why.
"""

from __future__ import annotations

import trio

__all__ = [
    "LibchanError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "MessageTooLargeError",
    "UnresolvedReferenceError",
    "SessionClosedError",
]


class LibchanError(Exception):
    """Base class of every libchan-specific error."""


class ProtocolError(LibchanError):
    """Somebody broke the libchan protocol."""


class LocalProtocolError(ProtocolError):
    """Our own caller misused the API (for example: an unencodable value)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that violate the protocol."""


class MessageTooLargeError(ProtocolError):
    """A message exceeds the configured ``max_message_size``.

    Raised to the application that tries to send it (``local`` is true) or,
    when the peer sends one, to the receiver of that channel (``local`` false).
    """

    def __init__(self, size: int, limit: int, *, local: bool) -> None:
        who = "outgoing" if local else "incoming"
        super().__init__(f"{who} message of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit
        self.local = local


class UnresolvedReferenceError(RemoteProtocolError):
    """A message referenced a channel or byte stream whose stream never arrived."""


class ConnectError(LibchanError, ConnectionError):
    """:func:`libchan.connect` could not start a session, and says why: the message
    names the likely cause and the fix (a wrong profile or scheme, a certificate the
    other side refused, a server that said nothing). An ``OSError``, like a refused
    connection."""


class SessionClosedError(trio.BrokenResourceError):
    """The session this channel or stream belongs to has ended.

    ``reason`` is a human-readable explanation, e.g. ``"peer closed the
    session"`` or ``"connection lost: ..."``.
    """

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
