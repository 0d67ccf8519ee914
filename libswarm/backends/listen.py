"""``listen``: serve the rest of the chain to remote callers over libchan.

Args: ``[--cert FILE --key FILE --ca FILE] [--forwarded-identity] URL`` with URL ``tcp://HOST:PORT``,
``tls://HOST:PORT`` (mutual TLS: all three options required, client certificates
signed by ``--ca`` are demanded) or ``unix:///PATH`` (the socket file is removed on
exit). Port 0 picks a free port; the bound addresses are printed to stderr as
``listen: serving on URL``.

Every channel a remote session opens (``Client(await session.open_sender())`` on the
peer, or a ``connect`` stage) carries libswarm messages: each one is sent on this
service's output, i.e. to the next stage, with its ``Ret`` (a network Sender) intact,
so the next stage answers the remote caller directly. Messages arriving on this
service's own input are passed on too. It runs until cancelled. A request that cannot
be passed on (the next stage is gone) is answered ``Error("listen URL: ...")``.

Identity (spec/LIBSWARM.md 9.6): a remote caller cannot say who it is; its connection does.
Every message taken from a remote session goes on with the ``Identity`` of that session's
peer (``libchan.Session.peer``), whatever it carried: over ``tls://`` the subject and SANs of
its verified client certificate, over ``unix://`` its ``SO_PEERCRED`` uid, gid and pid, over
``tcp://`` its address (anonymous). With ``--forwarded-identity`` the ``Identity`` a remote
message carries is kept: for a listen whose peers are trusted front ends (e.g. a
``dockerserver`` on another host reaching this one through ``connect`` over mutual TLS) that
state their own callers' identities.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import trio

import libchan

from .._identity import identity_of_peer
from .._message import Message, reply_sender_of
from libchan.closing import aclose_quietly
from .._service import Service
from .._verbs import Verb
from ._remote import parse_remote_args, server_context

__all__ = ["Listen"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class Listen(Service):
    """Accept libchan sessions on a URL and feed their channels to the next stage."""

    def __init__(self, *args: str, quiet: bool = False) -> None:
        self.forwarded_identity = "--forwarded-identity" in args
        self.options = parse_remote_args("listen", tuple(a for a in args if a != "--forwarded-identity"))
        self.url = self.options.url
        self.ssl = server_context(self.options) if self.options.scheme == "tls" else None
        self.quiet = quiet
        self.bound: list[str] = []
        self.sessions = 0
        self.ready = trio.Event()

    async def run(self, input: Any, output: Any) -> None:
        async with trio.open_nursery() as nursery:
            try:
                self.bound = await nursery.start(
                    partial(libchan.serve, self.url, partial(self._session, output), ssl=self.ssl)
                )
            except OSError as exc:
                raise OSError(exc.errno, f"listen {self.url}: {exc.strerror or exc}") from None
            if not self.quiet:
                print(f"listen: serving on {' '.join(self.bound)}", file=sys.stderr, flush=True)
            self.ready.set()
            await self._pump(input, output, None)
            await trio.sleep_forever()

    async def _session(self, output: Any, session: libchan.Session) -> None:
        self.sessions += 1
        stamp = None if self.forwarded_identity else identity_of_peer(
            session.peer, transport=self.options.scheme).to_wire()
        async with trio.open_nursery() as nursery:
            try:
                async for receiver in session:
                    nursery.start_soon(self._pump, receiver, output, stamp)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _pump(self, receiver: Any, output: Any, stamp: dict[str, Any] | None) -> None:
        """Pass ``receiver``'s messages on, each with the ``Identity`` ``stamp`` (None: as they are)."""
        try:
            while True:
                try:
                    raw = await receiver.receive()
                except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                except libchan.ProtocolError:
                    return  # a bad message from the peer: that channel is reset
                if stamp is not None and isinstance(raw, dict):
                    raw = {**raw, "Identity": stamp}  # a remote caller cannot state an identity
                try:
                    await output.send(raw)
                except _GONE as exc:
                    ret = reply_sender_of(raw)
                    if ret is not None:
                        with trio.move_on_after(5):
                            try:
                                text = f"listen {self.url}: the chain behind is gone ({exc or type(exc).__name__})"
                                await ret.send(Message(Verb.Error, (text,)).to_wire())
                            except Exception:
                                pass
                        await aclose_quietly(ret)
        finally:
            await aclose_quietly(receiver)
