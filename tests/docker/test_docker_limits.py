"""The Docker API front end under hostile clients: bounded bodies, heads, time and connections.

Each case runs a real ``dockerserver -> simulator`` chain on a unix socket with small
limits and talks raw HTTP/1.1 to it, then checks that a well-behaved request is still
answered.
"""

from __future__ import annotations

import json

import pytest
import trio

from libswarm.backends._docker.http import Limits
from libswarm.backends.simulator import Simulator

from docker_helpers import docker_front

LIMITS = Limits(max_body=1024, max_body_pieces=50, head_timeout=0.5, body_timeout=0.5, max_connections=3)


@pytest.fixture
async def sock(tmp_path):
    path = str(tmp_path / "d.sock")
    async with docker_front(f"unix://{path}", Simulator("web"), limits=LIMITS):
        yield path


async def exchange(path: str, data: bytes, *, then_wait: float = 5) -> bytes:
    """Send ``data``; return everything the server sends until it closes (or ``then_wait`` s)."""
    stream = await trio.open_unix_socket(path)
    async with stream:
        await stream.send_all(data)
        got = b""
        with trio.move_on_after(then_wait):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                got += chunk
        return got


def status_and_message(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["message"] if body else ""


async def still_served(path: str) -> None:
    raw = await exchange(path, b"GET /containers/json?all=1 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert json.loads(raw.partition(b"\r\n\r\n")[2])[0]["Names"] == ["/web"]


async def test_limit_a_huge_declared_body_is_refused_before_it_is_read(sock):
    with trio.fail_after(5):
        raw = await exchange(sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{")
    assert status_and_message(raw) == (413, "request body too large: 1000000000 bytes (at most 1024)")
    await still_served(sock)


async def test_limit_a_chunked_body_past_the_limit_is_refused(sock):
    chunk = b"400\r\n" + b"x" * 0x400 + b"\r\n"
    with trio.fail_after(5):
        raw = await exchange(sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3)
    status, message = status_and_message(raw)
    assert status == 413 and "at most 1024" in message
    await still_served(sock)


async def test_limit_a_body_of_many_tiny_chunks_is_refused(sock):
    with trio.fail_after(5):
        raw = await exchange(sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 200)
    status, message = status_and_message(raw)
    assert status == 400 and "too many pieces" in message
    await still_served(sock)


async def test_limit_a_slow_head_gets_408_and_an_idle_connection_is_closed(sock):
    with trio.fail_after(5):
        raw = await exchange(sock, b"GET /containers/json HTTP/1.1\r\nHost: d\r\n")  # never finished
        assert status_and_message(raw)[0] == 408
        assert await exchange(sock, b"") == b""  # idle: closed after head_timeout, nothing said
    await still_served(sock)


async def test_limit_a_slow_body_gets_408(sock):
    with trio.fail_after(5):
        raw = await exchange(sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 100\r\n\r\n{")
    assert status_and_message(raw)[0] == 408
    await still_served(sock)


async def test_malformed_http_gets_400_not_a_bare_close(sock):
    with trio.fail_after(5):
        raw = await exchange(sock, b"THIS IS NOT HTTP\r\n\r\n")
    status, message = status_and_message(raw)
    assert status == 400 and message.startswith("bad request")
    await still_served(sock)


async def test_limit_connections_beyond_the_limit_get_503(sock):
    with trio.fail_after(5):
        idle = [await trio.open_unix_socket(sock) for _ in range(3)]
        await trio.sleep(0.1)
        raw = await exchange(sock, b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        assert status_and_message(raw) == (503, "too many connections (at most 3)")
        for s in idle:
            await s.aclose()
        await trio.sleep(0.1)
    await still_served(sock)


async def test_answers_are_written_as_the_engine_writes_them(sock):
    """A reason phrase on the status line, JSON without spaces (Go's encoding/json): the
    CLI reads the first 4 KiB of an answer first, and dockerd's inspect fits in it."""
    raw = await exchange(sock, b"GET /containers/web/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert body == json.dumps(json.loads(body), separators=(",", ":")).encode() + b"\n"
    raw = await exchange(sock, b"GET /containers/nothere/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n"), raw[:100]
    raw = await exchange(sock, b"NOT HTTP\r\n\r\n")  # (answered outside h11)
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n"), raw[:100]
