"""``dockerclient`` against a real dockerd that this module starts, and the docker CLI
through ``dockerserver -> dockerclient -> dockerd``; the same over TLS.

Needs root, ``dockerd`` (Debian docker.io) and ``/bin/busybox`` (busybox-static): see
scripts/run-tests.sh. One private daemon for the module (tests/docker_helpers.py
``private_dockerd``), without networking changes, on a private unix socket *and* on
``tcp://127.0.0.1:PORT`` with ``--tlsverify`` (certificates made by trustme: a CA, a
server certificate for 127.0.0.1, a client certificate; a second CA for the wrong ones).
The image is imported from busybox-static (no registry).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import trio

import libswarm
from docker_helpers import DOCKER_CLIS, IMAGE, Docker, docker_front, need, private_dockerd
from libswarm.backends.dockerclient import DockerClient
from swarmd_support import SWARMD, Pki, Proc

pytestmark = pytest.mark.slow  # a private dockerd and the docker CLI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("docker-pki"))


@pytest.fixture(scope="module")
def dockerd(pki):
    """A private dockerd (unix socket + TLS tcp); yields a docker_helpers.Dockerd."""
    with private_dockerd(tls=pki.dir) as d:
        yield d


@pytest.fixture
async def engine(dockerd):
    """A libswarm Client on ``dockerclient unix://<dockerd>``."""
    async with libswarm.open_service(DockerClient(f"unix://{dockerd.sock}")) as (client, _):
        client.timeout = 30
        yield client


@pytest.fixture(params=DOCKER_CLIS or [None], ids=lambda cli: cli or "no-cli")
async def docker(dockerd, tmp_path, request):
    """The docker CLI (each one installed) on ``dockerserver -> dockerclient -> dockerd``."""
    need(request.param is not None, "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{dockerd.sock}")):
        yield Docker(f"unix://{sock}", cli=request.param)


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


async def test_client_keeps_container_objects_in_use_and_a_bounded_number_more(dockerd):
    """An object per container met is kept while a handle of it is open, and at most
    ``max_idle_objects`` more (the least recently used go first); a container whose
    object went is found again by its name or its id, and one kept is asked nothing."""
    service = DockerClient(f"unix://{dockerd.sock}")
    service.max_idle_objects = 2
    names = [f"lru-{i}" for i in range(5)]
    async with libswarm.open_service(service) as (engine, _):
        engine.timeout = 30
        try:
            held = await engine.spawn(json.dumps({"Image": IMAGE, "Cmd": ["true"], "name": names[0]}))
            held_id = json.loads(await held.get())["Id"]
            ids = [held_id]
            for name in names[1:]:
                c = await engine.spawn(json.dumps({"Image": IMAGE, "Cmd": ["true"], "name": name}))
                ids.append(json.loads(await c.get())["Id"])
                await c.aclose()
                await trio.sleep(0.05)  # (its handle's task ends)
            kept = list(service._objects)
            # the one held open stays, and max_idle_objects of the others (the newest)
            assert sorted(kept) == sorted([held_id] + ids[-service.max_idle_objects :]), kept
            assert json.loads(await held.get())["Name"] == "/" + names[0]  # (still served)
            again = await engine.child(ids[1])  # forgotten: looked up again (inspect), new object
            assert json.loads(await again.get())["Name"] == "/" + names[1]
            assert ids[1] in service._objects
            for name, cid in zip(names, ids):
                c = await engine.child(name)
                assert json.loads(await c.get())["Id"] == cid
                await c.aclose()
                await trio.sleep(0.05)
            # in use: held and again; and at most max_idle_objects more
            assert len(service._objects) <= 2 + service.max_idle_objects
            assert held_id in service._objects and ids[1] in service._objects
        finally:
            for name in names:
                try:
                    await (await engine.child(name)).stop("rm", "force")
                except libswarm.RemoteError:
                    pass


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
    http = _HTTP(f"unix://{dockerd.sock}", None)
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


# -- over TLS: dockerclient tcp://127.0.0.1:PORT --tlsverify ... ---------------------


def _tls(pki: Pki, cert: str | None = "client", ca: str = "ca.pem") -> list[str]:
    args = ["--tlsverify", f"--tlscacert={pki.path(ca)}"]
    if cert:
        args += [f"--tlscert={pki.path(cert + '.pem')}", f"--tlskey={pki.path(cert + '.key')}"]
    return args


async def test_tls_client_with_certificate(dockerd, pki):
    """The libswarm API over TLS: ls, spawn, watch, start, logs, remove (host-side truth: the unix socket)."""
    async with libswarm.open_service(DockerClient(dockerd.tcp, *_tls(pki))) as (engine, _):
        engine.timeout = 30
        c = await engine.spawn(json.dumps({"Image": IMAGE, "Cmd": ["sh", "-c", "echo over tls; echo err >&2; exit 2"],
                                           "name": "tls-1"}))
        try:
            assert "tls-1" in await engine.ls()
            seen = subprocess.run(dockerd.cli + ["ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                                  text=True, timeout=10).stdout.split()
            assert "tls-1" in seen  # the same engine as its unix socket
            events = await c.watch()
            await c.start()
            with trio.fail_after(20):
                async for m in events:
                    if m.args[0] == "die":
                        assert json.loads(m.args[1])["State"]["ExitCode"] == 2
                        break
            await events.aclose()
            assert await c.get("stdout") == b"over tls\n"
            assert await c.get("stderr") == b"err\n"
        finally:
            await c.stop("rm", "force")
        assert "tls-1" not in await engine.ls()
        assert json.loads(await engine.get())["ServerVersion"].startswith("20.10")


@pytest.mark.parametrize("case", ["no-client-cert", "client-cert-of-another-ca", "wrong-ca", "no-tls"])
async def test_tls_failures_are_clear_errors(dockerd, pki, case, tmp_path):
    """Every request fails at once with one line saying what is wrong; no hang, no traceback."""
    args, expected = {
        "no-client-cert": (_tls(pki, None), "TLS: the engine refused our client certificate (none was given"),
        "client-cert-of-another-ca": (_tls(pki, "rogue-client"), "TLS: the engine refused our client certificate: "),
        "wrong-ca": (_tls(pki, ca="other-ca.pem"), "TLS: the engine's certificate is not trusted (check --tlscacert)"),
        "no-tls": ([], "HTTP 400: Client sent an HTTP request to an HTTPS server."),
    }[case]
    with trio.fail_after(15):
        async with libswarm.open_service(DockerClient(dockerd.tcp, *args)) as (engine, _):
            calls = [engine.ls, engine.get, lambda: engine.child("x"),
                     lambda: engine.spawn(json.dumps({"Image": IMAGE, "Cmd": ["true"]}))]
            for call in calls:
                with pytest.raises(libswarm.RemoteError) as info:
                    await call()
                text = info.value.text
                assert expected in text and dockerd.tcp.split("://")[1] in text, text
                assert "\n" not in text and "Traceback" not in text
        # the docker CLI through dockerserver gets the same words
        sock = str(tmp_path / "front.sock")
        async with docker_front(f"unix://{sock}", DockerClient(dockerd.tcp, *args)):
            p = await Docker(f"unix://{sock}")("run", "--rm", IMAGE, "true")
            assert p.returncode == 125 and expected.encode() in p.stderr, p.stderr
    # nothing was created behind our back
    assert subprocess.run(dockerd.cli + ["ps", "-aq"], capture_output=True, text=True, timeout=10).stdout == ""


async def test_tls_swarmd_command_line(dockerd, pki, tmp_path):
    """``swarmd 'dockerserver unix://...' 'dockerclient tls://127.0.0.1:PORT --tlscacert= --tlscert= --tlskey='``:
    the docker CLI runs containers on the TLS engine, stdin included (its end is a TCP half-close
    under TLS, as the docker CLI does: without it ``run -i ... cat`` never ends)."""
    sock = tmp_path / "swarm.sock"
    url = dockerd.tcp.replace("tcp://", "tls://")
    spec = "dockerclient " + url + " " + " ".join(_tls(pki)[1:])  # tls:// is TLS; verified only with --tlsverify
    front = Proc(SWARMD + [f"dockerserver unix://{sock}", spec])
    try:
        front.wait_line(r"dockerserver: listening on unix://", timeout=15)
        d = Docker(f"unix://{sock}")
        assert await d.ok("run", "--rm", IMAGE, "echo", "hi", timeout=30) == "hi\n"
        assert await d.ok("run", "-i", "--rm", IMAGE, "cat", stdin=b"stdin over tls\n", timeout=30) == "stdin over tls\n"
        assert (await d("run", "--rm", IMAGE, "sh", "-c", "exit 3", timeout=30)).returncode == 3
    finally:
        front.stop()
    assert front.p.returncode == 0 and not sock.exists(), (front.p.returncode, front.err)
