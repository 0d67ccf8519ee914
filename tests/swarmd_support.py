"""Helpers for the swarmd/swarmctl tests: real processes, TLS files."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import trustme

from ci import in_ci

ROOT = Path(__file__).resolve().parent.parent
SWARMD = [sys.executable, "-m", "libswarm.swarmd"]
SWARMCTL = [sys.executable, "-m", "libswarm.swarmctl"]
BIN = Path(sys.executable).parent
SWARMD_SCRIPT = str(BIN / "swarmd")      # the console scripts (pip install -e .)
SWARMCTL_SCRIPT = str(BIN / "swarmctl")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Proc:
    """A running process whose stdout/stderr lines are collected by threads."""

    def __init__(self, argv: list[str], prefix: list[str] | None = None) -> None:
        self.argv = (prefix or []) + argv
        self.p = subprocess.Popen(
            self.argv, cwd=ROOT, env=ENV, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._q: queue.Queue[tuple[str, str]] = queue.Queue()
        for stream, sink, tag in ((self.p.stdout, self.out, "out"), (self.p.stderr, self.err, "err")):
            threading.Thread(target=self._read, args=(stream, sink, tag), daemon=True).start()

    def _read(self, stream, sink, tag) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sink.append(line)
            self._q.put((tag, line))
        stream.close()

    @property
    def pid(self) -> int:
        return self.p.pid

    def wait_line(self, pattern: str, timeout: float = 10, tag: str | None = None) -> re.Match:
        """Wait for a line (stdout or stderr, or just ``tag``) matching ``pattern``."""
        rx = re.compile(pattern)
        for line in (self.out if tag != "err" else []) + (self.err if tag != "out" else []):
            m = rx.search(line)
            if m:
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s from {self.argv}: out={self.out} err={self.err} rc={self.p.poll()}")
            try:
                t, line = self._q.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if tag is None or t == tag:
                m = rx.search(line)
                if m:
                    return m

    def listening(self, timeout: float = 15) -> str:
        """The URL printed by a listen stage (``listen: serving on URL``)."""
        return self.wait_line(r"listen: serving on (\S+)", timeout, tag="err").group(1)

    def signal(self, sig: int) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        rc = self.p.wait(timeout)
        time.sleep(0.05)  # let the reader threads drain
        return rc

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL (the whole process group)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(8)
            except subprocess.TimeoutExpired:
                pass
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.p.kill()
            self.p.wait(5)


def run(argv: list[str], timeout: float = 20, prefix: list[str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run((prefix or []) + argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, **kw)


def swarmctl(url: str, *args: str, tls: "Pki | None" = None, client: str = "client", timeout: float = 20,
             prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    opts = tls.client_opts(client) if tls is not None else []
    return run(SWARMCTL + opts + [url, *args], timeout=timeout, prefix=prefix)


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Pki:
    """Two CAs written to files: ``main`` signs the servers and the good client, ``other`` a rogue peer."""

    def __init__(self, directory: Path, server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()
        self.ca.cert_pem.write_to_path(str(self.path("ca.pem")))
        self.other_ca.cert_pem.write_to_path(str(self.path("other-ca.pem")))
        self._issue("server", self.ca, server_names)
        self._issue("client", self.ca, ("client.example",))
        self._issue("rogue-client", self.other_ca, ("client.example",))
        self._issue("rogue-server", self.other_ca, server_names)

    def path(self, name: str) -> Path:
        return self.dir / name

    def _issue(self, who: str, ca: trustme.CA, names: tuple[str, ...]) -> None:
        cert = ca.issue_cert(*names)
        self.path(f"{who}.key").write_bytes(cert.private_key_pem.bytes())
        self.path(f"{who}.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))

    def server_opts(self, who: str = "server") -> str:
        return f"--cert {self.path(who + '.pem')} --key {self.path(who + '.key')} --ca {self.path('ca.pem')}"

    def client_opts(self, who: str = "client") -> list[str]:
        opts = ["--ca", str(self.path("ca.pem"))]
        if who:
            opts += ["--cert", str(self.path(f"{who}.pem")), "--key", str(self.path(f"{who}.key"))]
        return opts


# -- hosts as network namespaces ---------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class Hosts:
    """Hosts as network namespaces: a ``hub`` joined to each of ``peers`` by a veth pair
    (link ``i`` = 1, 2, ...: the hub is ``SUBNET.i.1``, peer ``i`` is ``SUBNET.i.2``). Peers
    have no link to each other: only the hub reaches them.

    ``setup()`` falls back to loopback ports on this host when namespaces cannot be made (not
    root, no ``ip``, or ``SWARMD_TEST_NO_NETNS=1``), saying so (a warning and a printed line);
    under CI (tests/ci.py) it never falls back: the test fails instead.
    ``teardown()`` stops every process started with :meth:`start` and deletes the namespaces
    (which removes the veths).
    """

    def __init__(self, hub: str = "A", peers: tuple[str, ...] = ("B", "C"), *, tag: str = "sw",
                 subnet: str = "10.231", who: str = "test_hosts_netns") -> None:
        self.netns = False
        self.hub, self.peers, self.subnet, self.who = hub, tuple(peers), subnet, who
        self.tag = f"{tag}{os.getpid() % 100000}"
        self.names = {h: f"{self.tag}{h}" for h in (hub, *peers)}
        self.created: list[str] = []
        self.procs: list[Proc] = []

    def setup(self) -> None:
        import shutil
        import warnings

        import pytest

        try:
            if os.environ.get("SWARMD_TEST_NO_NETNS", "").strip().lower() not in ("", "0", "false", "no", "off"):
                raise RuntimeError("SWARMD_TEST_NO_NETNS is set")
            if os.geteuid() != 0:
                raise RuntimeError("not root")
            if shutil.which("ip") is None:
                raise RuntimeError("iproute2 (ip) is not installed")
            for ns in self.names.values():
                _ip("netns", "add", ns)
                self.created.append(ns)
            hub_ns = self.names[self.hub]
            for i, peer in enumerate(self.peers, 1):
                h_if, p_if = f"{self.tag}{self.hub.lower()}{i}", f"{self.tag}{peer.lower()}"
                _ip("link", "add", h_if, "type", "veth", "peer", "name", p_if)
                _ip("link", "set", h_if, "netns", hub_ns)
                _ip("link", "set", p_if, "netns", self.names[peer])
                _ip("-n", hub_ns, "addr", "add", f"{self.subnet}.{i}.1/24", "dev", h_if)
                _ip("-n", self.names[peer], "addr", "add", f"{self.subnet}.{i}.2/24", "dev", p_if)
                _ip("-n", hub_ns, "link", "set", h_if, "up")
                _ip("-n", self.names[peer], "link", "set", p_if, "up")
            for ns in self.names.values():
                _ip("-n", ns, "link", "set", "lo", "up")
            self.netns = True
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            self.teardown()
            reason = f"network namespaces unavailable ({exc} {detail.strip()})".strip()
            if in_ci():
                pytest.fail(f"{reason}; CI is set, so no loopback fallback")
            msg = f"{self.who}: {reason}: FALLING BACK to loopback ports on this host"
            print(msg)
            warnings.warn(msg)

    def address(self, peer: str) -> str:
        """The address of ``peer`` as the hub sees it (netns only)."""
        return f"{self.subnet}.{self.peers.index(peer) + 1}.2"

    def prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[host]] if self.netns else []

    def start(self, host: str, *specs: str) -> Proc:
        p = Proc(SWARMD + list(specs), prefix=self.prefix(host))
        self.procs.append(p)
        return p

    def listen_url(self, host: str) -> str:
        return "tls://0.0.0.0:4000" if self.netns else "tls://127.0.0.1:0"

    def teardown(self) -> None:
        for p in self.procs:
            try:
                p.stop()
            except Exception:
                pass
        for ns in self.created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.created = []


class Lan:
    """Hosts as network namespaces on one Ethernet segment: a ``switch`` namespace holds a
    bridge, each host a veth into it with address ``SUBNET.0.i`` (i = 1, 2, ...), so every
    host reaches every other (unlike :class:`Hosts`' star). No loopback fallback: what needs a
    LAN (a Swarm mode cluster: fixed ports 7946 and 4789 on each node) cannot share one
    address; without root or ``ip`` the test is skipped, and under CI (tests/ci.py) fails.
    ``teardown()`` deletes the namespaces (which removes the veths and the bridge).
    """

    def __init__(self, hosts: tuple[str, ...] = ("A", "B", "C"), *, tag: str = "lan", subnet: str = "10.236") -> None:
        self.hosts, self.subnet = tuple(hosts), subnet
        self.tag = f"{tag}{os.getpid() % 100000}"
        self.names = {h: f"{self.tag}{h}" for h in self.hosts}
        self.switch = f"{self.tag}sw"
        self.created: list[str] = []

    def setup(self) -> None:
        import shutil

        from ci import require

        forced_off = os.environ.get("SWARMD_TEST_NO_NETNS", "").strip().lower() not in ("", "0", "false", "no", "off")
        require(not forced_off, "SWARMD_TEST_NO_NETNS is set (a LAN has no loopback fallback)")
        require(os.geteuid() == 0, "network namespaces need root")
        require(shutil.which("ip") is not None, "iproute2 (ip) is not installed")
        try:
            _ip("netns", "add", self.switch)
            self.created.append(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for host, ns in self.names.items():
                _ip("netns", "add", ns)
                self.created.append(ns)
                ours, port = f"{self.tag}{host.lower()}", f"{self.tag}{host.lower()}p"
                _ip("link", "add", ours, "type", "veth", "peer", "name", port)
                _ip("link", "set", ours, "netns", ns)
                _ip("link", "set", port, "netns", self.switch)
                _ip("-n", self.switch, "link", "set", port, "master", "br0")
                _ip("-n", self.switch, "link", "set", port, "up")
                _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", ours)
                _ip("-n", ns, "link", "set", ours, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.teardown()
            raise

    def address(self, host: str) -> str:
        return f"{self.subnet}.0.{self.hosts.index(host) + 1}"

    def prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[host]]

    def teardown(self) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.created = []
