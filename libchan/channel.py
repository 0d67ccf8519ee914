"""The two channel interfaces: :class:`Sender` and :class:`Receiver`.

They are trio's own ``SendChannel``/``ReceiveChannel`` ABCs, so every libchan
channel -- in-memory or network -- feels exactly like a trio memory channel:
``send``, ``receive``, ``async for``, ``aclose`` and ``async with``.
"""

from __future__ import annotations

import abc
from typing import Any

import trio

__all__ = ["Sender", "Receiver"]


class Sender(trio.abc.SendChannel[Any]):
    """The sending end of a libchan channel.

    ``await send(msg)`` delivers one message (any value the message codec
    accepts, which may itself contain Senders, Receivers and byte streams).
    ``await aclose()`` ends the channel: the receiver sees
    :class:`trio.EndOfChannel` after the last message. If the receiver closed
    early, ``send`` raises :class:`trio.BrokenResourceError`.
    """

    @abc.abstractmethod
    async def send(self, value: Any) -> None:
        """Send one message; blocks while the receiver applies backpressure."""


class Receiver(trio.abc.ReceiveChannel[Any]):
    """The receiving end of a libchan channel.

    ``await receive()`` returns the next message, raises
    :class:`trio.EndOfChannel` once the sender closed and every message was
    taken, and :class:`trio.BrokenResourceError` if the connection broke.
    ``async for msg in receiver`` iterates until the end of the channel.
    Closing a receiver early tells the sender, whose next ``send`` fails.
    """

    @abc.abstractmethod
    async def receive(self) -> Any:
        """Return the next message."""
