#!/usr/bin/env python
"""Start-up: how long the command-line programs take, whole process, against ``python -c pass``.

Usage::

    .venv/bin/python bench/startup.py [--runs N] [--only NAME,NAME] [--no-live]

Each command is run ``--runs`` times (default 40) as a whole process (fork, exec, the
interpreter's start, imports, the work, exit), with stdout and stderr to /dev/null; the
commands' runs are interleaved in a shuffled order per round, so that a slow moment of a
shared machine does not land on one command only. The figure is the median wall time;
the spread is p10..p90 and the minimum. ``python -c pass`` (the same interpreter, the
same venv, so the same ``site`` work) is the baseline of the same run: ``over`` is the
median minus the baseline's median (what the command itself costs), ``x`` their ratio.

The goal of issue 17 (goal 4) is an absolute one: ``swarmctl --help``, ``swarmd --version``
and the rexec client exit in under 150 ms. The last column says which of trio, h2, cbor2
and msgpack each Python command imported (one extra run with ``-X importtime``).

Bytecode: this VM's environment sets ``PYTHONDONTWRITEBYTECODE=1``, so an editable checkout's
modules would be compiled from source at every start (site-packages have their ``.pyc``
from pip). An installed program does not run that way, so the commands run with bytecode
writing on and ``PYTHONPYCACHEPREFIX`` pointing at a temporary directory (filled by the
warm-up run; the tree is not touched); ``--cold`` keeps the environment as it is.

``--no-live`` leaves out the commands that need a server (the rexec client running ``true``
on a rexec server started by this script over plaintext h2, ``swarmctl URL ls`` against
``swarmd 'listen tcp://...' simulator``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PY = sys.executable
BIN = os.path.dirname(PY)
HEAVY = ("trio", "h2", "cbor2", "msgpack")
GOAL_S = 0.150
ENV = dict(os.environ)


def _script(name: str) -> str:
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name) or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"startup.py: a server exited early ({proc.args!r})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"startup.py: no server on port {port}")


def _python_argv(argv: list[str]) -> list[str] | None:
    """The same command with ``-X importtime`` (None: not a Python program we can tell)."""
    if argv[0] == PY:
        return [PY, "-X", "importtime", *argv[1:]]
    if argv[0].startswith(BIN):  # a console script of this venv
        return [PY, "-X", "importtime", *argv]
    return None


def heavy_imports(argv: list[str]) -> str:
    cmd = _python_argv(argv)
    if cmd is None:
        return "?"
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60, env=ENV)
    tops = set()
    for line in r.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            tops.add(name.split(".")[0])
    got = [m for m in HEAVY if m in tops]
    return ",".join(got) if got else "none"


def time_once(argv: list[str]) -> float:
    # Popen.wait() without a timeout: a blocking waitpid. (With a timeout, subprocess polls
    # with sleeps of up to 50 ms, which rounds every figure up to the next poll.)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    watchdog = threading.Timer(60, p.kill)
    watchdog.start()
    code = p.wait()
    dt = time.perf_counter() - t0
    watchdog.cancel()
    if code != 0:
        raise SystemExit(f"startup.py: {argv!r} exited {code}")
    return dt


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--only", default="", help="comma-separated command names (the baseline always runs)")
    ap.add_argument("--no-live", action="store_true", help="leave out the commands that need a server")
    ap.add_argument("--cold", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is (no bytecode cache)")
    opts = ap.parse_args()
    cache = None
    if not opts.cold:
        cache = tempfile.TemporaryDirectory(prefix="startup-pycache-")
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = cache.name

    rexec = [PY, "-m", "libchan.examples.rexec"]
    commands: list[tuple[str, list[str], bool]] = [  # (name, argv, goal applies)
        ("python -c pass", [PY, "-c", "pass"], False),
        ("python -c 'import trio'", [PY, "-c", "import trio"], False),
        ("python -c 'import libchan'", [PY, "-c", "import libchan"], False),
        ("python -c 'import libswarm'", [PY, "-c", "import libswarm"], False),
        ("swarmctl --help", [_script("swarmctl"), "--help"], True),
        ("swarmd --help", [_script("swarmd"), "--help"], True),
        ("swarmd --version", [_script("swarmd"), "--version"], True),
        ("rexec --help", [*rexec, "--help"], True),
    ]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        if not opts.no_live:
            port = _free_port()
            srv = subprocess.Popen(
                [*rexec, "server", "-q", "--listen", f"tcp://127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
            )
            servers.append(srv)
            _wait_port(port, srv)
            commands.append(("rexec client ... true", [*rexec, "client", "--connect", f"tcp://127.0.0.1:{port}", "true"], True))
            port2 = _free_port()
            srv2 = subprocess.Popen(
                [_script("swarmd"), f"listen tcp://127.0.0.1:{port2}", "simulator"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
            )
            servers.append(srv2)
            _wait_port(port2, srv2)
            commands.append(("swarmctl URL ls", [_script("swarmctl"), f"tcp://127.0.0.1:{port2}", "ls"], False))
        if opts.only:
            wanted = set(opts.only.split(","))
            commands = [c for c in commands if c[0] == "python -c pass" or c[0] in wanted]

        for _, argv, _ in commands:  # warm the page cache and the bytecode cache
            time_once(argv)
            time_once(argv)
        times: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        for _ in range(opts.runs):
            order = list(commands)
            random.shuffle(order)
            for name, argv, _ in order:
                times[name].append(time_once(argv))
        imports = {name: heavy_imports(argv) for name, argv, _ in commands}
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            try:
                s.wait(5)
            except subprocess.TimeoutExpired:
                s.kill()

    load = os.getloadavg()
    base = statistics.median(times["python -c pass"])
    print(
        f"start-up, {opts.runs} runs each, interleaved; load average {load[0]:.2f} {load[1]:.2f}; {PY};"
        f" bytecode cache {'off (--cold)' if opts.cold else 'on'}"
    )
    print()
    print("| command | median ms | p10..p90 ms | min ms | over `pass` ms | x `pass` | goal < 150 ms | imports |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, goal in commands:
        xs = times[name]
        med = statistics.median(xs)
        verdict = ("met" if med < GOAL_S else "MISSED") if goal else ""
        print(
            f"| {name} | {med * 1e3:.0f} | {_pct(xs, 0.1) * 1e3:.0f}..{_pct(xs, 0.9) * 1e3:.0f} | {min(xs) * 1e3:.0f} "
            f"| {(med - base) * 1e3:+.0f} | {med / base:.2f} | {verdict} | {imports[name]} |"
        )


if __name__ == "__main__":
    main()
