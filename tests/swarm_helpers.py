"""Shared helpers for the libswarm tests: serve an object over every transport."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import trio

import libswarm
from helpers import session_pair

# (transport, profile): the in-memory pipe has no profile
WIRES = [("pipe", None), ("memory", "h2"), ("memory", "spdy"), ("tcp", "h2"), ("tcp", "spdy"), ("tls", "h2"), ("tls", "spdy")]
WIRE_IDS = [f"{t}-{p}" if p else t for t, p in WIRES]


@asynccontextmanager
async def connected(transport: str, profile: str | None, tmp_path, server: libswarm.Server,
                    timeout: float | None = 10) -> AsyncIterator[libswarm.Client]:
    """Run ``server`` and yield a Client reaching it over ``transport``/``profile``."""
    async with server:
        if transport == "pipe":
            yield libswarm.Client(server.sender(), timeout=timeout)
            return
        async with session_pair(transport, tmp_path, profile=profile) as (cli, srv):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(libswarm.serve_session, srv, server)
                yield libswarm.Client(await cli.open_sender(), timeout=timeout)
                nursery.cancel_scope.cancel()


def stdio(messages: list[libswarm.Message]) -> dict[str, bytes]:
    """Join ``Log(tag, chunk)`` messages per tag."""
    out: dict[str, bytes] = {}
    for m in messages:
        if m.verb == libswarm.Verb.Log and len(m.args) == 2:
            tag = m.args[0]
            chunk = m.args[1] if isinstance(m.args[1], bytes) else m.args[1].encode()
            out[tag] = out.get(tag, b"") + chunk
    return out
