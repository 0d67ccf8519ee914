"""CPU per round trip, both ends in one process: a steadier A/B figure for issue 17's goal 2.

``bench.py``'s round-trip figure is a rate between two processes on a shared 2-core VM: it
moves by a fifth from run to run, and most of a round trip is the kernel waking the other
process. What libchan adds is the Python between a socket read and the next write, on both
sides. This runs the client and the server of one channel in *one* trio process over a
loopback TCP connection, one round trip at a time, and divides the process's CPU time by the
round trips: both ends' per-round-trip cost, without the scheduling of two processes (on
loopback a write makes the bytes readable at once, so the process never sleeps). Each figure
is the minimum over ``--reps`` runs (the least disturbed one), for:

* raw -- trio sockets, 100 B echoed by a server task that reads exactly 100 B and writes them
  back (``bench.py``'s raw round trips);
* libchan h2 and libchan spdy -- ``sender.send(b"x" * 100)``, then ``replies.receive()`` of
  the server's echo, sent on a reply channel that came in the first message, the server's
  task echoing with ``async for msg in first: await reply.send(msg)`` (``bench.py``'s libchan
  round trips).

It prints µs of CPU per round trip and libchan's ratio to raw (raw's CPU / libchan's). Run it
on each tree of an A/B comparison, in turn, with the same options::

    .venv/bin/python bench/rtt_cpu.py [--round-trips 50000] [--reps 5]

(Not the issue's figure: goal 2 is measured by ``bench.py``, whose ends are separate
processes; this one tells whether a change to the round-trip path made it cheaper.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trio  # noqa: E402

import libchan  # noqa: E402
from bench import _recv_exactly  # noqa: E402  (bench.py, beside this file: its raw round trips read so)
from oneway_cpu import report  # noqa: E402

PAYLOAD = b"x" * 100


async def _libchan_run(round_trips: int, profile: str) -> float:
    """CPU seconds per round trip of one run (both ends)."""

    async def handler(session: libchan.Session) -> None:
        first = await session.accept_receiver()
        reply = (await first.receive())["reply"]
        await reply.send("ready")
        async for msg in first:
            await reply.send(msg)

    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, "tcp://127.0.0.1:0", handler))
        async with libchan.connect(urls[0], profile=profile) as session:
            sender = await session.open_sender()
            reply, replies = libchan.pipe()
            await sender.send({"reply": reply})
            if await replies.receive() != "ready":
                raise RuntimeError("no 'ready' from the server")
            cpu0 = time.process_time()
            for _ in range(round_trips):
                await sender.send(PAYLOAD)
                echo = await replies.receive()
            cpu = time.process_time() - cpu0
            if echo != PAYLOAD:
                raise RuntimeError("bad echo")
            await sender.aclose()
        nursery.cancel_scope.cancel()
    return cpu / round_trips


async def _raw_run(round_trips: int) -> float:
    async def echo(stream: trio.SocketStream) -> None:
        while True:
            try:
                msg = await _recv_exactly(stream, len(PAYLOAD))
            except EOFError:
                return
            await stream.send_all(msg)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, echo, 0)
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        cpu0 = time.process_time()
        for _ in range(round_trips):
            await stream.send_all(PAYLOAD)
            got = await _recv_exactly(stream, len(PAYLOAD))
        cpu = time.process_time() - cpu0
        if got != PAYLOAD:
            raise RuntimeError("bad echo")
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return cpu / round_trips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--round-trips", type=int, default=50_000, help="round trips per run (default 50,000)")
    parser.add_argument("--reps", type=int, default=5, help="runs per figure; the minimum is printed (default 5)")
    args = parser.parse_args()
    if args.round_trips < 1 or args.reps < 1:
        parser.error("--round-trips and --reps must be at least 1")
    runs: dict[str, list[float]] = {"raw": [], "libchan h2": [], "libchan spdy": []}
    for _ in range(args.reps):  # interleaved, so that a slow moment hits every figure
        runs["raw"].append(trio.run(_raw_run, args.round_trips))
        runs["libchan h2"].append(trio.run(_libchan_run, args.round_trips, "h2"))
        runs["libchan spdy"].append(trio.run(_libchan_run, args.round_trips, "spdy"))
    report(f"round trips of 100 B, both ends in one process, CPU per round trip (min of {args.reps} x {args.round_trips:,})",
           runs, decimals=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
