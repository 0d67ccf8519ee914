"""The public :class:`Session`: open, accept, iterate and close channels on one connection.

Everything else a session does (streams, links, references, forwarding) lives in
its engine, :class:`libchan.engine.core.SessionCore`, which this class holds.
"""

from __future__ import annotations

from typing import Any

import trio

from .channel import Receiver, Sender
from .config import Config
from .engine.core import SessionCore
from .peer import Peer

__all__ = ["Session"]


class Session:
    """A libchan session over one trio stream.

    Use it as an async context manager::

        async with libchan.Session(stream) as session:          # client side
            sender = await session.open_sender()
            await sender.send({"hello": "world"})

        async with libchan.Session(stream, server_side=True) as session:
            async for receiver in session:                     # the peer's channels
                ...

    Leaving the ``async with`` closes the session: queued data is flushed
    (bounded by ``config.close_timeout``), the close is said to the peer end to
    end, and every pending operation on either side fails with
    :class:`~libchan.SessionClosedError`.

    ``profile`` is ``"h2"`` (HTTP/2 + CBOR, the default) or ``"spdy"`` (SPDY/3.1 +
    msgpack, Go libchan's). ``authority`` and ``scheme`` are the HTTP/2 request's
    ``:authority`` and ``:scheme``; ``session_id`` the ``libchan-session`` header
    (a random one by default). ``libchan.connect()`` and ``libchan.serve()`` build
    sessions from URLs.
    """

    __slots__ = ("_core", "_peer")

    def __init__(
        self,
        stream: trio.abc.Stream | None = None,
        *,
        server_side: bool = False,
        config: Config | None = None,
        authority: str = "libchan",
        scheme: str = "http",
        session_id: str | None = None,
        profile: str = "h2",
    ) -> None:
        self._core = SessionCore(
            stream,
            server_side=server_side,
            config=config,
            authority=authority,
            scheme=scheme,
            session_id=session_id,
            profile=profile,
        )
        self._peer: Peer | None = None

    @classmethod
    def _over(cls, core: SessionCore, peer: Peer | None = None) -> Session:
        """The public face of a core built by a server (:mod:`libchan.transport`)."""
        session = cls.__new__(cls)
        session._core = core
        session._peer = peer
        return session

    async def __aenter__(self) -> Session:
        await self._core.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._core.__aexit__(*exc_info)

    async def open_sender(self) -> Sender:
        """Open a new top-level channel to the peer and return its Sender.

        The peer receives the matching Receiver from :meth:`accept_receiver`.
        """
        return await self._core.open_sender()

    async def accept_receiver(self) -> Receiver:
        """Wait for the peer's next top-level channel and return its Receiver.

        Raises :class:`trio.EndOfChannel` once the peer closed the session
        gracefully, :class:`~libchan.SessionClosedError` if it broke, and
        :class:`trio.ClosedResourceError` after this side closed it.
        """
        return await self._core.accept_receiver()

    def __aiter__(self) -> Session:
        return self

    async def __anext__(self) -> Receiver:
        try:
            return await self._core.accept_receiver()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def aclose(self, reason: str = "closed by this side") -> None:
        """Close the session: flush, tell the peer, fail everything pending."""
        await self._core.aclose(reason)

    @property
    def closed(self) -> bool:
        """True once the session ended (either side closed it, or the connection broke)."""
        return self._core.closed_reason is not None

    @property
    def closed_reason(self) -> str | None:
        """Why the session ended (None while it is open)."""
        return self._core.closed_reason

    @property
    def config(self) -> Config:
        """The limits and timers this session runs with."""
        return self._core.config

    @property
    def profile(self) -> str:
        """The wire profile: ``"h2"`` or ``"spdy"``."""
        name: str = self._core.profile.name
        return name

    @property
    def peer(self) -> Peer | None:
        """Who the client of a session that ``libchan.serve()`` runs is, from its connection:
        its verified TLS client certificate, its unix credentials, its address
        (:class:`~libchan.Peer`). An HTTP/2 session may span several connections: they must
        all be the same principal (a stream from a connection with another certificate or
        unix user is refused). None on the client side and for a session built on your own
        stream (you have the stream: :func:`libchan.peer.peer_of`)."""
        return self._peer

    @property
    def server_side(self) -> bool:
        return self._core.server_side

    @property
    def session_id(self) -> str | None:
        """The ``libchan-session`` id (HTTP/2 profile; None for SPDY)."""
        return self._core.session_id

    def __repr__(self) -> str:
        side = "server" if self.server_side else "client"
        state = f"closed: {self.closed_reason}" if self.closed else "open"
        return f"<libchan.Session {self.profile} {side} {state}>"
