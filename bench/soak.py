#!/usr/bin/env python
"""Soak benchmark: hostile peers against a libchan server in another process (issue 11).

Usage::

    .venv/bin/python bench/soak.py [--seconds N] [--attacks a,b,c] [--list]
                                   [--budget-mib M] [--config FIELD=VALUE ...]
                                   [--scale F] [--settle S] [--drain S] [--check] [--json FILE]

The script starts a server process (itself, with ``--serve``): ``libchan.serve`` on
``tcp://127.0.0.1:0`` with the default ``Config`` (``--config`` changes fields), whose
sessions echo, and a side unix socket on which it answers stats requests (its live trio
tasks, live sessions, libchan objects). Then, for each attack in turn:

1. *before*: the server's RSS (``/proc/PID/status`` VmRSS, after a ``gc.collect()`` and
   ``malloc_trim(0)`` in the server), descriptors (``/proc/PID/fd``), tasks, sessions;
2. a well-behaved client (a process of its own: ``libchan.connect``, default ``Config``)
   does one echo round trip every 10-20 ms, each on a fresh reply channel (the server opens
   a stream for it), for ``--seconds``, and records each latency (a round trip not answered
   within ``--rt-timeout`` counts as failed and enters the figures at its timeout);
3. at the same time an attacker process runs the attack for ``--seconds`` (each attack's
   work is also capped, see ``--list``), while the parent samples the server's RSS every
   50 ms (the peak);
4. the attacker closes all its connections and exits; after ``--settle`` seconds, and
   until tasks and sessions are back to their count before (at most ``--drain`` seconds:
   sessions without a control stream live ``control_timeout``, 10 s), *after* is measured
   like *before* (raw RSS first, then again after gc + malloc_trim: the ``trim`` figure).

One row per attack; the server is restarted before the next attack if it died, stopped
answering stats, was killed for exceeding ``--kill-rss-mib``, or did not come back (RSS
still more than twice its start and 64 MiB above it, or hundreds of tasks left); the row
says so. Goals (issue 11): p99 of the well-behaved client under 100 ms with no failed round
trip; peak RSS under the budget (``--budget-mib``, 256 by default); RSS after within 10 %
of before (if only the allocator kept pages -- tasks, sessions and libchan objects back to
their count -- the column says ``pages`` and the goal counts as met). The exit status is 0
whatever the figures, except with ``--check``: 1 when a goal was missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MIB = 1024 * 1024
P99_GOAL_MS = 100.0

# =========================================================================================
# The server process (--serve)
# =========================================================================================

#: libchan classes whose live instances the stats request counts (gc-tracked objects only)
WATCHED_TYPES = ("SessionCore", "Session", "NetStream", "Link", "H2Connection", "CborCodec", "CBORDecoder", "BytesIO")


def _parse_config(pairs: list[str]):
    import libchan

    fields = {f.name: f for f in dataclasses.fields(libchan.Config)}
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields:
            raise SystemExit(f"soak: Config has no field {name!r} (fields: {', '.join(fields)})")
        default = getattr(libchan.Config(), name)
        if isinstance(default, bool):
            kwargs[name] = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            kwargs[name] = int(value)
        elif isinstance(default, float):
            kwargs[name] = float(value)
        else:
            kwargs[name] = value
    return libchan.Config(**kwargs)


def serve_main(args) -> None:
    import logging

    import trio

    import libchan

    logging.basicConfig(level=args.server_log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    config = _parse_config(args.config)
    state = {"started": 0, "live": 0}

    async def serve_channel(receiver) -> None:
        try:
            async for msg in receiver:
                if not isinstance(msg, dict):
                    continue
                reply = msg.get("reply")
                if reply is None:
                    continue
                if "fill" in msg:  # a lot to send toward this peer (the no-read attack)
                    await reply.send(b"x" * int(msg["fill"]))
                elif "n" in msg:
                    await reply.send(msg["n"])
                    if msg.get("once"):
                        await reply.aclose()
        except (libchan.LibchanError, trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
            pass

    async def handler(session) -> None:
        state["started"] += 1
        state["live"] += 1
        try:
            async with trio.open_nursery() as nursery:
                async for receiver in session:
                    nursery.start_soon(serve_channel, receiver)
        except (libchan.LibchanError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            state["live"] -= 1

    def count_tasks() -> int:
        def rec(task) -> int:
            return 1 + sum(rec(c) for n in task.child_nurseries for c in n.child_tasks)

        return rec(trio.lowlevel.current_root_task())

    def stats(command: str) -> dict:
        out: dict[str, Any] = {}
        if command in ("full", "trim"):
            gc.collect()
            watched = Counter()
            names = set(WATCHED_TYPES)
            objects = gc.get_objects()
            for obj in objects:
                name = type(obj).__name__
                if name in names:
                    watched[name] += 1
            out["objects"] = len(objects)
            out["watched"] = dict(watched)
            del objects
        if command == "trim":
            try:
                import ctypes

                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except (OSError, AttributeError):
                pass
        # minus this stats connection's own task
        out.update(tasks=count_tasks() - 1, sessions_live=state["live"], sessions_started=state["started"])
        return out

    async def stats_connection(stream) -> None:
        try:
            with trio.move_on_after(30):
                data = b""
                while not data.endswith(b"\n"):
                    chunk = await stream.receive_some(1024)
                    if not chunk:
                        return
                    data += chunk
                answer = stats(data.decode().strip())
                await stream.send_all(json.dumps(answer).encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def main() -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(args.stats)
        sock.listen(16)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, stats_connection, [trio.SocketListener(sock)])
            urls = await nursery.start(lambda task_status: libchan.serve("tcp://127.0.0.1:0", handler, config=config, task_status=task_status))
            print(urls[0], flush=True)

    trio.run(main)


# =========================================================================================
# The well-behaved client (--_probe)
# =========================================================================================


def probe_main(args) -> None:
    import trio

    import libchan

    lat: list[float] = []
    errors: Counter = Counter()
    result = {"ok": 0, "failed": 0, "reconnects": 0}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await measure(nursery)
            nursery.cancel_scope.cancel()

    async def measure(nursery) -> None:
        sender = None
        current: list = [None]  # the cancel scope of the task holding the session

        async def hold_session(task_status=trio.TASK_STATUS_IGNORED) -> None:
            started = False
            with trio.CancelScope() as scope:
                try:
                    if args.http:
                        async with await trio.open_tcp_stream(*_host_port(args.url)) as stream:
                            task_status.started((scope, stream))
                            started = True
                            await trio.sleep_forever()
                    else:
                        async with libchan.connect(args.url) as session:
                            task_status.started((scope, await session.open_sender()))
                            started = True
                            await trio.sleep_forever()
                except Exception as exc:  # noqa: BLE001 -- a broken session shows in the round trips
                    if not started:
                        raise
                    errors["session ended: " + type(exc).__name__] += 1

        async def connect():
            if current[0] is not None:
                current[0].cancel()  # the old session goes away abruptly
            with trio.fail_after(5):
                current[0], new_sender = await nursery.start(hold_session)
            return new_sender

        async def round_trip(i: int) -> float:
            """Seconds of one echo round trip (TimeoutError past --rt-timeout)."""
            t0 = time.perf_counter()
            with trio.move_on_after(args.rt_timeout):
                if args.http:  # Docker API: GET /_ping on a kept-alive connection
                    await sender.send_all(b"GET /_ping HTTP/1.1\r\nHost: soak\r\n\r\n")
                    status, _ = await _http_response(sender)
                    if status != 200:
                        raise ValueError(f"status {status}")
                    return time.perf_counter() - t0
                reply, replies = libchan.pipe()
                await sender.send({"n": i, "reply": reply, "once": True})
                if await replies.receive() != i:
                    raise libchan.RemoteProtocolError("wrong echo")
                return time.perf_counter() - t0
            raise TimeoutError

        sender = await connect()
        await round_trip(0)  # warm-up: lazy imports, first park
        print("ready", flush=True)
        deadline = time.perf_counter() + args.seconds
        i = 1
        timeouts_in_row = 0
        while time.perf_counter() < deadline:
            i += 1
            t0 = time.perf_counter()
            broken = False
            try:
                lat.append(round(await round_trip(i), 6))
                result["ok"] += 1
                timeouts_in_row = 0
            except TimeoutError:
                result["failed"] += 1
                errors["timeout"] += 1
                lat.append(time.perf_counter() - t0)
                timeouts_in_row += 1
                broken = timeouts_in_row >= 2
            except Exception as exc:  # noqa: BLE001 -- any failure of the server is a figure
                result["failed"] += 1
                errors[type(exc).__name__] += 1
                broken = True
            if broken:
                timeouts_in_row = 0
                while time.perf_counter() < deadline:
                    try:
                        sender = await connect()
                        result["reconnects"] += 1
                        break
                    except Exception as exc:  # noqa: BLE001
                        errors["connect " + type(exc).__name__] += 1
                        await trio.sleep(0.1)
            await trio.sleep(random.uniform(0.010, 0.020))

    try:
        trio.run(main)
    except Exception as exc:  # noqa: BLE001
        errors["probe " + type(exc).__name__ + ": " + str(exc)[:80]] += 1
    print(json.dumps({**result, "lat": lat, "errors": dict(errors)}), flush=True)


# =========================================================================================
# Raw HTTP/2 toolkit (attacker side)
# =========================================================================================

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
CANCEL = 8


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + sid.to_bytes(4, "big") + payload


def frame_head(ftype: int, flags: int, sid: int, length: int) -> bytes:
    return length.to_bytes(3, "big") + bytes((ftype, flags)) + sid.to_bytes(4, "big")


def settings_frame(settings: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in settings.items()))


def window_update(sid: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, sid, increment.to_bytes(4, "big"))


def _hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    top = (1 << prefix) - 1
    if value < top:
        return bytes((first | value,))
    out = bytearray((first | top,))
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_block(headers: list[tuple[str, str]]) -> bytes:
    """Literal header fields without indexing, new names: the encoder's dynamic table is
    never touched, so one block can be sent on any stream of any connection."""
    out = bytearray()
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return bytes(out)


def request_headers(method: str = "POST", path: str = "/", extra: list[tuple[str, str]] = ()) -> bytes:
    return hpack_block([(":method", method), (":scheme", "http"), (":authority", "soak"), (":path", path), *extra])


def session_id() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


class RawConn:
    """One hand-driven HTTP/2 connection: frames go out as given; a reader task (unless
    ``read=False``) answers SETTINGS and PING, pays for DATA it receives, tracks the
    peer's flow-control windows for ``send_data`` and counts what the server did."""

    def __init__(self, stream, counters: Counter, decode: bool) -> None:
        import trio

        self.stream = stream
        self.c = counters
        self.lock = trio.Lock()
        self.event = trio.Event()
        self.settings_seen = trio.Event()
        self.closed = False
        self.goaway: int | None = None
        self.open: set[int] = set()
        self.peer_initial = 65535
        self.peer_max_frame = 16384
        self.conn_window = 65535
        self.stream_delta: Counter = Counter()  # credit minus bytes sent, per stream
        self.unpaid = 0
        self.decoder = None
        if decode:
            import hpack

            self.decoder = hpack.Decoder()
            self.decoder.max_header_list_size = 1 << 20
        self.header_buf: dict[int, bytearray] = {}
        self.next_sid = 1
        #: the reader sends nothing (no PING or SETTINGS acknowledgement): inside an open header
        #: block any other frame is a connection error
        self.silent = False

    def wake(self) -> None:
        import trio

        self.event.set()
        self.event = trio.Event()

    async def send(self, data: bytes, more: bytes | None = None) -> None:
        async with self.lock:
            await self.stream.send_all(data)
            if more is not None:
                await self.stream.send_all(more)
        self.c["bytes_sent"] += len(data) + (len(more) if more is not None else 0)

    def alloc(self, n: int = 1) -> int:
        sid = self.next_sid
        self.next_sid += 2 * n
        return sid

    def window(self, sid: int) -> int:
        return min(self.conn_window, self.peer_initial + self.stream_delta[sid])

    async def wait(self) -> None:
        if self.closed:
            import trio

            raise trio.BrokenResourceError(f"connection closed by the server (GOAWAY {self.goaway})")
        await self.event.wait()

    async def wait_outstanding_below(self, limit: int) -> None:
        while len(self.open) >= limit:
            await self.wait()

    async def send_data(self, sid: int, data, end: bool = False) -> None:
        view = memoryview(data)
        while view or end:
            n = min(len(view), self.window(sid), self.peer_max_frame)
            if n <= 0 and view:
                await self.wait()
                continue
            last = end and n == len(view)
            chunk = view[:n]
            self.conn_window -= n
            self.stream_delta[sid] -= n
            await self.send(frame_head(DATA, END_STREAM if last else 0, sid, n), bytes(chunk) if n else None)
            view = view[n:]
            if last:
                break

    async def reader(self) -> None:
        import trio

        buf = bytearray()
        try:
            while True:
                data = await self.stream.receive_some(262144)
                if not data:
                    break
                buf += data
                out: list[bytes] = []
                pos, end = 0, len(buf)
                while end - pos >= 9:
                    length = int.from_bytes(buf[pos : pos + 3], "big")
                    if end - pos < 9 + length:
                        break
                    ftype, flags = buf[pos + 3], buf[pos + 4]
                    sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                    payload = bytes(buf[pos + 9 : pos + 9 + length]) if ftype != DATA else b""
                    self._frame(ftype, flags, sid, length, payload, out)
                    pos += 9 + length
                del buf[:pos]
                if out and not self.silent:
                    await self.send(b"".join(out))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.closed = True
            self.wake()

    def _done(self, sid: int) -> None:
        if sid in self.open:
            self.open.discard(sid)
            self.c["completed"] += 1

    def _frame(self, ftype: int, flags: int, sid: int, length: int, payload: bytes, out: list[bytes]) -> None:
        c = self.c
        if ftype == DATA:
            c["data_rcvd"] += length
            if length:
                self.unpaid += length
                if self.unpaid >= 1 << 20:
                    out.append(window_update(0, self.unpaid))
                    self.unpaid = 0
                if not flags & END_STREAM:
                    out.append(window_update(sid, length))
            if flags & END_STREAM:
                self._done(sid)
        elif ftype in (HEADERS, CONTINUATION):
            if self.decoder is not None:
                if ftype == HEADERS:
                    if flags & 0x8:  # PADDED
                        payload = payload[1 : len(payload) - payload[0]]
                    if flags & 0x20:  # PRIORITY
                        payload = payload[5:]
                    self.header_buf[sid] = bytearray(payload)
                else:
                    self.header_buf.setdefault(sid, bytearray()).extend(payload)
                if flags & END_HEADERS:
                    try:
                        headers = dict(self.decoder.decode(bytes(self.header_buf.pop(sid, b""))))
                        status = headers.get(b":status") or headers.get(":status")
                        if status:
                            c["status " + (status.decode() if isinstance(status, bytes) else status)] += 1
                    except Exception:  # noqa: BLE001
                        c["bad header block"] += 1
            if ftype == HEADERS and flags & END_STREAM:
                self._done(sid)
        elif ftype == RST_STREAM:
            c[f"RST_STREAM({int.from_bytes(payload[:4], 'big')}) received"] += 1
            self._done(sid)
        elif ftype == SETTINGS:
            if not flags & ACK:
                for i in range(0, len(payload) - 5, 6):
                    key, value = struct.unpack(">HI", payload[i : i + 6])
                    if key == 4:
                        self.peer_initial = value
                    elif key == 5:
                        self.peer_max_frame = value
                out.append(frame(SETTINGS, ACK, 0))
                self.settings_seen.set()
        elif ftype == PING:
            if not flags & ACK:
                out.append(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            self.goaway = int.from_bytes(payload[4:8], "big")
            c[f"GOAWAY({self.goaway}) received"] += 1
        elif ftype == WINDOW_UPDATE:
            inc = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if sid == 0:
                self.conn_window += inc
            else:
                self.stream_delta[sid] += inc
        self.wake()


class AttackContext:
    def __init__(self, host: str, port: int, seconds: float, scale: float, nursery) -> None:
        self.host, self.port, self.seconds, self.scale = host, port, seconds, scale
        self.nursery = nursery
        self.c: Counter = Counter()
        self.streams: list = []
        self.deadline = time.monotonic() + seconds
        self.notes: list[str] = []

    def n(self, count: int) -> int:
        return max(1, int(count * self.scale))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def tcp(self):
        import trio

        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(self.host, self.port)
        self.streams.append(stream)
        self.c["connections"] += 1
        return stream

    async def connect(self, settings: dict[int, int] | None = None, read: bool = True, decode: bool = False,
                      wait_settings: bool = False) -> RawConn:
        import trio

        stream = await self.tcp()
        conn = RawConn(stream, self.c, decode)
        first = PREFACE + settings_frame(settings or {})
        if read:  # a reading client lets the server send: raise our connection window
            first += window_update(0, (1 << 30))
        await conn.send(first)
        if read:
            self.nursery.start_soon(conn.reader)
            if wait_settings:
                with trio.move_on_after(5):
                    await conn.settings_seen.wait()
        return conn

    async def drain(self, stream) -> None:
        """Read and discard everything (a peer that reads but does not parse)."""
        import trio

        try:
            while await stream.receive_some(262144):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


def _status_summary(c: Counter) -> str:
    keys = sorted(k for k in c if k.startswith(("status ", "RST_STREAM(", "GOAWAY(")))
    return ", ".join(f"{c[k]} {k.replace(' received', '')}" for k in keys)


# -- the attacks ---------------------------------------------------------------------------------


async def attack_get_flood(ctx: AttackContext) -> str:
    """10 connections x 100 concurrent GET / (405): h2load -c 10 -m 100 -D SECONDS when h2load is
    installed (SOAK_NO_H2LOAD=1: never), else a built-in equivalent that stops at 100,000 requests."""
    import trio

    total = ctx.n(100_000)
    h2load = shutil.which("h2load")
    if h2load and not os.environ.get("SOAK_NO_H2LOAD"):
        # timing-based (-D): h2load then ignores -n, so the time is the bound
        cmd = [h2load, "-c", "10", "-m", "100", "-D", str(max(1, round(ctx.left()))), f"http://{ctx.host}:{ctx.port}/"]
        with trio.move_on_after(ctx.left() + 10):
            proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
            for line in proc.stdout.decode(errors="replace").splitlines():
                if line.startswith(("requests:", "status codes:", "finished in")):
                    ctx.notes.append(line.strip().rstrip(","))
            return "h2load -c 10 -m 100 -D: " + "; ".join(ctx.notes)
        return "h2load -c 10 -m 100: did not finish"
    block = request_headers("GET", "/")
    per = total // 10

    async def one() -> None:
        conn = await ctx.connect()
        sent = 0
        while sent < per and ctx.left() > 0:
            await conn.wait_outstanding_below(100)
            k = min(100 - len(conn.open), per - sent)
            sid = conn.alloc(k)
            sids = range(sid, sid + 2 * k, 2)
            conn.open.update(sids)
            await conn.send(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, block) for s in sids))
            sent += k
            ctx.c["requests"] += k
        while conn.open and ctx.left() > 0:
            await conn.wait()

    await _run_each(ctx, [one] * 10)
    return f"{ctx.c['requests']} GET sent, {ctx.c['completed']} answered (built-in flood)"


async def _run_each(ctx: AttackContext, jobs: list[Callable]) -> None:
    """Run the jobs concurrently; a job's failure is counted, not raised."""
    import trio

    async def guarded(job) -> None:
        try:
            await job()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, trio.TooSlowError) as exc:
            ctx.c["attacker errors"] += 1
            ctx.c["error: " + (str(exc)[:60] or type(exc).__name__)] += 1

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(guarded, job)


async def attack_refused(ctx: AttackContext) -> str:
    """Refused requests, 2,000 of each kind: GET (405), POST to an unknown path with a
    libchan-session header (404), and a park request whose connection then closes."""
    import trio

    cap = ctx.n(2000)
    get = request_headers("GET", "/")
    sent = Counter()
    while ctx.left() > 0 and min(sent.values() or [0]) < cap:
        conn = await ctx.connect(decode=True)
        batch = []
        for _ in range(50):
            sid = conn.alloc(3)
            conn.open.update((sid, sid + 2))
            batch.append(frame(HEADERS, END_STREAM | END_HEADERS, sid, get))
            batch.append(frame(HEADERS, END_STREAM | END_HEADERS, sid + 2,
                               request_headers("POST", "/nope", [("libchan-session", session_id())])))
            batch.append(frame(HEADERS, END_HEADERS, sid + 4,
                               request_headers("POST", "/libchan/v1/park", [("libchan-session", session_id())])))
        await conn.send(b"".join(batch))
        sent.update(get=50, unknown=50, park=50)
        with trio.move_on_after(min(2.0, max(ctx.left(), 0.05))):
            while conn.open:
                await conn.wait()
        ctx.c["unanswered"] += len(conn.open)
        await trio.aclose_forcefully(conn.stream)  # the parks' connection goes away
    return f"{sent['get']} GET, {sent['unknown']} unknown path, {sent['park']} parks: {_status_summary(ctx.c)}"


async def attack_anonymous_posts(ctx: AttackContext) -> str:
    """20,000 anonymous POSTs (no libchan-session), each one CBOR message framed as spec
    section 8 says, over 4 connections with up to 100 in flight each."""
    import cbor2

    from libchan.messages.framing import encode_frame

    total = ctx.n(20_000)
    per = total // 4
    block = request_headers("POST", "/")

    async def one() -> None:
        conn = await ctx.connect()
        sent = 0
        while sent < per and ctx.left() > 0:
            await conn.wait_outstanding_below(100)
            k = min(100 - len(conn.open), per - sent, 25)
            out = []
            for _ in range(k):
                sid = conn.alloc()
                conn.open.add(sid)
                body = encode_frame(cbor2.dumps({"anonymous": sid, "text": "hello"}))
                out.append(frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, body))
            await conn.send(b"".join(out))
            sent += k
            ctx.c["requests"] += k
        while conn.open and ctx.left() > 0:
            await conn.wait()

    await _run_each(ctx, [one] * 4)
    return f"{ctx.c['requests']} POSTs, {ctx.c['completed']} completed; {_status_summary(ctx.c)}"


async def attack_stream_churn(ctx: AttackContext) -> str:
    """One connection, one session (control stream), opening 10,000 channel streams, each
    carrying one message and ended at once."""
    import cbor2
    import trio

    from libchan.messages.framing import encode_frame

    total = ctx.n(10_000)
    conn = await ctx.connect()
    sess = session_id()
    conn.alloc()
    await conn.send(frame(HEADERS, END_HEADERS, 1, request_headers("POST", "/libchan/v1/session", [("libchan-session", sess)])))
    marks: list[float] = []
    t0 = time.monotonic()
    opened = 0
    ref = 1
    while opened < total and ctx.left() > 0:
        out = []
        for _ in range(min(250, total - opened)):
            sid = conn.alloc()
            conn.open.add(sid)
            hdr = request_headers("POST", "/libchan/v1/stream", [
                ("content-type", "application/cbor-seq"), ("libchan-session", sess),
                ("libchan-ref", str(ref)), ("libchan-type", "receiver")])
            out.append(frame(HEADERS, END_HEADERS, sid, hdr) + frame(DATA, END_STREAM, sid, encode_frame(cbor2.dumps(ref))))
            ref += 2
            opened += 1
        await conn.send(b"".join(out))
        if opened % 1000 == 0:
            marks.append(time.monotonic() - t0)
        # keep at most 2,000 streams of ours unanswered (below the server's 10,000)
        with trio.move_on_after(max(ctx.left(), 0.01)):
            await conn.wait_outstanding_below(2000)
    with trio.move_on_after(max(ctx.left(), 0.01)):
        while conn.open:
            await conn.wait()
    took = time.monotonic() - t0
    ctx.c["streams opened"] = opened
    steps = ", ".join(f"{(i + 1)}k@{m:.1f}s" for i, m in enumerate(marks) if (i + 1) in (1, 2, 5, 10))
    return f"{opened} streams opened, {ctx.c['completed']} ended by the server in {took:.1f} s ({steps}); {_status_summary(ctx.c)}"


async def attack_rapid_reset(ctx: AttackContext) -> str:
    """HEADERS (an anonymous POST) + RST_STREAM(CANCEL) pairs as fast as possible on one
    connection, up to 100,000 pairs (CVE-2023-44487); a new connection when the server
    closes one."""
    import trio

    total = ctx.n(100_000)
    block = request_headers("POST", "/")
    rst = (CANCEL).to_bytes(4, "big")
    pairs = 0
    while pairs < total and ctx.left() > 0:
        conn = await ctx.connect()
        try:
            while pairs < total and ctx.left() > 0 and not conn.closed and conn.goaway is None:
                k = min(500, total - pairs)
                sid = conn.alloc(k)
                await conn.send(b"".join(frame(HEADERS, END_HEADERS, s, block) + frame(RST_STREAM, 0, s, rst)
                                         for s in range(sid, sid + 2 * k, 2)))
                pairs += k
                ctx.c["pairs"] = pairs
                if conn.next_sid > 2**31 - 1002:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            ctx.c["connections broken"] += 1
        await trio.aclose_forcefully(conn.stream)
    return f"{pairs} HEADERS+RST_STREAM pairs on {ctx.c['connections']} connection(s); {_status_summary(ctx.c)}"


def _continuation_payload(size: int = 16384) -> bytes:
    """One header field of exactly ``size`` bytes (literal, never indexed)."""
    name = b"x-a"
    vlen = size - 2 - len(name)
    while 1 + 1 + len(name) + len(_hpack_int(vlen, 7)) + vlen > size:
        vlen -= 1
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(vlen, 7) + b"a" * vlen


async def _stall(ctx: AttackContext) -> None:
    import trio

    await trio.sleep(max(ctx.left(), 0))


async def attack_continuation(ctx: AttackContext) -> str:
    """20 connections, each sending an unfinished header block: HEADERS without END_HEADERS,
    then 63 CONTINUATION frames of the server's MAX_FRAME_SIZE (1 MiB: 63 MiB; h2 refuses a
    64th frame), then stalling."""
    frames = 63

    async def one() -> None:
        conn = await ctx.connect(wait_settings=True)
        size = min(int(conn.peer_max_frame), (1 << 24) - 1)
        piece = frame(CONTINUATION, 0, 1, _continuation_payload(size))
        conn.silent = True  # not even a PING acknowledgement may interrupt the header block
        await conn.send(frame(HEADERS, 0, 1, request_headers("POST", "/")))
        for _ in range(min(frames, max(1, int(frames * ctx.scale)))):
            if ctx.left() <= 0 or conn.closed:
                break
            await conn.send(piece)
            ctx.c["header bytes"] += len(piece)
        if conn.closed:
            ctx.c["closed by the server"] += 1
        await _stall(ctx)

    await _run_each(ctx, [one] * 20)
    return (f"{ctx.c['header bytes'] / MIB:.0f} MiB of CONTINUATION on 20 connections; "
            f"{ctx.c['closed by the server']} closed by the server; {_status_summary(ctx.c)}")


async def attack_big_frame(ctx: AttackContext) -> str:
    """50 connections, each opening an anonymous request and sending most (15 MiB) of one
    DATA frame whose header announces 16 MiB - 1, then stalling."""
    per = ctx.n(15 * MIB)
    chunk = b"\0" * MIB

    async def one() -> None:
        conn = await ctx.connect()
        await conn.send(frame(HEADERS, END_HEADERS, 1, request_headers("POST", "/")) + frame_head(DATA, 0, 1, (1 << 24) - 1))
        sent = 0
        while sent < per and ctx.left() > 0 and not conn.closed:
            piece = chunk[: per - sent]
            await conn.send(piece)
            sent += len(piece)
            ctx.c["frame bytes"] += len(piece)
        if conn.closed:
            ctx.c["closed by the server"] += 1
        await _stall(ctx)

    await _run_each(ctx, [one] * 50)
    return (f"{ctx.c['frame bytes'] / MIB:.0f} MiB of 16 MiB frames on 50 connections; "
            f"{ctx.c['closed by the server']} closed by the server; {_status_summary(ctx.c)}")


async def attack_partial_messages(ctx: AttackContext) -> str:
    """64 anonymous streams (8 connections x 8), each sending most (15 MiB) of one message
    whose CBOR frame header announces 16 MiB - 64 (within max_message_size), within the
    server's flow-control windows, then stalling."""
    import trio

    per = ctx.n(15 * MIB)
    announced = 16 * MIB - 64
    chunk = b"\0" * MIB

    async def one_conn() -> None:
        conn = await ctx.connect(wait_settings=True)
        block = request_headers("POST", "/")

        async def one_stream() -> None:
            sid = conn.alloc()
            await conn.send(frame(HEADERS, END_HEADERS, sid, block))
            await conn.send_data(sid, b"\x5a" + announced.to_bytes(4, "big"))
            sent = 0
            while sent < per and ctx.left() > 0:
                piece = chunk[: per - sent]
                await conn.send_data(sid, piece)
                sent += len(piece)
                ctx.c["message bytes"] += len(piece)

        with trio.move_on_after(max(ctx.left(), 0)):
            await _run_each(ctx, [one_stream] * 8)
        await _stall(ctx)

    await _run_each(ctx, [one_conn] * 8)
    return f"{ctx.c['message bytes'] / MIB:.0f} MiB of partial messages on 64 streams; {_status_summary(ctx.c)}"


async def attack_no_read(ctx: AttackContext) -> str:
    """50 connections that never read and advertise SETTINGS_INITIAL_WINDOW_SIZE 0, each a
    session asking the server to send it 10 MB on a reply channel (the server's handler
    sends ``b"x" * fill`` on ``msg["reply"]``): all of it stays queued in the server."""
    import cbor2

    from libchan.messages.framing import encode_frame

    fill = ctx.n(10_000_000)

    async def one() -> None:
        conn = await ctx.connect(settings={4: 0}, read=False)
        sess = session_id()
        common = [("content-type", "application/cbor-seq"), ("libchan-session", sess)]
        msg = encode_frame(cbor2.dumps({"fill": fill, "reply": cbor2.CBORTag(41400, 3)}))
        await conn.send(
            frame(HEADERS, END_HEADERS, 1, request_headers("POST", "/libchan/v1/session", common))
            + frame(HEADERS, END_HEADERS, 3, request_headers("POST", "/libchan/v1/stream", common + [
                ("libchan-ref", "1"), ("libchan-type", "receiver")]))
            + frame(HEADERS, END_HEADERS, 5, request_headers("POST", "/libchan/v1/stream", common + [
                ("libchan-ref", "3"), ("libchan-type", "sender"), ("libchan-parent-ref", "1")]))
            + frame(DATA, 0, 3, msg))
        ctx.c["sessions asking"] += 1
        await _stall(ctx)

    await _run_each(ctx, [one] * 50)
    return f"{ctx.c['sessions asking']} connections each asking for {fill / 1e6:.0f} MB, never reading"


async def attack_spdy_partial(ctx: AttackContext) -> str:
    """Go profile (SPDY/3.1 + msgpack): 40 streams (8 connections x 5), each a top-level
    channel sending most (15 MiB) of one msgpack bin32 message announcing 16 MiB - 64,
    then stalling (SPDY has no flow control)."""
    from libchan.spdy_like.spdy3 import Data, FrameWriter, SynStream

    per = ctx.n(15 * MIB)
    announced = 16 * MIB - 64
    chunk = b"\0" * MIB

    async def one_conn() -> None:
        stream = await ctx.tcp()
        ctx.nursery.start_soon(ctx.drain, stream)
        writer = FrameWriter()
        sids = [1 + 2 * i for i in range(5)]
        await stream.send_all(b"".join(
            writer.serialize(SynStream(sid, [("libchan-ref", str(2 + i))])) for i, sid in enumerate(sids))
            + b"".join(writer.serialize(Data(sid, b"\xc6" + announced.to_bytes(4, "big"))) for sid in sids))
        sent = 0
        while sent < per and ctx.left() > 0:
            piece = chunk[: per - sent]
            for sid in sids:
                await stream.send_all(struct.pack(">II", sid, len(piece)))  # SPDY DATA: stream id, flags 0, length
                await stream.send_all(piece)
                ctx.c["message bytes"] += len(piece)
            sent += len(piece)
        await _stall(ctx)

    await _run_each(ctx, [one_conn] * 8)
    return f"{ctx.c['message bytes'] / MIB:.0f} MiB of partial msgpack messages on 40 SPDY streams; {ctx.c['attacker errors']} connections broken"


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


async def _http_response(stream, leftover: bytearray | None = None) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length (or none: empty)."""
    buf = leftover if leftover is not None else bytearray()
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("connection closed")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = bytearray(rest)
    while len(body) < length:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("connection closed in the body")
        body += data
    buf[:] = body[length:]
    return status, bytes(body[:length])


async def _docker_answer(ctx: AttackContext, stream) -> None:
    """Count the status of the server's answer (or the connection's end)."""
    import trio

    try:
        status, body = await _http_response(stream)
        ctx.c[f"status {status}"] += 1
    except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, OSError, ValueError, IndexError):
        ctx.c["closed without answer"] += 1


def _docker_summary(ctx: AttackContext) -> str:
    keys = sorted(k for k in ctx.c if k.startswith(("status ", "closed")))
    return ", ".join(f"{ctx.c[k]} {k}" for k in keys) or "no answer"


async def attack_docker_big_body(ctx: AttackContext) -> str:
    """dockerserver: one POST /containers/create announcing a 1 GB body, sent as fast as the
    server takes it (at most 1 GB)."""
    import trio

    total = ctx.n(1_000_000_000)
    stream = await ctx.tcp()
    await stream.send_all(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % total)
    ctx.nursery.start_soon(_docker_answer, ctx, stream)
    chunk = b"{" + b" " * (MIB - 1)
    sent = 0
    try:
        while sent < total and ctx.left() > 0:
            piece = chunk[: total - sent]
            await stream.send_all(piece)
            sent += len(piece)
            ctx.c["body bytes"] = sent
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        ctx.c["closed by the server"] += 1
    await trio.sleep(min(1.0, max(ctx.left(), 0)))
    return f"{sent / 1e6:.0f} MB of a {total / 1e9:g} GB body sent; {_docker_summary(ctx)}"


async def attack_docker_slow_headers(ctx: AttackContext) -> str:
    """dockerserver: 1,000 connections each sending a request head one byte every 0.5 s
    (slowloris), for the whole run."""
    import resource

    import trio

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    head = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"a" * 10000

    async def one() -> None:
        stream = await ctx.tcp()
        ctx.nursery.start_soon(_docker_answer, ctx, stream)
        for i in range(len(head)):
            if ctx.left() <= 0:
                return
            await stream.send_all(head[i : i + 1])
            ctx.c["bytes trickled"] += 1
            await trio.sleep(0.5)

    await _run_each(ctx, [one] * min(1000, hard - 100))
    return f"{ctx.c['connections']} connections trickled {ctx.c['bytes trickled']} bytes; {_docker_summary(ctx)}"


async def attack_docker_chunked(ctx: AttackContext) -> str:
    """dockerserver: a chunked POST /containers/create body of one-byte chunks (at most 64 M
    chunks), sent as fast as the server takes them."""
    import trio

    total = ctx.n(64 * 1024 * 1024)
    stream = await ctx.tcp()
    await stream.send_all(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
    ctx.nursery.start_soon(_docker_answer, ctx, stream)
    per_write = 4096
    batch = b"1\r\n \r\n" * per_write
    sent = 0
    try:
        while sent < total and ctx.left() > 0:
            await stream.send_all(batch)
            sent += per_write
            ctx.c["chunks"] = sent
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        ctx.c["closed by the server"] += 1
    await trio.sleep(min(1.0, max(ctx.left(), 0)))
    return f"{sent} one-byte chunks sent; {_docker_summary(ctx)}"


async def attack_docker_get_flood(ctx: AttackContext) -> str:
    """dockerserver: 1,000 concurrent GET /containers/json, each on its own connection, again
    and again for the whole run."""
    import resource

    import trio

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    latencies: list[float] = []

    async def one() -> None:
        while ctx.left() > 0:
            t0 = time.monotonic()
            stream = await ctx.tcp()
            with trio.move_on_after(max(ctx.left(), 0.01)):
                await stream.send_all(request)
                await _docker_answer(ctx, stream)
                latencies.append(time.monotonic() - t0)
            await trio.aclose_forcefully(stream)
            ctx.streams.remove(stream)

    await _run_each(ctx, [one] * min(1000, hard - 100))
    med = statistics.median(latencies) if latencies else float("nan")
    return f"{len(latencies)} GET /containers/json answered (median {med:.2f} s); {_docker_summary(ctx)}"



async def attack_idle(ctx: AttackContext) -> str:
    """No attack: the well-behaved client alone, the baseline of this machine (first by default)."""
    await _stall(ctx)
    return "no attack"


ATTACKS: dict[str, Callable] = {
    "idle": attack_idle,
    "get-flood": attack_get_flood,
    "refused": attack_refused,
    "anonymous-posts": attack_anonymous_posts,
    "stream-churn": attack_stream_churn,
    "rapid-reset": attack_rapid_reset,
    "continuation": attack_continuation,
    "big-frame": attack_big_frame,
    "partial-messages": attack_partial_messages,
    "no-read": attack_no_read,
    "spdy-partial": attack_spdy_partial,
}

#: attacks on ``--target swarmd`` (the Docker API front end: HTTP/1.1)
DOCKER_ATTACKS: dict[str, Callable] = {
    "idle": attack_idle,
    "docker-big-body": attack_docker_big_body,
    "docker-slow-headers": attack_docker_slow_headers,
    "docker-chunked": attack_docker_chunked,
    "docker-get-flood": attack_docker_get_flood,
}
ALL_ATTACKS = {**ATTACKS, **DOCKER_ATTACKS}


def attack_main(args) -> None:
    import trio

    host, port = _host_port(args.url)
    result: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ctx = AttackContext(host, int(port), args.seconds, args.scale, nursery)
            t0 = time.monotonic()
            summary = ""
            try:
                with trio.move_on_after(args.seconds + 1) as cs:
                    summary = await ALL_ATTACKS[args.attack](ctx)
                if cs.cancelled_caught:
                    summary = f"(cut off at {args.seconds:g} s) " + ", ".join(
                        f"{v} {k}" for k, v in ctx.c.items() if k not in ("bytes_sent", "data_rcvd"))
            except Exception as exc:  # noqa: BLE001 -- the attacker's failure is a figure too
                summary = f"attacker failed: {type(exc).__name__}: {str(exc)[:100]}"
            result.update(summary=summary, seconds=round(time.monotonic() - t0, 2), counters=dict(ctx.c))
            for stream in ctx.streams:
                await trio.aclose_forcefully(stream)
            nursery.cancel_scope.cancel()

    trio.run(main)
    print(json.dumps(result), flush=True)


# =========================================================================================
# The orchestrator
# =========================================================================================


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _mb(kb: int | None) -> str:
    return "?" if kb is None else f"{kb / 1024:.0f}"


class Server:
    """The server process, its stats socket and its log."""

    def __init__(self, args, tmpdir: str, serial: int) -> None:
        self.swarmd = args.target == "swarmd"
        self.stats_path = os.path.join(tmpdir, f"stats-{serial}.sock")
        self.log_path = os.path.join(tmpdir, f"server-{serial}.log")
        self.log = open(self.log_path, "wb")
        self.killed_for: str | None = None
        if self.swarmd:
            cmd = [sys.executable, "-m", "libswarm.swarmd", "dockerserver tcp://127.0.0.1:0", "simulator"]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve", "--stats", self.stats_path]
            for pair in args.config:
                cmd += ["--config", pair]
            cmd += ["--server-log-level", args.server_log_level]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, cwd=ROOT)
        self.pid = self.proc.pid
        self.url = self._swarmd_url(20) if self.swarmd else self._read_url(20)

    def _swarmd_url(self, timeout: float) -> str:
        import re

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            m = re.search(r"dockerserver: listening on (tcp://\S+)", self.log_since(0))
            if m:
                return m.group(1)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"swarmd did not start: {self.log_tail()}")

    def _read_url(self, timeout: float) -> str:
        box: list[str] = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline().decode().strip()), daemon=True)
        t.start()
        t.join(timeout)
        if not box or not box[0].startswith("tcp://"):
            self.stop()
            raise RuntimeError(f"the server did not start: {self.log_tail()}")
        return box[0]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stats(self, command: str = "stats", timeout: float = 10.0) -> dict | None:
        """The server's answer; for swarmd (no stats socket) {} when GET /_ping is answered."""
        if not self.alive():
            return None
        if self.swarmd:
            try:
                with socket.create_connection(_host_port(self.url), timeout=timeout) as s:
                    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                    return {} if s.recv(100).startswith(b"HTTP/1.1 200") else None
            except OSError:
                return None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(self.stats_path)
                s.sendall(command.encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            return json.loads(data)
        except (OSError, ValueError):
            return None

    def log_size(self) -> int:
        self.log.flush()
        return os.path.getsize(self.log_path)

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n: int = 3) -> str:
        lines = self.log_since(0).strip().splitlines()
        return " | ".join(lines[-n:])

    def kill(self, why: str) -> None:
        if self.alive():
            self.killed_for = why
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Sampler(threading.Thread):
    """Peak RSS of a process, every 50 ms; kills it past ``kill_kb``."""

    def __init__(self, server: Server, kill_kb: int) -> None:
        super().__init__(daemon=True)
        self.server, self.kill_kb = server, kill_kb
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            kb = rss_kb(self.server.pid)
            if kb is not None:
                self.peak = max(self.peak, kb)
                if kb > self.kill_kb:
                    self.server.kill(f"killed at {_mb(kb)} MB (over --kill-rss-mib)")
            self.stop_event.wait(0.05)

    def finish(self) -> int:
        self.stop_event.set()
        self.join(2)
        return self.peak


def _child(args_list: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args_list], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[dict | None, str]:
    """(the JSON its last stdout line holds, stderr tail), killing it after ``timeout``."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        return json.loads(lines[-1]), err.decode(errors="replace")[-300:]
    except (ValueError, IndexError):
        return None, err.decode(errors="replace")[-300:]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_attack(name: str, server: Server, args) -> dict:
    row: dict[str, Any] = {"attack": name, "notes": []}
    before = server.stats("trim") or {}
    row["rss_before"] = rss_kb(server.pid)
    row["fds_before"] = fd_count(server.pid)
    row["before"] = before
    log_offset = server.log_size()

    probe = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--_probe", "--url", server.url, "--seconds", str(args.seconds),
         "--rt-timeout", str(args.rt_timeout), *(["--http"] if server.swarmd else [])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    ready = probe.stdout.readline().decode().strip()  # the probe answers within its 5 s connect timeout
    early = None
    if ready != "ready":
        row["notes"].append("well-behaved client could not start")
        try:
            early = json.loads(ready)
        except ValueError:
            pass
    sampler = Sampler(server, args.kill_rss_mib * 1024)
    sampler.start()
    attacker = _child(["--_attack", name, "--url", server.url, "--seconds", str(args.seconds), "--scale", str(args.scale)])
    attack_result, attack_err = _finish(attacker, args.seconds + 30)
    probe_result, probe_err = _finish(probe, args.seconds + 3 * args.rt_timeout + 15)
    probe_result = probe_result or early
    row["attacker"] = (attack_result or {}).get("summary") or f"attacker crashed: {attack_err.strip()[-150:]}"
    row["counters"] = (attack_result or {}).get("counters", {})

    # settle: at least --settle s, then until tasks and sessions are back (at most --drain s)
    t_end = time.monotonic()
    time.sleep(args.settle)
    after = server.stats("stats", timeout=5)
    while (after is not None and before and time.monotonic() - t_end < args.drain
           and (after["tasks"] > before.get("tasks", 0) + 2 or after["sessions_live"] > before.get("sessions_live", 0))):
        time.sleep(0.5)
        after = server.stats("stats", timeout=5)
    settled = time.monotonic() - t_end
    if settled > args.settle + 0.6:
        row["notes"].append(f"settled in {settled:.0f} s")
    row["rss_after"] = rss_kb(server.pid)
    row["fds_after"] = fd_count(server.pid)
    full = server.stats("trim", timeout=10)
    row["rss_trim"] = rss_kb(server.pid)
    row["peak"] = sampler.finish()
    row["after"] = full or after or {}

    # the well-behaved client
    lat = [x * 1000 for x in (probe_result or {}).get("lat", [])]
    row["rt_ok"] = (probe_result or {}).get("ok", 0)
    row["rt_failed"] = (probe_result or {}).get("failed", 0)
    row["p50"], row["p99"], row["max"] = _pct(lat, 0.50), _pct(lat, 0.99), max(lat) if lat else float("nan")
    if probe_result is None:
        row["notes"].append(f"well-behaved client crashed: {probe_err.strip()[-120:]}")
    elif probe_result.get("errors"):
        row["notes"].append("client errors: " + ", ".join(f"{v} {k}" for k, v in probe_result["errors"].items()))

    # the server's log during the attack
    log = server.log_since(log_offset)
    if log.strip():
        lines = log.strip().splitlines()
        tb = sum(1 for line in lines if line.startswith("Traceback"))
        row["notes"].append(f"server log: {len(lines)} lines" + (f", {tb} tracebacks" if tb else ""))
        row["log_lines"] = len(lines)

    # goals
    row["goal_p99"] = bool(lat) and row["p99"] < P99_GOAL_MS and row["rt_failed"] == 0
    row["goal_peak"] = row["peak"] < args.budget_mib * 1024 and server.killed_for is None
    rb, ra, rt = row["rss_before"], row["rss_after"], row["rss_trim"]
    a, b = row["after"], before
    back = (bool(a) and bool(b) and a["tasks"] <= b["tasks"] + 2 and a["sessions_live"] <= b["sessions_live"]
            and all(a.get("watched", {}).get(k, 0) <= v + 2 for k, v in b.get("watched", {}).items())
            and a.get("objects", 0) <= b.get("objects", 0) * 1.10 + 2000)
    if not server.alive() or rb is None or ra is None:
        row["after_verdict"] = "dead"
        row["goal_after"] = False
    elif ra <= rb * 1.10:
        row["after_verdict"] = "ok"
        row["goal_after"] = back or not (a and b)
        if not row["goal_after"]:
            row["after_verdict"] = "LEFT"
    elif back:
        row["after_verdict"] = "pages"  # memory is back in the allocator, not in live objects
        row["goal_after"] = True
    else:
        row["after_verdict"] = "MISSED"
        row["goal_after"] = False
    if a and b and not back:
        grown = [f"{k} {b.get('watched', {}).get(k, 0)}->{v}" for k, v in a.get("watched", {}).items()
                 if v > b.get("watched", {}).get(k, 0) + 2]
        grown.append(f"objects {b.get('objects', 0)}->{a.get('objects', 0)}")
        row["notes"].append("left behind: " + ", ".join(grown))

    # does the server need a restart?
    why = None
    if server.killed_for:
        why = server.killed_for
    elif not server.alive():
        why = f"server died (exit status {server.proc.returncode}): {server.log_tail(1)[:120]}"
    elif full is None:
        why = "server stopped answering stats"
    elif rt is not None and rb is not None and rt > 2 * rb and rt - rb > 64 * 1024:
        why = f"server kept {_mb(rt - rb)} MB"
    elif a and b and a["tasks"] > b["tasks"] + 200:
        why = f"server kept {a['tasks'] - b['tasks']} tasks"
    row["restart"] = why
    return row


COLUMNS = ["attack", "rt ok/failed", "p50 ms", "p99 ms", "max ms", "RSS MB before/peak/after (trim)",
           "fds", "tasks", "sessions", "goals p99/peak/after", "attacker", "notes"]


def format_row(row: dict) -> list[str]:
    def arrow(key: str, field: str) -> str:
        b, a = row.get("before", {}).get(field), row.get("after", {}).get(field)
        return f"{'?' if b is None else b}→{'?' if a is None else a}"

    def ms(v: float) -> str:
        return "-" if v != v else (f"{v:.0f}" if v >= 10 else f"{v:.1f}")

    goals = "/".join((
        "ok" if row["goal_p99"] else "MISSED",
        "ok" if row["goal_peak"] else "MISSED",
        row["after_verdict"],
    ))
    notes = list(row["notes"])
    if row.get("restart"):
        notes.append("RESTARTED: " + row["restart"])
    return [
        row["attack"],
        f"{row['rt_ok']}/{row['rt_failed']}",
        ms(row["p50"]), ms(row["p99"]), ms(row["max"]),
        f"{_mb(row['rss_before'])}/{_mb(row['peak'])}/{_mb(row['rss_after'])} ({_mb(row['rss_trim'])})",
        f"{'?' if row['fds_before'] is None else row['fds_before']}→{'?' if row['fds_after'] is None else row['fds_after']}",
        arrow("before", "tasks"), arrow("before", "sessions_live"),
        goals, row["attacker"], "; ".join(notes),
    ]


def print_table_line(cells: list[str]) -> None:
    print("| " + " | ".join(c.replace("|", "/") for c in cells) + " |", flush=True)


def orchestrate(args) -> int:
    import libchan

    table = DOCKER_ATTACKS if args.target == "swarmd" else ATTACKS
    names = [a.strip() for a in args.attacks.split(",") if a.strip()] if args.attacks else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"soak: unknown attack(s) for --target {args.target}: {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    if args.budget_mib is None:
        args.budget_mib = _parse_config(args.config).server_buffer // (1024 * 1024)
        budget_source = "Config.server_buffer"
    else:
        budget_source = "--budget-mib"
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    target = ("swarmd 'dockerserver tcp://127.0.0.1:0' simulator (no stats socket: RSS and descriptors only)"
              if args.target == "swarmd" else "libchan.serve")
    print(f"# libchan soak of {target}, rev {rev or '?'}, {len(names)} attack(s) x {args.seconds:g} s, scale {args.scale:g}, "
          f"budget {args.budget_mib} MiB ({budget_source}), "
          f"config {' '.join(args.config) or 'default'}, h2load {'yes' if shutil.which('h2load') and not os.environ.get('SOAK_NO_H2LOAD') else 'no (built-in flood)'}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print_table_line(COLUMNS)
    print_table_line(["---"] * len(COLUMNS))
    rows = []
    restarts = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmpdir:
        serial = 0
        server = Server(args, tmpdir, serial)
        try:
            for name in names:
                if not server.alive() or server.stats(timeout=5) is None:
                    server.kill("unresponsive")
                    server.stop()
                    serial += 1
                    server = Server(args, tmpdir, serial)
                    restarts += 1
                time.sleep(0.5)
                row = run_attack(name, server, args)
                rows.append(row)
                print_table_line(format_row(row))
                if row["restart"] or args.fresh:
                    if args.keep_logs:
                        shutil.copy(server.log_path, os.path.join(args.keep_logs, f"server-{serial}-{name}.log"))
                    server.kill("restart")
                    server.stop()
                    serial += 1
                    server = Server(args, tmpdir, serial)
                    restarts += bool(row["restart"])
            if args.keep_logs:
                shutil.copy(server.log_path, os.path.join(args.keep_logs, f"server-{serial}.log"))
        finally:
            server.stop()
    met = {g: sum(1 for r in rows if r[f"goal_{g}"]) for g in ("p99", "peak", "after")}
    n = len(rows)
    print(f"soak: {n} attacks in {time.monotonic() - t0:.0f} s; goals met: p99 < {P99_GOAL_MS:.0f} ms {met['p99']}/{n}, "
          f"peak RSS < {args.budget_mib} MiB {met['peak']}/{n}, RSS back within 10 % {met['after']}/{n}; "
          f"server restarted {restarts} time(s); load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=str)
    if args.check and any(not r[f"goal_{g}"] for r in rows for g in ("p99", "peak", "after")):
        return 1
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each attack (default 10)")
    p.add_argument("--attacks", default="", help="comma-separated subset (default: all of the target's; --list)")
    p.add_argument("--target", choices=["libchan", "swarmd"], default="libchan",
                   help="libchan: libchan.serve (the default); swarmd: swarmd 'dockerserver tcp://...' simulator, with the docker-* attacks")
    p.add_argument("--list", action="store_true", help="list the attacks and exit")
    p.add_argument("--budget-mib", type=int, default=None,
                   help="the memory budget the peak RSS is held to (default: the server's Config.server_buffer)")
    p.add_argument("--config", action="append", default=[], metavar="FIELD=VALUE", help="a libchan.Config field for the server (repeatable)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every attack's work cap (default 1)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds after an attack before 'after' (default 2)")
    p.add_argument("--drain", type=float, default=12.0, help="then wait at most this long for tasks and sessions to come back (default 12)")
    p.add_argument("--rt-timeout", type=float, default=2.0, help="a well-behaved round trip not answered within this fails (default 2 s)")
    p.add_argument("--kill-rss-mib", type=int, default=4096, help="kill (and restart) the server beyond this RSS (default 4096)")
    p.add_argument("--server-log-level", default="warning", help="the server's logging level (default warning; its lines are counted per attack)")
    p.add_argument("--fresh", action="store_true", help="a new server process for every attack")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal was missed")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--keep-logs", metavar="DIR", help="keep the server processes' logs in DIR")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stats", help=argparse.SUPPRESS)
    p.add_argument("--_probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_attack", dest="attack", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--http", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.keep_logs:
        os.makedirs(args.keep_logs, exist_ok=True)
    if args.serve:
        serve_main(args)
    elif args._probe:
        probe_main(args)
    elif args.attack:
        attack_main(args)
    elif args.list:
        for name, fn in ALL_ATTACKS.items():
            if name in DOCKER_ATTACKS and name != "idle" and args.target != "swarmd":
                continue
            if name not in DOCKER_ATTACKS and args.target == "swarmd":
                continue
            print(f"{name:20} {' '.join(fn.__doc__.split())}")
    else:
        sys.exit(orchestrate(args))


if __name__ == "__main__":
    main()
