"""A libchan echo server in a process of its own, for tests that attack a server or run
a third-party client against it (h2spec): its own heap (the pauses of the test process's
garbage collector do not count against it) and its own limits.

    python echo_server.py tcp|tls [CERT_CHAIN_AND_KEY_PEM] [--max-frame-size N] [--nofile N]

``--nofile`` lowers the process's descriptor limit (RLIMIT_NOFILE) before serving.

Prints the URL it serves on one line, then serves until killed. Its sessions echo
``msg["n"]`` on ``msg["reply"]`` and drain everything else (h2spec's request bodies
are not libchan messages)."""

from __future__ import annotations

import argparse
import resource
import ssl
from functools import partial

import trio

import libchan


async def handler(session: libchan.Session) -> None:
    async with trio.open_nursery() as nursery:
        async for receiver in session:
            nursery.start_soon(serve_channel, receiver)


async def serve_channel(receiver: libchan.Receiver) -> None:
    try:
        async for msg in receiver:
            if isinstance(msg, dict) and "reply" in msg:
                await msg["reply"].send(msg["n"])
    except (libchan.ProtocolError, trio.BrokenResourceError):
        pass


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["tcp", "tls"])
    parser.add_argument("pem", nargs="?")
    parser.add_argument("--max-frame-size", type=int, default=None)
    parser.add_argument("--nofile", type=int, default=None)
    args = parser.parse_args()
    if args.nofile:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))
    ctx = None
    if args.transport == "tls":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.pem)
    config = libchan.Config(max_frame_size=args.max_frame_size) if args.max_frame_size else libchan.Config()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, f"{args.transport}://127.0.0.1:0", handler, ssl=ctx, config=config))
        print(urls[0], flush=True)


if __name__ == "__main__":
    trio.run(main)
