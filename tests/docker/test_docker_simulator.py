"""The real docker CLI against ``dockerserver -> simulator`` (no engine installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import trio
import trustme

from docker_helpers import DOCKER_CLI, DOCKER_CLIS, Docker, docker_front, need, raw_http
from libswarm.backends.aggregate import Aggregate
from libswarm.backends.dockerserver import frame, human_duration, parse_time, status_for
from libswarm.backends.simulator import Simulator

pytestmark = pytest.mark.slow  # the real docker CLI against swarmd

IMAGE = "busybox"


@pytest.fixture(params=DOCKER_CLIS or [None], ids=lambda cli: cli or "no-cli")
async def docker(tmp_path, request):
    """The docker CLI (each one installed: see docker_helpers.DOCKER_CLIS) on
    ``dockerserver -> simulator``."""
    need(request.param is not None, "the docker CLI is not on PATH")
    sock = str(tmp_path / "swarm.sock")
    async with docker_front(f"unix://{sock}", Simulator()):
        d = Docker(f"unix://{sock}", cli=request.param)
        d.sock = sock
        yield d


async def test_version_info_ping(docker):
    out = await docker.ok("version")
    assert "API version:       1.41" in out and "Engine:" in out
    out = await docker.ok("info")
    assert "Containers: 0" in out and "Storage Driver: simulator" in out
    status, headers, body = await raw_http(docker.sock, b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert (status, body, headers["api-version"]) == (200, b"OK", "1.41")


async def test_run_output_status_and_streams(docker):
    assert await docker.ok("run", "--rm", IMAGE, "echo", "hi") == "hi\n"
    p = await docker("run", "--rm", IMAGE, "sh", "-c", "exit 3")
    assert p.returncode == 3
    p = await docker("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (p.returncode, p.stdout, p.stderr) == (4, b"out\n", b"err\n")
    assert (await docker("run", "--rm", IMAGE, "false")).returncode == 1
    assert (await docker("run", "--rm", IMAGE, "true")).returncode == 0
    # --rm removed them all
    assert await docker.ok("ps", "-a", "-q") == ""


async def test_run_stdin(docker):
    assert await docker.ok("run", "-i", "--rm", IMAGE, "cat", stdin=b"hi\n") == "hi\n"
    big = b"".join(b"line %d\n" % i for i in range(5000))
    assert (await docker.ok("run", "-i", "--rm", IMAGE, "cat", stdin=big)).encode() == big


async def test_command_not_found(docker):
    p = await docker("run", "--rm", IMAGE, "nosuchcmd")
    assert p.returncode == 127
    assert b'exec: "nosuchcmd": executable file not found in $PATH' in p.stderr
    assert await docker.ok("ps", "-a", "-q") == ""


async def test_detached_ps_logs_kill_wait_rm(docker):
    cid = (await docker.ok("run", "-d", "--name", "web", "-e", "A=B", IMAGE, "sleep", "100")).strip()
    assert len(cid) == 64
    ps = await docker.ok("ps")
    assert "web" in ps and '"sleep 100"' in ps and "Up " in ps
    assert (await docker.ok("ps", "-q")).strip() == cid[:12]
    data = json.loads(await docker.ok("inspect", "web"))[0]
    assert data["Id"] == cid and data["Name"] == "/web" and data["State"]["Running"] is True
    assert "A=B" in data["Config"]["Env"]
    p = await docker("rm", "web")
    assert p.returncode == 1 and b"container is running" in p.stderr
    assert await docker.ok("kill", "web") == "web\n"
    assert await docker.ok("wait", "web") == "137\n"
    assert await docker.ok("ps", "-q") == ""
    assert "Exited (137)" in await docker.ok("ps", "-a")
    p = await docker("kill", "web")
    assert p.returncode == 1 and b"is not running" in p.stderr
    assert await docker.ok("rm", "web") == "web\n"
    assert await docker.ok("ps", "-a", "-q") == ""


async def test_kill_signal_and_stop(docker):
    await docker.ok("run", "-d", "--name", "s1", IMAGE, "sleep", "100")
    await docker.ok("kill", "-s", "TERM", "s1")
    assert await docker.ok("wait", "s1") == "143\n"
    await docker.ok("start", "s1")
    assert await docker.ok("stop", "s1") == "s1\n"
    assert json.loads(await docker.ok("inspect", "s1"))[0]["State"]["ExitCode"] == 137
    assert await docker.ok("stop", "s1") == "s1\n"  # already stopped: 304, like Docker
    await docker.ok("rm", "-f", "s1")


async def test_logs(docker):
    await docker.ok("run", "--name", "l1", IMAGE, "sh", "-c", "echo one; echo two >&2; echo three")
    p = await docker("logs", "l1")
    assert (p.returncode, p.stdout, p.stderr) == (0, b"one\nthree\n", b"two\n")
    p = await docker("logs", "--tail", "2", "l1")
    assert (p.stdout, p.stderr) == (b"three\n", b"two\n")
    p = await docker("logs", "-f", "l1")  # exited: returns at once
    assert p.stdout == b"one\nthree\n"
    await docker.ok("run", "-d", "--name", "l2", IMAGE, "sh", "-c", "echo a; sleep 1; echo b >&2; exit 2")
    p = await docker("logs", "-f", "l2")
    assert (p.returncode, p.stdout, p.stderr) == (0, b"a\n", b"b\n")
    await docker.ok("run", "-d", "--name", "l3", IMAGE, "sh", "-c", "echo a; echo b; sleep 1; echo c")
    await trio.sleep(0.3)
    assert await docker.ok("logs", "-f", "--tail", "1", "l3") == "b\nc\n"
    await docker.ok("rm", "-f", "l1", "l2", "l3")


async def test_create_start_attach(docker):
    cid = (await docker.ok("create", "--name", "c1", IMAGE, "echo", "created")).strip()
    assert "Created" in await docker.ok("ps", "-a")
    assert await docker.ok("start", "c1") == "c1\n"
    assert await docker.ok("wait", cid) == "0\n"
    assert await docker.ok("logs", "c1") == "created\n"
    assert await docker.ok("start", "-a", "c1") == "created\n"  # attach to a stopped container: its next run
    await docker.ok("create", "-i", "--name", "c2", IMAGE, "cat")
    assert await docker.ok("start", "-ai", "c2", stdin=b"through start\n") == "through start\n"
    await docker.ok("run", "-d", "--name", "c3", IMAGE, "sh", "-c", "sleep 1; echo out; echo err >&2; exit 3")
    p = await docker("attach", "c3")
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
    await docker.ok("rm", "c1", "c2", "c3")


async def test_attach_stdin_live(docker):
    await docker.ok("run", "-d", "-i", "--name", "a1", IMAGE, "cat")
    argv = [docker.cli, "-H", docker.host, "attach", "--sig-proxy=false", "a1"]
    proc = await trio.lowlevel.open_process(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=docker.env)
    try:
        with trio.fail_after(10):
            await proc.stdin.send_all(b"ping\n")
            got = b""
            while b"ping\n" not in got:
                got += await proc.stdout.receive_some(100)
        await docker.ok("kill", "a1")
        with trio.fail_after(10):
            assert await proc.wait() == 137
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    await docker.ok("rm", "a1")


async def test_errors(docker):
    for args in (["inspect", "--type", "container", "nope"], ["rm", "nope"], ["stop", "nope"], ["kill", "nope"],
                 ["logs", "nope"], ["wait", "nope"], ["start", "nope"]):
        p = await docker(*args)
        assert p.returncode != 0, args
        assert b"No such container: nope" in p.stderr, (args, p.stderr)
    await docker.ok("create", "--name", "dup", IMAGE, "true")
    p = await docker("create", "--name", "dup", IMAGE, "true")
    assert p.returncode == 1 and b'Conflict. The name "/dup" is already in use' in p.stderr
    # raw HTTP: Docker's status codes and {"message": ...}
    for request, status, text in [
        (b"GET /v1.41/containers/nope/json", 404, "No such container: nope"),
        (b"POST /v1.41/containers/dup/kill", 409, "is not running"),
        (b"GET /v1.99/version", 400, "client version 1.99 is too new"),
        (b"GET /v1.41/nothing/here", 404, "page not found"),
        (b"POST /v1.41/build", 501, "libswarm dockerserver does not implement POST /build"),
        (b"POST /v1.41/containers/dup/update", 501, "does not implement POST /containers/dup/update"),
        (b"GET /v1.41/system/df", 501, "does not implement GET /system/df"),
        (b"PUT /v1.41/containers/create", 501, "does not implement PUT /containers/create"),
    ]:
        st, headers, body = await raw_http(docker.sock, request + b" HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        assert st == status and headers["content-type"] == "application/json", (request, st)
        assert text in json.loads(body)["message"]
    # the CLI says it plainly too
    p = await docker("diff", "dup")
    assert p.returncode == 1 and b"libswarm dockerserver does not implement GET /containers/dup/changes" in p.stderr
    st, _, body = await raw_http(docker.sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 8\r\n"
                                              b"Connection: close\r\n\r\n{broken}")
    assert st == 400 and "invalid JSON" in json.loads(body)["message"]
    await docker.ok("rm", "dup")


async def test_many_names_ps_order(docker):
    for n in ("n1", "n2", "n3"):
        await docker.ok("run", "--name", n, IMAGE, "true")
    names = (await docker.ok("ps", "-a", "--format", "{{.Names}}")).split()
    assert names == ["n3", "n2", "n1"]
    assert (await docker.ok("ps", "-a", "--filter", "name=n2", "--format", "{{.Names}}")).split() == ["n2"]
    await docker.ok("rm", "n1", "n2", "n3")


async def test_tcp_and_tls(tmp_path):
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    async with docker_front("tcp://127.0.0.1:0", Simulator()) as front:
        d = Docker(front.addresses[0])
        assert await d.ok("run", "--rm", IMAGE, "echo", "over tcp") == "over tcp\n"
        assert await d.ok("run", "-i", "--rm", IMAGE, "cat", stdin=b"tcp stdin\n") == "tcp stdin\n"
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client@example.org")
    files = {}
    for name, blob in [("ca.pem", ca.cert_pem), ("server-cert.pem", server_cert.cert_chain_pems[0]),
                       ("server-key.pem", server_cert.private_key_pem), ("cert.pem", client_cert.cert_chain_pems[0]),
                       ("key.pem", client_cert.private_key_pem)]:
        path = tmp_path / name
        blob.write_to_path(str(path))
        files[name] = str(path)
    args = [f"--tlscert={files['server-cert.pem']}", f"--tlskey={files['server-key.pem']}", "--tlsverify",
            f"--tlscacert={files['ca.pem']}"]
    async with docker_front("tcp://127.0.0.1:0", Simulator(), server_args=args) as front:
        d = Docker(front.addresses[0], ["--tlsverify", f"--tlscacert={files['ca.pem']}",
                                        f"--tlscert={files['cert.pem']}", f"--tlskey={files['key.pem']}"])
        assert "1.41" in await d.ok("version")
        assert await d.ok("run", "--rm", IMAGE, "sh", "-c", "echo over tls") == "over tls\n"
        p = await d("run", "--rm", IMAGE, "sh", "-c", "exit 5")
        assert p.returncode == 5
        assert await d.ok("run", "-i", "--rm", IMAGE, "cat", stdin=b"tls stdin\n") == "tls stdin\n"
        # without a client certificate the handshake is refused
        anon = Docker(front.addresses[0], ["--tls", f"--tlscacert={files['ca.pem']}"])
        assert (await anon("version")).returncode != 0


async def test_swarmd_command_line(tmp_path):
    """The README's command: ``swarmd 'dockerserver unix:///...' simulator``."""
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    try:
        import libswarm.swarmd  # noqa: F401  (written concurrently; may not exist yet)
    except ImportError:
        need(False, "libswarm.swarmd is not there")
    sock = str(tmp_path / "swarm.sock")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "libswarm.swarmd", f"dockerserver unix://{sock}", "simulator"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with trio.fail_after(10):
            while not os.path.exists(sock):
                await trio.sleep(0.05)
        d = Docker(f"unix://{sock}")
        assert await d.ok("run", "--rm", IMAGE, "echo", "hi") == "hi\n"
        assert (await d("run", "--rm", IMAGE, "sh", "-c", "exit 3")).returncode == 3
    finally:
        proc.terminate()
        with trio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_aggregate_label_names(tmp_path):
    """``dockerserver -> aggregate simulator simulator``: references with ``/`` (``LABEL/name``) in
    create, the container endpoints and ps; the plain simulator refuses such a name itself."""
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    sock = str(tmp_path / "agg.sock")
    async with docker_front(f"unix://{sock}", Aggregate("simulator", "simulator")):
        d = Docker(f"unix://{sock}")
        zero = (await d.ok("create", "--name", "0/web", IMAGE, "sh", "-c", "echo zero; sleep 100")).strip()
        one = (await d.ok("create", "--name", "1/web", IMAGE, "echo", "one")).strip()
        names = (await d.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}")).splitlines()
        assert sorted(names) == sorted([f"{zero} 0/web", f"{one} 1/web"])
        assert await d.ok("start", "0/web", "1/web") == "0/web\n1/web\n"
        assert await d.ok("wait", "1/web") == "0\n"
        assert await d.ok("logs", "0/web") == "zero\n" and await d.ok("logs", "1/web") == "one\n"
        assert json.loads(await d.ok("inspect", "0/web"))[0]["Id"] == zero
        assert await d.ok("kill", "0/web") == "0/web\n"
        assert await d.ok("rm", "0/web") == "0/web\n"
        assert (await d.ok("ps", "-a", "--format", "{{.Names}}")).split() == ["web"]
        p = await d("logs", "0/web")
        assert p.returncode == 1 and b"No such container: 0/web" in p.stderr, p.stderr
        for bad in ("0/", "0//web", "/0/w", "0/web!"):
            p = await d("create", "--name", bad, IMAGE, "true")
            assert p.returncode == 1 and b"Invalid container name" in p.stderr, (bad, p.stderr)
        await d.ok("rm", "web")
    async with docker_front(f"unix://{sock}", Simulator()):
        p = await Docker(f"unix://{sock}")("create", "--name", "0/web", IMAGE, "true")
        assert p.returncode == 1 and b"Invalid container name (0/web)" in p.stderr, p.stderr


@pytest.mark.parametrize("cli", DOCKER_CLIS or [None], ids=lambda cli: cli or "no-cli")
async def test_an_unreachable_engine_is_a_500_with_its_cause_not_a_missing_image(tmp_path, cli):
    """dockerclient in front of an engine socket that is not there: `docker run` prints the
    real cause at once and does not try to pull (a 404 would make it pull), as `docker ps` does."""
    from libswarm.backends.dockerclient import DockerClient

    need(cli is not None, "the docker CLI is not on PATH")
    sock = str(tmp_path / "swarm.sock")
    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{tmp_path}/no-engine.sock")):
        d = Docker(f"unix://{sock}", cli=cli)
        for args in (["run", "--rm", IMAGE, "true"], ["ps"], ["create", IMAGE, "true"]):
            p = await d(*args)
            assert p.returncode != 0, args
            assert b"cannot connect to the Docker engine" in p.stderr, (args, p.stderr)
            assert b"Unable to find image" not in p.stderr and b"page not found" not in p.stderr, p.stderr


def test_helpers():
    assert frame("stdout", b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame("stderr", b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert [status_for(t) for t in ("No such container: x", 'Conflict. The name "/x" is already in use',
                                    "Container x is not running", "boom")] == [404, 409, 409, 500]
    # an engine that cannot be reached is not a missing image (the CLI would try to pull)
    assert status_for("dockerclient: cannot connect to unix:///var/run/docker.sock:"
                      " [Errno 2] No such file or directory") == 500
    assert [status_for(t) for t in ("No such image: busybox:latest", "no such exec instance: 12",
                                    "Error: No such object: x")] == [404, 404, 404]
    assert human_duration(0.2) == "Less than a second" and human_duration(90) == "About a minute"
    assert parse_time("1970-01-01T00:00:01.500000000Z") == 1.5 and parse_time("0001-01-01T00:00:00Z") == 0
