"""CPU per one-way message, both ends in one process: a steadier A/B figure for issue 17's goal 2.

``bench.py``'s one-way figure is a rate between two processes on a shared 2-core VM: it moves
by a third from run to run, more than most single changes to the per-message path. This runs
the sender and the receiver of one channel in *one* trio process over a loopback TCP
connection and divides the process's CPU time by the messages carried, so both ends'
per-message cost is counted and the scheduling of two processes is not. Each figure is the
minimum over ``--reps`` runs (the least disturbed one), for:

* raw -- trio sockets, 256 length-prefixed 100-byte messages per ``send_all``, split into
  ``bytes`` objects in Python by the receiver (``bench.py``'s raw one-way: its receiver,
  ``count_framed_messages``);
* libchan h2 and libchan spdy -- ``sender.send(b"x" * 100)`` in a loop, ``async for`` on the
  receiving side (``bench.py``'s libchan one-way); with ``--channels K``, round-robin over K
  channels of the session, each read by a task of its own (``scale.py``'s channels workload,
  in one process). The clock stops when the last message is counted.

It prints µs of CPU per message and libchan's ratio to raw (raw's CPU / libchan's: the rate
ratio one process with both ends could reach). Run it on each tree of an A/B comparison, in
turn, with the same options::

    .venv/bin/python bench/oneway_cpu.py [--messages 200000] [--reps 5] [--channels 1]

(Not the issue's figure: goal 2 is measured by ``bench.py``, whose ends are separate
processes; this one tells whether a change to the per-message path made it cheaper.)
"""

from __future__ import annotations

import argparse
import os
from functools import partial
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trio  # noqa: E402

import libchan  # noqa: E402
from bench import count_framed_messages  # noqa: E402  (bench.py, beside this file: its raw one-way receiver)

PAYLOAD = b"x" * 100
BATCH = 256


async def _libchan_run(messages: int, profile: str, channels: int = 1) -> float:
    """CPU seconds per message of one run (both ends), over ``channels`` channels
    (round-robin, a counting task per channel on the receiving side)."""
    done = trio.Event()
    counted = {"n": 0}
    sent = (messages // BATCH) * BATCH
    want = sent + channels  # (and each channel's first message, sent before the clock starts)

    async def count(receiver: libchan.Receiver) -> None:
        async for _msg in receiver:
            counted["n"] += 1
            if counted["n"] == want:
                done.set()

    async def handler(session: libchan.Session) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(channels):
                nursery.start_soon(count, await session.accept_receiver())

    config = libchan.Config(max_streams=max(10_000, channels + 100))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, "tcp://127.0.0.1:0", handler, config=config))
        async with libchan.connect(urls[0], profile=profile, config=config) as session:
            senders = [await session.open_sender() for _ in range(channels)]
            for sender in senders:
                await sender.send(b"start")
            cpu0 = time.process_time()
            if channels == 1:
                sender = senders[0]
                for _ in range(messages // BATCH):
                    for _ in range(BATCH):
                        await sender.send(PAYLOAD)
            else:
                i = 0
                for _ in range(sent):
                    await senders[i].send(PAYLOAD)
                    i += 1
                    if i == channels:
                        i = 0
            await done.wait()  # (the clock stops at the last message, before the closes)
            cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    if counted["n"] != want:
        raise RuntimeError(f"the receivers counted {counted['n']} messages, {want} were sent")
    return cpu / sent


async def _raw_run(messages: int) -> float:
    counted = {"n": 0}
    done = trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        counted["n"] = await count_framed_messages(stream)
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handle, 0)
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        framed = len(PAYLOAD).to_bytes(4, "big") + PAYLOAD
        cpu0 = time.process_time()
        for _ in range(messages // BATCH):
            await stream.send_all(b"".join([framed for _ in range(BATCH)]))
        await stream.send_all(b"\0\0\0\0")  # (the end, as bench.py's raw client says it)
        await stream.aclose()
        await done.wait()
        cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    sent = (messages // BATCH) * BATCH
    if counted["n"] != sent:
        raise RuntimeError(f"the receiver counted {counted['n']} messages, {sent} were sent")
    return cpu / sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per run (default 200,000)")
    parser.add_argument("--reps", type=int, default=5, help="runs per figure; the minimum is printed (default 5)")
    parser.add_argument("--channels", type=int, default=1,
                        help="libchan: send round-robin over this many channels of the session, each read by a "
                             "task of its own (default 1; raw stays one connection)")
    args = parser.parse_args()
    if args.messages < BATCH or args.reps < 1 or args.channels < 1:
        parser.error(f"--messages must be at least {BATCH}, --reps and --channels at least 1")
    runs: dict[str, list[float]] = {"raw": [], "libchan h2": [], "libchan spdy": []}
    for _ in range(args.reps):  # interleaved, so that a slow moment hits every figure
        runs["raw"].append(trio.run(_raw_run, args.messages))
        runs["libchan h2"].append(trio.run(_libchan_run, args.messages, "h2", args.channels))
        runs["libchan spdy"].append(trio.run(_libchan_run, args.messages, "spdy", args.channels))
    over = f", libchan over {args.channels:,} channels round-robin" if args.channels > 1 else ""
    report(f"one-way 100 B messages, both ends in one process, CPU per message (min of {args.reps} x {args.messages:,}{over})",
           runs, decimals=3)
    return 0


def report(title: str, runs: dict[str, list[float]], decimals: int) -> None:
    """Print ``title``, the revision and load, then each figure's minimum over its runs (in
    µs, with the spread) and libchan's ratio to ``runs["raw"]`` (raw's CPU / libchan's)."""
    best = {name: min(values) for name, values in runs.items()}
    print(f"# {title}")
    print(f"# libchan {_revision()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, value in best.items():
        spread = f"[{min(runs[name]) * 1e6:.{decimals}f} .. {max(runs[name]) * 1e6:.{decimals}f}]"
        ratio = "" if name == "raw" else f"  {best['raw'] / value:.2f}x of raw"
        print(f"{name:14s} {value * 1e6:6.{decimals}f} µs {spread}{ratio}")


def _revision() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
