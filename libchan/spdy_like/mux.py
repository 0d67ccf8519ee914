"""The sans-IO multiplexer interface the session is written against.

A multiplexer turns one byte connection into many numbered, flow-controlled,
bidirectional streams with headers. The HTTP/2 profile implements it with the
``h2`` library (:mod:`.h2mux`); the Go-compatible profile implements it with
SPDY/3.1. Like ``h2`` itself it does no I/O: feed received bytes to
``receive_data`` and act on the returned events; call methods to act, then
write out ``data_to_send()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

__all__ = [
    "MuxEvent",
    "StreamOpened",
    "StreamAnswered",
    "DataReceived",
    "StreamEnded",
    "StreamReset",
    "WindowOpened",
    "ConnectionEnded",
    "Multiplexer",
    "FastLane",
    "Headers",
    "ENHANCE_YOUR_CALM",
]

Headers = dict[str, str]

#: HTTP/2's ENHANCE_YOUR_CALM (RFC 9113 7), the code the multiplexers' callers pass to
#: ``close``/``reset_stream`` and find in ConnectionEnded for a peer that asks too much
#: (the SPDY multiplexer maps it to a SPDY status).
ENHANCE_YOUR_CALM = 11


class MuxEvent:
    """Base class of multiplexer events."""


@dataclass(frozen=True)
class StreamOpened(MuxEvent):
    """The peer opened a stream (HTTP/2: a request arrived)."""

    stream_id: int
    headers: Headers
    ended: bool = False


@dataclass(frozen=True)
class StreamAnswered(MuxEvent):
    """The peer answered a stream we opened (HTTP/2: response headers)."""

    stream_id: int
    headers: Headers
    ended: bool = False


@dataclass(slots=True)  # not frozen: created once per DATA frame, frozen init costs more
class DataReceived(MuxEvent):
    stream_id: int
    #: The payload: bytes, or a read-only view of part of a read (a large DATA frame
    #: passed on as it arrives: whoever keeps it copies it).
    data: bytes | memoryview
    #: Bytes of flow-control window the frame used (data plus padding).
    flow_length: int


@dataclass(frozen=True)
class StreamEnded(MuxEvent):
    """The peer finished its half of the stream."""

    stream_id: int


@dataclass(frozen=True)
class StreamReset(MuxEvent):
    stream_id: int
    error_code: int
    #: True if the peer reset it, False if the multiplexer did (protocol error).
    remote: bool = True


@dataclass(frozen=True)
class WindowOpened(MuxEvent):
    """More may be sent: on one stream, or on all (``stream_id`` None)."""

    stream_id: int | None


@dataclass(frozen=True)
class ConnectionEnded(MuxEvent):
    """The connection is over (GOAWAY received or a connection error)."""

    error_code: int
    reason: str
    remote: bool


@dataclass(frozen=True, slots=True)
class FastLane:
    """A multiplexer's optional single-frame lanes (HTTP/2 only; None elsewhere).

    * ``receive_sole_data(data)``: if ``data`` is exactly one plain DATA frame that
      may skip the event objects, account for it and return ``(stream_id,
      payload)``; else None and nothing was consumed (use ``receive_data``);
    * ``data_header_now(stream_id, length)``: for a task that writes one DATA frame
      of ``length`` bytes itself, now: its header, the frame accounted for; else
      None and nothing changed (queue the data).
    """

    receive_sole_data: Callable[[bytes], "tuple[int, bytes] | None"]
    data_header_now: Callable[[int, int], "bytes | None"]


class Multiplexer(Protocol):
    client_side: bool
    #: Flow control per stream (HTTP/2) or none (SPDY as Go speaks it: TCP's only).
    flow_controlled: bool
    #: A server ends its direction with the in-body end marker (HTTP/2).
    needs_end_marker: bool
    #: The single-frame lanes, or None.
    lane: FastLane | None
    #: receive_data left buffered input for its next call (which may pass b"").
    input_pending: bool

    @property
    def closed(self) -> bool: ...
    @property
    def handshake_done(self) -> bool:
        """The peer's connection preface, if the protocol has one, arrived whole."""

    @property
    def buffered_input(self) -> int:
        """Input bytes held until more arrive or the next call (a partial frame, frames
        left for the next slice): what a budget charges the connection for."""

    def receive_data(self, data: bytes, now: float | None = None) -> list[MuxEvent]: ...
    def has_output(self) -> bool: ...
    def data_to_send(self) -> bytes: ...
    def data_chunks(self) -> list[bytes | memoryview]: ...
    def can_open_stream(self) -> bool: ...
    def open_stream(self, headers: list[tuple[str, str]], end_stream: bool = False) -> int: ...
    def answer_stream(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool = False) -> None: ...
    def sendable(self, stream_id: int) -> int: ...
    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool = False) -> None: ...
    def send_data_parts(self, stream_id: int, parts: list[bytes | memoryview], end_stream: bool = False) -> None: ...
    def end_stream(self, stream_id: int) -> None: ...
    def reset_stream(self, stream_id: int, error_code: int) -> None: ...
    def acknowledge(self, stream_id: int | None, size: int) -> None: ...
    def ping(self) -> None: ...
    def close(self, error_code: int = 0, reason: str = "") -> None: ...
