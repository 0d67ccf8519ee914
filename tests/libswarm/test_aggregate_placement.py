"""aggregate's classic-Swarm placement: strategies, child labels, constraint: and affinity: filters."""

from __future__ import annotations

import json

import pytest
import trio

import libswarm
from libswarm import RemoteError, UsageError, backends


def where(agg, name: str) -> list[int]:
    """The children (by position) whose simulator holds a container called ``name``."""
    return [i for i, sim in enumerate(agg.children) if any(c.name == name for c in sim.containers.values())]


async def run(a, name: str, cmd=("true",), start: bool = False, **body) -> None:
    config = {"name": name, "Image": "busybox", "Cmd": list(cmd), **body}
    h = await a.spawn(json.dumps(config))
    if start:
        await h.start()


async def test_spread_counts_running_containers_and_binpack_the_reverse():
    for strategy, expected in (("spread", 1), ("binpack", 0)):
        agg = backends.from_spec(f"aggregate --strategy={strategy} 'simulator' 'simulator c1 c2 c3'")
        with trio.fail_after(10):
            async with libswarm.open_service(agg) as (a, _):
                await run(a, "0/busy", ("sleep", "100"), start=True)
                assert where(agg, "busy") == [0]
                # child 0: 1 running of 1; child 1: 0 running of 3 (created, never started)
                await run(a, "next")
                assert where(agg, "next") == [expected], strategy


async def test_spread_by_reservations_and_the_resources_filter():
    agg = backends.from_spec("aggregate 'simulator --ncpu=4 --memory=1000000000' "
                             "'simulator --ncpu=4 --memory=1000000000 x1 x2'")
    with trio.fail_after(10):
        async with libswarm.open_service(agg) as (a, _):
            # child 0 has fewer containers, but reserves 3 CPUs once this one runs
            await run(a, "big", ("sleep", "100"), start=True, HostConfig={"NanoCpus": 3_000_000_000})
            assert where(agg, "big") == [0]
            await run(a, "small", ("sleep", "100"), start=True, HostConfig={"NanoCpus": 1_000_000_000})
            assert where(agg, "small") == [1]  # 1/4 beside 4/4: by reservation, not by count
            # 3 more CPUs fit only on child 1 (1 of 4 reserved); 4 fit nowhere
            await run(a, "more", ("sleep", "100"), start=True, HostConfig={"NanoCpus": 3_000_000_000})
            assert where(agg, "more") == [1]
            with pytest.raises(RemoteError, match=r"unable to find a node that satisfies the following "
                                                  r"conditions \[resources: 2 CPUs\]"):
                await run(a, "none", HostConfig={"NanoCpus": 2_000_000_000})
            await run(a, "one", HostConfig={"NanoCpus": 1_000_000_000})
            assert where(agg, "one") == [0]  # 3/4 reserved there: one more fits
            # memory alike (--memory), and binpack fills the busiest that still fits
            await run(a, "mem", HostConfig={"Memory": 600_000_000})
            with pytest.raises(RemoteError, match=r"\[resources: 2000000000 bytes of memory\]"):
                await run(a, "toomuch", HostConfig={"Memory": 2_000_000_000})


async def test_constraints_on_child_labels_and_node_names():
    agg = backends.from_spec("aggregate 'zone=a node=alpha simulator' 'zone=b disk=ssd simulator --label=kernel=6' "
                             "'zone=b simulator'")
    with trio.fail_after(10):
        async with libswarm.open_service(agg) as (a, _):
            await run(a, "w1", Env=["constraint:zone==b", "A=1"])
            assert where(agg, "w1") == [1]
            await run(a, "w2", Env=["constraint:zone==b"])
            assert where(agg, "w2") == [2]  # spread among the two in zone b
            await run(a, "w3", Env=["constraint:node==alpha"])
            await run(a, "w4", Env=["constraint:node==2"])
            await run(a, "w5", Env=["constraint:zone!=b"])
            await run(a, "w6", Env=["constraint:disk==s*"])  # a glob
            await run(a, "w7", Env=["constraint:zone==/^[B]$/"])  # a regular expression (case ignored)
            await run(a, "w8", Env=["constraint:kernel==6"])  # the engine's own label (its Get() Labels)
            await run(a, "w9", Labels={"com.docker.swarm.constraints": '["node==alpha"]'})
            assert [where(agg, n) for n in ("w3", "w4", "w5", "w6", "w8", "w9")] == [[0], [2], [0], [1], [1], [0]]
            assert where(agg, "w7")[0] in (1, 2)
            # the env entry is gone, the expression is kept as classic Swarm's label
            c = [c for c in agg.children[1].containers.values() if c.name == "w1"][0]
            assert c.config["Env"] == ["A=1"]
            assert json.loads(c.config["Labels"]["com.docker.swarm.constraints"]) == ["zone==b"]
            with pytest.raises(RemoteError, match=r"unable to find a node that satisfies the following "
                                                  r"conditions \[constraint:zone==c\]"):
                await run(a, "nowhere", Env=["constraint:zone==c"])
            await run(a, "soft", Env=["constraint:zone==~c"])  # a soft one is dropped
            with pytest.raises(RemoteError, match="invalid constraint expression"):
                await run(a, "bad", Env=["constraint:zone"])
            # an explicit LABEL/name must satisfy the filters too
            with pytest.raises(RemoteError, match=r"\[constraint:zone==a\]"):
                await run(a, "1/pinned", Env=["constraint:zone==a"])
            await run(a, "0/pinned", Env=["constraint:zone==a"])
            assert where(agg, "pinned") == [0]


async def test_affinities_to_containers_images_and_labels():
    agg = backends.from_spec("aggregate simulator simulator simulator")
    with trio.fail_after(10):
        async with libswarm.open_service(agg) as (a, _):
            await run(a, "db", Labels={"role": "database"})
            assert where(agg, "db") == [0]
            await run(a, "app", Env=["affinity:container==db"])
            assert where(agg, "app") == [0]
            db_id = [c.id for c in agg.children[0].containers.values() if c.name == "db"][0]
            await run(a, "app2", Labels={"com.docker.swarm.affinities": json.dumps([f"container=={db_id[:12]}"])})
            assert where(agg, "app2") == [0]
            await run(a, "lone", Env=["affinity:container!=db"])
            assert where(agg, "lone") == [1]
            await run(a, "near", Env=["affinity:role==data*"])  # a container label
            assert where(agg, "near") == [0]
            await agg.clients[2].start("pull", "example/special:1")
            await run(a, "special", Image="example/special:1", Env=["affinity:image==example/special*"])
            assert where(agg, "special") == [2]
            with pytest.raises(RemoteError, match=r"\[affinity:container==ghost\]"):
                await run(a, "x", Env=["affinity:container==ghost"])


async def test_random_stays_within_the_filters():
    agg = backends.from_spec("aggregate --strategy=random 'zone=a simulator' 'zone=b simulator' 'zone=b simulator'")
    with trio.fail_after(10):
        async with libswarm.open_service(agg) as (a, _):
            for i in range(12):
                await run(a, f"r{i}", Env=["constraint:zone==b"])
            counts = [len(sim.containers) for sim in agg.children]
            assert counts[0] == 0 and counts[1] + counts[2] == 12


def test_bad_options():
    with pytest.raises(UsageError, match="--strategy"):
        backends.from_spec("aggregate --strategy=fastest simulator")
    with pytest.raises(UsageError, match="labels without a backend"):
        backends.from_spec("aggregate 'zone=a'")
    with pytest.raises(UsageError, match="--ncpu"):
        backends.from_spec("simulator --ncpu=x")
    help_text = backends.help_text("aggregate")
    for word in ("--strategy=spread|binpack|random", "constraint:", "affinity:", "com.docker.swarm.constraints"):
        assert word in help_text


def bind(port: str, host_ip: str = "", proto: str = "tcp") -> dict:
    return {"HostConfig": {"PortBindings": {f"80/{proto}": [{"HostIp": host_ip, "HostPort": port}]}}}


async def test_the_port_filter_leaves_out_children_holding_the_host_port():
    agg = backends.from_spec("aggregate --strategy=binpack simulator simulator")
    with trio.fail_after(10):
        async with libswarm.open_service(agg) as (a, _):
            await run(a, "web1", ("sleep", "100"), start=True, **bind("8080"))
            assert where(agg, "web1") == [0]
            await run(a, "web2", ("sleep", "100"), start=True, **bind("8080"))
            assert where(agg, "web2") == [1]  # binpack would fill child 0
            await run(a, "other", ("sleep", "100"), start=True, **bind("8081"))
            await run(a, "udp", ("sleep", "100"), start=True, **bind("8080", proto="udp"))
            await run(a, "free", **bind(""))  # the engine's choice: no filter
            assert [where(agg, n) for n in ("other", "udp", "free")] == [[0], [0], [0]]
            with pytest.raises(RemoteError, match=r"unable to find a node that satisfies the following "
                                                  r"conditions \[port: 127.0.0.1:8080/tcp\]"):
                await run(a, "web3", **bind("8080", host_ip="127.0.0.1"))  # 0.0.0.0 holds every address
            # a stopped container holds no port
            h = await a.child("web1")
            await h.stop()
            await run(a, "web4", ("sleep", "100"), start=True, **bind("8080"))
            assert where(agg, "web4") == [0]
