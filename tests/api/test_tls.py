"""TLS: verification on by default, hostname checked, mutual TLS enforced, ALPN mismatch clear."""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme

import libchan
from helpers import certs, served

ERRORS = (ssl.SSLError, trio.BrokenResourceError, OSError)


async def _handler(session):
    async for receiver in session:
        async for msg in receiver:
            await msg["reply"].send("pong")


async def _roundtrip(url, ctx, profile="h2"):
    async with libchan.connect(url, ssl=ctx, profile=profile) as s:
        sender = await s.open_sender()
        reply, replies = libchan.pipe()
        await sender.send({"reply": reply})
        with trio.fail_after(5):
            return await replies.receive()


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None and not isinstance(exc, ssl.SSLError):
        exc = exc.__cause__
    return exc


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_tls_verification_is_on_by_default(tmp_path, profile):
    with trio.fail_after(10):
        async with served("tls", _handler, tmp_path) as (url, client_ssl):
            assert await _roundtrip(url, client_ssl, profile) == "pong"  # the trusting context works
            with pytest.raises(ERRORS) as info:
                await _roundtrip(url, None, profile)  # no context: the system CAs, which do not trust trustme
            assert "CERTIFICATE_VERIFY_FAILED" in repr(_root_cause(info.value)) or isinstance(
                _root_cause(info.value), ssl.SSLCertVerificationError
            ), repr(info.value)


async def test_tls_hostname_is_checked(tmp_path):
    other = certs().ca.issue_cert("other.example")  # same CA, wrong name
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(server_ctx)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            from functools import partial

            urls = await nursery.start(partial(libchan.serve, "tls://127.0.0.1:0", _handler, ssl=server_ctx))
            with pytest.raises(ERRORS) as info:
                await _roundtrip(urls[0], certs().client_ctx(mutual=False))
            cause = _root_cause(info.value)
            assert isinstance(cause, ssl.SSLCertVerificationError) or "match" in str(cause).lower(), repr(cause)
            nursery.cancel_scope.cancel()


async def test_tls_mutual_refuses_client_cert_from_another_ca(tmp_path):
    stranger = trustme.CA().issue_cert("client.example")
    ctx = ssl.create_default_context()
    certs().ca.configure_trust(ctx)
    stranger.configure_cert(ctx)
    with trio.fail_after(10):
        async with served("mtls", _handler, tmp_path) as (url, client_ssl):
            assert await _roundtrip(url, client_ssl) == "pong"
            with pytest.raises(ERRORS + (libchan.SessionClosedError,)):
                await _roundtrip(url, ctx)


async def test_tls_mutual_refuses_client_without_certificate(tmp_path):
    with trio.fail_after(10):
        async with served("mtls", _handler, tmp_path) as (url, _):
            with pytest.raises(ERRORS + (libchan.SessionClosedError,)):
                await _roundtrip(url, certs().client_ctx(mutual=False))


async def test_tls_alpn_mismatch_is_a_clear_protocol_error():
    """A TLS server that offers only http/1.1: connect() raises ConnectError naming ALPN."""
    server_ctx = certs().server_ctx(mutual=False)
    server_ctx.set_alpn_protocols(["http/1.1"])

    async def http11(stream):
        try:
            await stream.do_handshake()
            await stream.receive_some(100)
        except (trio.BrokenResourceError, ssl.SSLError):
            pass

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            tcp = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = tcp[0].socket.getsockname()[1]
            listeners = [trio.SSLListener(t, server_ctx, https_compatible=True) for t in tcp]
            await nursery.start(trio.serve_listeners, http11, listeners)
            with pytest.raises(libchan.ConnectError, match="ALPN"):
                async with libchan.connect(f"tls://127.0.0.1:{port}", ssl=certs().client_ctx(mutual=False)):
                    pass
            nursery.cancel_scope.cancel()
