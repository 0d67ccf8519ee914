"""The docker CLI onto three plain engines through ``aggregate``'s classic-Swarm placement.

    A, B, C: network namespaces on one bridged segment (tests/swarmd_support.py ``Lan``), each
             with a private dockerd of its own (tests/docker_helpers.py ``private_dockerd``) in
             a UTS namespace whose hostname is A, B or C; C's dockerd has ``--label disk=ssd``
    swarmd 'dockerserver unix://<tmp>/STRATEGY.sock' \\
           'aggregate --strategy=STRATEGY "zone=a dockerclient unix://<A>" "zone=b ..." "zone=c ..."'
                                          (one front per strategy: spread, binpack, random)
    docker -H unix://<tmp>/STRATEGY.sock ...     (the real CLI, in the root namespace)

Where a container landed is read from each host's own dockerd (``docker ps -a`` on its
socket), never through swarmd. The hosts are built once for the module; each test starts with
no container anywhere and removes its own. The children are labelled by position: A is ``0``,
B ``1``, C ``2``.

Needs root, ``ip``, ``nsenter``/``unshare``, dockerd and /bin/busybox: a skip without them,
a failure under CI (tests/ci.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess

import pytest

from docker_helpers import IMAGE, Docker, private_dockerd
from swarmd_support import SWARMD, Lan, Proc

pytestmark = pytest.mark.slow  # three private dockerds in network namespaces, three swarmd fronts

SUBNET = "10.237"
HOSTS = ("A", "B", "C")
STRATEGIES = ("spread", "binpack", "random")
TIMEOUT = 30  # per docker CLI call: nothing may hang
SLEEP = ["sleep", "300"]


class Hosts:
    def __init__(self, nodes: dict, fronts: dict[str, Docker]) -> None:
        self.nodes, self.fronts = nodes, fronts

    def node(self, host: str, *args: str) -> str:
        """The docker CLI on ``host``'s own dockerd; asserts exit 0; stdout."""
        r = subprocess.run(self.nodes[host].cli + list(args), capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, (host, args, r.stderr)
        return r.stdout

    def on(self, host: str) -> set[str]:
        """Host's truth: the names of every container of its dockerd."""
        return set(self.node(host, "ps", "-a", "--format", "{{.Names}}").split())

    def truth(self) -> dict[str, set[str]]:
        return {h: self.on(h) for h in HOSTS}

    def where(self, name: str) -> list[str]:
        return [h for h, names in self.truth().items() if name in names]

    def inspect(self, host: str, name: str) -> dict:
        return json.loads(self.node(host, "inspect", name))[0]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aggregate-hosts")
    lan = Lan(HOSTS, tag="ag", subnet=SUBNET)
    with contextlib.ExitStack() as stack:
        stack.callback(lan.teardown)
        lan.setup()
        extra = {"C": ("--label", "disk=ssd")}
        nodes = {h: stack.enter_context(private_dockerd(netns=lan.names[h], hostname=h, args=extra.get(h, ())))
                 for h in HOSTS}
        children = " ".join(f'"zone={h.lower()} dockerclient unix://{nodes[h].sock}"' for h in HOSTS)
        fronts, procs = {}, []
        for strategy in STRATEGIES:
            sock = str(tmp / f"{strategy}.sock")
            front = Proc(SWARMD + [f"dockerserver unix://{sock}", f"aggregate --strategy={strategy} {children}"])
            stack.callback(front.stop)
            procs.append(front)
            fronts[strategy] = Docker(f"unix://{sock}")
        for front in procs:
            front.wait_line(r"dockerserver: listening on unix://", timeout=15, tag="err")
        print(f"aggregate hosts: namespaces {', '.join(lan.names.values())}")
        yield Hosts(nodes, fronts)
        for front in procs:
            assert front.p.poll() is None, front.err


@pytest.fixture
def clean(hosts):
    """Each test starts with no container on any host; whatever it leaves is removed after it."""
    assert hosts.truth() == {h: set() for h in HOSTS}
    yield hosts
    for h in HOSTS:
        left = hosts.on(h)
        if left:
            hosts.node(h, "rm", "-f", *left)


async def run_d(docker: Docker, name: str, *opts: str, image: str = IMAGE) -> str:
    return (await docker.ok("run", "-d", "--name", name, *opts, image, *SLEEP, timeout=TIMEOUT)).strip()


async def test_spread_puts_containers_on_all_three_hosts(clean):
    spread = clean.fronts["spread"]
    for i in range(6):
        await run_d(spread, f"s{i}")
    # the fewest running first, ties to the lowest label: A, B, C, A, B, C
    assert clean.truth() == {"A": {"s0", "s3"}, "B": {"s1", "s4"}, "C": {"s2", "s5"}}
    ps = await spread.ok("ps", "--format", "{{.Names}}", timeout=TIMEOUT)
    assert sorted(ps.split()) == [f"s{i}" for i in range(6)]


async def test_binpack_fills_one_host(clean):
    binpack = clean.fronts["binpack"]
    for i in range(4):
        await run_d(binpack, f"b{i}")
    assert clean.truth() == {"A": {f"b{i}" for i in range(4)}, "B": set(), "C": set()}
    # kept away from A, binpack fills the next one, not both
    for i in range(2):
        await run_d(binpack, f"away{i}", "-e", "constraint:zone!=a")
    assert clean.on("B") == {"away0", "away1"} and clean.on("C") == set()


async def test_random_places_every_container_within_the_filters(clean):
    random = clean.fronts["random"]
    names = [f"r{i}" for i in range(6)]
    for name in names:
        await run_d(random, name, "-e", "constraint:zone!=b")
    truth = clean.truth()
    assert truth["B"] == set() and truth["A"] | truth["C"] == set(names) and not truth["A"] & truth["C"], truth
    ps = await random.ok("ps", "--format", "{{.Names}}", timeout=TIMEOUT)
    assert sorted(ps.split()) == names


async def test_constraints_pin_to_a_host(clean):
    spread = clean.fronts["spread"]
    await run_d(spread, "zb1", "-e", "constraint:zone==b", "-e", "KEPT=1")
    await run_d(spread, "zb2", "-e", "constraint:zone==B")  # case ignored, as classic Swarm
    await run_d(spread, "lab", "--label", 'com.docker.swarm.constraints=["zone==c"]')
    await run_d(spread, "ssd", "-e", "constraint:disk==ssd")  # C's dockerd --label
    await run_d(spread, "glob", "-e", "constraint:zone==[ab]", "-e", "constraint:zone!=a")
    await run_d(spread, "named", "-e", "constraint:node==C")  # the engine's name: its dockerd's hostname
    await run_d(spread, "label1", "-e", "constraint:node==1")  # the child's position label
    assert clean.truth() == {"A": set(), "B": {"zb1", "zb2", "glob", "label1"}, "C": {"lab", "ssd", "named"}}
    # the expression left the environment for the label, as classic Swarm wrote it
    config = clean.inspect("B", "zb1")["Config"]
    assert "KEPT=1" in config["Env"] and not any(e.startswith("constraint:") for e in config["Env"])
    assert json.loads(config["Labels"]["com.docker.swarm.constraints"]) == ["zone==b"]
    p = await spread("run", "-d", "--name", "nowhere", "-e", "constraint:zone==d", IMAGE, *SLEEP, timeout=TIMEOUT)
    assert p.returncode == 125, p
    assert b"unable to find a node that satisfies the following conditions [constraint:zone==d]" in p.stderr, p
    p = await spread("run", "-d", "--name", "soft", "-e", "constraint:zone==~d", IMAGE, *SLEEP, timeout=TIMEOUT)
    assert p.returncode == 0, p  # a soft one is dropped when nothing satisfies it
    assert clean.where("soft") == ["A"]


async def test_affinity_to_a_container_lands_next_to_it(clean):
    spread = clean.fronts["spread"]
    await run_d(spread, "db", "--label", "role=database")  # A (ties)
    await run_d(spread, "other")                            # B
    # spread alone would choose C now; the affinities choose db's host
    await run_d(spread, "app", "-e", "affinity:container==db")
    db_id = clean.inspect("A", "db")["Id"]
    await run_d(spread, "byid", "-e", f"affinity:container=={db_id[:12]}")
    await run_d(spread, "bylabel", "-e", "affinity:role==data*")
    assert clean.on("A") == {"db", "app", "byid", "bylabel"}
    # anti-affinity: away from db's host even though A would win on ties after C fills
    await run_d(spread, "c1")                                # C
    await run_d(spread, "away", "-e", "affinity:container!=db")
    assert clean.where("away") in (["B"], ["C"]), clean.truth()
    p = await spread("run", "-d", "--name", "lonely", "-e", "affinity:container==ghost", IMAGE, *SLEEP, timeout=TIMEOUT)
    assert p.returncode == 125 and b"[affinity:container==ghost]" in p.stderr, p


async def test_affinity_to_an_image_lands_where_the_image_is(clean):
    spread = clean.fronts["spread"]
    clean.node("C", "tag", IMAGE, "local/only-on-c:1")
    try:
        # spread would choose A, which has no such image; the affinity chooses C
        await run_d(spread, "img", "-e", "affinity:image==local/only-on-c:1", image="local/only-on-c:1")
        await run_d(spread, "glob", "-e", "affinity:image==local/only-on-*", image="local/only-on-c:1")
        assert clean.truth() == {"A": set(), "B": set(), "C": {"img", "glob"}}
        assert clean.inspect("C", "img")["Config"]["Image"] == "local/only-on-c:1"
    finally:
        for h in HOSTS:
            left = clean.on(h)
            if left:
                clean.node(h, "rm", "-f", *left)
        clean.node("C", "rmi", "local/only-on-c:1")


async def test_a_host_port_in_use_sends_the_container_to_another_host(clean):
    """The port filter: ``-p 8080:80`` again goes where 8080 is free, even under binpack. (These
    dockerds have no bridge, so the engines would not refuse it themselves: the filter reads
    the running containers' port bindings.)"""
    binpack = clean.fronts["binpack"]
    await run_d(binpack, "web1", "-p", "8080:80")
    await run_d(binpack, "web2", "-p", "8080:80")
    await run_d(binpack, "alt", "-p", "8081:80")
    await run_d(binpack, "web3", "-p", "8080:80/tcp")
    await run_d(binpack, "udp", "-p", "8080:80/udp")
    assert clean.truth() == {"A": {"web1", "alt", "udp"}, "B": {"web2"}, "C": {"web3"}}
    bindings = clean.inspect("B", "web2")["HostConfig"]["PortBindings"]
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, bindings
    p = await binpack("run", "-d", "--name", "web4", "-p", "127.0.0.1:8080:80", IMAGE, *SLEEP, timeout=TIMEOUT)
    assert p.returncode == 125, p
    assert b"unable to find a node that satisfies the following conditions [port: 127.0.0.1:8080/tcp]" in p.stderr, p
    clean.node("B", "stop", "-t", "0", "web2")  # a stopped container holds no port
    await run_d(binpack, "web5", "-p", "8080:80")
    assert clean.where("web5") == ["B"]
