"""TLS driven by the link itself (``sockio.TransportIO`` over a ``trio.SSLStream``).

Once the handshake is done, a link reads and writes the socket under a TLS
stream directly and does the encryption with the stream's own ``SSLObject``.
These tests put a :class:`TransportIO` on one end of a real TLS connection
(real sockets, trustme certificates) and an ordinary ``trio.SSLStream`` on the
other, and check that it behaves like the stream it replaces: data both ways,
bytes already buffered at take-over, reads smaller than a record, close_notify,
EOF without close_notify (both ``https_compatible`` settings), corrupt records,
cancelled and interrupted reads, a full socket, and the SSLStream still closing
properly afterwards.
"""

from __future__ import annotations

import hashlib
import os
import ssl

import pytest
import trio

from helpers import certs
from libchan.engine.sockio import TransportIO


async def _tls_pair(*, https_compatible: bool = True, io_side: str = "client"):
    """Two SSLStreams over a socketpair, handshake done; returns (io_stream, peer)."""
    a, b = trio.socket.socketpair()
    client = trio.SSLStream(
        trio.SocketStream(a), certs().client_ctx(mutual=False), server_hostname="localhost",
        https_compatible=https_compatible,
    )
    server = trio.SSLStream(
        trio.SocketStream(b), certs().server_ctx(mutual=False), server_side=True,
        https_compatible=https_compatible,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    return (client, server) if io_side == "client" else (server, client)


async def _read_exactly(io: TransportIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = await io.receive_some(256 * 1024)
        assert data, f"EOF after {len(out)} of {n} bytes"
        out += data
    return bytes(out)


@pytest.mark.parametrize("io_side", ["client", "server"])
async def test_data_both_ways_through_the_ssl_object(io_side):
    with trio.fail_after(10):
        stream, peer = await _tls_pair(io_side=io_side)
        io = TransportIO(stream)
        try:
            assert io.direct and io.tls
            io.try_send([b"hello ", memoryview(b"world")])
            await io.send_all([])
            assert await peer.receive_some(100) == b"hello world"  # small pieces: one record
            await peer.send_all(b"and back")
            assert await _read_exactly(io, 8) == b"and back"
            # a session's first write from a TLS 1.3 server carries the session
            # tickets trio held back; the client reads past them
            assert stream.version() in ("TLSv1.3", "TLSv1.2")
        finally:
            await stream.aclose()
            await peer.aclose()


async def test_bulk_both_ways_at_once_with_a_full_socket():
    """16 MiB each way at once: writes wait for room (the backlog), nothing is lost or reordered."""
    size = 16 * 1024 * 1024
    blob = os.urandom(size)
    with trio.fail_after(30):
        stream, peer = await _tls_pair()
        io = TransportIO(stream)
        got_io = hashlib.sha256()
        got_peer = hashlib.sha256()

        async def io_writes():
            for i in range(0, size, 100_000):
                io.try_send([blob[i : i + 50_000], blob[i + 50_000 : i + 100_000]])
                if io.backlog:
                    await io.send_all([])

        async def io_reads():
            n = 0
            while n < size:
                data = await io.receive_some(64 * 1024)
                assert data
                got_io.update(data)
                n += len(data)

        async def peer_writes():
            for i in range(0, size, 1 << 20):
                await peer.send_all(blob[i : i + (1 << 20)])

        async def peer_reads():
            n = 0
            while n < size:
                data = await peer.receive_some(1 << 20)
                got_peer.update(data)
                n += len(data)

        async with trio.open_nursery() as nursery:
            for fn in (io_writes, io_reads, peer_writes, peer_reads):
                nursery.start_soon(fn)
        want = hashlib.sha256(blob).digest()
        assert got_io.digest() == want and got_peer.digest() == want
        await stream.aclose()
        await peer.aclose()


async def test_bytes_buffered_at_take_over_are_read_without_waiting():
    """Application data that arrived together with the handshake (and sits in the
    SSLStream's buffers) is returned first; so is plaintext beyond ``max_bytes``."""
    with trio.fail_after(10):
        stream, peer = await _tls_pair()
        await peer.send_all(b"x" * 50_000)
        # let trio's own stream pull the ciphertext in (it then sits in the BIOs)
        assert await stream.receive_some(10) == b"x" * 10
        io = TransportIO(stream)
        assert await io.receive_some(1000) == b"x" * 1000  # less than one record
        assert await _read_exactly(io, 48_990) == b"x" * 48_990
        with trio.move_on_after(0.2) as scope:
            await io.receive_some(100)  # nothing more: it waits for the socket
        assert scope.cancelled_caught
        await stream.aclose()
        await peer.aclose()


@pytest.mark.parametrize("https_compatible", [True, False])
async def test_close_notify_is_a_clean_end(https_compatible):
    with trio.fail_after(10):
        stream, peer = await _tls_pair(https_compatible=https_compatible)
        io = TransportIO(stream)
        await peer.send_all(b"last words")
        await peer.aclose()  # https_compatible=False sends close_notify first
        assert await _read_exactly(io, 10) == b"last words"
        assert await io.receive_some(100) == b""
        assert await io.receive_some(100) == b""  # and it stays ended
        await stream.aclose()


async def test_close_notify_without_closing_the_socket_is_the_end():
    """A peer may send close_notify and keep the TCP connection open: still the end,
    even when close_notify came in the same read as the last data."""
    with trio.fail_after(10):
        # (the peer is the client: a TLS 1.3 server's held-back tickets would go first)
        stream, peer = await _tls_pair(https_compatible=False, io_side="server")
        io = TransportIO(stream)
        peer._ssl_object.write(b"bye")
        try:
            peer._ssl_object.unwrap()
        except ssl.SSLWantReadError:
            pass
        await peer.transport_stream.send_all(peer._outgoing.read())  # data + close_notify, one write
        assert await _read_exactly(io, 3) == b"bye"
        assert await io.receive_some(100) == b""
        await stream.aclose()
        await trio.aclose_forcefully(peer.transport_stream)


async def test_eof_without_close_notify_is_an_error_unless_https_compatible():
    with trio.fail_after(10):
        stream, peer = await _tls_pair(https_compatible=False)
        io = TransportIO(stream)
        await peer.send_all(b"partial")
        await trio.aclose_forcefully(peer.transport_stream)  # no close_notify
        assert await _read_exactly(io, 7) == b"partial"
        with pytest.raises(trio.BrokenResourceError) as info:
            await io.receive_some(100)
        assert isinstance(info.value.__cause__, ssl.SSLError)
        await stream.aclose()  # a broken stream just closes its socket


async def test_a_corrupt_record_breaks_the_stream_with_a_typed_error():
    with trio.fail_after(10):
        stream, peer = await _tls_pair()
        io = TransportIO(stream)
        raw = peer.transport_stream
        # an application-data record header followed by garbage
        await raw.send_all(b"\x17\x03\x03\x00\x40" + os.urandom(0x40))
        with pytest.raises(trio.BrokenResourceError) as info:
            await io.receive_some(100)
        assert isinstance(info.value.__cause__, ssl.SSLError)
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"x")  # trio's stream knows it is broken too
        await stream.aclose()
        await peer.aclose()


async def test_cancelled_and_interrupted_reads_lose_nothing():
    with trio.fail_after(10):
        stream, peer = await _tls_pair()
        io = TransportIO(stream)
        with trio.move_on_after(0.05):
            await io.receive_some(100)

        async def interrupt_soon():
            await trio.sleep(0.05)
            io.interrupt_reader()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupt_soon)
            assert await io.receive_some(100) is None
        await peer.send_all(b"after both")
        assert await _read_exactly(io, 10) == b"after both"
        await stream.aclose()
        await peer.aclose()


async def test_the_ssl_stream_closes_normally_after_take_over():
    """After the link is done, the SSLStream's own aclose sends close_notify (non-https mode)."""
    with trio.fail_after(10):
        stream, peer = await _tls_pair(https_compatible=False)
        io = TransportIO(stream)
        io.try_send([b"ping"])
        await io.send_all([])
        await stream.aclose()
        assert await peer.receive_some(100) == b"ping"
        assert await peer.receive_some(100) == b""  # close_notify arrived: a clean EOF


async def test_a_stream_without_a_finished_handshake_is_not_taken_over():
    a, b = trio.socket.socketpair()
    stream = trio.SSLStream(trio.SocketStream(a), certs().client_ctx(mutual=False), server_hostname="localhost")
    io = TransportIO(stream)
    assert not io.direct and not io.tls
    a.close()
    b.close()
