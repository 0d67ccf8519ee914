"""A link that ends on its side (a protocol error, a flood, the memory budget) while the
peer goes on sending: it half-closes after its GOAWAY and reads and drops what comes
until the peer closes (at most a second), before it closes the socket. Closed with
unread input, the socket would reset the connection, and the reset can destroy the
GOAWAY before the peer reads it."""

from __future__ import annotations

import pytest
import trio

import libchan
from helpers import served

pytestmark = pytest.mark.fast_paths  # (a socket read directly: the default)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
DATA_ON_STREAM_0 = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"  # a connection error (RFC 9113 6.1)
PING = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"
GOAWAY = 7


def _goaway_codes(data: bytes) -> list[int]:
    codes, i = [], 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        if data[i + 3] == GOAWAY and i + 9 + 8 <= len(data):
            codes.append(int.from_bytes(data[i + 13:i + 17], "big"))
        i += 9 + length
    return codes


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_a_goaway_for_a_connection_error_reaches_a_peer_that_keeps_sending(tmp_path, transport):
    """Twenty connections each send a connection error and then a megabyte of PINGs
    without reading; each gets its GOAWAY(PROTOCOL_ERROR), then a clean end of stream
    (TLS: close_notify), never a reset."""

    async def handler(session: libchan.Session) -> None:
        async for _ in session:
            pass

    with trio.fail_after(60):
        async with served(transport, handler, tmp_path) as (url, client_ssl):
            host, port = url.split("://", 1)[1].rsplit(":", 1)
            for _ in range(20):
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, int(port))
                if client_ssl is not None:
                    stream = trio.SSLStream(stream, client_ssl, server_hostname="127.0.0.1")
                got = bytearray()
                async with trio.open_nursery() as nursery:

                    async def keep_sending() -> None:
                        try:
                            await stream.send_all(PREFACE + SETTINGS + DATA_ON_STREAM_0)
                            for _ in range(16):
                                await stream.send_all(PING * 4096)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass

                    nursery.start_soon(keep_sending)
                    while True:
                        data = await stream.receive_some(65536)  # (a reset: BrokenResourceError)
                        if not data:
                            break
                        got += data
                    nursery.cancel_scope.cancel()
                await trio.aclose_forcefully(stream)
                assert _goaway_codes(bytes(got)) == [1], bytes(got[-40:])
