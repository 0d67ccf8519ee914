#!/usr/bin/env python
"""libchan (both wire profiles) vs. raw trio sockets vs. grpclib, on the same workloads, in one run.

Usage::

    .venv/bin/python bench/bench.py [--quick] [--tls-only | --plain-only]
                                    [--impl raw,libchan,spdy,grpclib] [--workload oneway,rtt,churn,bulk]
                                    [--duration SECONDS] [--reps N] [--log FILE]

Defaults: every figure is the median of 3 runs of 1.5 s (``--quick``: 2 runs
of 0.4 s); the runs of the four implementations are interleaved (the order
rotates) so that a slow patch of a shared machine does not land on one of
them only. A full run takes about 2.5 minutes, ``--quick`` about 30 s.

Every figure is measured with the server and the client in two *separate
processes* (this script re-executes itself with a hidden ``--_role`` option),
so that on a 2-core machine each side has its own core and its own GIL, as in
a real deployment. One server process is started per (implementation,
transport) and serves all workloads on one port (the two libchan profiles
share one ``libchan.serve`` server: it takes both on the same port); a fresh client connection (a
fresh libchan session, a fresh grpclib Channel) is made for every workload.
All rates are measured *after* connection set-up and after a one-message
handshake ("ready") with the server, and *include* the time for the last
message to be processed by the server (the server reports its count, and the
client stops its clock when that report arrives).

Implementations
---------------
raw      trio sockets (``trio.open_tcp_stream`` / ``trio.SSLStream``) with
         hand-written framing -- the "what would it cost without a library"
         baseline.
libchan  this project: ``libchan.connect`` / ``libchan.serve`` over HTTP/2 +
         CBOR (default ``Config``); column "libchan h2".
spdy     the same libchan client code with ``libchan.connect(url,
         profile="spdy")``: SPDY/3.1 + msgpack, Go libchan's wire format;
         column "libchan spdy". Every message of the workloads is
         msgpack-encodable (bytes, str, small ints, str-keyed dicts, channels
         and byte streams).
grpclib  grpclib 0.4 (asyncio, also HTTP/2 via the ``h2`` package), bidi
         streaming methods, with a raw-bytes codec (no protobuf).

Transports: plaintext TCP on 127.0.0.1 and TLS (certificates from trustme;
the same server/client ``SSLContext`` settings for all three).

Workloads (each gives one figure per implementation and transport)
------------------------------------------------------------------
oneway   one-way 100-byte messages per second on one channel.
         raw: the client writes *batches* of 256 length-prefixed messages
         (4-byte big-endian length + 100 bytes; one ``send_all`` per batch);
         the server splits them into individual ``bytes`` objects in Python
         (``int.from_bytes`` + slicing) and counts them. A zero length ends.
         libchan: ``await sender.send(b"x" * 100)`` in a loop on one channel
         (the library batches internally); the server ``async for``-s over
         the Receiver.
         grpclib: ``await stream.send_message(b"x" * 100)`` in a loop on one
         bidi stream; the server iterates the request stream.
rtt      round trips per second on an open channel, one at a time.
         raw: send 100 B, read until the 100 B echo arrived.
         libchan: the client sends ``{"op": "rtt", "reply": reply_sender}``
         once (``reply_sender, replies = libchan.pipe()``); then for each round
         trip ``await sender.send(payload)`` and ``await replies.receive()``;
         the server answers every message on the reply channel (kept open).
         grpclib: ``send_message`` + ``recv_message`` on one bidi stream.
churn    channels opened, given one 100-byte message, and closed, per second.
         libchan: one task loops ``s = await session.open_sender();
         await s.send(payload); await s.aclose()`` on one session (none of
         these waits for the server, so it is naturally pipelined); the
         server takes every channel from ``async for receiver in session``,
         reads its message and waits for its end, and counts. The clock stops
         when the server confirms it has seen all of them.
         raw: there is no multiplexing, so a "channel" is a *new connection*
         (TCP, or TCP + full TLS handshake): connect, ``send_all`` 101 B,
         close; 16 client tasks do this concurrently (to hide the connect
         round trip, as libchan's pipelining does); the server reads 101 B,
         counts, closes.
         grpclib: one bidi call per "channel" (open stream, one message with
         END_STREAM, wait for the 1-byte answer and the trailers, as its API
         requires), 16 concurrent client tasks on one connection.
bulk     byte-stream throughput in GB/s (10**9 bytes per second), client to
         server, for at least the --duration and at least 64 MiB (32 MiB with
         --quick), written in 1 MiB ``send_all`` calls.
         raw: ``send_all`` of 1 MiB chunks each preceded by an 8-byte length
         (0 = end; TLS streams cannot half-close) and the server reads with
         ``receive_some(256 KiB)``.
         libchan: ``a, b = libchan.stream_pipe()`` (default 64 KiB buffer); the client
         sends ``{"op": "bulk", "stream": libchan.ReadOnly(b), ...}`` and
         writes into ``a``; the server reads the byte stream it receives with
         ``receive_some()`` until EOF.
         grpclib: 1 MiB messages on one bidi stream.

Ratios printed next to the libchan (h2 and spdy) and grpclib figures are to the raw figure
of the same transport in the same run. A workload that errors or exceeds its
time limit is reported as ``FAILED: <reason>``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

PAYLOAD = b"x" * 100
BULK_CHUNK = 1024 * 1024
CHURN_CONCURRENCY = 16
RAW_BATCH = 256
WORKLOADS = ["oneway", "rtt", "churn", "bulk"]
IMPLS = ["raw", "libchan", "spdy", "grpclib"]
#: column headings; "libchan" is the default HTTP/2 + CBOR profile, "spdy" Go libchan's SPDY/3.1 + msgpack
LABELS = {"raw": "raw", "libchan": "libchan h2", "spdy": "libchan spdy", "grpclib": "grpclib"}
#: both libchan profiles are served by one libchan.serve server process (one port, both profiles)
SERVER_OF = {"spdy": "libchan"}
#: issue 17, goal 2: plaintext HTTP/2 profile, one channel, as same-run ratios to raw
#: (held to under TLS too, for reference)
GOALS = {"oneway": 0.50, "rtt": 0.80, "bulk": 0.80}
#: issue 17, goal 1: the Go profile at least this much of the HTTP/2 profile's figure
GO_PROFILE_GOAL = 0.90
GRPCLIB_BEFORE = {"oneway": 0.04, "rtt": 0.57, "bulk": 0.07}
TITLES = {
    "oneway": "one-way 100 B msgs/s (1 channel)",
    "rtt": "round trips/s (100 B, open channel)",
    "churn": "open+1 msg+close channels/s",
    "bulk": "byte-stream bulk GB/s",
}


# ---------------------------------------------------------------------------------------
# TLS contexts (files written by the parent with trustme)


def server_ssl(certdir: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(certdir, "server.pem"), os.path.join(certdir, "server.key"))
    ctx.set_alpn_protocols(["h2"])
    return ctx


def client_ssl(certdir: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=os.path.join(certdir, "ca.pem"))
    ctx.set_alpn_protocols(["h2"])
    return ctx


def make_certs(certdir: str) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(os.path.join(certdir, "ca.pem"))
    cert.private_key_pem.write_to_path(os.path.join(certdir, "server.key"))
    cert.cert_chain_pems[0].write_to_path(os.path.join(certdir, "server.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(os.path.join(certdir, "server.pem"), append=True)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------
# raw trio


async def _recv_exactly(stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


async def count_framed_messages(stream) -> int:
    """The raw one-way receiver: read 4-byte-length-prefixed messages until a zero length,
    making one ``bytes`` object per message; return how many came (EOFError if the
    stream ends before the zero length). Also used by oneway_cpu.py."""
    buf = bytearray()
    pos = 0
    count = 0
    while True:
        data = await stream.receive_some(256 * 1024)
        if not data:
            raise EOFError("EOF in one-way stream")
        if pos:
            del buf[:pos]
            pos = 0
        buf += data
        end = len(buf)
        while end - pos >= 4:
            n = int.from_bytes(buf[pos : pos + 4], "big")
            if n == 0:
                return count
            if end - pos - 4 < n:
                break
            bytes(buf[pos + 4 : pos + 4 + n])  # one object per message
            count += 1
            pos += 4 + n


def raw_server_main(certdir: str | None) -> None:
    import trio

    churn = {"count": 0}
    churn_lot = trio.lowlevel.ParkingLot()

    async def handle(stream) -> None:
        try:
            op = await _recv_exactly(stream, 1)
            if op == b"O":  # one-way
                await stream.send_all(b"R")
                count = await count_framed_messages(stream)
                await stream.send_all(count.to_bytes(8, "big"))
            elif op == b"E":  # echo
                await stream.send_all(b"R")
                while True:
                    try:
                        msg = await _recv_exactly(stream, len(PAYLOAD))
                    except EOFError:
                        break
                    await stream.send_all(msg)
            elif op == b"C":  # one churn "channel"
                await _recv_exactly(stream, len(PAYLOAD))
                churn["count"] += 1
                churn_lot.unpark_all()
            elif op == b"D":  # churn done: wait until N were seen
                n = int.from_bytes(await _recv_exactly(stream, 8), "big")
                while churn["count"] < n:
                    await churn_lot.park()
                churn["count"] -= n
                await stream.send_all(n.to_bytes(8, "big"))
            elif op == b"B":  # bulk
                await stream.send_all(b"R")
                total = 0
                left = 0  # bytes left in the current chunk
                hdr = bytearray()
                while True:
                    data = await stream.receive_some(256 * 1024)
                    if not data:
                        raise EOFError("EOF in bulk stream")
                    view = memoryview(data)
                    finished = False
                    while view:
                        if left:
                            k = min(left, len(view))
                            left -= k
                            total += k
                            view = view[k:]
                            continue
                        need = 8 - len(hdr)
                        hdr += view[:need]
                        view = view[need:]
                        if len(hdr) == 8:
                            left = int.from_bytes(hdr, "big")
                            hdr.clear()
                            if left == 0:
                                finished = True
                                break
                    if finished:
                        break
                await stream.send_all(total.to_bytes(8, "big"))
        except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError, ssl.SSLError, OSError):
            pass
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                try:
                    await stream.aclose()
                except Exception:
                    pass

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        if certdir:
            ctx = server_ssl(certdir)
            listeners = [trio.SSLListener(l, ctx, https_compatible=True) for l in listeners]
        emit({"port": port})
        await trio.serve_listeners(handle, listeners)

    trio.run(main)


async def _raw_connect(port: int, certdir: str | None):
    import trio

    if certdir:
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=client_ssl(certdir), https_compatible=True
        )
        await stream.do_handshake()
        return stream
    return await trio.open_tcp_stream("127.0.0.1", port)


async def raw_client(workload: str, port: int, certdir: str | None, duration: float, min_bulk: int) -> dict:
    import trio

    if workload == "oneway":
        stream = await _raw_connect(port, certdir)
        async with stream:
            await stream.send_all(b"O")
            assert await _recv_exactly(stream, 1) == b"R"
            framed_len = len(PAYLOAD).to_bytes(4, "big")
            sent = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline:
                batch = b"".join([framed_len + PAYLOAD for _ in range(RAW_BATCH)])
                await stream.send_all(batch)
                sent += RAW_BATCH
            await stream.send_all(b"\0\0\0\0")
            count = int.from_bytes(await _recv_exactly(stream, 8), "big")
            elapsed = time.perf_counter() - t0
        if count != sent:
            raise RuntimeError(f"server counted {count} messages, {sent} were sent")
        return {"value": count / elapsed, "detail": f"{count} msgs in {elapsed:.2f}s"}

    if workload == "rtt":
        stream = await _raw_connect(port, certdir)
        async with stream:
            await stream.send_all(b"E")
            assert await _recv_exactly(stream, 1) == b"R"
            n = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline:
                for _ in range(16):
                    await stream.send_all(PAYLOAD)
                    echo = await _recv_exactly(stream, len(PAYLOAD))
                n += 16
            elapsed = time.perf_counter() - t0
            if echo != PAYLOAD:
                raise RuntimeError("bad echo")
        return {"value": n / elapsed, "detail": f"{n} round trips in {elapsed:.2f}s"}

    if workload == "churn":
        counter = {"n": 0}
        t0 = time.perf_counter()
        deadline = t0 + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                s = await _raw_connect(port, certdir)
                await s.send_all(b"C" + PAYLOAD)
                await s.aclose()
                counter["n"] += 1

        async with trio.open_nursery() as nursery:
            for _ in range(CHURN_CONCURRENCY):
                nursery.start_soon(worker)
        n = counter["n"]
        s = await _raw_connect(port, certdir)
        async with s:
            await s.send_all(b"D" + n.to_bytes(8, "big"))
            got = int.from_bytes(await _recv_exactly(s, 8), "big")
        elapsed = time.perf_counter() - t0
        if got != n:
            raise RuntimeError("churn count mismatch")
        return {
            "value": n / elapsed,
            "detail": f"{n} connections ({'TLS' if certdir else 'TCP'}) in {elapsed:.2f}s, {CHURN_CONCURRENCY} tasks",
        }

    if workload == "bulk":
        stream = await _raw_connect(port, certdir)
        async with stream:
            await stream.send_all(b"B")
            assert await _recv_exactly(stream, 1) == b"R"
            chunk = os.urandom(BULK_CHUNK)
            hdr = len(chunk).to_bytes(8, "big")
            sent = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline or sent < min_bulk:
                await stream.send_all(hdr)
                await stream.send_all(chunk)
                sent += len(chunk)
            await stream.send_all(bytes(8))
            got = int.from_bytes(await _recv_exactly(stream, 8), "big")
            elapsed = time.perf_counter() - t0
        if got != sent:
            raise RuntimeError(f"server got {got} bytes, {sent} sent")
        return {"value": got / elapsed / 1e9, "detail": f"{got / 2**20:.0f} MiB in {elapsed:.2f}s"}

    raise ValueError(workload)


# ---------------------------------------------------------------------------------------
# libchan


def libchan_server_main(certdir: str | None) -> None:
    import trio

    import libchan

    async def handler(session) -> None:
        first = await session.accept_receiver()
        hdr = await first.receive()
        op = hdr["op"]
        reply = hdr["reply"]
        if op == "oneway":
            await reply.send("ready")
            n = 0
            async for _msg in first:
                n += 1
            await reply.send(n)
        elif op == "rtt":
            await reply.send("ready")
            try:
                async for msg in first:
                    await reply.send(msg)
            except trio.BrokenResourceError:
                # the client's clock has stopped; spdy: its end of ``first`` may arrive as
                # a broken session (connection closed) rather than a clean end
                pass
        elif op == "churn":
            state = {"count": 0, "reported": False}
            lot = trio.lowlevel.ParkingLot()

            async def accept_all() -> None:
                try:
                    async for receiver in session:
                        await receiver.receive()
                        try:
                            await receiver.receive()
                        except trio.EndOfChannel:
                            pass
                        else:
                            raise RuntimeError("churn channel had more than one message")
                        state["count"] += 1
                        lot.unpark_all()
                except trio.BrokenResourceError:
                    if not state["reported"]:
                        raise
                    # spdy: the client's end of the session may arrive as a closed
                    # connection rather than a clean end (after the measurement)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(accept_all)
                await reply.send("ready")
                done = await first.receive()
                while state["count"] < done["n"]:
                    await lot.park()
                state["reported"] = True
                await reply.send(state["count"])
                # the client closes the session next; accept_all ends then
        elif op == "bulk":
            stream = hdr["stream"]
            await reply.send("ready")
            total = 0
            while True:
                data = await stream.receive_some()
                if not data:
                    break
                total += len(data)
            await reply.send(total)
            await stream.aclose()
        await reply.aclose()
        # Return only once the client has ended the session. In the spdy profile, a
        # session that the server closes (by returning from the handler) right after
        # ``reply.send(result)`` can drop that last message, which has not been written
        # out yet (seen under TLS: the client then gets EndOfChannel instead of the count).
        # The client ends the session after reading the result anyway, so waiting costs
        # nothing and happens after the clock has stopped.
        try:
            async for _ in first:
                pass
            if op != "churn":  # churn's accept_all already waited for the end of the session
                async for _receiver in session:
                    pass
        except trio.BrokenResourceError:
            # spdy: the end of ``first`` and the session's end can arrive as a broken
            # session (connection closed) rather than a clean end -- after the measurement.
            pass

    async def main() -> None:
        url = "tls://127.0.0.1:0" if certdir else "tcp://127.0.0.1:0"
        ctx = server_ssl(certdir) if certdir else None
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(functools.partial(libchan.serve, url, handler, ssl=ctx))
            port = int(urls[0].rsplit(":", 1)[1])
            emit({"port": port})

    trio.run(main)


async def libchan_client(workload: str, port: int, certdir: str | None, duration: float, min_bulk: int,
                         profile: str = "h2") -> dict:
    import libchan

    url = f"{'tls' if certdir else 'tcp'}://127.0.0.1:{port}"
    ctx = client_ssl(certdir) if certdir else None  # libchan.connect sets the ALPN of the profile on it
    async with libchan.connect(url, ssl=ctx, profile=profile) as session:
        sender = await session.open_sender()
        reply, replies = libchan.pipe()

        if workload == "oneway":
            await sender.send({"op": "oneway", "reply": reply})
            assert await replies.receive() == "ready"
            sent = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline:
                for _ in range(256):
                    await sender.send(PAYLOAD)
                sent += 256
            await sender.aclose()
            count = await replies.receive()
            elapsed = time.perf_counter() - t0
            if count != sent:
                raise RuntimeError(f"server counted {count} messages, {sent} were sent")
            return {"value": count / elapsed, "detail": f"{count} msgs in {elapsed:.2f}s"}

        if workload == "rtt":
            await sender.send({"op": "rtt", "reply": reply})
            assert await replies.receive() == "ready"
            n = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline:
                for _ in range(16):
                    await sender.send(PAYLOAD)
                    echo = await replies.receive()
                n += 16
            elapsed = time.perf_counter() - t0
            if echo != PAYLOAD:
                raise RuntimeError("bad echo")
            await sender.aclose()
            return {"value": n / elapsed, "detail": f"{n} round trips in {elapsed:.2f}s"}

        if workload == "churn":
            await sender.send({"op": "churn", "reply": reply})
            assert await replies.receive() == "ready"
            n = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline:
                for _ in range(16):
                    s = await session.open_sender()
                    await s.send(PAYLOAD)
                    await s.aclose()
                n += 16
            opened = time.perf_counter() - t0
            await sender.send({"n": n})
            got = await replies.receive()
            elapsed = time.perf_counter() - t0
            await sender.aclose()
            return {
                "value": n / elapsed,
                "detail": f"{n} channels in {elapsed:.2f}s (client loop done after {opened:.2f}s)",
            }

        if workload == "bulk":
            a, b = libchan.stream_pipe()  # default 64 KiB buffer, as a user would write it
            await sender.send({"op": "bulk", "stream": libchan.ReadOnly(b), "reply": reply})
            assert await replies.receive() == "ready"
            chunk = os.urandom(BULK_CHUNK)
            sent = 0
            t0 = time.perf_counter()
            deadline = t0 + duration
            while time.perf_counter() < deadline or sent < min_bulk:
                await a.send_all(chunk)
                sent += len(chunk)
            await a.send_eof()
            got = await replies.receive()
            elapsed = time.perf_counter() - t0
            await sender.aclose()
            if got != sent:
                raise RuntimeError(f"server got {got} bytes, {sent} sent")
            return {"value": got / elapsed / 1e9, "detail": f"{got / 2**20:.0f} MiB in {elapsed:.2f}s"}

    raise ValueError(workload)


# ---------------------------------------------------------------------------------------
# grpclib (asyncio)


def _grpclib_codec():
    from grpclib.encoding.base import CodecBase

    class RawCodec(CodecBase):
        __content_subtype__ = "raw"

        def encode(self, message, message_type):
            return message

        def decode(self, data, message_type):
            return data

    return RawCodec()


def grpclib_server_main(certdir: str | None) -> None:
    import asyncio

    from grpclib.const import Cardinality, Handler
    from grpclib.server import Server

    async def oneway(stream) -> None:
        await stream.recv_message()  # the request that starts it
        await stream.send_message(b"R")
        n = 0
        async for _msg in stream:
            n += 1
        await stream.send_message(str(n).encode())

    async def echo(stream) -> None:
        await stream.recv_message()
        await stream.send_message(b"R")
        async for msg in stream:
            await stream.send_message(msg)

    async def churn(stream) -> None:
        msg = await stream.recv_message()
        assert msg == PAYLOAD
        await stream.send_message(b"K")

    async def bulk(stream) -> None:
        await stream.recv_message()
        await stream.send_message(b"R")
        total = 0
        async for msg in stream:
            total += len(msg)
        await stream.send_message(str(total).encode())

    class Bench:
        def __mapping__(self):
            ss = Cardinality.STREAM_STREAM
            return {
                "/bench.Bench/OneWay": Handler(oneway, ss, bytes, bytes),
                "/bench.Bench/Echo": Handler(echo, ss, bytes, bytes),
                "/bench.Bench/Churn": Handler(churn, ss, bytes, bytes),
                "/bench.Bench/Bulk": Handler(bulk, ss, bytes, bytes),
            }

    async def main() -> None:
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets whose proto
        # is IPPROTO_TCP, and accepted sockets inherit the listener's proto (with 0, every
        # small response would wait ~40 ms for a delayed ACK -- Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = Server([Bench()], codec=_grpclib_codec())
        await server.start(sock=sock, ssl=server_ssl(certdir) if certdir else None)
        emit({"port": sock.getsockname()[1]})
        await asyncio.Event().wait()

    asyncio.run(main())


async def grpclib_client(workload: str, port: int, certdir: str | None, duration: float, min_bulk: int) -> dict:
    import asyncio

    from grpclib.client import Channel
    from grpclib.const import Cardinality

    ss = Cardinality.STREAM_STREAM
    channel = Channel("127.0.0.1", port, codec=_grpclib_codec(), ssl=client_ssl(certdir) if certdir else None)
    try:
        if workload == "oneway":
            async with channel.request("/bench.Bench/OneWay", ss, bytes, bytes) as stream:
                await stream.send_message(b"hello")
                assert await stream.recv_message() == b"R"
                sent = 0
                t0 = time.perf_counter()
                deadline = t0 + duration
                while time.perf_counter() < deadline:
                    for _ in range(256):
                        await stream.send_message(PAYLOAD)
                    sent += 256
                await stream.end()
                count = int(await stream.recv_message())
                elapsed = time.perf_counter() - t0
            if count != sent:
                raise RuntimeError(f"server counted {count} messages, {sent} were sent")
            return {"value": count / elapsed, "detail": f"{count} msgs in {elapsed:.2f}s"}

        if workload == "rtt":
            async with channel.request("/bench.Bench/Echo", ss, bytes, bytes) as stream:
                await stream.send_message(b"hello")
                assert await stream.recv_message() == b"R"
                n = 0
                t0 = time.perf_counter()
                deadline = t0 + duration
                while time.perf_counter() < deadline:
                    for _ in range(16):
                        await stream.send_message(PAYLOAD)
                        echo = await stream.recv_message()
                    n += 16
                elapsed = time.perf_counter() - t0
                await stream.end()
            if echo != PAYLOAD:
                raise RuntimeError("bad echo")
            return {"value": n / elapsed, "detail": f"{n} round trips in {elapsed:.2f}s"}

        if workload == "churn":
            # warm the connection up (connection set-up is not measured)
            async with channel.request("/bench.Bench/Churn", ss, bytes, bytes) as stream:
                await stream.send_message(PAYLOAD, end=True)
                await stream.recv_message()
            counter = {"n": 0}
            t0 = time.perf_counter()
            deadline = t0 + duration

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    async with channel.request("/bench.Bench/Churn", ss, bytes, bytes) as stream:
                        await stream.send_message(PAYLOAD, end=True)
                        assert await stream.recv_message() == b"K"
                    counter["n"] += 1

            await asyncio.gather(*[worker() for _ in range(CHURN_CONCURRENCY)])
            elapsed = time.perf_counter() - t0
            n = counter["n"]
            return {"value": n / elapsed, "detail": f"{n} calls in {elapsed:.2f}s, {CHURN_CONCURRENCY} tasks"}

        if workload == "bulk":
            async with channel.request("/bench.Bench/Bulk", ss, bytes, bytes) as stream:
                await stream.send_message(b"hello")
                assert await stream.recv_message() == b"R"
                chunk = os.urandom(BULK_CHUNK)
                sent = 0
                t0 = time.perf_counter()
                deadline = t0 + duration
                while time.perf_counter() < deadline or sent < min_bulk:
                    await stream.send_message(chunk)
                    sent += len(chunk)
                await stream.end()
                got = int(await stream.recv_message())
                elapsed = time.perf_counter() - t0
            if got != sent:
                raise RuntimeError(f"server got {got} bytes, {sent} sent")
            return {"value": got / elapsed / 1e9, "detail": f"{got / 2**20:.0f} MiB in {elapsed:.2f}s"}
    finally:
        channel.close()
    raise ValueError(workload)


# ---------------------------------------------------------------------------------------
# child process entry points


def client_main(impl: str, port: int, certdir: str | None, workloads: list[str], duration: float,
                min_bulk: int, timeout: float) -> None:
    """Run the workloads one after the other; print one JSON line per result."""
    if impl == "grpclib":
        import grpclib.client  # noqa: F401 -- import before any CPU accounting
    else:
        import trio  # noqa: F401

        import libchan  # noqa: F401
    for workload in workloads:
        emit({"start": workload})
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            if impl == "grpclib":
                import asyncio

                async def one():
                    return await asyncio.wait_for(
                        grpclib_client(workload, port, certdir, duration, min_bulk), timeout
                    )

                try:
                    result = asyncio.run(one())
                except asyncio.TimeoutError:
                    result = {"error": f"timed out after {timeout:.0f}s"}
            else:
                import trio

                if impl == "raw":
                    fn = raw_client
                elif impl == "spdy":
                    fn = functools.partial(libchan_client, profile="spdy")
                else:
                    fn = libchan_client

                async def one():
                    with trio.move_on_after(timeout):
                        return await fn(workload, port, certdir, duration, min_bulk)
                    return {"error": f"timed out after {timeout:.0f}s"}

                result = trio.run(one)
        except BaseException as exc:  # noqa: BLE001 -- report, keep going
            if isinstance(exc, KeyboardInterrupt):
                raise
            leaf = exc
            while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
                leaf = leaf.exceptions[0]
            result = {"error": f"{type(leaf).__name__}: {leaf}"}
            traceback.print_exc(file=sys.stderr)
        wall = time.perf_counter() - wall0
        result["workload"] = workload
        result["client_cpu"] = (time.process_time() - cpu0) / wall if wall > 0 else 0.0
        result["wall"] = wall
        emit(result)


def server_main(impl: str, certdir: str | None) -> None:
    {"raw": raw_server_main, "libchan": libchan_server_main, "grpclib": grpclib_server_main}[
        SERVER_OF.get(impl, impl)
    ](certdir)


# ---------------------------------------------------------------------------------------
# parent: orchestration and report


class Child:
    """A child process of this script, speaking JSON lines on its stdout."""

    def __init__(self, args: list[str], log) -> None:
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        self.buf = b""

    def readline(self, timeout: float) -> dict | None:
        """Next JSON line, or None on timeout / EOF."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cpu_seconds(self) -> float | None:
        """utime + stime of the child (Linux /proc), for the server CPU figure."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def run_client(impl: str, tls: bool, server: Child, port: int, certdir: str, workloads: list[str],
               duration: float, min_bulk: int, timeout: float, log) -> dict[str, dict]:
    """Run ``workloads`` in client processes against ``server``; restart the client if it hangs."""
    results: dict[str, dict] = {}
    tls_args = ["--_certdir", certdir] if tls else []
    remaining = list(workloads)
    while remaining:
        client = Child(
            ["--_role", "client", "--_impl", impl, "--_port", str(port), *tls_args,
             "--_workloads", ",".join(remaining), "--duration", str(duration),
             "--_min-bulk", str(min_bulk), "--_timeout", str(timeout)],
            log,
        )
        current = None
        server_cpu0 = None
        try:
            while remaining:
                msg = client.readline(timeout + 20 if current else 30)
                if msg is None:
                    what = current or remaining[0]
                    alive = client.proc.poll() is None
                    results[what] = {
                        "error": f"client process hung (killed after {timeout + 20:.0f}s without a result)"
                        if alive else f"client process died (exit code {client.proc.returncode})"
                    }
                    remaining.remove(what)
                    break
                if "start" in msg:
                    current = msg["start"]
                    server_cpu0 = server.cpu_seconds()
                    continue
                server_cpu1 = server.cpu_seconds()
                if server_cpu0 is not None and server_cpu1 is not None and msg.get("wall"):
                    msg["server_cpu"] = (server_cpu1 - server_cpu0) / msg["wall"]
                results[msg["workload"]] = msg
                remaining.remove(msg["workload"])
                current = None
        finally:
            client.kill()
    return results


def fmt(workload: str, value: float) -> str:
    if workload == "bulk":
        return f"{value:.3f} GB/s"
    return f"{value:,.0f}/s"


def median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def summarize(runs: list[dict]) -> dict:
    """Median of the repetitions; any failed repetition makes the figure FAILED."""
    errors = [r["error"] for r in runs if "error" in r]
    ok = [r for r in runs if "error" not in r]
    out: dict = {"runs": runs}
    if errors:
        out["error"] = f"{errors[0]} ({len(errors)} of {len(runs)} runs failed)"
    if ok:
        out["value"] = median([r["value"] for r in ok])
        out["min"] = min(r["value"] for r in ok)
        out["max"] = max(r["value"] for r in ok)
        out["client_cpu"] = median([r.get("client_cpu", 0.0) for r in ok])
        sc = [r["server_cpu"] for r in ok if "server_cpu" in r]
        out["server_cpu"] = median(sc) if sc else None
    return out


def libchan_revision() -> str:
    """Git commit of the libchan source measured (and whether libchan/ had uncommitted changes)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "libchan"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "(git revision unknown)"
    if not rev:
        return "(git revision unknown)"
    return f"git {rev}" + (" + uncommitted changes in libchan/" if dirty else "")


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def report(summary: dict, transports: list[bool], workloads: list[str], impls: list[str],
           args, reps: int, wall: float) -> None:
    import platform
    from importlib.metadata import version

    out = []
    out.append("=" * (37 + 19 * len(impls) + 24))
    out.append(
        f"libchan benchmark: python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{'--quick: ' if args.quick else ''}median of {reps} runs of {args.duration:g}s per figure; "
        "server and client in separate processes"
    )
    versions = []
    for mod in ("trio", "h2", "cbor2", "msgpack", "grpclib"):
        try:
            versions.append(f"{mod} {version(mod)}")
        except Exception:
            pass
    out.append("versions: " + ", ".join(versions) + "; libchan " + libchan_revision())
    out.append(f"load average before / after the run: {args.load_before} / {load_average()}")
    for tls in transports:
        out.append("")
        out.append(f"--- {'TLS (trustme certificate, 127.0.0.1)' if tls else 'plaintext TCP (127.0.0.1)'} ---")
        profiles = [i for i in ("libchan", "spdy") if i in impls]
        # the floors are the HTTP/2 profile's; the Go profile is held to the same bar for reference
        goal_head = "libchan goal" + (" (h2/spdy ref.)" if len(profiles) == 2 else "")
        header = f"{'workload':37s}"
        for impl in impls:
            header += f"{LABELS[impl]:>19s}"
        header += f"{goal_head:>24s}"
        out.append(header)
        for w in workloads:
            res = summary.get((tls, w), {})
            raw = res.get("raw", {})
            rawv = raw.get("value") if "error" not in raw else None
            line = f"{TITLES[w]:37s}"
            for impl in impls:
                r = res.get(impl)
                if r is None:
                    cell = "-"
                elif "error" in r:
                    cell = "FAILED"
                else:
                    cell = fmt(w, r["value"])
                    if impl != "raw" and rawv:
                        cell += f" {r['value'] / rawv:.2f}x"
                line += f"{cell:>19s}"
            goal = GOALS.get(w)
            if goal is not None:
                verdicts = []
                for impl in profiles:
                    lc = res.get(impl, {})
                    if rawv and "value" in lc and "error" not in lc:
                        ok = lc["value"] / rawv >= goal
                        verdicts.append("met" if ok else ("MISSED" if impl == "libchan" else "below"))
                    else:
                        verdicts.append("?")
                cell = f">={goal:.2f}x" + (" " + "/".join(verdicts) if profiles else "")
                line += f"{cell:>24s}"
            else:
                line += f"{'(none)':>24s}"
            out.append(line)
        if len(profiles) == 2:
            ratios = []
            for w in workloads:
                h2r, spr = summary.get((tls, w), {}).get("libchan", {}), summary.get((tls, w), {}).get("spdy", {})
                if "value" in h2r and "value" in spr and "error" not in h2r and "error" not in spr and h2r["value"]:
                    ratio = spr["value"] / h2r["value"]
                    ratios.append(f"{w} {ratio:.2f}x {'met' if ratio >= GO_PROFILE_GOAL else 'MISSED'}")
            if ratios:
                out.append(f"Go profile / h2 of this run (goal >= {GO_PROFILE_GOAL:.2f}x): " + ", ".join(ratios))
        for w in workloads:
            for impl in impls:
                r = summary.get((tls, w), {}).get(impl)
                if r and "error" in r:
                    out.append(f"  {LABELS[impl]} {TITLES[w]}: FAILED: {r['error']}")
    out.append("")
    out.append("details (median, [min .. max] over the runs; CPU = busy fraction of one core during the run):")
    for tls in transports:
        for w in workloads:
            for impl in impls:
                r = summary.get((tls, w), {}).get(impl)
                if not r or "value" not in r:
                    continue
                cpu = f"client CPU {100 * r['client_cpu']:3.0f}%"
                if r.get("server_cpu") is not None:
                    cpu += f", server CPU {100 * r['server_cpu']:3.0f}%"
                last = [x for x in r["runs"] if "detail" in x][-1]["detail"]
                out.append(
                    f"  {'TLS' if tls else 'TCP'} {w:6s} {LABELS[impl]:12s} {fmt(w, r['value']):>13s} "
                    f"[{fmt(w, r['min'])} .. {fmt(w, r['max'])}]  {cpu};  last run: {last}"
                )
    out.append("")
    out.append(
        "Ratios (Nx) are to the raw trio figure of the same transport in this run. grpclib was measured "
        "before at " + ", ".join(f"{w} {v:.2f}x" for w, v in GRPCLIB_BEFORE.items()) + "."
    )
    out.append(
        f"raw one-way = batched writes ({RAW_BATCH} length-prefixed 100 B messages per send_all), split into "
        "bytes objects in Python by the receiver."
    )
    out.append(
        f"raw churn = a new {'TCP/TLS' if len(transports) > 1 else ('TLS' if transports[0] else 'TCP')} "
        f"connection per 'channel' ({CHURN_CONCURRENCY} client tasks); grpclib churn = one bidi call per "
        f"'channel' ({CHURN_CONCURRENCY} tasks, one connection); libchan churn = one task, pipelined "
        "open_sender/send/aclose on one session."
    )
    if "spdy" in impls:
        out.append(
            "libchan h2 = HTTP/2 + CBOR (default profile); libchan spdy = SPDY/3.1 + msgpack (Go libchan's wire "
            "format, connect(profile='spdy')); both are served by the same libchan.serve process and port."
        )
    out.append(f"total wall time {wall:.0f}s")
    print("\n".join(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description="Benchmark libchan against raw trio sockets and grpclib (see the module docstring).",
    )
    p.add_argument("--quick", action="store_true", help="short run (about 30 s)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--tls-only", action="store_true", help="TLS only")
    g.add_argument("--plain-only", action="store_true", help="plaintext TCP only")
    p.add_argument("--impl", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS) + " (libchan = h2 profile, spdy = libchan spdy profile)")
    p.add_argument("--workload", default=",".join(WORKLOADS),
                   help="comma-separated subset of " + ",".join(WORKLOADS))
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per run of a figure (default 1.5, 0.4 with --quick)")
    p.add_argument("--reps", type=int, default=None, help="runs per figure, median reported (default 3, 2 with --quick)")
    p.add_argument("--log", default=None, help="file for the children's stderr (default: shown only on failure)")
    # hidden: child roles
    p.add_argument("--_role", choices=["server", "client"], help=argparse.SUPPRESS)
    p.add_argument("--_impl", help=argparse.SUPPRESS)
    p.add_argument("--_port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_certdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_workloads", help=argparse.SUPPRESS)
    p.add_argument("--_min-bulk", dest="min_bulk", type=int, default=64 * 2**20, help=argparse.SUPPRESS)
    p.add_argument("--_timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.duration is None:
        args.duration = 0.4 if args.quick else 1.5
    reps = args.reps or (2 if args.quick else 3)

    if args._role == "server":
        server_main(args._impl, args._certdir)
        return
    if args._role == "client":
        client_main(args._impl, args._port, args._certdir, args._workloads.split(","), args.duration,
                    args.min_bulk, args._timeout)
        return

    impls = [i for i in args.impl.split(",") if i]
    workloads = [w for w in args.workload.split(",") if w]
    for i in impls:
        if i not in IMPLS:
            p.error(f"unknown implementation {i!r}")
    for w in workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    transports = [True] if args.tls_only else [False] if args.plain_only else [False, True]
    min_bulk = (32 if args.quick else 64) * 2**20
    timeout = max(15.0, args.duration * 4 + 10)

    t_start = time.perf_counter()
    args.load_before = load_average()
    certdir = tempfile.mkdtemp(prefix="libchan-bench-")
    log = open(args.log, "w") if args.log else tempfile.TemporaryFile(mode="w+")
    runs: dict = {}
    try:
        make_certs(certdir)
        for tls in transports:
            servers: dict[str, tuple[Child, int | None]] = {}
            try:
                for impl in impls:
                    kind = SERVER_OF.get(impl, impl)
                    if kind in servers:
                        continue
                    child = Child(["--_role", "server", "--_impl", kind, *(["--_certdir", certdir] if tls else [])], log)
                    hello = child.readline(30)
                    servers[kind] = (child, hello["port"] if hello else None)
                for rep in range(reps):
                    # rotate the order so that no implementation always runs first or last
                    order = impls[rep % len(impls):] + impls[: rep % len(impls)]
                    for impl in order:
                        server, port = servers[SERVER_OF.get(impl, impl)]
                        if port is None:
                            res = {w: {"error": "server process did not start"} for w in workloads}
                        else:
                            res = run_client(impl, tls, server, port, certdir, workloads, args.duration,
                                             min_bulk, timeout, log)
                        for w, r in res.items():
                            runs.setdefault((tls, w), {}).setdefault(impl, []).append(r)
                        # one progress line per client process, on stderr
                        cells = [
                            f"{w} " + ("FAILED" if "error" in res[w] else fmt(w, res[w]["value"]))
                            for w in workloads if w in res
                        ]
                        print(f"  {'TLS' if tls else 'TCP'} run {rep + 1}/{reps} {LABELS[impl]:12s} " + ", ".join(cells),
                              file=sys.stderr, flush=True)
            finally:
                for child, _ in servers.values():
                    child.kill()
    finally:
        shutil.rmtree(certdir, ignore_errors=True)
    summary = {key: {impl: summarize(rs) for impl, rs in by_impl.items()} for key, by_impl in runs.items()}
    report(summary, transports, workloads, impls, args, reps, time.perf_counter() - t_start)
    if not args.log:
        log.seek(0)
        text = log.read()
        failed = any("error" in r for by_impl in summary.values() for r in by_impl.values())
        if text.strip() and failed:
            print("\n--- stderr of the child processes (last 6000 characters) ---", file=sys.stderr)
            print(text[-6000:], file=sys.stderr)
        log.close()


if __name__ == "__main__":
    main()
