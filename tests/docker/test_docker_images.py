"""``docker images``, ``image inspect``, ``pull``, ``tag``, ``rmi`` through dockerserver:
the simulator's image store, a real dockerd behind dockerclient, and an aggregate of both
(spec/DOCKER.md 1.2, spec/LIBSWARM.md 6.2). The real docker CLI, plus raw HTTP for statuses."""

from __future__ import annotations

import json

import pytest
import trio

from docker_helpers import DOCKER_CLIS, IMAGE, Docker, docker_front, need, private_dockerd, raw_http
from libswarm.backends.aggregate import Aggregate
from libswarm.backends.dockerclient import DockerClient
from libswarm.backends.simulator import Simulator

pytestmark = pytest.mark.slow  # the real docker CLI (and a private dockerd)


def _request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode()


def _table(out: str) -> list[tuple[str, str]]:
    """``docker images`` -> [(repository, tag)] (header dropped)."""
    return [tuple(line.split()[:2]) for line in out.splitlines()[1:]]  # type: ignore[misc]


@pytest.fixture(params=DOCKER_CLIS or [None], ids=lambda cli: cli or "no-cli")
async def sim(tmp_path, request):
    need(request.param is not None, "the docker CLI is not on PATH")
    sock = str(tmp_path / "swarm.sock")
    async with docker_front(f"unix://{sock}", Simulator()):
        d = Docker(f"unix://{sock}", cli=request.param)
        d.sock = sock
        yield d


async def test_simulator_image_store(sim):
    assert sorted(_table(await sim.ok("images"))) == [("alpine", "latest"), ("busybox", "latest"),
                                                      ("local/busybox", "latest")]
    assert "Images: 3" in await sim.ok("info")
    data = json.loads(await sim.ok("image", "inspect", "busybox"))[0]
    assert data["RepoTags"] == ["busybox:latest"] and data["Id"].startswith("sha256:")
    short = data["Id"][7:19]
    assert json.loads(await sim.ok("image", "inspect", short))[0]["Id"] == data["Id"]  # by id prefix
    assert json.loads(await sim.ok("image", "inspect", "docker.io/library/busybox:latest"))[0]["Id"] == data["Id"]
    # pull: any name is in the simulator's "registry"; Docker's progress lines
    out = await sim.ok("pull", "example/app:1.2")
    assert "1.2: Pulling from example/app" in out and "Status: Downloaded newer image for example/app:1.2" in out
    assert "Status: Image is up to date for busybox:latest" in await sim.ok("pull", "busybox")
    # tag, then rmi of one tag only untags; the last tag deletes
    assert await sim.ok("tag", "busybox", "mine/box:2") == ""
    table = _table(await sim.ok("images"))
    assert ("mine/box", "2") in table and ("example/app", "1.2") in table
    assert (await sim.ok("images", "-q", "mine/*")).split() == [short]
    assert await sim.ok("rmi", "mine/box:2") == "Untagged: mine/box:2\n"
    out = await sim.ok("rmi", "example/app:1.2")
    assert out.startswith("Untagged: example/app:1.2\nDeleted: sha256:")
    assert ("example/app", "1.2") not in _table(await sim.ok("images"))


async def test_simulator_image_errors_and_run_pulls(sim):
    for args in (["image", "inspect", "nope"], ["rmi", "nope"], ["tag", "nope", "x"]):
        p = await sim(*args)
        assert p.returncode == 1 and b"No such image: nope" in p.stderr, (args, p.stderr)  # 20.10 CLI: its own words
    # a run of a missing image: Docker's 404, so the CLI pulls it, then runs
    p = await sim("run", "--rm", "newimg/x:3", "echo", "hi")
    assert p.returncode == 0 and p.stdout == b"hi\n"
    assert b"Unable to find image 'newimg/x:3' locally" in p.stderr
    assert ("newimg/x", "3") in _table(await sim.ok("images"))
    assert json.loads(await sim.ok("inspect", "alpine"))[0]["RepoTags"] == ["alpine:latest"]  # container, then image
    # an image a container uses: Docker's conflict unless forced
    await sim.ok("create", "--name", "user1", "alpine", "true")
    p = await sim("rmi", "alpine")
    assert p.returncode == 1 and b'conflict: unable to remove repository reference "alpine" (must force)' in p.stderr
    assert "Deleted: sha256:" in await sim.ok("rmi", "-f", "alpine")
    cid = json.loads(await sim.ok("inspect", "user1"))[0]
    assert cid["Image"].startswith("sha256:") and cid["Config"]["Image"] == "alpine"
    await sim.ok("rm", "user1")
    # raw HTTP: statuses and Docker's words
    for request, status, text in [
        (_request("GET", "/v1.41/images/nope/json"), 404, "No such image: nope:latest"),
        (_request("DELETE", "/v1.41/images/nope"), 404, "No such image: nope:latest"),
        (_request("POST", "/v1.41/images/nope/tag?repo=x"), 404, "No such image: nope:latest"),
        (_request("POST", "/v1.41/images/busybox/tag"), 400, "repository name must have at least one component"),
        (_request("POST", "/v1.41/images/create?fromImage=Bad"), 400, "invalid reference format"),
        (_request("GET", "/v1.41/images/busybox/history"), 501, "does not implement GET /images/busybox/history"),
        (_request("GET", "/v1.41/images/search?term=x"), 501, "does not implement GET /images/search"),
        (_request("POST", "/v1.41/images/create?fromSrc=-"), 501, "docker import"),
    ]:
        st, _, body = await raw_http(sim.sock, request)
        assert (st, text in json.loads(body)["message"]) == (status, True), (request, st, body)
    st, _, body = await raw_http(sim.sock, _request("POST", "/v1.41/images/busybox/tag?repo=t1&tag=v"))
    assert st == 201
    st, _, body = await raw_http(sim.sock, _request("DELETE", "/v1.41/images/t1:v"))
    assert (st, json.loads(body)) == (200, [{"Untagged": "t1:v"}])


# -- a real engine behind dockerclient, and an aggregate of it and a simulator ----------


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as d:
        yield d


@pytest.mark.parametrize("cli", DOCKER_CLIS or [None], ids=lambda cli: cli or "no-cli")
async def test_dockerclient_images_pass_through(dockerd, tmp_path, cli):
    need(cli is not None, "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    truth = Docker(f"unix://{dockerd.sock}", cli=cli)
    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{dockerd.sock}")):
        d = Docker(f"unix://{sock}", cli=cli)
        assert ("local/busybox", "latest") in _table(await d.ok("images"))
        real = json.loads(await truth.ok("image", "inspect", IMAGE))[0]
        assert json.loads(await d.ok("image", "inspect", IMAGE))[0] == real
        assert await d.ok("tag", IMAGE, "swarm-tag:1") == ""
        assert ("swarm-tag", "1") in _table(await truth.ok("images"))  # really on the engine
        assert await d.ok("rmi", "swarm-tag:1") == "Untagged: swarm-tag:1\n"
        for args in (["image", "inspect", "nope"], ["rmi", "nope"], ["tag", "nope", "x"]):
            p = await d(*args)
            assert p.returncode == 1 and b"No such image: nope" in p.stderr, (args, p.stderr)  # 20.10 CLI: its own words
        await d.ok("create", "--name", "img-user", "--network", "none", IMAGE, "true")
        try:
            p = await d("rmi", IMAGE)
            assert p.returncode == 1 and b"conflict: unable to remove repository reference" in p.stderr
        finally:
            await d.ok("rm", "img-user")
        # pull: the engine's own answer; without a registry, its error, quickly
        with trio.fail_after(30):
            p = await d("pull", "libswarm-test/absent:1")
        assert p.returncode == 1 and b"Error response from daemon:" in p.stderr
        assert b"page not found" not in p.stderr and b"does not implement" not in p.stderr, p.stderr


async def test_aggregate_images(dockerd, tmp_path):
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "agg.sock")
    async with docker_front(f"unix://{sock}", Aggregate("simulator", f"dockerclient unix://{dockerd.sock}")):
        d = Docker(f"unix://{sock}")
        table = _table(await d.ok("images"))
        assert table.count(("local/busybox", "latest")) == 2 and ("alpine", "latest") in table  # two image ids
        await d.ok("tag", IMAGE, "agg-tag:1")  # on both children
        assert _table(await d.ok("images")).count(("agg-tag", "1")) == 2
        assert await d.ok("rmi", "agg-tag:1") == "Untagged: agg-tag:1\nUntagged: agg-tag:1\n"
        await d.ok("tag", "alpine", "only-sim:1")  # only the simulator has alpine
        assert await d.ok("rmi", "only-sim:1") == "Untagged: only-sim:1\n"
        p = await d("rmi", "nope")
        assert p.returncode == 1 and b"No such image: nope:latest" in p.stderr
        # a pull goes to every child: the engine without a registry fails, and says which child
        p = await d("pull", "libswarm-test/absent:1")
        assert p.returncode == 1 and b"child 1 (dockerclient" in p.stderr, p.stderr
