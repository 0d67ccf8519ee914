"""The policy stage with the real docker CLI: ``dockerserver -> policy -> simulator`` in-process
(refusals as 403s naming the rule, rewrites, per-identity visibility over mutual TLS and by
unix uid, the audit log), and the same libswarm requests through the libswarm API (an ``Error``
with the same text; a handle's identity cannot be changed by its holder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import trio
import trustme

import libchan
import libswarm
from docker_helpers import DOCKER_CLI, Docker, docker_front, need
from libswarm import Identity
from libswarm.backends.policy import Policy
from libswarm.backends.simulator import Simulator
from policy_helpers import OWNER_RULES

pytestmark = pytest.mark.slow  # the docker CLI as a process, many times

RULES = """
default = "allow"

[[rule]]
name = "no-privileged"
action = "deny"
reason = "privileged containers are not allowed"
match = { verb = "Spawn", on = "engine", privileged = true }

[[rule]]
name = "no-host-root"
action = "deny"
reason = "bind mounts outside /srv are not allowed"
match = { verb = "Spawn", on = "engine", host_path_outside = ["/srv"] }
""" + OWNER_RULES


@pytest.fixture
def rules_file(tmp_path):
    p = tmp_path / "rules.toml"
    p.write_text(RULES)
    return p


def audit_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def cli():
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")


async def test_refusals_are_403s_naming_the_rule(cli, tmp_path, rules_file):
    sock, audit = str(tmp_path / "front.sock"), tmp_path / "audit.jsonl"
    async with docker_front(f"unix://{sock}", Policy(str(rules_file), "--audit", str(audit)), Simulator()):
        docker = Docker(f"unix://{sock}")
        p = await docker("run", "--rm", "--privileged", "busybox", "true")
        assert p.returncode == 125
        assert ("Error response from daemon: policy: privileged containers are not allowed (rule no-privileged)"
                in p.stderr.decode())
        p = await docker("run", "--rm", "-v", "/:/host", "busybox", "true")
        assert p.returncode == 125 and b"(rule no-host-root)" in p.stderr
        assert (await docker.ok("run", "--rm", "-v", "/srv/data:/data", "busybox", "echo", "hi")) == "hi\n"
        cid = (await docker.ok("create", "--name", "web", "busybox", "true")).strip()
        inspect = json.loads(await docker.ok("inspect", "uid-0-web"))[0] if os.geteuid() == 0 else None
        if inspect is not None:
            assert inspect["Id"] == cid and inspect["Config"]["Labels"] == {"owner": "uid-0"}
    lines = audit_lines(audit)
    deny = [e for e in lines if e["action"] == "deny"]
    assert [e["rule"] for e in deny] == ["no-privileged", "no-host-root"]
    assert deny[0]["verb"] == "Spawn" and deny[0]["on"] == "engine"
    assert deny[0]["identity"]["transport"] == "unix" and deny[0]["identity"]["uid"] == os.geteuid()
    assert {"time", "identity", "verb", "on", "target", "rule", "action"} <= set(lines[-1])


async def test_unix_clients_are_identified_by_uid(cli, tmp_path, rules_file):
    need(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv to run as another uid")
    shared = tempfile.mkdtemp(prefix="policy-uid-")  # a directory uid 1000 can enter
    os.chmod(shared, 0o755)
    sock, audit = os.path.join(shared, "front.sock"), tmp_path / "audit.jsonl"
    async with docker_front(f"unix://{sock}", Policy(str(rules_file), "--audit", str(audit)), Simulator()):
        os.chmod(sock, 0o666)
        root = Docker(f"unix://{sock}")
        assert DOCKER_CLI is not None

        async def run_1000(*args: str) -> subprocess.CompletedProcess:
            argv = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", DOCKER_CLI, "-H", f"unix://{sock}"]
            with trio.fail_after(20):
                return await trio.run_process([*argv, *args], capture_stdout=True, capture_stderr=True, check=False,
                                              env=root.env)

        p = await run_1000("run", "-d", "--name", "app", "busybox", "sleep", "60")
        assert p.returncode == 0, p.stderr
        await root.ok("run", "-d", "--name", "app", "busybox", "sleep", "60")
        ps_user = (await run_1000("ps", "--format", "{{.Names}}")).stdout.decode().split()
        ps_root = (await root.ok("ps", "--format", "{{.Names}}")).split()
        assert ps_user == ["uid-1000-app"] and ps_root == ["uid-0-app"]
        p = await run_1000("stop", "uid-0-app")
        assert p.returncode != 0 and b"No such container: uid-0-app" in p.stderr
    shutil.rmtree(shared, ignore_errors=True)
    who = {e["identity"].get("uid") for e in audit_lines(audit)}
    assert who == {0, 1000}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy-pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    for who in ("alice", "bob"):
        cert = ca.issue_cert(f"{who}.example", common_name=who, organization_name="Example")
        cert.private_key_pem.write_to_path(str(d / f"{who}.key"))
        (d / f"{who}.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    return d


async def test_two_tls_clients_see_and_control_only_their_own(cli, pki, tmp_path, rules_file):
    audit = tmp_path / "audit.jsonl"
    server_args = [f"--tlscert={pki / 'server.pem'}", f"--tlskey={pki / 'server.pem'}", "--tlsverify",
                   f"--tlscacert={pki / 'ca.pem'}"]
    async with docker_front("tcp://127.0.0.1:0", Policy(str(rules_file), "--audit", str(audit)), Simulator(),
                            server_args=server_args) as front:
        url = front.addresses[0]

        def client(who: str) -> Docker:
            return Docker(url, ["--tlsverify", f"--tlscacert={pki / 'ca.pem'}", f"--tlscert={pki / (who + '.pem')}",
                                f"--tlskey={pki / (who + '.key')}"])

        alice, bob = client("alice"), client("bob")
        await alice.ok("run", "-d", "--name", "web", "busybox", "sleep", "60")
        await bob.ok("run", "-d", "--name", "web", "busybox", "sleep", "60")
        assert (await alice.ok("ps", "-a", "--format", "{{.Names}}")).split() == ["alice-web"]
        assert (await bob.ok("ps", "-a", "--format", "{{.Names}}")).split() == ["bob-web"]
        # docker events: each sees its own containers' events only
        until = f"{time.time():.3f}"
        for who, name in ((alice, "alice-web"), (bob, "bob-web")):
            seen = (await who.ok("events", "--since", "1", "--until", until, "--format",
                                 "{{.Actor.Attributes.name}}")).split()
            assert seen and set(seen) == {name}, seen
        for cmd in (["stop", "alice-web"], ["logs", "alice-web"], ["rm", "-f", "alice-web"], ["container", "inspect", "alice-web"],
                    ["exec", "alice-web", "true"]):
            p = await bob(*cmd)
            assert b"No such container: alice-web" in p.stderr, (cmd, p.stderr)
            assert p.returncode != 0 or cmd[:2] == ["rm", "-f"]  # (the CLI forgives rm -f of a missing one)
        assert (await alice.ok("ps", "--format", "{{.Names}} {{.State}}")).split() == ["alice-web", "running"]
        # a label forged at create time is overwritten by the rewrite
        await bob.ok("create", "--name", "sneaky", "--label", "owner=alice", "busybox", "true")
        assert "bob-sneaky" not in await alice.ok("ps", "-a", "--format", "{{.Names}}")
        await alice.ok("rm", "-f", "alice-web")
    ids = {(e["identity"]["cn"], e["identity"]["subject"].split(",")[0], e["identity"]["subject"].split(",")[-1],
            tuple(e["identity"]["san"])) for e in audit_lines(audit)}
    assert ids == {("alice", "CN=alice", "O=Example", ("DNS:alice.example",)),
                   ("bob", "CN=bob", "O=Example", ("DNS:bob.example",))}, ids


# -- the same through libswarm --------------------------------------------------------------


async def test_libswarm_callers_get_an_error_with_the_same_text(rules_file, tmp_path):
    audit = tmp_path / "audit.jsonl"
    in_s, in_r = libchan.pipe()
    out_s, out_r = libchan.pipe()
    alice = Identity(transport="tls", cn="alice")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(libswarm.chain, [Policy(str(rules_file), "--audit", str(audit)), Simulator()], in_r, out_s)
        engine = libswarm.Client(in_s, identity=alice)
        with pytest.raises(libswarm.RemoteError) as info:
            await engine.spawn(json.dumps({"Image": "busybox", "HostConfig": {"Privileged": True}}))
        assert info.value.text == "policy: privileged containers are not allowed (rule no-privileged)"
        web = await engine.spawn(json.dumps({"Image": "busybox", "Cmd": ["true"], "name": "web"}))
        assert json.loads(await web.get())["Name"] == "/alice-web"
        # the holder of a handle cannot change whose it is: a forged identity is ignored
        ret, replies = libchan.pipe()
        bob = Identity(transport="tls", cn="bob")
        await web.sender.send(libswarm.Message(libswarm.Verb.Get, (), ret, None, bob).to_wire())
        answer = libswarm.Message.from_wire(await replies.receive())
        assert answer.verb == libswarm.Verb.Set
        assert audit_lines(audit)[-1]["identity"]["cn"] == "alice"
        # anonymous callers (no identity on the message) see nothing of alice's
        anon = libswarm.Client(in_s)
        assert await anon.ls() == []
        with pytest.raises(libswarm.RemoteError, match="No such container: alice-web"):
            await anon.child("alice-web")
        assert await engine.ls() == ["alice-web"]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("forwarded", [False, True])
async def test_a_remote_caller_through_listen_cannot_state_an_identity(rules_file, tmp_path, forwarded):
    """``listen -> policy -> simulator``: an Identity sent by a remote libswarm caller is
    replaced by its connection's (here its unix uid), unless ``listen --forwarded-identity``
    (trusted front ends)."""
    from libswarm.backends.listen import Listen

    audit = tmp_path / "audit.jsonl"
    url = f"unix://{tmp_path / 'listen.sock'}"
    listen = Listen(*(["--forwarded-identity"] if forwarded else []), url, quiet=True)
    out_s, out_r = libchan.pipe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(libswarm.chain, [listen, Policy(str(rules_file), "--audit", str(audit)), Simulator()],
                           None, out_s)
        with trio.fail_after(10):
            await listen.ready.wait()
        async with libchan.connect(url) as session:
            forged = libswarm.Client(await session.open_sender(), identity=Identity(transport="tls", cn="alice"))
            web = await forged.spawn(json.dumps({"Image": "busybox", "Cmd": ["true"], "name": "web"}))
            name = json.loads(await web.get())["Name"]
            await web.aclose()
            await forged.aclose()
        nursery.cancel_scope.cancel()
    first = audit_lines(audit)[0]
    if forwarded:
        assert name == "/alice-web" and first["identity"] == {"transport": "tls", "cn": "alice"}
    else:
        uid = os.getuid()
        assert name == f"/uid-{uid}-web"
        assert first["identity"] == {"transport": "unix", "uid": uid, "gid": os.getgid(), "pid": os.getpid()}
