"""Nothing left behind (``-k leak``): a request that is refused, or whose connection goes away,
leaves no session, handler, task or object behind (issue 11).

Each test failed before its fix: the CBOR codec's decoder held a bound method of the codec
(a cycle cbor2's C objects keep from the garbage collector), and a server session made by a
park or stream request alone never ended (no control stream ever came).
"""

from __future__ import annotations

import gc
import weakref

import cbor2
import h2.events
import pytest
import trio

import libchan
from libchan.messages.cbor_codec import CborCodec
from libchan.messages.framing import encode_frame
from helpers import served
from rawh2 import RawH2Client

SID = "leak-session"


def _live(cls: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is cls)


def test_leak_cbor_codec_is_freed_after_coding_references():
    codec = CborCodec(max_message_size=1 << 20, max_depth=16, kind_of=lambda v: "sender" if v is codec_marker else None)
    codec_marker = object()
    payload = codec.encode({"x": [1, codec_marker]}, lambda kind, obj: 7)
    seen = []
    assert codec.decode(payload, lambda kind, ref: seen.append((kind, ref)) or "obj") == {"x": [1, "obj"]}
    assert seen == [("sender", 7)]
    ref = weakref.ref(codec)
    del codec
    gc.collect()
    assert ref() is None, "the codec survives: a cycle through cbor2's encoder or decoder"


def _url_host_port(url: str) -> tuple[str, int]:
    host, port = url[len("tcp://"):].rsplit(":", 1)
    return host, int(port)


class _Handlers:
    """Counts handlers started and finished. With ``read=False`` a handler only takes the
    session's channels (a child task would read them): it ends when the session ends."""

    def __init__(self, read: bool = True) -> None:
        self.started = 0
        self.finished = 0
        self.errors: list[BaseException] = []
        self.read = read

    async def __call__(self, session: libchan.Session) -> None:
        self.started += 1
        try:
            async for receiver in session:
                if not self.read:
                    continue
                async for _ in receiver:
                    pass
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self.finished += 1

    async def wait_finished(self, n: int, timeout: float) -> None:
        with trio.move_on_after(timeout):
            while self.finished < n:
                await trio.sleep(0.02)


async def test_leak_session_of_a_park_whose_connection_closed_ends(tmp_path):
    handlers = _Handlers()
    config = libchan.Config(control_timeout=0.5)
    async with served("tcp", handlers, tmp_path, config) as (url, _):
        for _ in range(3):
            client = await RawH2Client.open(*_url_host_port(url))
            await client.request("/libchan/v1/park", b"", [("libchan-session", f"{SID}-{_}")], end=False)
            while handlers.started <= _:
                await trio.sleep(0.01)
            await client.aclose()
        await handlers.wait_finished(3, timeout=5)
        assert (handlers.started, handlers.finished) == (3, 3)
        assert all(isinstance(e, libchan.SessionClosedError) for e in handlers.errors), handlers.errors
        assert any("no control stream" in str(e) for e in handlers.errors), handlers.errors


async def test_leak_session_without_control_stream_ends_and_resets_its_streams(tmp_path):
    handlers = _Handlers()
    config = libchan.Config(control_timeout=0.5)
    async with served("tcp", handlers, tmp_path, config) as (url, _):
        client = await RawH2Client.open(*_url_host_port(url))
        headers = [("libchan-session", SID), ("libchan-ref", "1"), ("libchan-type", "receiver")]
        sid = await client.request("/libchan/v1/stream", encode_frame(cbor2.dumps("hi")), headers, end=False)
        ended = await client.wait_for(lambda ev: isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid)
        assert ended.error_code == 8  # CANCEL: the session ended, its streams with it
        await handlers.wait_finished(1, timeout=5)
        assert handlers.finished == 1
        assert "no control stream within 0.5 s" in str(handlers.errors[0])
        await client.aclose()


async def test_leak_session_with_control_stream_outlives_control_timeout(tmp_path):
    handlers = _Handlers()
    config = libchan.Config(control_timeout=0.3)
    async with served("tcp", handlers, tmp_path, config) as (url, _):
        async with libchan.connect(url) as session:
            sender = await session.open_sender()
            await trio.sleep(0.8)
            await sender.send("still here")
            await sender.aclose()
            assert not session.closed
            assert handlers.finished == 0
        await handlers.wait_finished(1, timeout=5)
        assert handlers.errors == []


@pytest.mark.parametrize("requests", [200])
async def test_leak_anonymous_posts_leave_no_codec_behind(tmp_path, requests):
    handlers = _Handlers()
    async with served("tcp", handlers, tmp_path) as (url, _):
        client = await RawH2Client.open(*_url_host_port(url))
        before = _live(CborCodec)
        for i in range(requests):
            sid = await client.request("/", encode_frame(cbor2.dumps({"n": i, "l": [1, 2]})))
            await client.wait_for(lambda ev, sid=sid: isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid)
        await handlers.wait_finished(requests, timeout=10)
        assert handlers.finished == requests
        await client.aclose()
        await trio.sleep(0.1)
        assert _live(CborCodec) - before < 5


async def test_leak_anonymous_request_whose_connection_ends_in_the_same_read(tmp_path):
    """An anonymous request followed, in the same read, by something that ends the
    connection (here a frame larger than MAX_FRAME_SIZE): its stream fails the moment it is
    answered, and its session still ends (it did not: the session waited forever)."""
    handlers = _Handlers(read=False)
    async with served("tcp", handlers, tmp_path) as (url, _):
        host, port = _url_host_port(url)
        for _ in range(3):
            client = RawH2Client(await trio.open_tcp_stream(host, port))
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/")])
            oversized = ((1 << 24) - 1).to_bytes(3, "big") + b"\x00\x00" + sid.to_bytes(4, "big")
            await client.stream.send_all(client.conn.data_to_send() + oversized)
            with pytest.raises(EOFError):
                while True:
                    await client.pump()
                    if not client.events:
                        continue
                    if any(isinstance(ev, h2.events.ConnectionTerminated) for ev in client.events):
                        raise EOFError
            await client.aclose()
        await handlers.wait_finished(3, timeout=5)
        assert (handlers.started, handlers.finished) == (3, 3)
