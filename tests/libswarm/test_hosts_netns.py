"""Three hosts: network namespaces A, B, C joined by veth pairs; swarmd on each, mutual TLS.

    A: swarmd 'listen unix:///tmp/.../a.sock' 'aggregate "connect ... tls://B:4000" "connect ... tls://C:4000"'
    B: swarmd 'listen --cert ... tls://0.0.0.0:4000' simulator
    C: swarmd 'listen --cert ... tls://0.0.0.0:4000' 'exec sleep 300'

swarmctl runs inside namespace A. Needs root and ``ip`` (iproute2). Without them the
test falls back to loopback ports and says so (a warning and a printed line); with the
environment variable CI set (tests/ci.py) it never falls back: it fails instead.
``SWARMD_TEST_NO_NETNS=1`` forces the fallback (to exercise it).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from swarmd_support import SWARMCTL, Hosts, Pki, Proc, run

pytestmark = pytest.mark.slow  # network namespaces and swarmd processes

SUBNET = "10.231"


@pytest.fixture
def hosts():
    h = Hosts("A", ("B", "C"), tag="sw", subnet=SUBNET, who="test_hosts_netns")
    try:
        h.setup()
        yield h
    finally:
        h.teardown()


def test_three_hosts(hosts, tmp_path):
    pki = Pki(tmp_path / "pki", server_names=(f"{SUBNET}.1.2", f"{SUBNET}.2.2", "127.0.0.1", "localhost"))
    b = hosts.start("B", f"listen {pki.server_opts()} {hosts.listen_url('B')}", "simulator")
    c = hosts.start("C", f"listen {pki.server_opts()} {hosts.listen_url('C')}", "exec sleep 300")
    b_url, c_url = b.listening(), c.listening()
    if hosts.netns:
        b_url, c_url = f"tls://{SUBNET}.1.2:4000", f"tls://{SUBNET}.2.2:4000"
    copts = " ".join(pki.client_opts())
    sock = tmp_path / "a.sock"
    a = hosts.start("A", f"listen unix://{sock}", f'aggregate "connect {copts} {b_url}" "connect {copts} {c_url}"')
    url = a.listening()
    print(f"hosts: {'network namespaces ' + ', '.join(hosts.names.values()) if hosts.netns else 'LOOPBACK FALLBACK'}; B={b_url} C={c_url}")

    def ctl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return run(SWARMCTL + [url, *args], timeout=timeout, prefix=hosts.prefix("A"))

    # ls / spawn (placed on B: C's exec cannot spawn) / start / attach / stop
    r = ctl("ls")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = ctl("spawn", json.dumps({"name": "web", "Cmd": ["sh", "-c", "echo hello from B; sleep 60"]}))
    assert r.returncode == 0 and r.stdout.strip() == "web", r.stderr
    assert ctl("ls").stdout.split() == ["web"]
    attach = Proc(SWARMCTL + [url, "attach", "web"], prefix=hosts.prefix("A"))
    hosts.procs.append(attach)
    time.sleep(0.5)
    r = ctl("start", "web")
    assert r.returncode == 0, r.stderr
    attach.wait_line("^hello from B$", tag="out")
    info = json.loads(ctl("get").stdout)
    assert [ch["Info"]["Driver"] for ch in info["Children"]] == ["simulator", "exec"]
    assert info["Children"][1]["Info"]["State"]["Running"] is True   # C's process

    # an error on C reaches A with its text
    r = ctl("spawn", json.dumps({"name": "1/x", "Cmd": ["true"]}))
    assert r.returncode == 1 and r.stderr.strip() == "swarmctl: not implemented: Spawn", r.stderr
    r = ctl("start")  # the engine-wide Start reaches C's running process
    assert r.returncode == 1 and r.stderr.startswith(f"swarmctl: child 1 (connect {copts} {c_url}): "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # a pending request through the aggregate, then B dies (SIGKILL)
    watch = Proc(SWARMCTL + [url, "watch"], prefix=hosts.prefix("A"))
    hosts.procs.append(watch)
    time.sleep(1)
    b.p.kill()
    t0 = time.monotonic()
    assert watch.wait(10) == 1
    assert attach.wait(10) == 1
    assert time.monotonic() - t0 < 5, time.monotonic() - t0
    assert any(f"connect {b_url}: connection lost" in line for line in watch.err), watch.err
    assert len(attach.err) == 1 and attach.err[0].startswith("swarmctl: "), attach.err
    # the aggregate degrades: ls lists the healthy child's names, get says child 0 is down and why
    r = ctl("ls", timeout=15)
    assert r.returncode == 0, r.stderr
    children = json.loads(ctl("get", timeout=15).stdout)["Children"]
    assert children[0]["State"].startswith(f"down: connect {b_url}: "), children[0]
    assert children[1]["State"] == "up"
    # C is still reachable through A (a request placed on child 1 gets C's own answer)
    r = ctl("spawn", json.dumps({"name": "1/y", "Cmd": ["true"]}))
    assert r.returncode == 1 and r.stderr.strip() == "swarmctl: not implemented: Spawn", r.stderr
    assert a.p.poll() is None and c.p.poll() is None  # A and C survived
