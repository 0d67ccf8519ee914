"""A live Go libchan peer for the tests: the upstream rexec binaries, each pairing in a netns.

The binaries (``rexec``, ``rexec_server``) and the server's ``cert.pem``/``key.pem`` live
outside the repository, by default in ``../shared/interop/go-peer`` relative to the
repository root (the environment variable ``LIBCHAN_GO_PEER`` overrides it; a relative
value is taken relative to the repository root, never to the cwd). See the README.md there.

Both Go programs use the fixed port 9323 (the server listens on localhost:9323, the
client dials 127.0.0.1:9323), so every pairing runs in a network namespace of its own
(:class:`Netns`: ``ip netns add``, loopback up, every process started through ``ip netns
exec``; :meth:`Netns.close` stops what was started, kills whatever is still left in the
namespace -- the Go server leaves its commands behind -- and deletes it). Python code
that must talk to a server in the namespace runs there with :meth:`Netns.run_trio`
(``trio.run`` in a thread that joined the namespace with ``setns(2)``).

A missing binary or a missing privilege (not root, no ``ip``, ``ip netns add`` refused)
skips the test -- or, under CI (tests/ci.py), fails it.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from ci import skip_or_fail

__all__ = [
    "REPO_ROOT",
    "PORT",
    "go_peer_dir",
    "require_live_go",
    "Netns",
    "Server",
    "Result",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RELATIVE = Path("..") / "shared" / "interop" / "go-peer"
ENV_VAR = "LIBCHAN_GO_PEER"
PORT = 9323
TIMEOUT = 30.0  # seconds, for every process and every wait
PEER_FILES = ("rexec", "rexec_server", "cert.pem", "key.pem")

_T = TypeVar("_T")
_CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def go_peer_dir() -> Path:
    raw = os.environ.get(ENV_VAR)
    path = Path(raw).expanduser() if raw else DEFAULT_RELATIVE
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path.resolve()


def require_live_go() -> Path:
    """The go-peer directory, once everything the live tests need is there (else skip/fail)."""
    path = go_peer_dir()
    missing = [name for name in PEER_FILES if not (path / name).is_file()]
    if missing:
        skip_or_fail(f"live Go peer: {', '.join(missing)} not found in {path} (set {ENV_VAR})")
    for name in ("rexec", "rexec_server"):
        if not os.access(path / name, os.X_OK):
            skip_or_fail(f"live Go peer: {path / name} is not executable")
    if os.geteuid() != 0:
        skip_or_fail("live Go peer: network namespaces need root (ip netns add, setns)")
    if shutil.which("ip") is None:
        skip_or_fail("live Go peer: iproute2 (ip) is not installed; it makes the network namespaces")
    return path


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=TIMEOUT)


class Result:
    """What a client process did: ``code``, ``out``, ``err`` (bytes) and ``seconds``."""

    def __init__(self, code: int, out: bytes, err: bytes, seconds: float) -> None:
        self.code, self.out, self.err, self.seconds = code, out, err, seconds

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[:200]!r}, err={self.err[:500]!r})"


class Netns:
    """A network namespace of our own with loopback up; ``close()`` always cleans up."""

    def __init__(self, tag: str) -> None:
        self.name = f"lcgo{os.getpid()}{tag}{next(_counter)}"
        self.path = Path("/run/netns") / self.name
        self.procs: list[subprocess.Popen[bytes]] = []
        self.created = False

    def open(self) -> Netns:
        done = _ip("netns", "add", self.name)
        if done.returncode != 0:
            skip_or_fail(f"live Go peer: cannot make a network namespace: ip netns add: {done.stderr.strip()}")
        self.created = True
        done = _ip("-n", self.name, "link", "set", "lo", "up")
        if done.returncode != 0:
            self.close()
            skip_or_fail(f"live Go peer: cannot bring up lo in a network namespace: {done.stderr.strip()}")
        return self

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([*self.prefix(), *argv], **kw)
        self.procs.append(proc)
        return proc

    def run(self, argv: list[str], *, input: bytes | None = b"", env: dict[str, str] | None = None,
            timeout: float = TIMEOUT) -> Result:
        t0 = time.monotonic()
        done = subprocess.run([*self.prefix(), *argv], input=input, capture_output=True, env=env,
                              timeout=timeout, cwd=REPO_ROOT)  # fmt: skip
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - t0)

    def pids(self) -> list[int]:
        done = _ip("netns", "pids", self.name)
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def run_trio(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """``trio.run(fn)`` in a thread that joined this namespace (sockets it opens live here)."""
        import trio

        box: dict[str, Any] = {}

        def main() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({self.path}): {os.strerror(err)}")
                finally:
                    os.close(fd)
                box["value"] = trio.run(fn)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc

        # A thread of its own, never reused: it ends in the namespace.
        thread = threading.Thread(target=main, name=f"netns {self.name}", daemon=True)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def wait_port(self, port: int = PORT, timeout: float = TIMEOUT) -> None:
        """Wait until something accepts TCP connections on 127.0.0.1:port in the namespace."""

        async def probe() -> bool:
            import trio

            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                return True
            return False

        if not self.run_trio(probe):
            raise AssertionError(f"nothing listens on 127.0.0.1:{port} in {self.name} after {timeout}s")

    def close(self) -> None:
        """Stop what we started (SIGTERM, then SIGKILL), kill what is left inside, delete it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs = []
        if self.created:
            # Commands a killed server left behind (Go's does): every process in this
            # namespace was started by this test.
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            done = _ip("netns", "del", self.name)
            if done.returncode != 0 and self.path.exists():
                raise AssertionError(f"ip netns del {self.name}: {done.stderr.strip()}")
            self.created = False


def _py_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Server:
    """A rexec server (``kind`` "go" or "py") on 127.0.0.1:9323 in a namespace of its own."""

    def __init__(self, kind: str, tls: bool, tmp: Path) -> None:
        self.kind, self.tls, self.tmp = kind, tls, tmp
        self.peer = go_peer_dir()
        self.cert, self.key = str(self.peer / "cert.pem"), str(self.peer / "key.pem")
        self.ns = Netns("s" if kind == "py" else "g")
        self.log_path = tmp / f"{kind}-server-{'tls' if tls else 'plain'}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"{'tls' if tls else 'tcp'}://127.0.0.1:{PORT}"

    def start(self) -> Server:
        self.ns.open()
        try:
            env = dict(os.environ)
            if self.kind == "go":
                argv = [str(self.peer / "rexec_server")]
                if self.tls:
                    env.update(TLS_CERT=self.cert, TLS_KEY=self.key)
                else:
                    env.pop("TLS_CERT", None)
                    env.pop("TLS_KEY", None)
            else:
                argv = [sys.executable, "-m", "libchan.examples.rexec", "server", "--listen", self.url]
                if self.tls:
                    argv += ["--cert", self.cert, "--key", self.key]
                env = _py_env()
            with open(self.log_path, "wb") as log:
                self.proc = self.ns.popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                          cwd=REPO_ROOT)  # fmt: skip
            if self.kind == "py":
                deadline = time.monotonic() + TIMEOUT
                while "listening on" not in self.log():
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"our rexec server did not start:\n{self.log()}")
                    time.sleep(0.02)
            self.ns.wait_port()
        except BaseException:
            self.close()
            raise
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"the {self.kind} server died:\n{self.log()}"

    def close(self) -> None:
        self.ns.close()

    # -- clients in the same namespace ---------------------------------------------------

    def go_client(self, *argv: str, input: bytes | None = b"", timeout: float = TIMEOUT) -> Result:
        """The upstream Go client (``USE_TLS=1`` against a TLS server)."""
        env = {k: v for k, v in os.environ.items() if k != "USE_TLS"}
        if self.tls:
            env["USE_TLS"] = "1"
        return self.ns.run([str(self.peer / "rexec"), *argv], input=input, env=env, timeout=timeout)

    def go_client_popen(self, *argv: str, **kw: Any) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "USE_TLS"}
        if self.tls:
            env["USE_TLS"] = "1"
        return self.ns.popen([str(self.peer / "rexec"), *argv], env=env, **kw)

    def py_client_argv(self, *argv: str, profile: str = "spdy") -> list[str]:
        args = [sys.executable, "-m", "libchan.examples.rexec", "client", "--profile", profile,
                "--connect", self.url]  # fmt: skip
        if self.tls:
            args += ["--ca", self.cert]  # the self-signed certificate is its own CA
        return [*args, *argv]

    def py_client(self, *argv: str, input: bytes | None = b"", profile: str = "spdy",
                  timeout: float = TIMEOUT) -> Result:  # fmt: skip
        """Our rexec client (Go profile unless told otherwise)."""
        return self.ns.run(self.py_client_argv(*argv, profile=profile), input=input, env=_py_env(), timeout=timeout)

    def py_client_popen(self, *argv: str, profile: str = "spdy", **kw: Any) -> subprocess.Popen[bytes]:
        return self.ns.popen(self.py_client_argv(*argv, profile=profile), env=_py_env(), cwd=REPO_ROOT, **kw)

    def ssl_context(self) -> Any:
        """A client SSLContext trusting the Go peer's self-signed certificate (None: plain)."""
        if not self.tls:
            return None
        import ssl

        return ssl.create_default_context(cafile=self.cert)

