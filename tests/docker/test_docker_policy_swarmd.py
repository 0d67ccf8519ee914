"""The policy stage in a real swarmd process: a bad rules file refused at start (exit 1, file,
line and reason), ``kill -HUP`` reloading the rules without dropping connections, a bad file
refused on reload with the old rules kept; and its ``--help``."""

from __future__ import annotations

import json
import subprocess
import signal
import socket

import pytest

from docker_helpers import DOCKER_CLI, need
from swarmd_support import SWARMD, Proc, run

pytestmark = pytest.mark.slow  # swarmd as a process, the docker CLI

DENY_PRIVILEGED = """
default = "allow"
[[rule]]
name = "no-privileged"
action = "deny"
reason = "privileged containers are not allowed"
match = { verb = "Spawn", on = "engine", privileged = true }
"""

DENY_NAMED = DENY_PRIVILEGED + """
[[rule]]
name = "no-forbidden"
action = "deny"
reason = "that name is reserved"
match = { verb = "Spawn", on = "engine", name = "forbidden*" }
"""


def docker(sock: str, *args: str) -> "subprocess.CompletedProcess[str]":
    return run([DOCKER_CLI, "-H", f"unix://{sock}", *args])


def get(conn: socket.socket, path: str) -> bytes:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += conn.recv(65536)
    return head.split(b"\r\n")[0] + b" " + body


def test_bad_rules_refused_at_start(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('default = "allow"\n\n[[rule]]\nname = "x"\naction = "deny"\nmatch = { privileged = "yes" }\n')
    r = run(SWARMD + [f"dockerserver unix://{tmp_path / 's.sock'}", f"policy {bad}", "simulator"])
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"swarmd: spawn policy: {bad}:6: rule \"x\": match key 'privileged': must be true or false"]
    assert not (tmp_path / "s.sock").exists()


def test_help_matches_the_code():
    from libswarm.backends import help_text
    from libswarm.backends.policy import Policy

    r = run(SWARMD + ["policy --help"])
    assert r.returncode == 0 and r.stdout == help_text("policy")
    assert r.stdout.startswith("policy: ") and "RULES_FILE [--audit FILE]" in r.stdout
    with pytest.raises(Exception, match=r"usage: policy RULES_FILE \[--audit FILE\]"):
        Policy()
    with pytest.raises(Exception, match="unknown option --nope"):
        Policy("x.toml", "--nope")


def test_hup_reloads_without_dropping_connections(tmp_path):
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    rules, audit, sock = tmp_path / "rules.toml", tmp_path / "audit.jsonl", str(tmp_path / "s.sock")
    rules.write_text(DENY_PRIVILEGED)
    proc = Proc(SWARMD + [f"dockerserver unix://{sock}", f"policy {rules} --audit {audit}", "simulator"])
    try:
        proc.wait_line(r"dockerserver: listening on", tag="err")
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(sock)
        assert get(conn, "/v1.41/containers/json").startswith(b"HTTP/1.1 200 ")
        assert docker(sock, "create", "--name", "forbidden1", "busybox", "true").returncode == 0

        rules.write_text(DENY_NAMED)
        proc.signal(signal.SIGHUP)
        proc.wait_line(r"policy: reloaded .*rules.toml \(2 rules\)", tag="err")
        r = docker(sock, "create", "--name", "forbidden2", "busybox", "true")
        assert r.returncode != 0 and "policy: that name is reserved (rule no-forbidden)" in r.stderr
        assert get(conn, "/v1.41/containers/json?all=1").startswith(b"HTTP/1.1 200 ")  # same connection

        rules.write_text(DENY_NAMED + '\n[[rule]]\nname = "broken"\naction = "deny"\nmatch = { verb = 3 }\n')
        proc.signal(signal.SIGHUP)
        line = proc.wait_line(r"policy: reload refused, the previous rules stay in force: (.*)", tag="err").group(1)
        assert line.startswith(f"{rules}:18: rule \"broken\": match key 'verb'")
        r = docker(sock, "create", "--name", "forbidden3", "busybox", "true")
        assert "(rule no-forbidden)" in r.stderr
        r = docker(sock, "run", "--rm", "--privileged", "busybox", "true")
        assert "(rule no-privileged)" in r.stderr
        assert get(conn, "/v1.41/containers/json").startswith(b"HTTP/1.1 200 ")
        conn.close()
        assert proc.p.poll() is None
    finally:
        proc.stop()
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    reloads = [(e["ok"], e.get("error", "")[:len(str(rules))]) for e in events if e.get("event") == "reload"]
    assert reloads == [(True, ""), (False, str(rules))]
    assert [e["rule"] for e in events if e.get("action") == "deny"] == ["no-forbidden", "no-forbidden", "no-privileged"]
