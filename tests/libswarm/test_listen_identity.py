"""``listen -> policy -> simulator``: a remote libswarm caller is who its connection says it is
(the subject and SANs of its mutual-TLS client certificate, its unix uid/gid, its TCP
address), whatever ``Identity`` it puts on its messages (spec/LIBSWARM.md 9.6)."""

from __future__ import annotations

import json
import os
import ssl

import pytest
import trio
import trustme

import libchan
import libswarm
from libswarm import Identity
from libswarm.backends.listen import Listen
from libswarm.backends.policy import Policy
from libswarm.backends.simulator import Simulator
from policy_helpers import OWNER_RULES

RULES = """
default = "allow"
""" + OWNER_RULES

WEB = json.dumps({"Image": "busybox", "Cmd": ["true"], "name": "web"})


def audit_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class _Chain:
    """``listen ARGS -> policy -> simulator`` running in ``nursery``."""

    def __init__(self, tmp_path, *listen_args: str) -> None:
        (tmp_path / "rules.toml").write_text(RULES)
        self.audit = tmp_path / "audit.jsonl"
        self.listen = Listen(*listen_args, quiet=True)
        self.policy = Policy(str(tmp_path / "rules.toml"), "--audit", str(self.audit))

    async def start(self, nursery: trio.Nursery) -> str:
        out_s, _ = libchan.pipe()
        nursery.start_soon(libswarm.chain, [self.listen, self.policy, Simulator()], None, out_s)
        await self.listen.ready.wait()
        return self.listen.bound[0]


def _client_ctx(ca: trustme.CA, cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    cert.configure_cert(ctx)
    return ctx


async def _spawn_web(session: libchan.Session, claim: Identity | None = None) -> tuple[str, list[str]]:
    """Spawn "web" through the session (stating ``claim`` as its identity); its name and Ls."""
    engine = libswarm.Client(await session.open_sender(), identity=claim)
    web = await engine.spawn(WEB)
    name = json.loads(await web.get())["Name"]
    names = [n.decode() if isinstance(n, bytes) else n for n in await engine.ls()]
    await web.aclose()
    await engine.aclose()
    return name, names


async def test_mutual_tls_callers_are_their_certificates(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    alice = ca.issue_cert("alice.example", common_name="alice")
    bob = ca.issue_cert("bob.example", common_name="bob")
    files = {"cert": tmp_path / "server.pem", "key": tmp_path / "server.key", "ca": tmp_path / "ca.pem"}
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    chain = _Chain(tmp_path, "--cert", str(files["cert"]), "--key", str(files["key"]), "--ca", str(files["ca"]),
                   "tls://127.0.0.1:0")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = await chain.start(nursery)
            async with libchan.connect(url, ssl=_client_ctx(ca, alice)) as session:
                # alice says she is bob: the certificate decides
                a_name, a_list = await _spawn_web(session, Identity(transport="tls", cn="bob"))
            async with libchan.connect(url, ssl=_client_ctx(ca, bob)) as session:
                b_name, b_list = await _spawn_web(session)
            async with libchan.connect(url, ssl=_client_ctx(ca, alice)) as session:
                names = await libswarm.Client(await session.open_sender()).ls()
            nursery.cancel_scope.cancel()
    assert (a_name, b_name) == ("/alice-web", "/bob-web")
    assert (a_list, b_list) == (["alice-web"], ["bob-web"])  # each sees its own only
    assert [n.decode() if isinstance(n, bytes) else n for n in names] == ["alice-web"]
    first = audit_lines(chain.audit)[0]["identity"]
    assert first["transport"] == "tls" and first["cn"] == "alice"
    assert first["subject"].startswith("CN=alice,") and first["san"] == ["DNS:alice.example"]
    assert first["address"].startswith("127.0.0.1:")


async def test_a_unix_socket_caller_is_its_uid(tmp_path):
    chain = _Chain(tmp_path, f"unix://{tmp_path / 'listen.sock'}")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = await chain.start(nursery)
            async with libchan.connect(url) as session:
                name, names = await _spawn_web(session, Identity(transport="tls", cn="alice"))
            nursery.cancel_scope.cancel()
    uid = os.getuid()
    assert (name, names) == (f"/uid-{uid}-web", [f"uid-{uid}-web"])
    first = audit_lines(chain.audit)[0]["identity"]
    assert first == {"transport": "unix", "uid": uid, "gid": os.getgid(), "pid": os.getpid()}


async def test_a_tcp_caller_is_anonymous_with_its_address(tmp_path):
    chain = _Chain(tmp_path, "tcp://127.0.0.1:0")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = await chain.start(nursery)
            async with libchan.connect(url) as session:
                name, _ = await _spawn_web(session, Identity(transport="unix", uid=0))
            nursery.cancel_scope.cancel()
    assert name == "/anonymous-web"
    first = audit_lines(chain.audit)[0]["identity"]
    assert first["transport"] == "tcp" and first["address"].startswith("127.0.0.1:") and "uid" not in first


@pytest.mark.parametrize("profile", ["h2", "spdy"])
async def test_the_identity_does_not_depend_on_the_profile(tmp_path, profile):
    chain = _Chain(tmp_path, f"unix://{tmp_path / 'listen.sock'}")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = await chain.start(nursery)
            async with libchan.connect(url, profile=profile) as session:
                name, _ = await _spawn_web(session)
            nursery.cancel_scope.cancel()
    assert name == f"/uid-{os.getuid()}-web"


@pytest.mark.parametrize("forwarded", [False, True])
async def test_connect_carries_the_identity_to_a_trusting_listen(tmp_path, forwarded):
    """``connect`` passes each request's ``Identity`` on: a ``listen --forwarded-identity`` (its
    peers are trusted front ends) keeps it, a plain ``listen`` puts the connection's instead."""
    from libswarm.backends.connect import Connect

    sock = tmp_path / "listen.sock"
    chain = _Chain(tmp_path, *(["--forwarded-identity"] if forwarded else []), f"unix://{sock}")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            url = await chain.start(nursery)
            in_s, in_r = libchan.pipe()
            out_s, _ = libchan.pipe()
            nursery.start_soon(libswarm.chain, [Connect(url)], in_r, out_s)
            front = libswarm.Client(in_s, identity=Identity(transport="tls", cn="alice"))
            web = await front.spawn(WEB)
            name = json.loads(await web.get())["Name"]
            nursery.cancel_scope.cancel()
    assert name == ("/alice-web" if forwarded else f"/uid-{os.getuid()}-web")
