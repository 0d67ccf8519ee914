"""Start nghttpx or haproxy as a subprocess in front of a libchan server (for the tests).

The proxies run cleartext HTTP/2 with prior knowledge on both sides (h2c), as
measured in /work/shared/notes/h2-through-proxies.md, with *short* idle
timeouts so the tests can prove in seconds that libchan's keepalive keeps idle
streams and parked requests alive.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ci import skip_or_fail

#: The proxies' idle timeout (haproxy ``timeout client``/``timeout server``,
#: nghttpx ``--backend-read-timeout``), in seconds.
PROXY_TIMEOUT = 4.0

PROXY_BINARIES = {"nghttpx": "nghttpx", "haproxy": "haproxy"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str) -> str:
    """Path of ``name``; skip if missing, but fail under CI (tests/ci.py)."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        msg = f"{name} is not installed (apt-get install -y " + (
            "nghttp2-proxy" if name == "nghttpx" else name
        ) + ")"
        skip_or_fail(msg)
    return path


def nghttpx_command(binary: str, port: int, backend_port: int, timeout: float = PROXY_TIMEOUT) -> list[str]:
    return [
        binary,
        "--conf=/dev/null",  # Debian's /etc/nghttpx/nghttpx.conf would stop startup
        f"--frontend=127.0.0.1,{port};no-tls",
        f"--backend=127.0.0.1,{backend_port};;proto=h2",
        "--workers=1",
        f"--backend-read-timeout={timeout:g}s",
        "--stream-read-timeout=0",  # >0 kills parked requests even with keepalive
        "--log-level=INFO",
        "--accesslog-file=/dev/stderr",
        "--errorlog-file=/dev/stderr",
    ]


def haproxy_config(port: int, backend_port: int, timeout: float = PROXY_TIMEOUT) -> str:
    return f"""\
global
    log stderr format raw local0 info
    tune.h2.max-concurrent-streams 100

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client {timeout:g}s
    timeout server {timeout:g}s

frontend libchan_in
    bind 127.0.0.1:{port} proto h2
    default_backend libchan_out

backend libchan_out
    server libchan 127.0.0.1:{backend_port} proto h2
"""


@dataclass
class Proxy:
    """A running proxy subprocess."""

    name: str
    port: int
    backend_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    tmpdir: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


async def _wait_listening(proxy: Proxy, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if proxy.process.poll() is not None:
            raise RuntimeError(
                f"{proxy.name} exited with status {proxy.process.returncode} before listening:\n{proxy.log()}"
            )
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proxy.name} did not listen on port {proxy.port}:\n{proxy.log()}") from None
            await trio.sleep(0.05)
            continue
        await stream.aclose()
        return


async def start_proxy(name: str, backend_port: int, timeout: float = PROXY_TIMEOUT) -> Proxy:
    """Start proxy ``name`` on a free port in front of ``127.0.0.1:backend_port``; wait until it listens."""
    binary = require_binary(PROXY_BINARIES[name])
    tmpdir = tempfile.mkdtemp(prefix=f"libchan-{name}-")
    log_path = Path(tmpdir) / f"{name}.log"
    for _attempt in range(3):
        port = free_port()
        if name == "nghttpx":
            cmd = nghttpx_command(binary, port, backend_port, timeout)
        else:
            cfg = Path(tmpdir) / "haproxy.cfg"
            cfg.write_text(haproxy_config(port, backend_port, timeout))
            cmd = [binary, "-db", "-f", str(cfg)]
        logf = open(log_path, "ab")
        try:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            logf.close()
        proxy = Proxy(name, port, backend_port, proc, log_path, tmpdir, {"command": " ".join(cmd)})
        try:
            await _wait_listening(proxy)
        except RuntimeError:
            if proc.poll() is None:
                proxy.process.kill()
                proxy.process.wait()
            if _attempt == 2:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise
            continue  # e.g. the port was taken meanwhile
        return proxy
    raise AssertionError("unreachable")
