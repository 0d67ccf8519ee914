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

import sys
import types
from typing import TYPE_CHECKING, Any

# The names are imported when first used (PEP 562), so that a program that only needs
# part of the package (a command's --help, libswarm's message types) does not pay for
# importing trio, h2 and the engine. mypy and other type checkers see the imports below.
if TYPE_CHECKING:
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
    from .peer import Peer
    from .pipe import PipeReceiver, PipeSender, pipe
    from .session import Session
    from .stream import ByteStream, PipeStream, ReadOnly, WriteOnly, stream_pipe
    from .address import parse_url
    from .transport import connect, serve

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
    "Peer",
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

#: exported name -> the module that defines it
_EXPORTS = {
    "Sender": "channel",
    "Receiver": "channel",
    "Config": "config",
    "ConnectError": "errors",
    "LibchanError": "errors",
    "LocalProtocolError": "errors",
    "MessageTooLargeError": "errors",
    "ProtocolError": "errors",
    "RemoteProtocolError": "errors",
    "SessionClosedError": "errors",
    "UnresolvedReferenceError": "errors",
    "copy_channel": "forward",
    "copy_stream": "forward",
    "PipeReceiver": "pipe",
    "PipeSender": "pipe",
    "pipe": "pipe",
    "Session": "session",
    "Peer": "peer",
    "ByteStream": "stream",
    "PipeStream": "stream",
    "ReadOnly": "stream",
    "WriteOnly": "stream",
    "stream_pipe": "stream",
    "connect": "transport",
    "parse_url": "address",
    "serve": "transport",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name stays an error

    from ._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
    del lazy_exports

    class _Package(type(sys.modules[__name__])):
        """This package's module type: importing the submodule ``libchan.pipe`` must not
        hide the function ``libchan.pipe`` (the import system sets the submodule as an
        attribute of its package)."""

        def __setattr__(self, name: str, value: Any) -> None:
            if name in _EXPORTS and isinstance(value, types.ModuleType):
                return
            super().__setattr__(name, value)

    sys.modules[__name__].__class__ = _Package
