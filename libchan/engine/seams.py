"""The seams between the engine's three parts, written down as protocols.

* a **session** (:class:`~.core.SessionCore`) owns streams and references;
* a **link** (:class:`~.link.Link`) drives one connection's multiplexer;
* a **stream** (:class:`~.netstream.NetStream`) holds one multiplexed stream's state.

Each part is written against the others' protocol here, never against their
classes, so none of the three modules imports another (``core`` builds links and
streams, and is the only one that imports them). A field listed here is part of
the seam: the only state the other side may read or, where noted, write.
Anything else on the classes is theirs alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # (no cycle: these modules do not import this one's importers)
    from .budget import Account
    from ..config import Config
    from ..spdy_like.mux import Multiplexer
    from .outbox import Outbox
    from .waiters import Lot

__all__ = ["Profile", "SessionPort", "LinkPort", "StreamPort"]


class Profile(Protocol):
    """A wire profile (:mod:`.profiles`): what differs between HTTP/2 + CBOR and SPDY + msgpack."""

    name: str
    parks: bool
    control_stream: bool
    keepalive_data: bool
    kind_in_headers: bool
    ref_parity: bool
    flow_controlled: bool
    chunk_size: int

    def make_mux(self, *, client_side: bool, config: Config) -> Multiplexer: ...
    def make_codec(self, config: Config) -> Any: ...
    def message_body(self, session: SessionPort) -> Any: ...
    def bytes_body(self, session: SessionPort) -> Any: ...
    def control_body(self, session: SessionPort) -> Any: ...
    def wire_message(self, payload: bytes) -> bytes | tuple[bytes, bytes]: ...
    def chunk_header(self, length: int) -> bytes: ...
    def short_bytes_framing(self, max_message_size: int) -> tuple[int, list[bytes]]: ...


class SessionPort(Protocol):
    """What a stream, a link and a profile may ask of their session."""

    config: Config
    profile: Profile
    server_side: bool
    #: Why the session ended (None while open).
    closed_reason: str | None
    #: This side started closing it.
    closing: bool
    #: Short bytes messages are framed from a table (see Profile.short_bytes_framing).
    short_bytes_below: int
    short_bytes_heads: list[bytes]

    codec: Any

    def decode(self, payload: bytes) -> Any: ...
    def on_reference(self, kind: str, ref: int) -> Any: ...
    def encode(self, value: Any) -> tuple[bytes, list[tuple[Any, str, Any]]]: ...
    async def open_and_forward(self, new: list[tuple[Any, str, Any]], parent: Any) -> None: ...
    def stream_done(self, ns: Any) -> None: ...
    def on_control_ended(self, ns: Any) -> None: ...
    def on_control_failed(self, reason: str) -> None: ...
    def on_answered(self, ns: Any, headers: dict[str, str]) -> None: ...
    def on_reset(self, ns: Any, code: int, remote: bool) -> None: ...


class LinkPort(Protocol):
    """What a stream may ask of the link (connection) it is bound to, and what the
    session asks of a link it reaches through a stream (``alive``, ``unschedule``,
    ``answer``: a parked stream handed over to another)."""

    #: Set by a stream that woke a waiting consumer: the reader task steps aside.
    handoff: bool
    #: Who reads the connection now: None, the link's reader, or a stream's consumer.
    input_owner: object | None
    #: The stream whose consumer processes the input it read for it (read_for).
    reading_for: Any
    #: The writer task is due to run and takes every ready stream with it (read only).
    writer_due: bool
    #: Streams with something to send (read only).
    ready: dict[Any, None]
    #: A sending task wrote to the socket since the last pass (read only).
    flushed: bool
    #: A server's connection: the budget account its streams charge what they hold.
    account: Account | None
    #: Bytes of complete items its streams hold unread (kept by the streams, NetStream._hold).
    unread: int
    #: Streams holding more than ``hold_limit`` unread bytes (kept by the streams).
    streams_over: int
    #: Unread bytes beyond which a stream counts in ``streams_over`` (read only).
    hold_limit: int
    #: Streams that left bytes their reader took unaccounted for (kept by the streams).
    releasing: dict[Any, None]

    @property
    def alive(self) -> bool:
        """The connection has not ended."""

    def register(self, ns: Any) -> None: ...
    def stream_done(self, ns: Any) -> None: ...
    def schedule(self, ns: Any) -> None: ...
    def send_now(self, ns: Any, wire: bytes) -> bool: ...
    def reset_stream(self, ns: Any, code: int) -> None: ...
    def acknowledge(self, ns: Any, size: int) -> None: ...
    def can_read_for(self, ns: Any) -> bool: ...
    async def read_for(self, ns: Any) -> None: ...
    def input_released(self) -> None: ...
    def resume_reading(self) -> None: ...
    def stop_reading_for(self, ns: Any) -> None: ...
    def unschedule(self, ns: Any) -> None: ...
    def answer(self, ns: Any, headers: list[tuple[str, str]], *, end_stream: bool = False) -> None: ...


class StreamPort(Protocol):
    """What a link and a session may ask of a stream (all but the methods are read
    only for them, except ``link``, ``last_sent`` and ``owed``, which the link keeps)."""

    session: SessionPort
    link: LinkPort | None
    role: str
    ref: int | None
    stream_id: int | None
    can_send: bool
    done: bool
    error: BaseException | None
    in_ended: bool
    out_end_requested: bool
    out_ended: bool
    marker_sent: bool
    outbox: Outbox
    #: Wake only: until a task waited, a lot shared by all streams (NetStream.recv_waiters).
    send_lot: Lot
    recv_lot: Lot
    last_sent: float
    owed: int
    held: int
    #: Of ``held``: bytes of items its reader took, not accounted for yet.
    released: int
    charged: int
    splice: Any

    def bind(self, link: Any, stream_id: int, *, can_send: bool) -> None: ...
    def on_data(self, data: bytes | memoryview) -> None: ...
    def on_end(self) -> None: ...
    def on_reset(self, code: int, remote: bool = True) -> None: ...
    def on_out_ended(self) -> None: ...
    def on_marker_sent(self) -> None: ...
    def fail(self, exc: BaseException) -> None: ...
    def reset(self, code: int) -> None: ...
    def request_end(self) -> None: ...
    def drop_inbox(self, error: BaseException | None = None) -> None: ...
    def account_release(self) -> None: ...

