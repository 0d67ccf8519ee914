"""Shared test helpers: session pairs over every transport, TLS material."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import AsyncIterator

import trio
import trustme

import libchan

TRANSPORTS = ["memory", "tcp", "tls", "mtls", "unix"]


class Certs:
    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client_cert = self.ca.issue_cert("client.example")

    def server_ctx(self, *, mutual: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(ctx)
        if mutual:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx

    def client_ctx(self, *, mutual: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if mutual:
            self.client_cert.configure_cert(ctx)
        return ctx


_CERTS: Certs | None = None


def certs() -> Certs:
    global _CERTS
    if _CERTS is None:
        _CERTS = Certs()
    return _CERTS


@asynccontextmanager
async def served(
    transport: str, handler, tmp_path, config: libchan.Config | None = None
) -> AsyncIterator[tuple[str, ssl.SSLContext | None]]:
    """Run libchan.serve for ``transport``; yield (url, client ssl context)."""
    server_ssl = client_ssl = None
    if transport == "unix":
        url = f"unix://{tmp_path}/libchan.sock"
    elif transport == "tcp":
        url = "tcp://127.0.0.1:0"
    else:
        mutual = transport == "mtls"
        url = "tls://127.0.0.1:0"
        server_ssl = certs().server_ctx(mutual=mutual)
        client_ssl = certs().client_ctx(mutual=mutual)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, url, handler, ssl=server_ssl, config=config))
        yield urls[0], client_ssl
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def session_pair(
    transport: str,
    tmp_path,
    config: libchan.Config | None = None,
    server_config: libchan.Config | None = None,
    profile: str = "h2",
) -> AsyncIterator[tuple[libchan.Session, libchan.Session]]:
    """Yield ``(client_session, server_session)`` connected over ``transport`` in ``profile``."""
    server_config = server_config or config
    if transport == "memory":
        a, b = libchan.stream_pipe()
        async with libchan.Session(b, server_side=True, config=server_config, profile=profile) as srv:
            async with libchan.Session(a, config=config, profile=profile) as cli:
                yield cli, srv
        return
    send, recv = trio.open_memory_channel[libchan.Session](1)
    done = trio.Event()

    async def handler(session: libchan.Session) -> None:
        await send.send(session)
        await done.wait()

    async with served(transport, handler, tmp_path, server_config) as (url, client_ssl):
        async with libchan.connect(url, ssl=client_ssl, config=config, profile=profile) as cli:
            srv = await recv.receive()
            try:
                yield cli, srv
            finally:
                done.set()


@asynccontextmanager
async def server_process(transport: str, tmp_path: Path, *extra: str, stderr=None):
    """Run tests/echo_server.py in a process of its own; yield ``(url, client ssl context)``.
    ``stderr``: a file for what it logs (default: the test's own stderr)."""
    argv = [sys.executable, str(Path(__file__).with_name("echo_server.py")), transport]
    client_ssl = None
    if transport == "tls":
        pem = tmp_path / "server.pem"
        certs().server_cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        argv.append(str(pem))
        client_ssl = certs().client_ctx(mutual=False)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(trio.run_process, [*argv, *extra], stdout=subprocess.PIPE, stderr=stderr, check=False, env=env))
        try:
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(1)
                assert chunk, "the echo server did not start"
                line += chunk
            yield line.decode().strip(), client_ssl
        finally:
            proc.terminate()
