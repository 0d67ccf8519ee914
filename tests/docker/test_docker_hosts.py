"""The docker CLI against two hosts behind one front: real processes, network namespaces, mutual TLS.

    A (netns): swarmd 'listen --cert .. --key .. --ca .. tls://0.0.0.0:4000' 'dockerclient unix://<private dockerd>'
    B (netns): swarmd 'listen --cert .. --key .. --ca .. tls://0.0.0.0:4000' simulator
    F (netns): swarmd 'dockerserver unix://<tmp>/front.sock' \\
                      'aggregate "connect --cert .. tls://A:4000" "connect --cert .. tls://B:4000"'
    docker -H unix://<tmp>/front.sock ...     (the real CLI, in the root namespace)

F is joined to A and to B by veth pairs (A and B cannot reach each other); the certificates
come from one trustme CA (tests/swarmd_support.py ``Pki``). The private dockerd is started by
this module in the **root** namespace (tests/docker_helpers.py ``private_dockerd``): its unix
socket is a file, reachable from namespace A, where only A's swarmd uses it; the test reads
it directly as host A's truth. Host B's truth is ``swarmctl ... ls`` run inside F against B's
listen. The aggregate labels A ``0`` and B ``1``: a name on both hosts is ``0/NAME`` and
``1/NAME``; placement without a label goes to the host with the fewest containers, ties to A.

Needs root, ``ip``, dockerd and /bin/busybox. Without network namespaces (not root, no ``ip``,
``SWARMD_TEST_NO_NETNS=1``) the hosts fall back to loopback ports with a warning; under CI
(tests/ci.py) that is a failure, never a skip or a fallback.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from docker_helpers import IMAGE, Docker, private_dockerd
from swarmd_support import SWARMCTL, Hosts, Pki, run

pytestmark = pytest.mark.slow  # a private dockerd, network namespaces, swarmd processes

SUBNET = "10.232"
TIMEOUT = 30  # per docker CLI call: nothing may hang


class Cluster:
    def __init__(self, hosts: Hosts, dockerd, pki: Pki, a_url: str, b_url: str, sock: str) -> None:
        self.hosts, self.dockerd, self.pki = hosts, dockerd, pki
        self.a_url, self.b_url = a_url, b_url
        self.docker = Docker(f"unix://{sock}")

    def on_a(self) -> dict[str, str]:
        """Host A's truth: ``{name: id}`` of every container of its dockerd."""
        out = subprocess.run(self.dockerd.cli + ["ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}"],
                             capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
        return dict(line.split() for line in out.splitlines())

    def on_b(self) -> list[str]:
        """Host B's truth: the names its simulator lists (swarmctl against B's listen, from F)."""
        r = self.ctl_b("ls")
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    def ctl_b(self, *args: str) -> subprocess.CompletedProcess:
        return run(SWARMCTL + self.pki.client_opts() + [self.b_url, *args], timeout=TIMEOUT,
                   prefix=self.hosts.prefix("F"))

    def b_state(self, name: str) -> dict:
        r = self.ctl_b("get", name)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["State"]

    def a_state(self, name: str) -> dict:
        out = subprocess.run(self.dockerd.cli + ["inspect", name], capture_output=True, text=True,
                             timeout=TIMEOUT, check=True).stdout
        return json.loads(out)[0]["State"]

    async def names(self) -> list[str]:
        """``docker ps -a`` through the front: the NAMES column."""
        return (await self.docker.ok("ps", "-a", "--format", "{{.Names}}", timeout=TIMEOUT)).split()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docker-hosts")
    with private_dockerd() as dockerd:
        hosts = Hosts("F", ("A", "B"), tag="dh", subnet=SUBNET, who="test_docker_hosts")
        try:
            hosts.setup()
            pki = Pki(tmp / "pki", server_names=(hosts.address("A") if hosts.netns else "127.0.0.1",
                                                   hosts.address("B") if hosts.netns else "127.0.0.1",
                                                   "127.0.0.1", "localhost"))
            a = hosts.start("A", f"listen {pki.server_opts()} {hosts.listen_url('A')}", f"dockerclient unix://{dockerd.sock}")
            b_specs = (f"listen {pki.server_opts()} {hosts.listen_url('B')}", "simulator")
            b = hosts.start("B", *b_specs)
            a_url, b_url = a.listening(), b.listening()
            if hosts.netns:
                a_url, b_url = f"tls://{hosts.address('A')}:4000", f"tls://{hosts.address('B')}:4000"
            copts = " ".join(pki.client_opts())
            sock = str(tmp / "front.sock")
            front = hosts.start("F", f"dockerserver unix://{sock}",
                                f'aggregate --retry=2 "connect {copts} {a_url}" "connect {copts} {b_url}"')
            front.wait_line(r"dockerserver: listening on unix://", timeout=15, tag="err")
            where = f"network namespaces {', '.join(hosts.names.values())}" if hosts.netns else "LOOPBACK FALLBACK"
            print(f"docker hosts: {where}; A={a_url} (dockerd {dockerd.sock}) B={b_url} (simulator)")
            c = Cluster(hosts, dockerd, pki, a_url, b_url, sock)
            c.procs = {"A": a, "B": b, "F": front}
            c.b_specs = b_specs
            yield c
            for p in c.procs.values():  # none of them died on the way (B may have been restarted)
                assert p.p.poll() is None, (p.argv, p.err)
        finally:
            hosts.teardown()


@pytest.fixture
def docker(cluster):
    """The CLI on the front; each test starts and must end with no containers on either host."""
    assert cluster.on_a() == {} and cluster.on_b() == []
    yield cluster.docker
    leftovers = (cluster.on_a(), cluster.on_b())
    if leftovers != ({}, []):
        subprocess.run(cluster.dockerd.cli + ["rm", "-f", *leftovers[0]], capture_output=True, timeout=TIMEOUT)
        for name in leftovers[1]:
            cluster.ctl_b("stop", name, "rm", "force")
    assert leftovers == ({}, []), leftovers


async def test_same_name_on_both_hosts(cluster, docker):
    """``LABEL/name`` places explicitly; ``ps -a`` shows both without a clash; logs, stop and rm by
    ``LABEL/name`` reach the owning host; once unique, the bare name reaches it too."""
    cmd = ["sh", "-c", "echo from the front; sleep 30"]
    a_id = (await docker.ok("create", "--name", "0/web", IMAGE, *cmd, timeout=TIMEOUT)).strip()
    b_id = (await docker.ok("create", "--name", "1/web", IMAGE, *cmd, timeout=TIMEOUT)).strip()
    assert cluster.on_a() == {"web": a_id}
    assert cluster.on_b() == ["web"] and a_id != b_id
    assert sorted(await cluster.names()) == ["0/web", "1/web"]
    info = await docker.ok("info", timeout=TIMEOUT)
    assert "Containers: 2" in info and "Storage Driver: aggregate" in info, info
    ps = await docker.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}", timeout=TIMEOUT)
    assert sorted(ps.splitlines()) == sorted([f"{a_id} 0/web Created", f"{b_id} 1/web Created"])
    # the same bare name on two hosts: Docker's conflict, the aggregate's ambiguity
    p = await docker("create", "--name", "web", IMAGE, "true", timeout=TIMEOUT)
    assert p.returncode == 1 and b'Conflict. The name "/web" is already in use' in p.stderr, p.stderr
    p = await docker("logs", "web", timeout=TIMEOUT)
    assert p.returncode == 1 and b"ambiguous name web: in children 0, 1; use LABEL/web" in p.stderr, p.stderr
    # the same LABEL/name twice: the owning host's own conflict
    p = await docker("create", "--name", "0/web", IMAGE, "true", timeout=TIMEOUT)
    assert p.returncode == 1 and b'Conflict. The container name "/web" is already in use' in p.stderr, p.stderr

    assert (await docker.ok("start", "0/web", "1/web", timeout=TIMEOUT)).split() == ["0/web", "1/web"]
    assert cluster.a_state("web")["Running"] is True and cluster.b_state("web")["Running"] is True
    assert json.loads(await docker.ok("inspect", "1/web", timeout=TIMEOUT))[0]["Id"] == b_id
    for name in ("0/web", "1/web"):
        p = await docker("logs", name, timeout=TIMEOUT)
        assert (p.returncode, p.stdout) == (0, b"from the front\n"), (name, p)
    assert "Up " in await docker.ok("ps", "--filter", "name=1/web", timeout=TIMEOUT)

    assert await docker.ok("stop", "-t", "1", "0/web", timeout=TIMEOUT) == "0/web\n"
    assert cluster.a_state("web")["Running"] is False and cluster.b_state("web")["Running"] is True
    assert await docker.ok("rm", "0/web", timeout=TIMEOUT) == "0/web\n"
    assert cluster.on_a() == {} and cluster.on_b() == ["web"]
    # web is unique now: the bare name reaches host B
    assert await cluster.names() == ["web"]
    assert await docker.ok("logs", "web", timeout=TIMEOUT) == "from the front\n"
    assert await docker.ok("stop", "web", timeout=TIMEOUT) == "web\n"
    assert cluster.b_state("web")["ExitCode"] == 137
    assert await docker.ok("rm", "web", timeout=TIMEOUT) == "web\n"
    assert cluster.on_b() == []
    p = await docker("rm", "web", timeout=TIMEOUT)
    assert p.returncode == 1 and b"No such container: web" in p.stderr, p.stderr


async def test_placement_and_names(cluster, docker):
    """Without a label: the host with the fewest containers, ties to the lowest label (A)."""
    cmd = ["sh", "-c", "echo placed; sleep 30"]
    first = (await docker.ok("run", "-d", IMAGE, *cmd, timeout=TIMEOUT)).strip()          # 0-0: A
    assert list(cluster.on_a().values()) == [first] and cluster.on_b() == []
    second = (await docker.ok("run", "-d", "--name", "solo", IMAGE, *cmd, timeout=TIMEOUT)).strip()  # 1-0: B
    assert cluster.on_b() == ["solo"] and len(cluster.on_a()) == 1
    assert json.loads(cluster.ctl_b("get", "solo").stdout)["Id"] == second
    third = (await docker.ok("run", "-d", "--name", "duo", IMAGE, *cmd, timeout=TIMEOUT)).strip()    # 1-1: A
    assert cluster.on_a().get("duo") == third and cluster.on_b() == ["solo"]
    fourth = (await docker.ok("run", "-d", IMAGE, *cmd, timeout=TIMEOUT)).strip()         # 2-1: B
    b_names = cluster.on_b()
    assert len(b_names) == 2 and b_names[0] == "solo"
    assert json.loads(cluster.ctl_b("get", b_names[1]).stdout)["Id"] == fourth

    a_generated = next(n for n, i in cluster.on_a().items() if i == first)
    assert sorted(await cluster.names()) == sorted([a_generated, "solo", "duo", b_names[1]])
    # logs / stop / rm by unique name and by id reach the owning host
    for ref in ("solo", "duo", first, fourth[:12]):
        assert await docker.ok("logs", ref, timeout=TIMEOUT) == "placed\n", ref
    assert await docker.ok("stop", "-t", "1", "duo", "solo", timeout=TIMEOUT) == "duo\nsolo\n"
    assert cluster.a_state("duo")["Running"] is False and cluster.b_state("solo")["Running"] is False
    assert cluster.a_state(first)["Running"] is True and cluster.b_state(b_names[1])["Running"] is True
    p = await docker("rm", first, timeout=TIMEOUT)
    assert p.returncode == 1 and b"You cannot remove a running container" in p.stderr, p.stderr  # A's own words
    p = await docker("rm", fourth, timeout=TIMEOUT)
    assert p.returncode == 1 and b"container is running" in p.stderr, p.stderr  # B's
    assert await docker.ok("rm", "duo", "solo", timeout=TIMEOUT) == "duo\nsolo\n"
    assert await docker.ok("rm", "-f", first, fourth, timeout=TIMEOUT) == f"{first}\n{fourth}\n"
    assert await docker.ok("ps", "-aq", timeout=TIMEOUT) == ""


async def test_run_exit_status_and_stdin(cluster, docker):
    """``run --rm`` through the aggregate and two TLS hops: exit status and stdin, on either host."""
    p = await docker("run", "--rm", IMAGE, "sh", "-c", "exit 3", timeout=TIMEOUT)     # placed on A (a tie)
    assert (p.returncode, p.stderr) == (3, b"")
    p = await docker("run", "--rm", "--name", "1/three", IMAGE, "sh", "-c", "exit 3", timeout=TIMEOUT)  # on B
    assert (p.returncode, p.stderr) == (3, b"")
    assert await docker.ok("run", "-i", "--rm", IMAGE, "cat", stdin=b"hi\n", timeout=TIMEOUT) == "hi\n"
    out = await docker.ok("run", "-i", "--rm", "--name", "1/cat", IMAGE, "cat", stdin=b"hi B\n", timeout=TIMEOUT)
    assert out == "hi B\n"
    # a container kept on A proves where the unlabelled runs went (and that --rm removed them)
    p = await docker("run", "--name", "kept", IMAGE, "sh", "-c", "echo on A; exit 4", timeout=TIMEOUT)
    assert (p.returncode, p.stdout) == (4, b"on A\n")
    assert list(cluster.on_a()) == ["kept"] and cluster.on_b() == []
    assert cluster.a_state("kept")["ExitCode"] == 4
    assert await docker.ok("rm", "kept", timeout=TIMEOUT) == "kept\n"


async def test_a_dead_host_degrades_the_cluster_and_comes_back(cluster, docker):
    """Host B's swarmd dies: ``ps`` still lists A's containers, ``info`` says which child is
    down, placement goes to A; the dead host costs the timeout at most once (then it is
    skipped at once); once B is back (after the aggregate's --retry=2) it is used again."""
    await docker.ok("create", "--name", "on-a", IMAGE, "true", timeout=TIMEOUT)  # a tie: placed on A
    cluster.procs["B"].stop()
    try:
        assert await cluster.names() == ["on-a"]  # B fails (connection refused): left out
        start = time.monotonic()
        assert await cluster.names() == ["on-a"]
        assert time.monotonic() - start < 3, "the down host was waited for again"
        info = await docker.ok("info", timeout=TIMEOUT)
        assert "child 0 (connect" in info and ": up" in info
        assert "child 1 (connect" in info and "down:" in info, info
        await docker.ok("create", "--name", "second", IMAGE, "true", timeout=TIMEOUT)  # B would win the tie
        assert set(cluster.on_a()) == {"on-a", "second"}
    finally:
        b = cluster.hosts.start("B", *cluster.b_specs)
        cluster.procs["B"] = b
        b.listening()
    if cluster.hosts.netns:  # (the loopback fallback gives B a new port: it cannot come back there)
        time.sleep(2.2)  # the retry period
        assert set(await cluster.names()) == {"on-a", "second"}
        await docker.ok("create", "--name", "1/on-b", IMAGE, "true", timeout=TIMEOUT)
        assert cluster.on_b() == ["on-b"]
        assert "down:" not in await docker.ok("info", timeout=TIMEOUT)
        await docker.ok("rm", "1/on-b", timeout=TIMEOUT)
    await docker.ok("rm", "on-a", "second", timeout=TIMEOUT)
