"""trio's internals: driving a ``trio.SSLStream``'s own ``SSLObject`` directly.

Once an ``SSLStream``'s handshake is done, :mod:`libchan.engine.sockio` encrypts
and decrypts with the stream's own ``ssl.SSLObject`` and memory BIOs and moves the
ciphertext to and from the socket itself (one synchronous step per read or write,
where trio takes several awaits and locks). The attributes it needs are private
to trio (written for trio 0.25 to 0.35; pyproject bounds it): :func:`take_over`
checks every one of them and answers None when anything differs, and the caller
then uses the stream's public methods. The stream is left consistent, so its own
``aclose`` works afterwards.
"""

from __future__ import annotations

import ssl
from typing import Any

import trio

__all__ = ["TlsState", "take_over", "pending_output"]


class TlsState:
    """The TLS layer of a taken-over ``trio.SSLStream`` (see the module docstring)."""

    __slots__ = ("stream", "obj", "incoming", "outgoing", "ragged_eof_ok")

    def __init__(self, stream: trio.SSLStream[Any]) -> None:
        self.stream = stream
        self.obj: ssl.SSLObject = stream._ssl_object
        self.incoming: ssl.MemoryBIO = stream._incoming
        self.outgoing: ssl.MemoryBIO = stream._outgoing
        #: An EOF without close_notify is a clean end (https_compatible), as in trio.
        self.ragged_eof_ok: bool = bool(stream._https_compatible)

    def take_delayed_output(self) -> bytes | None:
        """The TLS 1.3 session tickets trio held back until its first write (now ours to send)."""
        delayed: bytes | bytearray | None = self.stream._delayed_outgoing
        self.stream._delayed_outgoing = None
        return bytes(delayed) if delayed else None

    def broken(self, exc: BaseException) -> trio.BrokenResourceError:
        """Mark the trio stream broken (its aclose then only closes the socket), as
        trio does on a TLS error, and return the error to raise."""
        self.stream._state = type(self.stream._state).BROKEN
        err = trio.BrokenResourceError()
        err.__cause__ = exc
        return err


def take_over(transport: trio.abc.Stream) -> tuple[TlsState, trio.SocketStream] | None:
    """The TLS state and socket of an SSLStream over a socket whose handshake is
    done and that nothing else uses now; None if it is not one (or trio changed)."""
    if not isinstance(transport, trio.SSLStream):
        return None
    inner = transport.transport_stream
    state = getattr(transport, "_state", None)
    handshook = getattr(transport, "_handshook", None)
    if (
        not isinstance(inner, trio.SocketStream)
        or getattr(state, "name", None) != "OK"
        or not getattr(handshook, "done", False)
        or not isinstance(getattr(transport, "_ssl_object", None), ssl.SSLObject)
        or not isinstance(getattr(transport, "_incoming", None), ssl.MemoryBIO)
        or not isinstance(getattr(transport, "_outgoing", None), ssl.MemoryBIO)
        or not hasattr(transport, "_delayed_outgoing")
        or not hasattr(transport, "_https_compatible")
        or transport._outgoing.pending
    ):
        return None
    return TlsState(transport), inner


def pending_output(stream: trio.SSLStream[Any]) -> bytes:
    """What the stream's ``SSLObject`` produced that trio did not send: after a failed
    server handshake, the alert that tells the client why (trio marks the stream broken
    without sending it). Empty if there is none, or if trio changed."""
    outgoing = getattr(stream, "_outgoing", None)
    if not isinstance(outgoing, ssl.MemoryBIO) or not outgoing.pending:
        return b""
    return outgoing.read()
