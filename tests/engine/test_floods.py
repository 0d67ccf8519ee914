"""Hostile peers on real sockets (issue 11): a server ends a flooding or oversized-frame
connection at once with GOAWAY, and goes on serving others (spec 14.2, 17, 19.3).

Small limits (Config fields) keep the tests short; tests/wire/test_floods.py has the
sans-IO detail, bench/stream_scaling.py the work per stream."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.settings
import hyperframe.frame as hf
import pytest
import trio

import libchan
from libchan.spdy_like.flood import BURST_SECONDS
from libchan.spdy_like.h2mux import PREFACE
from libchan.spdy_like.spdy3 import FrameParser, FrameWriter, GoAway, Ping
from helpers import served

FRAME_SIZE_ERROR, ENHANCE_YOUR_CALM = 6, 11


async def _noop_handler(session):
    async for receiver in session:
        try:
            await receiver.receive()
        except (trio.BrokenResourceError, trio.EndOfChannel, libchan.LibchanError):
            pass


def _hostport(url: str) -> tuple[str, int]:
    host, port = url[len("tcp://"):].rsplit(":", 1)
    return host, int(port)


async def _goaway_after(host: str, port: int, payload: bytes) -> int | None:
    """Send ``payload`` on a new raw connection, then read until GOAWAY or the end:
    the GOAWAY's error code, or None if the connection ended without one."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(payload)
        got = b""
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            got += chunk
            pos = 0
            while len(got) - pos >= 9:
                length = int.from_bytes(got[pos : pos + 3], "big")
                if got[pos + 3] == 7 and len(got) - pos >= 17:
                    return int.from_bytes(got[pos + 13 : pos + 17], "big")
                pos += 9 + length
            if not chunk:
                return None
    finally:
        await stream.aclose()


async def _goaway_of(url: str, payload: bytes) -> int | None:
    """:func:`_goaway_after`, repeated while the connection ends without a GOAWAY we could
    read: the server closes at once, with our bytes unread, so its kernel may reset the
    connection before the GOAWAY reaches us (best effort, spec 4.5)."""
    for _ in range(20):
        code = await _goaway_after(*_hostport(url), payload)
        if code is not None:
            return code
    return None


async def _still_serving(url: str, config: libchan.Config | None = None) -> None:
    async with libchan.connect(url, config=config) as session:
        sender = await session.open_sender()
        await sender.send("still fine")
        await sender.aclose()


def _start() -> bytes:
    return PREFACE + hf.SettingsFrame(0).serialize()


async def test_limit_oversized_frame_header_gets_goaway_at_once(tmp_path):
    """A frame header announcing more than max_frame_size: GOAWAY(FRAME_SIZE_ERROR) without
    waiting for (or buffering) the megabyte it announces."""
    config = libchan.Config(max_frame_size=16384)
    header = (1 << 20).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
    with trio.fail_after(10):
        async with served("tcp", _noop_handler, tmp_path, config) as (url, _):
            assert await _goaway_of(url, _start() + header) == FRAME_SIZE_ERROR
            await _still_serving(url)


async def test_limit_continuation_flood_gets_enhance_your_calm(tmp_path):
    """CONTINUATION frames past max_header_list_size (+ slack) end the connection before the
    block ends, whatever the peer still sends."""
    config = libchan.Config(max_header_list_size=4096)
    import hpack

    block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", "/")])
    flood = hf.HeadersFrame(1, data=block).serialize() + hf.ContinuationFrame(1, data=b"\x00" * 1000).serialize() * 20
    with trio.fail_after(10):
        async with served("tcp", _noop_handler, tmp_path, config) as (url, _):
            assert await _goaway_of(url, _start() + flood) == ENHANCE_YOUR_CALM
            await _still_serving(url)


FLOODS = {
    "PING": (dict(max_ping_rate=1), lambda i: hf.PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize()),
    "SETTINGS": (dict(max_ping_rate=1), lambda i: hf.SettingsFrame(0).serialize()),
    "WINDOW_UPDATE": (dict(max_empty_frame_rate=1), lambda i: hf.WindowUpdateFrame(0, window_increment=1).serialize()),
}


@pytest.mark.parametrize("name", FLOODS)
async def test_limit_control_frame_flood_gets_enhance_your_calm(tmp_path, name):
    limits, frame_of = FLOODS[name]
    config = libchan.Config(**limits)
    flood = b"".join(frame_of(i) for i in range(3 * BURST_SECONDS))
    with trio.fail_after(10):
        async with served("tcp", _noop_handler, tmp_path, config) as (url, _):
            assert await _goaway_of(url, _start() + flood) == ENHANCE_YOUR_CALM
            await _still_serving(url)


@pytest.mark.parametrize("churn", ["rapid reset", "open and end"])
async def test_limit_rapid_reset_and_stream_churn_get_enhance_your_calm(tmp_path, churn):
    """Anonymous requests opened and reset at once (CVE-2023-44487), or opened and ended,
    faster than the limit: GOAWAY(ENHANCE_YOUR_CALM), and the server serves others."""
    config = libchan.Config(max_reset_rate=2, max_stream_rate=3)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1  # (hostile)
    conn.remote_settings.acknowledge()
    request = [(":method", "POST"), (":scheme", "http"), (":authority", "test"), (":path", "/")]
    for _ in range(5 * BURST_SECONDS):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request, end_stream=churn == "open and end")
        if churn == "rapid reset":
            conn.reset_stream(sid, 8)
    with trio.fail_after(15):
        async with served("tcp", _noop_handler, tmp_path, config) as (url, _):
            assert await _goaway_of(url, conn.data_to_send()) == ENHANCE_YOUR_CALM
            await _still_serving(url)


async def test_limit_spdy_ping_flood_and_oversized_control_frame(tmp_path):
    """The Go profile: a PING flood gets GOAWAY, and so does a control frame header
    announcing more than a header block may hold, without its payload."""
    config = libchan.Config(max_ping_rate=1, max_header_list_size=4096)
    writer = FrameWriter()
    pings = b"".join(writer.serialize(Ping(2 * i + 1)) for i in range(3 * BURST_SECONDS))
    syn_header = (0x80030001).to_bytes(4, "big") + (1 << 20).to_bytes(4, "big")
    with trio.fail_after(10):
        async with served("tcp", _noop_handler, tmp_path, config) as (url, _):
            for payload in (pings, syn_header):
                stream = await trio.open_tcp_stream(*_hostport(url))
                await stream.send_all(payload)
                parser, frames = FrameParser(), []
                while not any(isinstance(f, GoAway) for f in frames):
                    chunk = await stream.receive_some(65536)
                    assert chunk, f"connection ended without GOAWAY after {frames}"
                    frames += parser.feed(chunk)
                await stream.aclose()
                goaway = next(f for f in frames if isinstance(f, GoAway))
                assert goaway.status == 1
                if payload is pings:  # (the burst was answered first)
                    assert sum(isinstance(f, Ping) for f in frames) == BURST_SECONDS
            async with libchan.connect(url, profile="spdy") as session:
                sender = await session.open_sender()
                await sender.send("still fine")


async def test_limit_answers_to_a_peer_that_does_not_read_stay_bounded():
    """A peer that sends PINGs (under the rate limit) and never reads: once more than 1 MiB
    of PING ACKs waits unsent behind a blocked write, the connection ends; our output does
    not grow with its input."""
    config = libchan.Config(max_ping_rate=10**6)
    ours, theirs = libchan.stream_pipe(max_buffer=4096)
    ping = hf.PingFrame(0, opaque_data=b"12345678").serialize()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                try:
                    await theirs.send_all(_start())
                    for _ in range(200):  # at most 200 * 4096 PINGs: 13 MiB of ACKs if all were kept
                        await theirs.send_all(ping * 4096)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                raise AssertionError("the server read 13 MiB of PINGs without ending the connection")

            nursery.start_soon(flood)
            with pytest.raises(libchan.SessionClosedError) as info:
                async with libchan.Session(ours, server_side=True, config=config) as session:
                    await session.accept_receiver()
                    await trio.sleep_forever()
            assert "does not read" in str(info.value), info.value


async def test_limit_spdy_oversized_message_reset_with_protocol_error(tmp_path):
    """The Go profile (spec 19.5): a message over max_message_size resets its channel with
    RST_STREAM PROTOCOL_ERROR (1), not CANCEL (5, a reader leaving); the session goes on."""
    from libchan.spdy_like.spdy3 import Data, RstStream, SynStream

    got = trio.Event()
    errors = []

    async def handler(session):
        async for receiver in session:
            try:
                await receiver.receive()
            except libchan.MessageTooLargeError as exc:
                errors.append(exc)
                got.set()

    config = libchan.Config(max_message_size=1000)
    writer = FrameWriter()
    big = b"\xc5" + (5000).to_bytes(2, "big") + b"x" * 5000  # msgpack bin16 of 5000 bytes
    payload = writer.serialize(SynStream(1, (("libchan-ref", "2"),))) + writer.serialize(Data(1, big))
    with trio.fail_after(10):
        async with served("tcp", handler, tmp_path, config) as (url, _):
            stream = await trio.open_tcp_stream(*_hostport(url))
            await stream.send_all(payload)
            parser, frames = FrameParser(), []
            while not any(isinstance(f, RstStream) for f in frames):
                chunk = await stream.receive_some(65536)
                assert chunk, f"connection ended without RST_STREAM after {frames}"
                frames += parser.feed(chunk)
            await got.wait()
            rst = next(f for f in frames if isinstance(f, RstStream))
            assert (rst.stream_id, rst.status) == (1, 1), rst
            assert not errors[0].local
            await stream.aclose()
