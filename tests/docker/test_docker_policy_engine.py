"""The proofs of issue 15 against a real dockerd, with the real docker CLI:
``dockerserver -> policy policies/container-safe.toml -> dockerclient -> dockerd``.

The dangerous ``run`` flags and ``exec`` as root are refused naming their rule, a plain
``run`` works, the rewrite shows in ``docker inspect`` on the engine itself, and a container
that has only the policy's socket (not the Docker socket) runs the docker CLI and meets the
same refusals. Needs root, dockerd, busybox-static and the docker CLI (skips otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import trio

from docker_helpers import DOCKER_CLI, IMAGE, Docker, docker_front, need, private_dockerd
from libswarm.backends.dockerclient import DockerClient
from libswarm.backends.policy import Policy

pytestmark = pytest.mark.slow  # a private dockerd and the docker CLI

SAFE = Path(__file__).resolve().parents[2] / "policies" / "container-safe.toml"

#: (docker run flags, the rule that refuses them)
REFUSED = [
    (["--privileged"], "no-privileged"),
    (["-v", "/:/host"], "no-bind-outside"),
    (["--mount", "type=bind,src=/etc,dst=/x"], "no-bind-outside"),
    (["--pid", "host"], "no-host-namespaces"),
    (["--cap-add", "SYS_ADMIN"], "no-cap-add"),
    (["--device", "/dev/null:/dev/x"], "no-devices"),
    (["--security-opt", "seccomp=unconfined"], "no-unconfined"),
]


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as d:
        yield d


@pytest.fixture
def shared_dir():
    """A directory for the policy socket that a container can have bind-mounted."""
    d = tempfile.mkdtemp(prefix="policy-sock-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def front(dockerd, shared_dir, tmp_path):
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    sock = os.path.join(shared_dir, "docker.sock")
    audit = tmp_path / "audit.jsonl"
    async with docker_front(f"unix://{sock}", Policy(str(SAFE), "--audit", str(audit)),
                            DockerClient(f"unix://{dockerd.sock}")):
        yield Docker(f"unix://{sock}"), sock, audit


def engine(dockerd, *args: str) -> str:
    """The docker CLI on the engine itself (not through the policy)."""
    p = subprocess.run(dockerd.cli + list(args), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout


async def test_dangerous_runs_are_refused_naming_the_rule(front, dockerd):
    docker, _, audit = front
    before = engine(dockerd, "ps", "-aq")
    for flags, rule in REFUSED:
        p = await docker("run", "--rm", "--network", "none", *flags, IMAGE, "true")
        assert p.returncode == 125, (flags, p.stderr)
        assert "Error response from daemon: policy: " in p.stderr.decode() and f"(rule {rule})" in p.stderr.decode(), \
            (flags, p.stderr)
    assert engine(dockerd, "ps", "-aq") == before  # nothing reached the engine
    denied = [json.loads(line)["rule"] for line in audit.read_text().splitlines() if '"deny"' in line]
    assert denied == [rule for _, rule in REFUSED]


async def test_plain_run_works_and_the_rewrite_shows_on_the_engine(front, dockerd):
    docker, _, _ = front
    assert await docker.ok("run", "--rm", "--network", "none", IMAGE, "id", "-u") == "65534\n"
    await docker.ok("run", "-d", "--name", "svc", "--network", "none", "-v", "/srv/shared/data:/data",
                    IMAGE, "sleep", "300")
    data = json.loads(engine(dockerd, "inspect", "svc"))[0]
    assert data["Config"]["User"] == "65534:65534"
    assert data["Config"]["Labels"]["com.libswarm.owner"] == f"uid-{os.geteuid()}"
    assert "no-new-privileges" in data["HostConfig"]["SecurityOpt"]
    # exec: as the container's (forced) user it runs; as root it is refused
    assert await docker.ok("exec", "svc", "id", "-u") == "65534\n"
    p = await docker("exec", "-u", "root", "svc", "id")
    assert p.returncode != 0 and b"policy: exec as root is not allowed (rule no-root-exec)" in p.stderr
    p = await docker("exec", "-u", "0:0", "svc", "id")
    assert b"(rule no-root-exec)" in p.stderr
    # the engine's own containers, not made through the policy, are invisible
    engine(dockerd, "create", "--name", "host-admin", "--network", "none", "--privileged", IMAGE, "true")
    assert "host-admin" not in await docker.ok("ps", "-a", "--format", "{{.Names}}")
    p = await docker("exec", "host-admin", "true")
    assert b"No such container: host-admin" in p.stderr
    p = await docker("rm", "-f", "host-admin")
    assert b"No such container: host-admin" in p.stderr
    engine(dockerd, "rm", "-f", "svc", "host-admin")


async def test_a_container_with_only_the_policy_socket_cannot_escape(front, dockerd):
    """The docker CLI inside a container that has the policy's socket mounted as its
    /var/run/docker.sock (and no Docker socket): a plain run works, every escape is refused."""
    _, sock, _ = front
    script = "; ".join(
        [f"docker run --rm --network none {IMAGE} echo inner-ok"]
        + [f"docker run --rm --network none {' '.join(flags)} {IMAGE} true 2>&1 | grep 'Error response' || echo NO"
           for flags, _ in REFUSED]
        + ["docker ps -a --format '{{.Names}}' | grep -c jail || true"])
    with trio.fail_after(120):  # (the policy runs in this process: wait without blocking it)
        p = await trio.run_process(dockerd.cli + [
            "run", "--rm", "--name", "jail", "--network", "none",
            "-v", f"{sock}:/var/run/docker.sock", "-v", f"{DOCKER_CLI}:/bin/docker:ro", "-e", "DOCKER_CONFIG=/tmp",
            IMAGE, "sh", "-c", script], capture_stdout=True, capture_stderr=True, check=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().strip().splitlines()
    assert lines[0] == "inner-ok"
    for (flags, rule), line in zip(REFUSED, lines[1:]):
        assert "Error response from daemon: policy: " in line and f"(rule {rule})" in line, (flags, line)
    assert lines[-1] == "0"  # the container itself (made on the engine directly) is not visible from inside
