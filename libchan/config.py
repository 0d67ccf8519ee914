"""Tunable limits and timers of a libchan session, with their defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Config", "FAST_PATHS_ENV"]

#: Environment variable: ``0`` (or ``false``, ``no``, ``off``) makes every Config
#: made afterwards default to ``fast_paths=False``.
FAST_PATHS_ENV = "LIBCHAN_FAST_PATHS"


def _fast_paths_default() -> bool:
    return os.environ.get(FAST_PATHS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Config:
    """Settings of one session. Every field has a safe default.

    Limits protect the process from bad or slow peers: exceeding one gives the
    application a typed error and the peer a protocol reaction (RST_STREAM or a
    closed session), never unbounded memory.
    """

    #: Largest encoded message accepted or sent, in bytes (also bounds byte-stream
    #: items, which peers send in pieces of at most 64 KiB).
    max_message_size: int = 16 * 1024 * 1024
    #: Deepest nesting of lists/maps inside one message.
    max_nesting_depth: int = 256
    #: Most streams the peer may have open at once on one connection (advertised as
    #: MAX_CONCURRENT_STREAMS, counted as RFC 9113 5.1.2 does), and most streams
    #: (control, parks, channels, byte streams, pending references) of one session;
    #: beyond either, new streams are refused with REFUSED_STREAM (spec 14.1).
    max_streams: int = 10_000
    #: Most references waiting for their stream (and streams waiting for their reference).
    max_pending_references: int = 1_000
    #: Seconds a reference may wait for its stream before it fails.
    reference_timeout: float = 30.0
    #: Seconds between keepalives on idle streams (each side also sends a PING every
    #: tick_interval: a third of the shorter of this and peer_timeout).
    keepalive_interval: float = 15.0
    #: Parked requests an HTTP/2 client keeps so the server can open streams, once the
    #: server has opened one through a parked request (spec 7.3).
    park_pool_size: int = 4
    #: Parked requests an HTTP/2 client keeps until then (at most ``park_pool_size``):
    #: a session whose server never opens a stream holds one (each costs both sides
    #: about 2 KB while idle).
    park_pool_initial: int = 1
    #: Seconds a server-side open waits for a parked request before failing.
    open_timeout: float = 30.0
    #: Seconds ``connect()`` waits for the TLS handshake and then for the server's first
    #: bytes (its SETTINGS, or the answer to our PING) before it fails with a
    #: :class:`~libchan.ConnectError` that says what is likely wrong; and seconds a
    #: server gives a new connection to finish its TLS handshake and send its first
    #: bytes before closing it.
    handshake_timeout: float = 5.0
    #: Seconds a server session waits, from its start, for the client's control stream
    #: (spec 6.2) before it ends as broken (spec 6.7): a session made by park or stream
    #: requests alone would otherwise keep its handler running forever.
    control_timeout: float = 10.0
    #: HTTP/2 stream receive window we advertise (also bounds per-stream buffering).
    #: 4 MiB: with less, one bulk byte stream waits for WINDOW_UPDATEs (bench/).
    stream_window: int = 4 * 1024 * 1024
    #: HTTP/2 connection receive window we advertise.
    connection_window: int = 64 * 1024 * 1024
    #: Largest HTTP/2 frame payload we accept.
    max_frame_size: int = 1024 * 1024
    #: Bytes a sender may queue on one stream beyond the peer's window before send() blocks.
    send_buffer: int = 256 * 1024
    #: Largest header block (name+value bytes) accepted.
    max_header_list_size: int = 64 * 1024
    #: Flood limits of one connection (spec 14.2), each a sustained rate per second with
    #: bursts of ten seconds' worth; past one the connection ends with
    #: GOAWAY(ENHANCE_YOUR_CALM). PING and SETTINGS frames asking for an answer
    #: (keepalive PINGs come every 5 s).
    max_ping_rate: int = 10
    #: RST_STREAM frames received (rapid reset; closing a session resets its streams,
    #: hence a burst of ``max_streams`` by default).
    max_reset_rate: int = 1000
    #: Streams the peer opens (stream churn).
    max_stream_rate: int = 5000
    #: Frames that carry nothing: DATA without data or END_STREAM, WINDOW_UPDATE,
    #: PRIORITY, unknown types (each DATA frame we send allows two more).
    max_empty_frame_rate: int = 1000
    #: Seconds a graceful close waits for queued outgoing data to drain.
    close_timeout: float = 5.0
    #: Seconds without any byte from the peer (it answers our PINGs, sent every
    #: tick_interval) after which the connection is declared dead: this
    #: detects a half-open TCP connection (peer silent, socket open).
    peer_timeout: float = 45.0
    #: Bytes a server (one ``libchan.serve`` call) holds for one connection: partial
    #: messages being assembled, received data the application has not read, data
    #: queued toward the peer, on all the connection's streams (spec 14.1). Above it the
    #: connection ends with GOAWAY(ENHANCE_YOUR_CALM). A server grants a connection at
    #: most half of it as connection window, and stops acknowledging the connection
    #: window while the connection holds more than ``connection_buffer`` minus that
    #: window, so a well-behaved peer slows down before it gets there (spec 12.2).
    connection_buffer: int = 128 * 1024 * 1024
    #: The memory a server may take for all its connections together. The bytes they
    #: make it hold are kept under half of it, and a connection's own limit is at most
    #: that much too; above it, the connection holding the most is ended with
    #: GOAWAY(ENHANCE_YOUR_CALM) (and logged). The other half is for what holding the
    #: bytes costs beyond the bytes (the allocator's slack, copies made while a message
    #: is decoded or encoded) and the process's own memory: a server whose peers all
    #: misbehave stays under this much resident memory (spec 14.1, bench/soak.py).
    server_buffer: int = 256 * 1024 * 1024
    #: Connections a server serves at once, counted from their acceptance (those still
    #: in their TLS handshake included); one more is ended at once with
    #: GOAWAY(ENHANCE_YOUR_CALM), or closed before its handshake when the connections
    #: still in theirs make up the number.
    max_connections: int = 512
    #: Sessions a server runs at once (named and anonymous, HTTP/2 and Go profile);
    #: the request that would start one more is refused with RST_STREAM(REFUSED_STREAM)
    #: (a Go-profile connection with GOAWAY).
    max_sessions: int = 4096
    #: Sessions one connection of a server may carry requests for (a proxy's shared
    #: connection carries many clients' sessions); the request that would add one more
    #: is refused with RST_STREAM(REFUSED_STREAM).
    max_connection_sessions: int = 1024
    #: The engine's shortcuts (docs: ARCHITECTURE.md, "Fast paths"): the h2 DATA fast
    #: path and single-frame lanes, direct socket and TLS I/O, consumer reads, the
    #: splice lanes into local pipes and the short-bytes framing table. None of them
    #: changes a byte on the wire. False takes the long way everywhere, using only
    #: other libraries' public APIs (the default is False when the environment
    #: variable ``LIBCHAN_FAST_PATHS`` is ``0``).
    fast_paths: bool = field(default_factory=_fast_paths_default)

    @property
    def tick_interval(self) -> float:
        """Seconds between keepalive ticks (spec 13): a third of the shorter of
        ``keepalive_interval`` and ``peer_timeout`` (each tick sends a PING, so that a
        peer with the same ``peer_timeout`` hears from us three times within it)."""
        return min(self.keepalive_interval, self.peer_timeout) / 3

    def __post_init__(self) -> None:
        for name in (
            "max_message_size",
            "max_nesting_depth",
            "max_streams",
            "max_pending_references",
            "park_pool_size",
            "park_pool_initial",
            "stream_window",
            "connection_window",
            "max_frame_size",
            "send_buffer",
            "max_header_list_size",
            "connection_buffer",
            "server_buffer",
            "max_connections",
            "max_sessions",
            "max_connection_sessions",
            "max_ping_rate",
            "max_reset_rate",
            "max_stream_rate",
            "max_empty_frame_rate",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Config.{name} must be a positive int, not {value!r}")
        for name in (
            "reference_timeout",
            "keepalive_interval",
            "open_timeout",
            "handshake_timeout",
            "control_timeout",
            "close_timeout",
            "peer_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Config.{name} must be a positive number, not {value!r}")
        if not 16384 <= self.max_frame_size <= 16777215:
            raise ValueError("Config.max_frame_size must be within 16384..16777215 (RFC 9113)")
        if self.stream_window > 2**31 - 1 or self.connection_window > 2**31 - 1:
            raise ValueError("HTTP/2 windows are at most 2**31-1")
