"""``Session.peer``: who the client of a served session is, from its connection (the verified
TLS client certificate, unix credentials, the TCP address); a session cannot be joined by a
connection of another principal."""

from __future__ import annotations

import os
import ssl
from functools import partial

import pytest
import trio
import trustme

import libchan
from helpers import certs, session_pair


def _cn(peer: libchan.Peer) -> str | None:
    assert peer.certificate is not None
    return next((v for rdn in peer.certificate["subject"] for k, v in rdn if k == "commonName"), None)


@pytest.mark.parametrize("profile", ["h2", "spdy"])
@pytest.mark.parametrize("transport", ["tcp", "tls", "mtls", "unix"])
async def test_a_served_session_knows_its_peer(tmp_path, transport, profile):
    with trio.fail_after(10):
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            assert cli.peer is None  # the client side has no peer to tell
            peer = srv.peer
            assert peer is not None
            if transport == "mtls":
                assert peer.certificate is not None
                assert ("DNS", "client.example") in peer.certificate["subjectAltName"]
            else:
                assert peer.certificate is None  # tls without client certificates: none
            if transport == "unix":
                assert peer.unix and (peer.uid, peer.gid, peer.pid) == (os.getuid(), os.getgid(), os.getpid())
                assert peer.address is None
            else:
                assert not peer.unix and peer.uid is None
                assert peer.address is not None and peer.address.startswith("127.0.0.1:")


def test_a_session_built_on_its_own_stream_has_no_peer():
    a, _ = libchan.stream_pipe()
    assert libchan.Session(a, server_side=True).peer is None


async def _open(url: str, ctx: ssl.SSLContext, session_id: str) -> tuple[trio.abc.Stream, libchan.Session]:
    from libchan.transport import open_transport

    address = libchan.parse_url(url)
    stream = await open_transport(address, ssl=ctx, profile="h2", handshake_timeout=5)
    return stream, libchan.Session(stream, scheme="https", authority=f"127.0.0.1:{address.port}",
                                   session_id=session_id)


async def test_an_http2_session_cannot_be_joined_by_another_certificate():
    """Alice's session id, named on a connection with Bob's certificate: Bob's stream is
    refused, and the session (whose handler trusts ``peer``) gets only Alice's channels."""
    ca = certs().ca
    alice, bob = ca.issue_cert("alice.example", common_name="alice"), ca.issue_cert("bob.example", common_name="bob")

    def client_ctx(cert: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        cert.configure_cert(ctx)
        return ctx

    seen: list[tuple[str | None, object]] = []
    got = trio.Event()

    async def handler(session: libchan.Session) -> None:
        async for receiver in session:
            async for msg in receiver:
                seen.append((_cn(session.peer), msg))
                got.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(libchan.serve, "tls://127.0.0.1:0", handler,
                                               ssl=certs().server_ctx(mutual=True)))
            _, a = await _open(urls[0], client_ctx(alice), "shared-id")
            _, b = await _open(urls[0], client_ctx(bob), "shared-id")
            async with a:
                first = await a.open_sender()
                await first.send("alice 1")
                await first.aclose()
                await got.wait()
                async with b:
                    await (await b.open_sender()).send("bob")
                    with pytest.raises(libchan.SessionClosedError, match="aborted"):
                        await b.accept_receiver()  # its streams refused, the session ends
                got = trio.Event()
                second = await a.open_sender()
                await second.send("alice 2")
                await got.wait()
            nursery.cancel_scope.cancel()
    assert seen == [("alice", "alice 1"), ("alice", "alice 2")]
