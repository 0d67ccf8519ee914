"""A client that picks the wrong profile, scheme or certificate is told so, fast.

Each case runs against a real server on a real socket: our own ``libchan.serve``
(plain, TLS, mutual TLS) or a raw server that behaves like the peer in question (a Go
libchan SPDY server, which stays silent after bytes it cannot parse; an HTTP/2-only
server; a TLS server that selects another ALPN protocol). ``connect()`` must raise
:class:`libchan.ConnectError` within the handshake timeout with a message that names
the likely cause and the fix, and our server must log a refused handshake in one line
with the peer's address.
"""

from __future__ import annotations

import logging
import ssl
from contextlib import asynccontextmanager
from functools import partial
from typing import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trustme

import libchan
from helpers import certs

FAST = libchan.Config(handshake_timeout=1.0)
#: A SPDY/3 SETTINGS control frame with no entries: what a Go libchan server could send first.
SPDY_SETTINGS = b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x00"
#: An HTTP/2 server's connection preface: an empty SETTINGS frame.
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


async def _handler(session: libchan.Session) -> None:
    async for receiver in session:
        async for _ in receiver:
            pass


@asynccontextmanager
async def raw_server(behave: Callable[[trio.SocketStream], Awaitable[None]]) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running ``behave`` per connection; yields its port."""

    async def handle(stream: trio.abc.Stream) -> None:
        try:
            await behave(stream)  # type: ignore[arg-type]
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def _silent(stream: trio.abc.Stream) -> None:
    """Read and never answer (a Go SPDY server reading an HTTP/2 preface as one huge
    DATA frame, or a plain server reading a TLS ClientHello)."""
    while await stream.receive_some(65536):
        pass


def _sends(first: bytes) -> Callable[[trio.abc.Stream], Awaitable[None]]:
    async def behave(stream: trio.abc.Stream) -> None:
        await stream.send_all(first)
        await _silent(stream)

    return behave


async def _connect_error(url: str, *, ssl_ctx: ssl.SSLContext | None = None, profile: str = "h2",
                         config: libchan.Config = FAST) -> str:
    with trio.fail_after(config.handshake_timeout + 3):
        with pytest.raises(libchan.ConnectError) as info:
            async with libchan.connect(url, ssl=ssl_ctx, profile=profile, config=config):
                pass
    assert isinstance(info.value, OSError)
    return str(info.value)


# -- the wrong profile ---------------------------------------------------------------------


async def test_h2_client_to_a_silent_server_names_the_profile_and_the_scheme():
    async with raw_server(_silent) as port:
        text = await _connect_error(f"tcp://127.0.0.1:{port}")
    assert "sent nothing within 1s" in text
    assert "profile='spdy'" in text and "tls://" in text


async def test_h2_client_to_a_spdy_server_says_spdy():
    async with raw_server(_sends(SPDY_SETTINGS)) as port:
        text = await _connect_error(f"tcp://127.0.0.1:{port}")
    assert "speaks SPDY/3.1" in text and "profile='spdy'" in text


async def test_spdy_client_to_an_h2_server_says_h2():
    async with raw_server(_sends(H2_SETTINGS)) as port:
        text = await _connect_error(f"tcp://127.0.0.1:{port}", profile="spdy")
    assert "speaks HTTP/2" in text and "profile='h2'" in text


async def test_spdy_client_to_a_silent_server_names_the_other_profile():
    async with raw_server(_silent) as port:
        text = await _connect_error(f"tcp://127.0.0.1:{port}", profile="spdy")
    assert "profile='h2'" in text


async def test_the_default_timeout_is_five_seconds():
    """Against a silent peer, with the default Config, connect() fails within 5 s (+ slack)."""
    async with raw_server(_silent) as port:
        start = trio.current_time()
        text = await _connect_error(f"tcp://127.0.0.1:{port}", config=libchan.Config())
        assert trio.current_time() - start < 6.5
    assert "within 5s" in text


# -- the wrong scheme ------------------------------------------------------------------------


async def test_tcp_to_our_tls_port_says_use_tls(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="libchan")
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            partial(libchan.serve, "tls://127.0.0.1:0", _handler, ssl=certs().server_ctx(mutual=False))
        )
        port = urls[0].rsplit(":", 1)[1]
        text = await _connect_error(f"tcp://127.0.0.1:{port}")
        nursery.cancel_scope.cancel()
    assert "tls://" in text
    refused = [r for r in caplog.records if "refused a TLS connection from 127.0.0.1:" in r.getMessage()]
    assert refused and "plaintext to this TLS port" in refused[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


async def test_tcp_to_a_silent_tls_port_says_use_tls():
    """A TLS server that does not close on a plaintext preface (Go's) is silent to us."""
    async with raw_server(_silent) as port:
        text = await _connect_error(f"tcp://127.0.0.1:{port}")
    assert "tls://" in text


async def test_tls_to_our_plain_port_says_use_tcp(caplog):
    caplog.set_level(logging.INFO, logger="libchan")
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, "tcp://127.0.0.1:0", _handler))
        port = urls[0].rsplit(":", 1)[1]
        text = await _connect_error(f"tls://127.0.0.1:{port}", ssl_ctx=certs().client_ctx(mutual=False))
        nursery.cancel_scope.cancel()
    assert "tcp://" in text and "TLS" in text
    refused = [r for r in caplog.records if "refused a connection from 127.0.0.1:" in r.getMessage()]
    assert refused and "speaks TLS to this plaintext port" in refused[0].getMessage()


async def test_tls_to_a_silent_plain_port_says_use_tcp():
    async with raw_server(_silent) as port:
        text = await _connect_error(f"tls://127.0.0.1:{port}", ssl_ctx=certs().client_ctx(mutual=False))
    assert "did not finish within 1s" in text and "tcp://" in text


async def test_tls_to_a_spdy_plain_server_says_use_tcp():
    """A plain server that answers our ClientHello with SPDY bytes."""
    async with raw_server(_sends(SPDY_SETTINGS)) as port:
        text = await _connect_error(f"tls://127.0.0.1:{port}", ssl_ctx=certs().client_ctx(mutual=False))
    assert "does not speak TLS on this port" in text and "tcp://" in text


# -- certificates ----------------------------------------------------------------------------


@asynccontextmanager
async def _tls_server(ctx: ssl.SSLContext) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, "tls://127.0.0.1:0", _handler, ssl=ctx))
        yield urls[0]
        nursery.cancel_scope.cancel()


async def test_no_client_certificate_for_a_mutual_tls_server(caplog):
    caplog.set_level(logging.INFO, logger="libchan")
    async with _tls_server(certs().server_ctx(mutual=True)) as url:
        text = await _connect_error(url, ssl_ctx=certs().client_ctx(mutual=False))
    assert "requires a client certificate" in text and "load_cert_chain" in text
    refused = [r for r in caplog.records if "refused a TLS connection from 127.0.0.1:" in r.getMessage()]
    assert refused and "sent no certificate" in refused[0].getMessage()


async def test_a_client_certificate_from_another_ca(caplog):
    caplog.set_level(logging.INFO, logger="libchan")
    other = trustme.CA()
    ctx = certs().client_ctx(mutual=False)
    other.issue_cert("client.example").configure_cert(ctx)
    async with _tls_server(certs().server_ctx(mutual=True)) as url:
        text = await _connect_error(url, ssl_ctx=ctx)
    assert "refused our client certificate" in text
    refused = [r for r in caplog.records if "refused a TLS connection from 127.0.0.1:" in r.getMessage()]
    assert refused and "client's certificate" in refused[0].getMessage()


async def test_an_unknown_server_certificate_is_not_blamed_on_the_client_certificate():
    async with _tls_server(certs().server_ctx(mutual=False)) as url:
        text = await _connect_error(url, ssl_ctx=ssl.create_default_context())  # does not trust the CA
    assert "server's certificate" in text and "trusts its CA" in text
    assert "client certificate" not in text


async def test_an_alpn_mismatch_says_what_the_server_selected():
    cert = certs()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.server_cert.configure_cert(server_ctx)
    server_ctx.set_alpn_protocols(["http/1.1"])

    async def tls_then_silent(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_ctx, server_side=True)
        await tls.do_handshake()
        await _silent(tls)

    async with raw_server(tls_then_silent) as port:
        text = await _connect_error(f"tls://127.0.0.1:{port}", ssl_ctx=cert.client_ctx(mutual=False))
    # (a server that shares no protocol with the client selects none)
    assert "ALPN" in text and "selected None" in text and "profile='spdy'" in text
    assert "client certificate" not in text


# -- and the right ones still connect at once ---------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "tls", "mtls", "unix"])
async def test_right_settings_connect(transport, profile, tmp_path):
    from helpers import served

    async with served(transport, _handler, tmp_path) as (url, client_ssl):
        with trio.fail_after(5):
            async with libchan.connect(url, ssl=client_ssl, profile=profile, config=FAST) as session:
                sender = await session.open_sender()
                await sender.send({"hello": "world"})
                await sender.aclose()
