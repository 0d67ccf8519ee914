"""The docker CLI through ``dockerserver -> swarmmode -> a single-node Swarm mode manager``.

A private dockerd (tests/docker_helpers.py) becomes a one-node swarm (``docker swarm init
--advertise-addr 127.0.0.1``); each container is a service with one task.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time

import pytest
import trio

from docker_helpers import DOCKER_CLIS, IMAGE, Docker, docker_front, free_port, need, private_dockerd
from libswarm.backends.swarmmode import SwarmMode, restart_policy, service_spec, stopped_label, swarm_constraint

pytestmark = pytest.mark.slow  # a private dockerd in swarm mode


def test_service_spec_mapping():
    spec = service_spec({"name": "web", "Image": "busybox", "Cmd": ["sleep", "9"], "Entrypoint": ["/bin/sh"],
                         "Env": ["A=1", "constraint:node==c", "constraint:zone!=b"], "Labels": {"x": "y"},
                         "WorkingDir": "/tmp", "User": "nobody",
                         "HostConfig": {"NanoCpus": 500_000_000, "Memory": 1 << 26, "MemoryReservation": 1 << 20}})
    cs = spec["TaskTemplate"]["ContainerSpec"]
    assert spec["Name"] == "web" and spec["Mode"] == {"Replicated": {"Replicas": 1}}
    assert cs["Command"] == ["/bin/sh"] and cs["Args"] == ["sleep", "9"] and cs["Env"] == ["A=1"]
    assert cs["Dir"] == "/tmp" and cs["User"] == "nobody" and cs["Labels"]["x"] == "y"
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.hostname==c", "node.labels.zone!=b"]
    assert spec["TaskTemplate"]["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 1 << 26},
                                                 "Reservations": {"MemoryBytes": 1 << 20}}
    assert service_spec({"Image": "b", "AttachStdout": True})["Mode"]["ReplicatedJob"]["TotalCompletions"] == 1
    assert swarm_constraint("node.role==manager") == "node.role==manager"
    # docker run --restart: none by default; only a task with a condition survives its node
    assert spec["TaskTemplate"]["RestartPolicy"] == {"Condition": "none"}
    assert restart_policy({"RestartPolicy": {"Name": "always"}}) == {"Condition": "any"}
    assert restart_policy({"RestartPolicy": {"Name": "unless-stopped"}}) == {"Condition": "any"}
    assert restart_policy({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}) == \
        {"Condition": "on-failure", "MaxAttempts": 2}
    assert restart_policy({"RestartPolicy": {"Name": "on-failure"}}) == {"Condition": "on-failure"}
    assert restart_policy({"RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}) == {"Condition": "none"}
    with pytest.raises(Exception, match="invalid restart policy"):
        restart_policy({"RestartPolicy": {"Name": "sometimes"}})
    with pytest.raises(Exception, match="no stdin and no terminal"):
        service_spec({"Image": "b", "OpenStdin": True})


def test_the_stopped_label_never_keeps_the_zero_time():
    """How a stopped service ended, as kept in its label: its inspect's end time, or,
    when the swarm had already removed the task (inspect knows no end: the zero time,
    a race seen in CI), the time it was seen gone -- never the zero time, which ps and
    inspect would show as never started."""
    seen = json.loads(stopped_label({"Status": "exited", "ExitCode": 137, "FinishedAt": "2026-12-07T10:00:00.5Z"}))
    assert seen == {"ExitCode": 137, "FinishedAt": "2026-12-07T10:00:00.5Z"}
    for missing in ("0001-01-01T00:00:00Z", "", None):
        before = time.time()
        got = json.loads(stopped_label({"Status": "exited", "ExitCode": 137, "FinishedAt": missing}))
        assert got["ExitCode"] == 137 and not got["FinishedAt"].startswith("0001")
        when = datetime.datetime.fromisoformat(got["FinishedAt"].replace("Z", "+00:00")).timestamp()
        assert before - 1 <= when <= time.time() + 1


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as d:
        yield d


async def test_docker_cli_through_swarmmode(dockerd, tmp_path):
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    async with docker_front(f"unix://{sock}", SwarmMode(f"unix://{dockerd.sock}")):
        docker = Docker(f"unix://{sock}", cli=DOCKER_CLIS[0])
        # not a manager yet: the manager's words, HTTP 503
        r = await docker("run", "--rm", IMAGE, "true", timeout=30)
        assert r.returncode == 125 and "not a swarm manager" in r.stderr.decode(), r.stderr.decode()
        init = subprocess.run(dockerd.cli + ["swarm", "init", "--advertise-addr", "127.0.0.1",
                               "--listen-addr", f"127.0.0.1:{free_port()}"],
                              capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        hostname = subprocess.run(dockerd.cli + ["info", "--format", "{{.Name}}"], capture_output=True,
                                  text=True, timeout=30).stdout.strip()
        # a foreground run: a replicated job; output from the service logs, the task's exit status
        t = time.monotonic()
        r = await docker("run", "--rm", IMAGE, "sh", "-c", "echo hi; echo oops >&2; exit 3", timeout=60)
        took = time.monotonic() - t
        assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == (3, "hi\n", "oops\n"), (r, took)
        assert "Swarm" not in subprocess.run(dockerd.cli + ["service", "ls", "-q"], capture_output=True,
                                             text=True, timeout=30).stdout  # --rm removed the service
        # -i/-t refused
        r = await docker("run", "-i", "--rm", IMAGE, "cat", timeout=30)
        assert r.returncode == 125 and "no stdin and no terminal" in r.stderr.decode()
        # a detached run: a service; -e, -w, --label carried over; ps and inspect show the node
        sid = (await docker.ok("run", "-d", "--name", "web", "-e", "A=1", "-w", "/tmp", "--label", "k=v",
                               "--memory", "64m", IMAGE, "sh", "-c", "echo up; exec sleep 300", timeout=60)).strip()
        service = json.loads(subprocess.run(dockerd.cli + ["service", "inspect", "web"], capture_output=True,
                                            text=True, timeout=30).stdout)[0]
        assert service["ID"] == sid
        cs = service["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert cs["Env"] == ["A=1"] and cs["Dir"] == "/tmp" and cs["Labels"]["k"] == "v"
        assert service["Spec"]["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 64 << 20
        deadline = time.monotonic() + 20
        while "Up" not in await docker.ok("ps", "--format", "{{.Names}} {{.Status}}"):
            assert time.monotonic() < deadline
            time.sleep(0.25)
        assert (await docker.ok("ps", "--format", "{{.Names}} {{.Label \"com.docker.swarm.node\"}}")).split() == \
            ["web", hostname]
        info = json.loads(await docker.ok("inspect", "web"))[0]
        assert info["Node"]["Name"] == hostname and info["State"]["Running"]
        # Attach by task id and by container id
        task = info["Swarm"]["TaskID"]
        cid = info["Swarm"]["ContainerID"]
        assert (await docker.ok("inspect", "--format", "{{.Id}}", task)).strip() == sid
        assert (await docker.ok("inspect", "--format", "{{.Id}}", cid[:12])).strip() == sid
        assert (await docker.ok("logs", "web", timeout=30)) == "up\n"
        # a constraint no node satisfies: the swarm's words
        r = await docker("run", "-d", "-e", "constraint:node==elsewhere", IMAGE, "true", timeout=60)
        assert r.returncode == 125 and "no suitable node" in r.stderr.decode(), r.stderr.decode()
        # stop, rm, and the errors of a removed service
        r = await docker("rm", "web")
        assert r.returncode == 1 and "cannot remove a running container" in r.stderr.decode()
        await docker.ok("stop", "-t", "1", "web", timeout=60)
        assert "Exited" in await docker.ok("ps", "-a", "--format", "{{.Status}}")
        # the swarm removes the task of a slot scaled away soon after it stopped: the
        # service still shows how it ended (it showed "Created" once the task was gone)
        deadline = time.monotonic() + 30
        while subprocess.run(dockerd.cli + ["service", "ps", "-q", "web"], capture_output=True, text=True,
                             timeout=30).stdout.strip():
            assert time.monotonic() < deadline, "the swarm kept the stopped task"
            await trio.sleep(0.25)
        assert (await docker.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}")).strip() == "web Exited (137)"
        state = json.loads(await docker.ok("inspect", "web"))[0]["State"]
        assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 137)
        assert not state["FinishedAt"].startswith("0001")
        await docker.ok("rm", "web")
        r = await docker("rm", "web")
        assert r.returncode == 1 and "No such container: web" in r.stderr.decode()
