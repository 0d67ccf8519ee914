"""Helpers for the docker tests: run ``dockerserver -> ...`` in-process, call the real docker CLI,
start a private dockerd."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Sequence

import trio

import libchan
import libswarm
from libswarm.backends.dockerserver import DockerServer

from ci import require as need  # skip unless the condition holds; under CI, fail instead
from swarmd_support import children_of

DOCKER_CLI = shutil.which("docker")


def _clis() -> list[str]:
    """The docker CLIs the CLI tests run with: the one on PATH, and Debian's
    ``/usr/bin/docker`` (an older client, 20.10 here) when it is installed too."""
    clis = [DOCKER_CLI] if DOCKER_CLI else []
    other = "/usr/bin/docker"
    if os.path.exists(other) and not any(os.path.samefile(other, c) for c in clis):
        clis.append(other)
    return clis


#: Every docker CLI to test with (see _clis); empty if there is none.
DOCKER_CLIS = _clis()


class Docker:
    """The docker CLI pointed at one daemon address."""

    def __init__(self, host: str, tls_args: Sequence[str] = (), cli: str | None = None) -> None:
        self.cli = cli or DOCKER_CLI
        self.host = host
        self.tls_args = list(tls_args)
        self.env = dict(os.environ, DOCKER_CONFIG=os.environ.get("DOCKER_CONFIG_TEST", "/nonexistent-docker-config"))
        for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(k, None)

    async def __call__(self, *args: str, stdin: bytes = b"", timeout: float = 20) -> subprocess.CompletedProcess:
        assert self.cli
        argv = [self.cli, "-H", self.host, *self.tls_args, *args]
        with trio.fail_after(timeout):
            return await trio.run_process(argv, stdin=stdin, capture_stdout=True, capture_stderr=True,
                                          check=False, env=self.env)

    async def ok(self, *args: str, stdin: bytes = b"", timeout: float = 20) -> str:
        """Run; assert exit 0; return stdout as text."""
        p = await self(*args, stdin=stdin, timeout=timeout)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p.stdout.decode()


async def _drain(receiver: trio.abc.ReceiveChannel) -> None:
    try:
        async for _ in receiver:
            pass
    except trio.BrokenResourceError:
        pass


@asynccontextmanager
async def docker_front(
    url: str, *backend: libswarm.Service, server_args: Sequence[str] = (), **options: Any
) -> AsyncIterator[DockerServer]:
    """Run ``dockerserver URL -> backend...`` as a chain; yield the DockerServer once it
    listens. ``options`` go to DockerServer (``limits=...``)."""
    front = DockerServer(url, *server_args, **options)
    out_s, out_r = libchan.pipe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(libswarm.chain, [front, *backend], None, out_s)
        nursery.start_soon(_drain, out_r)
        with trio.fail_after(10):
            await front.ready.wait()
        yield front
        nursery.cancel_scope.cancel()


async def raw_http(path_sock: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP/1.1 request over a unix socket; return (status, headers, body)."""
    stream = await trio.open_unix_socket(path_sock)
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


# -- a private dockerd -------------------------------------------------------------

IMAGE = "local/busybox"
"""The image every private dockerd has: busybox-static imported (there is no registry)."""


def _unmount_under(root: str) -> None:
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    for p in sorted((p for p in points if p.startswith(root)), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], check=False, capture_output=True, timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dockerd:
    """A running private dockerd: ``sock`` (its unix socket), ``tcp`` (``tcp://127.0.0.1:PORT``
    with ``--tlsverify``, when started with ``tls``), ``root`` (data-root, exec-root, pidfile and
    log all live under it)."""

    def __init__(self, root: str, sock: str, tcp: str | None, proc: subprocess.Popen) -> None:
        self.root = root
        self.sock = sock
        self.tcp = tcp
        self.proc = proc

    def kill(self) -> None:
        """SIGKILL the daemon, as a host that dies: its containers keep running (their shims
        outlive it) until the cleanup of :func:`private_dockerd`."""
        self.proc.kill()
        self.proc.wait(10)

    @property
    def cli(self) -> list[str]:
        """The docker CLI on the unix socket (host-side truth for tests)."""
        assert DOCKER_CLI
        return [DOCKER_CLI, "-H", f"unix://{self.sock}"]

    def log_tail(self) -> str:
        try:
            return Path(self.root, "dockerd.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def _kill_shims(root: str) -> None:
    """SIGKILL the containers (and their shims) of the dockerd under ``root`` that outlived it
    (a daemon killed with SIGKILL leaves them running): a shim names its containerd socket,
    ``ROOT/exec/containerd/containerd.sock``, on its command line; a container's init is its child."""
    marker = f"{root}/exec/containerd/".encode()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if b"containerd-shim" in cmdline and marker in cmdline:
            shim = int(entry.name)
            for pid in children_of(shim) + [shim]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@contextmanager
def private_dockerd(tls: Path | None = None, netns: str | None = None, hostname: str | None = None,
                    args: Sequence[str] = ()) -> Iterator[Dockerd]:
    """Start a dockerd that shares nothing with any other (own socket, data-root, exec-root,
    pidfile; no iptables, no bridge, vfs storage), import ``local/busybox``, yield it; stop it
    and clean up after (including the nsfs mount it leaves behind).

    ``netns``: the daemon runs in that network namespace (``ip netns add``; entered with
    ``nsenter --net``, not ``ip netns exec``, whose fresh /sys hides the cgroup mounts dockerd
    needs); its socket and files stay reachable from here. ``hostname``: the daemon runs in
    a UTS namespace of its own with that hostname (a Swarm mode node's name).

    ``tls``: a directory with ``ca.pem``, ``server.pem``, ``server.key`` (tests/swarmd_support.py
    ``Pki``): the daemon then also listens on ``tcp://127.0.0.1:PORT`` with ``--tlsverify``
    (client certificates signed by that CA required), next to its unix socket.

    Needs root, dockerd, /bin/busybox and the docker CLI: a skip without them (a failure under
    CI, tests/ci.py).
    """
    need(shutil.which("dockerd") is not None, "dockerd is not installed (apt-get install docker.io)")
    need(os.path.exists("/bin/busybox"), "/bin/busybox is missing (apt-get install busybox-static)")
    need(DOCKER_CLI is not None, "the docker CLI is not on PATH")
    need(os.geteuid() == 0, "dockerd needs root")
    need(netns is None or shutil.which("nsenter") is not None, "nsenter is not installed (util-linux)")
    need(hostname is None or shutil.which("unshare") is not None, "unshare is not installed (util-linux)")
    root = tempfile.mkdtemp(prefix="swarm-dockerd-")
    sock = os.path.join(root, "docker.sock")
    argv = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
            "--host", f"unix://{sock}", "--data-root", f"{root}/root", "--exec-root", f"{root}/exec",
            "--pidfile", f"{root}/pid", *args]
    tcp = None
    if tls is not None:
        tcp = f"tcp://127.0.0.1:{free_port()}"
        argv += ["--host", tcp, "--tlsverify", f"--tlscacert={tls / 'ca.pem'}",
                 f"--tlscert={tls / 'server.pem'}", f"--tlskey={tls / 'server.key'}"]
    log = open(os.path.join(root, "dockerd.log"), "wb")
    if hostname is not None:
        argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]
    if netns is not None:
        argv = ["nsenter", f"--net=/var/run/netns/{netns}", *argv]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    d = Dockerd(root, sock, tcp, proc)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(d.cli + ["version"], capture_output=True, timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("dockerd did not start: " + d.log_tail())
            time.sleep(0.2)
        rootfs = os.path.join(root, "rootfs")
        for sub in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            os.makedirs(os.path.join(rootfs, sub))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True,
                                 timeout=10).stdout.split()
        for a in applets:
            if a != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", a))
        tar = os.path.join(root, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True, timeout=30)
        subprocess.run(d.cli + ["import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV PATH=/bin", tar, IMAGE + ":latest"],
                       check=True, capture_output=True, timeout=60)
        yield d
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        _kill_shims(root)
        _unmount_under(root)  # the nsfs mount dockerd leaves at exec/netns/default
        shutil.rmtree(root, ignore_errors=True)
