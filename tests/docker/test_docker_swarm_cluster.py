"""The docker CLI onto a three-node Docker Swarm mode cluster, through swarmd and ``swarmmode``.

    A, B, C: network namespaces on one bridged segment (tests/swarmd_support.py ``Lan``),
             each with a private dockerd of its own (tests/docker_helpers.py
             ``private_dockerd``) in a UTS namespace whose hostname, A, B or C, is the node's name
    A: docker swarm init --advertise-addr <A>      B, C: docker swarm join --token T <A>:2377
    A: swarmd 'dockerserver unix://<tmp>/front.sock' 'swarmmode unix://<A's dockerd>'
    docker -H unix://<tmp>/front.sock ...          (the real CLI, in the root namespace)

Where a task runs is read from each node's own dockerd (``docker ps`` on its socket: the
``com.docker.swarm.service.name`` label of its containers), never from swarmd. The swarm is
built once for the module; each test starts with no service and removes its own. The
failover test kills node B's dockerd, so it comes last and B stays down.

Needs root, ``ip``, ``nsenter``/``unshare``, dockerd and /bin/busybox: a skip without them,
a failure under CI (tests/ci.py). There is no loopback fallback: every node of a swarm
needs ports 7946 and 4789 of its own address.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

import pytest
import trio

from docker_helpers import IMAGE, Docker, private_dockerd
from swarmd_support import SWARMD, Lan, Proc

pytestmark = pytest.mark.slow  # three private dockerds in network namespaces, a swarm, swarmd

SUBNET = "10.236"
HOSTS = ("A", "B", "C")
TIMEOUT = 60  # per docker CLI call: nothing may hang
DEADLINE = 120  # for what the swarm does in its own time (placement, failover): no timed assertion


class Cluster:
    def __init__(self, lan: Lan, nodes: dict, sock: str) -> None:
        self.lan, self.nodes = lan, nodes
        self.docker = Docker(f"unix://{sock}")
        self.down: set[str] = set()

    def node(self, host: str, *args: str) -> str:
        """The docker CLI on ``host``'s own dockerd; asserts exit 0; stdout."""
        r = subprocess.run(self.nodes[host].cli + list(args), capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, (host, args, r.stderr)
        return r.stdout

    def running_on(self, host: str) -> set[str]:
        """Host's truth: the services whose task runs in its dockerd."""
        out = self.node(host, "ps", "--format", '{{.Label "com.docker.swarm.service.name"}}')
        return set(out.split())

    def truth(self) -> dict[str, set[str]]:
        return {h: self.running_on(h) for h in HOSTS if h not in self.down}

    async def placed(self) -> dict[str, tuple[str, str]]:
        """``docker ps -a`` through swarmd: ``{name: (status word, node)}``."""
        out = await self.docker.ok("ps", "-a", "--format", '{{.Names}}|{{.Status}}|{{.Label "com.docker.swarm.node"}}',
                                   timeout=TIMEOUT)
        rows = (line.split("|") for line in out.splitlines())
        return {name: (status.split()[0] if status else "", node) for name, status, node in rows}

    async def wait_up(self, names: list[str]) -> dict[str, str]:
        """Until ``docker ps`` through swarmd shows every one of ``names`` Up; ``{name: node}``."""
        deadline = time.monotonic() + DEADLINE
        while True:
            now = await self.placed()
            if all(now.get(n, ("", ""))[0] == "Up" for n in names):
                return {n: now[n][1] for n in names}
            assert time.monotonic() < deadline, f"not all of {names} up within {DEADLINE} s: {now}"
            await trio.sleep(0.5)


def _wait_ready(cluster: Cluster) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        nodes = cluster.node("A", "node", "ls", "--format", "{{.Hostname}} {{.Status}}").split("\n")
        if sorted(n for n in nodes if n) == ["A Ready", "B Ready", "C Ready"]:
            return
        assert time.monotonic() < deadline, f"the swarm did not get three ready nodes: {nodes}"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("swarm-cluster")
    lan = Lan(HOSTS, tag="sm", subnet=SUBNET)
    with contextlib.ExitStack() as stack:
        stack.callback(lan.teardown)
        lan.setup()
        start = time.monotonic()
        nodes = {h: stack.enter_context(private_dockerd(netns=lan.names[h], hostname=h)) for h in HOSTS}
        sock = str(tmp / "front.sock")
        c = Cluster(lan, nodes, sock)
        daemons = time.monotonic() - start
        c.node("A", "swarm", "init", "--advertise-addr", lan.address("A"))
        token = c.node("A", "swarm", "join-token", "-q", "worker").strip()
        for h in ("B", "C"):
            c.node(h, "swarm", "join", "--token", token, f"{lan.address('A')}:2377")
        _wait_ready(c)
        print(f"swarm cluster: namespaces {', '.join(lan.names.values())}; three dockerds with busybox "
              f"{daemons:.1f} s, init + 2 joins + all Ready {time.monotonic() - start - daemons:.1f} s")
        front = Proc(SWARMD + [f"dockerserver unix://{sock}", f"swarmmode unix://{nodes['A'].sock}"],
                     prefix=lan.prefix("A"))
        stack.callback(front.stop)
        front.wait_line(r"dockerserver: listening on unix://", timeout=15, tag="err")
        yield c
        assert front.p.poll() is None, front.err


@pytest.fixture
def docker(cluster):
    """The CLI on swarmd; each test starts with no service, and its own are removed after it
    (then their containers are awaited gone from every live node)."""
    assert cluster.node("A", "service", "ls", "-q") == ""
    yield cluster.docker
    services = cluster.node("A", "service", "ls", "-q").split()
    if services:
        cluster.node("A", "service", "rm", *services)
    deadline = time.monotonic() + DEADLINE
    while any(cluster.truth().values()):
        assert time.monotonic() < deadline, cluster.truth()
        time.sleep(0.25)


async def test_six_runs_spread_over_the_three_nodes(cluster, docker):
    names = [f"spread{i}" for i in range(6)]
    for name in names:
        await docker.ok("run", "-d", "--init", "--name", name, IMAGE, "sleep", "300", timeout=TIMEOUT)
    where = await cluster.wait_up(names)
    truth = cluster.truth()
    assert truth == {h: {n for n in names if where[n] == h} for h in HOSTS}, (truth, where)
    assert sorted(len(on) for on in truth.values()) == [2, 2, 2], truth


async def test_a_constraint_pins_to_c_and_its_logs_reach_a(cluster, docker):
    """``-e constraint:node==C`` (classic Swarm's) and the label ``com.docker.swarm.constraints``;
    ``docker logs`` through swarmd on A of a task that runs on C."""
    cmd = ["sh", "-c", "echo hello from C; echo and its stderr >&2; exec sleep 300"]
    await docker.ok("run", "-d", "--init", "--name", "pinned", "-e", "constraint:node==C", IMAGE, *cmd,
                    timeout=TIMEOUT)
    await docker.ok("run", "-d", "--init", "--name", "labelled", "--label",
                    'com.docker.swarm.constraints=["node.hostname==C"]', IMAGE, *cmd, timeout=TIMEOUT)
    assert await cluster.wait_up(["pinned", "labelled"]) == {"pinned": "C", "labelled": "C"}
    assert cluster.truth() == {"A": set(), "B": set(), "C": {"pinned", "labelled"}}
    info = json.loads(await docker.ok("inspect", "pinned", timeout=TIMEOUT))[0]
    assert info["Node"]["Name"] == "C" and info["Node"]["Addr"] == cluster.lan.address("C"), info["Node"]
    deadline = time.monotonic() + DEADLINE
    while True:  # the task is Up once started; its first lines may still be on their way
        p = await docker("logs", "pinned", timeout=TIMEOUT)
        if p.stdout and p.stderr:
            break
        assert time.monotonic() < deadline, p
        await trio.sleep(0.25)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"hello from C\n", b"and its stderr\n"), p
    # the same lines as C's own dockerd gives
    cid = info["Swarm"]["ContainerID"]
    on_c = subprocess.run(cluster.nodes["C"].cli + ["logs", cid], capture_output=True, timeout=TIMEOUT)
    assert (on_c.stdout, on_c.stderr) == (p.stdout, p.stderr)


async def test_a_foreground_run_prints_and_exits_with_the_task(cluster, docker):
    p = await docker("run", "--rm", IMAGE, "sh", "-c", "echo hi; exit 3", timeout=TIMEOUT)
    assert (p.returncode, p.stdout, p.stderr) == (3, b"hi\n", b""), p
    assert await cluster.placed() == {}  # --rm: the job's service is gone


async def test_killing_a_node_moves_its_tasks(cluster, docker):
    """Node B's dockerd is SIGKILLed: the swarm marks B down and starts each ``--restart
    always`` task of B on A or C, which ``docker ps`` through swarmd shows; a task without
    ``--restart`` (the task restart policy ``none``) is not started again, and is shown
    ``Host Down`` on B (classic Swarm's words), not Up. The failover time is printed
    (measured, not asserted)."""
    survivors = [f"always{i}" for i in range(3)]
    plain = [f"plain{i}" for i in range(3)]
    for name in survivors:
        await docker.ok("run", "-d", "--init", "--restart", "always", "--name", name, IMAGE, "sleep", "300",
                        timeout=TIMEOUT)
    for name in plain:
        await docker.ok("run", "-d", "--init", "--name", name, IMAGE, "sleep", "300", timeout=TIMEOUT)
    where = await cluster.wait_up(survivors + plain)
    on_b = sorted(n for n in survivors + plain if where[n] == "B")
    assert len(on_b) == 2 and on_b[0].startswith("always") and on_b[1].startswith("plain"), where  # the spread
    assert cluster.running_on("B") == set(on_b)
    moving, staying = on_b

    start = time.monotonic()
    cluster.nodes["B"].kill()
    cluster.down.add("B")
    down_after = None
    deadline = start + DEADLINE
    while True:
        if down_after is None:
            status = cluster.node("A", "node", "inspect", "B", "--format", "{{.Status.State}}").strip()
            if status == "down":
                down_after = time.monotonic() - start
        status, node = (await cluster.placed())[moving]
        if status == "Up" and node in ("A", "C"):
            failover = time.monotonic() - start
            break
        assert time.monotonic() < deadline, f"{moving} not up on A or C within {DEADLINE} s"
        await trio.sleep(0.5)
    print(f"swarm failover: node B's dockerd killed; B down after "
          f"{'%.1f s' % down_after if down_after is not None else '(not seen before)'}; "
          f"its --restart always task running on {node} after {failover:.1f} s")
    assert moving in cluster.running_on(node)  # that node's own truth
    # the rest did not move; the plain task was shut down with B and not replaced
    now = await cluster.placed()
    assert all(now[n] == ("Up", where[n]) for n in survivors + plain if n not in on_b), now
    tasks = cluster.node("A", "service", "ps", staying, "--format", "{{.Node}} {{.DesiredState}}").splitlines()
    assert tasks == ["B Shutdown"], tasks
    # B is down (the replacement above happened after that): its task is not shown Up
    assert now[staying] == ("Host", "B"), now
    ps = await docker.ok("ps", "--filter", f"name={staying}", "--format", "{{.Names}}|{{.Status}}", timeout=TIMEOUT)
    assert ps == f"{staying}|Host Down\n", ps  # listed without -a: last known running
    info = json.loads(await docker.ok("inspect", staying, timeout=TIMEOUT))[0]
    assert info["State"]["Error"] == "Host Down: node B is down", info["State"]
    assert (info["Node"]["Name"], info["Node"]["State"]) == ("B", "down"), info["Node"]
