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
from typing import Protocol

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
    "Headers",
]

Headers = dict[str, str]


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
    data: bytes
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


class Multiplexer(Protocol):
    client_side: bool

    def receive_data(self, data: bytes) -> list[MuxEvent]: ...
    def receive_sole_data(self, data: bytes) -> tuple[int, bytes] | None: ...
    def has_output(self) -> bool: ...
    def data_header_now(self, stream_id: int, length: int) -> bytes | None: ...
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
