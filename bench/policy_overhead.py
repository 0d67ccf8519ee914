"""What the policy stage costs the docker CLI: side by side, with and without it.

Two swarmd processes in front of one Docker engine:

    without: swarmd 'dockerserver unix://DIR/plain.sock' 'dockerclient ENGINE'
    with:    swarmd 'dockerserver unix://DIR/policy.sock' 'policy RULES --audit DIR/audit.jsonl' 'dockerclient ENGINE'

and the docker CLI timing ``docker ps`` and ``docker run --rm --network none IMAGE true``
through each, alternately (the order flips every round, so drift hits both alike), printing
the median and best time of each and their ratio (with / without). ``RULES`` is
``policies/container-safe.toml`` by default: its hide rule makes every ``ps`` look at each
container's labels, the dearest case. ``--containers N`` containers (default 5, made through
the policy so that both see them) are there while ``ps`` is timed.

    .venv/bin/python bench/policy_overhead.py                      # a private dockerd (root)
    .venv/bin/python bench/policy_overhead.py --engine unix:///var/run/docker.sock --image busybox

Without ``--engine`` it starts a private dockerd as the tests do (tests/docker_helpers.py:
root, dockerd and busybox-static needed) with the image ``local/busybox``. Not a test: the
figures are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from docker_cli import DOCKER, ENV, start_swarmd, time_once  # noqa: E402


def docker(sock: str, *args: str) -> float:
    return time_once([DOCKER, "-H", f"unix://{sock}", *args])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", help="the Docker engine's URL (default: start a private dockerd)")
    ap.add_argument("--image", default=None, help="image for docker run (default local/busybox)")
    ap.add_argument("--rules", default=str(ROOT / "policies" / "container-safe.toml"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--containers", type=int, default=5)
    a = ap.parse_args()
    with ExitStack() as stack:
        if a.engine is None:
            from docker_helpers import IMAGE, private_dockerd

            d = stack.enter_context(private_dockerd())
            engine, image = f"unix://{d.sock}", a.image or IMAGE
        else:
            engine, image = a.engine, a.image or "local/busybox"
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="policy-bench-"))
        plain, policed = os.path.join(tmp, "plain.sock"), os.path.join(tmp, "policy.sock")
        procs = [start_swarmd([f"dockerserver unix://{plain}", f"dockerclient {engine}"], plain),
                 start_swarmd([f"dockerserver unix://{policed}", f"policy {a.rules} --audit {tmp}/audit.jsonl",
                               f"dockerclient {engine}"], policed)]
        try:
            made = [f"bench-{os.getpid()}-{i}" for i in range(a.containers)]
            for name in made:
                docker(policed, "create", "--name", name, "--network", "none", image, "true")
            workloads = {"docker ps": ["ps", "-a"], "docker run --rm IMAGE true": ["run", "--rm", "--network", "none",
                                                                                    image, "true"]}
            for args in workloads.values():  # warm up both
                docker(plain, *args)
                docker(policed, *args)
            print(f"engine {engine}, rules {a.rules}, {a.rounds} rounds, {a.containers} containers listed")
            print(f"{'workload':30} {'without (median/best)':>24} {'with policy':>22} {'ratio':>7}")
            for label, args in workloads.items():
                t_plain: list[float] = []
                t_policy: list[float] = []
                for r in range(a.rounds):
                    pair = [(plain, t_plain), (policed, t_policy)]
                    for sock, out in (pair if r % 2 == 0 else pair[::-1]):
                        out.append(docker(sock, *args))
                mp, mq = statistics.median(t_plain), statistics.median(t_policy)
                print(f"{label:30} {mp * 1000:10.1f} / {min(t_plain) * 1000:6.1f} ms "
                      f"{mq * 1000:8.1f} / {min(t_policy) * 1000:6.1f} ms {mq / mp:6.2f}x")
            for name in made:
                subprocess.run([DOCKER, "-H", f"unix://{policed}", "rm", "-f", name], capture_output=True, env=ENV)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    main()
