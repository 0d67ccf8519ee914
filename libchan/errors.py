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

from typing import TYPE_CHECKING, Any

# SessionClosedError and broken_error are trio's BrokenResourceError: they live in
# ._closed_errors and are imported when first used (PEP 562), so that the codecs and
# the blocking client (libchan.oneshot), which import this module, do not import trio.
if TYPE_CHECKING:
    from ._closed_errors import SessionClosedError as SessionClosedError, broken_error as broken_error

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


def __getattr__(name: str) -> Any:
    if name in ("SessionClosedError", "broken_error"):
        from ._closed_errors import SessionClosedError, broken_error

        value = {"SessionClosedError": SessionClosedError, "broken_error": broken_error}[name]
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
