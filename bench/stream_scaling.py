"""Work per connection against the streams it opens (issue 11, "hostile peers").

A raw HTTP/2 client (h2, no libchan) opens a session's control stream and then N
channel streams on ONE connection, each carrying one message, all written before the
server's first answer is read; the server's handler receives every message. The time
from the first stream's bytes to the N-th message received is printed for each N, with
the ratio to the previous N: a ratio near 2 per doubling is linear, near 4 quadratic.

    .venv/bin/python bench/stream_scaling.py            # N = 1250, 2500, 5000, 10000
    .venv/bin/python bench/stream_scaling.py 1000 2000  # other sizes

The server runs in this process (one trio run per N); its CPU time is what is measured
(the raw client costs a fraction of it, mostly h2's encoding of the requests). This
is a figure for a person to compare before and after a change, never a test.
"""

from __future__ import annotations

import sys
import time
from functools import partial

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio

import libchan
from libchan.messages.framing import encode_frame

import cbor2

SESSION = "bench-scaling-session"


class _Client(h2.connection.H2Connection):
    """h2 counts our open streams by a pass over all of them for every stream we open:
    quadratic in N, and not what is measured (the client is prepared before the clock
    starts, but in this process): skipped."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


async def _client(host: str, port: int, n: int, done: trio.Event) -> float:
    stream = await trio.open_tcp_stream(host, port)
    conn = _Client(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    # a hostile peer: ignore the server's MAX_CONCURRENT_STREAMS until it says otherwise
    conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
    conn.remote_settings.acknowledge()
    conn.remote_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = 65535
    conn.remote_settings.acknowledge()
    conn.outbound_flow_control_window = 64 * 1024 * 1024  # (what the server opens it to at once)
    base = [(":method", "POST"), (":scheme", "http"), (":authority", "bench")]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [*base, (":path", "/libchan/v1/session"), ("libchan-session", SESSION)])
    await stream.send_all(conn.data_to_send())
    body = encode_frame(cbor2.dumps(b"x" * 16))
    chunks = []
    for ref in range(1, 2 * n, 2):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [*base, (":path", "/libchan/v1/stream"), ("libchan-session", SESSION),
                                ("libchan-ref", str(ref)), ("libchan-type", "receiver")])
        conn.send_data(sid, body)
        chunks.append(conn.data_to_send())
    start = time.perf_counter()

    async def drain() -> None:
        while True:
            data = await stream.receive_some(1 << 16)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = conn.data_to_send()
            if out:
                await stream.send_all(out)

    # (the server answers as it reads, but never waits for its answers to be read
    # before reading on: write everything, then read)
    await stream.send_all(b"".join(chunks))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        await done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return elapsed


async def measure(n: int) -> tuple[float, int]:
    got = 0
    done = trio.Event()

    async def per_channel(receiver) -> None:
        nonlocal got
        await receiver.receive()
        got += 1
        if got == n:
            done.set()

    async def handler(session: libchan.Session) -> None:
        async with trio.open_nursery() as nursery:
            async for receiver in session:
                nursery.start_soon(per_channel, receiver)

    config = libchan.Config(max_streams=2 * n + 16)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(libchan.serve, "tcp://127.0.0.1:0", handler, config=config))
        host, port = urls[0][len("tcp://"):].rsplit(":", 1)
        cpu = time.process_time()
        elapsed = await _client(host, int(port), n, done)
        cpu = time.process_time() - cpu
        nursery.cancel_scope.cancel()
    return elapsed, got


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1250, 2500, 5000, 10000]
    print(f"{'streams':>8} {'seconds':>8} {'us/stream':>10} {'ratio':>6}")
    prev = None
    for n in sizes:
        elapsed, got = trio.run(measure, n)
        assert got == n, (got, n)
        ratio = f"{elapsed / prev:6.2f}" if prev else "     -"
        print(f"{n:8d} {elapsed:8.2f} {elapsed / n * 1e6:10.1f} {ratio}", flush=True)
        prev = elapsed


if __name__ == "__main__":
    main()
