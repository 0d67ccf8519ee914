"""How fast ``docker ps`` is through ``swarmd 'dockerserver tcp://...' simulator``.

Starts swarmd (a separate process, as deployed) with a simulator holding ``--containers``
containers (half of them running), then sends ``--requests`` ``GET /containers/json?all=1``
requests, ``--concurrency`` at once (one connection each, ``Connection: close``), and prints
requests per second and latency percentiles (seconds, from the moment each request's
connection is opened to the end of its response). Issue 11 measured 1,000 at once.

    .venv/bin/python bench/docker_ps.py                       # 1,000 requests, all at once, 20 containers
    .venv/bin/python bench/docker_ps.py --containers 200 --concurrency 100 --requests 2000
    .venv/bin/python bench/docker_ps.py --backend 'aggregate simulator simulator'

Not a test: nothing is asserted but that every answer is a 200.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _http(port: int, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        head = (f"{method} {target} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        await stream.send_all(head + body)
        data = bytearray()
        while chunk := await stream.receive_some(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, bytes(data.partition(b"\r\n\r\n")[2])


async def _populate(port: int, n: int) -> None:
    for i in range(n):
        cmd = ["sleep", "3600"] if i % 2 == 0 else ["true"]
        body = json.dumps({"Image": "busybox", "Cmd": cmd}).encode()
        status, data = await _http(port, "POST", f"/v1.41/containers/create?name=bench{i}", body)
        assert status == 201, (status, data)
        status, data = await _http(port, "POST", f"/v1.41/containers/bench{i}/start")
        assert status in (204, 304), (status, data)


async def _load(port: int, requests: int, concurrency: int) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limiter = trio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            t0 = time.perf_counter()
            try:
                status, _ = await _http(port, "GET", "/v1.41/containers/json?all=1")
            except OSError:
                status = 0
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(requests):
            nursery.start_soon(one)
    return time.perf_counter() - t0, latencies, statuses


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--backend", default="simulator", help="the swarmd spec behind dockerserver")
    args = ap.parse_args()

    port = _free_port()
    argv = [sys.executable, "-m", "libswarm.swarmd", f"dockerserver tcp://127.0.0.1:{port}", args.backend]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if re.search(r"dockerserver: listening on", line):
                break
        else:
            raise SystemExit(f"swarmd did not start ({proc.wait()})")

        async def run() -> tuple[float, list[float], dict[int, int]]:
            await _populate(port, args.containers)
            await _load(port, 20, 20)  # warm up
            return await _load(port, args.requests, args.concurrency)

        elapsed, latencies, statuses = trio.run(run)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"dockerserver + {args.backend}: {args.containers} containers, {args.requests} GET /containers/json?all=1, "
          f"{args.concurrency} at once")
    print(f"  statuses: {statuses}")
    print(f"  {args.requests / elapsed:.0f} requests/s ({elapsed:.2f} s)")
    print("  latency s: " + ", ".join(f"p{p} {_pct(latencies, p):.3f}" for p in (50, 90, 99))
          + f", max {max(latencies):.3f}, mean {statistics.mean(latencies):.3f}")


if __name__ == "__main__":
    main()
