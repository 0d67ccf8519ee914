#!/usr/bin/env python
"""A request flood from many clients (issue 17, goal 3): h2load against libchan.serve and hypercorn.

Usage::

    .venv/bin/python bench/flood.py [--requests N] [--clients C] [--streams M] [--reps R]

Runs ``h2load -c C -m M -n N`` (defaults 100, 10, 200,000; Debian's ``nghttp2-client``) of
anonymous POSTs (spec/PROTOCOL.md section 7.4: no ``libchan-session`` header; the body is one
CBOR message framed as section 8 says, 11 bytes) against, in turn:

* ``libchan.serve("tcp://127.0.0.1:0", handler)`` with the default ``Config``, where the
  handler accepts the request's channel, reads its one message and its end;
* hypercorn (``--worker-class trio``, one worker, h2c by prior knowledge) serving a trivial
  ASGI app that reads the request body and answers 200 with an empty body
  (``pip install hypercorn``).

Each server runs in its own process; h2load is the client. The runs alternate (libchan,
hypercorn, libchan, ...) and each figure is the median of ``--reps`` runs (default 3):
requests per second as h2load reports it (finished requests over its whole run) and the
request latency percentiles, from h2load's per-request log (``--log-file``). Goal: libchan
at least hypercorn's requests/s, and a lower p99.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

APP = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        event = await receive()
        more = event.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})
'''


def libchan_server(port: int) -> None:
    import trio

    import libchan

    async def handler(session) -> None:
        try:
            receiver = await session.accept_receiver()
            async for _msg in receiver:
                pass
        except (trio.EndOfChannel, trio.BrokenResourceError, libchan.LibchanError):
            pass

    trio.run(lambda: libchan.serve(f"tcp://127.0.0.1:{port}", handler))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"flood.py: server exited early: {proc.args!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"flood.py: nothing listens on {port}")


def h2load(port: int, body: str, opts: argparse.Namespace, log: str) -> dict:
    r = subprocess.run(
        ["h2load", "-c", str(opts.clients), "-m", str(opts.streams), "-n", str(opts.requests), "-d", body,
         "--log-file", log, f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=600,
    )
    out = r.stdout
    rate = None
    ok = failed = 0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rate = float(line.split(",")[1].split()[0])
        if line.startswith("requests:"):
            parts = dict(p.strip().split(" ", 1)[::-1] for p in line.split(":", 1)[1].split(","))
            ok = int(parts.get("succeeded", 0))
            failed = int(parts.get("failed", 0)) + int(parts.get("errored", 0))
    lat = []
    with open(log) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[1] == "200":
                lat.append(int(fields[2]) / 1000.0)  # µs -> ms
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {"rate": rate or 0.0, "ok": ok, "failed": failed, "p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] if lat else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--_libchan-server", type=int, default=0, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts._libchan_server:
        libchan_server(opts._libchan_server)
        return
    if shutil.which("h2load") is None:
        raise SystemExit("flood.py: h2load not found (Debian: apt-get install nghttp2-client)")
    import cbor2

    from libchan.messages.framing import encode_frame

    tmp = tempfile.mkdtemp(prefix="flood-")
    body = os.path.join(tmp, "body")
    with open(body, "wb") as f:
        f.write(encode_frame(cbor2.dumps({"text": "hello"})))
    with open(os.path.join(tmp, "asgiapp.py"), "w") as f:
        f.write(APP)
    servers = {}
    procs = []
    try:
        port = _free_port()
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_libchan-server", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        _wait_port(port, p)
        servers["libchan"] = port
        port2 = _free_port()
        p2 = subprocess.Popen([sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "1",
                               "--bind", f"127.0.0.1:{port2}", "asgiapp:app"],
                              cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p2)
        _wait_port(port2, p2)
        servers["hypercorn"] = port2
        runs: dict[str, list[dict]] = {k: [] for k in servers}
        for rep in range(opts.reps):
            for name in (["libchan", "hypercorn"] if rep % 2 == 0 else ["hypercorn", "libchan"]):
                r = h2load(servers[name], body, opts, os.path.join(tmp, f"log-{name}-{rep}"))
                runs[name].append(r)
                print(f"  {name} rep {rep + 1}: {r['rate']:,.0f} req/s, {r['ok']} ok, {r['failed']} failed, "
                      f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms", file=sys.stderr, flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"\n## h2load -c {opts.clients} -m {opts.streams} -n {opts.requests:,}, one-message anonymous POSTs "
          f"(median of {opts.reps}; load average after {load[0]:.2f})\n")
    print("| server | requests/s | [min .. max] | x hypercorn | p50 ms | p99 ms | failed |")
    print("|---|---|---|---|---|---|---|")
    hyp = statistics.median(r["rate"] for r in runs["hypercorn"])
    for name in ("libchan", "hypercorn"):
        rs = runs[name]
        med = statistics.median(r["rate"] for r in rs)
        print(f"| {name} | {med:,.0f} | [{min(r['rate'] for r in rs):,.0f} .. {max(r['rate'] for r in rs):,.0f}] "
              f"| {med / hyp:.2f}x | {statistics.median(r['p50'] for r in rs):.1f} "
              f"| {statistics.median(r['p99'] for r in rs):.1f} | {sum(r['failed'] for r in rs)} |")


if __name__ == "__main__":
    main()
