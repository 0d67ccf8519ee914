"""A server under floods of bad connections and out of descriptors (``-k fault``): what a peer
does wrong is logged in one line, rate-limited; running out of descriptors never stops
the accept loop for good."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio

import libchan
from libchan import peerlog
from helpers import server_process


async def test_fault_garbage_connections_are_logged_in_rate_limited_lines(caplog):
    caplog.set_level(logging.INFO, logger="libchan")

    async def handler(session):
        pass

    n = 3 * peerlog.BURST
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(libchan.serve, "tcp://127.0.0.1:0", handler)
        host, port = urls[0][len("tcp://"):].rsplit(":", 1)
        for _ in range(n):
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(b"\x16\x03\x01\x00\x40" + bytes(64))  # a TLS record to a plaintext port
            assert await stream.receive_some(100) == b""  # the server closed it
            await stream.aclose()
        nursery.cancel_scope.cancel()
    refused = [r for r in caplog.records if r.getMessage().startswith("refused a connection from")]
    assert len(refused) == peerlog.BURST, [r.getMessage() for r in refused]
    assert all(r.exc_info is None for r in caplog.records)
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "first_bytes",
    [b"PRI * HTTP/2.0\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
    ids=["half-a-preface", "preface-without-settings"],
)
async def test_fault_unfinished_preface_is_closed_after_handshake_timeout(first_bytes):
    """A client that starts the HTTP/2 preface and stops (before its SETTINGS) is closed
    after handshake_timeout, not kept until peer_timeout (45 s)."""

    async def handler(session):
        pass

    config = libchan.Config(handshake_timeout=0.5)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(libchan.serve, "tcp://127.0.0.1:0", handler, config=config))
            host, port = urls[0][len("tcp://"):].rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(first_bytes)
            while await stream.receive_some(65536):  # (the server's SETTINGS, then EOF)
                pass
            await stream.aclose()
            nursery.cancel_scope.cancel()


def test_fault_peer_log_says_how_many_lines_it_left_out(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="libchan.test")
    logger = logging.getLogger("libchan.test")
    now = [100.0]
    monkeypatch.setattr(peerlog.time, "monotonic", lambda: now[0])
    for i in range(peerlog.BURST + 5):
        peerlog.peer_log(logger, logging.WARNING, "bad peer %d", i)
    assert len(caplog.records) == peerlog.BURST
    now[0] += peerlog.WINDOW
    peerlog.peer_log(logger, logging.WARNING, "bad peer %d", 99)
    last = caplog.records[-1].getMessage()
    assert last == f"bad peer 99 (5 more like this were not logged in the {peerlog.WINDOW:g} s before)"
    peerlog.peer_log(logger, logging.WARNING, "another template %s", "x")  # its own window
    assert caplog.records[-1].getMessage() == "another template x"


@pytest.mark.slow
async def test_fault_out_of_descriptors_the_server_accepts_again(tmp_path):
    """A server process limited to 40 descriptors, 60 idle connections: it cannot accept
    them all; once they go away, a client is served again."""
    log_path = tmp_path / "server.log"
    with trio.fail_after(60), open(log_path, "wb") as log_file:
        async with server_process("tcp", tmp_path, "--nofile", "40", stderr=log_file) as (url, _):
            host, port = url[len("tcp://"):].rsplit(":", 1)
            hogs = [await trio.open_tcp_stream(host, int(port)) for _ in range(60)]
            # every descriptor of the server is taken (the backlog holds the rest): a new client
            # is not served now
            with pytest.raises(libchan.ConnectError):
                async with libchan.connect(url, config=libchan.Config(handshake_timeout=1)):
                    pass
            for hog in hogs:
                await hog.aclose()
            # the server sees the hogs go (or drops them after its handshake_timeout) and accepts again
            async with libchan.connect(url, config=libchan.Config(handshake_timeout=15)) as session:
                reply, replies = libchan.pipe()
                sender = await session.open_sender()
                await sender.send({"n": 7, "reply": reply})
                assert await replies.receive() == 7
    log = log_path.read_text()
    assert "Traceback" not in log, log
    emfile = [line for line in log.splitlines() if line.startswith("cannot accept connections: Too many open files")]
    assert 1 <= len(emfile) <= peerlog.BURST, log
