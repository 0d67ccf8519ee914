"""HTTP/2 frame layout (RFC 9113 section 4.1): what the fast lanes read and write by hand."""

from __future__ import annotations

import struct

__all__ = ["HEADER_LEN", "data_header"]

HEADER_LEN = 9
TYPE_DATA = 0x0
TYPE_HEADERS = 0x1
TYPE_PRIORITY = 0x2
TYPE_RST_STREAM = 0x3
TYPE_SETTINGS = 0x4
TYPE_PUSH_PROMISE = 0x5
TYPE_PING = 0x6
TYPE_WINDOW_UPDATE = 0x8
TYPE_CONTINUATION = 0x9
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8

_HEADER = struct.Struct(">BHBBI")


def data_header(length: int, stream_id: int) -> bytes:
    """The header of a DATA frame without flags."""
    return _HEADER.pack(length >> 16, length & 0xFFFF, 0, 0, stream_id)
