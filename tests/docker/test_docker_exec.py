"""``docker exec`` through dockerserver, the real docker CLI: on the simulator and on a real
dockerd behind dockerclient, the same commands and the same answers (spec/DOCKER.md 1.2,
spec/LIBSWARM.md 6.3)."""

from __future__ import annotations

import json

import pytest

from docker_helpers import DOCKER_CLIS, IMAGE, Docker, docker_front, need, private_dockerd, raw_http
from libswarm.backends.aggregate import Aggregate
from libswarm.backends.dockerclient import DockerClient
from libswarm.backends.simulator import Simulator

pytestmark = pytest.mark.slow  # the real docker CLI (and a private dockerd)


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as d:
        yield d


@pytest.fixture(params=["simulator", "dockerclient", "aggregate"])
async def front(request, tmp_path):
    """``(Docker, socket path)`` on ``dockerserver -> simulator`` or ``-> dockerclient -> dockerd``."""
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    if request.param == "simulator":
        backend = Simulator()
    elif request.param == "aggregate":  # the exec goes to the child that has the container
        backend = Aggregate("simulator", f"dockerclient unix://{request.getfixturevalue('dockerd').sock}")
    else:
        backend = DockerClient(f"unix://{request.getfixturevalue('dockerd').sock}")
    async with docker_front(f"unix://{sock}", backend):
        yield Docker(f"unix://{sock}"), sock


async def test_exec_output_status_stdin(front):
    d, sock = front
    await d.ok("run", "-d", "--name", "ex1", "--network", "none", IMAGE, "sleep", "300")
    try:
        p = await d("exec", "ex1", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
        assert await d.ok("exec", "ex1", "echo", "hi") == "hi\n"
        assert await d.ok("exec", "-i", "ex1", "cat", stdin=b"through exec\n") == "through exec\n"
        assert await d.ok("exec", "-e", "A=B", "-u", "0", "-w", "/", "ex1", "true") == ""
        assert await d.ok("exec", "-d", "ex1", "sleep", "1") == ""
        p = await d("exec", "ex1", "nosuchcmd")
        assert p.returncode == 126 and b'exec: "nosuchcmd": executable file not found in $PATH' in p.stdout + p.stderr
        p = await d("exec", "nope", "true")
        assert p.returncode == 1 and b"No such container: nope" in p.stderr
        await d.ok("create", "--name", "ex2", "--network", "none", IMAGE, "true")
        p = await d("exec", "ex2", "true")
        assert p.returncode == 1 and b"is not running" in p.stderr
        # raw HTTP: create, inspect (exit code), unknown ids
        st, _, body = await raw_http(sock, b"POST /v1.41/containers/ex1/exec HTTP/1.1\r\nHost: d\r\n"
                                           b"Content-Type: application/json\r\nContent-Length: 44\r\n"
                                           b"Connection: close\r\n\r\n" + b'{"Cmd": ["true"], "AttachStdout": true}     ')
        assert st == 201
        eid = json.loads(body)["Id"]
        st, _, body = await raw_http(sock, f"GET /v1.41/exec/{eid}/json HTTP/1.1\r\nHost: d\r\n"
                                           "Connection: close\r\n\r\n".encode())
        data = json.loads(body)
        assert st == 200 and data["ID"] == eid and data["Running"] is False and data["ExitCode"] is None
        assert data["ProcessConfig"]["entrypoint"] == "true"
        st, _, body = await raw_http(sock, b"GET /v1.41/exec/nope/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        assert st == 404 and json.loads(body)["message"] == "No such exec instance: nope"
    finally:
        await d("rm", "-f", "ex1", "ex2")
