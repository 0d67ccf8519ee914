#!/usr/bin/env python
"""The Docker path: the docker CLI through swarmd against the same CLI on dockerd directly.

Issue 17, goal 5. Starts a private dockerd (root; the image ``local/busybox`` imported
offline, as the tests do: tests/docker_helpers.py), makes a few containers on it (one that
printed ``--log-lines`` lines, one running, a few created), then

    swarmd 'dockerserver unix://DIR/swarmd.sock' 'dockerclient unix://DOCKERD/docker.sock'

and times four commands as whole docker CLI processes, once on dockerd's socket (direct) and
once on swarmd's (through swarmd):

    docker ps -a
    docker inspect NAME                        (the container with logs)
    docker run --rm --network none local/busybox true
    docker logs NAME                           (its --log-lines lines)

Every round runs all eight (four commands, two targets) in a shuffled order, so a slow
moment of the shared machine does not land on one side only; ``--runs`` rounds (default
30). Each row gives the median, p10..p90 and the minimum of both sides and the ratio of the
medians (through / direct), marked ``met`` or ``MISSED`` against the goal (at most 1.2x).

    .venv/bin/python bench/docker_path.py                 # 30 rounds: about a minute
    .venv/bin/python bench/docker_path.py --runs 60 --only 'docker ps,docker logs'

``DOCKER_PATH_PROFILE=FILE`` runs swarmd under cProfile and writes its profile to ``FILE``
when swarmd exits (at the end of the run). The process is waited for with a blocking
``waitpid`` (as in startup.py). Everything started is stopped at exit, also on Ctrl-C,
SIGTERM or failure: swarmd, the containers, dockerd and its directory. Not a test: the
figures are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from docker_cli import DOCKER, ENV, docker_ok, start_swarmd, stop, time_once  # noqa: E402

GOAL = 1.2


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind through the ExitStack: everything gets cleaned up


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p * (len(s) - 1))))]


def make_containers(sock: str, image: str, log_lines: int, created: int) -> str:
    """Make the containers that ps lists and inspect/logs read; return the one with logs."""
    tag = f"dpath-{os.getpid()}"
    logged = f"{tag}-logs"
    docker_ok(sock, "run", "--name", logged, "--network", "none", image, "sh", "-c",
              f"i=0; while [ $i -lt {log_lines} ]; do i=$((i+1)); echo \"log line $i of {log_lines}\"; done")
    docker_ok(sock, "run", "-d", "--init", "--name", f"{tag}-running", "--network", "none", image, "sleep", "3600")
    for i in range(created):
        docker_ok(sock, "create", "--name", f"{tag}-created-{i}", "--network", "none", image, "true")
    return logged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="rounds (each runs every command on both sides)")
    ap.add_argument("--only", default="", help="comma-separated command names (default: all four)")
    ap.add_argument("--log-lines", type=int, default=200, help="lines the logged container printed")
    ap.add_argument("--created", type=int, default=3, help="created (never started) containers besides those two")
    ap.add_argument("--engine", help="an existing engine's unix socket PATH instead of a private dockerd")
    ap.add_argument("--image", default=None, help="image for docker run (default local/busybox)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    profile = os.environ.get("DOCKER_PATH_PROFILE") or None

    with ExitStack() as stack:
        if a.engine is None:
            from docker_helpers import IMAGE, private_dockerd

            direct, image = stack.enter_context(private_dockerd()).sock, a.image or IMAGE
        else:
            direct, image = a.engine, a.image or "local/busybox"
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="docker-path-"))
        through = os.path.join(tmp, "swarmd.sock")
        made = f"dpath-{os.getpid()}-"

        def remove_made() -> None:
            names = subprocess.run([DOCKER, "-H", f"unix://{direct}", "ps", "-aq", "--filter", f"name={made}"],
                                   capture_output=True, env=ENV, timeout=60, text=True).stdout.split()
            if names:
                subprocess.run([DOCKER, "-H", f"unix://{direct}", "rm", "-f", *names], capture_output=True,
                               env=ENV, timeout=60)

        stack.callback(remove_made)
        logged = make_containers(direct, image, a.log_lines, a.created)
        swarmd = start_swarmd([f"dockerserver unix://{through}", f"dockerclient unix://{direct}"], through, profile)
        stack.callback(stop, swarmd)

        commands = {
            "docker ps": ["ps", "-a"],
            "docker inspect": ["inspect", logged],
            "docker run --rm": ["run", "--rm", "--network", "none", image, "true"],
            "docker logs": ["logs", logged],
        }
        if a.only:
            wanted = [w.strip() for w in a.only.split(",")]
            unknown = [w for w in wanted if w not in commands]
            if unknown:
                raise SystemExit(f"docker_path.py: unknown command(s) {unknown}; known: {list(commands)}")
            commands = {k: v for k, v in commands.items() if k in wanted}
        # Same answers both ways (a wrong answer fast would be no figure).
        for name, args in commands.items():
            if name == "docker run --rm":
                continue
            d, t = docker_ok(direct, *args), docker_ok(through, *args)
            if name == "docker logs" and d != t:
                raise SystemExit(f"docker_path.py: {name} differs through swarmd")
            if name == "docker ps" and len(d.splitlines()) != len(t.splitlines()):
                raise SystemExit(f"docker_path.py: {name} lists other containers through swarmd:\n{d}\n{t}")
        jobs = [(name, side, [DOCKER, "-H", f"unix://{sock}", *args])
                for name, args in commands.items() for side, sock in (("direct", direct), ("swarmd", through))]
        for _, _, argv in jobs:  # warm up (page cache, dockerd's and swarmd's first-time work)
            time_once(argv)
            time_once(argv)
        times: dict[tuple[str, str], list[float]] = {(name, side): [] for name, side, _ in jobs}
        load0 = os.getloadavg()
        t_start = time.monotonic()
        for _ in range(a.runs):
            random.shuffle(jobs)
            for name, side, argv in jobs:
                times[name, side].append(time_once(argv))
        elapsed = time.monotonic() - t_start
        load1 = os.getloadavg()

    print(f"docker path, {a.runs} rounds of {len(jobs)} CLI processes in a shuffled order, {elapsed:.0f} s; "
          f"load average {load0[0]:.2f} -> {load1[0]:.2f}; {DOCKER} against dockerd directly and through "
          f"swarmd 'dockerserver unix://...' 'dockerclient unix://...'")
    print()
    print("| command | direct: median (p10..p90) ms | min | through swarmd: median (p10..p90) ms | min "
          f"| ratio | goal <= {GOAL}x |")
    print("|---|---|---|---|---|---|---|")
    for name in commands:
        d, s = times[name, "direct"], times[name, "swarmd"]
        md, ms = statistics.median(d), statistics.median(s)
        ratio = ms / md
        print(f"| `{name}` | {md * 1e3:.0f} ({_pct(d, 0.1) * 1e3:.0f}..{_pct(d, 0.9) * 1e3:.0f}) | {min(d) * 1e3:.0f} "
              f"| {ms * 1e3:.0f} ({_pct(s, 0.1) * 1e3:.0f}..{_pct(s, 0.9) * 1e3:.0f}) | {min(s) * 1e3:.0f} "
              f"| {ratio:.2f}x | {'met' if ratio <= GOAL else 'MISSED'} |")


if __name__ == "__main__":
    main()
