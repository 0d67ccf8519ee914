"""The rexec example (libchan/examples/rexec.py), run as real processes and in process."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

import libchan
from libchan.examples import rexec

from ci import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
MODULE = [sys.executable, "-m", "libchan.examples.rexec"]
TIMEOUT = 30  # seconds, for every subprocess


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(*args: str, input: bytes | None = b"", **kw) -> subprocess.CompletedProcess[bytes]:
    """Run the module with ``args``; stdin from ``input`` (None: inherit /dev/null)."""
    kw.setdefault("stdin", subprocess.DEVNULL if input is None else None)
    return subprocess.run(
        [*MODULE, *args],
        input=input,
        capture_output=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=_env(),
        **kw,
    )


class Server:
    """``rexec server`` in a subprocess; ``url`` is the URL it bound (port 0 -> a free port)."""

    def __init__(self, tmp_path: Path, *extra: str, listen: str = "tcp://127.0.0.1:0") -> None:
        self.log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*MODULE, "server", "--listen", listen, *extra],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            cwd=ROOT,
            env=_env(),
        )
        deadline = time.monotonic() + TIMEOUT
        while True:
            text = self.log_path.read_text(errors="replace")
            m = re.search(r"listening on (\S+)", text)
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"server did not start:\n{text}")
            time.sleep(0.02)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def tcp_server(tmp_path):
    server = Server(tmp_path)
    yield server
    server.close()
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture
def certs(tmp_path):
    try:
        import trustme
    except ImportError:
        skip_or_fail("trustme is not installed (pip install -e '.[test]')")
    ca = trustme.CA()
    other_ca = trustme.CA()
    files = {}

    def write(name: str, blob) -> str:
        path = tmp_path / name
        blob.write_to_path(str(path))
        files[name] = str(path)
        return str(path)

    write("ca.pem", ca.cert_pem)
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    write("server.pem", server_cert.cert_chain_pems[0])
    write("server.key", server_cert.private_key_pem)
    client_cert = ca.issue_cert("client@example.org")
    write("client.pem", client_cert.private_key_and_cert_chain_pem)  # cert + key in one file
    write("stranger.pem", other_ca.issue_cert("client@example.org").private_key_and_cert_chain_pem)
    write("other-ca.pem", other_ca.cert_pem)
    return files


@pytest.fixture
def tls_server(tmp_path, certs):
    server = Server(
        tmp_path,
        "--cert", certs["server.pem"], "--key", certs["server.key"], "--ca", certs["ca.pem"],
        listen="tls://127.0.0.1:0",
    )  # fmt: skip
    yield server
    server.close()
    assert "Traceback" not in server.output(), server.output()


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- command line -----------------------------------------------------------------------------


@pytest.mark.slow
def test_help():
    result = run("--help")
    assert result.returncode == 0
    assert b"server" in result.stdout and b"client" in result.stdout and b"demo" in result.stdout
    for mode in ("server", "client", "demo"):
        result = run(mode, "--help")
        assert result.returncode == 0, result.stderr
    assert b"--connect" in run("client", "--help").stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["client", "true"],  # no --connect
        ["client", "--connect", "tcp://127.0.0.1:1"],  # no command
        ["client", "--connect", "http://127.0.0.1:1", "true"],  # bad scheme
        ["client", "--connect", "tcp://127.0.0.1", "true"],  # no port
        ["client", "--connect", "tls://127.0.0.1:1", "--ca", "/nonexistent/ca.pem", "true"],
        ["client", "--connect", "tcp://127.0.0.1:1", "--ca", "/etc/passwd", "true"],  # TLS option on tcp
        ["server", "--listen", "tls://127.0.0.1:0"],  # no --cert
        ["server", "--listen", "tls://127.0.0.1:0", "--cert", "/nonexistent/cert.pem"],
        ["server", "--listen", "bogus"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2, result
    assert b"Traceback" not in result.stderr
    assert b"error" in result.stderr


@pytest.mark.slow
def test_connection_refused_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("client", "--connect", f"tcp://127.0.0.1:{port}", "true")
    assert result.returncode == 255
    assert "connect" in one_line_error(result)


@pytest.mark.slow
def test_server_cannot_listen(tcp_server):
    result = run("server", "--listen", tcp_server.url)  # port already taken
    assert result.returncode == 1
    assert "cannot listen" in one_line_error(result)


# -- plain TCP ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_stdin_piped_to_remote_cat(tcp_server):
    result = run("client", "--connect", tcp_server.url, "cat", input=b"hi\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hi\n"
    assert result.stderr == b""
    assert "running cat" in tcp_server.output()


@pytest.mark.slow
def test_stdout_and_stderr_kept_apart(tcp_server):
    script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2"
    result = run("client", "--connect", tcp_server.url, "sh", "-c", script)
    assert result.returncode == 0
    assert result.stdout == b"out1\nout2\n"
    assert result.stderr == b"err1\nerr2\n"


@pytest.mark.slow
@pytest.mark.parametrize("status", [0, 1, 3, 42, 255])
def test_exit_status_propagates(tcp_server, status):
    result = run("client", "--connect", tcp_server.url, "sh", "-c", f"exit {status}")
    assert result.returncode == status, result.stderr


@pytest.mark.slow
def test_killed_by_signal_gives_128_plus_n(tcp_server):
    result = run("client", "--connect", tcp_server.url, "sh", "-c", "kill -9 $$")
    assert result.returncode == 128 + 9


@pytest.mark.slow
def test_unknown_command_gives_127(tcp_server):
    result = run("client", "--connect", tcp_server.url, "no-such-command-xyz", "arg")
    assert result.returncode == 127
    assert result.stdout == b""
    assert b"no-such-command-xyz" in result.stderr
    # The server is still fine afterwards.
    assert run("client", "--connect", tcp_server.url, "true").returncode == 0


@pytest.mark.slow
def test_stdin_from_dev_null_and_closed_stdin(tcp_server):
    assert run("client", "--connect", tcp_server.url, "cat", input=None).stdout == b""
    # fd 0 closed altogether (``<&-``): trio's own descriptors must not be taken for stdin.
    cmd = " ".join(["exec", *MODULE, "client", "--connect", tcp_server.url, "sh", "-c", "'cat; echo done'", "<&-"])
    result = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=TIMEOUT, cwd=ROOT, env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"done\n"


@pytest.mark.slow
def test_binary_data_round_trip(tcp_server):
    data = os.urandom(3 * 1024 * 1024 + 17)
    result = run("client", "--connect", tcp_server.url, "cat", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


def _readline(stream, deadline: float) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; read so far {line!r}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), 1)
            assert chunk, f"EOF after {line!r}"
            line += chunk
    return line


@pytest.mark.slow
def test_stdio_is_live_both_ways(tcp_server):
    """Output arrives while the command still runs, and input typed later reaches it."""
    script = 'echo ready; read a; echo "got $a"; read b; echo "got $b" >&2; exit 7'
    client = subprocess.Popen(
        [*MODULE, "client", "--connect", tcp_server.url, "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        assert _readline(client.stdout, deadline) == b"ready\n"
        client.stdin.write(b"one\n")
        client.stdin.flush()
        assert _readline(client.stdout, deadline) == b"got one\n"
        client.stdin.write(b"two\n")
        client.stdin.close()
        assert _readline(client.stderr, deadline) == b"got two\n"
        assert client.wait(timeout=TIMEOUT) == 7
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        for f in (client.stdout, client.stderr):
            f.close()


@pytest.mark.slow
def test_client_does_not_wait_for_unused_stdin(tcp_server):
    """The command ends while our stdin stays open: the client still exits at once."""
    client = subprocess.Popen(
        [*MODULE, "client", "--connect", tcp_server.url, "sh", "-c", "echo bye; exit 4"],
        stdin=subprocess.PIPE,  # never written, never closed until the end
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert client.wait(timeout=TIMEOUT) == 4
        assert client.stdout.read() == b"bye\n"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        client.stdin.close()
        client.stdout.close()
        client.stderr.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_command_is_killed_when_the_client_dies(tcp_server):
    """A client killed mid-command (connection lost, no goodbye): the server kills the command."""
    client = subprocess.Popen(
        [*MODULE, "client", "--connect", tcp_server.url, "sh", "-c", "echo $$; sleep 60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    try:
        remote_pid = int(_readline(client.stdout, time.monotonic() + TIMEOUT))
        assert _alive(remote_pid)
        client.kill()
        client.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + 10
        while _alive(remote_pid):
            assert time.monotonic() < deadline, "the remote command outlived its client"
            time.sleep(0.05)
        # (reaped, then logged: the log line may come a moment after the pid is gone)
        while "killed: the client went away" not in tcp_server.output():
            assert time.monotonic() < deadline, tcp_server.output()
            time.sleep(0.05)
        # ...and the server still serves.
        assert run("client", "--connect", tcp_server.url, "echo", "still here").stdout == b"still here\n"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        client.stdout.close()
        client.stderr.close()


@pytest.mark.slow
def test_unix_socket(tmp_path):
    server = Server(tmp_path, listen=f"unix://{tmp_path}/rexec.sock")
    try:
        result = run("client", "--connect", server.url, "cat", input=b"over unix\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"over unix\n"
    finally:
        server.close()


# -- mutual TLS ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_mutual_tls(tls_server, certs):
    result = run(
        "client", "--connect", tls_server.url, "--ca", certs["ca.pem"], "--cert", certs["client.pem"],
        "sh", "-c", "cat; echo oops >&2; exit 5",
        input=b"secret\n",
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert result.stdout == b"secret\n"
    assert result.stderr == b"oops\n"


@pytest.mark.slow
def test_mutual_tls_refuses_client_without_certificate(tls_server, certs):
    result = run("client", "--connect", tls_server.url, "--ca", certs["ca.pem"], "true")
    assert result.returncode == 255
    assert "client certificate" in one_line_error(result)  # the hint


@pytest.mark.slow
def test_mutual_tls_refuses_client_certificate_from_another_ca(tls_server, certs):
    result = run("client", "--connect", tls_server.url, "--ca", certs["ca.pem"], "--cert", certs["stranger.pem"], "true")
    assert result.returncode == 255
    one_line_error(result)


@pytest.mark.slow
def test_client_refuses_untrusted_server(tls_server, certs):
    result = run(
        "client", "--connect", tls_server.url, "--ca", certs["other-ca.pem"], "--cert", certs["client.pem"], "true"
    )
    assert result.returncode == 255
    assert "CERTIFICATE_VERIFY_FAILED" in one_line_error(result)


# -- demo -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_default_command():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out, err = result.stdout.decode(), result.stderr.decode()
    assert "Traceback" not in err
    assert "hello from" in out
    assert "mutual TLS" in out
    assert "without a certificate is refused" in out
    assert out.strip().splitlines()[-1] == "demo: remote command exited with status 3"
    assert "\nthis line went to stderr\n" in err
    assert "\nthis line went to stderr\n" not in out


@pytest.mark.slow
def test_demo_custom_command_with_stdin():
    result = run("demo", "sh", "-c", "tr a-z A-Z; exit 6", input=b"shout\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().strip().splitlines()
    assert "SHOUT" in lines
    assert lines[-1] == "demo: remote command exited with status 6"


# -- in process, without file descriptors -----------------------------------------------------


async def _collect(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    while data := await stream.receive_some():
        into += data


async def test_in_process_with_stream_pipes():
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(lambda task_status: rexec.serve("tcp://127.0.0.1:0", task_status=task_status))
            async with libchan.connect(urls[0]) as session:
                results = []
                for argv, feed in (
                    (["sh", "-c", "cat; echo to-err >&2; exit 9"], b"alpha\nbeta\n"),
                    (["no-such-command-xyz"], b""),
                    (["true"], None),
                ):
                    in_w, in_r = libchan.stream_pipe()
                    out_w, out_r = libchan.stream_pipe()
                    err_w, err_r = libchan.stream_pipe()
                    out, err = bytearray(), bytearray()
                    async with trio.open_nursery() as inner:
                        inner.start_soon(_collect, out_r, out)
                        inner.start_soon(_collect, err_r, err)
                        if feed is not None:
                            await in_w.send_all(feed)
                            await in_w.send_eof()
                        code = await rexec.remote_exec(
                            session, argv, stdin=in_r if feed is not None else None, stdout=out_w, stderr=err_w
                        )
                    results.append((code, bytes(out), bytes(err)))
            nursery.cancel_scope.cancel()
    assert results[0] == (9, b"alpha\nbeta\n", b"to-err\n")
    assert results[1][0] == 127 and b"no-such-command-xyz" in results[1][2]
    assert results[2] == (0, b"", b"")


async def test_execute_without_a_network():
    """The server half on its own: a message of in-memory pipes, as a session would deliver."""
    with trio.fail_after(20):
        in_w, in_r = libchan.stream_pipe()
        out_w, out_r = libchan.stream_pipe()
        status_tx, status_rx = libchan.pipe(1)
        out = bytearray()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, out_r, out)

            async def feed() -> None:  # more than the pipe buffers: needs the command to read
                await in_w.send_all(b"x" * 100_000)
                await in_w.aclose()

            nursery.start_soon(feed)
            msg = {"cmd": "wc", "args": ["-c"], "stdin": in_r, "stdout": out_w, "stderr": None, "status": status_tx}
            assert await rexec.execute(msg) == 0
        assert await status_rx.receive() == {"status": 0}
        assert out.strip() == b"100000"
        # A malformed request is answered, not crashed on.
        status_tx, status_rx = libchan.pipe(1)
        assert await rexec.execute({"cmd": 42, "status": status_tx}) == 2
        assert await status_rx.receive() == {"status": 2}
        assert await rexec.execute("not a map") is None


# -- the spdy profile (Go libchan's wire) ---------------------------------------------------------


def spdy_client(server: Server, *args: str, **kw) -> subprocess.CompletedProcess[bytes]:
    return run("client", "--profile", "spdy", "--connect", server.url, *args, **kw)


@pytest.mark.slow
def test_client_profile_option():
    assert b"--profile" in run("client", "--help").stdout
    result = run("client", "--profile", "spdy3", "--connect", "tcp://127.0.0.1:1", "true")
    assert result.returncode == 2
    assert b"invalid choice" in result.stderr


@pytest.mark.slow
def test_spdy_profile_stdio_and_status(tcp_server):
    result = spdy_client(tcp_server, "sh", "-c", "cat; echo to-err >&2; exit 5", input=b"over spdy\n")
    assert result.returncode == 5, result.stderr
    assert result.stdout == b"over spdy\n"
    assert result.stderr == b"to-err\n"
    script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2"
    result = spdy_client(tcp_server, "sh", "-c", script, input=None)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"out1\nout2\n", b"err1\nerr2\n")


@pytest.mark.slow
@pytest.mark.parametrize("status", [0, 1, 42, 255])
def test_spdy_profile_exit_status(tcp_server, status):
    assert spdy_client(tcp_server, "sh", "-c", f"exit {status}").returncode == status


@pytest.mark.slow
def test_spdy_profile_unknown_command_and_binary_data(tcp_server):
    # A Go-shaped request is answered as Go's rexec_server answers it: 10, could not start.
    result = spdy_client(tcp_server, "no-such-command-xyz")
    assert result.returncode == rexec.GO_STATUS_CANNOT_START == 10
    assert b"no-such-command-xyz" in result.stderr
    data = os.urandom(2 * 1024 * 1024 + 5)
    result = spdy_client(tcp_server, "cat", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


@pytest.mark.slow
def test_spdy_profile_killed_by_signal(tcp_server):
    """Go's status -1 (killed by a signal): a clear line and exit 255 (as Go's client), no traceback."""
    result = spdy_client(tcp_server, "sh", "-c", "kill -9 $$")
    assert result.returncode == rexec.EXIT_REMOTE_SIGNALED == 255
    assert one_line_error(result) == "rexec client: remote command was killed by a signal (status -1)"
    assert "sh -c 'kill -9 $$' was killed by signal 9 (status -1)" in tcp_server.output()


@pytest.mark.slow
def test_spdy_profile_mutual_tls(tls_server, certs):
    result = run(
        "client", "--profile", "spdy", "--connect", tls_server.url, "--ca", certs["ca.pem"],
        "--cert", certs["client.pem"], "sh", "-c", "tr a-z A-Z; echo oops >&2; exit 6",
        input=b"secret\n",
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert result.stdout == b"SECRET\n"
    assert result.stderr == b"oops\n"
    # Without a client certificate the mutual-TLS server refuses it, as in the h2 profile.
    result = run("client", "--profile", "spdy", "--connect", tls_server.url, "--ca", certs["ca.pem"], "true")
    assert result.returncode == 255
    one_line_error(result)


@pytest.mark.slow
def test_spdy_profile_tls_without_client_certificate(tmp_path, certs):
    """Go's rexec client does TLS without a certificate (and without ALPN): a --cert-only server."""
    server = Server(
        tmp_path, "--cert", certs["server.pem"], "--key", certs["server.key"], listen="tls://127.0.0.1:0"
    )
    try:
        result = run(
            "client", "--profile", "spdy", "--connect", server.url, "--ca", certs["ca.pem"], "cat", input=b"tls\n"
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, b"tls\n", b""), result.stderr
    finally:
        server.close()
    assert "Traceback" not in server.output()


@pytest.mark.slow
def test_demo_spdy_profile():
    result = run("demo", "--profile", "spdy", "sh", "-c", "cat; exit 4", input=b"via demo\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().strip().splitlines()
    assert "via demo" in lines
    assert lines[-1] == "demo: remote command exited with status 4"


async def test_spdy_client_message_is_go_shaped():
    """What Go's rexec server decodes into RemoteCommand: capitalised fields, duplex stdio, a Sender."""
    seen: list[dict] = []

    async def handler(session: libchan.Session) -> None:
        async for receiver in session:
            async for msg in receiver:
                seen.append({k: (v.direction if isinstance(v, libchan.ByteStream) else v) for k, v in msg.items()})
                assert isinstance(msg["StatusChan"], libchan.Sender)
                # Reading the Stdout stream gives end-of-file at once (as with Go's *os.File stdout)...
                assert await msg["Stdout"].receive_some() == b""
                # ...and it still takes output.
                await msg["Stdout"].send_all(b"hello\n")
                await msg["Stdout"].aclose()
                await msg["Stderr"].aclose()
                assert await msg["Stdin"].receive_some() == b"in"
                await msg["StatusChan"].send({"Status": 7})
                return

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(libchan.serve, "tcp://127.0.0.1:0", handler)
            async with libchan.connect(urls[0], profile="spdy") as session:
                in_w, in_r = libchan.stream_pipe()
                out_w, out_r = libchan.stream_pipe()
                out = bytearray()
                async with trio.open_nursery() as inner:
                    inner.start_soon(_collect, out_r, out)
                    await in_w.send_all(b"in")
                    code = await rexec.remote_exec(session, ["prog", "a", "b"], stdin=in_r, stdout=out_w, stderr=None)
            nursery.cancel_scope.cancel()
    assert code == 7
    assert bytes(out) == b"hello\n"
    assert seen == [
        {
            "Cmd": "prog",
            "Args": ["a", "b"],
            "Stdin": "duplex",
            "Stdout": "duplex",
            "Stderr": "duplex",
            "StatusChan": seen[0]["StatusChan"],
        }
    ]


async def test_execute_answers_go_shaped_requests_in_kind():
    """Go's client decodes the reply into CommandResponse{Status int}: the key must be "Status"."""
    with trio.fail_after(20):
        out_w, out_r = libchan.stream_pipe()
        status_tx, status_rx = libchan.pipe(1)
        out = bytearray()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, out_r, out)
            msg = {"Cmd": "sh", "Args": ["-c", "echo go; exit 3"], "Stdin": None, "Stdout": out_w,
                   "Stderr": None, "StatusChan": status_tx}  # fmt: skip
            assert await rexec.execute(msg) == 3
        assert await status_rx.receive() == {"Status": 3}
        assert bytes(out) == b"go\n"
        status_tx, status_rx = libchan.pipe(1)
        assert await rexec.execute({"Cmd": "true", "Args": None, "StatusChan": status_tx}) == 0
        assert await status_rx.receive() == {"Status": 0}


async def test_go_shaped_requests_get_go_statuses():
    """Where Go's rexec_server defines a status, a Go-shaped request gets it; a lower-case one
    keeps the shell's conventions (127, 126, 128+N, 2)."""
    cases = [
        (["no-such-command-xyz"], 10, 127),
        (["/dev/null"], 10, 126),  # not executable
        (["sh", "-c", "kill -KILL $$"], -1, 128 + 9),
        (["sh", "-c", "kill -TERM $$"], -1, 128 + 15),
        ([""], 10, 2),  # an empty command: Go's exec cannot start it either
        (["sh", "-c", "exit 10"], 10, 10),
    ]
    with trio.fail_after(20):
        for argv, go_status, status in cases:
            for go_shaped in (True, False):
                status_tx, status_rx = libchan.pipe(1)
                if go_shaped:
                    msg = {"Cmd": argv[0], "Args": argv[1:], "StatusChan": status_tx}
                else:
                    msg = {"cmd": argv[0], "args": argv[1:], "status": status_tx}
                expected = go_status if go_shaped else status
                assert await rexec.execute(msg) == expected, (argv, go_shaped)
                assert await status_rx.receive() == {("Status" if go_shaped else "status"): expected}


@pytest.mark.slow
def test_recorded_go_client_against_server(tcp_server):
    """Replay the bytes Go libchan's rexec client sent (recording 04-rexec) to the real server.

    The recorded client ran ``cat`` (stdin "hello\\n" + "libchan\\n", then EOF) and then
    ``fail 3 'no such file'``, which is no command here (status 10, as Go's server answers).
    """
    import socket

    import msgpack
    from interop.recordings import transcript

    from libchan.spdy_like.spdy3 import Data, RstStream, FrameParser

    c2s, _s2c, _records = transcript("04-rexec")
    first = 314  # the first command up to its stdin FIN (frames #000-#008, #015, #017)
    stdin = b"".join(f.data for f in FrameParser().feed(c2s[:first]) if isinstance(f, Data) and f.stream_id == 3)
    parser = FrameParser()
    data: dict[int, bytearray] = {}
    fins: set[int] = set()

    def read_until(sock: socket.socket, stream_id: int, deadline: float) -> dict:
        while stream_id not in fins:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection"
            for frame in parser.feed(chunk):
                assert not isinstance(frame, RstStream), frame
                if isinstance(frame, Data):
                    data.setdefault(frame.stream_id, bytearray()).extend(frame.data)
                    if frame.fin:
                        fins.add(frame.stream_id)
            # The status channel is not ended by the server: stop at the first whole message.
            if stream_id in data:
                try:
                    return msgpack.unpackb(bytes(data[stream_id]))
                except ValueError:
                    pass
        return msgpack.unpackb(bytes(data[stream_id]))

    host, port = tcp_server.url.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        deadline = time.monotonic() + TIMEOUT
        sock.sendall(c2s[:first])
        assert read_until(sock, 9, deadline) == {"Status": 0}  # StatusChan: stream 9
        assert 5 in fins and 7 in fins  # Stdout and Stderr were ended before the status
        assert bytes(data[5]) == stdin == b"hello\nlibchan\n"  # cat's output on Stdout (stream 5)
        sock.sendall(c2s[first:])
        assert read_until(sock, 17, deadline) == {"Status": 10}
        assert b"fail" in bytes(data[15])  # the reason, on Stderr (stream 15)


# -- the h2 client runs without trio (libchan/oneshot.py) ------------------------------------

#: Runs the module as ``-m`` does and says on stderr, at exit, whether trio was imported.
_TRIO_PROBE = (
    "import atexit, runpy, sys;"
    "atexit.register(lambda: sys.stderr.write('trio imported: %s\\n' % ('trio' in sys.modules)));"
    "sys.argv[0] = 'rexec';"
    "runpy.run_module('libchan.examples.rexec', run_name='__main__', alter_sys=True)"
)


def _probe(*args: str, input: bytes = b"") -> tuple[subprocess.CompletedProcess[bytes], bool]:
    result = subprocess.run(
        [sys.executable, "-c", _TRIO_PROBE, *args], input=input, capture_output=True, timeout=TIMEOUT, cwd=ROOT, env=_env()
    )
    *rest, last = result.stderr.decode().strip().splitlines()
    assert last.startswith("trio imported: "), result.stderr
    return result, last == "trio imported: True"


@pytest.mark.slow
def test_h2_client_never_imports_trio(tcp_server, tmp_path):
    result, trio_imported = _probe("client", "--connect", tcp_server.url, "sh", "-c", "cat; exit 3", input=b"x\n")
    assert result.returncode == 3 and result.stdout == b"x\n", result.stderr
    assert not trio_imported
    # Nor on the failure paths: a refused connection, a usage error.
    result, trio_imported = _probe("client", "--connect", "unix://" + str(tmp_path / "nobody.sock"), "true")
    assert result.returncode == 255 and not trio_imported, result.stderr
    result, trio_imported = _probe("client", "--connect", "bogus://x", "true")
    assert result.returncode == 2 and not trio_imported, result.stderr
    # (the probe sees trio where it is used: the spdy profile keeps the trio client)
    result, trio_imported = _probe("client", "--profile", "spdy", "--connect", tcp_server.url, "true")
    assert result.returncode == 0 and trio_imported, result.stderr


@pytest.mark.slow
def test_flow_control_both_ways_beyond_the_windows(tcp_server):
    """10 MiB each way, over 2x the 4 MiB stream window: the client sends stdin within the
    server's windows (h2 raises, locally, for a DATA frame beyond them) and acknowledges
    what it writes to stdout (else the server stalls at 4 MiB)."""
    data = os.urandom(10 * 1024 * 1024 + 3)
    result = run("client", "--connect", tcp_server.url, "cat", input=data)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == b""
    assert result.stdout == data


@pytest.mark.slow
def test_slow_stdout_reader_is_not_overrun(tcp_server):
    """Output far beyond the windows into a pipe read slowly: all of it arrives, in order."""
    client = subprocess.Popen(
        [*MODULE, "client", "--connect", tcp_server.url, "head", "-c", str(12 * 1024 * 1024), "/dev/zero"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    try:
        got = 0
        time.sleep(0.5)  # the server has sent what the windows allow meanwhile
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"stalled after {got} bytes"
            if not select.select([client.stdout], [], [], left)[0]:
                continue
            chunk = os.read(client.stdout.fileno(), 1024 * 1024)
            if not chunk:
                break
            assert chunk.count(0) == len(chunk)
            got += len(chunk)
        assert client.wait(timeout=TIMEOUT) == 0, client.stderr.read()
        assert got == 12 * 1024 * 1024
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        client.stdout.close()
        client.stderr.close()


@pytest.mark.slow
def test_server_gone_mid_command_is_one_line_255(tmp_path):
    """The server dies while the command runs: the client exits 255 with one line, at once."""
    server = Server(tmp_path)
    remote_pid = None
    client = subprocess.Popen(
        [*MODULE, "client", "--connect", server.url, "sh", "-c", "echo $$; sleep 60"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    try:
        remote_pid = int(_readline(client.stdout, time.monotonic() + TIMEOUT))
        server.proc.kill()
        server.proc.wait(timeout=TIMEOUT)
        assert client.wait(timeout=10) == 255
        err = client.stderr.read().decode()
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "the server sent no exit status" in err, err
    finally:
        if remote_pid is not None and _alive(remote_pid):
            os.kill(remote_pid, 9)
        if client.poll() is None:
            client.kill()
            client.wait()
        for f in (client.stdin, client.stdout, client.stderr):
            f.close()
        server.close()


def _fake_server(behaviour: str):
    """A TCP listener that accepts one connection and then ``behaviour``: "close" it at
    once, or stay "silent"; returns (url, thread)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        if behaviour == "silent":
            conn.settimeout(20)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{listener.getsockname()[1]}", thread


@pytest.mark.slow
@pytest.mark.parametrize(
    "behaviour, expected",
    [("close", "closed the connection before answering"), ("silent", "sent nothing within 5s")],
)
def test_server_that_closes_or_stays_silent(behaviour, expected):
    """Not a libchan server: a one-line diagnosis (as libchan.connect gives), no hang."""
    url, thread = _fake_server(behaviour)
    result = run("client", "--connect", url, "true")  # (a hang fails at run's timeout)
    assert result.returncode == 255
    assert expected in one_line_error(result)  # ("within 5s": handshake_timeout, not peer_timeout)
    thread.join(timeout=TIMEOUT)


@pytest.mark.slow
def test_ctrl_c_exits_130(tcp_server):
    import signal

    client = subprocess.Popen(
        [*MODULE, "client", "--connect", tcp_server.url, "sh", "-c", "echo started; sleep 30"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert _readline(client.stdout, time.monotonic() + TIMEOUT) == b"started\n"
        client.send_signal(signal.SIGINT)
        assert client.wait(timeout=10) == 130
        err = client.stderr.read().decode()
        assert err == "rexec client: interrupted\n", err
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        for f in (client.stdin, client.stdout, client.stderr):
            f.close()
