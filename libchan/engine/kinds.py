"""What an object in a message is sent as: the classifier the codecs are given.

The codecs (:mod:`libchan.messages`) know the wire kinds but not the trio types;
this is where the two meet.
"""

from __future__ import annotations

import trio

from ..channel import Receiver, Sender
from ..stream import stream_direction

__all__ = ["kind_of"]

_STREAM_KINDS = {"duplex": "stream", "read": "read-stream", "write": "write-stream"}


def kind_of(obj: object) -> str | None:
    """The reference kind ``obj`` is sent as, or None if it is plain data."""
    if isinstance(obj, (Sender, trio.abc.SendChannel)):
        return "sender"
    if isinstance(obj, (Receiver, trio.abc.ReceiveChannel)):
        return "receiver"
    direction = stream_direction(obj)
    if direction is not None:
        return _STREAM_KINDS[direction]
    return None
