#!/usr/bin/env python
"""Scale (issue 17, goal 3): many sessions, many channels, memory per idle session and channel.

Usage::

    .venv/bin/python bench/scale.py [--workload sessions,channels,memory] [--duration S] [--warmup S]
                                    [--sessions N] [--channels K] [--reps R] [--idle S]
                                    [--profile h2|spdy]

Every figure is measured with the server and the client in separate processes (this script
re-executes itself with a hidden ``--_role``), on 127.0.0.1, plaintext, and printed next to
its baseline of the same run:

sessions   N (default 1,000) concurrent sessions on one ``libchan.serve``, one TCP
           connection each, every session doing round trips (100 B ``send`` on an open
           channel, the echo read from a kept reply pipe) one at a time: total round trips
           per second over ``--duration`` seconds, counted once all N are connected and
           have done one round trip. Baseline: the same client tasks doing raw
           length-prefixed echo (4-byte length + 100 B) over N trio TCP connections to a
           raw trio echo server. Goal: libchan >= 0.5x raw. The server's ``Config`` allows
           N + 100 connections (the default ``max_connections`` is 512).
channels   one session with K channels open (default K = 1, 100, 1,000, 10,000; each opened
           and given one message before the clock starts), then one-way 100 B messages sent
           round-robin over all K for ``--warmup`` seconds (default 2; the server confirms
           them all before the clock starts: the cyclic collector's full collections that
           opening K channels brings about fall there), then for ``--duration`` seconds,
           measured; the server has one task per
           channel counting them, and the clock stops when it confirms the last. Goal: the
           10,000-channel figure >= 0.8x the one-channel figure. ``max_streams`` is 12,000
           on both sides (the default, 10,000, counts the control and reply streams too).
memory     a server and a client process hold N idle sessions (connected, nothing else, for
           ``--idle`` seconds, default 11: an idle link's writer task retires after a keepalive tick),
           then one more session with K idle channels (opened, one 1-byte message each,
           read by the server, which keeps the Receiver with no task on it); each process
           measures itself after ``gc.collect()`` before and after each step: RSS
           (``VmRSS``) and, in a second pair of processes run with ``tracemalloc``, the
           Python heap by the package whose code allocated it (libchan, h2/hpack/hyperframe,
           trio, the standard library...). Per idle session = delta / N, per idle channel =
           delta / K. Goals: < 20 KB per idle session, < 4 KB per idle channel on top of h2's
           own. The client first connects and closes one session and starts trio's worker
           thread (its stdin reader): what a process pays once is not counted per session.

``--profile spdy`` runs every libchan client with ``profile="spdy"`` (SPDY/3.1 + msgpack, Go
libchan's wire format; the same server takes both): the tables say which profile they measured.

Figures are medians of ``--reps`` runs (default 3; ``memory`` runs once). Besides the rates,
``sessions`` and ``channels`` print the CPU time of both processes per operation (the server's
sampled from ``/proc`` when the client's window starts and ends): on a shared machine the rates
move with the load, the CPU per operation much less. ``SCALE_GC=off`` disables the cyclic
garbage collector in the child processes (to see its share); ``SCALE_GC=stats`` makes each
child print its collections, and the parent the windows, on stderr (see ``_gc_stats``). Nothing is asserted: a benchmark
prints figures, it is not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time

PAYLOAD = b"x" * 100
MAX_STREAMS = 12_000


# ------------------------------------------------------------------------------------------
# measuring oneself
# ------------------------------------------------------------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _package(filename: str) -> str:
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        i = parts.index("site-packages")
        name = parts[i + 1] if i + 1 < len(parts) else "?"
        return name.split(".")[0].removesuffix(".py")
    for top in ("libchan", "libswarm"):
        if top in parts:
            return top
    if "<frozen" in filename or "/lib/python3" in filename:
        return "stdlib"
    return "other"


def self_stats() -> dict:
    import tracemalloc

    gc.collect()
    out: dict = {"rss_kb": _rss_kb(), "cpu": time.process_time()}
    if tracemalloc.is_tracing():
        by: dict[str, int] = {}
        for stat in tracemalloc.take_snapshot().statistics("filename"):
            key = _package(stat.traceback[0].filename)
            by[key] = by.get(key, 0) + stat.size
        out["heap"] = by
    return out


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _stdin_lines():
    import trio

    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        if not line:
            return
        yield line.strip()


# ------------------------------------------------------------------------------------------
# servers
# ------------------------------------------------------------------------------------------


def libchan_server_main(max_connections: int) -> None:
    import trio

    import libchan

    state = {"sessions": 0, "channels": 0}
    keep: list = []

    async def channels_op(session, first, reply) -> None:
        counter = {"n": 0, "want": None}
        lot = trio.lowlevel.ParkingLot()

        async def count(receiver) -> None:
            async for _msg in receiver:
                counter["n"] += 1
                if counter["want"] is not None and counter["n"] >= counter["want"]:
                    lot.unpark_all()

        async with trio.open_nursery() as nursery:

            async def accept_all() -> None:
                async for receiver in session:
                    nursery.start_soon(count, receiver)

            nursery.start_soon(accept_all)
            await reply.send("ready")
            async for msg in first:  # {"expect": n}
                counter["want"] = msg["expect"]
                while counter["n"] < counter["want"]:
                    await lot.park()
                counter["want"] = None  # (else every message of the next phase wakes the lot)
                await reply.send(counter["n"])
            nursery.cancel_scope.cancel()

    async def handler(session) -> None:
        state["sessions"] += 1
        try:
            first = await session.accept_receiver()
        except (trio.EndOfChannel, trio.BrokenResourceError, StopAsyncIteration):
            return
        except Exception:
            return
        hdr = await first.receive()
        op, reply = hdr["op"], hdr.get("reply")
        if op == "rtt":
            await reply.send("ready")
            try:
                async for msg in first:
                    await reply.send(msg)
            except trio.BrokenResourceError:
                pass
        elif op == "channels":
            try:
                await channels_op(session, first, reply)
            except trio.BrokenResourceError:
                pass
        elif op == "idle-channels":  # keep every receiver, no task on it, after its one message
            async for receiver in session:
                await receiver.receive()
                keep.append(receiver)
                state["channels"] += 1
        try:
            async for _ in session:
                pass
        except trio.BrokenResourceError:
            pass

    async def idle_handler(session) -> None:
        # memory: an idle session costs what libchan keeps for it; the handler just waits
        state["sessions"] += 1
        try:
            async for receiver in session:
                await receiver.receive()
                keep.append(receiver)
                state["channels"] += 1
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        config = libchan.Config(
            max_connections=max_connections, max_streams=MAX_STREAMS, max_connection_sessions=max_connections
        )
        memory = os.environ.get("SCALE_MEMORY") == "1"
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: libchan.serve(
                    "tcp://127.0.0.1:0", idle_handler if memory else handler, config=config, task_status=task_status
                )
            )
            emit({"port": int(urls[0].rsplit(":", 1)[1]), "pid": os.getpid()})
            async for line in _stdin_lines():
                if line == "stats":
                    emit({**self_stats(), **state})
                elif line == "count":
                    emit(dict(state))
            nursery.cancel_scope.cancel()

    trio.run(main)


def raw_server_main() -> None:
    import trio

    async def echo(stream) -> None:
        buf = bytearray()
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 4:
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + n:
                        break
                    msg = bytes(buf[: 4 + n])
                    del buf[: 4 + n]
                    await stream.send_all(msg)
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(lambda task_status: trio.serve_tcp(echo, 0, host="127.0.0.1", task_status=task_status))
            emit({"port": listeners[0].socket.getsockname()[1], "pid": os.getpid()})
            async for line in _stdin_lines():
                if line == "stats":
                    emit(self_stats())
            nursery.cancel_scope.cancel()

    trio.run(main)


# ------------------------------------------------------------------------------------------
# clients
# ------------------------------------------------------------------------------------------


async def _recv_exactly(stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = await stream.receive_some(n - len(buf))
        if not data:
            raise EOFError("connection closed")
        buf += data
    return bytes(buf)


async def sessions_client(impl: str, port: int, n: int, duration: float, profile: str) -> dict:
    import trio

    import libchan

    counts = [0] * n
    ready = {"n": 0}
    all_ready = trio.Event()
    stop = trio.Event()
    connect_gate = trio.Semaphore(64)
    config = libchan.Config(max_streams=MAX_STREAMS)

    def mark_ready() -> None:
        ready["n"] += 1
        if ready["n"] == n:
            all_ready.set()

    async def one_libchan(i: int) -> None:
        await connect_gate.acquire()
        held = True
        try:
            async with libchan.connect(f"tcp://127.0.0.1:{port}", config=config, profile=profile) as session:
                connect_gate.release()
                held = False
                await _rtt_loop(i, session)
        finally:
            if held:
                connect_gate.release()

    async def _rtt_loop(i: int, session) -> None:
        if True:
            sender = await session.open_sender()
            reply, replies = libchan.pipe()
            await sender.send({"op": "rtt", "reply": reply})
            assert await replies.receive() == "ready"
            await sender.send(PAYLOAD)
            await replies.receive()
            mark_ready()
            await all_ready.wait()
            while not stop.is_set():
                await sender.send(PAYLOAD)
                await replies.receive()
                counts[i] += 1
            await sender.aclose()

    async def one_raw(i: int) -> None:
        async with connect_gate:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        msg = len(PAYLOAD).to_bytes(4, "big") + PAYLOAD
        async with stream:
            await stream.send_all(msg)
            await _recv_exactly(stream, len(msg))
            mark_ready()
            await all_ready.wait()
            while not stop.is_set():
                await stream.send_all(msg)
                await _recv_exactly(stream, len(msg))
                counts[i] += 1

    one = one_libchan if impl == "libchan" else one_raw
    result: dict = {}
    t_setup = time.perf_counter()
    with trio.fail_after(max(120, 6 * duration)):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
            await all_ready.wait()
            setup = time.perf_counter() - t_setup
            emit({"window": "start"})
            c0, t0, cpu0 = sum(counts), time.perf_counter(), time.process_time()
            await trio.sleep(duration)
            c1, t1, cpu1 = sum(counts), time.perf_counter(), time.process_time()
            emit({"window": "end"})
            stop.set()
            busy = [c for c in counts if c]
            result = {
                "rate": (c1 - c0) / (t1 - t0),
                "count": c1 - c0,
                "window_s": t1 - t0,
                "setup_s": setup,
                "client_cpu": (cpu1 - cpu0) / (t1 - t0),
                "active": len(busy),
                "min_per_session": min(counts),
                "max_per_session": max(counts),
            }
    return result


async def channels_client(port: int, k: int, duration: float, warmup: float, profile: str) -> dict:
    import libchan

    config = libchan.Config(max_streams=MAX_STREAMS)
    async with libchan.connect(f"tcp://127.0.0.1:{port}", config=config, profile=profile) as session:
        ctl = await session.open_sender()
        reply, replies = libchan.pipe()
        await ctl.send({"op": "channels", "reply": reply})
        assert await replies.receive() == "ready"
        t_open = time.perf_counter()
        senders = []
        for _ in range(k):
            s = await session.open_sender()
            await s.send(b"h")
            senders.append(s)
        await ctl.send({"expect": k})
        assert await replies.receive() == k
        open_s = time.perf_counter() - t_open
        sent = 0

        async def send_batch(sent: int) -> int:
            """512 messages round-robin from where ``sent`` left off; the new count."""
            for _ in range(512):
                await senders[sent % k].send(PAYLOAD)
                sent += 1
            return sent

        # warm-up: the same traffic, confirmed by the server before the clock starts
        # (the cyclic collector's full collections that opening K channels brings
        # about, one-off work, fall here rather than in the measured window)
        deadline = time.perf_counter() + warmup
        while time.perf_counter() < deadline:
            sent = await send_batch(sent)
        await ctl.send({"expect": k + sent})
        assert await replies.receive() == k + sent
        warm, sent = sent, 0
        emit({"window": "start"})
        t0, cpu0 = time.perf_counter(), time.process_time()
        deadline = t0 + duration
        while True:
            sent = await send_batch(sent)
            if time.perf_counter() >= deadline:
                break
        await ctl.send({"expect": k + warm + sent})
        got = await replies.receive()
        t1, cpu1 = time.perf_counter(), time.process_time()
        emit({"window": "end"})
        assert got == k + warm + sent, (got, k + warm + sent)
        for s in senders:
            await s.aclose()
        await ctl.aclose()
    return {"rate": sent / (t1 - t0), "count": sent, "window_s": t1 - t0, "open_s": open_s,
            "client_cpu": (cpu1 - cpu0) / (t1 - t0)}


async def memory_client(port: int, n: int, k: int, idle: float, profile: str) -> None:
    import trio

    import libchan

    config = libchan.Config(max_streams=MAX_STREAMS)
    url = f"tcp://127.0.0.1:{port}"
    lines = _stdin_lines().__aiter__()
    # What the process pays once, not per session, comes before the first figure: trio's
    # worker thread (it reads stdin here: its stack and malloc arena) and what a first
    # connection makes once (modules imported on first use, tables shared by all
    # connections): one session connected and closed (the server counts it).
    await trio.to_thread.run_sync(lambda: None)
    async with libchan.connect(url, config=config, profile=profile):
        pass
    await trio.sleep(0.5)
    emit({"step": "start", **self_stats()})
    await lines.__anext__()
    async with trio.open_nursery() as nursery:
        gate = trio.Semaphore(64)
        up = {"n": 0}
        all_up = trio.Event()
        done = trio.Event()

        async def hold() -> None:
            await gate.acquire()
            held = True
            try:
                async with libchan.connect(url, config=config, profile=profile):
                    gate.release()
                    held = False
                    up["n"] += 1
                    if up["n"] == n:
                        all_up.set()
                    await done.wait()
            finally:
                if held:
                    gate.release()

        for _ in range(n):
            nursery.start_soon(hold)
        await all_up.wait()
        await trio.sleep(idle)  # (idle: a link's writer task retires after a keepalive tick without work)
        emit({"step": "sessions", **self_stats()})
        await lines.__anext__()
        async with libchan.connect(url, config=config, profile=profile) as session:
            senders = []
            for _ in range(k):
                s = await session.open_sender()
                await s.send(b"h")
                senders.append(s)
            await trio.sleep(0.5)
            emit({"step": "channels", **self_stats()})
            await lines.__anext__()
            done.set()
            for s in senders:
                await s.aclose()


def _gc_stats(role: str) -> None:
    """SCALE_GC=stats: the process prints (to stderr), at exit, how many cyclic
    collections of each generation it ran, the time they took and when each full
    collection ran (wall clock, to set beside the windows the parent prints); with
    SCALE_GC_TYPES=young also, at every 10th collection of generation 1, the types
    of the young objects it is about to move into the oldest generation."""
    import atexit
    from collections import Counter

    counts, times, start = [0, 0, 0], [0.0, 0.0, 0.0], [0.0]
    full: list[tuple[float, float]] = []
    young = [0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if info["generation"] == 1 and os.environ.get("SCALE_GC_TYPES") == "young":
                young[0] += 1
                if young[0] % 10 == 0:
                    c = Counter(type(o).__qualname__ for o in gc.get_objects(0) + gc.get_objects(1))
                    print(f"  young at {time.time() % 1000:.1f}: {c.most_common(12)}", file=sys.stderr)
            start[0] = time.perf_counter()
            return
        took = time.perf_counter() - start[0]
        counts[info["generation"]] += 1
        times[info["generation"]] += took
        if info["generation"] == 2:
            full.append((time.time() % 1000, took))

    def report() -> None:
        print(f"gc {role}: " + ", ".join(f"gen{g} {counts[g]} x, {times[g] * 1e3:.0f} ms" for g in range(3))
              + f"; {len(gc.get_objects())} objects tracked", file=sys.stderr)
        print("  full collections (at, ms): " + ", ".join(f"{t:.1f} {d * 1e3:.0f}" for t, d in full), file=sys.stderr)

    gc.callbacks.append(callback)
    atexit.register(report)


def client_main(args: argparse.Namespace) -> None:
    import trio

    if args.workload == "sessions":
        emit(trio.run(sessions_client, args.impl, args.port, args.sessions, args.duration, args.profile))
    elif args.workload == "channels":
        emit(trio.run(channels_client, args.port, args.channels, args.duration, args.warmup, args.profile))
    elif args.workload == "memory":
        trio.run(memory_client, args.port, args.sessions, args.channels, args.idle, args.profile)


# ------------------------------------------------------------------------------------------
# the parent
# ------------------------------------------------------------------------------------------


class Child:
    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        )

    def read(self) -> dict:
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.p.args!r} ended (status {self.p.wait()})")
        return json.loads(line)

    def say(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def stats(self) -> dict:
        self.say("stats")
        return self.read()

    def stop(self) -> None:
        try:
            if self.p.stdin:
                self.p.stdin.close()
            self.p.wait(10)
        except Exception:
            self.p.kill()
            self.p.wait()


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(argv: list[str], server: Child, server_pid: int, timeout: float) -> dict:
    """Run a client; the server's CPU time is sampled when the client's measuring window
    starts and ends (it says so on stdout), so that CPU per operation can be given: on a
    shared machine the rates move with the load, the CPU cost per operation much less."""
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_role", "client", *argv],
                         stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout, p.kill)
    watchdog.start()
    marks: dict[str, tuple[float, float]] = {}
    out: dict = {}
    assert p.stdout is not None
    for line in p.stdout:
        obj = json.loads(line)
        if "window" in obj:
            marks[obj["window"]] = (_cpu_of(server_pid), time.perf_counter())
            if os.environ.get("SCALE_GC") == "stats":
                print(f"  window {obj['window']} at {time.time() % 1000:.1f}", file=sys.stderr)
        else:
            out = obj
    code = p.wait()
    watchdog.cancel()
    if code != 0 or not out:
        raise RuntimeError(f"client {argv!r} failed: status {code}")
    (c0, t0), (c1, t1) = marks["start"], marks["end"]
    out["server_cpu"] = (c1 - c0) / (t1 - t0)
    # CPU time of both processes per operation, in µs (the server's sampled at 10 ms ticks)
    out["cpu_us"] = ((c1 - c0) + out["client_cpu"] * out["window_s"]) / max(1, out["count"]) * 1e6
    return out


def bench_sessions(opts: argparse.Namespace) -> None:
    n = opts.sessions
    servers = {
        "raw": Child(["--_role", "server-raw"]),
        "libchan": Child(["--_role", "server-libchan", "--max-connections", str(n + 100)]),
    }
    ports = {}
    try:
        for name, s in servers.items():
            ports[name] = s.read()
        runs: dict[str, list[dict]] = {"raw": [], "libchan": []}
        for rep in range(opts.reps):
            order = ["raw", "libchan"] if rep % 2 == 0 else ["libchan", "raw"]
            for impl in order:
                r = run_client(
                    ["--workload", "sessions", "--impl", impl, "--port", str(ports[impl]["port"]),
                     "--sessions", str(n), "--duration", str(opts.duration), "--profile", opts.profile],
                    servers[impl], ports[impl]["pid"], timeout=300,
                )
                runs[impl].append(r)
                print(f"  sessions {impl} rep {rep + 1}: {r['rate']:,.0f} round trips/s "
                      f"(set-up {r['setup_s']:.1f} s, client cpu {r['client_cpu']:.0%}, server cpu {r['server_cpu']:.0%}, {r['cpu_us']:.0f} µs CPU per round trip, "
                      f"per session {r['min_per_session']}..{r['max_per_session']})", file=sys.stderr, flush=True)
    finally:
        for s in servers.values():
            s.stop()
    raw = statistics.median(r["rate"] for r in runs["raw"])
    lc = statistics.median(r["rate"] for r in runs["libchan"])
    # each rep ran raw and libchan back to back: their ratio is less exposed to the
    # machine's load than the ratio of the medians
    paired = sorted(a["rate"] / b["rate"] for a, b in zip(runs["libchan"], runs["raw"]))
    print(f"\n## {n:,} concurrent sessions, round trips (median of {opts.reps} x {opts.duration:g} s)\n")
    print("| | round trips/s | [min .. max] | x raw | client CPU | server CPU | CPU µs per round trip (both) | goal |")
    print("|---|---|---|---|---|---|---|---|")
    for impl, med in (("raw TCP echo", raw), (f"libchan {opts.profile}", lc)):
        rs = [r["rate"] for r in runs["raw" if impl.startswith("raw") else "libchan"]]
        these = runs["raw" if impl.startswith("raw") else "libchan"]
        cpu = statistics.median(r["client_cpu"] for r in these)
        scpu = statistics.median(r["server_cpu"] for r in these)
        us = statistics.median(r["cpu_us"] for r in these)
        goal = "" if impl.startswith("raw") else ("met" if med >= 0.5 * raw else "MISSED") + " (>= 0.5x)"
        print(f"| {impl} | {med:,.0f} | [{min(rs):,.0f} .. {max(rs):,.0f}] | {med / raw:.2f}x | {cpu:.0%} | {scpu:.0%} "
              f"| {us:.0f} | {goal} |")
    print(f"\nlibchan / raw of each rep (back to back): {', '.join(f'{x:.2f}x' for x in paired)}; "
          f"median {statistics.median(paired):.2f}x")


def bench_channels(opts: argparse.Namespace) -> None:
    ks = [int(k) for k in opts.channel_counts.split(",")]
    server = Child(["--_role", "server-libchan", "--max-connections", "64"])
    info = server.read()
    runs: dict[int, list[dict]] = {k: [] for k in ks}
    try:
        for rep in range(opts.reps):
            order = ks if rep % 2 == 0 else list(reversed(ks))
            for k in order:
                r = run_client(
                    ["--workload", "channels", "--port", str(info["port"]), "--channels", str(k),
                     "--duration", str(opts.duration), "--warmup", str(opts.warmup), "--profile", opts.profile],
                    server, info["pid"], timeout=300,
                )
                runs[k].append(r)
                print(f"  channels K={k} rep {rep + 1}: {r['rate']:,.0f} messages/s (opening: {r['open_s']:.2f} s, "
                      f"client cpu {r['client_cpu']:.0%}, server cpu {r['server_cpu']:.0%}, {r['cpu_us']:.1f} µs CPU per message)", file=sys.stderr, flush=True)
    finally:
        server.stop()
    one = statistics.median(r["rate"] for r in runs[ks[0]])
    paired = sorted(a["rate"] / b["rate"] for a, b in zip(runs[ks[-1]], runs[ks[0]]))
    print(f"\n## one libchan {opts.profile} session, K open channels, one-way 100 B messages round-robin over all K "
          f"(median of {opts.reps} x {opts.duration:g} s, each after {opts.warmup:g} s of warm-up)\n")
    print("| K channels | messages/s | [min .. max] | x K=1 | opening K channels (s) | client CPU | server CPU "
          "| CPU µs per message (both) | goal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in ks:
        rs = [r["rate"] for r in runs[k]]
        med = statistics.median(rs)
        goal = ("met" if med >= 0.8 * one else "MISSED") + " (>= 0.8x)" if k >= 10_000 else ""
        print(f"| {k:,} | {med:,.0f} | [{min(rs):,.0f} .. {max(rs):,.0f}] | {med / one:.2f}x "
              f"| {statistics.median(r['open_s'] for r in runs[k]):.2f} "
              f"| {statistics.median(r['client_cpu'] for r in runs[k]):.0%} "
              f"| {statistics.median(r['server_cpu'] for r in runs[k]):.0%} "
              f"| {statistics.median(r['cpu_us'] for r in runs[k]):.1f} | {goal} |")
    print(f"\nK={ks[-1]:,} / K={ks[0]:,} of each rep: {', '.join(f'{x:.2f}x' for x in paired)}; "
          f"median {statistics.median(paired):.2f}x")


def _memory_run(opts: argparse.Namespace, trace: bool) -> dict:
    env = {"SCALE_MEMORY": "1"}
    if trace:
        env["PYTHONTRACEMALLOC"] = "1"
    server = Child(["--_role", "server-libchan", "--max-connections", str(opts.sessions + 100)], env=env)
    info = server.read()
    client = Child(["--_role", "client", "--workload", "memory", "--port", str(info["port"]),
                    "--sessions", str(opts.sessions), "--channels", str(opts.mem_channels), "--idle", str(opts.idle),
                    "--profile", opts.profile], env=env)
    steps: dict = {}
    try:
        c = client.read()
        steps["start"] = (server.stats(), c)
        client.say("go")
        c = client.read()
        for _ in range(100):
            server.say("count")
            if server.read()["sessions"] >= opts.sessions + 1:  # (and the warm-up session)
                break
            time.sleep(0.1)
        steps["sessions"] = (server.stats(), c)
        client.say("go")
        c = client.read()
        for _ in range(100):
            server.say("count")
            if server.read()["channels"] >= opts.mem_channels:
                break
            time.sleep(0.1)
        steps["channels"] = (server.stats(), c)
        client.say("go")
    finally:
        client.stop()
        server.stop()
    return steps


def bench_memory(opts: argparse.Namespace) -> None:
    n, k = opts.sessions, opts.mem_channels
    plain = _memory_run(opts, trace=False)
    print("  memory: RSS run done", file=sys.stderr, flush=True)
    traced = _memory_run(opts, trace=True)
    print("  memory: tracemalloc run done", file=sys.stderr, flush=True)

    def rss_delta(steps: dict, a: str, b: str, side: int) -> float:
        return (steps[b][side]["rss_kb"] - steps[a][side]["rss_kb"]) * 1024

    def heap_delta(steps: dict, a: str, b: str, side: int) -> dict[str, float]:
        ha, hb = steps[a][side]["heap"], steps[b][side]["heap"]
        return {key: hb.get(key, 0) - ha.get(key, 0) for key in set(ha) | set(hb)}

    print(f"\n## memory, libchan {opts.profile}: {n:,} idle sessions (one connection each), then {k:,} idle channels "
          "on one more session\n")
    print("| | side | RSS delta per item | Python heap per item (tracemalloc) | of which h2, hpack, hyperframe | libchan | trio | stdlib + other | goal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, a, b, count, goal_b in (("idle session", "start", "sessions", n, 20_000), ("idle channel", "sessions", "channels", k, 4_000)):
        for side, name in ((0, "server"), (1, "client")):
            rss = rss_delta(plain, a, b, side) / count
            heap = heap_delta(traced, a, b, side)
            total = sum(heap.values()) / count
            h2own = sum(heap.get(p, 0) for p in ("h2", "hpack", "hyperframe")) / count
            lib = heap.get("libchan", 0) / count
            tr = (heap.get("trio", 0) + heap.get("outcome", 0) + heap.get("sortedcontainers", 0)) / count
            rest = total - h2own - lib - tr
            if label == "idle session":
                goal = ("met" if rss < goal_b else "MISSED") + f" (< {goal_b // 1000} KB)"
            else:
                over = " over h2's" if opts.profile == "h2" else ""  # (spdy: no h2 state)
                goal = ("met" if total - h2own < goal_b else "MISSED") + f" (< {goal_b // 1000} KB{over})"
            print(f"| {label} | {name} | {rss / 1000:.1f} KB | {total / 1000:.1f} KB | {h2own / 1000:.1f} KB "
                  f"| {lib / 1000:.1f} KB | {tr / 1000:.1f} KB | {rest / 1000:.1f} KB | {goal} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="sessions,channels,memory")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="channels: seconds of the same traffic, confirmed by the server, before the clock starts")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=10_000)
    ap.add_argument("--channel-counts", default="1,100,1000,10000")
    ap.add_argument("--mem-channels", type=int, default=10_000)
    ap.add_argument("--idle", type=float, default=11.0,
                    help="memory: seconds the sessions stay idle before they are measured (default 11: two"
                         " keepalive ticks of the default Config and a second, after which an idle link's"
                         " writer task has retired)")
    ap.add_argument("--profile", choices=["h2", "spdy"], default="h2",
                    help='the libchan clients\' wire profile: h2 (HTTP/2 + CBOR, the default) or spdy (SPDY/3.1 +'
                         ' msgpack, Go libchan\'s); the server takes both')
    ap.add_argument("--_role", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="libchan", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--max-connections", type=int, default=512, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts._role and os.environ.get("SCALE_GC") == "off":  # an experiment: is it the cyclic GC?
        gc.disable()
    if opts._role and os.environ.get("SCALE_GC") == "stats":  # how much of the time it is
        _gc_stats(opts._role)
    if opts._role == "server-libchan":
        libchan_server_main(opts.max_connections)
        return
    if opts._role == "server-raw":
        raw_server_main()
        return
    if opts._role == "client":
        client_main(opts)
        return
    load = os.getloadavg()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    print(f"# bench/scale.py at {rev}; load average before {load[0]:.2f} {load[1]:.2f}")
    for w in opts.workload.split(","):
        {"sessions": bench_sessions, "channels": bench_channels, "memory": bench_memory}[w](opts)
    load = os.getloadavg()
    print(f"\nload average after {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    main()
