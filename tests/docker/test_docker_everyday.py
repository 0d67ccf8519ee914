"""Everyday docker CLI commands through dockerserver (issue 14): ``ps`` filters, ``logs``
flags, ``pause``/``unpause``, ``rename``, ``port``, ``top``, ``stats``, ``events``,
``network ls``, ``volume ls``; on the simulator, on a real dockerd behind dockerclient and on
an aggregate of both (spec/DOCKER.md §5, spec/LIBSWARM.md 6.4-6.7). The real docker CLI,
raw HTTP where the CLI hides the status."""

from __future__ import annotations

import json
import re
import time

import pytest
import trio

from docker_helpers import DOCKER_CLIS, IMAGE, Docker, docker_front, need, private_dockerd, raw_http
from libswarm.backends.aggregate import Aggregate
from libswarm.backends.dockerclient import DockerClient
from libswarm.backends.simulator import Simulator

pytestmark = pytest.mark.slow  # the real docker CLI (and a private dockerd)

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as d:
        yield d


@pytest.fixture(params=["simulator", "dockerclient", "aggregate"])
async def front(request, tmp_path):
    """``(Docker, socket path, backend name)`` on ``dockerserver -> simulator``, ``-> dockerclient
    -> dockerd`` or ``-> aggregate(simulator, dockerclient)``."""
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    if request.param == "simulator":
        backend = Simulator()
    elif request.param == "aggregate":
        backend = Aggregate("simulator", f"dockerclient unix://{request.getfixturevalue('dockerd').sock}")
    else:
        backend = DockerClient(f"unix://{request.getfixturevalue('dockerd').sock}")
    async with docker_front(f"unix://{sock}", backend):
        yield Docker(f"unix://{sock}"), sock, request.param


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode()


async def _names(d: Docker, *args: str) -> list[str]:
    out = await d.ok("ps", "--format", "{{.Names}}", *args)
    return out.split()


async def test_ps_filters(front):
    d, sock, backend = front
    net = ["--network", "none"]
    # across an aggregate's children the order is by Created, which Docker gives in seconds
    pause = 1.1 if backend == "aggregate" else 0
    await d.ok("run", "-d", "--name", "psrun", "--label", "role=web", *net, IMAGE, "sleep", "300")
    await trio.sleep(pause)
    await d.ok("create", "--name", "psmade", "--label", "role=db", "--label", "tier", *net, IMAGE, "true")
    await trio.sleep(pause)
    assert (await d("run", "--name", "psdone", *net, IMAGE, "sh", "-c", "exit 3")).returncode == 3
    try:
        rid = json.loads(await d.ok("inspect", "psrun"))[0]["Id"]
        mine = ["-f", "name=^/ps"]
        assert await _names(d, *mine) == ["psrun"]  # running only
        assert sorted(await _names(d, "-a", *mine)) == ["psdone", "psmade", "psrun"]
        assert (await d.ok("ps", "-q", *mine)).split() == [rid[:12]]
        assert (await d.ok("ps", "-q", "--no-trunc", *mine)).split() == [rid]
        assert await _names(d, "-a", "-f", "status=exited", *mine) == ["psdone"]
        assert await _names(d, "-f", "status=created", *mine) == ["psmade"]
        assert await _names(d, "-a", "-f", "exited=3", *mine) == ["psdone"]
        assert await _names(d, "-a", "-f", "exited=0", *mine) == []
        assert await _names(d, "-a", "-f", "label=role=web") == ["psrun"]
        assert sorted(await _names(d, "-a", "-f", "label=role", *mine)) == ["psmade", "psrun"]
        assert await _names(d, "-a", "-f", "label=role", "-f", "label=tier") == ["psmade"]
        assert await _names(d, "-a", "-f", f"id={rid[:10]}") == ["psrun"]
        assert await _names(d, "-a", "-f", "name=psma") == ["psmade"]
        assert await _names(d, "-a", "-n", "1", *mine) == ["psdone"]  # the newest
        assert await _names(d, "-l", *mine) == ["psdone"]
        assert await _names(d, "-a", "-f", "before=psdone", *mine) == ["psmade", "psrun"]
        assert await _names(d, "-a", "-f", "since=psmade", *mine) == ["psdone"]
        p = await d("ps", "-f", "status=sleepy")
        assert p.returncode == 1 and b"invalid filter 'status=sleepy'" in p.stderr, p.stderr
        st, _, body = await raw_http(sock, _get('/v1.41/containers/json?filters={"nope":["x"]}'))
        assert (st, json.loads(body)["message"]) == (400, "invalid filter 'nope'")
    finally:
        await d("rm", "-f", "psrun", "psmade", "psdone")


async def test_logs_flags(front):
    d, sock, _ = front
    net = ["--network", "none"]
    await d.ok("run", "-d", "--name", "lg", *net, IMAGE, "sh", "-c", "echo one; echo two; sleep 0.3; echo three >&2")
    try:
        with trio.fail_after(20):
            while "Exited" not in await d.ok("ps", "-a", "-f", "name=^/lg$", "--format", "{{.Status}}"):
                await trio.sleep(0.1)
        p = await d("logs", "lg")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"one\ntwo\n", b"three\n")
        p = await d("logs", "--tail", "1", "lg")
        assert (p.stdout, p.stderr) == (b"", b"three\n")
        p = await d("logs", "--tail", "2", "lg")
        assert (p.stdout, p.stderr) == (b"two\n", b"three\n")
        p = await d("logs", "--tail", "0", "lg")
        assert (p.stdout, p.stderr) == (b"", b"")
        p = await d("logs", "-t", "lg")
        lines = p.stdout.decode().splitlines()
        assert len(lines) == 2 and all(STAMP.match(line) for line in lines), lines
        assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]
        assert STAMP.match(p.stderr.decode()) and p.stderr.decode().endswith(" three\n")
        p = await d("logs", "--since", "2099-01-01T00:00:00Z", "lg")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
        p = await d("logs", "--until", "2000-01-01T00:00:00Z", "lg")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
        p = await d("logs", "--since", "1h", "-t", "--tail", "1", "lg")
        assert STAMP.match(p.stderr.decode()) and p.stdout == b""
        # -f: live, and it ends when the container does
        await d.ok("run", "-d", "--name", "lgf", *net, IMAGE, "sh", "-c", "echo a; sleep 1; echo b")
        t0 = time.monotonic()
        p = await d("logs", "-f", "lgf", timeout=20)
        assert (p.returncode, p.stdout) == (0, b"a\nb\n")
        assert time.monotonic() - t0 < 15
        p = await d("logs", "-f", "--tail", "1", "lgf")
        assert p.stdout == b"b\n"
        st, _, body = await raw_http(sock, _get("/v1.41/containers/lg/logs?stdout=1&since=soon"))
        assert st == 400, body
    finally:
        await d("rm", "-f", "lg", "lgf")


async def test_pause_unpause_rename(front):
    d, sock, _ = front
    await d.ok("run", "-d", "--name", "pz", "--network", "none", IMAGE, "sleep", "300")
    try:
        assert await d.ok("pause", "pz") == "pz\n"
        data = json.loads(await d.ok("inspect", "pz"))[0]
        assert data["State"]["Paused"] is True and data["State"]["Status"] == "paused"
        assert (await d.ok("ps", "-f", "name=^/pz$", "--format", "{{.Status}}")).endswith("(Paused)\n")
        assert await _names(d, "-f", "status=paused") == ["pz"]
        p = await d("pause", "pz")
        assert p.returncode == 1 and b"is already paused" in p.stderr, p.stderr
        p = await d("exec", "pz", "true")
        assert p.returncode != 0 and b"is paused" in p.stderr, p.stderr
        assert await d.ok("unpause", "pz") == "pz\n"
        assert json.loads(await d.ok("inspect", "pz"))[0]["State"]["Status"] == "running"
        st, _, body = await raw_http(sock, b"POST /v1.41/containers/pz/unpause HTTP/1.1\r\nHost: d\r\n"
                                           b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        assert st == 409 and "is not paused" in json.loads(body)["message"], body
        # rename
        await d.ok("create", "--name", "pzother", "--network", "none", IMAGE, "true")
        assert await d.ok("rename", "pz", "pz2") == ""
        assert json.loads(await d.ok("inspect", "pz2"))[0]["Name"] == "/pz2"
        p = await d("inspect", "pz")
        assert p.returncode == 1 and b"No such" in p.stderr
        assert "pz2" in await _names(d)
        p = await d("rename", "pz2", "pzother")
        assert p.returncode == 1 and b"is already in use" in p.stderr, p.stderr
        st, _, body = await raw_http(sock, b"POST /v1.41/containers/pz2/rename?name=bad%20name HTTP/1.1\r\n"
                                           b"Host: d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        assert st == 400 and "Invalid container name" in json.loads(body)["message"]
        p = await d("pause", "nope")
        assert p.returncode == 1 and b"No such container: nope" in p.stderr
    finally:
        await d("unpause", "pz")
        await d("rm", "-f", "pz", "pz2", "pzother")


async def test_simulator_ports_and_mounts(tmp_path):
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "sim.sock")
    async with docker_front(f"unix://{sock}", Simulator()):
        d = Docker(f"unix://{sock}")
        await d.ok("run", "-d", "--name", "pt", "-p", "8080:80", "-p", "127.0.0.1::443/udp", "--expose", "9000",
                   "-v", "/srv:/data:ro", "-v", "named:/vol", "-v", "/anon", IMAGE, "sleep", "300")
        out = await d.ok("port", "pt")
        assert sorted(out.splitlines()) == ["443/udp -> 127.0.0.1:49153", "80/tcp -> 0.0.0.0:8080"], out
        assert await d.ok("port", "pt", "80") == "0.0.0.0:8080\n"
        ports = await d.ok("ps", "--format", "{{.Ports}}", "-f", "name=pt")
        assert "0.0.0.0:8080->80/tcp" in ports and "127.0.0.1:49153->443/udp" in ports and "9000/tcp" in ports
        mounts = json.loads(await d.ok("inspect", "pt"))[0]["Mounts"]
        by_dst = {m["Destination"]: m for m in mounts}
        assert by_dst["/data"]["Type"] == "bind" and by_dst["/data"]["Source"] == "/srv" and not by_dst["/data"]["RW"]
        assert by_dst["/vol"]["Type"] == "volume" and by_dst["/vol"]["Name"] == "named"
        assert by_dst["/anon"]["Type"] == "volume" and len(by_dst["/anon"]["Name"]) == 64
        await d.ok("stop", "pt")
        assert await d.ok("port", "pt") == ""  # bound while it runs, as with Docker


async def test_dockerclient_port_passes_through(dockerd, tmp_path):
    """``docker port`` and ps ``PORTS`` are the engine's own (inspect passed through)."""
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "dc.sock")
    truth = Docker(f"unix://{dockerd.sock}")
    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{dockerd.sock}")):
        d = Docker(f"unix://{sock}")
        await d.ok("run", "-d", "--name", "dcport", "--network", "none", "--expose", "9000", IMAGE, "sleep", "300")
        try:
            assert await d.ok("port", "dcport") == await truth.ok("port", "dcport")
            fmt = ["ps", "--format", "{{.Ports}}", "-f", "name=dcport"]
            assert await d.ok(*fmt) == await truth.ok(*fmt)
        finally:
            await d("rm", "-f", "dcport")


async def test_network_and_volume_ls(front):
    d, sock, backend = front
    await d.ok("create", "--name", "vuser", "--network", "none", "-v", f"vol-{backend}:/data", IMAGE, "true")
    try:
        names = (await d.ok("network", "ls", "--format", "{{.Name}}")).split()
        # the test dockerd runs with --bridge=none: host and none only; the simulator has bridge too
        want = {"host", "none"} | ({"bridge"} if backend != "dockerclient" else set())
        assert want <= set(names) and len(names) == len(set(names)), names
        assert (await d.ok("network", "ls", "-q", "-f", "name=none")).strip() != ""
        assert json.loads(await d.ok("network", "inspect", "none"))[0]["Name"] == "none"
        p = await d("network", "inspect", "nonet")
        assert p.returncode == 1 and b"nonet" in p.stderr, p.stderr
        assert f"vol-{backend}" in (await d.ok("volume", "ls", "-q")).split()
        assert (await d.ok("volume", "ls", "-q", "-f", f"name=vol-{backend}")).split() == [f"vol-{backend}"]
        assert json.loads(await d.ok("volume", "inspect", f"vol-{backend}"))[0]["Name"] == f"vol-{backend}"
        p = await d("volume", "inspect", "novol")
        assert p.returncode == 1 and b"no such volume" in p.stderr.lower(), p.stderr
        mounts = json.loads(await d.ok("container", "inspect", "vuser"))[0]["Mounts"]
        assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", f"vol-{backend}", "/data")]
        p = await d("inspect", "nothing-at-all")  # container, image, network, volume, plugin: all 404
        assert p.returncode == 1 and b"No such object: nothing-at-all" in p.stderr, p.stderr
    finally:
        await d("rm", "-f", "vuser")


async def test_top_and_stats(front):
    d, sock, _ = front
    await d.ok("run", "-d", "--name", "tp", "--network", "none", IMAGE, "sleep", "300")
    await d.ok("create", "--name", "tpidle", "--network", "none", IMAGE, "true")
    try:
        out = await d.ok("top", "tp")
        head, *rows = out.splitlines()
        assert "PID" in head.split() and "CMD" in head.split(), out
        assert any(row.endswith("sleep 300") for row in rows), out
        p = await d("top", "tpidle")
        assert p.returncode == 1 and b"is not running" in p.stderr, p.stderr
        out = await d.ok("stats", "--no-stream", "tp", timeout=30)
        head, row = out.splitlines()
        assert head.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and row.split()[1] == "tp", out
        out = await d.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "tp", timeout=30)
        name, usage, slash, limit, pids = out.split()
        assert name == "tp" and slash == "/" and usage.endswith("B") and limit.endswith("B") and int(pids) >= 1, out
        out = await d.ok("stats", "--no-stream", "--format", "{{.Name}}", timeout=30)  # every running container
        assert "tp" in out.split() and "tpidle" not in out.split(), out
        st, _, body = await raw_http(sock, _get("/v1.41/containers/tp/stats?stream=0"))
        data = json.loads(body)
        assert st == 200 and data["memory_stats"]["usage"] > 0 and data["cpu_stats"]["cpu_usage"]["total_usage"] >= 0
    finally:
        await d("rm", "-f", "tp", "tpidle")


async def test_ps_in_one_request_and_the_long_way(tmp_path):
    """``docker ps`` is one ``Get("containers")`` (spec/LIBSWARM.md 6.8); an engine that does
    not know the word (here an aggregate with an ``exec`` child) is asked the long way."""
    sock = str(tmp_path / "ps.sock")
    sim = Simulator("one", "two")
    calls: list[tuple[str, ...]] = []
    original = sim._info

    async def counting(*args):
        calls.append(tuple(a.decode() if isinstance(a, bytes) else a for a in args))
        return await original(*args)

    sim.server.on_get(counting)
    async with docker_front(f"unix://{sock}", sim):
        st, _, body = await raw_http(sock, _get("/v1.41/containers/json?all=1"))
        assert st == 200 and [c["Names"] for c in json.loads(body)] == [["/two"], ["/one"]]
        assert calls == [("containers",)]
    async with docker_front(f"unix://{sock}", Aggregate(Simulator("one", "two"), "exec /bin/cat")):
        st, _, body = await raw_http(sock, _get("/v1.41/containers/json?all=1"))
        assert st == 200 and sorted(c["Names"][0] for c in json.loads(body)) == ["/one", "/two"]


async def test_events(front):
    d, sock, _ = front
    t0 = time.time() - 1
    await d.ok("run", "--name", "evx", "--label", "ev=1", "--network", "none", IMAGE, "true")
    await d.ok("rm", "evx")
    await trio.sleep(1.1)  # until is in whole seconds here
    fmt = ["--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"]
    window = ["--since", str(int(t0)), "--until", str(int(time.time()))]
    out = await d.ok("events", *window, "-f", "container=evx", *fmt, timeout=30)
    lines = out.splitlines()
    for action in ("create", "start", "die", "destroy"):
        assert f"container {action} evx" in lines, out
    out = await d.ok("events", *window, "-f", "event=die", "-f", "label=ev=1",
                     "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}", timeout=30)
    assert out.splitlines() == ["die 0"], out
    # live: events of what happens while the client listens; it ends when the client goes
    p = await trio.lowlevel.open_process([d.cli, "-H", d.host, "events", "-f", "type=container", *fmt],
                                         stdout=-1, env=d.env)
    try:
        await trio.sleep(1)
        await d.ok("create", "--name", "evlive", "--network", "none", IMAGE, "true")
        seen = b""
        with trio.fail_after(15):
            while b"container create evlive" not in seen:
                seen += await p.stdout.receive_some(4096)
    finally:
        p.kill()
        await p.wait()
        await d("rm", "-f", "evlive")
    st, _, body = await raw_http(sock, _get("/v1.41/events?since=yesterday"))
    assert st == 400, body


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end].split(b";")[0], 16)
        if not size:
            return bytes(out)
        out += body[line_end + 2 : line_end + 2 + size]
        pos = line_end + 2 + size + 2


def _demux(stream: bytes) -> dict[int, bytes]:
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    pos = 0
    while pos < len(stream):
        kind, size = stream[pos], int.from_bytes(stream[pos + 4 : pos + 8], "big")
        out[kind] += stream[pos + 8 : pos + 8 + size]
        pos += 8 + size
    return {k: bytes(v) for k, v in out.items()}


async def test_logs_longer_than_one_held_body_are_streamed_whole(dockerd, tmp_path):
    """A replay up to 1 MiB is one body (Content-Length); a larger one is streamed as it
    comes (chunked: swarmd does not hold it whole, and does not cut it at 10 s) and
    arrives whole, through the docker CLI too."""
    sock = str(tmp_path / "front.sock")
    size = 3_000_000
    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{dockerd.sock}")):
        d = Docker(f"unix://{sock}")
        await d.ok("run", "--name", "biglog", "--network", "none", IMAGE, "sh", "-c",
                   f"head -c {size} /dev/zero | tr '\\0' x; echo; echo tail >&2")
        await d.ok("run", "--name", "smalllog", "--network", "none", IMAGE, "sh", "-c", "echo small")
        try:
            request = b"GET /v1.41/containers/%s/logs?stdout=1&stderr=1 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
            status, headers, body = await raw_http(sock, request % b"smalllog")
            assert (status, headers.get("content-length"), _demux(body)) == (200, str(len(body)), {1: b"small\n", 2: b""})
            status, headers, body = await raw_http(sock, request % b"biglog")
            assert status == 200 and headers.get("transfer-encoding") == "chunked", headers
            assert _demux(_dechunk(body)) == {1: b"x" * size + b"\n", 2: b"tail\n"}
            p = await d("logs", "biglog", timeout=60)
            assert (p.returncode, p.stdout == b"x" * size + b"\n", p.stderr) == (0, True, b"tail\n")
        finally:
            await d("rm", "-f", "biglog", "smalllog")


async def _logs_body(sock: str, ref: str) -> bytes:
    """The body of ``GET /containers/REF/logs?stdout=1&stderr=1`` (what the docker CLI asks,
    by the full id its inspect gave), as sent: multiplexed frames, or raw for a Tty container."""
    request = f"GET /v1.41/containers/{ref}/logs?stderr=1&stdout=1&tail=all HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    status, headers, body = await raw_http(sock, request.encode())
    assert status == 200, body
    return _dechunk(body) if headers.get("transfer-encoding") == "chunked" else body


async def test_logs_by_id_follow_renames_removals_and_recreations(dockerd, tmp_path):
    """``docker logs`` through dockerserver -> dockerclient answers by a container's full id
    without asking for its inspect again (spec/DOCKER.md §3): after renames, a removal and
    re-creation under the same name, and even a container *named* with the full id of one
    removed behind swarmd's back (the engine resolves an id before a name), every answer is
    the engine's own, byte for byte: the right container's output in the right framing (raw
    for a Tty container, multiplexed frames otherwise), through the docker CLI too."""
    need(bool(DOCKER_CLIS), "the docker CLI is not on PATH")
    sock = str(tmp_path / "front.sock")
    net = ["--network", "none"]
    direct = Docker(f"unix://{dockerd.sock}")
    made: list[str] = []

    async def run(*args: str) -> str:
        """Run a container to its end on the engine itself (behind swarmd's back); its id."""
        cid = (await direct.ok("run", "-d", *net, *args)).strip()
        made.append(cid)
        with trio.fail_after(30):
            while (await direct.ok("inspect", "-f", "{{.State.Status}}", cid)).strip() != "exited":
                await trio.sleep(0.05)
        return cid

    async def same(ref: str) -> bytes:
        """The logs of ``ref`` through swarmd, checked against the engine's own; returned."""
        ours, theirs = await _logs_body(sock, ref), await _logs_body(dockerd.sock, ref)
        assert ours == theirs, (ref, ours, theirs)
        p, q = await d("logs", ref), await direct("logs", ref)
        assert (p.returncode, p.stdout, p.stderr) == (q.returncode, q.stdout, q.stderr), (ref, p, q)
        return ours

    async with docker_front(f"unix://{sock}", DockerClient(f"unix://{dockerd.sock}")):
        d = Docker(f"unix://{sock}")
        try:
            tty = await run("-t", "--name", "lgid-a", IMAGE, "sh", "-c", "echo tty out; echo tty err >&2")
            plain = await run("--name", "lgid-b", IMAGE, "sh", "-c", "echo plain out; echo plain err >&2")
            assert (await same(tty)).replace(b"\r", b"") == b"tty out\ntty err\n"  # raw: no frames
            assert _demux(await same(plain)) == {1: b"plain out\n", 2: b"plain err\n"}
            for name in ("lgid-a", "lgid-b"):  # the CLI: inspect by name, then logs by the full id
                await same(name)
            # names swapped through swarmd: each name now means the other container
            await d.ok("rename", "lgid-a", "lgid-tmp")
            await d.ok("rename", "lgid-b", "lgid-a")
            await d.ok("rename", "lgid-tmp", "lgid-b")
            p = await d("logs", "lgid-a")
            assert (p.stdout, p.stderr) == (b"plain out\n", b"plain err\n"), p
            assert (await d.ok("logs", "lgid-b")).replace("\r", "") == "tty out\ntty err\n"
            await same("lgid-a")
            await same("lgid-b")
            # removed and made again under the same name, Tty the other way, behind swarmd's back
            await direct.ok("rm", "lgid-a", "lgid-b")
            again = await run("-t", "--name", "lgid-a", IMAGE, "sh", "-c", "echo again")
            await run("--name", "lgid-b", IMAGE, "sh", "-c", "echo b again >&2")
            assert (await d.ok("logs", "lgid-a")).replace("\r", "") == "again\n"
            p = await d("logs", "lgid-b")
            assert (p.stdout, p.stderr) == (b"", b"b again\n"), p
            await same("lgid-a")
            await same("lgid-b")
            await same(again)
            # a removed container's id: the engine's 404, through swarmd too
            status, _, body = await raw_http(sock, f"GET /v1.41/containers/{plain}/logs?stdout=1 HTTP/1.1\r\n"
                                                   "Host: d\r\nConnection: close\r\n\r\n".encode())
            assert (status, json.loads(body)["message"]) == (404, f"No such container: {plain}"), body
            # a new container named with that removed (non-Tty) container's full id, Tty:
            # the engine now resolves the id as that name
            named = await run("-t", "--name", plain, IMAGE, "sh", "-c", "echo named by an id")
            assert (await same(plain)).replace(b"\r", b"") == b"named by an id\n"
            assert (await same(named)).replace(b"\r", b"") == b"named by an id\n"
            # and the other way: a removed Tty container's id naming a container without one
            await direct.ok("rm", again)
            await run("--name", again, IMAGE, "sh", "-c", "echo framed; echo framed err >&2")
            assert _demux(await same(again)) == {1: b"framed\n", 2: b"framed err\n"}
        finally:
            await direct("rm", "-f", *made)
