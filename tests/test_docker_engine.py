"""``dockerclient`` against a real dockerd that this module starts, and the docker CLI
through ``dockerserver -> dockerclient -> dockerd``.

Needs root, ``dockerd`` (Debian docker.io) and ``/bin/busybox`` (busybox-static): see
scripts/run-tests.sh. The daemon runs without networking changes (``--iptables=false
--bridge=none --storage-driver=vfs``) on a private socket and data root; the image is
imported from busybox-static (no registry).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import trio

import libswarm
from docker_helpers import DOCKER_CLI, Docker, docker_front, need
from libswarm.backends.dockerclient import DockerClient

IMAGE = "local/busybox"


def _unmount_under(root: str) -> None:
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for p in sorted((p for p in points if p.startswith(root)), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], check=False, capture_output=True)


@pytest.fixture(scope="module")
def dockerd():
    """A private dockerd; yields its unix socket path."""
    need(shutil.which("dockerd") is not None, "dockerd is not installed (apt-get install docker.io)")
    need(os.path.exists("/bin/busybox"), "/bin/busybox is missing (apt-get install busybox-static)")
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    need(os.geteuid() == 0, "dockerd needs root")
    root = tempfile.mkdtemp(prefix="swarm-dockerd-")
    sock = os.path.join(root, "docker.sock")
    log = open(os.path.join(root, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
         "--host", f"unix://{sock}", "--data-root", f"{root}/root", "--exec-root", f"{root}/exec",
         "--pidfile", f"{root}/pid"], stdout=log, stderr=subprocess.STDOUT)
    cli = [DOCKER_CLI, "-H", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(cli + ["version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dockerd did not start: " + open(os.path.join(root, "dockerd.log")).read()[-2000:])
            time.sleep(0.2)
        rootfs = os.path.join(root, "rootfs")
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
        for a in applets:
            if a != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", a))
        tar = os.path.join(root, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        subprocess.run(cli + ["import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV PATH=/bin", tar, IMAGE + ":latest"],
                       check=True, capture_output=True)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(root)  # the nsfs mount dockerd leaves at exec/netns/default
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def engine(dockerd):
    """A libswarm Client on ``dockerclient unix://<dockerd>``."""
    async with libswarm.open_service(DockerClient(f"unix://{dockerd}")) as (client, _):
        client.timeout = 30
        yield client


@pytest.fixture
async def docker(dockerd, tmp_path):
    """The docker CLI on ``dockerserver -> dockerclient -> dockerd``."""
    sock = str(tmp_path / "front.sock")
    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{dockerd}")):
        yield Docker(f"unix://{sock}")


# -- dockerclient through the libswarm API ---------------------------------------


async def test_client_spawn_attach_stdio(engine):
    body = {"Image": IMAGE, "Cmd": ["sh", "-c", "cat; echo err >&2; exit 7"], "OpenStdin": True,
            "StdinOnce": True, "AttachStdin": True, "name": "lib-1"}
    c = await engine.spawn(json.dumps(body))
    try:
        assert "lib-1" in await engine.ls()
        data = json.loads(await c.get())
        assert data["Name"] == "/lib-1" and data["State"]["Status"] == "created"
        handle, output = await c.attach("")
        events = await c.watch()
        await c.start()
        await handle.log("stdin", b"to stdin\n")
        await handle.aclose()
        got: dict[str, bytes] = {}
        with trio.fail_after(20):
            async for m in output:
                got[m.args[0]] = got.get(m.args[0], b"") + m.args[1]
            assert got == {"stdout": b"to stdin\n", "stderr": b"err\n"}
            async for m in events:
                if m.args[0] == "die":
                    assert json.loads(m.args[1])["State"]["ExitCode"] == 7
                    break
        await events.aclose()
        assert await c.get("stdout") == b"to stdin\n"
        assert await c.get("stderr") == b"err\n"
        same = await engine.child("lib-1")
        assert json.loads(await same.get())["Id"] == data["Id"]
    finally:
        await c.stop("rm", "force")
    assert "lib-1" not in await engine.ls()


async def test_client_errors_carry_engine_message(engine):
    with pytest.raises(libswarm.RemoteError, match="No such container: nope"):
        await engine.child("nope")
    await engine.spawn(json.dumps({"Image": IMAGE, "Cmd": ["true"], "name": "lib-dup"}))
    try:
        with pytest.raises(libswarm.RemoteError, match='Conflict. The container name "/lib-dup" is already in use'):
            await engine.spawn(json.dumps({"Image": IMAGE, "Cmd": ["true"], "name": "lib-dup"}))
        c = await engine.child("lib-dup")
        with pytest.raises(libswarm.RemoteError, match="is not running"):
            await c.stop("signal=KILL")
    finally:
        await (await engine.child("lib-dup")).stop("rm")
    # a missing image: one pull attempt (no registry here), the engine's error comes back
    with pytest.raises(libswarm.RemoteError) as info:
        await engine.spawn(json.dumps({"Image": "local/does-not-exist:1", "Cmd": ["true"]}))
    text = info.value.text  # the engine's own words (no registry here: a lookup/pull failure)
    assert any(w in text for w in ("registry", "does-not-exist", "pull access denied", "no such host")), text


async def test_client_negotiates_current_api(engine, dockerd):
    version = json.loads(await engine.get("version"))
    info = json.loads(await engine.get())
    assert info["ServerVersion"] == version["Version"]
    # the paths use the engine's own API version, not a pinned one
    from libswarm.backends.dockerclient import _HTTP
    http = _HTTP(f"unix://{dockerd}", None)
    assert await http._prefix() == "/v" + version["ApiVersion"]


# -- the docker CLI through dockerserver -> dockerclient -> dockerd ----------------


async def test_cli_version_info_run(docker):
    assert "Engine:" in await docker.ok("version")
    assert "Server Version: 20.10" in await docker.ok("info")
    assert await docker.ok("run", "--rm", IMAGE, "echo", "hi") == "hi\n"
    assert (await docker("run", "--rm", IMAGE, "sh", "-c", "exit 3")).returncode == 3
    p = await docker("run", "--rm", "-e", "A=B", IMAGE, "sh", "-c", "echo $A; echo err >&2; exit 4")
    assert (p.returncode, p.stdout, p.stderr) == (4, b"B\n", b"err\n")
    assert await docker.ok("run", "-i", "--rm", IMAGE, "cat", stdin=b"hi\n") == "hi\n"
    p = await docker("run", "--rm", IMAGE, "nosuchcmd")
    assert p.returncode == 127 and b"executable file not found" in p.stderr


async def test_cli_lifecycle(docker):
    cid = (await docker.ok("run", "-d", "--name", "eng-web", IMAGE, "sh", "-c", "echo started; sleep 100")).strip()
    try:
        assert "eng-web" in await docker.ok("ps")
        data = json.loads(await docker.ok("inspect", "eng-web"))[0]
        assert data["Id"] == cid and data["State"]["Running"] is True
        p = await docker("rm", "eng-web")
        assert p.returncode == 1 and b"force remove" in p.stderr  # the engine's own words
        await docker.ok("kill", "eng-web")
        assert await docker.ok("wait", "eng-web") == "137\n"
        assert await docker.ok("logs", "eng-web") == "started\n"
        assert "Exited (137)" in await docker.ok("ps", "-a")
        await docker.ok("start", "eng-web")
        await docker.ok("stop", "-t", "1", "eng-web")
    finally:
        await docker.ok("rm", "-f", "eng-web")
    p = await docker("inspect", "--type", "container", "eng-web")
    assert p.returncode == 1 and b"No such container: eng-web" in p.stderr


async def test_cli_create_start_logs_attach(docker):
    try:
        await docker.ok("create", "--name", "eng-c1", IMAGE, "sh", "-c", "echo one; echo two >&2; echo three")
        await docker.ok("start", "eng-c1")
        assert await docker.ok("wait", "eng-c1") == "0\n"
        p = await docker("logs", "eng-c1")
        assert (p.stdout, p.stderr) == (b"one\nthree\n", b"two\n")
        p = await docker("logs", "--tail", "1", "eng-c1")  # the engine orders the two streams itself
        assert p.returncode == 0 and len((p.stdout + p.stderr).splitlines()) == 1
        await docker.ok("run", "-d", "--name", "eng-c2", IMAGE, "sh", "-c", "echo a; sleep 1; echo b >&2; exit 2")
        p = await docker("logs", "-f", "eng-c2")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"a\n", b"b\n")
        await docker.ok("run", "-d", "--name", "eng-c3", IMAGE, "sh", "-c", "sleep 1; echo out; echo err >&2; exit 3")
        p = await docker("attach", "eng-c3")
        assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
        await docker.ok("create", "-i", "--name", "eng-c4", IMAGE, "cat")
        assert await docker.ok("start", "-ai", "eng-c4", stdin=b"through start\n") == "through start\n"
    finally:
        await docker("rm", "-f", "eng-c1", "eng-c2", "eng-c3", "eng-c4")
