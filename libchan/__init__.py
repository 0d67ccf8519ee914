"""libchan for trio: Go-style channels over the network.

A *session* multiplexes many one-way *channels* over one connection; either
side may open one. Messages are structured data (CBOR in the default HTTP/2
profile) that may carry, anywhere inside them, further channels (a
:class:`Sender` or :class:`Receiver`) and byte streams.

::

    import libchan, trio

    async def handler(session):
        async for receiver in session:
            async for msg in receiver:
                await msg["reply"].send({"echo": msg["text"]})

    async def client():
        async with libchan.connect("tcp://127.0.0.1:9323") as session:
            sender = await session.open_sender()
            reply, replies = libchan.pipe()
            await sender.send({"text": "hi", "reply": reply})
            print(await replies.receive())
"""

from .channel import Receiver, Sender
from .config import Config
from .errors import (
    ConnectError,
    LibchanError,
    LocalProtocolError,
    MessageTooLargeError,
    ProtocolError,
    RemoteProtocolError,
    SessionClosedError,
    UnresolvedReferenceError,
)
from .forward import copy_channel, copy_stream
from .pipe import PipeReceiver, PipeSender, pipe
from .session import Session
from .stream import ByteStream, PipeStream, ReadOnly, WriteOnly, stream_pipe
from .transport import connect, parse_url, serve

__version__ = "0.1.0"

__all__ = [
    "Sender",
    "Receiver",
    "pipe",
    "PipeSender",
    "PipeReceiver",
    "ByteStream",
    "PipeStream",
    "ReadOnly",
    "WriteOnly",
    "stream_pipe",
    "Session",
    "connect",
    "serve",
    "parse_url",
    "Config",
    "copy_channel",
    "copy_stream",
    "LibchanError",
    "ConnectError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "MessageTooLargeError",
    "UnresolvedReferenceError",
    "SessionClosedError",
]
