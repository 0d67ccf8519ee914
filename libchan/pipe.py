"""The in-memory transport: :func:`pipe` gives a connected Sender/Receiver pair.

A pipe behaves like a network channel (same classes, same errors), so code can
be tested in memory and moved onto a session unchanged. Putting either end of a
pipe into a message sent over a session makes the session forward between the
pipe and a new network stream.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from .channel import Receiver, Sender
from .errors import SessionClosedError, broken_error

__all__ = ["pipe", "PipeSender", "PipeReceiver"]


class _Shared:
    __slots__ = ("broken", "gone", "source")

    def __init__(self) -> None:
        #: Why the channel forwarded into this pipe broke (the receiver raises it).
        self.broken: str | BaseException | None = None
        #: Why the session the receiving end was forwarded into ended (the sender raises it).
        self.gone: SessionClosedError | None = None
        #: A session stream forwarded into this pipe, whose messages the receiving
        #: task may take directly (``read_for_pipe``), skipping the forwarder.
        self.source: Any = None


class PipeSender(Sender):
    """Sending end of an in-memory :func:`pipe`."""

    def __init__(self, inner: trio.MemorySendChannel[Any], shared: _Shared | None = None) -> None:
        self._inner = inner
        self._shared = shared or _Shared()

    async def send(self, value: Any) -> None:
        try:
            await self._inner.send(value)
        except trio.BrokenResourceError:
            if self._shared.gone is not None:
                raise broken_error(self._shared.gone) from None
            raise

    def send_nowait(self, value: Any) -> None:
        """Send without blocking; raises :class:`trio.WouldBlock` if full."""
        self._inner.send_nowait(value)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def close(self) -> None:
        """Synchronous close (the receiver sees end of channel)."""
        self._inner.close()

    def _abort(self, reason: str | BaseException = "the sending side broke") -> None:
        """Close so that the receiver gets BrokenResourceError instead of EndOfChannel
        (used when a channel forwarded into this pipe broke)."""
        if self._shared.broken is None:
            self._shared.broken = reason
        self._inner.close()

    def __repr__(self) -> str:
        return f"<libchan.PipeSender at {id(self):#x}>"


class PipeReceiver(Receiver):
    """Receiving end of an in-memory :func:`pipe`."""

    def __init__(self, inner: trio.MemoryReceiveChannel[Any], shared: _Shared | None = None) -> None:
        self._inner = inner
        self._shared = shared or _Shared()

    async def receive(self) -> Any:
        source = self._shared.source
        if source is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                try:
                    value = self._inner.receive_nowait()
                except trio.WouldBlock:
                    pass
                except trio.EndOfChannel:
                    break  # raised below, with the broken-pipe mapping
                else:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return value
                what, value = await source.read_for_pipe()
                if what == "item":
                    return value
                if what == "no":
                    break
        try:
            return await self._inner.receive()
        except trio.EndOfChannel:
            if self._shared.broken is not None:
                raise broken_error(self._shared.broken) from None
            raise

    def receive_nowait(self) -> Any:
        """Receive without blocking; raises :class:`trio.WouldBlock` if empty."""
        return self._inner.receive_nowait()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def close(self) -> None:
        """Synchronous close (the sender's next send fails)."""
        self._inner.close()

    def _gone(self, exc: BaseException) -> None:
        """The channel this end was forwarded into failed with ``exc``: the sender's
        next send raises it if the session ended (else the plain broken-pipe error)."""
        if isinstance(exc, SessionClosedError) and self._shared.gone is None:
            self._shared.gone = exc
        self._inner.close()

    def __repr__(self) -> str:
        return f"<libchan.PipeReceiver at {id(self):#x}>"


def pipe(max_buffer_size: int | float = 0) -> tuple[PipeSender, PipeReceiver]:
    """Return a connected in-memory ``(Sender, Receiver)`` pair.

    ``max_buffer_size`` is how many messages may wait unreceived before
    ``send`` blocks (0, the default, is an unbuffered rendezvous like a Go
    channel; ``math.inf`` never blocks).
    """
    if max_buffer_size != math.inf and (not isinstance(max_buffer_size, int) or max_buffer_size < 0):
        raise ValueError("max_buffer_size must be a non-negative int or math.inf")
    s, r = trio.open_memory_channel[Any](max_buffer_size)
    shared = _Shared()
    return PipeSender(s, shared), PipeReceiver(r, shared)
