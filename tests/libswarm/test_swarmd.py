"""swarmd and swarmctl as real processes: CLI, chains, signals, tcp/unix/mutual TLS, dying hops."""

from __future__ import annotations

import json
import signal
import time

import pytest

from swarmd_support import SWARMCTL_SCRIPT, SWARMD, SWARMD_SCRIPT, Pki, Proc, alive, children_of, run, swarmctl

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.slow,  # swarmd and swarmctl as real processes
]


@pytest.fixture
def procs():
    started: list[Proc] = []

    def start(*specs: str) -> Proc:
        p = Proc(SWARMD + list(specs))
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def one_line_error(r, *needles: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# -- the command line -----------------------------------------------------------------


def test_no_args_lists_backends():
    r = run(SWARMD)
    assert r.returncode == 0, r.stderr
    rows = dict((line.split(None, 1) + [""])[:2] for line in r.stdout.strip().splitlines())
    mine = {"aggregate", "connect", "debug", "exec", "fakeclient", "listen", "simulator"}
    assert set(rows) >= mine
    assert "remote listen" in rows["connect"] and "libchan" in rows["listen"]
    assert all(rows[name].strip() for name in mine)


def test_help_and_version():
    for flag in ("--help", "-h"):
        r = run(SWARMD + [flag])
        assert r.returncode == 0 and "usage: swarmd" in r.stdout and "SIGTERM" in r.stdout
    for flag in ("--version", "-v"):
        r = run(SWARMD + [flag])
        assert r.returncode == 0 and r.stdout.startswith("swarmd version ")
    r = run([SWARMD_SCRIPT, "--version"])  # the console script
    assert r.returncode == 0 and r.stdout.startswith("swarmd version ")
    r = run([SWARMCTL_SCRIPT, "--help"])
    assert r.returncode == 0 and "attach" in r.stdout


def test_backend_help_is_its_docstring():
    """'BACKEND --help' (or -h) prints the backend's own description with its
    arguments and exits 0, for every backend; nothing is started."""
    from libswarm import backends

    for name in backends.available():
        for flag in ("--help", "-h"):
            r = run(SWARMD + [f"{name} {flag}"])
            assert r.returncode == 0, (name, r.stderr)
            assert r.stdout.startswith(f"{name}: "), (name, r.stdout[:200])
            assert "``" not in r.stdout
            assert r.stdout == backends.help_text(name)
    r = run(SWARMD + ["exec --help"])
    assert "Args: PATH" in r.stdout  # not an attempt to run a program called --help
    r = run(SWARMD + ["aggregate --help", "simulator"])  # a help request anywhere in the chain
    assert r.returncode == 0 and r.stdout.startswith("aggregate: ")
    one_line_error(run(SWARMD + ["nosuch --help"]), "nosuch: not found")


@pytest.mark.parametrize("specs, needles", [
    (["nosuch arg"], ["nosuch: not found"]),
    (["exec 'unterminated"], ["parse: EOF found when expecting closing quote."]),
    (["exec \"a\\"], ["parse: EOF found after escape character"]),
    (["simulator `x`"], ["parse: Unknown rune"]),
    ([""], ["parse error: empty command"]),
    (["exec"], ["spawn exec: exec: usage"]),
    (["aggregate \"nosuch\""], ["spawn aggregate", "nosuch: not found"]),
    (["aggregate \"exec 'x\""], ["spawn aggregate"]),
    (["listen tls://127.0.0.1:0"], ["needs --cert, --key and --ca"]),
    (["listen --cert /nonexistent.pem --key /x --ca /y tls://127.0.0.1:0"], ["cannot load TLS material"]),
    (["listen ftp://x"], ["unsupported URL scheme"]),
    (["connect --bogus tcp://127.0.0.1:1"], ["unknown option --bogus"]),
    (["--frobnicate"], ["unknown option --frobnicate"]),
    (["simulator", "nosuch"], ["nosuch: not found"]),   # nothing runs if any spec is bad
])
def test_bad_specs_are_one_line_errors(specs, needles):
    one_line_error(run(SWARMD + specs), "swarmd: ", *needles)


def test_failed_start_is_fatal():
    one_line_error(run(SWARMD + ["exec /nonexistent/binary"]), "swarmd: fatal:", "executable file not found")


def test_address_in_use_is_one_line(procs, tmp_path):
    d = procs("listen tcp://127.0.0.1:0", "simulator")
    url = d.listening()
    one_line_error(run(SWARMD + [f"listen {url}", "simulator"]), "swarmd: ", "listen tcp://", "Address already in use")


def test_chain_runs_and_logs_are_printed():
    r = run(SWARMD + ["exec /bin/echo hello from exec"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello from exec", "exit 0"]


def test_log_messages_printed_then_sigterm(procs, tmp_path):
    # (alone, fakeclient stops at once: the first stage's input is closed and it ends with its input)
    d = procs(f"listen unix://{tmp_path}/f.sock", "fakeclient 0.1")
    d.wait_line("fake client starting", tag="out")
    d.wait_line("fake client heartbeat!", tag="out")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


# -- a chain served on a unix socket, driven by swarmctl ------------------------------


def test_unix_chain_with_swarmctl(procs, tmp_path):
    sock = tmp_path / "swarm.sock"
    d = procs(f"listen unix://{sock}", "simulator web")
    url = d.listening()
    assert url == f"unix://{sock}" and sock.exists()
    r = swarmctl(url, "ls")
    assert r.returncode == 0 and r.stdout.splitlines() == ["web"], r.stderr
    r = swarmctl(url, "spawn", json.dumps({"name": "job", "Cmd": ["sh", "-c", "echo out; echo err >&2; sleep 30"]}))
    assert r.returncode == 0 and r.stdout.strip() == "job", r.stderr
    r = swarmctl(url, "spawn", "echo", "hi")
    assert r.returncode == 0 and r.stdout.strip().startswith("sim-"), r.stderr
    assert swarmctl(url, "ls").stdout.split() == ["web", "job", r.stdout.strip()]

    attach = Proc([SWARMCTL_SCRIPT, url, "attach", "job"])
    try:
        time.sleep(0.5)  # attach before start: nothing is lost
        r = swarmctl(url, "start", "job")
        assert r.returncode == 0, r.stderr
        attach.wait_line("^out$", tag="out")
        attach.wait_line("^err$", tag="err")
        info = json.loads(swarmctl(url, "get", "job").stdout)
        assert info["Name"] == "/job" and info["State"]["Running"] is True
        r = swarmctl(url, "stop", "job")
        assert r.returncode == 0, r.stderr
        assert attach.wait(10) == 0  # the stream ends when the container exits
    finally:
        attach.stop()
    info = json.loads(swarmctl(url, "get", "job").stdout)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137
    assert swarmctl(url, "get", "job", "stdout").stdout == "out\n"
    r = swarmctl(url, "attach", "--logs", "job")
    assert r.returncode == 0 and r.stdout == "out\n" and r.stderr == "err\n"
    r = swarmctl(url, "call", "get")
    assert r.returncode == 0 and r.stdout.startswith("Set {")

    # errors: one line, exit 1
    one_line_error(swarmctl(url, "start", "nosuch"), "swarmctl: no such container: nosuch")
    one_line_error(swarmctl(url, "spawn", json.dumps({"name": "web"})), 'Conflict. The name "/web" is already in use')
    one_line_error(swarmctl(url, "frob"), "unknown verb")
    one_line_error(swarmctl(f"unix://{tmp_path}/nothing.sock", "ls"), "swarmctl: ")
    one_line_error(run([SWARMCTL_SCRIPT, url]), "usage")

    # two clients at once, then shutdown with SIGTERM: exit 0, socket removed
    d.signal(signal.SIGTERM)
    assert d.wait() == 0, d.err
    assert not sock.exists()


def test_nested_aggregate_quoting(procs, tmp_path):
    sock = tmp_path / "agg.sock"
    d = procs(f"listen unix://{sock}", "aggregate \"simulator web\" \"exec /bin/cat\"")
    url = d.listening()
    assert swarmctl(url, "ls").stdout.split() == ["web"]
    info = json.loads(swarmctl(url, "get").stdout)
    assert [c["Spec"] for c in info["Children"]] == ["simulator web", "exec /bin/cat"]
    assert info["Children"][1]["Info"]["Driver"] == "exec"


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signals_stop_the_chain(procs, tmp_path, sig, status):
    sock = tmp_path / "s.sock"
    d = procs(f"listen unix://{sock}", "exec sleep 300")
    url = d.listening()
    assert json.loads(swarmctl(url, "get").stdout)["State"]["Running"] is True
    kids = children_of(d.pid)
    assert kids, "the exec child is running"
    t0 = time.monotonic()
    d.signal(sig)
    assert d.wait() == status, d.err
    assert time.monotonic() - t0 < 8
    assert not sock.exists()
    assert not any(alive(k) for k in kids)
    assert not any("Traceback" in line for line in d.err)


# -- tcp and mutual TLS ------------------------------------------------------------------


def test_tcp_chain(procs):
    d = procs("listen tcp://127.0.0.1:0", "simulator a b")
    url = d.listening()
    assert url.startswith("tcp://127.0.0.1:")
    assert swarmctl(url, "ls").stdout.split() == ["a", "b"]


def test_mutual_tls(procs, pki):
    d = procs(f"listen {pki.server_opts()} tls://127.0.0.1:0", "simulator a")
    url = d.listening()
    r = swarmctl(url, "ls", tls=pki)
    assert r.returncode == 0 and r.stdout.split() == ["a"], r.stderr
    # a client certificate from another CA is refused
    one_line_error(swarmctl(url, "ls", tls=pki, client="rogue-client", timeout=30), "swarmctl: ")
    # no client certificate: refused
    one_line_error(swarmctl(url, "ls", tls=pki, client="", timeout=30), "swarmctl: ")
    # the client refuses a server whose certificate another CA signed
    rogue = procs(f"listen {pki.server_opts('rogue-server').replace('ca.pem', 'other-ca.pem')} tls://127.0.0.1:0", "simulator")
    one_line_error(swarmctl(rogue.listening(), "ls", tls=pki), "swarmctl: ", "CERTIFICATE_VERIFY_FAILED")
    # the server still serves good clients after the refusals
    assert swarmctl(url, "ls", tls=pki).stdout.split() == ["a"]


def test_connect_over_mutual_tls_and_a_dying_hop(procs, pki, tmp_path):
    """front (unix) -> connect tls -> back (listen tls -> simulator); SIGKILL back: pending requests fail."""
    back = procs(f"listen {pki.server_opts()} tls://127.0.0.1:0", "simulator")
    back_url = back.listening()
    sock = tmp_path / "front.sock"
    opts = " ".join(pki.client_opts())
    front = procs(f"listen unix://{sock}", f"connect {opts} {back_url}")
    url = front.listening()
    r = swarmctl(url, "spawn", json.dumps({"name": "w", "Cmd": ["sleep", "60"]}))
    assert r.returncode == 0 and r.stdout.strip() == "w", r.stderr
    assert swarmctl(url, "start", "w").returncode == 0
    attach = Proc([SWARMCTL_SCRIPT, url, "attach", "w"])
    watch = Proc([SWARMCTL_SCRIPT, url, "watch"])
    try:
        time.sleep(1)
        back.p.kill()
        t0 = time.monotonic()
        assert attach.wait(10) == 1
        assert watch.wait(10) == 1
        assert time.monotonic() - t0 < 5
        # the engine's Watch went through connect: an Error naming the lost connection
        assert any(f"connect {back_url}: connection lost" in line for line in watch.err), watch.err
        # the Attach went to a handle of the remote container (a libchan channel): it breaks
        assert len(attach.err) == 1 and attach.err[0].startswith("swarmctl: "), attach.err
    finally:
        attach.stop()
        watch.stop()
    one_line_error(swarmctl(url, "ls"), "swarmctl: connect ")
    front.wait_line("connection lost", tag="out")
    # the front end survives and reconnects once the back end is back (same port)
    back2 = procs(f"listen {pki.server_opts()} {back_url}", "simulator again")
    back2.listening()
    r = swarmctl(url, "ls")
    assert r.returncode == 0 and r.stdout.split() == ["again"], r.stderr
